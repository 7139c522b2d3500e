"""One table from output folders and notebook result files: one row per finished run.

    python -m analysis.collect DIR... [--out runs.csv | runs.parquet] [--all-keys]

Writes the table in the format its extension names (default ``<first DIR>/analysis/runs.csv``),
says what it wrote, and prints what was found and skipped (see :mod:`analysis.runs`).
"""

from __future__ import annotations

import sys

from analysis import cli
from analysis.output import write_table
from analysis.runs import AnalysisError


def main(argv=None) -> int:
    parser = cli.parser("python -m analysis.collect", __doc__.splitlines()[0], out_file="runs.csv")
    parser.add_argument("--all-keys", action="store_true", help="keep config keys that are the same in every run")

    def run(args):
        if not args.out.endswith((".csv", ".parquet")):
            raise AnalysisError(f"--out {args.out}: the table's format comes from its extension: .csv or .parquet")
        if args.out.endswith(".parquet"):
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise AnalysisError(f"--out {args.out}: writing Parquet needs pyarrow (pip install pyarrow); "
                                    "or use .csv") from None
        table, report = cli.collected(args.dirs, all_keys=args.all_keys)
        print("\n".join(report.lines()))
        if report.constant_keys and not args.all_keys:
            print("same in every run (not columns; --all-keys keeps them): "
                  + ", ".join(f"{k}={v}" for k, v in report.constant_keys.items()))
        print(f"wrote {write_table(table, args.out)} ({len(table)} runs, {len(table.columns)} columns)")
        return 0

    return cli.main(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
