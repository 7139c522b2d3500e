"""Figures and the names on them: keys as symbols (lam -> λ), numbers as the notebooks print
them, the notebooks' colours, and the marks every figure shares. Figures are
:class:`matplotlib.figure.Figure` objects (no pyplot state), so importing this module never
changes the caller's matplotlib backend."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import blended_transform_factory

from analysis.stats import sigmoid

SYMBOLS = {"lam": "λ", "lambda": "λ", "noise.rate": "η", "noise_rate": "η", "model.width": "width",
           "width_mult": "width"}
PLURALS = {"lr": "learning rates", "model.width": "model sizes", "width_mult": "model sizes"}
TITLES = {"lr": "Learning Rate", "model.width": "Model Size", "width_mult": "Model Size"}
NOTEBOOK_COLORS = ["#3498db", "#2ecc71", "#e74c3c"]  # ascending values (3 widths, 3 lrs)
MIN_ERROR_SPAN = 0.05  # the smallest y range an error axis shows: 0.002 must not look like a cliff


def sym(key: str) -> str:
    return SYMBOLS.get(key, key)


def plural(key: str) -> str:
    return PLURALS.get(key, f"{sym(key)} values")


def title_name(key: str) -> str:
    return TITLES.get(key, sym(key))


def fmt(value) -> str:
    """A grouped value as the notebooks print it (0.5, 1.0, 0.05)."""
    if isinstance(value, (float, np.floating)) and math.isfinite(value):
        return str(float(f"{float(value):.10g}"))
    return str(value.item() if isinstance(value, np.generic) else value)


def panel_prefix(panel_key, value) -> str:
    """``η=0.4: `` before a panel's titles ("" with one panel)."""
    return f"{label(panel_key, value)}: " if panel_key else ""


def label(key: str, value) -> str:
    """``width=1.0×`` for widths (as the notebook), ``key=value`` otherwise."""
    return f"width={fmt(value)}×" if key in ("model.width", "width_mult") else f"{sym(key)}={fmt(value)}"


def fnum(x, spec: str = ".4f") -> str:
    """A number, or a word where it is missing / beyond the grid."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return {math.inf: "above grid", -math.inf: "below grid"}.get(x) or format(x, spec)


def fci(lo, hi, spec: str = ".4f") -> str:
    return "[no interval]" if math.isnan(lo) and math.isnan(hi) else f"[{fnum(lo, spec)}, {fnum(hi, spec)}]"


def palette(values) -> dict:
    """One colour per value: the notebooks' blue/green/red for up to 3, tab10/viridis beyond."""
    values = list(values)
    if len(values) <= 3:
        return dict(zip(values, NOTEBOOK_COLORS))
    cmap, n = matplotlib.colormaps["tab10" if len(values) <= 10 else "viridis"], len(values)
    return {v: cmap(i if n <= 10 else i / (n - 1)) for i, v in enumerate(values)}


def typical_n(ns) -> int:
    """The most common number of runs per cell (cells with runs only)."""
    ns = [int(n) for n in ns if n > 0]
    return max(set(ns), key=lambda n: (ns.count(n), n)) if ns else 0


def seeds_note(ns, figure: bool = False) -> str:
    """How many seeds each point rests on (``figure``: points off the typical n are labelled)."""
    ns = [int(n) for n in ns if n > 0]
    if not ns:
        return "no runs"
    if min(ns) == max(ns):
        return f"n = {ns[0]} seed{'s' if ns[0] != 1 else ''} per point"
    return f"n = {min(ns)}–{max(ns)} seeds per point" + (f" (labelled where not {typical_n(ns)})" if figure else "")


def new_figure(nrows: int, ncols: int, width: float = 7.0, height: float = 5.0):
    fig = Figure(figsize=(width * ncols, height * nrows), layout="constrained")
    return fig, np.atleast_2d(fig.subplots(nrows, ncols, squeeze=False))


def min_span(ax, span: float = MIN_ERROR_SPAN, bottom: float | None = None) -> None:
    """Widen the y axis to at least ``span`` around the data (never below ``bottom``)."""
    lo, hi = ax.get_ylim()
    if hi - lo < span:
        mid = 0.5 * (lo + hi)
        lo = mid - span / 2 if bottom is None else max(bottom, mid - span / 2)
        ax.set_ylim(lo, lo + span)


def grid_ticks(ax, xs) -> None:
    """The grid's lambdas as x ticks where they are far enough apart to read (an adaptive sweep
    places lambdas 0.002 apart); else matplotlib's own ticks. Labels as short as the values."""
    xs = np.unique(np.asarray(xs, dtype=float))
    if xs.size > 1 and np.diff(xs).min() < np.ptp(xs) / 25:
        return
    ax.set_xticks(xs, [f"{x:g}" for x in xs])


def mark_missing(ax, xs, color) -> None:
    """Crosses on the bottom edge of the axes at x values with no runs."""
    if len(xs):
        ax.plot(list(xs), [0.03] * len(xs), transform=blended_transform_factory(ax.transData, ax.transAxes),
                linestyle="none", marker="x", markersize=9, markeredgewidth=2, color=color, clip_on=False, zorder=5)


def estimate(ax, x, y, xerr=None, yerr=None, color="0.3", **kw) -> None:
    """A white diamond with its interval: an estimate."""
    ax.errorbar([x], [y], xerr=xerr, yerr=yerr, marker="D", markersize=8, markerfacecolor="white", markeredgewidth=2,
                color=color, capsize=5, zorder=6, **kw)


def estimate_handle(text: str, color="0.3") -> Line2D:
    return Line2D([], [], color=color, marker="D", markerfacecolor="white", markeredgewidth=2, linestyle="none",
                  label=text)


MISSING_HANDLE = Line2D([], [], linestyle="none", marker="x", color="0.3", markeredgewidth=2,
                        label="missing cell (no runs)")


def error_curve(ax, x, mean, std, n, missing, n_typical, color, text, fit) -> set:
    """One curve's cell means with std bars, its logistic ``fit`` dashed (where there is one),
    its ``missing`` cells crossed and points off the typical n labelled: what was drawn ("fit",
    "missing"), for the legend."""
    ax.errorbar(x, mean, yerr=np.nan_to_num(std), marker="o", color=color, capsize=4, label=text, linewidth=2)
    drawn = {"missing"} if missing.any() else set()
    if np.isfinite(fit[3]):
        xf = np.linspace(x.min(), x.max(), 200)
        ax.plot(xf, sigmoid(xf, *fit), color=color, linestyle="--", linewidth=1, alpha=0.8)
        drawn.add("fit")
    mark_missing(ax, x[missing], color)
    annotate_n(ax, x, mean, n, n_typical, color)
    return drawn


def annotate_n(ax, xs, ys, ns, n_typical, color) -> None:
    """Label the points that rest on another number of seeds than the typical cell."""
    for x, y, n in zip(xs, ys, ns):
        if 0 < n != n_typical and np.isfinite(y):
            ax.annotate(f"n={int(n)}", (x, y), textcoords="offset points", xytext=(5, 6), fontsize=8, color=color)


def err_interval(v: float, lo: float, hi: float):
    """An errorbar's [[below], [above]] for an estimate and its interval (None without one)."""
    if not (np.isfinite(v) and np.isfinite(lo) and np.isfinite(hi)):
        return None
    return [[max(v - lo, 0)], [max(hi - v, 0)]]


# --------------------------------------------------------------------------- runs and the collapse probability


def runs_strip(ax, g, index: int, color, threshold) -> set:
    """Every run of curve ``index`` of the grid ``g`` as a point (a jittered strip per x, the
    curves side by side), under the curve of means; runs above ``threshold`` (collapsed) as
    crosses. What was drawn ("runs", "collapsed"), for the legend."""
    step = float(np.min(np.diff(g.xs))) if g.xs.size > 1 else 1.0
    nc = len(g.curves)
    offset = (index - (nc - 1) / 2) * 0.5 * step / max(nc, 1)
    rng = np.random.default_rng(index)
    drawn = set()
    for (i, j), y in zip(g.where, g.samples):
        if i != index:
            continue
        x = g.xs[j] + offset + rng.uniform(-0.1, 0.1, y.size) * step / max(nc, 1)
        bad = y > threshold if threshold is not None and np.isfinite(threshold) else np.zeros(y.size, bool)
        ax.scatter(x[~bad], y[~bad], s=12, color=color, alpha=0.45, linewidths=0, zorder=1)
        if bad.any():
            ax.scatter(x[bad], y[bad], s=40, marker="X", color=color, edgecolors="black", linewidths=0.6, zorder=2)
            drawn.add("collapsed")
        drawn.add("runs")
    return drawn


def strip_legend(ax, drawn: set, threshold) -> list:
    """The collapse threshold line under :func:`runs_strip`'s runs (where there are any), and
    legend entries for both."""
    if "runs" in drawn:
        ax.axhline(threshold, color="0.55", linestyle="-.", linewidth=1)
    out = [Line2D([], [], linestyle="none", marker="o", color="0.4", alpha=0.6, markersize=4,
                  label="one run (jittered)")] if "runs" in drawn else []
    out += [Line2D([], [], linestyle="none", marker="X", color="0.4", markeredgecolor="black", markersize=7,
                   label=f"collapsed run (> {threshold:.2f})")] if "collapsed" in drawn else []
    if threshold is not None and np.isfinite(threshold) and "runs" in drawn:
        out.append(Line2D([], [], color="0.55", linestyle="-.", linewidth=1, label="collapse threshold"))
    return out


def collapse_curves(ax, g, colors, curve_key: str, args) -> None:
    """The collapse probability axes of a panel: every curve's collapse_curve side by side (a
    small x offset each), its lambda_c at P = 0.5 where it lies on the grid (an extrapolated one
    is not drawn, nor one of a curve whose P is not shown to rise: collapse.located), P = 0.5,
    the titles, and a note where no run collapsed."""
    from analysis.collapse import MIN_RUNS, located, rises

    step = float(np.min(np.diff(g.xs))) if g.xs.size > 1 else 1.0
    for i, (c, f) in enumerate(zip(g.curves, g.logits)):
        offset = (i - (len(g.curves) - 1) / 2) * 0.12 * step
        collapse_curve(ax, g, i, f if rises(f) else None, colors[c], label(curve_key, c), args.x_key, offset)
        mid, mlo, mhi = located(f, (g.xs.min(), g.xs.max()))
        if not math.isnan(mid):
            lo, hi = max(mlo, g.xs.min()), min(mhi, g.xs.max())
            estimate(ax, mid, f.ceiling[0] / 2 if f.rise else 0.5, xerr=err_interval(mid, lo, hi), color=colors[c])
    ax.axhline(0.5, color="0.6", linestyle=":", linewidth=1)
    x_sym = sym(args.x_key)
    ax.set(xlabel=x_sym, ylabel=f"P(collapse): {args.metric} > {args.collapse_error:.2f}", ylim=(-0.05, 1.05),
           title=f"{panel_prefix(args.panel_key, g.value)}Collapse probability vs {x_sym}: fraction "
           f"of runs, {args.confidence:.0%} {args.binomial_interval} interval\n(hollow: < {MIN_RUNS} runs; "
           f"lines: binomial logistic where P rises; diamonds: its mid-rise, {x_sym}_c)")
    grid_ticks(ax, g.xs)
    ax.grid(True, alpha=0.3)
    if not any(f.n_collapsed for f in g.logits):
        ax.text(0.5, 0.6, "no run collapsed", ha="center", transform=ax.transAxes, color="0.3")


def collapse_curve(ax, g, index: int, fit, color, text, x_key: str, offset: float = 0.0) -> None:
    """One curve's collapse fraction per cell with its binomial interval (hollow where a cell
    has few runs), and the fitted logistic where there is one."""
    cs = g.cells[g.cells.iloc[:, 0] == g.curves[index]]
    x = cs[x_key].to_numpy(float) + offset
    p, lo, hi, few = (cs[k].to_numpy() for k in ("p_collapse", "p_lo", "p_hi", "few_runs"))
    ok = np.isfinite(p.astype(float))
    yerr = np.vstack([p - lo, hi - p]).astype(float)
    ax.errorbar(x[ok], p[ok].astype(float), yerr=np.clip(yerr[:, ok], 0, None), marker="o", linestyle="none",
                capsize=3, color=color, label=text, markerfacecolor=color)
    sel = ok & few.astype(bool)
    if sel.any():
        ax.plot(x[sel], p[sel].astype(float), marker="o", linestyle="none", color=color, markerfacecolor="white",
                zorder=4)
    if fit is not None and fit.fitted and math.isfinite(fit.lam_c[0]):
        xf = np.linspace(g.xs.min(), g.xs.max(), 300)
        ax.plot(xf, fit.p(xf), color=color, linewidth=1.5)
