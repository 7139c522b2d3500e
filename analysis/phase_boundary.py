"""Q3, lr x lambda: where the error crosses a threshold (the phase boundary), per lr.

    python -m analysis.phase_boundary DIR... [--threshold 0.20] [--out FIG_DIR]
        [--curve-key lr] [--panel-key noise.rate] [--x-key lam] [--metric best_error]

Reproduces the notebook's analysis (``001_*``): per noise rate, mean best error vs lambda per
lr with std error bars and the 0.15 / 0.25 guide lines, and lambda_c per lr as bars; prints the
best error and its lambda, and lambda_c, per lr and noise rate. lambda_c as in the notebook:
the first lambda (ascending) whose mean error exceeds the threshold.

Beyond it:

- lambda_c by linear interpolation of the crossing of the threshold between the two
  neighbouring lambdas that bracket it. The direction is detected (sign of the least-squares
  slope of the mean error vs lambda), not assumed: lambda_c is the first entry into the
  high-error phase scanning from the low-error side (ascending lambda when the error rises
  with lambda, descending when it falls). No crossing: "below grid" / "above grid";
- a percentile bootstrap interval over seeds (the runs of each cell resampled independently;
  the direction is held at the one detected on all the data);
- the notebook's verdict, decided: "Phase boundary depends on (lambda, eta, lr)" when some two
  lrs' intervals do not overlap, else "Phase structure is robust to lr variation".

Writes to ``--out`` (default ``<first DIR>/analysis``): ``phase_boundary.png`` (+ ``.pdf``),
``phase_boundary_cells.csv``, ``phase_boundary_summary.csv``, ``phase_boundary_verdict.csv``,
``phase_boundary_runs.csv`` (the runs analysed) and the report ``phase_boundary.md``.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from analysis import common as C

STEM = "phase_boundary"


# --------------------------------------------------------------------------- statistics


def detect_direction(xs: np.ndarray, mean: np.ndarray) -> int:
    """+1 if the mean error rises with lambda (least-squares slope), -1 if it falls, 0 if flat."""
    ok = np.isfinite(mean)
    if ok.sum() < 2:
        return 0
    slope = np.polyfit(xs[ok], mean[ok], 1)[0]
    if abs(slope) * np.ptp(xs[ok]) <= 1e-9 * max(1.0, float(np.abs(mean[ok]).max())):
        return 0  # flat (up to rounding)
    return int(np.sign(slope))


def notebook_lambda_c(xs: np.ndarray, mean: np.ndarray, threshold: float) -> float:
    """The notebook's lambda_c: the first lambda (ascending) whose mean error exceeds it."""
    for x, m in zip(xs, mean):
        if np.isfinite(m) and m > threshold:
            return float(x)
    return math.nan


def interpolated_lambda_c(
    xs: np.ndarray, mean: np.ndarray, threshold: float, direction: int
) -> float:
    """Linear interpolation of the first entry into the high-error phase (mean > threshold),
    scanning from the low-error side. ±inf: the boundary lies beyond the grid on that side;
    NaN: no crossing in the given direction (or no direction)."""
    ok = np.isfinite(mean)
    x, y = xs[ok], mean[ok]
    if x.size < 2 or direction == 0:
        return math.nan
    if direction < 0:  # the error falls with lambda: the low-error side is high lambda
        x, y = x[::-1], y[::-1]
    bad = y > threshold
    for i in range(1, x.size):
        if bad[i] and not bad[i - 1]:
            return float(x[i - 1] + (threshold - y[i - 1]) * (x[i] - x[i - 1]) / (y[i] - y[i - 1]))
    if bad.all():
        return -math.inf if direction > 0 else math.inf
    if not bad.any():
        return math.inf if direction > 0 else -math.inf
    return math.nan


@dataclass
class Panel:
    value: object
    curves: list
    xs: np.ndarray
    cells: pd.DataFrame
    directions: dict  # curve -> +1 / -1 / 0
    notebook: dict  # curve -> notebook lambda_c (grid value or NaN)
    best: dict  # curve -> (best mean error, its lambda)
    boot: C.Boot  # one statistic per curve: the interpolated lambda_c

    def lambda_c(self, curve):
        i = self.curves.index(curve)
        return float(self.boot.point[i]), *self.boot.ci(i)


def analyse_panel(g: C.Grid, args) -> Panel:
    curves, xs, cells = g.curves, g.xs, g.cells
    directions, notebook, best = {}, {}, {}
    for c in curves:
        _, mean, _, _ = C.curve_cells(cells, args.curve_key, c, args.x_key)
        directions[c] = detect_direction(xs, mean)
        notebook[c] = notebook_lambda_c(xs, mean, args.threshold)
        j = int(np.nanargmin(mean))
        best[c] = (float(mean[j]), float(xs[j]))
    dirs = [directions[c] for c in curves]

    def statistic(samples):
        batch = samples[0].shape[:-1]
        mean = np.full(batch + (len(curves), xs.size), np.nan)
        for (i, j), a in zip(g.where, samples):
            mean[..., i, j] = a.mean(-1)
        out = np.full((len(curves),) + batch, np.nan)
        for i in range(len(curves)):
            for idx in np.ndindex(batch):
                out[(i, *idx)] = interpolated_lambda_c(
                    xs, mean[idx + (i,)], args.threshold, dirs[i]
                )
        return out

    boot = C.bootstrap_cells(
        g.samples, statistic, n_boot=args.n_boot, seed=args.boot_seed, confidence=args.confidence
    )
    return Panel(g.value, curves, xs, cells, directions, notebook, best, boot)


def verdict(panel: Panel, args) -> tuple[str, str, str]:
    """(short verdict, the notebook's line, the reason) from whether the intervals overlap."""
    x, p, c = (
        C.sym(args.x_key),
        C.sym(args.panel_key) if args.panel_key else None,
        C.sym(args.curve_key),
    )
    depends = f"Phase boundary depends on ({', '.join(s for s in (x, p, c) if s)})"
    robust = f"Phase structure is robust to {c} variation"
    ivs = []
    for curve in panel.curves:
        _, lo, hi = panel.lambda_c(curve)
        if not (math.isnan(lo) or math.isnan(hi)):
            ivs.append((curve, lo, hi))
    if len(ivs) < 2:
        why = (
            f"fewer than two {c} values have a {x}_c interval "
            "(no crossing, or fewer than 2 seeds per cell)"
        )
        return "undetermined", f"Undetermined: {why}", why
    hi_lo = max(ivs, key=lambda t: t[1])
    lo_hi = min(ivs, key=lambda t: t[2])
    if hi_lo[1] > lo_hi[2]:
        why = (
            f"the {x}_c intervals of {C.label(args.curve_key, lo_hi[0])} "
            f"{C.fci(lo_hi[1], lo_hi[2], '.3f')} and {C.label(args.curve_key, hi_lo[0])} "
            f"{C.fci(hi_lo[1], hi_lo[2], '.3f')} do not overlap"
        )
        return "depends", depends, why
    inside = [t for t in ivs if math.isfinite(panel.lambda_c(t[0])[0])]
    if len(inside) < 2:
        why = (
            f"the {x}_c intervals overlap, but fewer than two {c} values cross the threshold "
            f"inside the {x} grid, so the overlap says nothing"
        )
        return "undetermined", f"Undetermined: {why}", why
    why = (
        f"all {len(ivs)} {x}_c intervals overlap (common range {C.fci(hi_lo[1], lo_hi[2], '.3f')})"
    )
    return "robust", robust, why


# --------------------------------------------------------------------------- figure


def draw(panels, args) -> C.Figure:
    fig, axes = C.new_figure(len(panels), 2)
    x_sym = C.sym(args.x_key)
    curves_all = sorted({c for p in panels for c in p.curves})
    colors = C.palette(curves_all)
    is_error = args.metric.endswith("_error")
    for r, p in enumerate(panels):
        head = f"{C.label(args.panel_key, p.value)}: " if args.panel_key else ""
        note = C.seeds_note(p.cells["n"], figure=True)
        n_full = C.typical_n(p.cells["n"])
        ax, axb = axes[r, 0], axes[r, 1]
        any_missing = False
        for c in p.curves:
            x, m, sd, n = C.curve_cells(p.cells, args.curve_key, c, args.x_key)
            ax.errorbar(
                x,
                m,
                yerr=np.nan_to_num(sd),
                marker="o",
                color=colors[c],
                capsize=4,
                label=C.label(args.curve_key, c),
                linewidth=2,
            )
            missing = x[n == 0]
            any_missing |= missing.size > 0
            C.mark_missing(ax, missing, colors[c])
            C.annotate_n(ax, x, m, n, n_full, colors[c])
            lc, lo, hi = p.lambda_c(c)
            if np.isfinite(lc):
                xerr = None
                if np.isfinite(lo) and np.isfinite(hi):
                    xerr = [[max(lc - lo, 0)], [max(hi - lc, 0)]]
                ax.errorbar(
                    [lc],
                    [args.threshold],
                    xerr=xerr,
                    marker="D",
                    markersize=8,
                    markerfacecolor="white",
                    markeredgewidth=2,
                    color=colors[c],
                    capsize=5,
                    zorder=6,
                )
        if args.guides:
            for g, col in zip(args.guides, ("green", "red", "0.4", "0.4")):
                ax.axhline(y=g, color=col, linestyle="--", alpha=0.5)
        ax.axhline(y=args.threshold, color="0.2", linestyle=":", linewidth=1.2)
        ax.set_xlabel(x_sym, fontsize=12)
        ax.set_ylabel("Test Error" if is_error else args.metric, fontsize=12)
        ax.set_title(
            f"{head}Error vs {x_sym} (different {C.plural(args.curve_key)})\n{note}", fontsize=12
        )
        ax.grid(True, alpha=0.3)
        if is_error:
            ax.set_ylim(0, 1)
        ax.set_xticks(p.xs)
        handles, _ = ax.get_legend_handles_labels()
        handles += [
            Line2D([], [], color="0.2", linestyle=":", label=f"threshold {args.threshold:.2f}"),
            C.estimate_handle(f"{x_sym}_c (interpolated), {args.confidence:.0%} CI"),
        ]
        if args.guides:
            handles.append(
                Line2D(
                    [],
                    [],
                    color="0.5",
                    linestyle="--",
                    alpha=0.7,
                    label="guides " + " / ".join(f"{g:.2f}" for g in args.guides),
                )
            )
        if any_missing:
            handles.append(C.MISSING_HANDLE)
        ax.legend(handles=handles, fontsize=9)

        # right: lambda_c per curve (notebook bars + interpolated estimate with interval)
        span = float(p.xs.max() - p.xs.min()) or 1.0
        ylo, yhi = p.xs.min() - 0.15 * span, p.xs.max() + 0.15 * span
        pos = np.arange(len(p.curves))
        for i, c in enumerate(p.curves):
            nb = p.notebook[c]
            if np.isfinite(nb):
                axb.bar(i, nb, width=0.6, color=colors[c], alpha=0.85)
            else:
                axb.text(
                    i,
                    ylo + 0.05 * span,
                    f"notebook: none\n(never > {args.threshold:.2f})",
                    ha="center",
                    fontsize=8,
                )
            lc, lo, hi = p.lambda_c(c)
            if np.isfinite(lc):
                yerr = None
                if not (math.isnan(lo) or math.isnan(hi)):
                    yerr = [[max(lc - max(lo, ylo), 0)], [max(min(hi, yhi) - lc, 0)]]
                axb.errorbar(
                    [i],
                    [lc],
                    yerr=yerr,
                    marker="D",
                    markersize=9,
                    color="black",
                    markerfacecolor="white",
                    markeredgewidth=2,
                    capsize=6,
                    zorder=6,
                )
            elif math.isinf(lc):
                axb.annotate(
                    f"{x_sym}_c {'above' if lc > 0 else 'below'} grid",
                    (i, yhi if lc > 0 else ylo),
                    xytext=(i, yhi - 0.2 * (yhi - ylo) if lc > 0 else ylo + 0.2 * (yhi - ylo)),
                    ha="center",
                    va="center",
                    fontsize=10,
                    bbox={"boxstyle": "round", "fc": "white", "ec": "0.5"},
                    arrowprops={"arrowstyle": "->", "lw": 1.5},
                )
            else:
                axb.text(i, 0.5 * (ylo + yhi), "no crossing", ha="center", fontsize=9)
        for xv in p.xs:
            axb.axhline(xv, color="0.6", linestyle=":", linewidth=0.8, zorder=0)
        axb.set_ylim(ylo, yhi)
        axb.set_xticks(pos)
        axb.set_xticklabels([C.label(args.curve_key, c) for c in p.curves])
        axb.set_xlim(-0.6, len(p.curves) - 0.4)
        axb.set_ylabel(f"Critical {x_sym} ({x_sym}_c)", fontsize=12)
        dirs = {p.directions[c] for c in p.curves}
        trend = {1: "error rises with", -1: "error falls with", 0: "flat in"}
        trend_txt = trend[dirs.pop()] + f" {x_sym}" if len(dirs) == 1 else "mixed directions"
        axb.set_title(
            f"{head}Phase Boundary vs {C.title_name(args.curve_key)}\n({trend_txt}; dotted: grid {x_sym})",
            fontsize=12,
        )
        axb.grid(True, alpha=0.3, axis="y")
        axb.legend(
            handles=[
                Patch(
                    color="0.6",
                    label=f"notebook {x_sym}_c: first grid {x_sym} with error > {args.threshold:.2f}",
                ),
                C.estimate_handle(f"interpolated crossing, {args.confidence:.0%} CI", "black"),
            ],
            fontsize=9,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.09),
            ncol=2,
        )
    return fig


# --------------------------------------------------------------------------- main


def build_parser():
    parser = C.script_parser(
        "python -m analysis.phase_boundary",
        "Phase boundary lambda_c per lr (or any --curve-key) from dgl output folders.",
    )
    parser.add_argument(
        "--curve-key", default="lr", help="one curve / lambda_c per value (default: lr)"
    )
    parser.add_argument(
        "--threshold", type=float, default=0.20, help="error threshold of lambda_c (default 0.20)"
    )
    parser.add_argument(
        "--guides",
        type=float,
        nargs="*",
        default=[0.15, 0.25],
        help="horizontal guide lines on the error plot (default: 0.15 0.25, as the notebook)",
    )
    return parser


def main(argv=None) -> int:
    return C.script_main(build_parser(), run, argv)


def run(args) -> int:
    echo, runs = C.start(args, "--curve-key", args.curve_key, "LR-LAMBDA INTERACTION ANALYSIS")
    panels = [analyse_panel(g, args) for g in C.grids(runs.df, args, args.curve_key)]

    x_sym, c_key, thr = C.sym(args.x_key), args.curve_key, args.threshold
    # ---- the notebook's summary
    echo("\n--- Phase Boundary Analysis ---")
    for p in C.each_panel(echo, panels, args.panel_key):
        for c in p.curves:
            b, bx = p.best[c]
            nb = p.notebook[c]
            nb_txt = f"{nb:.2f}" if np.isfinite(nb) else "N/A"
            echo(
                f"  {C.label(c_key, c)}: best error={b:.4f} at {x_sym}={bx:.2f}, {x_sym}_c≈{nb_txt}"
            )

    # ---- beyond the notebook
    C.echo_seeds(echo, panels, c_key, args)
    echo(
        f"\n--- {x_sym}_c by linear interpolation of the crossing of {thr:.2f}, "
        f"{args.confidence:.0%} bootstrap intervals ({C.boot_desc(args)}) ---"
    )
    summary_rows, verdict_rows = [], []
    words = {
        1: f"rises with {x_sym}",
        -1: f"falls with {x_sym}",
        0: f"shows no trend in {x_sym} (flat, or fewer than 2 {x_sym} values)",
    }
    for p in C.each_panel(echo, panels, args.panel_key):
        for i, c in enumerate(p.curves):
            d = p.directions[c]
            lc, lo, hi = p.lambda_c(c)
            undefined = p.boot.frac_undefined(i)
            extra = ""
            if undefined and undefined > 0:
                extra = f"; no crossing in {undefined:.0%} of resamples (left out of the interval)"
            echo(
                f"  {C.label(c_key, c)}: error {words[d]}; {x_sym}_c={C.fnum(lc, '.3f')} "
                f"{C.fci(lo, hi, '.3f')} (notebook {x_sym}_c: {C.fnum(p.notebook[c], '.2f')}; "
                f"{C.seeds_note(p.cells.loc[p.cells[c_key] == c, 'n'])}){extra}"
            )
            if d < 0 and np.isfinite(p.notebook[c]) and p.notebook[c] == p.xs.min():
                echo(
                    f"    note: the notebook's definition assumes the error rises with {x_sym}; "
                    f"here it falls, so its {x_sym}_c is just the first grid point"
                )
            b, bx = p.best[c]
            summary_rows.append(
                {
                    **C.summary_start(p, args, c_key, c),
                    f"min_mean_{args.metric}": b,
                    f"argmin_{args.x_key}": bx,
                    f"{args.x_key}_c_notebook": p.notebook[c],
                    "direction": {1: "rising", -1: "falling", 0: "flat"}[d],
                    **C.ci_cols(f"{args.x_key}_c", (lc, lo, hi)),
                    "no_crossing_resamples": undefined,
                    "threshold": thr,
                }
            )
    echo("\n--- Conclusion ---")
    for p in panels:
        short, line, why = verdict(p, args)
        head = C.panel_head(args.panel_key, p.value)
        echo(f"{head}: {line}: {why}" if short != "undetermined" else f"{head}: {line}")
        verdict_rows.append(
            {
                **({args.panel_key: p.value} if args.panel_key else {}),
                "verdict": short,
                "conclusion": line,
                "reason": why,
            }
        )

    summary, verdicts = pd.DataFrame(summary_rows), pd.DataFrame(verdict_rows)
    return C.write_outputs(
        args,
        runs,
        echo,
        STEM,
        "Phase boundary (lr x lambda)",
        [("", draw(panels, args))],
        [
            ("cells", C.all_cells(panels, args.panel_key)),
            ("summary", summary),
            ("verdict", verdicts),
        ],
        f"metric: `{args.metric}`; curves by `{c_key}`, panels by `{args.panel_key}`, x `{args.x_key}`; threshold {thr:.2f}",
        [("Phase boundary per curve", summary), ("Conclusion", verdicts)],
    )


if __name__ == "__main__":
    sys.exit(main())
