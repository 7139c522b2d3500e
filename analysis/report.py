"""The command line and the report: the options both scripts take, checked before any work;
loading the runs an analysis uses; the printed summary; and every output file, written
atomically (figures, CSVs, the Markdown report)."""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
import tempfile
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis import figures as FG
from analysis.runs import AnalysisError, CollectReport, collect, pooled_keys, select

#: Chance-level error (1 - 1/classes) by dataset, for diverged runs with nothing measured.
CHANCE_ERROR = {"cifar10": 0.9, "cifar100": 0.99, "fashion_mnist": 0.9, "synthetic": 0.9}

# --------------------------------------------------------------------------- command line


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``prog: error: ...``)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def run_cli(prog: str, fn) -> int:
    """Run ``fn()``; an :class:`AnalysisError` becomes one line on stderr and exit code 2."""
    try:
        return fn()
    except AnalysisError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        return 2


def check_writable(path: str, option: str, folder: bool) -> None:
    """Refuse, before any work, an output path that cannot be written: an existing file where
    a folder is wanted (or the reverse), or a file on the way to it."""
    path = os.path.abspath(path)
    if os.path.exists(path) and os.path.isdir(path) != folder:
        raise AnalysisError(
            f"{option} {path}: is {'a file' if folder else 'a folder'}; give {'a folder' if folder else 'a file name'}"
        )
    parent = path if folder else os.path.dirname(path)
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent) or not os.access(parent, os.W_OK):
        raise AnalysisError(
            f"{option} {path}: cannot write under {parent} ({'a file' if not os.path.isdir(parent) else 'not writable'})"
        )


def default_out_dir(dirs) -> str:
    first = os.fspath(dirs[0])
    return os.path.join(os.path.dirname(os.path.abspath(first)) if os.path.isfile(first) else first, "analysis")


def script_parser(prog: str, description: str) -> OneLineParser:
    """The options both analysis scripts take; each adds its own."""
    p = OneLineParser(prog=prog, description=description)
    add = p.add_argument
    add(
        "dirs",
        nargs="+",
        metavar="DIR",
        help="output folders or notebook result files (searched recursively)",
    )
    add("--out", metavar="FIG_DIR", help="output folder (default: <first DIR>/analysis)")
    add("--metric", default="best_error", help="result field to analyse (default: best_error)")
    add("--panel-key", default="noise.rate", help="one row of panels per value; 'none' for one row")
    add("--x-key", default="lam", help="x axis (default: lam)")
    add(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep only runs with KEY=VALUE (repeatable)",
    )
    add(
        "--diverged",
        choices=("count", "exclude"),
        default="count",
        help="diverged runs: count them or leave them out",
    )
    add(
        "--chance-error",
        type=float,
        help="error of a diverged run where nothing was measured (default 1 - 1/classes)",
    )
    add("--n-boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    add("--boot-seed", type=int, default=0, help="bootstrap RNG seed (default 0)")
    add("--confidence", type=float, default=0.95, help="interval level, between 0 and 1 (default 0.95)")
    add("--pdf", action="store_true", help="also write the figures as PDF")
    add(
        "--suggest",
        type=int,
        default=0,
        metavar="N",
        help="print N new lambda values per curve for the next sweep",
    )
    add(
        "--experiment-dir",
        metavar="DIR",
        help="with --suggest: also write them as Hydra experiment files here (e.g. conf/experiment), one per curve",
    )
    return p


def script_main(parser: argparse.ArgumentParser, run, argv=None) -> int:
    """An analysis script's ``main``: parse and check ``argv``, then ``run(args)``."""
    args = parser.parse_args(argv)

    def checked():
        if not 0 < args.confidence < 1:
            raise AnalysisError(f"--confidence {args.confidence}: must be between 0 and 1 (0.95 means 95%)")
        if args.n_boot < 0 or args.suggest < 0:
            raise AnalysisError("--n-boot and --suggest must be >= 0")
        if args.experiment_dir and not args.suggest:
            raise AnalysisError("--experiment-dir writes the --suggest N values: give --suggest N")
        args.panel_key = None if args.panel_key in ("none", "None", "") else args.panel_key
        args.out = args.out or default_out_dir(args.dirs)
        check_writable(args.out, "--out", folder=True)
        if args.experiment_dir:
            check_writable(args.experiment_dir, "--experiment-dir", folder=True)
        return run(args)

    return run_cli(parser.prog, checked)


# --------------------------------------------------------------------------- loading


@dataclass
class Runs:
    """The runs an analysis uses: ``df`` has one row per run and the analysed value in ``y``."""

    df: pd.DataFrame
    report: CollectReport
    notes: list[str] = field(default_factory=list)


def where(table: pd.DataFrame, items: list[str], known: str) -> tuple[pd.DataFrame, list[str]]:
    """``--where KEY=VALUE`` filters (numbers compared as numbers)."""
    notes = []
    for item in items:
        key, sep, value = (s.strip() for s in item.partition("="))
        if not sep:
            raise AnalysisError(f"--where {item!r}: expected KEY=VALUE")
        if key not in table:
            raise AnalysisError(f"--where: unknown key {key!r}; {known}")
        try:
            mask = np.isclose(
                pd.to_numeric(table[key], errors="coerce").to_numpy(float),
                float(value),
                rtol=1e-9,
                atol=1e-12,
            )
        except ValueError:
            mask = table[key].astype(str).to_numpy() == value
        notes.append(f"--where {key}={value}: kept {int(mask.sum())} of {len(table)} runs")
        table = table[mask]
    return table, notes


def start(args, curve_option: str, curve_key: str, header: str):
    """Collect the runs under ``args.dirs`` for one analysis and check the keys; print the
    header, the collect report and what was done with the runs (``Echo``, :class:`Runs`)."""
    keys = {curve_option: curve_key, "--panel-key": args.panel_key, "--x-key": args.x_key}
    table, report = collect(args.dirs, all_keys=True)
    if table.empty:
        raise AnalysisError(f"no finished runs found under {', '.join(args.dirs)} ({report.skipped()})")
    known = "keys that vary in these runs: " + ", ".join(report.varying_keys)
    table, notes = where(table, args.where, known)
    if table.empty:
        raise AnalysisError("no runs left after --where " + " ".join(args.where))
    if args.metric not in table:
        numeric = [
            c for c in ("best_error", "test_error", "best_acc", "test_acc", "avg_cos_struct_value") if c in table
        ]
        raise AnalysisError(f"--metric: unknown result field {args.metric!r}; numeric fields: {', '.join(numeric)}")
    for option, key in keys.items():
        if key is not None and key not in table:
            raise AnalysisError(f"{option}: unknown key {key!r}; {known}")
    echo = Echo()
    echo("=" * 70 + f"\n{header}\n" + "=" * 70)
    for line in report.lines():
        echo(line)
    chance = args.chance_error
    if chance is None:
        names = set(table.get("data.name", pd.Series(dtype=str)).dropna().astype(str))
        chance = CHANCE_ERROR.get(names.pop(), 0.9) if len(names) == 1 else 0.9
    table, more = select(table, args.metric, args.diverged, chance)
    notes += more
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
        notes.append(
            f"WARNING: runs compared in one panel differ in {key} ({', '.join(values[:6])}"
            f"{' ...' if len(values) > 6 else ''}): they come from different experiments; "
            f"restrict with --where {key}=VALUE or group by it"
        )
    for note in notes:
        echo(note)
    return echo, Runs(table.reset_index(drop=True), report, notes)


# --------------------------------------------------------------------------- printed report


class Echo:
    """Print lines and keep them, for the report."""

    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line)
        self.lines.extend(str(line).split("\n"))


def panel_head(panel_key, value) -> str:
    return FG.label(panel_key, value) if panel_key else "all runs"


def each_panel(echo, panels, panel_key):
    """Yield the panels, each after its heading line."""
    for p in panels:
        echo(f"\n{panel_head(panel_key, p.value)}:")
        yield p


def echo_seeds(echo, panels, curve_key: str, args) -> None:
    """How many seeds each point rests on, per panel: one line, or a table if uneven."""
    echo(f"\n--- Seeds per point (runs per {FG.sym(curve_key)} x {FG.sym(args.x_key)} cell) ---")
    for p in panels:
        table = p.cells.pivot(index=curve_key, columns=args.x_key, values="n")
        prefix = f"{panel_head(args.panel_key, p.value)}: " if args.panel_key else ""
        if table.to_numpy().min() == table.to_numpy().max():
            echo(f"{prefix}{FG.seeds_note(p.cells['n'])} in all {table.size} cells")
        else:
            echo(f"{prefix}{FG.seeds_note(p.cells['n'])}; 0 = missing cell")
            table.columns, table.index = (
                [FG.fmt(c) for c in table.columns],
                [FG.label(curve_key, i) for i in table.index],
            )
            for ln in table.to_string().splitlines():
                echo("  " + ln)


def summary_start(p, args, key: str, value) -> dict:
    """The first columns of a summary row: panel, curve, seeds per point, diverged runs."""
    cs = p.cells[(p.cells[key] == value) & (p.cells["n"] > 0)]
    return {
        **({args.panel_key: p.value} if args.panel_key else {}),
        key: value,
        "n_min": int(cs["n"].min()),
        "n_max": int(cs["n"].max()),
        "n_diverged": int(cs["n_diverged"].sum()),
    }


def ci_cols(name: str, estimate) -> dict:
    """``{name: e, name_lo: lo, name_hi: hi}`` for an (estimate, low, high) triple."""
    return dict(zip((name, f"{name}_lo", f"{name}_hi"), estimate))


def verdict_sign(lo: float, hi: float, yes_if: str, yes: str, no: str) -> str:
    """YES if the interval lies on the ``yes_if`` side of 0 ('>0' or '<0'), NO if on the other."""
    if math.isnan(lo) or math.isnan(hi):
        return "UNDETERMINED (no interval)"
    if (lo > 0 and yes_if == ">0") or (hi < 0 and yes_if == "<0"):
        return f"YES ({yes})"
    return f"NO ({no})" if lo > 0 or hi < 0 else "NOT RESOLVED (the interval contains 0)"


def boot_desc(args) -> str:
    return f"percentile bootstrap, {args.n_boot} resamples of the seeds within each cell, --boot-seed {args.boot_seed}"


def all_cells(panels, panel_key) -> pd.DataFrame:
    """The cells of all panels in one table (the panel key first)."""
    return pd.concat(
        [p.cells.assign(**{panel_key: p.value}) if panel_key else p.cells for p in panels], ignore_index=True
    )


# --------------------------------------------------------------------------- files


def atomic_write(path: str, write) -> str:
    """``write(tmp_path)``, then rename over ``path`` (a temp file in the same folder)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path


def write_text(path: str, text: str) -> str:
    def w(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    return atomic_write(path, w)


def write_table(df: pd.DataFrame, path: str) -> str:
    """CSV or Parquet, by the extension."""
    if path.endswith(".parquet"):
        return atomic_write(path, lambda tmp: df.to_parquet(tmp, index=False))
    return atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))


def md_table(df: pd.DataFrame) -> str:
    """A GitHub Markdown table."""

    def cell(v):
        return FG.fnum(float(v), ".4g") if isinstance(v, (float, np.floating)) else str(v).replace("|", "\\|")

    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join(["| " + " | ".join(map(str, df.columns)) + " |", "|" + " --- |" * len(df.columns), *rows])


def write_outputs(args, runs: Runs, echo: Echo, stem: str, title: str, figures, tables, describe: str) -> int:
    """Write the figures, the tables as CSV, the runs analysed and the Markdown report.

    ``figures``: (stem suffix, Figure); ``tables``: (name, heading or None, DataFrame), written
    as ``<stem>_<name>.csv`` and shown in the report under the heading."""
    out = args.out
    figs = [
        atomic_write(
            os.path.join(out, f"{stem}{sfx}.{ext}"),
            lambda tmp, f=fig, e=ext: f.savefig(tmp, format=e, dpi=150),
        )
        for sfx, fig in figures
        for ext in (("png", "pdf") if args.pdf else ("png",))
    ]
    files = figs + [write_table(df, os.path.join(out, f"{stem}_{name}.csv")) for name, _, df in tables]
    files.append(
        write_table(runs.df.rename(columns={"y": f"analysed_{args.metric}"}), os.path.join(out, f"{stem}_runs.csv"))
    )
    report_path = os.path.join(out, f"{stem}.md")
    echo("\nwrote " + ", ".join([*files, report_path]))
    buf = io.StringIO()
    buf.write(f"# {title}\n\nInputs: " + ", ".join(f"`{os.path.abspath(d)}`" for d in args.dirs) + "\n\n")
    for line in (
        runs.report.summary(),
        describe,
        f"intervals: {args.confidence:.0%} {boot_desc(args)}",
        *runs.notes,
    ):
        buf.write(f"- {line}\n")
    buf.write(
        "\n" + "".join(f"![{os.path.basename(f)}]({os.path.relpath(f, out)})\n\n" for f in figs if f.endswith(".png"))
    )
    buf.write("## Printed summary\n\n```text\n" + "\n".join(echo.lines).rstrip() + "\n```\n\n")
    buf.write("".join(f"## {head}\n\n{md_table(df)}\n\n" for _, head, df in tables if head))
    buf.write("## Files\n\n" + "".join(f"- [`{os.path.basename(f)}`]({os.path.relpath(f, out)})\n" for f in files))
    write_text(report_path, buf.getvalue())
    return 0
