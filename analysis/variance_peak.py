"""Q1, finite-size scaling: the variance peak of the error vs lambda, per model width.

    python -m analysis.variance_peak DIR... [--out FIG_DIR] [--size-key model.width]
        [--panel-key noise.rate] [--x-key lam] [--metric best_error] [--susceptibility]

Reproduces the notebook's analysis (``000_*``): per noise rate, mean best error vs lambda with
std error bars per width, and std of the best error vs lambda per width; prints the peak std
and its lambda per width and noise rate. Beyond it, with percentile bootstrap intervals over
seeds (the runs of each cell resampled independently):

- each peak's height (max over lambda of the std) and location (the grid argmax refined by
  the vertex of a parabola through it and its two neighbours);
- the transition: a sigmoid ``a + (b - a) / (1 + exp(-(lambda - lambda0) / s))`` fitted by
  least squares to the runs' errors (equivalently to the cell means weighted by n), with
  centre ``lambda0`` and width ``s`` (10-90 % of the step over 4.39 s), and the steepest
  slope of the mean curve between neighbouring lambdas;
- the two claims: does the peak rise with width (slope of ln peak std vs ln width > 0), does
  the transition sharpen (slope of ln s vs ln width < 0), each with its interval;
- ``--susceptibility``: a third column with chi = N * Var(error), N the model size
  (``--size-measure params``: ResNet18 parameters at that width multiplier, in millions).

Writes to ``--out`` (default ``<first DIR>/analysis``): ``variance_peak.png`` (+ ``.pdf`` with
``--pdf``), ``variance_peak_scaling.png``, ``variance_peak_cells.csv``,
``variance_peak_summary.csv``, ``variance_peak_claims.csv``, ``variance_peak_runs.csv`` (the
runs analysed, with the value used in ``analysed_<metric>``) and the report
``variance_peak.md``.
"""

from __future__ import annotations

import math
import sys
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from scipy.optimize import curve_fit
from scipy.special import expit

from analysis import common as C
from analysis.collect import AnalysisError

STEM = "variance_peak"
PER_SIZE = ("peak_std", "peak_x_grid", "peak_x", "sigmoid_width", "sigmoid_center", "max_slope")
CLAIMS = ("exp_peak", "exp_width", "exp_slope")
#: The claims tested: (question, statistic, its per-size input, side of 0 that answers yes,
#: yes, no, the quantity whose log-log slope against the size is the statistic).
CLAIM_TESTS = (
    ("peak height rises with size", "exp_peak", "peak_std", ">0", "the peak rises",
     "the peak falls", "peak std"),
    ("transition sharpens with size", "exp_width", "sigmoid_width", "<0", "it sharpens",
     "it broadens", "sigmoid width s"),
    ("steepest slope grows with size", "exp_slope", "max_slope", ">0", "it steepens",
     "it flattens", "steepest slope"),
)  # fmt: skip


# --------------------------------------------------------------------------- model size


def resnet18_params(width: float, num_classes: int = 10, in_channels: int = 3) -> int:
    """Parameters of the notebook's width-scalable CIFAR ResNet18 (3x3 stem, BN, no bias)."""
    chans = [int(c * width) for c in (64, 128, 256, 512)]
    total = in_channels * chans[0] * 9 + 2 * chans[0]  # stem conv + BN
    in_planes = chans[0]
    for stage, planes in enumerate(chans):
        for block in range(2):
            stride = 2 if (stage > 0 and block == 0) else 1
            total += in_planes * planes * 9 + 2 * planes + planes * planes * 9 + 2 * planes
            if stride != 1 or in_planes != planes:
                total += in_planes * planes + 2 * planes
            in_planes = planes
    return total + chans[3] * num_classes + num_classes


def size_measure(values, how: str) -> dict:
    """N per size value: ResNet18 parameters in millions, or the value itself."""
    if how == "params":
        return {v: resnet18_params(float(v)) / 1e6 for v in values}
    return {v: float(v) for v in values}


# --------------------------------------------------------------------------- statistics


def sigmoid(x, a, b, x0, s):
    return a + (b - a) * expit((x - x0) / s)


def _sigmoid_u(x, a, b, x0, u):
    return sigmoid(x, a, b, x0, np.exp(u))


def _sigmoid_u_jac(x, a, b, x0, u):
    s = np.exp(u)
    t = (x - x0) / s
    g = expit(t)
    dg = (b - a) * g * (1 - g)
    return np.stack([1 - g, g, -dg / s, -dg * t], axis=-1)


def fit_sigmoid(xs: np.ndarray, means: np.ndarray, ns: np.ndarray, p0=None):
    """(a, b, lambda0, s) of the least-squares sigmoid through the cell means (weights n).

    Levenberg-Marquardt (``curve_fit``) on ln s with the analytic Jacobian; ``p0`` (a previous
    fit, e.g. on all the data) warm-starts it. s is clipped to [span/200, 2 span]: a step
    sharper than that is not resolved by the grid, a wider one is not a transition within it.
    """
    ok = np.isfinite(means) & (ns > 0)
    if ok.sum() < 4:
        return (math.nan,) * 4
    x, m, n = xs[ok], means[ok], ns[ok]
    span = float(x.max() - x.min())
    if p0 is None or not np.all(np.isfinite(p0)):
        mid = 0.5 * (m[0] + m[-1])
        cross = np.nonzero(np.diff(np.sign(m - mid)))[0]
        x0 = float(0.5 * (x[cross[0]] + x[cross[0] + 1])) if cross.size else float(x.mean())
        p0 = (m[0], m[-1], x0, span / 6)
    a0, b0, x00, s0 = p0
    start = [a0, b0, x00, math.log(min(max(s0, span / 200), 2 * span))]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p, _ = curve_fit(
                _sigmoid_u,
                x,
                m,
                p0=start,
                sigma=1 / np.sqrt(n),
                jac=_sigmoid_u_jac,
                method="lm",
                maxfev=400,
            )
    except (RuntimeError, ValueError, FloatingPointError):
        return (math.nan,) * 4
    if not np.all(np.isfinite(p)):
        return (math.nan,) * 4
    a, b, x0, u = (float(v) for v in p)
    return a, b, x0, min(max(math.exp(u), span / 200), 2 * span)


def peak(std: np.ndarray, xs: np.ndarray):
    """Height, grid location and parabola-refined location of the max of std (..., nx)."""
    valid = np.isfinite(std)
    anyv = valid.any(-1)
    filled = np.where(valid, std, -np.inf)
    j = filled.argmax(-1)
    nx = xs.size

    def take(a, idx):
        return np.take_along_axis(a, idx[..., None], -1)[..., 0]

    h = np.where(anyv, take(filled, j), np.nan)
    x1 = np.where(anyv, xs[j], np.nan)
    jl, jr = np.clip(j - 1, 0, nx - 1), np.clip(j + 1, 0, nx - 1)
    y0, y1, y2 = take(filled, jl), h, take(filled, jr)
    xa, xb = xs[jl], xs[jr]
    inner = (j > 0) & (j < nx - 1) & np.isfinite(y0) & np.isfinite(y2)
    with np.errstate(divide="ignore", invalid="ignore"):
        den = (xa - x1) * (xa - xb) * (x1 - xb)
        A = (xb * (y1 - y0) + x1 * (y0 - y2) + xa * (y2 - y1)) / den
        B = (xb**2 * (y0 - y1) + x1**2 * (y2 - y0) + xa**2 * (y1 - y2)) / den
        vertex = -B / (2 * A)
    refined = np.where(inner & (A < 0), np.clip(vertex, xa, xb), x1)
    return h, x1, refined


def max_slope(mean: np.ndarray, xs: np.ndarray):
    """Steepest |d mean / d lambda| between neighbouring lambdas that both have runs."""
    out = np.full(mean.shape[:-1], np.nan)
    for idx in np.ndindex(mean.shape[:-1]):
        m = mean[idx]
        ok = np.isfinite(m)
        if ok.sum() >= 2:
            out[idx] = np.max(np.abs(np.diff(m[ok]) / np.diff(xs[ok])))
    return out


@dataclass
class Panel:
    value: object
    sizes: list
    xs: np.ndarray
    cells: pd.DataFrame  # size, x, n, n_diverged, mean, std
    boot: C.Boot
    names: list[str]
    fits: dict  # size -> (a, b, x0, s) on the full data
    claims: bool

    def get(self, name: str, size=None):
        key = name if size is None else f"{name}@{size!r}"
        i = self.names.index(key)
        return float(self.boot.point[i]), *self.boot.ci(i)


def analyse_panel(g: C.Grid, args) -> Panel:
    sizes, xs, cells = g.curves, g.xs, g.cells
    numeric = all(isinstance(s, (int, float, np.integer, np.floating)) and s > 0 for s in sizes)
    claims = numeric and len(sizes) >= 2
    size_arr = np.asarray(sizes, dtype=float) if numeric else None

    fits, ns = {}, []  # fits on all the data: drawn, and the bootstrap fits' starting point
    for s in sizes:
        _, mean, _, n = C.curve_cells(cells, args.size_key, s, args.x_key)
        fits[s] = fit_sigmoid(xs, mean, n)
        ns.append(n)
    start = [fits[s] for s in sizes]

    def statistic(samples):
        batch = samples[0].shape[:-1]
        out, heights, widths, slopes = [], [], [], []
        for i in range(len(sizes)):
            mean = np.full(batch + (xs.size,), np.nan)
            std = np.full(batch + (xs.size,), np.nan)
            for (si, j), a in zip(g.where, samples):
                if si != i:
                    continue
                mean[..., j] = a.mean(-1)
                if a.shape[-1] >= 2:
                    std[..., j] = a.std(-1, ddof=1)
            h, xg, xr = peak(std, xs)
            sw, x0 = np.full(batch, np.nan), np.full(batch, np.nan)
            for idx in np.ndindex(batch):
                _, _, x0[idx], sw[idx] = fit_sigmoid(xs, mean[idx], ns[i], p0=start[i])
            sl = max_slope(mean, xs)
            out += [h, xg, xr, sw, x0, sl]
            heights.append(h)
            widths.append(sw)
            slopes.append(sl)
        if claims:
            out += [
                C.log_slope(size_arr, np.stack(heights, -1)),
                C.log_slope(size_arr, np.stack(widths, -1)),
                C.log_slope(size_arr, np.stack(slopes, -1)),
            ]
        return np.stack(out)

    names = [f"{n}@{s!r}" for s in sizes for n in PER_SIZE] + (list(CLAIMS) if claims else [])
    boot = C.bootstrap_cells(
        g.samples, statistic, n_boot=args.n_boot, seed=args.boot_seed, confidence=args.confidence
    )
    return Panel(g.value, sizes, xs, cells, boot, names, fits, claims)


# --------------------------------------------------------------------------- figures


def draw_main(panels, args, measure) -> C.Figure:
    ncols = 3 if args.susceptibility else 2
    fig, axes = C.new_figure(len(panels), ncols)
    x_sym = C.sym(args.x_key)
    all_sizes = sorted({s for p in panels for s in p.sizes})
    colors = C.palette(all_sizes)
    metric_name = "Test Error" if args.metric.endswith("_error") else args.metric
    for r, p in enumerate(panels):
        head = f"{C.label(args.panel_key, p.value)}: " if args.panel_key else ""
        note = C.seeds_note(p.cells["n"], figure=True)
        n_full = C.typical_n(p.cells["n"])
        ax_e, ax_s = axes[r, 0], axes[r, 1]
        any_missing = False
        for s in p.sizes:
            c = colors[s]
            x, m, sd, n = C.curve_cells(p.cells, args.size_key, s, args.x_key)
            lab = C.label(args.size_key, s)
            ax_e.errorbar(
                x, m, yerr=np.nan_to_num(sd), marker="o", color=c, capsize=4, label=lab, linewidth=2
            )
            a, b, x0, w = p.fits[s]
            if np.isfinite(w):
                xf = np.linspace(p.xs.min(), p.xs.max(), 200)
                ax_e.plot(
                    xf, sigmoid(xf, a, b, x0, w), color=c, linestyle="--", linewidth=1, alpha=0.8
                )
            ax_s.plot(x, sd, marker="s", color=c, label=lab, linewidth=2)
            h, hlo, hhi = p.get("peak_std", s)
            loc, llo, lhi = p.get("peak_x", s)
            if np.isfinite(h):
                ax_s.errorbar(
                    [loc],
                    [h],
                    xerr=[[max(loc - llo, 0)], [max(lhi - loc, 0)]] if np.isfinite(llo) else None,
                    yerr=[[max(h - hlo, 0)], [max(hhi - h, 0)]] if np.isfinite(hlo) else None,
                    marker="D",
                    markersize=9,
                    markerfacecolor="white",
                    markeredgewidth=2,
                    color=c,
                    capsize=5,
                    elinewidth=1.5,
                    zorder=6,
                )
            missing = x[n == 0]
            any_missing |= missing.size > 0
            for ax in (ax_e, ax_s):
                C.mark_missing(ax, missing, c)
                C.annotate_n(ax, x, m if ax is ax_e else sd, n, n_full, c)
            if args.susceptibility:
                ax_c = axes[r, 2]
                ax_c.plot(x, measure[s] * sd**2, marker="^", color=c, label=lab, linewidth=2)
                C.mark_missing(ax_c, missing, c)
        ax_e.set_title(
            f"{head}Error vs {x_sym} (different {C.plural(args.size_key)})\n{note}", fontsize=12
        )
        ax_e.set_ylabel(metric_name, fontsize=12)
        ax_s.set_title(f"{head}Variance Peak (finite-size scaling)\n{note}", fontsize=12)
        ax_s.set_ylabel(f"Std({metric_name.split()[-1]}) - Variance Proxy", fontsize=12)
        extra_e = [Line2D([], [], color="0.3", linestyle="--", linewidth=1, label="sigmoid fit")]
        extra_s = [C.estimate_handle(f"peak, {args.confidence:.0%} CI")]
        if any_missing:
            extra_e.append(C.MISSING_HANDLE)
            extra_s.append(C.MISSING_HANDLE)
        cols = [(ax_e, extra_e), (ax_s, extra_s)]
        if args.susceptibility:
            ax_c = axes[r, 2]
            ax_c.set_title(f"{head}Susceptibility χ = N·Var\n{note}", fontsize=12)
            unit = "N in M params" if args.size_measure == "params" else f"N = {args.size_key}"
            ax_c.set_ylabel(f"χ = N·Var({metric_name.split()[-1]})  ({unit})", fontsize=12)
            cols.append((ax_c, [C.MISSING_HANDLE] if any_missing else []))
        for ax, extra in cols:
            ax.set_xlabel(x_sym, fontsize=12)
            ax.grid(True, alpha=0.3)
            handles, _ = ax.get_legend_handles_labels()
            ax.legend(handles=handles + extra, fontsize=9)
            ax.set_xticks(p.xs)
            ax.tick_params(axis="x", labelrotation=45 if p.xs.size > 8 else 0)
        ax_s.set_ylim(bottom=0)
        if not np.isfinite(p.cells["std"]).any():
            ax_s.text(
                0.5,
                0.5,
                "no std: fewer than 2 seeds in every cell",
                ha="center",
                transform=ax_s.transAxes,
                fontsize=12,
                color="0.3",
            )
    return fig


def draw_scaling(panels, args) -> C.Figure:
    from matplotlib.ticker import FormatStrFormatter, LogLocator, NullLocator

    fig, axes = C.new_figure(1, 2, width=6.5, height=5)
    ax_h, ax_w = axes[0]
    colors = C.palette([p.value for p in panels])
    shown = [p for p in panels if p.claims]
    plotted = set()
    for k, p in enumerate(shown):
        c = colors[p.value]
        # dodge the panels sideways a little (log x) so overlapping series stay visible
        sizes = np.asarray(p.sizes, dtype=float) * 1.025 ** (k - (len(shown) - 1) / 2)
        head = C.panel_head(args.panel_key, p.value)
        for ax, stat, exp in ((ax_h, "peak_std", "exp_peak"), (ax_w, "sigmoid_width", "exp_width")):
            vals = np.array([p.get(stat, s) for s in p.sizes])
            e, elo, ehi = p.get(exp)
            y, lo, hi = vals[:, 0], vals[:, 1], vals[:, 2]
            ok = np.isfinite(y) & (y > 0)
            if not ok.any():
                continue
            lo, hi = np.where(np.isfinite(lo), lo, y), np.where(np.isfinite(hi), hi, y)
            yerr = np.vstack([np.clip(y - lo, 0, None), np.clip(hi - y, 0, None)])[:, ok]
            plotted.add(ax)
            ax.errorbar(
                sizes[ok],
                y[ok],
                yerr=np.nan_to_num(yerr),
                marker="osD^v<>"[k % 7],
                markersize=7,
                capsize=5,
                linewidth=2,
                color=c,
                label=f"{head}: slope {C.fnum(e, '+.2f')} {C.fci(elo, ehi, '+.2f')}",
            )
    all_sizes = sorted({s for p in shown for s in p.sizes})
    for ax, title, ylab in (
        (ax_h, "Does the variance peak rise with size?", "peak Std of the error (log)"),
        (
            ax_w,
            "Does the transition sharpen with size?",
            f"sigmoid width s, in units of {C.sym(args.x_key)} (log)",
        ),
    ):
        if ax not in plotted:
            ax.text(
                0.5,
                0.5,
                "no estimates (too few seeds or lambdas)",
                ha="center",
                transform=ax.transAxes,
            )
            ax.set_title(title, fontsize=11)
            continue
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(all_sizes)
        ax.set_xticklabels([C.fmt(s) for s in all_sizes])
        ax.xaxis.set_minor_locator(NullLocator())
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 1.5, 2.0, 3.0, 5.0, 7.0)))
        ax.yaxis.set_major_formatter(FormatStrFormatter("%.3g"))
        ax.yaxis.set_minor_locator(NullLocator())
        ax.set_xlabel(f"{C.sym(args.size_key)} (log)", fontsize=12)
        ax.set_ylabel(ylab, fontsize=12)
        ax.set_title(
            f"{title}\n(estimate and {args.confidence:.0%} bootstrap CI; slope = log-log exponent)",
            fontsize=11,
        )
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=9)
    return fig


# --------------------------------------------------------------------------- main


def build_parser():
    parser = C.script_parser(
        "python -m analysis.variance_peak",
        "Variance peak (finite-size scaling) from dgl output folders.",
    )
    parser.add_argument(
        "--size-key", default="model.width", help="model size key (default: model.width)"
    )
    parser.add_argument(
        "--susceptibility", action="store_true", help="add a column with chi = N * Var(error)"
    )
    parser.add_argument(
        "--size-measure",
        choices=("params", "value"),
        default=None,
        help="N for --susceptibility: ResNet18 parameters (M) at the width multiplier "
        "(default for model.width / width_mult) or the size key's value (default otherwise)",
    )
    return parser


def main(argv=None) -> int:
    return C.script_main(build_parser(), run, argv)


def run(args) -> int:
    if args.size_measure is None:
        args.size_measure = "params" if args.size_key in ("model.width", "width_mult") else "value"
    echo, runs = C.start(args, "--size-key", args.size_key, "FINITE-SIZE SCALING ANALYSIS")
    df = runs.df
    measure = {}
    if args.susceptibility:
        try:
            measure = size_measure(sorted(df[args.size_key].unique().tolist()), args.size_measure)
        except (TypeError, ValueError):
            raise AnalysisError(
                f"--susceptibility: {args.size_key} values are not numbers"
            ) from None
    panels = [analyse_panel(g, args) for g in C.grids(df, args, args.size_key)]

    x_sym = C.sym(args.x_key)
    # ---- the notebook's summary
    echo("\n--- Variance Peak Analysis ---")
    for p in C.each_panel(echo, panels, args.panel_key):
        for s in p.sizes:
            h, _, _ = p.get("peak_std", s)
            xg, _, _ = p.get("peak_x_grid", s)
            if np.isfinite(h):
                echo(f"  {C.label(args.size_key, s)}: peak std={h:.4f} at {x_sym}={xg:.2f}")
            else:
                echo(f"  {C.label(args.size_key, s)}: no std (fewer than 2 seeds in every cell)")

    # ---- beyond the notebook
    conf = f"{args.confidence:.0%}"
    C.echo_seeds(echo, panels, args.size_key, args)
    echo(f"\n--- Peaks with {conf} bootstrap intervals ({C.boot_desc(args)}) ---")
    summary_rows = []
    edge_notes = []
    for p in C.each_panel(echo, panels, args.panel_key):
        for s in p.sizes:
            h, hlo, hhi = p.get("peak_std", s)
            loc, llo, lhi = p.get("peak_x", s)
            xg = p.get("peak_x_grid", s)[0]
            at_edge = bool(np.isfinite(xg) and (xg in (p.xs.min(), p.xs.max())))
            line = (
                f"  {C.label(args.size_key, s)}: peak std={C.fnum(h)} {C.fci(hlo, hhi)} "
                f"at {x_sym}={C.fnum(loc, '.3f')} {C.fci(llo, lhi, '.3f')} "
                f"(grid argmax {C.fnum(xg, '.2f')}; "
                f"{C.seeds_note(p.cells.loc[p.cells[args.size_key] == s, 'n'])})"
            )
            if args.susceptibility:
                N = measure[s]
                line += (
                    f"; chi=N·Var peak={C.fnum(N * h * h, '.4g')} "
                    f"{C.fci(N * hlo * hlo, N * hhi * hhi, '.4g')}"
                )
            echo(line)
            if at_edge:
                edge_notes.append(
                    f"{C.label(args.panel_key, p.value) + ' ' if args.panel_key else ''}"
                    f"{C.label(args.size_key, s)}: the peak is at the edge of the {x_sym} grid; "
                    "the true peak may lie outside the scanned range"
                )
            row = {
                **C.summary_start(p, args, args.size_key, s),
                **C.ci_cols("peak_std", (h, hlo, hhi)),
                f"peak_{args.x_key}_grid": xg,
                **C.ci_cols(f"peak_{args.x_key}", (loc, llo, lhi)),
                "peak_at_grid_edge": at_edge,
            }
            for stat in ("sigmoid_width", "sigmoid_center", "max_slope"):
                row.update(C.ci_cols(stat, p.get(stat, s)))
            if args.susceptibility:
                N = measure[s]
                row.update(
                    {
                        "size_N": N,
                        "chi_peak": N * h * h,
                        "chi_peak_lo": N * hlo * hlo,
                        "chi_peak_hi": N * hhi * hhi,
                    }
                )
            summary_rows.append(row)
    for n in edge_notes:
        echo(f"note: {n}")

    echo(
        f"\n--- Transition: sigmoid fit of mean {args.metric} vs {x_sym} "
        f"(centre {x_sym}0, width s; 10-90% over 4.39 s), steepest slope ---"
    )
    for p in C.each_panel(echo, panels, args.panel_key):
        for s in p.sizes:
            sw, swlo, swhi = p.get("sigmoid_width", s)
            x0, x0lo, x0hi = p.get("sigmoid_center", s)
            sl, sllo, slhi = p.get("max_slope", s)
            echo(
                f"  {C.label(args.size_key, s)}: {x_sym}0={C.fnum(x0, '.3f')} {C.fci(x0lo, x0hi, '.3f')}, "
                f"s={C.fnum(sw)} {C.fci(swlo, swhi)}, steepest |slope|={C.fnum(sl, '.2f')} "
                f"{C.fci(sllo, slhi, '.2f')} per unit {x_sym}"
            )
            if np.isfinite(x0) and not (p.xs.min() <= x0 <= p.xs.max()):
                echo("    note: the fitted centre lies outside the grid; s is poorly determined")

    echo(f"\n--- Claims ({conf} intervals) ---")
    claim_rows = []
    size_sym = C.sym(args.size_key)
    for p in C.each_panel(echo, panels, args.panel_key):
        if not p.claims:
            why = (
                f"only one value of {args.size_key}"
                if len(p.sizes) < 2
                else f"{args.size_key} is not a positive number"
            )
            echo(f"  cannot be answered: {why}")
            continue
        for claim, stat, per_size, yes_if, yes, no, what in CLAIM_TESTS:
            desc = f"d ln({what}) / d ln({size_sym})"
            e, lo, hi = p.get(stat)
            verdict = C.verdict_sign(lo, hi, yes_if, yes, no)
            left_out = [
                C.label(args.size_key, s) for s in p.sizes if not np.isfinite(p.get(per_size, s)[0])
            ]
            extra = f" ({', '.join(left_out)} left out: no estimate)" if left_out else ""
            echo(
                f"  {claim}? {verdict}: {desc} = {C.fnum(e, '+.3f')} {C.fci(lo, hi, '+.3f')}{extra}"
            )
            claim_rows.append(
                {
                    **({args.panel_key: p.value} if args.panel_key else {}),
                    "claim": claim,
                    "statistic": desc,
                    "estimate": e,
                    "lo": lo,
                    "hi": hi,
                    "verdict": verdict.split(" (")[0],
                    "undefined_resamples": p.boot.frac_undefined(p.names.index(stat)),
                }
            )

    # ---- outputs
    figures = [("", draw_main(panels, args, measure))]
    if any(p.claims for p in panels):
        figures.append(("_scaling", draw_scaling(panels, args)))
    cells = C.all_cells(panels, args.panel_key)
    cells["var"] = cells["std"] ** 2
    if args.susceptibility:
        cells["size_N"] = cells[args.size_key].map(measure)
        cells["chi"] = cells["size_N"] * cells["var"]
    summary = pd.DataFrame(summary_rows)
    claims = pd.DataFrame(claim_rows)
    csvs = [("cells", cells), ("summary", summary)] + ([] if claims.empty else [("claims", claims)])
    transition = [
        c
        for c in summary.columns
        if c in (args.panel_key, args.size_key) or c.startswith(("sigmoid", "max_slope"))
    ]
    tables = [
        (
            "Peaks",
            summary[[c for c in summary.columns if not c.startswith(("sigmoid", "max_slope"))]],
        ),
        ("Transition fits", summary[transition]),
    ] + ([] if claims.empty else [("Claims", claims)])
    return C.write_outputs(
        args,
        runs,
        echo,
        STEM,
        "Variance peak (finite-size scaling)",
        figures,
        csvs,
        f"metric: `{args.metric}`; size key `{args.size_key}`, panels by `{args.panel_key}`, x `{args.x_key}`",
        tables,
    )


if __name__ == "__main__":
    sys.exit(main())
