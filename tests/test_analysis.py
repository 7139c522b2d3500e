"""analysis/: collect, variance_peak, phase_boundary on synthetic output trees.

The trees (tests/analysis_fixtures.py) plant known ground truth with cells whose mean and std
are exact, plus a corrupt file, a half-written one, a failed run, a run in progress, a
diverged run and a duplicate. The scripts must recover the planted values, report the bad
files by path, and write non-empty figures.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, os.path.dirname(__file__))
import analysis_fixtures as F

from analysis import cli, collect, runs
from analysis import phase_boundary as PB
from analysis import stats as S
from analysis import variance_peak as VP

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N_BOOT = ["--n-boot", "200"]


def assert_png(path):
    assert os.path.getsize(path) > 10_000, path
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", path
    import matplotlib.image

    img = matplotlib.image.imread(path)
    assert img.shape[0] > 500 and img.shape[1] > 500
    assert img[..., :3].std() > 0.05  # not a blank canvas


def no_temp_files(folder):
    assert not [f for f in os.listdir(folder) if f.endswith(".tmp")]


@pytest.fixture(scope="module")
def q1(tmp_path_factory):
    root = tmp_path_factory.mktemp("q1")
    return str(root), F.plant_q1(str(root))


@pytest.fixture(scope="module")
def q3(tmp_path_factory):
    root = tmp_path_factory.mktemp("q3")
    return str(root), F.plant_q3(str(root))


@pytest.fixture(scope="module")
def q1_run(q1, tmp_path_factory):
    """variance_peak on the Q1 tree: (printed text, out dir)."""
    root, _ = q1
    out = str(tmp_path_factory.mktemp("q1_out"))
    return _run(VP.main, [root, "--out", out, "--size-measure", "value", *N_BOOT]), out


@pytest.fixture(scope="module")
def q3_run(q3, tmp_path_factory):
    root, _ = q3
    out = str(tmp_path_factory.mktemp("q3_out"))
    return _run(PB.main, [root, "--out", out, *N_BOOT]), out


def _run(main, argv):
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(argv)
    assert rc == 0, buf.getvalue()
    return buf.getvalue()


# --------------------------------------------------------------------------- collect


def test_collect_reports_every_kind_of_run(q1):
    root, truth = q1
    table, report = runs.collect(root)
    n_expected = 3 * 2 * 5 * F.Q1_SEEDS - F.Q1_SEEDS  # one missing cell
    assert len(table) == n_expected == report.n_runs
    bad = dict(report.bad_files)
    assert set(bad) == {truth["corrupt"], truth["half_written"]}
    assert "corrupt" in bad[truth["corrupt"]]
    assert "half-written" in bad[truth["half_written"]]
    assert [d for d, _ in report.failed] == [truth["failed"]]
    assert "out of memory" in report.failed[0][1]
    assert report.in_progress == [truth["in_progress"]]
    assert report.diverged == [truth["diverged"]]
    assert report.duplicates == [(truth["duplicate"]["fresh"], [truth["duplicate"]["stale"]])]
    assert truth["duplicate"]["stale"] not in set(table["run_dir"])
    assert not (table["best_error"] == 0.99).any()  # the stale copy's value is gone
    # columns: varying config keys flattened with dots, the record fields, status, run dir
    for col in (
        "run_dir",
        "status",
        "model.width",
        "noise.rate",
        "lam",
        "seed",
        "name",
        "width_mult",
        "noise_rate",
        "lambda",
        "best_error",
        "test_error",
        "overrides",
    ):
        assert col in table.columns, col
    assert "history" not in table.columns and "config" not in table.columns
    assert "train.epochs" not in table.columns and report.constant_keys["train.epochs"] == 100
    full, _ = runs.collect(root, all_keys=True)
    assert "train.epochs" in full.columns and len(full) == len(table)
    text = "\n".join(report.lines())
    for path in (
        truth["corrupt"],
        truth["half_written"],
        truth["failed"],
        truth["duplicate"]["stale"],
    ):
        assert path in text


def test_collect_several_folders_equals_parent(q1):
    root, _ = q1
    parent, _ = runs.collect(root)
    subs = [os.path.join(root, d) for d in ("q1_a", "q1_b", "rerun")]
    several, _ = runs.collect(subs + [root])  # overlapping paths are read once
    assert sorted(parent["run_dir"]) == sorted(several["run_dir"])


def test_collect_cli_writes_csv(q1, tmp_path):
    root, _ = q1
    out = tmp_path / "t" / "table.csv"
    text = _run(collect.main, [root, "--out", str(out)])
    assert "unreadable" in text and "collected 290 runs" in text
    df = pd.read_csv(out)
    assert len(df) == 290 and "model.width" in df.columns
    assert f"wrote {out} (290 runs" in text
    assert os.listdir(tmp_path / "t") == ["table.csv"]  # what was asked for, nothing beside it


# --------------------------------------------------------------------------- Q1


def test_variance_peak_finds_planted_peaks(q1_run):
    text, out = q1_run
    s = pd.read_csv(os.path.join(out, "variance_peak_summary.csv"))
    assert len(s) == 6
    for row in s.itertuples():
        eta, w = row._1, row._2  # noise.rate, model.width
        planted, h = F.Q1_PEAK[eta], F.q1_peak_std(w)
        assert row.peak_lam_grid == pytest.approx(planted)
        assert row.peak_lam == pytest.approx(planted, abs=0.005)
        assert row.peak_lam_lo <= planted <= row.peak_lam_hi
        assert row.peak_std == pytest.approx(h, rel=1e-6)
        assert row.peak_std_lo < h <= row.peak_std_hi + 1e-12
        assert row.sigmoid_width == pytest.approx(F.q1_sigmoid_width(w), rel=0.02)
        assert row.sigmoid_width_lo <= F.q1_sigmoid_width(w) <= row.sigmoid_width_hi
        assert row.sigmoid_center == pytest.approx(planted, abs=0.002)
    # the notebook's printed summary, same format
    assert "--- Variance Peak Analysis ---" in text
    assert "  width=0.5×: peak std=0.0283 at λ=0.46" in text
    assert "  width=2.0×: peak std=0.0566 at λ=0.42" in text


def test_variance_peak_answers_both_claims(q1_run):
    text, out = q1_run
    c = pd.read_csv(os.path.join(out, "variance_peak_claims.csv"))
    for eta in (0.4, 0.8):
        rows = c[c["noise.rate"] == eta].set_index("claim")
        rise = rows.loc["peak height rises with size"]
        sharp = rows.loc["transition sharpens with size"]
        assert rise.estimate == pytest.approx(0.5, abs=1e-6)  # planted exponent +0.5
        assert sharp.estimate == pytest.approx(-0.5, abs=0.02)  # planted exponent -0.5
        assert rise.lo > 0 and rise.verdict == "YES"
        assert sharp.hi < 0 and sharp.verdict == "YES"
    assert "peak height rises with size? YES" in text


def test_variance_peak_partial_sweep_and_bad_runs(q1, q1_run):
    _, truth = q1
    text, out = q1_run
    cells = pd.read_csv(os.path.join(out, "variance_peak_cells.csv"))
    w, eta, lam = truth["missing"]
    miss = cells[(cells["model.width"] == w) & (cells["noise.rate"] == eta) & (cells["lam"] == lam)]
    assert len(miss) == 1 and miss["n"].item() == 0 and math.isnan(miss["mean"].item())
    div = cells[
        (cells["model.width"] == 1.0) & (cells["noise.rate"] == 0.4) & (cells["lam"] == 0.5)
    ]
    assert div["n"].item() == 10 and div["n_diverged"].item() == 1  # counted by default
    assert "1 counted as real outcomes" in text
    for path in (truth["corrupt"], truth["half_written"], truth["duplicate"]["stale"]):
        assert path in text
    assert "0 = missing cell" in text
    for f in ("variance_peak.png", "variance_peak_scaling.png"):
        assert_png(os.path.join(out, f))
    with open(os.path.join(out, "variance_peak.md"), encoding="utf-8") as f:
        md = f.read()
    assert "](variance_peak.png)" in md and "](variance_peak_scaling.png)" in md
    for f in (
        "variance_peak_cells.csv",
        "variance_peak_summary.csv",
        "variance_peak_claims.csv",
        "variance_peak_runs.csv",
    ):
        assert os.path.getsize(os.path.join(out, f)) > 0
    no_temp_files(out)


def test_variance_peak_options(q1, tmp_path):
    root, _ = q1
    text = _run(
        VP.main,
        [
            root,
            "--out",
            str(tmp_path),
            "--n-boot",
            "50",
            "--where",
            "noise.rate=0.4",
            "--diverged",
            "exclude",
            "--susceptibility",
            "--pdf",
        ],
    )
    cells = pd.read_csv(tmp_path / "variance_peak_cells.csv")
    assert set(cells["noise.rate"]) == {0.4}
    div = cells[(cells["model.width"] == 1.0) & (cells["lam"] == 0.5)]
    assert div["n"].item() == 9  # the diverged run left out
    assert "left out (--diverged exclude)" in text
    expect = VP.resnet18_params(2.0) / 1e6 * F.q1_peak_std(2.0) ** 2
    assert cells["chi"].max() == pytest.approx(expect, rel=1e-6)
    assert (tmp_path / "variance_peak.pdf").stat().st_size > 0
    assert_png(tmp_path / "variance_peak.png")


def test_a_cell_is_missing_only_where_the_grid_is_shared():
    """Curve a has no run at 0.6, where b and c have; c's adaptive sweep alone placed 0.57:
    a and b are not missing there."""
    cells = {"a": [0.5, 0.55], "b": [0.5, 0.55, 0.6], "c": [0.5, 0.57, 0.6]}
    df = pd.DataFrame([{"curve": k, "lam": x, "y": 0.2, "status": "completed"} for k, xs in cells.items() for x in xs])
    (g,) = S.grids(df, None, "curve", "lam")
    missing = {k: list(g.xs[g.missing(g.curve("curve", k, "lam")[3])]) for k in cells}
    assert missing == {"a": [0.6], "b": [], "c": [0.55]}


def test_where_compares_numbers_and_refuses_a_comparison_it_cannot_make():
    table = pd.DataFrame({"lam": [0.5, 0.9, 0.9 + 1e-12, 1.0], "model.name": ["resnet18", "tv_resnet18"] * 2})
    kept = {item: list(cli.where(table, [item], "")[0]["lam"].round(6))
            for item in ("lam<=0.9", "lam<0.9", "lam>=0.9", "lam>0.9", "lam=0.9", "lam!=0.9")}
    assert kept == {"lam<=0.9": [0.5, 0.9, 0.9], "lam<0.9": [0.5], "lam>=0.9": [0.9, 0.9, 1.0],
                    "lam>0.9": [1.0], "lam=0.9": [0.9, 0.9], "lam!=0.9": [0.5, 1.0]}
    both, notes = cli.where(table, ["lam >= 0.9", "model.name!=tv_resnet18"], "")
    assert list(both["lam"].round(6)) == [0.9] and notes[-1] == "--where model.name!=tv_resnet18: kept 1 of 3 runs"
    with pytest.raises(runs.AnalysisError, match=r"--where 'model.name<3': < compares numbers"):
        cli.where(table, ["model.name<3"], "")
    with pytest.raises(runs.AnalysisError, match="expected KEY=VALUE"):
        cli.where(table, ["lam"], "")


# --------------------------------------------------------------------------- Q3


def test_phase_boundary_finds_planted_boundaries(q3_run):
    text, out = q3_run
    s = pd.read_csv(os.path.join(out, "phase_boundary_summary.csv"))
    assert len(s) == 6
    for row in s.itertuples():
        eta, lr = row._1, row.lr
        planted = F.Q3_LAMBDA_C[eta][lr]
        assert row.direction == F.Q3_DIRECTION[eta]
        assert row.lam_c == pytest.approx(planted, abs=0.015)  # a logistic through a clipped ramp
        assert row.lam_c_lo <= planted <= row.lam_c_hi
        # the notebook's definition: first lambda (ascending) whose mean error exceeds 0.20
        assert row.lam_c_notebook == pytest.approx(0.30 if eta == 0.4 else 0.50)
    v = pd.read_csv(os.path.join(out, "phase_boundary_verdict.csv")).set_index("noise.rate")
    assert v.loc[0.4, "verdict"] == "depends" and v.loc[0.8, "verdict"] == "robust"
    assert "η=0.4: Phase boundary depends on (λ, η, lr)" in text
    assert "η=0.8: Phase structure is robust to lr variation" in text
    assert "  lr=0.05: best error=0.0800 at λ=0.50, λ_c≈0.30" in text  # notebook line format


def test_phase_boundary_partial_sweep_and_bad_runs(q3, q3_run):
    _, truth = q3
    text, out = q3_run
    cells = pd.read_csv(os.path.join(out, "phase_boundary_cells.csv"))
    lr, eta, lam = truth["missing"]
    miss = cells[(cells["lr"] == lr) & (cells["noise.rate"] == eta) & (cells["lam"] == lam)]
    assert miss["n"].item() == 0 and math.isnan(miss["mean"].item())
    # the diverged run (nothing measured) counts at chance level 0.9 in its cell
    div = cells[(cells["lr"] == 0.1) & (cells["noise.rate"] == 0.4) & (cells["lam"] == 0.3)]
    assert div["n"].item() == 6 and div["n_diverged"].item() == 1
    assert div["mean"].item() == pytest.approx((5 * F.q3_mean(0.3, 0.4, 0.1) + 0.9) / 6)
    for path in (
        truth["corrupt"],
        truth["half_written"],
        truth["duplicate"]["stale"],
        truth["failed"],
    ):
        assert path in text
    assert_png(os.path.join(out, "phase_boundary.png"))
    with open(os.path.join(out, "phase_boundary.md"), encoding="utf-8") as f:
        md = f.read()
    assert "](phase_boundary.png)" in md and "Phase boundary depends on" in md
    no_temp_files(out)


def test_phase_boundary_groups_by_any_key(q1, tmp_path):
    """The Q1 tree read as a width x lambda sweep: lambda_c per width at threshold 0.3."""
    root, _ = q1
    _run(
        PB.main,
        [
            root,
            "--out",
            str(tmp_path),
            "--n-boot",
            "50",
            "--curve-key",
            "model.width",
            "--threshold",
            "0.3",
        ],
    )
    s = pd.read_csv(tmp_path / "phase_boundary_summary.csv")
    for row in s.itertuples():
        eta, w = row._1, row._2
        # mean = 0.57 - 0.45 expit((lam - peak) / s) crosses 0.3 at peak + s ln 1.5
        planted = F.Q1_PEAK[eta] + F.q1_sigmoid_width(w) * math.log(1.5)
        assert row.direction == "falling"
        assert row.lam_c == pytest.approx(planted, abs=0.002)  # the planted curve is a logistic
        assert row.lam_c_lo <= planted <= row.lam_c_hi


# --------------------------------------------------------------------------- pieces


def test_crossing_and_brackets():
    xs = np.array([0.1, 0.2, 0.3, 0.4])
    rising = np.array([0.1, 0.15, 0.25, 0.5])
    assert S.brackets(xs, rising, 0.2) == [(0.2, 0.3)]
    assert S.brackets(xs, rising[::-1], 0.2) == [(0.2, 0.3)]
    assert S.brackets(xs, np.array([0.1, np.nan, 0.3, 0.5]), 0.2) == [(0.1, 0.3)]  # across a gap
    assert S.notebook_lambda_c(xs, rising[::-1], 0.2) == pytest.approx(0.1)  # the notebook's rule
    assert S.crossing((0.1, 0.6, 0.5, 0.02), 0.35) == pytest.approx(0.5)
    assert math.isnan(S.crossing((0.1, 0.6, 0.5, 0.02), 0.05))
    assert S.on_transition(np.array([0.1, 0.1, 0.35, 0.6])) == 1


def test_peak_refines_between_grid_points():
    xs = np.array([0.40, 0.42, 0.44, 0.46, 0.48])
    std = 0.05 - 30 * (xs - 0.447) ** 2  # vertex off the grid
    _, xg, xr = S.peak(std[None, :], xs)
    assert xg[0] == pytest.approx(0.44) and xr[0] == pytest.approx(0.447)
    std_edge = np.array([0.05, 0.04, 0.03, 0.02, 0.01])
    assert S.peak(std_edge, xs)[2] == pytest.approx(0.40)  # at the edge: the grid point


def test_resnet18_param_count():
    assert VP.resnet18_params(1.0) == 11_173_962  # CIFAR ResNet18, as torchvision's with a 3x3 stem


def test_cli_errors_are_one_line(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert VP.main([str(empty)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no finished runs" in err
    assert PB.main([str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no such file or folder" in err


def test_cli_unknown_key_is_one_line(q3, tmp_path):
    root, _ = q3
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "analysis.phase_boundary",
            root,
            "--curve-key",
            "model.depth",
            "--out",
            str(tmp_path),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "model.depth" in err[0] and "--curve-key" in err[0]


def test_cli_usage_error_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        VP.main(["somewhere", "--n-boot", "x"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--n-boot" in err[0]


def test_a_single_point_peak_next_to_cells_of_one_run_runs_off_the_measured_cells():
    # the peak at 0.9 is the last cell with a spread: 0.95 and 1.0 hold one run each (no std)
    xs = np.array([0.3, 0.5, 0.7, 0.9, 0.95, 1.0])
    sd = np.array([0.01, 0.01, 0.02, 0.30, np.nan, np.nan])
    (loc, lo, hi), note = VP.peak_location(xs, sd, (0.9, 0.85, 0.92), 0.9)
    assert (loc, lo) == (0.9, 0.7) and math.isinf(hi) and "single-point" in note
