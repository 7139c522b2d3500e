"""Does one setting move the transition? Two values of one key (default train.precision,
bf16 against fp32) compared on runs paired by (lambda, seed): same noisy labels, initial
weights and data order, so seed-to-seed spread cancels in each difference.

    python -m analysis.paired DIR [--key train.precision] [--a bf16] [--b fp32] [--threshold 0.25]

Prints and writes (to DIR/analysis/paired.csv):
- per lambda: mean of (a - b) over the paired seeds, with a bootstrap interval over pairs;
- lambda_c under each value (crossing of --threshold by the mean error against lambda, as
  phase_boundary finds it: a logistic's crossing, or the means' own where the logistic misses) and the variance-peak lambda (std over seeds), each
  with an interval, and the difference a - b with an interval. Seeds are resampled jointly for
  both values (the pairing is kept), 2000 times by default.
"""

import math

import numpy as np
import pandas as pd

from analysis.report import OneLineParser, check_writable, run_cli, write_table
from analysis.runs import AnalysisError, collect, select
from analysis.stats import peak, threshold_crossing


def paired_table(df, key, a, b, x_key):
    """Rows (x, seed) with columns a and b: the analysed value of each, only complete pairs."""
    wide = df[df[key].astype(str).isin([a, b])].pivot_table(index=[x_key, "seed"], columns=key, values="y",
                                                             aggfunc="first")
    wide.columns = [str(c) for c in wide.columns]
    if a not in wide or b not in wide:
        raise AnalysisError(f"need runs with {key}={a} and {key}={b}")
    return wide[[a, b]].dropna()


def curve_stats(wide, col, xs, threshold):
    """(lambda_c, peak lambda) of one column of a paired table."""
    g = wide[col].groupby(level=0)
    mean, std, n = (g.agg(f).reindex(xs).to_numpy(float) for f in ("mean", "std", "count"))
    lam_c = threshold_crossing(xs, mean, n, threshold)
    _, _, where = peak(std[None, :], xs)
    return lam_c, float(where[0])


def analyse(wide, a, b, threshold, n_boot, seed, confidence):
    xs = np.array(sorted(wide.index.get_level_values(0).unique()), float)
    seeds = np.array(sorted(wide.index.get_level_values(1).unique()))
    rng = np.random.default_rng(seed)
    q = [(1 - confidence) / 2 * 100, (1 + confidence) / 2 * 100]
    rows = []
    diff = (wide[a] - wide[b]).groupby(level=0)
    for x in xs:
        d = diff.get_group(x).to_numpy()
        boots = rng.choice(d, (n_boot, d.size)).mean(1)
        rows.append({"quantity": f"mean {a} - {b}", "lam": x, "estimate": d.mean(), "n_pairs": d.size,
                     **dict(zip(("lo", "hi"), np.percentile(boots, q)))})
    point = {c: curve_stats(wide, c, xs, threshold) for c in (a, b)}
    boots = []
    for _ in range(n_boot):  # resample seeds; each drawn seed brings both of its runs
        pick = rng.choice(seeds, seeds.size)
        sample = pd.concat([wide.xs(s, level=1, drop_level=False) for s in pick])
        sample.index = pd.MultiIndex.from_arrays([sample.index.get_level_values(0), np.arange(len(sample))])
        boots.append([v for c in (a, b) for v in curve_stats(sample, c, xs, threshold)])
    boots = np.array(boots)
    names = ["lambda_c", "peak lambda"]
    for i, name in enumerate(names):
        for j, (label, est) in enumerate(((a, point[a][i]), (b, point[b][i]))):
            col = boots[:, 2 * j + i]
            rows.append({"quantity": f"{name} ({label})", "estimate": est, "n_pairs": len(wide),
                         "failed_resamples": int(np.isnan(col).sum()),
                         **dict(zip(("lo", "hi"), np.nanpercentile(col, q)))})
        col = boots[:, i] - boots[:, 2 + i]
        rows.append({"quantity": f"{name} ({a} - {b})", "estimate": point[a][i] - point[b][i],
                     "n_pairs": len(wide), "failed_resamples": int(np.isnan(col).sum()),
                     **dict(zip(("lo", "hi"), np.nanpercentile(col, q)))})
    return pd.DataFrame(rows)


def main(argv=None):
    ap = OneLineParser(prog="python -m analysis.paired", description=__doc__.splitlines()[0])
    ap.add_argument("dirs", nargs="+", metavar="DIR")
    ap.add_argument("--key", default="train.precision")
    ap.add_argument("--a", default="bf16")
    ap.add_argument("--b", default="fp32")
    ap.add_argument("--x-key", default="lam")
    ap.add_argument("--metric", default="best_error")
    ap.add_argument("--threshold", type=float, default=0.25)
    ap.add_argument("--n-boot", type=int, default=2000)
    ap.add_argument("--boot-seed", type=int, default=0)
    ap.add_argument("--confidence", type=float, default=0.95)
    ap.add_argument("--out", help="CSV file (default: <first DIR>/analysis/paired.csv)")
    args = ap.parse_args(argv)
    if not 0 < args.confidence < 1:
        ap.error(f"--confidence {args.confidence} is not allowed (allowed: between 0 and 1)")

    def go():
        out = args.out or f"{args.dirs[0].rstrip('/')}/analysis/paired.csv"
        check_writable(out, "--out", folder=False)  # before any work
        table, _ = collect(args.dirs, all_keys=True)
        df, notes = select(table, args.metric, "count", 0.9)
        for note in notes:
            print(note)
        wide = paired_table(df, args.key, args.a, args.b, args.x_key)
        result = analyse(wide, args.a, args.b, args.threshold, args.n_boot, args.boot_seed, args.confidence)
        pct = f"{args.confidence:.0%}"
        print(f"{len(wide)} pairs ({args.key}={args.a} vs {args.b}, matched by {args.x_key} and seed); "
              f"{args.metric}; {pct} percentile bootstrap over pairs/seeds, {args.n_boot} resamples")
        for r in result.itertuples():
            where = f" at {args.x_key}={r.lam:g}" if isinstance(r.lam, float) and not math.isnan(r.lam) else ""
            print(f"  {r.quantity}{where}: {r.estimate:+.4f} [{r.lo:+.4f}, {r.hi:+.4f}] (n={r.n_pairs})")
        print(f"wrote {write_table(result, out)}")
        return 0

    return run_cli("analysis.paired", go)


if __name__ == "__main__":
    raise SystemExit(main())
