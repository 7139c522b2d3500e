"""docs/FINDINGS.md's answers are what the analysis gives on the committed runs.

Each number below is quoted in the document; a change to the analysis or to the runs that moves
one fails here, so the document is rerun and rewritten with it.
"""

from __future__ import annotations

import contextlib
import io
import os

import pandas as pd
import pytest

from analysis import phase_boundary as PB
from analysis import variance_peak as VP

RUNS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "findings", "runs")
Q1 = ["q1_locate_fashion_mnist_30ep", "q1_adaptive_fashion_mnist_30ep_width0.25",
      "q1_adaptive_fashion_mnist_30ep_width0.125", "q1_transition_fashion_mnist_30ep"]
Q3 = ["q3_locate_fashion_mnist_30ep", "q3_adaptive_fashion_mnist_30ep_lr0.2",
      "q3_adaptive_fashion_mnist_30ep_lr0.2_lam0.35-0.65", "q3_adaptive_fashion_mnist_30ep_lr0.1_lam0.8-1.0",
      "q3_transition_fashion_mnist_30ep"]


def analyse(main, folders, out, *flags):
    with contextlib.redirect_stdout(io.StringIO()) as text:
        rc = main([*(os.path.join(RUNS, f) for f in folders), "--out", str(out), "--n-boot", "20", *flags])
    assert rc == 0, text.getvalue()
    return out


def triple(row, key, digits):
    return tuple(round(float(row[f"{key}{end}"]), digits) for end in ("", "_lo", "_hi"))


def test_q1_rises_levels_and_verdicts(tmp_path):
    out = analyse(VP.main, Q1, tmp_path, "--collapse-error", "0.55", "--where", "model.width<=0.5")
    rows = pd.read_csv(out / "variance_peak_summary.csv").set_index("model.width")
    assert triple(rows.loc[0.125], "rise_midpoint", 3) == (0.533, 0.524, 0.540)
    assert triple(rows.loc[0.125], "P_ceiling", 2) == (0.78, 0.68, 0.86)
    assert triple(rows.loc[0.25], "rise_midpoint", 3) == (0.570, 0.529, 0.638)
    assert triple(rows.loc[0.25], "P_ceiling", 2) == (0.66, 0.56, 0.84)
    assert triple(rows.loc[0.5], "rise_midpoint", 3) == (0.622, 0.592, 0.653)
    assert triple(rows.loc[0.5], "P_ceiling", 2) == (0.26, 0.18, 0.38)
    assert [int(rows.loc[w].n_collapsed) for w in (0.125, 0.25, 0.5)] == [67, 50, 14]
    claims = pd.read_csv(out / "variance_peak_claims.csv").set_index("claim")["verdict"]
    assert claims["the rise of P steepens with size, curve by curve"].startswith("NOT RESOLVED")
    assert claims["the rise of P (lam_c at P=0.5, or mid-rise where P levels off) moves with size"].startswith(
        "YES: the intervals of width=0.125× [0.524, 0.540] and width=0.5× [0.592, 0.653]")
    assert claims["peak height rises with size"] == "NOT RESOLVED"
    assert "misdescribes" in claims["P collapse lam_c"]


def test_q3_lambda_c_moves_down_as_lr_rises(tmp_path):
    out = analyse(PB.main, Q3, tmp_path, "--threshold", "0.55", "--collapse-error", "0.55")
    rows = pd.read_csv(out / "phase_boundary_summary.csv").set_index("lr")
    assert triple(rows.loc[0.2], "rise_midpoint", 3) == (0.497, 0.441, 0.535)
    assert triple(rows.loc[0.2], "P_ceiling", 2) == (0.60, 0.46, 0.74)
    assert round(float(rows.loc[0.2].lam_c), 3) == 0.511  # its interval is a bootstrap's: 20 resamples here
    assert rows.loc[0.1].lam_c == rows.loc[0.05].lam_c == float("inf")
    assert int(rows.loc[0.05].n_collapsed) == 0 and int(rows.loc[0.1].n_collapsed) == 1
    verdict = pd.read_csv(out / "phase_boundary_verdict.csv").iloc[0]
    assert verdict.verdict == "depends"
    assert verdict.verdict_collapse == "undetermined"


@pytest.mark.parametrize("folder", Q1 + Q3)
def test_every_committed_run_has_its_record(folder):
    jobs = [j for j in os.listdir(os.path.join(RUNS, folder)) if os.path.isdir(os.path.join(RUNS, folder, j))]
    assert jobs
    for job in jobs:
        assert {"result.json", "metrics.csv", "config.yaml"} <= set(os.listdir(os.path.join(RUNS, folder, job))), job
