"""What a planned grid of runs can resolve about a collapse curve (CPU, a few minutes):

    python -m benchmarks.collapse_design --lam 0.47,0.51,0.54,0.56,0.58,0.62 --seeds 10 --lam-c 0.547 --slope 30.1
    python -m benchmarks.collapse_design --lam 0.5,0.6,0.7,0.8,0.9,1.0 --seeds 12 --lam-c 0.55 --slope 100 --level 0.15
    python -m benchmarks.collapse_design --study     # the Fashion-MNIST study's next grids (docs/FINDINGS.md)

Each run's outcome (collapsed or not) is drawn from a planted curve, P = level expit(slope
(lambda - lambda_c)), and fitted as the analysis fits it (analysis.collapse.fit_logistic, 95%
profile-likelihood intervals): lambda_c is the rise's midpoint (P = level / 2; where P levels
off, the analysis's Logit.midpoint), the slope its steepness. Over --reps draws: the median
width of those intervals, how often each covers the planted value, how often no interval
could be had (a fit refused, or outcomes that separate), and for a level below 1 how often
the analysis finds it, and its interval.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from scipy.special import expit

from analysis.collapse import fit_logistic

# The study's next grids (docs/FINDINGS.md, Next), each curve planted as the runs so far
# describe it; name -> (lambdas, runs per lambda, rise midpoint, slope, level). Width 0.25's
# rise is a step (slope >= 13): 100 stands for it. Width 0.5 shows no rise yet: planted as
# the small widths look, an onset near 0.55 to the level of its 2 collapses in 12 runs past
# 0.6. A low level is told from a shallow logistic only by runs below and just above the
# onset: its grid is dense there (6 lambdas at 0.5-1.0 with 12 runs each find the level in
# about a fifth of the draws).
STUDY = {
    "width 0.25": ([0.428, 0.5699, 0.659, 0.7386, 0.8277, 0.9697], 10, 0.568, 100.0, 0.60),
    "width 0.5": ([0.45, 0.5, 0.55, 0.6, 0.65, 0.7, 0.8, 0.9, 1.0], 10, 0.55, 100.0, 0.15),
}


def simulate(lams, seeds: int, lam_c: float, slope: float, reps: int, rng, level: float = 1.0) -> dict:
    """Fits of ``reps`` planted draws on one grid: interval arrays (reps x 3) and counts."""
    x = np.asarray(lams, dtype=float)
    n = np.full(x.size, seeds)
    p = level * expit(slope * (x - lam_c))
    fits = [fit_logistic(x, rng.binomial(n, p), n, window=False) for _ in range(reps)]
    return {"lam_c": np.array([f.midpoint for f in fits], dtype=float),
            "slope": np.array([f.steepness for f in fits], dtype=float),
            "level": np.array([f.ceiling for f in fits], dtype=float),
            "runs": int(n.sum()), "lam_c_true": lam_c, "slope_true": slope, "level_true": level}


def summary(sim: dict, key: str) -> str:
    """'median width W, covers C%, no interval in U%' of one estimate's intervals."""
    est, lo, hi = sim[key].T
    closed = np.isfinite(lo) & np.isfinite(hi)
    truth = sim[f"{key}_true"]
    covers = np.mean((lo <= truth) & (truth <= hi))
    width = np.median(hi[closed] - lo[closed]) if closed.any() else math.nan
    return f"median width {width:.3g}, covers {covers:.0%}, not closed in {1 - closed.mean():.0%}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.collapse_design", description=__doc__.split("\n")[0])
    ap.add_argument("--study", action="store_true", help="the Fashion-MNIST study's next grids (STUDY)")
    ap.add_argument("--lam", help="comma-separated lambdas of one planned grid")
    ap.add_argument("--seeds", type=int, help="runs per lambda (default 10; with --study: the study's)")
    ap.add_argument("--lam-c", type=float, help="planted midpoint of the rise (P = level / 2)")
    ap.add_argument("--slope", type=float, help="planted slope, logit per unit lambda")
    ap.add_argument("--level", type=float, default=1.0, help="planted level P rises to (default 1)")
    ap.add_argument("--reps", type=int, default=400, help="draws per grid (default 400)")
    ap.add_argument("--seed", type=int, default=0, help="RNG seed (default 0)")
    args = ap.parse_args(argv)
    if args.study == bool(args.lam):
        ap.error("give --study, or one grid as --lam with --lam-c and --slope")
    if args.lam and (args.lam_c is None or args.slope is None):
        ap.error("--lam needs --lam-c and --slope")
    if args.study:
        plans = {k: (lams, args.seeds or seeds, *planted) for k, (lams, seeds, *planted) in STUDY.items()}
    else:
        plans = {"grid": ([float(v) for v in args.lam.split(",")], args.seeds or 10, args.lam_c, args.slope,
                          args.level)}
    rng = np.random.default_rng(args.seed)
    print(f"{args.reps} draws per grid, 95% profile-likelihood intervals (analysis.collapse.fit_logistic)")
    for name, (lams, seeds, lam_c, slope, level) in plans.items():
        sim = simulate(lams, seeds, lam_c, slope, args.reps, rng, level)
        print(f"{name}: {len(lams)} lambdas x {seeds} seeds = {sim['runs']} runs, planted rise at {lam_c}, "
              f"slope {slope}, level {level}")
        print(f"  lambda_c: {summary(sim, 'lam_c')}")
        print(f"  slope:    {summary(sim, 'slope')}")
        found = np.isfinite(sim["level"][:, 0])
        print(f"  level:    found below 1 in {found.mean():.0%} of the draws" +
              (f"; then {summary({'level': sim['level'][found], 'level_true': level}, 'level')}"
               if found.any() else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
