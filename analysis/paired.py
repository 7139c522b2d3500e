"""Does one setting move the transition? Two values of one key (default train.precision,
bf16 against fp32) compared on runs paired by (lambda, seed): same noisy labels, initial
weights and data order, so seed-to-seed spread cancels in each difference.

    python -m analysis.paired DIR [--key train.precision] [--a bf16] [--b fp32] [--threshold 0.25]

Prints and writes (to DIR/analysis/paired.csv):
- per lambda: mean of (a - b) over the paired seeds, with a bootstrap interval over pairs;
- lambda_c under each value (crossing of --threshold by the mean error against lambda, as
  phase_boundary finds it: a logistic's crossing, or the means' own where the logistic misses)
  and the variance-peak lambda (std over seeds), each with an interval, and the difference
  a - b with an interval. Seeds are resampled jointly for both values (the pairing is kept),
  2000 times by default.
"""

import math
import warnings

import numpy as np
import pandas as pd

from analysis import cli
from analysis import stats as S
from analysis.output import write_table
from analysis.runs import AnalysisError, select


def paired_table(df, key, a, b, x_key):
    """Rows (x, seed) with columns a and b: the analysed value of each, only complete pairs."""
    wide = df[df[key].astype(str).isin([a, b])].pivot_table(index=[x_key, "seed"], columns=key, values="y",
                                                             aggfunc="first")
    wide.columns = [str(c) for c in wide.columns]
    if a not in wide or b not in wide:
        raise AnalysisError(f"need runs with {key}={a} and {key}={b}")
    return wide[[a, b]].dropna()


def curve_stats(runs, xs, threshold):
    """lambda_c and the peak lambda of runs (..., seeds, xs), NaN where a run is missing."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an x without runs, or with one
        mean, std, n = np.nanmean(runs, -2), np.nanstd(runs, -2, ddof=1), (~np.isnan(runs)).sum(-2)
    lam_c = S.batched(mean.shape[:-1], lambda i: [S.threshold_crossing(xs, mean[i], n[i], threshold)], 1)[0]
    return lam_c, S.peak(std, xs)[2]


def analyse(wide, a, b, threshold, n_boot, seed, confidence):
    opts = {"n_boot": n_boot, "seed": seed, "confidence": confidence}
    xs = np.array(sorted(wide.index.get_level_values(0).unique()), float)
    diffs = [d.to_numpy() for _, d in (wide[a] - wide[b]).groupby(level=0)]
    per_x = S.bootstrap_cells(diffs, lambda cells: np.stack([c.mean(-1) for c in cells]), **opts)
    rows = [{"quantity": f"mean {a} - {b}", "lam": x, "estimate": per_x.point[i], "n_pairs": diffs[i].size,
             "lo": per_x.low[i], "hi": per_x.high[i]} for i, x in enumerate(xs)]
    by_seed = [wide[c].unstack(level=0).reindex(columns=xs).to_numpy(float) for c in (a, b)]  # seeds x xs

    def statistic(samples):  # samples: resampled seed indices; each drawn seed brings both of its runs
        (lc_a, pk_a), (lc_b, pk_b) = (curve_stats(m[samples[0].astype(int)], xs, threshold) for m in by_seed)
        return np.stack([lc_a, pk_a, lc_b, pk_b, lc_a - lc_b, pk_a - pk_b])

    joint = S.bootstrap_cells([np.arange(len(by_seed[0]))], statistic, **opts)
    for i, name in enumerate(("lambda_c", "peak lambda")):
        for j, label in enumerate((a, b, f"{a} - {b}")):
            e, lo, hi = joint.estimate(2 * j + i)
            failed = 0 if joint.dist is None else int(np.isnan(joint.dist[2 * j + i]).sum())
            rows.append({"quantity": f"{name} ({label})", "estimate": e, "n_pairs": len(wide), "lo": lo, "hi": hi,
                         "failed_resamples": failed})
    return pd.DataFrame(rows)


def run(args):
    table, _ = cli.collected(args.dirs)
    df, notes = select(table, args.metric, "count")
    for note in notes:
        print(note)
    wide = paired_table(df, args.key, args.a, args.b, args.x_key)
    result = analyse(wide, args.a, args.b, args.threshold, args.n_boot, args.boot_seed, args.confidence)
    print(f"{len(wide)} pairs ({args.key}={args.a} vs {args.b}, matched by {args.x_key} and seed); "
          f"{args.metric}; {args.confidence:.0%} percentile bootstrap over pairs/seeds, {args.n_boot} resamples")
    for r in result.itertuples():
        where = f" at {args.x_key}={r.lam:g}" if isinstance(r.lam, float) and not math.isnan(r.lam) else ""
        print(f"  {r.quantity}{where}: {r.estimate:+.4f} [{r.lo:+.4f}, {r.hi:+.4f}] (n={r.n_pairs})")
    print(f"wrote {write_table(result, args.out)}")
    return 0


def main(argv=None):
    parser = cli.parser("python -m analysis.paired", __doc__.splitlines()[0], out_file="paired.csv")
    cli.add_metric(parser)
    cli.add_bootstrap(parser)
    parser.add_argument("--key", default="train.precision", help="the setting compared (default: train.precision)")
    parser.add_argument("--a", default="bf16", help="its first value (default: bf16)")
    parser.add_argument("--b", default="fp32", help="its second value (default: fp32)")
    parser.add_argument("--x-key", default="lam", help="the pairs' x (default: lam)")
    parser.add_argument("--threshold", type=float, default=0.25, help="error threshold of lambda_c (default 0.25)")
    return cli.main(parser, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
