"""Q3, lr x lambda: where the error crosses a threshold (the phase boundary), per lr.

    python -m analysis.phase_boundary DIR... [--threshold 0.20] [--out FIG_DIR] [--suggest N]
        [--curve-key lr] [--panel-key noise.rate] [--x-key lam] [--metric best_error]

Reproduces the notebook's analysis (``001_*``): per noise rate, mean best error vs lambda per
lr with std error bars and the 0.15 / 0.25 guide lines, and lambda_c per lr as bars (the
notebook's lambda_c: the first lambda, ascending, whose mean error exceeds the threshold).

Beyond it, lambda_c from a logistic fitted to each curve's cell means (refitted in every
bootstrap resample of the seeds), with the grid bracket in which the crossing lies (where the
logistic's crossing falls outside every bracket, the means' own straight-line crossing). The
interval is honest about the grid: where fewer than two cells lie on the transition, the
logistic's centre and width are not both determined by the data, so the interval is widened
to the whole bracket (the seed spread alone would claim a precision the grid does not have).
The notebook's verdict is decided from the intervals: "depends" when some two lrs' intervals
do not overlap. Writes ``phase_boundary.png``, ``_cells.csv``, ``_summary.csv``,
``_verdict.csv``, ``_runs.csv`` and the report ``phase_boundary.md`` to ``--out``.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from analysis import figures as FG
from analysis import report as R
from analysis import stats as S
from analysis.suggest import suggest

STEM = "phase_boundary"


def analyse_panel(g: S.Grid, args) -> S.Grid:
    """Adds ``g.est``: per curve, a dict of every estimate (see the keys below)."""
    thr, nc = args.threshold, len(g.curves)
    curves = [g.curve(args.curve_key, c, args.x_key) for c in g.curves]
    fits = [S.fit_sigmoid(g.xs, m, n) for _, m, _, n in curves]

    def statistic(samples):
        means = g.means(samples)
        return S.batched(
            means.shape[:-2],
            lambda idx: [
                S.threshold_crossing(g.xs, means[idx][i], curves[i][3], thr, p0=fits[i]) for i in range(nc)
            ],
            nc,
        )

    boot = S.bootstrap_cells(g.samples, statistic, n_boot=args.n_boot, seed=args.boot_seed, confidence=args.confidence)
    g.est = []
    for i, (x, mean, _, n) in enumerate(curves):
        fit_lo, fit_hi = boot.ci(i)
        lc, lo, hi = float(boot.point[i]), fit_lo, fit_hi
        brs, on = S.brackets(g.xs, mean, thr), S.on_transition(mean)
        rising = (
            (fits[i][1] > fits[i][0])
            if np.isfinite(fits[i][0])
            else mean[np.isfinite(mean)][-1] > mean[np.isfinite(mean)][0]
        )
        why = ""
        if not brs:  # never crosses on the grid: beyond it, on the side the error rises or falls to
            up = bool(np.all(mean[np.isfinite(mean)] > thr)) != rising
            edge = g.xs.max() if up else g.xs.min()
            lc, lo, hi = (math.inf, edge, math.inf) if up else (-math.inf, -math.inf, edge)
        elif on < 2 or n[np.isfinite(mean)].min() < 2 or not (np.isfinite(lc) and np.isfinite(lo) and np.isfinite(hi)):
            lo = min(b[0] for b in brs) if math.isnan(lo) else min(lo, *(b[0] for b in brs))
            hi = max(b[1] for b in brs) if math.isnan(hi) else max(hi, *(b[1] for b in brs))
            why = (
                (
                    f"the grid does not resolve the transition ({on} cell(s) on it): the interval is the grid "
                    f"bracket, not the seed spread {FG.fci(fit_lo, fit_hi, '.3f')}"
                )
                if on < 2
                else "a single seed in some cell (no seed spread to resample) or no fit: the interval is the "
                "grid bracket"
            )
        j = int(np.nanargmin(mean))
        g.est.append(
            {
                "lam_c": (lc, lo, hi),
                "fit_ci": (fit_lo, fit_hi),
                "fit": fits[i],
                "brackets": brs,
                "on": on,
                "why": why,
                "rising": rising,
                "notebook": S.notebook_lambda_c(g.xs, mean, thr),
                "best": (float(mean[j]), float(g.xs[j])),
                "undefined": boot.frac_undefined(i),
            }
        )
    return g


def verdict(p, args) -> tuple[str, str, str]:
    """(short verdict, the notebook's line, the reason) from whether the intervals overlap."""
    x, c = FG.sym(args.x_key), FG.sym(args.curve_key)
    depends = (
        f"Phase boundary depends on ({', '.join(FG.sym(k) for k in (args.x_key, args.panel_key, args.curve_key) if k)})"
    )
    ivs = [(curve, *e["lam_c"]) for curve, e in zip(p.curves, p.est) if not math.isnan(e["lam_c"][1] + e["lam_c"][2])]
    if len(ivs) < 2:
        why = f"fewer than two {c} values have a {x}_c interval (no crossing, or fewer than 4 {x} values)"
        return "undetermined", f"Undetermined: {why}", why
    hi_lo, lo_hi = max(ivs, key=lambda t: t[2]), min(ivs, key=lambda t: t[3])
    if hi_lo[2] > lo_hi[3]:
        why = (
            f"the {x}_c intervals of {FG.label(args.curve_key, lo_hi[0])} {FG.fci(lo_hi[2], lo_hi[3], '.3f')} and "
            f"{FG.label(args.curve_key, hi_lo[0])} {FG.fci(hi_lo[2], hi_lo[3], '.3f')} do not overlap"
        )
        return "depends", depends, why
    if sum(math.isfinite(t[1]) for t in ivs) < 2:
        why = f"fewer than two {c} values cross the threshold inside the {x} grid, so the overlap says nothing"
        return "undetermined", f"Undetermined: {why}", why
    why = f"all {len(ivs)} {x}_c intervals overlap (common range {FG.fci(hi_lo[2], lo_hi[3], '.3f')})"
    return "robust", f"Phase structure is robust to {c} variation", why


def draw(panels, args):
    fig, axes = FG.new_figure(len(panels), 2)
    x_sym, thr = FG.sym(args.x_key), args.threshold
    colors = FG.palette(sorted({c for p in panels for c in p.curves}))
    for r, p in enumerate(panels):
        head = f"{FG.label(args.panel_key, p.value)}: " if args.panel_key else ""
        ax, axb = axes[r]
        n_full, drawn = FG.typical_n(p.cells["n"]), set()
        for i, c in enumerate(p.curves):
            x, m, sd, n = p.curve(args.curve_key, c, args.x_key)
            e, col = p.est[i], colors[c]
            ax.errorbar(
                x,
                m,
                yerr=np.nan_to_num(sd),
                marker="o",
                color=col,
                capsize=4,
                label=FG.label(args.curve_key, c),
                linewidth=2,
            )
            FG.mark_missing(ax, x[n == 0], col)
            drawn |= {"missing"} if (n == 0).any() else set()
            FG.annotate_n(ax, x, m, n, n_full, col)
            if np.isfinite(e["fit"][3]):
                xf = np.linspace(p.xs.min(), p.xs.max(), 200)
                ax.plot(xf, S.sigmoid(xf, *e["fit"]), color=col, linestyle="--", linewidth=1, alpha=0.8)
                drawn.add("fit")
            lc, lo, hi = e["lam_c"]
            if np.isfinite(lc):
                FG.estimate(ax, lc, thr, xerr=FG.err_interval(lc, lo, hi), color=col)
                FG.estimate(axb, i, lc, yerr=FG.err_interval(lc, lo, hi), color="black")
                drawn.add("estimate")
            if np.isfinite(e["notebook"]):
                axb.bar(i, e["notebook"], width=0.6, color=col, alpha=0.85)
            for a, b in e["brackets"]:
                axb.fill_between([i - 0.35, i + 0.35], a, b, color="0.5", alpha=0.15, zorder=0)
            if not np.isfinite(lc):
                axb.text(i, p.xs.mean(), f"{x_sym}_c {FG.fnum(lc)}", ha="center", fontsize=10)
        for g, col in zip(args.guides, ("green", "red", "0.4", "0.4")):
            ax.axhline(y=g, color=col, linestyle="--", alpha=0.5)
        ax.axhline(y=thr, color="0.2", linestyle=":", linewidth=1.2)
        ax.set(xlabel=x_sym, ylabel="Test Error" if args.metric.endswith("_error") else args.metric, xticks=p.xs)
        ax.set_title(
            f"{head}Error vs {x_sym} (different {FG.plural(args.curve_key)})\n{FG.seeds_note(p.cells['n'], True)}"
        )
        if args.metric.endswith("_error"):
            ax.set_ylim(0, 1)
        ax.grid(True, alpha=0.3)
        handles = ax.get_legend_handles_labels()[0] + [
            Line2D([], [], color="0.2", linestyle=":", label=f"threshold {thr:.2f}")
        ]
        handles += [Line2D([], [], color="0.3", linestyle="--", label="logistic fit")] if "fit" in drawn else []
        handles += [FG.estimate_handle(f"{x_sym}_c, {args.confidence:.0%} CI")] if "estimate" in drawn else []
        handles += (
            [
                Line2D(
                    [],
                    [],
                    color="0.5",
                    linestyle="--",
                    label="guides " + " / ".join(f"{g:.2f}" for g in args.guides),
                )
            ]
            if args.guides
            else []
        )
        ax.legend(handles=handles + ([FG.MISSING_HANDLE] if "missing" in drawn else []), fontsize=9)
        span = float(np.ptp(p.xs)) or 1.0
        axb.set_ylim(p.xs.min() - 0.15 * span, p.xs.max() + 0.15 * span)
        for xv in p.xs:
            axb.axhline(xv, color="0.6", linestyle=":", linewidth=0.8, zorder=0)
        axb.set_xticks(range(len(p.curves)), [FG.label(args.curve_key, c) for c in p.curves])
        axb.set_xlim(-0.6, len(p.curves) - 0.4)
        axb.set_ylabel(f"Critical {x_sym} ({x_sym}_c)")
        axb.set_title(
            f"{head}Phase Boundary vs {FG.title_name(args.curve_key)}\n(dotted: grid {x_sym}; shaded: bracket of the crossing)"
        )
        axb.legend(
            handles=[Patch(color="0.6", label=f"notebook: first grid {x_sym} with error > {thr:.2f}")]
            + ([FG.estimate_handle(f"λ_c (crossing), {args.confidence:.0%} CI", "black")] if "estimate" in drawn else []),
            fontsize=9,
            loc="upper center",
            bbox_to_anchor=(0.5, -0.09),
            ncol=2,
        )
    return fig


def build_parser():
    parser = R.script_parser(
        "python -m analysis.phase_boundary", "Phase boundary lambda_c per lr (or any --curve-key)."
    )
    parser.add_argument("--curve-key", default="lr", help="one curve / lambda_c per value (default: lr)")
    parser.add_argument("--threshold", type=float, default=0.20, help="error threshold of lambda_c (default 0.20)")
    parser.add_argument(
        "--guides", type=float, nargs="*", default=[0.15, 0.25], help="guide lines (default: 0.15 0.25)"
    )
    return parser


def main(argv=None) -> int:
    return R.script_main(build_parser(), run, argv)


def run(args) -> int:
    echo, runs = R.start(args, "--curve-key", args.curve_key, "LR-LAMBDA INTERACTION ANALYSIS")
    panels = [analyse_panel(g, args) for g in S.grids(runs.df, args.panel_key, args.curve_key, args.x_key)]
    x, ck, thr = FG.sym(args.x_key), args.curve_key, args.threshold
    echo("\n--- Phase Boundary Analysis ---")  # the notebook's summary, in its format
    for p in R.each_panel(echo, panels, args.panel_key):
        for c, e in zip(p.curves, p.est):
            nb = f"{e['notebook']:.2f}" if np.isfinite(e["notebook"]) else "N/A"
            echo(f"  {FG.label(ck, c)}: best error={e['best'][0]:.4f} at {x}={e['best'][1]:.2f}, {x}_c≈{nb}")

    R.echo_seeds(echo, panels, ck, args)
    echo(
        f"\n--- {x}_c: crossing of {thr:.2f} by a logistic fitted to each curve (or by the means, where the logistic misses the bracket), {args.confidence:.0%} intervals "
        f"({R.boot_desc(args)}; widened to the grid bracket where the grid does not resolve the transition) ---"
    )
    rows, verdicts, plans = [], [], []
    for p in R.each_panel(echo, panels, args.panel_key):
        for c, e in zip(p.curves, p.est):
            lc, lo, hi = e["lam_c"]
            br = "; ".join(f"{a:.3g}-{b:.3g}" for a, b in e["brackets"]) or "none"
            echo(
                f"  {FG.label(ck, c)}: error {'rises' if e['rising'] else 'falls'} with {x}; {x}_c={FG.fnum(lc, '.3f')} "
                f"{FG.fci(lo, hi, '.3f')} (grid bracket {br}; notebook {x}_c: {FG.fnum(e['notebook'], '.2f')}; "
                f"{FG.seeds_note(p.cells.loc[p.cells[ck] == c, 'n'])})"
            )
            if e["why"]:
                echo(f"    note: {e['why']}")
            if e["undefined"] > 0:
                echo(f"    note: no crossing in {e['undefined']:.0%} of the resamples (left out of the interval)")
            if not e["rising"] and e["notebook"] == p.xs.min():
                echo(
                    f"    note: the notebook's rule assumes the error rises with {x}; here it falls, so its {x}_c is the first grid point"
                )
            rows.append(
                {
                    **R.summary_start(p, args, ck, c),
                    f"min_mean_{args.metric}": e["best"][0],
                    f"argmin_{args.x_key}": e["best"][1],
                    f"{args.x_key}_c_notebook": e["notebook"],
                    "direction": "rising" if e["rising"] else "falling",
                    **R.ci_cols(f"{args.x_key}_c", e["lam_c"]),
                    "fit_lo": e["fit_ci"][0],
                    "fit_hi": e["fit_ci"][1],
                    "grid_bracket": br,
                    "cells_on_transition": e["on"],
                    "threshold": thr,
                }
            )
            plans.append((p.value, c, p.xs, lo, hi, f"the {x}_c interval"))
    echo("\n--- Conclusion ---")
    for p in panels:
        short, line, why = verdict(p, args)
        head = R.panel_head(args.panel_key, p.value)
        echo(f"{head}: {line}: {why}" if short != "undetermined" else f"{head}: {line}")
        verdicts.append(
            {
                **({args.panel_key: p.value} if args.panel_key else {}),
                "verdict": short,
                "conclusion": line,
                "reason": why,
            }
        )
    if args.suggest:
        suggest(echo, args, runs.df, ck, plans, "python -m analysis.phase_boundary")
    summary, verdicts = pd.DataFrame(rows), pd.DataFrame(verdicts)
    return R.write_outputs(
        args,
        runs,
        echo,
        STEM,
        "Phase boundary (lr x lambda)",
        [("", draw(panels, args))],
        [
            ("cells", None, R.all_cells(panels, args.panel_key)),
            ("summary", "Phase boundary per curve", summary),
            ("verdict", "Conclusion", verdicts),
        ],
        f"metric: `{args.metric}`; curves by `{ck}`, panels by `{args.panel_key}`, x `{args.x_key}`; threshold {thr:.2f}",
    )


if __name__ == "__main__":
    sys.exit(main())
