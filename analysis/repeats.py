"""How far apart are runs of one config? On a GPU two runs of the same config (same seed) are
not the same computation to the bit (autotuned kernels, atomics), and near a transition the
training can carry that difference to another outcome. This puts a number on it.

    python -m analysis.repeats SWEEP_DIR... [--metric best_error] [--out CSV]

Runs are the same config when their result.json's ``fingerprint`` is equal (the resolved
config without the keys that do not change what is computed, so reruns under another `name`
are repeats). Each SWEEP_DIR is read on its own: inside one folder the analyses keep one run
per config, so give each repeat's sweep folder. Prints and writes per config with at least
two runs: n, mean, std (ddof 1), min and max of the metric, and the folders the runs came from.
"""

import pandas as pd

from analysis import cli
from analysis.output import write_table
from analysis.runs import AnalysisError, collect, select


def repeats(dirs, metric: str = "best_error") -> tuple[pd.DataFrame, list[str]]:
    """(one row per config run more than once, notes on what was left out)."""
    tables, notes = [], []
    for d in dirs:
        table, report = collect([d], all_keys=True)
        if report.duplicates:
            notes.append(f"{d}: {sum(len(x) for _, x in report.duplicates)} run(s) of a config already in it "
                         "were left out: give each sweep folder separately")
        tables.append(table.assign(folder=d))
    df, more = select(pd.concat(tables, ignore_index=True), metric, "count")
    notes += more
    missing = df["fingerprint"].isna() if "fingerprint" in df else pd.Series(True, index=df.index)
    if missing.any():
        notes.append(f"{int(missing.sum())} run(s) without a fingerprint (notebook files or older records) left out")
    df = df[~missing]
    varying = [k for k in ("lam", "lr", "model.width", "noise.rate", "seed", "train.precision") if k in df]
    rows = []
    for fp, g in df.groupby("fingerprint", sort=False):
        if len(g) < 2:
            continue
        y = g["y"]
        rows.append({**{k: g[k].iloc[0] for k in varying}, "fingerprint": fp, "n": len(g), "mean": y.mean(),
                     "std": y.std(ddof=1), "min": y.min(), "max": y.max(), "folders": " ".join(g["folder"])})
    if not rows:
        raise AnalysisError(f"no config was run more than once in {', '.join(dirs)}")
    return pd.DataFrame(rows).sort_values(varying).reset_index(drop=True), notes


def run(args):
    table, notes = repeats(args.dirs, args.metric)
    for note in notes:
        print(note)
    print(f"{len(table)} config(s) run more than once; {args.metric} over the repeats of each")
    print(table.drop(columns=["fingerprint", "folders"]).to_string(index=False, float_format="%.4f"))
    print(f"wrote {write_table(table, args.out)}")
    return 0


def main(argv=None):
    parser = cli.parser("python -m analysis.repeats", __doc__.splitlines()[0], out_file="repeats.csv", dirs="SWEEP_DIR")
    cli.add_metric(parser)
    return cli.main(parser, run, argv)


if __name__ == "__main__":
    raise SystemExit(main())
