"""analysis.paired on planted pairs: a known shift of lambda_c between two settings is
recovered within its interval, and no shift gives an interval that covers zero."""

import os

import numpy as np
import pandas as pd

from analysis.paired import main
from tests.analysis_fixtures import config, record, write_run

LAMS = (0.40, 0.45, 0.50, 0.55, 0.60, 0.65, 0.70)


def plant(root, shift, seeds=8):
    """Error 0.1 -> 0.4 logistic in lambda centred at 0.55 (fp32) and 0.55 + shift (bf16);
    each seed adds the same offset to both settings (what pairing cancels), plus small noise."""
    rng = np.random.default_rng(0)
    for seed in range(seeds):
        offset = rng.normal(0, 0.02)
        for lam in LAMS:
            for precision, centre in (("fp32", 0.55), ("bf16", 0.55 + shift)):
                cfg = config(lam=lam, seed=seed)
                cfg["train"]["precision"] = precision
                err = 0.1 + 0.3 / (1 + np.exp(-(lam - centre) / 0.03)) + offset + rng.normal(0, 0.003)
                rec = record(cfg, float(err))
                rec["overrides"].append(f"train.precision={precision}")
                run = write_run(root, "sweep", rec)
                os.rename(run, f"{run},train.precision={precision}")


def summary(tmp_path, shift):
    plant(tmp_path, shift)
    out = tmp_path / "paired.csv"
    assert main([str(tmp_path / "sweep"), "--n-boot", "300", "--out", str(out)]) == 0
    return pd.read_csv(out).set_index("quantity")


def test_a_planted_shift_of_lambda_c_is_recovered(tmp_path):
    row = summary(tmp_path, 0.03).loc["lambda_c (bf16 - fp32)"]
    assert row.lo <= 0.03 <= row.hi and row.lo > 0, row
    assert abs(row.estimate - 0.03) < 0.01


def test_no_shift_gives_an_interval_around_zero(tmp_path):
    table = summary(tmp_path, 0.0)
    row = table.loc["lambda_c (bf16 - fp32)"]
    assert row.lo <= 0 <= row.hi and row.hi - row.lo < 0.03, row
    per_lam = table.loc["mean bf16 - fp32"]  # 7 intervals at 95%: one may miss zero by chance
    assert ((per_lam.lo > 0) | (per_lam.hi < 0)).sum() <= 1 and (per_lam.estimate.abs() < 0.005).all()
