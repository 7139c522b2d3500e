"""Q1, finite-size scaling: the variance peak of the error vs lambda per model width, and the
data collapse.

    python -m analysis.variance_peak DIR... [--out FIG_DIR] [--size-key model.width] [--suggest N]
        [--panel-key noise.rate] [--x-key lam] [--metric best_error] [--susceptibility]
        [--size-measure params|value]

Reproduces the notebook's analysis (``000_*``), and beyond it, with bootstrap intervals over
seeds, each peak, the transition, the two scaling claims, the finite-size collapse and the
outcome per run (analysis/collapse.py): what each is and the files written, docs/ANALYSIS.md.
"""

from __future__ import annotations

import functools
import math
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd
from matplotlib.lines import Line2D

from analysis import cli
from analysis import collapse as C
from analysis import figures as FG
from analysis import output as O
from analysis import stats as S
from analysis.runs import AnalysisError
from analysis.suggest import suggest

STEM = "variance_peak"
NAN3 = (math.nan,) * 3
#: (question, Panel slope, Size estimate it is the slope of, side of 0 that answers yes, yes, no, what is fitted)
CLAIMS = (
    ("peak height rises with size", "exp_peak", "peak_std", ">0", "the peak rises", "the peak falls", "peak std"),
    ("transition sharpens with size", "exp_width", "sigmoid_width", "<0", "it sharpens", "it broadens",
     "sigmoid width s"),
)


@dataclass
class Size:
    """One size's estimates: (estimate, low, high) triples, but for the grid argmax."""

    peak_std: tuple
    peak_x_grid: float  # the grid point of the highest std
    peak_x: tuple  # refined by a parabola; the interval as :func:`peak_location` widens it
    peak_note: str  # why the peak_x interval is wider than the bootstrap's ("" where it is not)
    sigmoid_width: tuple
    sigmoid_center: tuple
    fit: tuple  # the logistic (a, b, x0, s) through the cell means


@dataclass
class Panel(S.Grid):
    """One panel's grid and what :func:`analyse_panel` found in it."""

    sizes: dict  # size -> Size
    claims: bool  # at least two sizes, all positive numbers: the scaling claims can be answered
    exp_peak: tuple  # slope of ln peak std against ln L (NAN3 without claims)
    exp_width: tuple  # slope of ln sigmoid width against ln L
    collapse: tuple  # (lambda_c, nu, a, b, w, rms) of the collapse through the cell means
    collapse_lambda_c: tuple
    collapse_nu: tuple
    logits: list  # one collapse.Logit per size: P(collapse) against x
    sharpening: C.Sharpening  # does the collapse curve sharpen with size
    scaling: C.Scaling  # the finite-size collapse of P(lambda, L)
    levelled: list  # labels of the sizes whose P levels off below 1: both joint fits above misdescribe them
    steepens: tuple  # (verdict, reason): does the rise of P steepen with size, curve by curve
    moves: tuple  # (verdict, reason): does the rise of P move with size


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


def size_measure(args, sizes) -> dict:
    """L per size: ResNet18 parameters (M) at the width, or the size value; {} if not numbers."""
    try:
        return {s: resnet18_params(float(s)) / 1e6 if args.size_measure == "params" else float(s) for s in sizes}
    except (TypeError, ValueError):
        if args.susceptibility:
            raise AnalysisError(f"--susceptibility: {args.size_key} values are not numbers") from None
        return {}


# --------------------------------------------------------------------------- analysis


def analyse_panel(g: S.Grid, args, measure: dict) -> Panel:
    """Per size the peak and the logistic, across sizes the slopes and the collapse, with
    bootstrap intervals over seeds."""
    sizes, xs = g.curves, g.xs
    logits = C.panel_outcomes(g, args.size_key, args)
    claims = all(isinstance(s, (int, float, np.number)) and s > 0 for s in sizes) and len(sizes) >= 2
    L = np.array([measure[s] for s in sizes]) if claims else None
    curves = [g.curve(args.size_key, s, args.x_key) for s in sizes]
    means, ns = np.array([c[1] for c in curves]), np.array([c[3] for c in curves])
    fits = [S.fit_sigmoid(xs, means[i], ns[i]) for i in range(len(sizes))]
    collapse = S.fit_collapse(xs, L, means, ns) if claims else (math.nan,) * 6
    lc, nu, a, b, w, _ = collapse
    p0 = (a, b, lc, 1 / nu, math.log(w)) if np.isfinite(lc) else None

    def statistic(samples):
        batch, mean = samples[0].shape[:-1], g.means(samples)
        std = np.full(mean.shape, np.nan)
        for (i, j), s in zip(g.where, samples):
            if s.shape[-1] >= 2:
                std[..., i, j] = s.std(-1, ddof=1)
        h, xg, xr = S.peak(std, xs)  # (batch..., sizes)
        fit = S.batched(batch, lambda idx: [v for i in range(len(sizes))
                                            for v in S.fit_sigmoid(xs, mean[idx][i], ns[i], p0=fits[i])[2:]],
                        2 * len(sizes))
        # per size, in Size's order: peak std, its grid x, its refined x, sigmoid width, sigmoid centre
        out = [v for i in range(len(sizes)) for v in (h[..., i], xg[..., i], xr[..., i], fit[2 * i + 1], fit[2 * i])]
        if claims:
            out += [S.log_slope(L, h), S.log_slope(L, np.moveaxis(fit[1::2], 0, -1))]
            out += list(S.batched(batch, lambda idx: S.fit_collapse(xs, L, mean[idx], ns, p0)[:2], 2))
        return np.stack(out)

    boot = S.bootstrap_cells(g.samples, statistic, n_boot=args.n_boot, seed=args.boot_seed, confidence=args.confidence)
    est = [boot.estimate(i) for i in range(boot.point.size)]
    per_size = {}
    for i, s in enumerate(sizes):
        h, xg, x, width, center = est[5 * i : 5 * i + 5]
        loc, note = peak_location(xs, curves[i][2], x, xg[0])
        per_size[s] = Size(h, xg[0], loc, note, width, center, fits[i])
    slopes = est[5 * len(sizes) :] if claims else [NAN3] * 4
    if claims:
        k, n = C.ktable(g, args)
        sharp, scaling = C.fit_sharpening(xs, L, k, n, args.confidence), C.fit_scaling(xs, L, k, n, args.confidence)
    else:
        sharp = C.Sharpening(NAN3, math.nan, "one size or sizes that are not positive numbers")
        scaling = C.Scaling(NAN3, NAN3, math.nan, sharp.why, "")
    label = functools.partial(FG.label, args.size_key)
    return Panel(**vars(g), sizes=per_size, claims=claims, collapse=collapse, exp_peak=slopes[0],
                 exp_width=slopes[1], collapse_lambda_c=slopes[2], collapse_nu=slopes[3], logits=logits,
                 sharpening=sharp, scaling=scaling, levelled=C.levelled(sizes, logits, label),
                 steepens=C.steepens(sizes, logits, label), moves=C.moves(sizes, logits, label, (xs.min(), xs.max())))


def peak_cell(p, s, z) -> dict:
    """The collapse statistics of a size's peak cell (its grid argmax of the std)."""
    cs = p.cells[(p.cells.iloc[:, 0] == s) & np.isclose(p.cells.iloc[:, 1].astype(float), z.peak_x_grid)]
    cols = {"peak_p_collapse": "p_collapse", "peak_p1mp": "p_1mp", "peak_collapse_var_share": "collapse_var_share"}
    return {name: math.nan if cs.empty else cs.iloc[0][c] for name, c in cols.items()}


def peak_location(xs, sd, estimate, xg):
    """((location, low, high), note): the interval spans the neighbours of a single-point peak
    and runs off the grid for a peak on its edge."""
    loc, lo, hi = estimate
    if not np.isfinite(xg):
        return estimate, ""
    if xg == xs.max():
        return (loc, lo, math.inf), "on the upper edge of the grid"
    if xg == xs.min():
        return (loc, -math.inf, hi), "on the lower edge of the grid"
    j, ok, base = int(np.searchsorted(xs, xg)), np.isfinite(sd), np.nanmin(sd)
    if ((sd[ok] - base) >= 0.5 * (sd[j] - base)).sum() == 1:
        # the nearest cells with a spread (cells of one run have none): none beyond, the interval runs off
        left, right = xs[:j][ok[:j]].max(initial=-math.inf), xs[j + 1 :][ok[j + 1 :]].min(initial=math.inf)
        lo, hi = (min(lo, left) if np.isfinite(lo) else left), (max(hi, right) if np.isfinite(hi) else right)
        return (loc, lo, hi), "a single-point peak (the neighbours are below half its height)"
    return estimate, ""


def verdict_sign(lo: float, hi: float, yes_if: str, yes: str, no: str) -> str:
    """YES if the interval lies on the ``yes_if`` side of 0 ('>0' or '<0'), NO if on the other."""
    if math.isnan(lo) or math.isnan(hi):
        return "UNDETERMINED (no interval)"
    if (lo > 0 and yes_if == ">0") or (hi < 0 and yes_if == "<0"):
        return f"YES ({yes})"
    return f"NO ({no})" if lo > 0 or hi < 0 else "NOT RESOLVED (the interval contains 0)"


# --------------------------------------------------------------------------- tables


def tables(panels, args, measure) -> list:
    """(name, report heading, table): the cells, the estimates per size, the claims."""
    sk, x = args.size_key, args.x_key
    cells = O.all_cells(panels, args.panel_key).assign(var=lambda c: c["std"] ** 2)
    if args.susceptibility:
        cells["size_L"] = cells[sk].map(measure)
        cells["chi"] = cells["size_L"] * cells["var"]
    summary = [
        {**O.summary_start(p, args, sk, s), **O.ci_cols("peak_std", z.peak_std), f"peak_{x}_grid": z.peak_x_grid,
         **O.ci_cols(f"peak_{x}", z.peak_x), "peak_note": z.peak_note, **O.ci_cols("sigmoid_width", z.sigmoid_width),
         **O.ci_cols("sigmoid_center", z.sigmoid_center),
         **({"size_L": measure[s], "chi_peak": measure[s] * z.peak_std[0] * z.peak_std[0]} if args.susceptibility else {}),
         **peak_cell(p, s, z), **C.logit_cols(x, f), "collapse_error": args.collapse_error}
        for p in panels for (s, z), f in zip(p.sizes.items(), p.logits)
    ]
    claims = []

    def claim(p, name, estimate, verdict=""):
        e, lo, hi = estimate
        claims.append({**O.panel_cols(p, args), "claim": name, "estimate": e, "lo": lo, "hi": hi, "verdict": verdict})

    for p in (p for p in panels if p.claims):
        for name, stat, _, yes_if, yes, no, _ in CLAIMS:
            estimate = getattr(p, stat)
            claim(p, name, estimate, verdict_sign(*estimate[1:], yes_if, yes, no).split(" (")[0])
        note = C.nu_resolved(*p.collapse_nu)
        claim(p, "collapse_lambda_c", p.collapse_lambda_c)
        claim(p, "collapse_nu", p.collapse_nu, f"NOT RESOLVED: {note}" if note else "")
        misfit = f"misdescribes {', '.join(p.levelled)}, whose P levels off below 1" if p.levelled else ""
        claim(p, "collapse probability sharpens with size (d slope / d ln L)", p.sharpening.d,
              "; ".join(v for v in (p.sharpening.verdict(), misfit and f"{misfit}: read the next claim") if v))
        claim(p, "the rise of P steepens with size, curve by curve", NAN3, "{}: {}".format(*p.steepens))
        claim(p, f"the rise of P ({x}_c at P=0.5, or mid-rise where P levels off) moves with size", NAN3,
              "{}: {}".format(*p.moves))
        sc = p.scaling
        nu_note = sc.why or sc.nu_note
        misfit = "" if sc.why else misfit
        for name, t in ((f"P collapse {x}_c", sc.lam_c), ("P collapse 1/nu", sc.inv_nu), ("P collapse nu", sc.nu)):
            verdict = f"NOT RESOLVED: {nu_note}" if nu_note and name.endswith("nu") else ""
            claim(p, name, t, "; ".join(v for v in (verdict, misfit) if v))
    return [("cells", None, cells), ("summary", "Peaks and transitions", pd.DataFrame(summary))] + (
        [("claims", "Claims and collapse", pd.DataFrame(claims))] if claims else [])


# --------------------------------------------------------------------------- printed summary


def echo_peaks(echo, panels, args, measure) -> None:
    """The notebook's summary (in its format), the seeds per point, each size's estimates."""
    x, sk = FG.sym(args.x_key), args.size_key
    echo("\n--- Variance Peak Analysis ---")
    for p in O.each_panel(echo, panels, args.panel_key):
        for s, z in p.sizes.items():
            h, found = z.peak_std[0], f"peak std={z.peak_std[0]:.4f} at {x}={z.peak_x_grid:.2f}"
            echo(f"  {FG.label(sk, s)}: " + (found if np.isfinite(h) else "no std (fewer than 2 seeds in every cell)"))
    O.echo_seeds(echo, panels, sk, args)
    echo(f"\n--- Peaks and transitions, {args.confidence:.0%} intervals ({O.boot_desc(args)}) ---")
    for p in O.each_panel(echo, panels, args.panel_key):
        for s, z in p.sizes.items():
            (h, hlo, hhi), (loc, llo, lhi), x0, sw = z.peak_std, z.peak_x, z.sigmoid_center, z.sigmoid_width
            chi = f"; chi=L·Var peak={FG.fnum(measure[s] * h * h, '.4g')}" if args.susceptibility else ""
            echo(f"  {FG.label(sk, s)}: peak std={FG.fnum(h)} {FG.fci(hlo, hhi)} at {x}={FG.fnum(loc, '.3f')} "
                 f"{FG.fci(llo, lhi, '.3f')}; logistic {x}0={FG.fnum(x0[0], '.3f')} {FG.fci(*x0[1:], '.3f')}, "
                 f"s={FG.fnum(sw[0])} {FG.fci(*sw[1:])} ({FG.seeds_note(p.cells.loc[p.cells[sk] == s, 'n'])}){chi}")
            if z.peak_note:
                echo(f"    note: the peak is {z.peak_note}; its location is known only to the interval shown")


def echo_collapse(echo, panels, args) -> None:
    """Per panel: the collapse probability per size, whether it sharpens and moves with size,
    its finite-size collapse, and how much of the variance peak is the collapse chance."""
    x, sk = FG.sym(args.x_key), args.size_key
    echo(f"\n--- The collapse probability (binomial logistic per size, statsmodels GLM; {args.confidence:.0%} "
         "profile-likelihood intervals) ---")
    for p in O.each_panel(echo, panels, args.panel_key):
        for (s, z), f in zip(p.sizes.items(), p.logits):
            echo(f"  {FG.label(sk, s)}: " + C.describe_fit(f, x, FG.fci, FG.fnum, (p.xs.min(), p.xs.max())))
            pc = peak_cell(p, s, z)
            if np.isfinite(z.peak_std[0]):
                share = pc["peak_collapse_var_share"]
                echo(f"    at the variance peak ({x}={z.peak_x_grid:.2f}): std={z.peak_std[0]:.4f}, "
                     f"P(collapse)={FG.fnum(pc['peak_p_collapse'], '.2f')}, p(1-p)={FG.fnum(pc['peak_p1mp'], '.3f')}; "
                     + (f"the split into collapsed and not explains {share:.0%} of the cell's variance"
                        if np.isfinite(share) else "no run collapsed there: none of the variance is collapse chance"
                        if pc["peak_p_collapse"] == 0 else "every run collapsed there"))
        few = p.cells[p.cells["few_runs"]]
        if len(few):
            echo(f"  note: {len(few)} cell(s) hold fewer than {C.MIN_RUNS} runs: their collapse fractions say little")
        if not p.claims:
            continue
        sh = p.sharpening
        echo(f"  collapse curve sharpens with size? {sh.verdict()}: d slope / d ln L = {FG.fnum(sh.d[0], '+.2f')} "
             f"{FG.fci(sh.d[1], sh.d[2], '+.2f')} (logit P = a + b {x} + c ln L + d {x} ln L)")
        if p.levelled:
            echo(f"    note: P levels off below 1 at {', '.join(p.levelled)}: this joint logistic misdescribes it; "
                 "the next line compares each curve's own rise")
        echo("  the rise of P steepens with size, curve by curve? {}: {}".format(*p.steepens))
        echo(f"  the rise of P ({x}_c at P=0.5, or mid-rise where P levels off) moves with size? " +
             "{}: {}".format(*p.moves))
        sc = p.scaling
        if sc.why:
            echo(f"  finite-size collapse of P: not fitted ({sc.why})")
        else:
            nu = sc.nu
            nu_text = f"ν not resolved ({sc.nu_note})" if sc.nu_note else f"ν={nu[0]:.2f} {FG.fci(nu[1], nu[2], '.2f')}"
            echo(f"  finite-size collapse of P = expit(({x} - {x}_c) (L/L0)^(1/ν) / w): {x}_c={sc.lam_c[0]:.3f} "
                 f"{FG.fci(sc.lam_c[1], sc.lam_c[2], '.3f')}, 1/ν={sc.inv_nu[0]:+.2f} "
                 f"{FG.fci(sc.inv_nu[1], sc.inv_nu[2], '+.2f')}, {nu_text}")
            if p.levelled:
                echo(f"    note: this form rises to 1 as well: it misdescribes {', '.join(p.levelled)}")


def echo_claims(echo, panels, args) -> None:
    """Per panel: the two claims with their verdicts, and the collapse."""
    x, sk = FG.sym(args.x_key), args.size_key
    echo(f"\n--- Claims and the finite-size collapse ({args.confidence:.0%} intervals; L = "
         f"{'ResNet18 parameters' if args.size_measure == 'params' else sk}) ---")
    for p in O.each_panel(echo, panels, args.panel_key):
        if not p.claims:
            why = "only one value of " + sk if len(p.curves) < 2 else sk + " is not a positive number"
            echo(f"  cannot be answered: {why}")
            continue
        for claim, stat, _, yes_if, yes, no, what in CLAIMS:
            e, lo, hi = getattr(p, stat)
            verdict = verdict_sign(lo, hi, yes_if, yes, no)
            echo(f"  {claim}? {verdict}: d ln({what}) / d ln(L) = {FG.fnum(e, '+.3f')} {FG.fci(lo, hi, '+.3f')}")
        (lc, clo, chi), (nu, nlo, nhi) = p.collapse_lambda_c, p.collapse_nu
        note = C.nu_resolved(nu, nlo, nhi)
        nu_text = f"ν not resolved ({note})" if note else f"ν={FG.fnum(nu, '.2f')} {FG.fci(nlo, nhi, '.2f')}"
        echo(f"  collapse of the mean error: {x}_c={FG.fnum(lc, '.3f')} {FG.fci(clo, chi, '.3f')}, {nu_text}, "
             f"rms deviation of the cell means from the collapsed curve {FG.fnum(p.collapse[5], '.3g')}")
        echo(f"    note: {len(p.curves)} sizes fix ν by {len(p.curves) - 1} ratio(s) of L only; the ν interval is the "
             "seed spread under the logistic form and says nothing about corrections to scaling" if len(p.curves) <= 3
             else "    note: the ν interval is the seed spread under the logistic form")


# --------------------------------------------------------------------------- figures


def figures(panels, args, measure) -> list:
    """(file name suffix, figure): the main figure, and with claims the scaling and the collapse."""
    out = [("", draw_main(panels, args, measure)), ("_probability", draw_probability(panels, args))]
    if any(p.claims for p in panels):
        out += [("_scaling", draw_scaling(panels, args, measure)), ("_collapse", draw_collapse(panels, args, measure))]
    return out


def draw_main(panels, args, measure):
    fig, axes = FG.new_figure(len(panels), 3 if args.susceptibility else 2)
    x_sym, colors = FG.sym(args.x_key), FG.palette(sorted({s for p in panels for s in p.curves}))
    name = "Test Error" if args.metric.endswith("_error") else args.metric
    for r, p in enumerate(panels):
        head, note = FG.panel_prefix(args.panel_key, p.value), FG.seeds_note(p.cells["n"], True)
        ax_e, ax_s = axes[r, 0], axes[r, 1]
        drawn, n_full = set(), FG.typical_n(p.cells["n"])
        for s, z in p.sizes.items():
            c, lab = colors[s], FG.label(args.size_key, s)
            x, m, sd, n = p.curve(args.size_key, s, args.x_key)
            drawn |= FG.error_curve(ax_e, x, m, sd, n, p.missing(n), n_full, c, lab, z.fit)
            drawn |= FG.runs_strip(ax_e, p, p.curves.index(s), c, args.collapse_error)
            ax_s.plot(x, sd, marker="s", color=c, label=lab, linewidth=2)
            FG.mark_missing(ax_s, x[p.missing(n)], c)
            FG.annotate_n(ax_s, x, sd, n, n_full, c)
            (h, hlo, hhi), (loc, llo, lhi) = z.peak_std, z.peak_x
            if np.isfinite(h):
                xerr = FG.err_interval(loc, max(llo, p.xs.min()), min(lhi, p.xs.max()))
                FG.estimate(ax_s, loc, h, xerr=xerr, yerr=FG.err_interval(h, hlo, hhi), color=c)
                drawn.add("peak")
            if args.susceptibility:
                axes[r, 2].plot(x, measure[s] * sd**2, marker="^", color=c, label=lab, linewidth=2)
        ax_e.set(title=f"{head}Error vs {x_sym} (different {FG.plural(args.size_key)})\n{note}", ylabel=name)
        ax_s.set(title=f"{head}Variance Peak (finite-size scaling)\n{note}",
                 ylabel=f"Std({name.split()[-1]}) - Variance Proxy")
        extra_e = [Line2D([], [], color="0.3", linestyle="--", label="sigmoid fit")] if "fit" in drawn else []
        extra_e += FG.strip_legend(ax_e, drawn, args.collapse_error)
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
            FG.grid_ticks(ax, p.xs)
            ax.set_xlim(p.xs.min() - 0.05 * (np.ptp(p.xs) or 1), p.xs.max() + 0.05 * (np.ptp(p.xs) or 1))
        FG.min_span(ax_e)
        ax_s.set_ylim(bottom=0)
        FG.min_span(ax_s, FG.MIN_ERROR_SPAN / 2, bottom=0)
        if not np.isfinite(p.cells["std"]).any():
            ax_s.text(0.5, 0.5, "no std: fewer than 2 seeds in every cell", ha="center", transform=ax_s.transAxes,
                      color="0.3")
    return fig


def draw_probability(panels, args):
    """Per panel: P(collapse) per cell and size with its binomial interval and logistic; and the
    cell variance beside the part of it that the collapse chance explains."""
    fig, axes = FG.new_figure(len(panels), 2)
    colors, x_sym = FG.palette(sorted({s for p in panels for s in p.curves})), FG.sym(args.x_key)
    for r, p in enumerate(panels):
        ax, axv = axes[r, 0], axes[r, 1]
        FG.collapse_curves(ax, p, colors, args.size_key, args)
        for s in p.curves:
            cs = p.cells[p.cells.iloc[:, 0] == s]
            var = cs["std"].to_numpy(float) ** 2
            part = var * np.nan_to_num(cs["collapse_var_share"].to_numpy(float))
            xv = cs[args.x_key].to_numpy(float)
            axv.plot(xv, var, marker="s", color=colors[s], linewidth=2, label=f"{FG.label(args.size_key, s)}: Var")
            axv.plot(xv, part, linestyle="--", marker="x", color=colors[s], linewidth=1.2,
                     label="of it, collapse chance p(1-p)Δ²")
        FG.grid_ticks(axv, p.xs)
        axv.set(xlabel=x_sym, ylabel="variance of the cell's runs",
                title=f"{FG.panel_prefix(args.panel_key, p.value)}Variance per cell, and the part the two outcomes "
                      "explain\n(law of total variance: p(1-p)·(mean collapsed - mean not)²)")
        axv.grid(True, alpha=0.3)
        for a in (ax, axv):
            a.legend(fontsize=8)
    return fig


def draw_scaling(panels, args, measure):
    fig, axes = FG.new_figure(1, 2, width=6.5)
    colors, shown = FG.palette([p.value for p in panels]), [p for p in panels if p.claims]
    for ax, stat, exp, title in ((axes[0, 0], "peak_std", "exp_peak", "Does the variance peak rise with size?"),
                                 (axes[0, 1], "sigmoid_width", "exp_width", "Does the transition sharpen with size?")):
        for k, p in enumerate(shown):
            v = np.array([getattr(z, stat) for z in p.sizes.values()])
            ok = np.isfinite(v[:, 0]) & (v[:, 0] > 0)
            e, elo, ehi = getattr(p, exp)
            yerr = np.nan_to_num(np.abs(v[:, 1:].T - v[:, 0]))[:, ok]
            ax.errorbar(np.array([measure[s] for s in p.curves])[ok] * 1.025**k, v[ok, 0], yerr=yerr,
                        marker="osD^"[k % 4], capsize=5, linewidth=2, color=colors[p.value],
                        label=f"{O.panel_head(args.panel_key, p.value)}: slope {FG.fnum(e, '+.2f')} "
                              f"{FG.fci(elo, ehi, '+.2f')}")
        ax.set(xscale="log", yscale="log", title=f"{title}\n(estimate and {args.confidence:.0%} CI; slope = log-log "
               f"exponent)", xlabel=f"L ({'M params' if args.size_measure == 'params' else args.size_key}, log)",
               ylabel=f"{stat} (log)")
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
            ax.errorbar((x - lc) * (measure[s] / mean_L) ** (1 / nu), m, yerr=np.nan_to_num(sd), marker="o",
                        linestyle="none", capsize=3, color=colors[s], label=FG.label(args.size_key, s))
        t = np.linspace(*ax.get_xlim(), 200)
        ax.plot(t, S.sigmoid(t, a, b, 0.0, w), color="0.3", linestyle="--", label=f"F(t), rms deviation {rms:.3g}")
        (_, clo, chi), (_, nlo, nhi), x_sym = p.collapse_lambda_c, p.collapse_nu, FG.sym(args.x_key)
        ax.set(xlabel=f"({x_sym} - {x_sym}_c) · (L / geometric mean L)^(1/ν)", ylabel=args.metric,
               title=f"{O.panel_head(args.panel_key, p.value)}: {x_sym}_c = {lc:.3f} {FG.fci(clo, chi, '.3f')}, "
               f"ν = {nu:.2f} {FG.fci(nlo, nhi, '.2f')}\n({args.confidence:.0%} CI; {len(p.curves)} sizes)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=9)
    return fig


def build_parser():
    parser = cli.script_parser("python -m analysis.variance_peak", "Variance peak and finite-size collapse.")
    parser.add_argument("--size-key", default="model.width", help="model size key (default: model.width)")
    parser.add_argument("--susceptibility", action="store_true", help="add a column with chi = L * Var(error)")
    C.add_options(parser)
    parser.add_argument("--size-measure", choices=("params", "value"), help="L: ResNet18 parameters (M) at the width "
                        "multiplier (default for model.width / width_mult) or the size key's value")
    return parser


def main(argv=None) -> int:
    return cli.main(build_parser(), run, argv)


def run(args) -> int:
    args.size_measure = args.size_measure or ("params" if args.size_key in ("model.width", "width_mult") else "value")
    echo, runs = cli.start(args, "--size-key", args.size_key, "FINITE-SIZE SCALING ANALYSIS")
    measure = size_measure(args, sorted(runs.df[args.size_key].unique().tolist()))
    C.setup(echo, runs.df, args, [args.panel_key, args.size_key, args.x_key])
    panels = [analyse_panel(g, args, measure) for g in S.grids(runs.df, args.panel_key, args.size_key, args.x_key)]
    results = tables(panels, args, measure)
    echo_peaks(echo, panels, args, measure)
    echo_claims(echo, panels, args)
    echo_collapse(echo, panels, args)
    if args.suggest:
        what = f"the {FG.sym(args.x_key)} interval of the variance peak"
        plans = [(p.value, s, p.xs, *z.peak_x[1:], what, f)
                 for p in panels for (s, z), f in zip(p.sizes.items(), p.logits)]
        suggest(echo, args, runs.df, args.size_key, plans, "python -m analysis.variance_peak")
    describe = (f"metric: `{args.metric}`; size key `{args.size_key}`, panels by `{args.panel_key}`, x `{args.x_key}`; "
                f"a run is collapsed when {args.metric} > {args.collapse_error:.3f}")
    title = "Variance peak (finite-size scaling)"
    return O.write_outputs(args, runs, echo, STEM, title, figures(panels, args, measure), results, describe)


if __name__ == "__main__":
    sys.exit(main())
