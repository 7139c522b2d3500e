"""What a planned grid of runs can resolve about a collapse curve (CPU, a few minutes):

    python -m benchmarks.collapse_design --lam 0.47,0.51,0.54,0.56,0.58,0.62 --seeds 10 --lam-c 0.547 --slope 30.1
    python -m benchmarks.collapse_design --lam 0.5,0.6,0.7,0.8,0.9,1.0 --seeds 12 --lam-c 0.55 --slope 100 --level 0.15
    python -m benchmarks.collapse_design --study     # the Fashion-MNIST study's grids (docs/FINDINGS.md)
    python -m benchmarks.collapse_design --moves docs/analysis/q1_widths_to_0.5/variance_peak_cells.csv \
        --curve model.width --onset fitted,0.533,0.58,0.622

Each run's outcome (collapsed or not) is drawn from a planted curve, P = level expit(slope
(lambda - lambda_c)), and fitted as the analysis fits it (analysis.collapse.fit_logistic, 95%
profile-likelihood intervals): lambda_c is the rise's midpoint (P = level / 2; where P levels
off, the analysis's Logit.midpoint), the slope its steepness. Over --reps draws: the median
width of those intervals, how often each covers the planted value, how often no interval
could be had (a fit refused, or outcomes that separate), and for a level below 1 how often
the analysis finds it, and its interval.

With --moves CELLS_CSV (an analysis's ``*_cells.csv``, one panel), the cells are the runs': each
curve is planted as the analysis fits it (its rise's slope, a step as 100, and its level),
and the collapse outcomes of every cell are drawn again, on that curve's own lambdas and run
counts. Planted at its own midpoint (--onset fitted), how often each rise's interval covers
it and how often the analysis says the rise moves (analysis.collapse.moves); planted with
every curve's rise at one --onset, how often it says so wrongly, and how often the fitted
midpoints of the lowest and the highest rise lie as far apart as the runs' do: a parametric
bootstrap p-value for a common onset at that value, over the draws that level off as the
runs do.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import pandas as pd
from scipy.special import expit

from analysis.collapse import fit_logistic, moves, rises

# The grids of the study's last step (docs/FINDINGS.md), each curve planted as the runs before
# that step described it; name -> (lambdas, runs per lambda, rise midpoint, slope, level). Width 0.25's
# rise was a step (slope >= 13): 100 stands for it. Width 0.5 showed no rise then: planted as
# the small widths looked, an onset near 0.55 to the level of its 2 collapses in 12 runs past
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


STEP = 100.0  # the slope planted for a rise the runs show as a step (its interval open above)


def run_cells(cells_csv: str, curve_key: str, x_key: str = "lam") -> dict:
    """{curve: (lambdas, collapsed, runs)} of an analysis's cells CSV (its own collapse threshold)."""
    df = pd.read_csv(cells_csv)
    df = df[df["n"] > 0]
    return {c: tuple(d[k].to_numpy(float) for k in (x_key, "n_collapsed", "n")) for c, d in df.groupby(curve_key)}


def planted_as_fitted(x, k, n) -> tuple | None:
    """(midpoint, slope, level) of a curve as the analysis fits it; None where P is not shown to rise."""
    fit = fit_logistic(x, k, n, window=False)
    if not rises(fit):
        return None
    slope = fit.steepness[0] if math.isfinite(fit.steepness[2]) else STEP
    return fit.midpoint[0], slope, fit.ceiling[0] if fit.rise else 1.0


def moves_draws(cells: dict, planted: dict, reps: int, rng) -> dict:
    """``reps`` draws of every curve's outcomes from ``planted`` {curve: (midpoint, slope, level)}
    on its own cells, fitted as the analysis fits them. Per draw: whether
    analysis.collapse.moves says YES; per curve and draw: whether the rise interval covers the
    planted midpoint, the fitted midpoint, and whether the analysis finds P levelling off."""
    yes, grid = np.zeros(reps, bool), (min(cells[c][0].min() for c in planted), max(cells[c][0].max() for c in planted))
    cover, mids, levelled = ({c: np.zeros(reps, t) for c in planted} for t in (bool, float, bool))
    for r in range(reps):
        fits = []
        for c, (x0, slope, level) in planted.items():
            x, _, n = cells[c]
            fit = fit_logistic(x, rng.binomial(n.astype(int), level * expit(slope * (x - x0))), n, window=False)
            cover[c][r] = fit.midpoint[1] <= x0 <= fit.midpoint[2]
            mids[c][r], levelled[c][r] = fit.midpoint[0], bool(fit.rise)
            fits.append(fit)
        yes[r] = moves(list(planted), fits, str, grid)[0] == "YES"
    return {"yes": yes, "cover": cover, "midpoints": mids, "levelled": levelled}


def moves_study(args, rng) -> int:
    """--moves: the analysis's moves verdict on the study's own cells, each curve planted as
    fitted, or with every rise at one onset. There, over the draws where the analysis finds
    the same curves levelling off as on the runs (a curve it does not find levelling is
    located by an extrapolated logistic instead, a different report): how often it says YES,
    and how often the fitted midpoints of the lowest and the highest rise lie at least as far
    apart as the runs' (a parametric bootstrap test of a common onset)."""
    cells = run_cells(args.moves, args.curve)
    planted = {c: p for c, (x, k, n) in cells.items() if (p := planted_as_fitted(x, k, n))}
    low, high = min(planted, key=lambda c: planted[c][0]), max(planted, key=lambda c: planted[c][0])
    gap = planted[high][0] - planted[low][0]
    print(f"{args.reps} draws, the cells of {args.moves} ({args.curve})")
    for c, (x0, slope, level) in planted.items():
        print(f"  {args.curve}={c}: {int(cells[c][2].sum())} runs at {cells[c][0].size} lambdas, planted rise "
              f"at {x0:.3f}, slope {slope:.0f}, level {level:.2f}")
    for onset in args.onset:
        plant = planted if onset is None else {c: (onset, s, lv) for c, (_, s, lv) in planted.items()}
        d = moves_draws(cells, plant, args.reps, rng)
        covers = ", ".join(f"{v.mean():.0%} ({c})" for c, v in d["cover"].items())
        same = np.logical_and.reduce([d["levelled"][c] == (planted[c][2] < 1) for c in planted])
        head = "as fitted" if onset is None else f"every rise at {onset}"
        print(f"{head}: the rise interval covers the planted midpoint in {covers}; moves says YES in "
              f"{d['yes'].mean():.0%} of all draws")
        if same.any():
            apart = d["midpoints"][high][same] - d["midpoints"][low][same] >= gap
            print(f"  in the {same.sum()} draws levelling off as the runs do: YES in {d['yes'][same].mean():.0%}, "
                  f"the midpoints of {args.curve}={high} and {low} {gap:.3f} or more apart in {apart.mean():.1%}")
    return 0


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
    ap.add_argument("--moves", metavar="CELLS_CSV", help="an analysis's *_cells.csv: test its moves verdict")
    ap.add_argument("--curve", default="model.width", help="with --moves: the curve column (default model.width)")
    ap.add_argument("--onset", type=lambda v: [None if t == "fitted" else float(t) for t in v.split(",")],
                    help="with --moves: comma-separated midpoints, each planted for every rise at once "
                         "('fitted': each curve at its own)")
    ap.add_argument("--reps", type=int, default=400, help="draws per grid (default 400)")
    ap.add_argument("--seed", type=int, default=0, help="RNG seed (default 0)")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    if args.moves:
        if args.onset is None:
            ap.error("--moves needs --onset")
        return moves_study(args, rng)
    if args.study == bool(args.lam):
        ap.error("give --study, --moves, or one grid as --lam with --lam-c and --slope")
    if args.lam and (args.lam_c is None or args.slope is None):
        ap.error("--lam needs --lam-c and --slope")
    if args.study:
        plans = {k: (lams, args.seeds or seeds, *planted) for k, (lams, seeds, *planted) in STUDY.items()}
    else:
        plans = {"grid": ([float(v) for v in args.lam.split(",")], args.seeds or 10, args.lam_c, args.slope,
                          args.level)}
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
