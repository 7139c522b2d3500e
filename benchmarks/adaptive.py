"""The adaptive sweep's decisions on planted response curves (CPU, seconds):

    python -m benchmarks.adaptive [--reps 3] [--target 0.02] [--max-runs 150] [--shapes smooth,...] [--json FILE]

Three shapes, as seen on real data: `smooth` (the mean error rises smoothly through lambda_c,
each run scattered around it), `collapse` (each run either stays on the low plateau or
collapses to chance, with a probability that rises with lambda, 0.5 at lambda_c) and
`plateau` (the collapse probability rises from 0 to a plateau of 0.5 at lambda_c and stays
there, as on Fashion-MNIST at width 0.25: lambda_c(P=0.5) is not resolvable, and the sweep
should say so and stop at the budget). The planted
lambda_c values lie inside the Q1 notebook's grid (0.42..0.50, step 0.02) and outside it.
For each curve: the runs the adaptive rounds (analysis.adaptive.decide, one curve alone,
max_runs per curve) need to reach an interval of at most --target, and that interval; against
the interval the fixed grid (5 lambdas x 10 seeds = 50 runs) reaches, with the same statistics.
A curve counts as located when its interval is closed and at most --target wide; `covers`
says whether it holds the planted lambda_c; `rounds` counts the adaptive rounds (on a GPU each
one relaunches the workers); `flat` whether the last decision names a flat collapse probability.
"""

from __future__ import annotations

import argparse
import json
import math
import time

import numpy as np
from scipy.special import expit

from analysis.adaptive import Options, decide, estimate

GRID = (0.42, 0.50)  # the notebook's lambda grid at noise 0.4 (5 values, step 0.02)
LOW, HIGH = 0.15, 0.90  # plateau and chance: the default threshold (midway) sits at P = 0.5
TRUE = (0.431, 0.457, 0.489, 0.535, 0.395)  # three inside the grid, one above it, one below
SHAPES = ("smooth", "collapse", "plateau")


def planted(shape: str, lam_c: float, width: float = 0.01):
    """error(lambda, seed) of a planted curve, deterministic in (lambda, seed)."""

    def error(lam: float, seed: int, rep: int = 0) -> float:
        rng = np.random.default_rng([rep, seed, int(round(lam * 1e4)), 7 if shape == "smooth" else 11])
        p = float(expit((lam - lam_c) / width))
        if shape == "smooth":
            return float(LOW + (HIGH - LOW) * p + rng.normal(0, 0.04))
        collapsed = rng.random() < (0.5 * p if shape == "plateau" else p)
        return float(rng.normal(0.88, 0.02) if collapsed else rng.normal(LOW, 0.01))

    return error


def fixed_grid(error, opt: Options, rep: int):
    runs = [(x, s, error(x, s, rep)) for x in np.linspace(*GRID, 5).round(4) for s in range(10)]
    return len(runs), estimate(runs, opt)


def adaptive(error, opt: Options, rep: int, max_rounds: int = 30):
    """Rounds as the sweeper runs them (at most max_rounds): runs, the last estimate, rounds, the last decision."""
    runs, rounds = [], 0
    while True:
        d = decide({"c": runs}, {"c": GRID}, opt, planned=len(runs))
        if not d.jobs or rounds == max_rounds:
            return len(runs), d.estimates["c"], rounds, d
        runs += [(lam, s, error(lam, s, rep)) for _, lam, s in d.jobs]
        rounds += 1


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=3, help="independent draws of every planted curve")
    ap.add_argument("--target", type=float, default=0.02)
    ap.add_argument("--max-runs", type=int, default=150, help="budget per curve")
    ap.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated, of " + ",".join(SHAPES))
    ap.add_argument("--json", help="write every row here")
    args = ap.parse_args(argv)
    opt = Options(target_width=args.target, max_runs=args.max_runs, threshold=0.5 * (LOW + HIGH))
    rows, t0, shapes = [], time.time(), args.shapes.split(",")
    print(f"{'shape':8s} {'lam_c':>6s} rep | {'fixed grid: runs':>16s} {'width':>7s} cov | "
          f"{'adaptive: runs':>14s} {'width':>7s} cov rounds flat")
    for shape in shapes:
        for lc in TRUE:
            for rep in range(args.reps):
                err = planted(shape, lc)
                nf, ef = fixed_grid(err, opt, rep)
                na, ea, rounds, last = adaptive(err, opt, rep)
                row = {"shape": shape, "true": lc, "rep": rep, "fixed_runs": nf, "fixed_width": ef.width,
                       "fixed_covers": bool(ef.lam_c[1] <= lc <= ef.lam_c[2]), "adaptive_runs": na,
                       "adaptive_width": ea.width, "adaptive_covers": bool(ea.lam_c[1] <= lc <= ea.lam_c[2]),
                       "adaptive_method": ea.method, "fixed_method": ef.method, "rounds": rounds,
                       "flat": "flat" in " ".join([last.stop, *last.reasons.values()])}
                rows.append(row)
                print(f"{shape:8s} {lc:6.3f} {rep:3d} | {nf:16d} {ef.width:7.4f} {'yes' if row['fixed_covers'] else 'no ':3s} | "
                      f"{na:14d} {ea.width:7.4f} {'yes' if row['adaptive_covers'] else 'no ':3s} {rounds:6d} {'yes' if row['flat'] else 'no'}",
                      flush=True)
    print("\nper shape (median over curves and draws):")
    for shape in shapes:
        sub = [r for r in rows if r["shape"] == shape]
        for where, keep in (("inside the grid", lambda r: GRID[0] <= r["true"] <= GRID[1]),
                            ("outside the grid", lambda r: not GRID[0] <= r["true"] <= GRID[1])):
            s = [r for r in sub if keep(r)]
            fw = [r["fixed_width"] for r in s]
            fixed_loc = sum(math.isfinite(w) and w <= args.target for w in fw)
            ad_loc = sum(r["adaptive_width"] <= args.target for r in s)
            print(f"  {shape:8s} {where:16s}: fixed grid 50 runs, width median {np.median(fw):.4f}, "
                  f"{fixed_loc}/{len(s)} located, {sum(r['fixed_covers'] for r in s)}/{len(s)} cover | adaptive "
                  f"runs median {np.median([r['adaptive_runs'] for r in s]):.0f} "
                  f"(max {max(r['adaptive_runs'] for r in s)}), width median "
                  f"{np.median([r['adaptive_width'] for r in s]):.4f}, {ad_loc}/{len(s)} located, "
                  f"{sum(r['adaptive_covers'] for r in s)}/{len(s)} cover, rounds median "
                  f"{np.median([r['rounds'] for r in s]):.0f} (max {max(r['rounds'] for r in s)}), "
                  f"{sum(r['flat'] for r in s)}/{len(s)} flat named")
    print(f"({time.time() - t0:.0f} s)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
