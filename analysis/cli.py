"""The command line every analysis script shares: its options, checked before any work (a
problem is one line and exit code 2), and loading the runs an analysis uses."""

from __future__ import annotations

import argparse
import os
import re
import sys
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis.output import Echo
from analysis.runs import CHANCE_ERROR, AnalysisError, CollectReport, collect, pooled_keys, select


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``prog: error: ...``)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def parser(prog: str, description: str, out_file: str | None = None, dirs: str = "DIR") -> OneLineParser:
    """The folders to read and ``--out``: a folder, or with ``out_file`` a file (default: that
    name under ``<first DIR>/analysis``)."""
    p = OneLineParser(prog=prog, description=description)
    p.add_argument("dirs", nargs="+", metavar=dirs, help="output folders or notebook files (searched recursively)")
    where = f"<first {dirs}>/analysis" + (f"/{out_file}" if out_file else "")
    p.add_argument("--out", help=f"{'file to write' if out_file else 'output folder'} (default: {where})")
    p.set_defaults(out_file=out_file)
    return p


def add_metric(p) -> None:
    p.add_argument("--metric", default="best_error", help="result field to analyse (default: best_error)")


def add_bootstrap(p) -> None:
    p.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--boot-seed", type=int, default=0, help="bootstrap RNG seed (default 0)")
    p.add_argument("--confidence", type=float, default=0.95, help="interval level, between 0 and 1 (default 0.95)")


def script_parser(prog: str, description: str) -> OneLineParser:
    """The options of the figure scripts (variance_peak, phase_boundary); each adds its own."""
    p = parser(prog, description)
    add_metric(p)
    add = p.add_argument
    add("--panel-key", default="noise.rate", help="one row of panels per value; 'none' for one row")
    add("--x-key", default="lam", help="x axis (default: lam)")
    add("--where", action="append", default=[], metavar="KEY=VALUE",
        help="keep only runs with KEY=VALUE (also !=, and <, <=, >, >= for numbers: 'lam<=0.9'; repeatable)")
    add("--diverged", choices=("count", "exclude"), default="count", help="diverged runs: count them or leave them out")
    add("--chance-error", type=float, default=CHANCE_ERROR,
        help=f"error of a diverged run where nothing was measured (default {CHANCE_ERROR:g} = 1 - 1/classes)")
    add_bootstrap(p)
    add("--pdf", action="store_true", help="also write the figures as PDF")
    add("--suggest", type=int, default=0, metavar="N", help="print N new lambda values per curve for the next sweep")
    add("--experiment-dir", metavar="DIR",
        help="with --suggest: also write them as Hydra experiment files here (e.g. conf/experiment), one per curve")
    add("--span", action="store_true",
        help="with --suggest N: N values spread evenly in P(collapse) from 0.1 to 0.9 of each curve's fitted "
             "rise (of its level, where P levels off below 1: the transition's shape), instead of inside the "
             "interval of its estimate")
    add("--seeds", type=int, default=0, metavar="N",
        help="with --experiment-dir: seeds 0..N-1 in the files (default: the seeds the runs used)")
    return p


def main(parser: argparse.ArgumentParser, run, argv=None) -> int:
    """A script's ``main``: parse ``argv``, :func:`check` it, then ``run(args)``; an
    :class:`AnalysisError` is one line on stderr and exit code 2."""
    args = parser.parse_args(argv)
    try:
        check(args)
        return run(args)
    except AnalysisError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2


def check(args) -> None:
    """Check the options a parser of this module gave, before any work (ranges, ``--out``
    writable), and fill in ``--out`` and ``--panel-key none``."""
    if not 0 < getattr(args, "confidence", 0.5) < 1:
        raise AnalysisError(f"--confidence {args.confidence}: must be between 0 and 1 (0.95 means 95%)")
    if getattr(args, "n_boot", 0) < 0 or getattr(args, "suggest", 0) < 0:
        raise AnalysisError("--n-boot and --suggest must be >= 0")
    if getattr(args, "experiment_dir", None) and not args.suggest:
        raise AnalysisError("--experiment-dir writes the --suggest N values: give --suggest N")
    if getattr(args, "span", False) and not args.suggest:
        raise AnalysisError("--span places the --suggest N values: give --suggest N")
    if getattr(args, "seeds", 0) and not getattr(args, "experiment_dir", None):
        raise AnalysisError("--seeds sets the seeds of the --experiment-dir files: give --experiment-dir")
    if getattr(args, "seeds", 0) < 0:
        raise AnalysisError("--seeds must be >= 0")
    if hasattr(args, "panel_key"):
        args.panel_key = None if args.panel_key in ("none", "None", "") else args.panel_key
    first = args.dirs[0]
    folder = os.path.join(os.path.dirname(os.path.abspath(first)) if os.path.isfile(first) else first, "analysis")
    args.out = args.out or (os.path.join(folder, args.out_file) if args.out_file else folder)
    check_writable(args.out, "--out", folder=args.out_file is None)
    if getattr(args, "experiment_dir", None):
        check_writable(args.experiment_dir, "--experiment-dir", folder=True)


def check_writable(path: str, option: str, folder: bool) -> None:
    """Refuse, before any work, an output path that cannot be written: an existing file where
    a folder is wanted (or the reverse), or a file on the way to it."""
    path = os.path.abspath(path)
    if os.path.exists(path) and os.path.isdir(path) != folder:
        raise AnalysisError(f"{option} {path}: is {'a file' if folder else 'a folder'}; "
                            f"give {'a folder' if folder else 'a file name'}")
    parent = path if folder else os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise AnalysisError(f"{option} {path}: cannot write under {parent} "
                            f"({'a file' if not os.path.isdir(parent) else 'not writable'})")


def collected(dirs, all_keys: bool = True) -> tuple[pd.DataFrame, CollectReport]:
    """:func:`analysis.runs.collect`, refusing an empty result."""
    table, report = collect(dirs, all_keys=all_keys)
    if table.empty:
        why = "; ".join(f"{p}: {r}" for p, r in report.bad_files[:3])
        more = f" (and {len(report.bad_files) - 3} more)" if len(report.bad_files) > 3 else ""
        raise AnalysisError(f"no finished runs found under {', '.join(dirs)} ({report.skipped()})"
                            + (f"; unreadable: {why}{more}" if why else ""))
    return table, report


# --------------------------------------------------------------------------- loading


@dataclass
class Runs:
    """The runs an analysis uses: ``df`` has one row per run and the analysed value in ``y``."""

    df: pd.DataFrame
    report: CollectReport
    notes: list[str] = field(default_factory=list)


WHERE = re.compile(r"^\s*([^<>=!]+?)\s*(<=|>=|!=|=|<|>)\s*(.+?)\s*$")
COMPARE = {"<=": np.less_equal, ">=": np.greater_equal, "<": np.less, ">": np.greater}


def where(table: pd.DataFrame, items: list[str], known: str) -> tuple[pd.DataFrame, list[str]]:
    """``--where KEY=VALUE`` (or !=, and <, <=, >, >= for numbers) filters; numbers compared
    as numbers."""
    notes = []
    for item in items:
        m = WHERE.match(item)
        if not m:
            raise AnalysisError(f"--where {item!r}: expected KEY=VALUE, KEY!=VALUE or KEY<=VALUE (also <, >, >=)")
        key, op, value = m.groups()
        if key not in table:
            raise AnalysisError(f"--where: unknown key {key!r}; {known}")
        numbers = pd.to_numeric(table[key], errors="coerce").to_numpy(float)
        try:
            number = float(value)
        except ValueError:
            number = None
        if op in COMPARE and (number is None or np.isnan(numbers).all()):
            raise AnalysisError(f"--where {item!r}: {op} compares numbers; {key} or {value!r} is not a number")
        equal = (np.isclose(numbers, number, rtol=1e-9, atol=1e-12) if number is not None
                 else table[key].astype(str).to_numpy() == value)
        if op in COMPARE:  # a value within rounding of the bound counts as equal to it
            mask = (COMPARE[op](numbers, number) & ~equal) | (equal & ("=" in op))
        else:
            mask = ~equal if op == "!=" else equal
        notes.append(f"--where {key}{op}{value}: kept {int(mask.sum())} of {len(table)} runs")
        table = table[mask]
    return table, notes


def start(args, curve_option: str, curve_key: str, header: str):
    """Collect the runs under ``args.dirs`` for one analysis and check the keys; print the
    header, the collect report and what was done with the runs (``Echo``, :class:`Runs`)."""
    keys = {curve_option: curve_key, "--panel-key": args.panel_key, "--x-key": args.x_key}
    table, report = collected(args.dirs)
    known = "keys that vary in these runs: " + ", ".join(report.varying_keys)
    table, notes = where(table, args.where, known)
    if table.empty:
        raise AnalysisError("no runs left after --where " + " ".join(args.where))
    if args.metric not in table:
        numeric = [c for c in ("best_error", "test_error", "best_acc", "test_acc", "avg_cos_struct_value")
                   if c in table]
        raise AnalysisError(f"--metric: unknown result field {args.metric!r}; numeric fields: {', '.join(numeric)}")
    for option, key in keys.items():
        if key is not None and key not in table:
            raise AnalysisError(f"{option}: unknown key {key!r}; {known}")
    echo = Echo()
    echo("=" * 70 + f"\n{header}\n" + "=" * 70)
    for line in report.lines():
        echo(line)
    table, more = select(table, args.metric, args.diverged, args.chance_error)
    notes += more
    if "deterministic" in table:  # records from before train.deterministic: not deterministic
        det = table["deterministic"].astype(object).eq(True)
        if det.any() and not det.all():
            notes.append(f"WARNING: {int(det.sum())} runs used deterministic kernels and {int((~det).sum())} "
                         f"did not (train.deterministic false, or records from before it): those cannot be "
                         f"reproduced; restrict with --where deterministic=True")
    used = [k for k in keys.values() if k is not None]
    for key in used:
        if pd.api.types.is_float_dtype(table[key]):
            table[key] = table[key].round(10)  # 0.44000000000000006 and 0.44 are one cell
        if table[key].isna().any():
            notes.append(f"{int(table[key].isna().sum())} run(s) without {key} left out")
            table = table[table[key].notna()]
    if table.empty:
        raise AnalysisError(f"no runs with {args.metric} and {', '.join(used)} left to analyse")
    for key, values in pooled_keys(table, args.panel_key, used, report.config_keys).items():
        notes.append(f"WARNING: runs compared in one panel differ in {key} ({', '.join(values[:6])}"
                     f"{' ...' if len(values) > 6 else ''}): they come from different experiments; "
                     f"restrict with --where {key}=VALUE or group by it")
    for note in notes:
        echo(note)
    return echo, Runs(table.reset_index(drop=True), report, notes)
