"""Q3, lr x lambda: where the error crosses a threshold (the phase boundary), per lr.

    python -m analysis.phase_boundary DIR... [--threshold 0.20] [--out FIG_DIR] [--suggest N]
        [--curve-key lr] [--panel-key noise.rate] [--x-key lam] [--metric best_error]

Reproduces the notebook's analysis (``001_*``): per noise rate, mean best error vs lambda per
lr with the 0.15 / 0.25 guide lines, and lambda_c per lr (the first lambda, ascending, whose
mean error exceeds the threshold). Beyond it, lambda_c from a logistic per curve with a
bootstrap interval widened to the grid bracket where the grid does not resolve the transition,
lambda_c at P(collapse) = 0.5 (analysis/collapse.py), and a verdict from each: see
docs/ANALYSIS.md for what each is and the files written.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from analysis import cli
from analysis import collapse as C
from analysis import figures as FG
from analysis import output as O
from analysis import stats as S
from analysis.suggest import suggest

STEM = "phase_boundary"
NOTEBOOK_BAR = "0.75"  # the notebook's lambda_c bars: one grey, as their legend entry
P_COLOR = "purple"  # lambda_c from the collapse probability


@dataclass
class Crossing:
    """One curve's lambda_c (where its mean crosses the threshold) and what it rests on."""

    lam_c: tuple  # (estimate, low, high): the interval widened to the bracket where the grid does not resolve it
    fit_ci: tuple  # (low, high): the bootstrap interval alone
    fit: tuple  # the logistic (a, b, x0, s) through the cell means
    brackets: list  # the grid brackets (x, next x) the mean crosses the threshold in
    on: int  # cells on the transition
    why: str  # why the interval is the bracket ("" where it is the bootstrap's)
    rising: bool  # the error rises with x
    notebook: float  # the notebook's lambda_c
    best: tuple  # (lowest mean, its x)
    undefined: float  # the fraction of resamples without a crossing

    @property
    def bracket_text(self) -> str:
        return "; ".join(f"{a:.3g}-{b:.3g}" for a, b in self.brackets) or "none"


@dataclass
class Panel(S.Grid):
    """One panel's grid and what :func:`analyse_panel` found in it."""

    crossings: list  # one Crossing per curve
    verdict: str  # depends, robust or undetermined: whether the curves' lambda_c intervals overlap
    conclusion: str  # the notebook's line
    reason: str
    logits: list  # one collapse.Logit per curve: P(collapse) against x
    verdict_p: tuple  # (short, line, reason) from the lambda_c(P = 0.5) intervals


# --------------------------------------------------------------------------- analysis


def analyse_panel(g: S.Grid, args) -> Panel:
    """lambda_c per curve, its interval from a bootstrap over seeds, and the verdict."""
    thr, nc = args.threshold, len(g.curves)
    curves = [g.curve(args.curve_key, c, args.x_key) for c in g.curves]
    fits = [S.fit_sigmoid(g.xs, m, n) for _, m, _, n in curves]

    def statistic(samples):
        means = g.means(samples)
        return S.batched(means.shape[:-2], lambda idx: [
            S.threshold_crossing(g.xs, means[idx][i], curves[i][3], thr, p0=fits[i]) for i in range(nc)], nc)

    boot = S.bootstrap_cells(g.samples, statistic, n_boot=args.n_boot, seed=args.boot_seed, confidence=args.confidence)
    crossings = [crossing(g.xs, mean, n, fits[i], boot.estimate(i), boot.frac_undefined(i), thr)
                 for i, (_, mean, _, n) in enumerate(curves)]
    short, line, why = verdict(g.curves, crossings, args)
    logits = C.panel_outcomes(g, args.curve_key, args)
    if not any(f.n_collapsed for f in logits):
        vp = ("undetermined", "Undetermined: no run collapsed in this panel", "no run collapsed in this panel")
    else:
        grid = (g.xs.min(), g.xs.max())
        vp = verdict(g.curves, [SimpleNamespace(lam_c=C.located(f, grid)) for f in logits], args,
                     "P(collapse)=0.5 (a binomial logistic shown to rise; where P levels off below 1, the midpoint "
                     "of its rise)")
    return Panel(**vars(g), crossings=crossings, verdict=short, conclusion=line, reason=why, logits=logits,
                 verdict_p=vp)


def crossing(xs, mean, n, fit, estimate, undefined, thr) -> Crossing:
    """A curve's :class:`Crossing` from its cell means (``n`` runs each), its logistic and the
    bootstrap estimate of its crossing: beyond the grid where it never crosses on it, the
    interval widened to the grid bracket where the grid does not resolve the transition."""
    lc, fit_lo, fit_hi = estimate
    lo, hi = fit_lo, fit_hi
    brs, on, seen = S.brackets(xs, mean, thr), S.on_transition(mean), mean[np.isfinite(mean)]
    rising = (fit[1] > fit[0]) if np.isfinite(fit[0]) else seen[-1] > seen[0]
    why = ""
    if not brs:  # never crosses on the grid: beyond it, on the side the error rises or falls to
        up = bool(np.all(seen > thr)) != rising
        edge = xs.max() if up else xs.min()
        lc, lo, hi = (math.inf, edge, math.inf) if up else (-math.inf, -math.inf, edge)
    elif on < 2 or n[np.isfinite(mean)].min() < 2 or not (np.isfinite(lc) and np.isfinite(lo) and np.isfinite(hi)):
        lo = min(b[0] for b in brs) if math.isnan(lo) else min(lo, *(b[0] for b in brs))
        hi = max(b[1] for b in brs) if math.isnan(hi) else max(hi, *(b[1] for b in brs))
        if on < 2:
            why = (f"the grid does not resolve the transition ({on} cell(s) on it): the interval is the grid "
                   f"bracket, not the seed spread {FG.fci(fit_lo, fit_hi, '.3f')}")
        else:
            why = "a single seed in some cell (no seed spread to resample) or no fit: the interval is the grid bracket"
    j = int(np.nanargmin(mean))
    best = (float(mean[j]), float(xs[j]))
    return Crossing((lc, lo, hi), (fit_lo, fit_hi), fit, brs, on, why, rising, S.notebook_lambda_c(xs, mean, thr),
                    best, undefined)


def verdict(curves, crossings, args, what: str = "") -> tuple[str, str, str]:
    """(short verdict, the notebook's line, the reason) from whether the intervals overlap
    (``crossings``: anything with ``lam_c``; ``what``: what that lambda_c is, if not the crossing)."""
    x, c = FG.sym(args.x_key), FG.sym(args.curve_key)
    keys = ", ".join(FG.sym(k) for k in (args.x_key, args.panel_key, args.curve_key) if k)
    depends = f"Phase boundary depends on ({keys})"
    ivs = [(curve, *e.lam_c) for curve, e in zip(curves, crossings) if not math.isnan(e.lam_c[1] + e.lam_c[2])]
    if len(ivs) < 2:
        why = (f"fewer than two {c} values have a {x}_c interval at {what} (no collapse, too few runs or no fit)" if what
               else f"fewer than two {c} values have a {x}_c interval (no crossing, or fewer than 4 {x} values)")
        return "undetermined", f"Undetermined: {why}", why
    hi_lo, lo_hi = max(ivs, key=lambda t: t[2]), min(ivs, key=lambda t: t[3])
    if hi_lo[2] > lo_hi[3]:
        why = (f"the {x}_c intervals of {FG.label(args.curve_key, lo_hi[0])} {FG.fci(lo_hi[2], lo_hi[3], '.3f')} and "
               f"{FG.label(args.curve_key, hi_lo[0])} {FG.fci(hi_lo[2], hi_lo[3], '.3f')} do not overlap")
        return "depends", depends, why
    if sum(math.isfinite(t[1]) for t in ivs) < 2:
        why = f"fewer than two {c} values cross the threshold inside the {x} grid, so the overlap says nothing"
        return "undetermined", f"Undetermined: {why}", why
    why = f"all {len(ivs)} {x}_c intervals overlap (common range {FG.fci(hi_lo[2], lo_hi[3], '.3f')})"
    return "robust", f"Phase structure is robust to {c} variation", why


# --------------------------------------------------------------------------- tables


def tables(panels, args) -> list:
    """(name, report heading, table): the cells, lambda_c per curve, the verdict per panel."""
    summary = [
        {**O.summary_start(p, args, args.curve_key, c), f"min_mean_{args.metric}": e.best[0],
         f"argmin_{args.x_key}": e.best[1], f"{args.x_key}_c_notebook": e.notebook,
         "direction": "rising" if e.rising else "falling", **O.ci_cols(f"{args.x_key}_c", e.lam_c),
         "fit_lo": e.fit_ci[0], "fit_hi": e.fit_ci[1], "grid_bracket": e.bracket_text, "cells_on_transition": e.on,
         "threshold": args.threshold, **C.logit_cols(args.x_key, f), "collapse_error": args.collapse_error}
        for p in panels for c, e, f in zip(p.curves, p.crossings, p.logits)
    ]
    verdicts = [{**O.panel_cols(p, args), "verdict": p.verdict, "conclusion": p.conclusion, "reason": p.reason,
                 "verdict_collapse": p.verdict_p[0], "conclusion_collapse": p.verdict_p[1],
                 "reason_collapse": p.verdict_p[2]} for p in panels]
    return [("cells", None, O.all_cells(panels, args.panel_key)),
            ("summary", "Phase boundary per curve", pd.DataFrame(summary)),
            ("verdict", "Conclusion", pd.DataFrame(verdicts))]


# --------------------------------------------------------------------------- printed summary


def echo_summary(echo, panels, args) -> None:
    """The notebook's summary (in its format), the seeds per point, lambda_c per curve, the verdicts."""
    x, ck, thr = FG.sym(args.x_key), args.curve_key, args.threshold
    echo("\n--- Phase Boundary Analysis ---")
    for p in O.each_panel(echo, panels, args.panel_key):
        for c, e in zip(p.curves, p.crossings):
            nb = f"{e.notebook:.2f}" if np.isfinite(e.notebook) else "N/A"
            echo(f"  {FG.label(ck, c)}: best error={e.best[0]:.4f} at {x}={e.best[1]:.2f}, {x}_c≈{nb}")
    O.echo_seeds(echo, panels, ck, args)
    echo(f"\n--- {x}_c: crossing of {thr:.2f} by a logistic fitted to each curve (or by the means, where the logistic "
         f"misses the bracket), {args.confidence:.0%} intervals ({O.boot_desc(args)}; widened to the grid bracket "
         "where the grid does not resolve the transition) ---")
    for p in O.each_panel(echo, panels, args.panel_key):
        for c, e in zip(p.curves, p.crossings):
            lc, lo, hi = e.lam_c
            echo(f"  {FG.label(ck, c)}: error {'rises' if e.rising else 'falls'} with {x}; {x}_c={FG.fnum(lc, '.3f')} "
                 f"{FG.fci(lo, hi, '.3f')} (grid bracket {e.bracket_text}; notebook {x}_c: "
                 f"{FG.fnum(e.notebook, '.2f')}; {FG.seeds_note(p.cells.loc[p.cells[ck] == c, 'n'])})")
            if e.why:
                echo(f"    note: {e.why}")
            if e.undefined > 0:
                echo(f"    note: no crossing in {e.undefined:.0%} of the resamples (left out of the interval)")
            if not e.rising and e.notebook == p.xs.min():
                echo(f"    note: the notebook's rule assumes the error rises with {x}; here it falls, so its {x}_c "
                     "is the first grid point")
    echo(f"\n--- {x}_c from the collapse probability: a binomial logistic of outcome on {x} per curve "
         f"(statsmodels GLM), {x} at P(collapse)=0.5 and the slope, {args.confidence:.0%} profile-likelihood intervals ---")
    for p in O.each_panel(echo, panels, args.panel_key):
        for c, f in zip(p.curves, p.logits):
            echo(f"  {FG.label(ck, c)}: " + C.describe_fit(f, x, FG.fci, FG.fnum, (p.xs.min(), p.xs.max())))
        few = p.cells[p.cells["few_runs"]]
        if len(few):
            echo(f"  note: {len(few)} cell(s) hold fewer than {C.MIN_RUNS} runs: their collapse fractions say little")
    echo(f"\n--- Conclusion (first line: from the mean error's crossing of {thr:.2f}; second: from the collapse "
         "probability) ---")
    for p in panels:
        head = O.panel_head(args.panel_key, p.value)
        echo(f"{head}: {p.conclusion}: {p.reason}" if p.verdict != "undetermined" else f"{head}: {p.conclusion}")
        short, line, why = p.verdict_p
        what = f"{head}, from {x}_c at P(collapse)=0.5"
        echo(f"{what}: {line}: {why}" if short != "undetermined" else f"{what}: {line}")


# --------------------------------------------------------------------------- figure


def draw(panels, args):
    """Per panel: the error curves with their logistics and crossings, and lambda_c per curve."""
    fig, axes = FG.new_figure(len(panels), 2)
    colors = FG.palette(sorted({c for p in panels for c in p.curves}))
    for r, p in enumerate(panels):
        draw_curves(axes[r, 0], p, args, colors)
        draw_boundary(axes[r, 1], p, args, colors)
    return fig


def draw_collapse_p(panels, args):
    """Per panel: the collapse fraction per cell with its binomial interval and each curve's
    logistic, its lambda_c at P = 0.5 marked."""
    fig, axes = FG.new_figure(len(panels), 1, width=8.0)
    colors = FG.palette(sorted({c for p in panels for c in p.curves}))
    for r, p in enumerate(panels):
        FG.collapse_curves(axes[r, 0], p, colors, args.curve_key, args)
        axes[r, 0].legend(fontsize=9)
    return fig


def draw_curves(ax, p, args, colors) -> None:
    """Mean error against x per curve (std bars), its logistic and its crossing; the threshold."""
    x_sym, thr, head = FG.sym(args.x_key), args.threshold, FG.panel_prefix(args.panel_key, p.value)
    n_full, drawn = FG.typical_n(p.cells["n"]), set()
    for c, e in zip(p.curves, p.crossings):
        x, m, sd, n = p.curve(args.curve_key, c, args.x_key)
        drawn |= FG.error_curve(ax, x, m, sd, n, p.missing(n), n_full, colors[c], FG.label(args.curve_key, c), e.fit)
        drawn |= FG.runs_strip(ax, p, p.curves.index(c), colors[c], args.collapse_error)
        lc, lo, hi = e.lam_c
        if np.isfinite(lc):
            FG.estimate(ax, lc, thr, xerr=FG.err_interval(lc, lo, hi), color=colors[c])
            drawn.add("estimate")
    for g, col in zip(args.guides, ("green", "red", "0.4", "0.4")):
        ax.axhline(y=g, color=col, linestyle="--", alpha=0.5)
    ax.axhline(y=thr, color="0.2", linestyle=":", linewidth=1.2)
    ax.set(xlabel=x_sym, ylabel="Test Error" if args.metric.endswith("_error") else args.metric)
    FG.grid_ticks(ax, p.xs)
    ax.set_title(f"{head}Error vs {x_sym} (different {FG.plural(args.curve_key)})\n{FG.seeds_note(p.cells['n'], True)}")
    if args.metric.endswith("_error"):
        ax.set_ylim(0, 1)
    ax.grid(True, alpha=0.3)
    handles = [*ax.get_legend_handles_labels()[0],
               Line2D([], [], color="0.2", linestyle=":", label=f"threshold {thr:.2f}")]
    handles += [Line2D([], [], color="0.3", linestyle="--", label="logistic fit")] if "fit" in drawn else []
    handles += FG.strip_legend(ax, drawn, args.collapse_error)
    handles += [FG.estimate_handle(f"{x_sym}_c, {args.confidence:.0%} CI")] if "estimate" in drawn else []
    guides = "guides " + " / ".join(f"{g:.2f}" for g in args.guides)
    handles += [Line2D([], [], color="0.5", linestyle="--", label=guides)] if args.guides else []
    ax.legend(handles=handles + ([FG.MISSING_HANDLE] if "missing" in drawn else []), fontsize=9)


def draw_boundary(axb, p, args, colors) -> None:
    """lambda_c per curve: the notebook's as bars, the crossing with its interval, the brackets."""
    x_sym, thr, head = FG.sym(args.x_key), args.threshold, FG.panel_prefix(args.panel_key, p.value)
    estimated = p_estimated = False
    for i, (c, e) in enumerate(zip(p.curves, p.crossings)):
        lc, lo, hi = e.lam_c
        if np.isfinite(lc):
            FG.estimate(axb, i - 0.12, lc, yerr=FG.err_interval(lc, lo, hi), color="black")
            estimated = True
        f = p.logits[i]
        mid, mlo, mhi = f.midpoint
        if C.rises(f) and np.isfinite(mid):  # an extrapolated one is drawn and labelled, not one that does not rise
            lo_p, hi_p = max(mlo, p.xs.min() - 0.15 * np.ptp(p.xs)), min(mhi, p.xs.max() + 0.15 * np.ptp(p.xs))
            axb.errorbar([i + 0.12], [mid], yerr=FG.err_interval(mid, lo_p, hi_p), marker="s",
                         markersize=8, color=P_COLOR, markerfacecolor="white", markeredgewidth=2, capsize=5, zorder=6)
            p_estimated = True
            top = p.xs.max() + 0.15 * np.ptp(p.xs)
            if mid > top:
                axb.annotate(f"{x_sym}_c(P=0.5) = {mid:.2f}\nbeyond the grid", (i + 0.12, top), ha="center",
                             va="top", fontsize=8, color=P_COLOR, xytext=(0, -4), textcoords="offset points")
        if np.isfinite(e.notebook):
            axb.bar(i, e.notebook, width=0.6, color=NOTEBOOK_BAR, alpha=0.85)
        for a, b in e.brackets:
            axb.fill_between([i - 0.35, i + 0.35], a, b, color="0.5", alpha=0.15, zorder=0)
        if not np.isfinite(lc):
            axb.text(i, p.xs.mean(), f"{x_sym}_c {FG.fnum(lc)}", ha="center", fontsize=10)
    span = float(np.ptp(p.xs)) or 1.0
    axb.set_ylim(p.xs.min() - 0.15 * span, p.xs.max() + 0.15 * span)
    for xv in p.xs:
        axb.axhline(xv, color="0.6", linestyle=":", linewidth=0.8, zorder=0)
    axb.set_xticks(range(len(p.curves)), [FG.label(args.curve_key, c) for c in p.curves])
    axb.set_xlim(-0.6, len(p.curves) - 0.4)
    axb.set_ylabel(f"Critical {x_sym} ({x_sym}_c)")
    axb.set_title(f"{head}Phase Boundary vs {FG.title_name(args.curve_key)}\n(dotted: grid {x_sym}; shaded: bracket "
                  "of the crossing)")
    axb.legend(
        handles=[Patch(color=NOTEBOOK_BAR, alpha=0.85, label=f"notebook: first grid {x_sym} with error > {thr:.2f}")]
        + ([FG.estimate_handle(f"{x_sym}_c (mean crosses {thr:.2f}), {args.confidence:.0%} CI", "black")] if estimated else [])
        + ([Line2D([], [], color=P_COLOR, marker="s", markerfacecolor="white", markeredgewidth=2, linestyle="none",
                   label=f"{x_sym}_c (P(collapse)=0.5, or mid-rise), {args.confidence:.0%} CI")] if p_estimated else []),
        fontsize=9, loc="upper center", bbox_to_anchor=(0.5, -0.09), ncol=2)


# --------------------------------------------------------------------------- command line


def build_parser():
    parser = cli.script_parser("python -m analysis.phase_boundary",
                               "Phase boundary lambda_c per lr (or any --curve-key).")
    parser.add_argument("--curve-key", default="lr", help="one curve / lambda_c per value (default: lr)")
    parser.add_argument("--threshold", type=float, default=0.20, help="error threshold of lambda_c (default 0.20)")
    C.add_options(parser)
    parser.add_argument("--guides", type=float, nargs="*", default=[0.15, 0.25],
                        help="guide lines (default: 0.15 0.25)")
    return parser


def main(argv=None) -> int:
    return cli.main(build_parser(), run, argv)


def run(args) -> int:
    echo, runs = cli.start(args, "--curve-key", args.curve_key, "LR-LAMBDA INTERACTION ANALYSIS")
    C.setup(echo, runs.df, args, [args.panel_key, args.curve_key, args.x_key])
    panels = [analyse_panel(g, args) for g in S.grids(runs.df, args.panel_key, args.curve_key, args.x_key)]
    results = tables(panels, args)
    echo_summary(echo, panels, args)
    if args.suggest:
        what = f"the {FG.sym(args.x_key)}_c interval"
        plans = [(p.value, c, p.xs, *e.lam_c[1:], what, f)
                 for p in panels for c, e, f in zip(p.curves, p.crossings, p.logits)]
        suggest(echo, args, runs.df, args.curve_key, plans, "python -m analysis.phase_boundary")
    describe = (f"metric: `{args.metric}`; curves by `{args.curve_key}`, panels by `{args.panel_key}`, "
                f"x `{args.x_key}`; threshold {args.threshold:.2f}; a run is collapsed when {args.metric} > {args.collapse_error:.3f}")
    figures = [("", draw(panels, args)), ("_collapse", draw_collapse_p(panels, args))]
    return O.write_outputs(args, runs, echo, STEM, "Phase boundary (lr x lambda)", figures, results, describe)


if __name__ == "__main__":
    sys.exit(main())
