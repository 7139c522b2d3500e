"""What the analysis scripts print and write: the printed summary (kept for the report),
the rows its tables share, and every output file, written atomically (figures, CSVs, the
Markdown report)."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from analysis import figures as FG

# --------------------------------------------------------------------------- printed summary


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
            table.columns = [FG.fmt(c) for c in table.columns]
            table.index = [FG.label(curve_key, i) for i in table.index]
            for ln in table.to_string().splitlines():
                echo("  " + ln)


def panel_cols(p, args) -> dict:
    """The first column of a row about one panel: the panel key's value (none without one)."""
    return {args.panel_key: p.value} if args.panel_key else {}


def summary_start(p, args, key: str, value) -> dict:
    """The first columns of a summary row: panel, curve, seeds per point, diverged runs."""
    cs = p.cells[(p.cells[key] == value) & (p.cells["n"] > 0)]
    return {**panel_cols(p, args), key: value, "n_min": int(cs["n"].min()), "n_max": int(cs["n"].max()),
            "n_diverged": int(cs["n_diverged"].sum())}


def ci_cols(name: str, estimate) -> dict:
    """``{name: e, name_lo: lo, name_hi: hi}`` for an (estimate, low, high) triple."""
    return dict(zip((name, f"{name}_lo", f"{name}_hi"), estimate))


def boot_desc(args) -> str:
    return f"percentile bootstrap, {args.n_boot} resamples of the seeds within each cell, --boot-seed {args.boot_seed}"


def all_cells(panels, panel_key) -> pd.DataFrame:
    """The cells of all panels in one table (the panel key first)."""
    return pd.concat([p.cells.assign(**{panel_key: p.value}) if panel_key else p.cells for p in panels],
                     ignore_index=True)


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
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


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


def write_outputs(args, runs, echo: Echo, stem: str, title: str, figures, tables, describe: str) -> int:
    """Write the figures, the tables as CSV, the runs analysed (``runs``: :class:`analysis.cli.Runs`)
    and the Markdown report.

    ``figures``: (stem suffix, Figure); ``tables``: (name, heading or None, DataFrame), written
    as ``<stem>_<name>.csv`` and shown in the report under the heading."""
    out = args.out
    figs = [atomic_write(os.path.join(out, f"{stem}{sfx}.{ext}"),
                         lambda tmp, f=fig, e=ext: f.savefig(tmp, format=e, dpi=150))
            for sfx, fig in figures for ext in (("png", "pdf") if args.pdf else ("png",))]
    files = figs + [write_table(df, os.path.join(out, f"{stem}_{name}.csv")) for name, _, df in tables]
    files.append(write_table(runs.df.rename(columns={"y": f"analysed_{args.metric}"}),
                             os.path.join(out, f"{stem}_runs.csv")))
    report_path = os.path.join(out, f"{stem}.md")
    echo("\nwrote " + ", ".join([*files, report_path]))
    buf = io.StringIO()
    buf.write(f"# {title}\n\nInputs: " + ", ".join(f"`{os.path.abspath(d)}`" for d in args.dirs) + "\n\n")
    for line in (runs.report.summary(), describe, f"intervals: {args.confidence:.0%} {boot_desc(args)}", *runs.notes):
        buf.write(f"- {line}\n")
    buf.write("\n" + "".join(f"![{os.path.basename(f)}]({os.path.relpath(f, out)})\n\n"
                             for f in figs if f.endswith(".png")))
    buf.write("## Printed summary\n\n```text\n" + "\n".join(echo.lines).rstrip() + "\n```\n\n")
    buf.write("".join(f"## {head}\n\n{md_table(df)}\n\n" for _, head, df in tables if head))
    buf.write("## Files\n\n" + "".join(f"- [`{os.path.basename(f)}`]({os.path.relpath(f, out)})\n" for f in files))
    write_text(report_path, buf.getvalue())
    return 0
