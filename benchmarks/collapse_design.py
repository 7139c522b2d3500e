"""What a planned grid of runs can resolve about a collapse curve (CPU, a few minutes):

    python -m benchmarks.collapse_design --lam 0.47,0.51,0.54,0.56,0.58,0.62 --seeds 10 --lam-c 0.547 --slope 30.1
    python -m benchmarks.collapse_design --study     # the Fashion-MNIST study's last step (docs/FINDINGS.md)

Each run's outcome (collapsed or not) is drawn from a planted binomial logistic, P =
expit(slope (lambda - lambda_c)), and fitted as the analysis fits it
(analysis.collapse.fit_logistic, 95% profile-likelihood intervals). Over --reps draws: the
median width of the lambda_c and slope intervals, how often each covers the planted value,
and how often no interval could be had (a fit refused, or outcomes that separate). For the
study, also how often the slope intervals of widths 0.125 and 0.25 do not overlap: the chance
that the new runs alone tell the two slopes apart.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from scipy.special import expit

from analysis.collapse import fit_logistic

# The study's last step: lambdas from `--suggest 6 --span`, the logistics fitted so far
# (docs/FINDINGS.md); name -> (lambdas, seeds per lambda, lambda_c, slope).
STUDY = {
    "width 0.125": ([0.4743, 0.5125, 0.5365, 0.5579, 0.5819, 0.6201], 10, 0.547, 30.1),
    "width 0.25": ([0.428, 0.5699, 0.659, 0.7386, 0.8277, 0.9697], 10, 0.699, 8.11),
    "lr 0.2": ([0.4405, 0.4963, 0.5313, 0.5625, 0.5975, 0.6532], 5, 0.547, 20.7),
}
COMPARED = ("width 0.125", "width 0.25")  # Q1: does the slope change with width


def simulate(lams, seeds: int, lam_c: float, slope: float, reps: int, rng) -> dict:
    """Fits of ``reps`` planted draws on one grid: interval arrays (reps x 3) and counts."""
    x = np.asarray(lams, dtype=float)
    n = np.full(x.size, seeds)
    p = expit(slope * (x - lam_c))
    fits = [fit_logistic(x, rng.binomial(n, p), n, window=False) for _ in range(reps)]
    return {"lam_c": np.array([f.lam_c for f in fits], dtype=float),
            "slope": np.array([f.slope for f in fits], dtype=float),
            "runs": int(n.sum()), "lam_c_true": lam_c, "slope_true": slope}


def summary(sim: dict, key: str) -> str:
    """'median width W, covers C%, no interval in U%' of one estimate's intervals."""
    est, lo, hi = sim[key].T
    closed = np.isfinite(lo) & np.isfinite(hi)
    truth = sim[f"{key}_true"]
    covers = np.mean((lo <= truth) & (truth <= hi))
    width = np.median(hi[closed] - lo[closed]) if closed.any() else math.nan
    return f"median width {width:.3g}, covers {covers:.0%}, not closed in {1 - closed.mean():.0%}"


def apart(a: dict, b: dict) -> float:
    """How often the slope intervals of two curves' draws do not overlap."""
    _, alo, ahi = a["slope"].T
    _, blo, bhi = b["slope"].T
    return float(np.mean((ahi < blo) | (bhi < alo)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.collapse_design", description=__doc__.split("\n")[0])
    ap.add_argument("--study", action="store_true", help="the Fashion-MNIST study's planned grids (STUDY)")
    ap.add_argument("--lam", help="comma-separated lambdas of one planned grid")
    ap.add_argument("--seeds", type=int, help="runs per lambda (default 10; with --study: the study's)")
    ap.add_argument("--lam-c", type=float, help="planted lambda at P(collapse) = 0.5")
    ap.add_argument("--slope", type=float, help="planted slope, logit per unit lambda")
    ap.add_argument("--reps", type=int, default=400, help="draws per grid (default 400)")
    ap.add_argument("--seed", type=int, default=0, help="RNG seed (default 0)")
    args = ap.parse_args(argv)
    if args.study == bool(args.lam):
        ap.error("give --study, or one grid as --lam with --lam-c and --slope")
    if args.lam and (args.lam_c is None or args.slope is None):
        ap.error("--lam needs --lam-c and --slope")
    if args.study:
        plans = {k: (lams, args.seeds or seeds, lc, b) for k, (lams, seeds, lc, b) in STUDY.items()}
    else:
        plans = {"grid": ([float(v) for v in args.lam.split(",")], args.seeds or 10, args.lam_c, args.slope)}
    rng = np.random.default_rng(args.seed)
    sims = {}
    print(f"{args.reps} draws per grid, 95% profile-likelihood intervals (analysis.collapse.fit_logistic)")
    for name, (lams, seeds, lam_c, slope) in plans.items():
        sims[name] = sim = simulate(lams, seeds, lam_c, slope, args.reps, rng)
        print(f"{name}: {len(lams)} lambdas x {seeds} seeds = {sim['runs']} runs, planted lambda_c {lam_c}, slope {slope}")
        print(f"  lambda_c: {summary(sim, 'lam_c')}")
        print(f"  slope:    {summary(sim, 'slope')}")
    if args.study:
        a, b = COMPARED
        print(f"slope intervals of {a} and {b} apart in {apart(sims[a], sims[b]):.0%} of the draws")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
