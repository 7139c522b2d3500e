"""What the analysis scripts share: their command line and flow (loading and filtering runs,
the printed report, the per-panel grids, writing figures, CSVs and the Markdown report), the
bootstrap over seeds, labels and plotting helpers, and atomic output.

Figures use :class:`matplotlib.figure.Figure` directly (Agg canvas, no pyplot state), so
importing this module never changes the caller's matplotlib backend.
"""

from __future__ import annotations

import argparse
import io
import math
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.stats
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory

from analysis.collect import AnalysisError, CollectReport, collect, is_science_key

# --------------------------------------------------------------------------- labels

SYMBOLS = {
    "lam": "λ",
    "lambda": "λ",
    "noise.rate": "η",
    "noise_rate": "η",
    "model.width": "width",
    "width_mult": "width",
}
#: The notebooks' colours, in ascending order of the grouped value (3 widths, 3 lrs).
NOTEBOOK_COLORS = ["#3498db", "#2ecc71", "#e74c3c"]
#: Chance-level error (1 - 1/classes) by dataset, for diverged runs with nothing measured.
CHANCE_ERROR = {"cifar10": 0.9, "cifar100": 0.99, "fashion_mnist": 0.9, "synthetic": 0.9}
SEED_KEY = "seed"


def sym(key: str) -> str:
    """Display name of a key: ``lam`` -> λ, ``noise.rate`` -> η, others unchanged."""
    return SYMBOLS.get(key, key)


PLURALS = {"lr": "learning rates", "model.width": "model sizes", "width_mult": "model sizes"}


def plural(key: str) -> str:
    """What several values of a key are called in a title ("learning rates")."""
    return PLURALS.get(key, f"{sym(key)} values")


def title_name(key: str) -> str:
    return {"lr": "Learning Rate", "model.width": "Model Size", "width_mult": "Model Size"}.get(
        key, sym(key)
    )


def fmt(value) -> str:
    """A grouped value as the notebooks print it (0.5, 1.0, 0.05)."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            return str(float(value))
        return str(float(f"{float(value):.10g}"))
    if isinstance(value, (np.integer,)):
        return str(int(value))
    return str(value)


def label(key: str, value) -> str:
    """``width=1.0×`` for widths (as the notebook), ``key=value`` otherwise."""
    if key in ("model.width", "width_mult"):
        return f"width={fmt(value)}×"
    return f"{sym(key)}={fmt(value)}"


def fnum(x, spec: str = ".4f") -> str:
    """A number, or a word where it is missing / beyond the grid."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if x == math.inf:
        return "above grid"
    if x == -math.inf:
        return "below grid"
    return format(x, spec)


def fci(lo, hi, spec: str = ".4f") -> str:
    if lo is None or hi is None or (math.isnan(lo) and math.isnan(hi)):
        return "[no interval]"
    return f"[{fnum(lo, spec)}, {fnum(hi, spec)}]"


def palette(values) -> dict:
    """One colour per value: the notebooks' blue/green/red for up to 3, tab10/viridis beyond."""
    values = list(values)
    if len(values) <= 3:
        return dict(zip(values, NOTEBOOK_COLORS))
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if len(values) <= 10 else "viridis"]
    n = len(values)
    return {v: cmap(i if n <= 10 else i / max(n - 1, 1)) for i, v in enumerate(values)}


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


def script_main(parser: argparse.ArgumentParser, run, argv=None) -> int:
    """An analysis script's ``main``: parse ``argv``, then ``run(args)`` under :func:`run_cli`."""
    args = parser.parse_args(argv)
    return run_cli(parser.prog, lambda: run(args))


def script_parser(prog: str, description: str) -> OneLineParser:
    """The options both analysis scripts take; each adds its own."""
    parser = OneLineParser(prog=prog, description=description)
    parser.add_argument(
        "dirs", nargs="+", metavar="DIR", help="output folders (one sweep, several, or a parent)"
    )
    parser.add_argument(
        "--out", metavar="FIG_DIR", help="output folder (default: <first DIR>/analysis)"
    )
    parser.add_argument(
        "--metric", default="best_error", help="result field to analyse (default: best_error)"
    )
    parser.add_argument(
        "--panel-key", default="noise.rate", help="one row of panels per value; 'none' for one row"
    )
    parser.add_argument("--x-key", default="lam", help="x axis (default: lam)")
    parser.add_argument(
        "--where",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="keep only runs with KEY=VALUE (repeatable), e.g. --where train.epochs=100",
    )
    parser.add_argument(
        "--diverged",
        choices=("count", "exclude"),
        default="count",
        help="diverged runs: count them (default; see the printed rule) or leave them out",
    )
    parser.add_argument(
        "--chance-error",
        type=float,
        default=None,
        help="error given to a diverged run where nothing was measured (default: 1 - 1/classes, 0.9)",
    )
    parser.add_argument(
        "--n-boot", type=int, default=2000, help="bootstrap resamples (default 2000)"
    )
    parser.add_argument("--boot-seed", type=int, default=0, help="bootstrap RNG seed (default 0)")
    parser.add_argument(
        "--confidence", type=float, default=0.95, help="interval level (default 0.95)"
    )
    parser.add_argument("--pdf", action="store_true", help="also write the figures as PDF")
    return parser


# --------------------------------------------------------------------------- loading


@dataclass
class Runs:
    """The runs an analysis uses: ``df`` has one row per run and the analysed value in ``y``."""

    df: pd.DataFrame
    report: CollectReport
    notes: list[str] = field(default_factory=list)


def _parse_where(
    table: pd.DataFrame, items: list[str], report: CollectReport | None = None
) -> tuple[pd.DataFrame, list[str]]:
    notes = []
    for item in items:
        if "=" not in item:
            raise AnalysisError(f"--where {item!r}: expected KEY=VALUE")
        key, value = item.split("=", 1)
        key = key.strip()
        if key not in table.columns:
            raise AnalysisError(f"--where: unknown key {key!r}; {_known_keys(table, report)}")
        col = table[key]
        num = pd.to_numeric(col, errors="coerce")
        try:
            v = float(value)
            mask = np.isclose(num.to_numpy(dtype=float), v, rtol=1e-9, atol=1e-12)
        except ValueError:
            mask = col.astype(str).to_numpy() == value
        before = len(table)
        table = table[mask]
        notes.append(f"--where {key}={value}: kept {len(table)} of {before} runs")
    return table, notes


def _known_keys(table: pd.DataFrame, report: CollectReport | None = None) -> str:
    if report is not None and report.varying_keys:
        return "keys that vary in these runs: " + ", ".join(report.varying_keys)
    cols = [c for c in table.columns if c not in ("run_dir", "status", "result_mtime")]
    return "available: " + ", ".join(cols[:40])


def chance_error(table: pd.DataFrame, override: float | None) -> float:
    if override is not None:
        return override
    for col in ("data.name", "dataset"):
        if col in table.columns:
            names = set(table[col].dropna().astype(str))
            if len(names) == 1 and next(iter(names)) in CHANCE_ERROR:
                return CHANCE_ERROR[next(iter(names))]
    return 0.9


def start(args, curve_option: str, curve_key: str, header: str) -> tuple[Echo, Runs]:
    """Check the shared options and collect the runs under ``args.dirs`` for one analysis.

    Prints ``header`` (framed as in the notebooks), the collect report and the notes once the
    input is known to be usable. Applies ``--where``, checks the keys (``curve_option`` names
    ``curve_key``), applies the diverged-run rule and drops runs that lack the metric or a key,
    saying how many. The analysed value is in column ``y``.
    """
    if args.panel_key in ("none", "None", ""):
        args.panel_key = None
    if args.n_boot < 0:
        raise AnalysisError("--n-boot must be >= 0")
    echo = Echo()
    keys = {curve_option: curve_key, "--panel-key": args.panel_key, "--x-key": args.x_key}
    table, report = collect(args.dirs, all_keys=True)
    if table.empty:
        raise AnalysisError(
            f"no finished runs found under {', '.join(args.dirs)} ({report.skipped()})"
        )
    notes: list[str] = []
    table, where_notes = _parse_where(table, args.where, report)
    notes += where_notes
    if table.empty:
        raise AnalysisError("no runs left after --where " + " ".join(args.where))
    metric = args.metric
    if metric not in table.columns:
        raise AnalysisError(
            f"--metric: unknown result field {metric!r}; "
            f"numeric fields: {', '.join(c for c in ('best_error', 'test_error', 'best_acc', 'test_acc', 'avg_cos_struct_value') if c in table.columns)}"
        )
    for option, key in keys.items():
        if key is not None and key not in table.columns:
            raise AnalysisError(f"{option}: unknown key {key!r}; {_known_keys(table, report)}")

    # only now: a usage error above stays one line
    echo("=" * 70)
    echo(header)
    echo("=" * 70)
    for line in report.lines():
        echo(line)
    table = table.copy()
    y = pd.to_numeric(table[metric], errors="coerce").astype(float)
    diverged = (table["status"] == "diverged").to_numpy()
    n_div = int(diverged.sum())
    if args.diverged == "exclude":
        table, y = table[~diverged], y[~diverged]
        if n_div:
            notes.append(f"diverged runs: {n_div} left out (--diverged exclude)")
    elif n_div:
        chance = chance_error(table, args.chance_error)
        div_y = y[diverged].copy()
        if metric == "test_error":
            # the final model of a diverged run is NaN: it predicts one class, chance level
            div_y[:] = chance
            rule = f"test_error = chance level {chance:.2f} (the final model diverged)"
        elif metric.endswith("_error"):
            measured = div_y.notna()
            div_y[~measured] = chance
            rule = (
                f"{metric} = 1 - {metric[:-6]}_acc measured before divergence "
                f"({int(measured.sum())} run(s)), chance level {chance:.2f} where nothing was "
                f"measured ({int((~measured).sum())})"
            )
        else:
            rule = f"{metric} as recorded (runs without it are dropped)"
        y[diverged] = div_y.to_numpy()
        notes.append(
            f"diverged runs: {n_div} counted as real outcomes, {rule}; --diverged exclude leaves them out"
        )
    table["y"] = y.to_numpy()

    missing = table["y"].isna()
    if missing.any():
        notes.append(
            f"{int(missing.sum())} run(s) without {metric} left out: "
            + ", ".join(table.loc[missing, "run_dir"].head(5))
            + (" ..." if missing.sum() > 5 else "")
        )
        table = table[~missing]
    used_keys = [k for k in keys.values() if k is not None]
    for key in used_keys:
        col = table[key]
        if pd.api.types.is_float_dtype(col):
            table[key] = col.round(10)  # 0.44000000000000006 and 0.44 are one cell
        nokey = table[key].isna()
        if nokey.any():
            notes.append(f"{int(nokey.sum())} run(s) without {key} left out")
            table = table[~nokey]
    if table.empty:
        raise AnalysisError(f"no runs with {metric} and {', '.join(used_keys)} left to analyse")

    pooled = pooled_keys(table, used_keys, report.config_keys)
    for key, values in pooled.items():
        shown = ", ".join(fmt(v) for v in values[:6]) + (" ..." if len(values) > 6 else "")
        notes.append(
            f"WARNING: runs pooled into one point differ in {key} ({shown}); "
            f"restrict with --where {key}=VALUE or group by it"
        )
    for note in notes:
        echo(note)
    return echo, Runs(table.reset_index(drop=True), report, notes)


def pooled_keys(df: pd.DataFrame, cell_keys: list[str], config_keys: list[str]) -> dict:
    """Config keys (other than the seed and bookkeeping keys) that vary within one cell."""
    others = [
        k
        for k in config_keys
        if k in df.columns and k not in cell_keys and k != SEED_KEY and is_science_key(k)
    ]
    if not others or df.empty:
        return {}
    nun = df.groupby(cell_keys, dropna=False)[others].nunique(dropna=False).max()
    return {k: sorted(df[k].dropna().unique().tolist(), key=str) for k in nun[nun > 1].index}


@dataclass
class Grid:
    """The runs of one panel on the grid (curve value x x value)."""

    value: object  # the panel key's value (None: one panel)
    curves: list  # the curve key's values, ascending
    xs: np.ndarray  # the x values, ascending
    cells: pd.DataFrame  # cell_stats over the full grid
    samples: list  # the runs' values, one array per cell with runs
    where: list  # (curve index, x index) of each array in samples


def grids(df: pd.DataFrame, args, curve_key: str) -> list[Grid]:
    """One :class:`Grid` per value of ``--panel-key`` (one in all without a panel key)."""
    out = []
    values = [None] if args.panel_key is None else sorted(df[args.panel_key].unique().tolist())
    for value in values:
        sub = df if args.panel_key is None else df[df[args.panel_key] == value]
        curves = sorted(sub[curve_key].unique().tolist())
        grid_x = sorted(sub[args.x_key].unique().tolist())
        cells = cell_stats(sub, [curve_key, args.x_key], {curve_key: curves, args.x_key: grid_x})
        samples, where = [], []
        for (c, x), grp in sub.groupby([curve_key, args.x_key]):
            samples.append(grp["y"].to_numpy(dtype=float))
            where.append((curves.index(c), grid_x.index(x)))
        out.append(Grid(value, curves, np.asarray(grid_x, dtype=float), cells, samples, where))
    return out


def cell_stats(df: pd.DataFrame, keys: list[str], grid: dict) -> pd.DataFrame:
    """Per cell: n, n_diverged, mean, std (ddof=1, as pandas and the notebooks).

    ``grid`` maps each key to all of its values; cells of the full grid with no run are rows
    with n = 0 and NaN statistics, so missing cells stay visible (never zeros).
    """
    g = df.assign(_div=(df["status"] == "diverged").astype(int)).groupby(keys)
    stats = pd.DataFrame(
        {
            "n": g["y"].size(),
            "n_diverged": g["_div"].sum(),
            "mean": g["y"].mean(),
            "std": g["y"].std(ddof=1),
        }
    )
    index = pd.MultiIndex.from_product([grid[k] for k in keys], names=keys)
    stats = stats.reindex(index)
    stats["n"] = stats["n"].fillna(0).astype(int)
    stats["n_diverged"] = stats["n_diverged"].fillna(0).astype(int)
    return stats.reset_index()


def typical_n(ns) -> int:
    """The most common number of runs per cell (cells with runs only)."""
    ns = [int(n) for n in ns if n > 0]
    return max(set(ns), key=lambda n: (ns.count(n), n)) if ns else 0


def seeds_note(ns, figure: bool = False) -> str:
    """How many seeds each point rests on (``figure``: points off the typical n are labelled)."""
    ns = [int(n) for n in ns if n > 0]
    if not ns:
        return "no runs"
    lo, hi = min(ns), max(ns)
    if lo == hi:
        return f"n = {hi} seed{'s' if hi != 1 else ''} per point"
    note = f"n = {lo}–{hi} seeds per point"
    return note + (f" (labelled where not {typical_n(ns)})" if figure else "")


def panel_head(panel_key: str | None, value) -> str:
    """``η=0.4`` for a panel, ``all runs`` without a panel key."""
    return label(panel_key, value) if panel_key else "all runs"


def each_panel(echo, panels, panel_key: str | None):
    """Yield the panels, each after its heading line."""
    for p in panels:
        echo(f"\n{panel_head(panel_key, p.value)}:")
        yield p


def echo_seeds(echo, panels, curve_key: str, args) -> None:
    """How many seeds each point rests on, per panel: one line, or a table if uneven."""
    echo(f"\n--- Seeds per point (runs per {sym(curve_key)} x {sym(args.x_key)} cell) ---")
    for p in panels:
        cells = p.cells
        table = cells.pivot(index=curve_key, columns=args.x_key, values="n")
        prefix = f"{panel_head(args.panel_key, p.value)}: " if args.panel_key else ""
        if table.to_numpy().min() == table.to_numpy().max():
            echo(f"{prefix}{seeds_note(cells['n'])} in all {table.size} cells")
        else:
            echo(f"{prefix}{seeds_note(cells['n'])}; 0 = missing cell")
            table.columns = [fmt(c) for c in table.columns]
            table.index = [label(curve_key, i) for i in table.index]
            for ln in table.to_string().splitlines():
                echo("  " + ln)
        ndiv = int(cells["n_diverged"].sum())
        if ndiv:
            echo(f"{prefix}{ndiv} of these runs diverged (counted as described above)")


def curve_cells(cells: pd.DataFrame, key: str, value, x_key: str):
    """x, mean, std and n of one curve, by ascending x (n = 0: a missing cell)."""
    cs = cells[cells[key] == value]
    return tuple(cs[k].to_numpy(float) for k in (x_key, "mean", "std", "n"))


def summary_start(p, args, key: str, value) -> dict:
    """The first columns of a summary row: panel, curve, seeds per point, diverged runs."""
    cs = p.cells[p.cells[key] == value]
    ns = cs.loc[cs["n"] > 0, "n"]
    return {
        **({args.panel_key: p.value} if args.panel_key else {}),
        key: value,
        "n_min": int(ns.min()) if len(ns) else 0,
        "n_max": int(ns.max()) if len(ns) else 0,
        "n_diverged": int(cs["n_diverged"].sum()),
    }


def ci_cols(name: str, estimate) -> dict:
    """``{name: e, name_lo: lo, name_hi: hi}`` for an (estimate, low, high) triple."""
    return dict(zip((name, f"{name}_lo", f"{name}_hi"), estimate))


# --------------------------------------------------------------------------- bootstrap


@dataclass
class Boot:
    """Point estimates, percentile intervals and the bootstrap distribution of k statistics."""

    point: np.ndarray  # (k,)
    low: np.ndarray  # (k,)
    high: np.ndarray  # (k,)
    dist: np.ndarray | None  # (k, n_boot)
    n_boot: int

    def ci(self, i: int) -> tuple[float, float]:
        return float(self.low[i]), float(self.high[i])

    def frac_undefined(self, i: int) -> float:
        if self.dist is None:
            return float("nan")
        return float(np.mean(np.isnan(self.dist[i])))


def _ordered_ci(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval that tolerates ±inf (no interpolation into infinity); NaN dropped."""
    v = values[~np.isnan(values)]
    if v.size == 0:
        return float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    return (
        float(np.quantile(v, alpha, method="lower")),
        float(np.quantile(v, 1 - alpha, method="higher")),
    )


def bootstrap_cells(cells, statistic, *, n_boot: int, seed: int, confidence: float = 0.95) -> Boot:
    """Bootstrap over seeds: resample the runs of every cell independently.

    ``cells`` is a list of 1-D arrays (the runs of one cell each); ``statistic(samples)`` gets a
    list of arrays of shape ``(..., n_i)`` (leading batch dimensions) and returns shape
    ``(k, ...)``. Uses :func:`scipy.stats.bootstrap` (percentile method, independent
    resampling of each sample); a cell with one run is held fixed. Where a statistic is
    undefined in some resamples (NaN, e.g. a failed fit) those resamples are left out of its
    interval; ±inf (beyond the grid) is kept and gives an open-ended interval.
    """
    cells = [np.asarray(c, dtype=float) for c in cells]
    point = np.atleast_1d(np.asarray(statistic(cells), dtype=float))
    k = point.shape[0]
    nan = np.full(k, np.nan)
    varying = [i for i, c in enumerate(cells) if c.size >= 2]
    if not varying or n_boot <= 0:
        return Boot(point, nan, nan.copy(), None, 0)

    def stat(*samples, axis=-1):
        batch = samples[0].shape[:-1]
        it = iter(samples)
        full = [next(it) if c.size >= 2 else np.broadcast_to(c, batch + c.shape) for c in cells]
        return np.asarray(statistic(full), dtype=float).reshape((k, *batch))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = scipy.stats.bootstrap(
            [cells[i] for i in varying],
            stat,
            n_resamples=n_boot,
            vectorized=True,
            method="percentile",
            confidence_level=confidence,
            rng=np.random.default_rng(seed),
        )
    dist = np.asarray(res.bootstrap_distribution, dtype=float).reshape(k, -1)
    low = np.atleast_1d(np.asarray(res.confidence_interval.low, dtype=float)).copy()
    high = np.atleast_1d(np.asarray(res.confidence_interval.high, dtype=float)).copy()
    for i in range(k):
        if not np.all(np.isfinite(dist[i])):
            low[i], high[i] = _ordered_ci(dist[i], confidence)
    return Boot(point, low, high, dist, n_boot)


def boot_desc(args) -> str:
    return (
        f"percentile bootstrap, {args.n_boot} resamples of the seeds within each cell, "
        f"--boot-seed {args.boot_seed}"
    )


def log_slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope of ln y against ln x along the last axis, over the points where
    y > 0 is finite (NaN where fewer than two such points)."""
    lx = np.log(np.asarray(x, dtype=float))
    y = np.asarray(y, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ly = np.log(np.where(y > 0, y, np.nan))
        ok = np.isfinite(ly)
        n = ok.sum(-1)
        lxb = np.where(ok, lx, 0.0)
        mx = lxb.sum(-1, keepdims=True) / n[..., None]
        my = np.where(ok, ly, 0.0).sum(-1, keepdims=True) / n[..., None]
        dx = np.where(ok, lx - mx, 0.0)
        dy = np.where(ok, ly - my, 0.0)
        slope = (dx * dy).sum(-1) / (dx * dx).sum(-1)
    return np.where(n >= 2, slope, np.nan)


def verdict_sign(lo: float, hi: float, yes_if: str, yes: str, no: str) -> str:
    """YES if the interval lies on the ``yes_if`` side of 0 ('>0' or '<0'), NO if on the other."""
    if math.isnan(lo) or math.isnan(hi):
        return "UNDETERMINED (no interval)"
    above, below = lo > 0, hi < 0
    if (above and yes_if == ">0") or (below and yes_if == "<0"):
        return f"YES ({yes})"
    if above or below:
        return f"NO ({no})"
    return "NOT RESOLVED (the interval contains 0)"


# --------------------------------------------------------------------------- plotting


def new_figure(nrows: int, ncols: int, width: float = 7.0, height: float = 5.0):
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    axes = np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False))
    return fig, axes


def mark_missing(ax, xs, color, size=9):
    """Grey-edged crosses on the bottom edge of the axes at x values with no runs."""
    if len(xs) == 0:
        return
    trans = blended_transform_factory(ax.transData, ax.transAxes)
    ax.plot(
        list(xs),
        [0.03] * len(xs),
        transform=trans,
        linestyle="none",
        marker="x",
        markersize=size,
        markeredgewidth=2,
        color=color,
        clip_on=False,
        zorder=5,
    )


def estimate_handle(label: str, color="0.3") -> Line2D:
    """Legend entry for the white diamonds that mark an estimate with its interval."""
    return Line2D(
        [],
        [],
        color=color,
        marker="D",
        markerfacecolor="white",
        markeredgewidth=2,
        linestyle="none",
        label=label,
    )


MISSING_HANDLE = Line2D(
    [],
    [],
    linestyle="none",
    marker="x",
    color="0.3",
    markeredgewidth=2,
    label="missing cell (no runs)",
)


def annotate_n(ax, xs, ys, ns, n_typical, color):
    """Label the points that rest on another number of seeds than the typical cell."""
    for x, y, n in zip(xs, ys, ns):
        if 0 < n != n_typical and np.isfinite(y):
            ax.annotate(
                f"n={int(n)}",
                (x, y),
                textcoords="offset points",
                xytext=(5, 6),
                fontsize=8,
                color=color,
            )


def save_figure(fig, out_dir: str, stem: str, pdf: bool) -> list[str]:
    paths = []
    for ext in ("png", "pdf") if pdf else ("png",):
        path = os.path.join(out_dir, f"{stem}.{ext}")
        atomic_write(path, lambda tmp, ext=ext: fig.savefig(tmp, format=ext, dpi=150))
        paths.append(path)
    return paths


# --------------------------------------------------------------------------- output


def default_out_dir(dirs) -> str:
    first = os.fspath(dirs[0])
    if os.path.isfile(first):
        first = os.path.dirname(os.path.abspath(first))
    return os.path.join(first, "analysis")


def atomic_write(path: str, write) -> None:
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
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def write_text(path: str, text: str) -> str:
    def w(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)

    atomic_write(path, w)
    return path


def write_csv(df: pd.DataFrame, path: str) -> str:
    atomic_write(path, lambda tmp: df.to_csv(tmp, index=False))
    return path


def write_table(df: pd.DataFrame, csv_path: str) -> list[str]:
    """CSV, and Parquet next to it where pyarrow is installed."""
    paths = [write_csv(df, csv_path)]
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        return paths
    pq = os.path.splitext(csv_path)[0] + ".parquet"
    try:
        atomic_write(pq, lambda tmp: df.to_parquet(tmp, index=False))
        paths.append(pq)
    except (ValueError, TypeError, ImportError, OSError) as e:  # e.g. pyarrow.ArrowTypeError
        # mixed-type columns: the CSV is the record, Parquet a convenience
        print(f"Parquet not written ({type(e).__name__}: {e})")
    return paths


def md_table(df: pd.DataFrame, floatfmt: str = ".4g") -> str:
    """A GitHub Markdown table."""

    def cell(v):
        if isinstance(v, (float, np.floating)):
            return fnum(float(v), floatfmt)
        return str(v).replace("|", "\\|")

    head = "| " + " | ".join(map(str, df.columns)) + " |"
    sep = "| " + " | ".join("---" for _ in df.columns) + " |"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *rows])


class Echo:
    """Print lines and keep them, for the report."""

    def __init__(self):
        self.lines: list[str] = []

    def __call__(self, line: str = "") -> None:
        print(line)
        self.lines.extend(str(line).split("\n"))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def all_cells(panels, panel_key: str | None) -> pd.DataFrame:
    """The cells of all panels in one table (the panel key first)."""
    frames = []
    for p in panels:
        c = p.cells.copy()
        if panel_key:
            c.insert(0, panel_key, p.value)
        frames.append(c)
    return pd.concat(frames, ignore_index=True)


def write_outputs(
    args, runs: Runs, echo: Echo, stem: str, title: str, figures, csvs, describe: str, tables
) -> int:
    """Write the figures, the CSVs, the runs analysed and the Markdown report to ``--out``.

    ``figures``: (stem suffix, Figure); ``csvs``: (name, DataFrame) written as
    ``<stem>_<name>.csv``; ``describe``: the report's line on the keys; ``tables``: (heading,
    DataFrame) shown in the report, after the printed summary.
    """
    out_dir = args.out or default_out_dir(args.dirs)
    figs = [
        path for sfx, fig in figures for path in save_figure(fig, out_dir, stem + sfx, args.pdf)
    ]
    files = list(figs)
    for name, df in csvs:
        files.append(write_csv(df, os.path.join(out_dir, f"{stem}_{name}.csv")))
    files += write_table(
        runs.df.rename(columns={"y": f"analysed_{args.metric}"}),
        os.path.join(out_dir, f"{stem}_runs.csv"),
    )
    report_path = os.path.join(out_dir, f"{stem}.md")
    echo("\nwrote " + ", ".join([*files, report_path]))
    intro = [
        runs.report.summary(),
        describe,
        f"intervals: {args.confidence:.0%} {boot_desc(args)}",
        *runs.notes,
    ]
    buf = io.StringIO()
    w = buf.write
    w(f"# {title}\n\n")
    w("Inputs: " + ", ".join(f"`{os.path.abspath(d)}`" for d in args.dirs) + "\n\n")
    for line in intro:
        w(f"- {line}\n")
    w("\n")
    for fig in figs:
        w(f"![{os.path.basename(fig)}]({os.path.relpath(fig, out_dir)})\n\n")
    w("## Printed summary\n\n```text\n" + echo.text.rstrip() + "\n```\n\n")
    for name, df in tables:
        w(f"## {name}\n\n{md_table(df)}\n\n")
    w("## Files\n\n")
    for f in files:
        w(f"- [`{os.path.basename(f)}`]({os.path.relpath(f, out_dir)})\n")
    write_text(report_path, buf.getvalue())
    return 0
