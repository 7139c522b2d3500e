"""Q1, finite-size scaling: the variance peak of the error vs lambda per model width, and the
data collapse.

    python -m analysis.variance_peak DIR... [--out FIG_DIR] [--size-key model.width] [--suggest N]
        [--panel-key noise.rate] [--x-key lam] [--metric best_error] [--susceptibility]
        [--size-measure params|value]

Reproduces the notebook's analysis (``000_*``): per noise rate, mean best error vs lambda with
std error bars per width, and std of the best error vs lambda per width; prints the peak std
and its lambda. Beyond it, with percentile bootstrap intervals over seeds:

- each peak's height and location (the grid argmax refined by a parabola through its
  neighbours); a peak on the grid edge or resting on a single grid point says so, and its
  location interval then spans the neighbours (or runs off the grid);
- the transition: a logistic ``a + (b - a) / (1 + exp(-(lambda - lambda0) / s))`` per size;
- the two claims: does the peak rise with size (slope of ln peak std vs ln size > 0), does
  the transition sharpen (slope of ln s vs ln size < 0);
- the finite-size collapse: error = F((lambda - lambda_c) L^(1/nu)), F logistic, fitted to
  every size at once (L: ResNet18 parameters, or the size value; ``--size-measure``);
- ``--susceptibility``: chi = L * Var(error) as a third column.

Writes ``variance_peak.png``, ``_scaling.png``, ``_collapse.png``, ``_cells.csv``,
``_summary.csv``, ``_claims.csv``, ``_runs.csv`` and the report ``variance_peak.md`` to ``--out``.
"""

from __future__ import annotations

import math
import sys

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from analysis import figures as FG
from analysis import report as R
from analysis import stats as S
from analysis.runs import AnalysisError
from analysis.suggest import suggest

STEM = "variance_peak"
PER_SIZE = ("peak_std", "peak_x_grid", "peak_x", "sigmoid_width", "sigmoid_center")
#: (question, statistic, per-size input, side of 0 that answers yes, yes, no, what is fitted)
CLAIMS = (
    (
        "peak height rises with size",
        "exp_peak",
        "peak_std",
        ">0",
        "the peak rises",
        "the peak falls",
        "peak std",
    ),
    (
        "transition sharpens with size",
        "exp_width",
        "sigmoid_width",
        "<0",
        "it sharpens",
        "it broadens",
        "sigmoid width s",
    ),
)


def resnet18_params(width: float, num_classes: int = 10, in_channels: int = 3) -> int:
    """Parameters of the notebook's width-scalable CIFAR ResNet18 (3x3 stem, BN, no bias)."""
    chans = [int(c * width) for c in (64, 128, 256, 512)]
    total, in_planes = in_channels * chans[0] * 9 + 2 * chans[0], chans[0]
    for stage, planes in enumerate(chans):
        for block in range(2):
            total += in_planes * planes * 9 + planes * planes * 9 + 4 * planes
            if (stage > 0 and block == 0) or in_planes != planes:
                total += in_planes * planes + 2 * planes
            in_planes = planes
    return total + chans[3] * num_classes + num_classes


def analyse_panel(g: S.Grid, args, measure: dict) -> S.Grid:
    """Adds ``g.boot``, ``g.names``, ``g.fits`` (size -> logistic), ``g.collapse``, ``g.claims``."""
    sizes, xs = g.curves, g.xs
    g.claims = all(isinstance(s, (int, float, np.number)) and s > 0 for s in sizes) and len(sizes) >= 2
    L = np.array([measure[s] for s in sizes]) if g.claims else None
    ns = np.array([g.curve(args.size_key, s, args.x_key)[3] for s in sizes])
    means = np.array([g.curve(args.size_key, s, args.x_key)[1] for s in sizes])
    g.fits = {s: S.fit_sigmoid(xs, means[i], ns[i]) for i, s in enumerate(sizes)}
    g.collapse = S.fit_collapse(xs, L, means, ns) if g.claims else (math.nan,) * 6
    lc, nu, a, b, w, _ = g.collapse
    p0 = (a, b, lc, 1 / nu, math.log(w)) if np.isfinite(lc) else None

    def statistic(samples):
        batch, mean = samples[0].shape[:-1], g.means(samples)
        std = np.full(mean.shape, np.nan)
        for (i, j), s in zip(g.where, samples):
            if s.shape[-1] >= 2:
                std[..., i, j] = s.std(-1, ddof=1)
        h, xg, xr = S.peak(std, xs)  # (batch..., sizes)
        fit = S.batched(
            batch,
            lambda idx: [
                v for i in range(len(sizes)) for v in S.fit_sigmoid(xs, mean[idx][i], ns[i], p0=g.fits[sizes[i]])[2:]
            ],
            2 * len(sizes),
        )
        out = [v for i in range(len(sizes)) for v in (h[..., i], xg[..., i], xr[..., i], fit[2 * i + 1], fit[2 * i])]
        if g.claims:
            out += [S.log_slope(L, h), S.log_slope(L, np.moveaxis(fit[1::2], 0, -1))]
            out += list(S.batched(batch, lambda idx: S.fit_collapse(xs, L, mean[idx], ns, p0)[:2], 2))
        return np.stack(out)

    g.names = [f"{n}@{s!r}" for s in sizes for n in PER_SIZE] + (
        ["exp_peak", "exp_width", "collapse_lambda_c", "collapse_nu"] if g.claims else []
    )
    g.boot = S.bootstrap_cells(
        g.samples, statistic, n_boot=args.n_boot, seed=args.boot_seed, confidence=args.confidence
    )
    return g


def get(p, name: str, size=None):
    i = p.names.index(name if size is None else f"{name}@{size!r}")
    return float(p.boot.point[i]), *p.boot.ci(i)


def peak_location(p, args, s):
    """(location, low, high, note): the interval spans the neighbours of a single-point peak and
    runs off the grid for a peak on its edge."""
    loc, lo, hi = get(p, "peak_x", s)
    xg, sd = get(p, "peak_x_grid", s)[0], p.curve(args.size_key, s, args.x_key)[2]
    if not np.isfinite(xg):
        return loc, lo, hi, ""
    j, ok = int(np.searchsorted(p.xs, xg)), np.isfinite(sd)
    if xg in (p.xs.min(), p.xs.max()):
        return (
            (loc, lo, math.inf, "on the upper edge of the grid")
            if xg == p.xs.max()
            else (loc, -math.inf, hi, "on the lower edge of the grid")
        )
    base = np.nanmin(sd)
    if ((sd[ok] - base) >= 0.5 * (sd[j] - base)).sum() == 1:
        left, right = p.xs[:j][ok[:j]].max(), p.xs[j + 1 :][ok[j + 1 :]].min()
        return (
            loc,
            min(lo, left) if np.isfinite(lo) else left,
            max(hi, right) if np.isfinite(hi) else right,
            "a single-point peak (the neighbours are below half its height)",
        )
    return loc, lo, hi, ""


def draw_main(panels, args, measure):
    fig, axes = FG.new_figure(len(panels), 3 if args.susceptibility else 2)
    x_sym, colors = FG.sym(args.x_key), FG.palette(sorted({s for p in panels for s in p.curves}))
    name = "Test Error" if args.metric.endswith("_error") else args.metric
    for r, p in enumerate(panels):
        head, note = (
            (f"{FG.label(args.panel_key, p.value)}: " if args.panel_key else ""),
            FG.seeds_note(p.cells["n"], True),
        )
        ax_e, ax_s = axes[r, 0], axes[r, 1]
        drawn, n_full = set(), FG.typical_n(p.cells["n"])
        for s in p.curves:
            c, lab = colors[s], FG.label(args.size_key, s)
            x, m, sd, n = p.curve(args.size_key, s, args.x_key)
            ax_e.errorbar(x, m, yerr=np.nan_to_num(sd), marker="o", color=c, capsize=4, label=lab, linewidth=2)
            if np.isfinite(p.fits[s][3]):
                xf = np.linspace(p.xs.min(), p.xs.max(), 200)
                ax_e.plot(xf, S.sigmoid(xf, *p.fits[s]), color=c, linestyle="--", linewidth=1, alpha=0.8)
                drawn.add("fit")
            ax_s.plot(x, sd, marker="s", color=c, label=lab, linewidth=2)
            h, hlo, hhi = get(p, "peak_std", s)
            loc, llo, lhi, _ = peak_location(p, args, s)
            if np.isfinite(h):
                FG.estimate(
                    ax_s,
                    loc,
                    h,
                    xerr=FG.err_interval(loc, max(llo, p.xs.min()), min(lhi, p.xs.max())),
                    yerr=FG.err_interval(h, hlo, hhi),
                    color=c,
                )
                drawn.add("peak")
            drawn |= {"missing"} if (n == 0).any() else set()
            for ax, y in ((ax_e, m), (ax_s, sd)):
                FG.mark_missing(ax, x[n == 0], c)
                FG.annotate_n(ax, x, y, n, n_full, c)
            if args.susceptibility:
                axes[r, 2].plot(x, measure[s] * sd**2, marker="^", color=c, label=lab, linewidth=2)
        ax_e.set(title=f"{head}Error vs {x_sym} (different {FG.plural(args.size_key)})\n{note}", ylabel=name)
        ax_s.set(
            title=f"{head}Variance Peak (finite-size scaling)\n{note}",
            ylabel=f"Std({name.split()[-1]}) - Variance Proxy",
        )
        extra_e = [Line2D([], [], color="0.3", linestyle="--", label="sigmoid fit")] if "fit" in drawn else []
        extra_s = [FG.estimate_handle(f"peak, {args.confidence:.0%} CI")] if "peak" in drawn else []
        missing = [FG.MISSING_HANDLE] if "missing" in drawn else []
        cols = [(ax_e, extra_e + missing), (ax_s, extra_s + missing)]
        if args.susceptibility:
            unit = "L in M params" if args.size_measure == "params" else f"L = {args.size_key}"
            axes[r, 2].set(title=f"{head}Susceptibility χ = L·Var\n{note}", ylabel=f"χ = L·Var ({unit})")
            cols.append((axes[r, 2], missing))
        for ax, extra in cols:
            ax.set_xlabel(x_sym)
            ax.grid(True, alpha=0.3)
            ax.legend(handles=ax.get_legend_handles_labels()[0] + extra, fontsize=9)
            ax.set_xticks(p.xs)
            ax.set_xlim(p.xs.min() - 0.05 * (np.ptp(p.xs) or 1), p.xs.max() + 0.05 * (np.ptp(p.xs) or 1))
        FG.min_span(ax_e)
        ax_s.set_ylim(bottom=0)
        FG.min_span(ax_s, FG.MIN_ERROR_SPAN / 2, bottom=0)
        if not np.isfinite(p.cells["std"]).any():
            ax_s.text(
                0.5,
                0.5,
                "no std: fewer than 2 seeds in every cell",
                ha="center",
                transform=ax_s.transAxes,
                color="0.3",
            )
    return fig


def draw_scaling(panels, args, measure):
    fig, axes = FG.new_figure(1, 2, width=6.5)
    colors, shown = FG.palette([p.value for p in panels]), [p for p in panels if p.claims]
    for ax, stat, exp, title in (
        (axes[0, 0], "peak_std", "exp_peak", "Does the variance peak rise with size?"),
        (axes[0, 1], "sigmoid_width", "exp_width", "Does the transition sharpen with size?"),
    ):
        for k, p in enumerate(shown):
            v = np.array([get(p, stat, s) for s in p.curves])
            ok = np.isfinite(v[:, 0]) & (v[:, 0] > 0)
            e, elo, ehi = get(p, exp)
            yerr = np.nan_to_num(np.abs(v[:, 1:].T - v[:, 0]))[:, ok]
            ax.errorbar(
                np.array([measure[s] for s in p.curves])[ok] * 1.025**k,
                v[ok, 0],
                yerr=yerr,
                marker="osD^"[k % 4],
                capsize=5,
                linewidth=2,
                color=colors[p.value],
                label=f"{R.panel_head(args.panel_key, p.value)}: slope {FG.fnum(e, '+.2f')} {FG.fci(elo, ehi, '+.2f')}",
            )
        ax.set(
            xscale="log",
            yscale="log",
            title=f"{title}\n(estimate and {args.confidence:.0%} CI; slope = log-log exponent)",
            xlabel=f"L ({'M params' if args.size_measure == 'params' else args.size_key}, log)",
            ylabel=f"{stat} (log)",
        )
        ax.grid(True, alpha=0.3, which="both")
        ax.legend(fontsize=9)
    return fig


def draw_collapse(panels, args, measure):
    shown = [p for p in panels if p.claims and np.isfinite(p.collapse[0])]
    fig, axes = FG.new_figure(1, max(len(shown), 1), width=6.5)
    colors = FG.palette(sorted({s for p in shown for s in p.curves}))
    for ax, p in zip(axes[0], shown):
        lc, nu, a, b, w, rms = p.collapse
        mean_L = np.exp(np.mean([np.log(measure[s]) for s in p.curves]))  # L in units of its geometric mean, as fitted
        for s in p.curves:
            x, m, sd, _ = p.curve(args.size_key, s, args.x_key)
            ax.errorbar(
                (x - lc) * (measure[s] / mean_L) ** (1 / nu),
                m,
                yerr=np.nan_to_num(sd),
                marker="o",
                linestyle="none",
                capsize=3,
                color=colors[s],
                label=FG.label(args.size_key, s),
            )
        t = np.linspace(*ax.get_xlim(), 200)
        ax.plot(t, S.sigmoid(t, a, b, 0.0, w), color="0.3", linestyle="--", label=f"F(t), rms deviation {rms:.3g}")
        _, clo, chi = get(p, "collapse_lambda_c")
        _, nlo, nhi = get(p, "collapse_nu")
        ax.set(
            xlabel=f"({FG.sym(args.x_key)} - {FG.sym(args.x_key)}_c) · (L / geometric mean L)^(1/ν)",
            ylabel=args.metric,
            title=f"{R.panel_head(args.panel_key, p.value)}: {FG.sym(args.x_key)}_c = {lc:.3f} {FG.fci(clo, chi, '.3f')}, "
            f"ν = {nu:.2f} {FG.fci(nlo, nhi, '.2f')}\n({args.confidence:.0%} CI; {len(p.curves)} sizes)",
        )
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=9)
    return fig


def build_parser():
    parser = R.script_parser("python -m analysis.variance_peak", "Variance peak and finite-size collapse.")
    parser.add_argument("--size-key", default="model.width", help="model size key (default: model.width)")
    parser.add_argument("--susceptibility", action="store_true", help="add a column with chi = L * Var(error)")
    parser.add_argument(
        "--size-measure",
        choices=("params", "value"),
        help="L: ResNet18 parameters (M) at the width "
        "multiplier (default for model.width / width_mult) or the size key's value",
    )
    return parser


def main(argv=None) -> int:
    return R.script_main(build_parser(), run, argv)


def run(args) -> int:
    args.size_measure = args.size_measure or ("params" if args.size_key in ("model.width", "width_mult") else "value")
    echo, runs = R.start(args, "--size-key", args.size_key, "FINITE-SIZE SCALING ANALYSIS")
    sizes = sorted(runs.df[args.size_key].unique().tolist())
    try:
        measure = {s: resnet18_params(float(s)) / 1e6 if args.size_measure == "params" else float(s) for s in sizes}
    except (TypeError, ValueError):
        if args.susceptibility:
            raise AnalysisError(f"--susceptibility: {args.size_key} values are not numbers") from None
        measure = {}
    panels = [analyse_panel(g, args, measure) for g in S.grids(runs.df, args.panel_key, args.size_key, args.x_key)]
    x, conf, sk = FG.sym(args.x_key), f"{args.confidence:.0%}", args.size_key
    echo("\n--- Variance Peak Analysis ---")  # the notebook's summary, in its format
    for p in R.each_panel(echo, panels, args.panel_key):
        for s in p.curves:
            h, xg = get(p, "peak_std", s)[0], get(p, "peak_x_grid", s)[0]
            echo(
                f"  {FG.label(sk, s)}: "
                + (
                    f"peak std={h:.4f} at {x}={xg:.2f}"
                    if np.isfinite(h)
                    else "no std (fewer than 2 seeds in every cell)"
                )
            )

    R.echo_seeds(echo, panels, sk, args)
    echo(f"\n--- Peaks and transitions, {conf} intervals ({R.boot_desc(args)}) ---")
    rows, plans = [], []
    for p in R.each_panel(echo, panels, args.panel_key):
        for s in p.curves:
            h, hlo, hhi = get(p, "peak_std", s)
            loc, llo, lhi, where = peak_location(p, args, s)
            x0, sw = get(p, "sigmoid_center", s), get(p, "sigmoid_width", s)
            chi = f"; chi=L·Var peak={FG.fnum(measure[s] * h * h, '.4g')}" if args.susceptibility else ""
            echo(
                f"  {FG.label(sk, s)}: peak std={FG.fnum(h)} {FG.fci(hlo, hhi)} at {x}={FG.fnum(loc, '.3f')} "
                f"{FG.fci(llo, lhi, '.3f')}; logistic {x}0={FG.fnum(x0[0], '.3f')} {FG.fci(*x0[1:], '.3f')}, "
                f"s={FG.fnum(sw[0])} {FG.fci(*sw[1:])} ({FG.seeds_note(p.cells.loc[p.cells[sk] == s, 'n'])}){chi}"
            )
            if where:
                echo(f"    note: the peak is {where}; its location is known only to the interval shown")
            rows.append(
                {
                    **R.summary_start(p, args, sk, s),
                    **R.ci_cols("peak_std", (h, hlo, hhi)),
                    f"peak_{args.x_key}_grid": get(p, "peak_x_grid", s)[0],
                    **R.ci_cols(f"peak_{args.x_key}", (loc, llo, lhi)),
                    "peak_note": where,
                    **R.ci_cols("sigmoid_width", sw),
                    **R.ci_cols("sigmoid_center", x0),
                    **({"size_L": measure[s], "chi_peak": measure[s] * h * h} if args.susceptibility else {}),
                }
            )
            plans.append((p.value, s, p.xs, llo, lhi, f"the {x} interval of the variance peak"))

    echo(
        f"\n--- Claims and the finite-size collapse ({conf} intervals; L = "
        f"{'ResNet18 parameters' if args.size_measure == 'params' else sk}) ---"
    )
    claim_rows = []
    for p in R.each_panel(echo, panels, args.panel_key):
        if not p.claims:
            echo(
                f"  cannot be answered: {'only one value of ' + sk if len(p.curves) < 2 else sk + ' is not a positive number'}"
            )
            continue
        for claim, stat, per_size, yes_if, yes, no, what in CLAIMS:
            e, lo, hi = get(p, stat)
            verdict = R.verdict_sign(lo, hi, yes_if, yes, no)
            echo(f"  {claim}? {verdict}: d ln({what}) / d ln(L) = {FG.fnum(e, '+.3f')} {FG.fci(lo, hi, '+.3f')}")
            claim_rows.append(
                {
                    **({args.panel_key: p.value} if args.panel_key else {}),
                    "claim": claim,
                    "estimate": e,
                    "lo": lo,
                    "hi": hi,
                    "verdict": verdict.split(" (")[0],
                }
            )
        (lc, clo, chi), (nu, nlo, nhi) = get(p, "collapse_lambda_c"), get(p, "collapse_nu")
        echo(
            f"  collapse: {x}_c={FG.fnum(lc, '.3f')} {FG.fci(clo, chi, '.3f')}, ν={FG.fnum(nu, '.2f')} {FG.fci(nlo, nhi, '.2f')}, "
            f"rms deviation of the cell means from the collapsed curve {FG.fnum(p.collapse[5], '.3g')}"
        )
        echo(
            f"    note: {len(p.curves)} sizes fix ν by {len(p.curves) - 1} ratio(s) of L only; the ν interval is the seed "
            "spread under the logistic form and says nothing about corrections to scaling"
            if len(p.curves) <= 3
            else "    note: the ν interval is the seed spread under the logistic form"
        )
        for name, est in (("collapse_lambda_c", (lc, clo, chi)), ("collapse_nu", (nu, nlo, nhi))):
            claim_rows.append(
                {
                    **({args.panel_key: p.value} if args.panel_key else {}),
                    "claim": name,
                    "estimate": est[0],
                    "lo": est[1],
                    "hi": est[2],
                    "verdict": "",
                }
            )
    if args.suggest:
        suggest(echo, args, runs.df, sk, plans, "python -m analysis.variance_peak")
    figures = [("", draw_main(panels, args, measure))]
    if any(p.claims for p in panels):
        figures += [
            ("_scaling", draw_scaling(panels, args, measure)),
            ("_collapse", draw_collapse(panels, args, measure)),
        ]
    cells = R.all_cells(panels, args.panel_key).assign(var=lambda c: c["std"] ** 2)
    if args.susceptibility:
        cells["size_L"] = cells[sk].map(measure)
        cells["chi"] = cells["size_L"] * cells["var"]
    summary, claims = pd.DataFrame(rows), pd.DataFrame(claim_rows)
    return R.write_outputs(
        args,
        runs,
        echo,
        STEM,
        "Variance peak (finite-size scaling)",
        figures,
        [("cells", None, cells), ("summary", "Peaks and transitions", summary)]
        + ([("claims", "Claims and collapse", claims)] if len(claims) else []),
        f"metric: `{args.metric}`; size key `{sk}`, panels by `{args.panel_key}`, x `{args.x_key}`",
    )


if __name__ == "__main__":
    sys.exit(main())
