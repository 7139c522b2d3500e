"""One table from output folders and notebook result files: one row per finished run.

    python -m analysis.collect DIR... [--out runs.csv | runs.parquet] [--all-keys]

Writes the table in the format its extension names (default ``<first DIR>/analysis/runs.csv``),
says what it wrote, and prints what was found and skipped (see :mod:`analysis.runs`).
"""

from __future__ import annotations

import os
import sys

from analysis import report as R
from analysis.runs import AnalysisError, collect


def main(argv=None) -> int:
    parser = R.OneLineParser(prog="python -m analysis.collect", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", metavar="DIR", help="output folders (searched recursively) or files")
    parser.add_argument("--out", help="table to write: .csv or .parquet (default: <first DIR>/analysis/runs.csv)")
    parser.add_argument("--all-keys", action="store_true", help="keep config keys that are the same in every run")
    args = parser.parse_args(argv)

    def run():
        out = args.out or os.path.join(R.default_out_dir(args.dirs), "runs.csv")
        if not out.endswith((".csv", ".parquet")):
            raise AnalysisError(f"--out {out}: the table's format comes from its extension: .csv or .parquet")
        R.check_writable(out, "--out", folder=False)
        if out.endswith(".parquet"):
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise AnalysisError(
                    f"--out {out}: writing Parquet needs pyarrow (pip install pyarrow); or use .csv"
                ) from None
        table, report = collect(args.dirs, all_keys=args.all_keys)
        if table.empty:
            raise AnalysisError(f"no finished runs found under {', '.join(args.dirs)} ({report.skipped()})")
        print("\n".join(report.lines()))
        if report.constant_keys and not args.all_keys:
            print(
                "same in every run (not columns; --all-keys keeps them): "
                + ", ".join(f"{k}={v}" for k, v in report.constant_keys.items())
            )
        print(f"wrote {R.write_table(table, out)} ({len(table)} runs, {len(table.columns)} columns)")
        return 0

    return R.run_cli(parser.prog, run)


if __name__ == "__main__":
    sys.exit(main())
