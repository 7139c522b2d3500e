"""The next grid: N new lambda values per curve where the current data leave the transition
(or the variance peak) least resolved, or (``--span``) spread across the transition to measure
its shape, printed with one line of reasoning each, and written on request as Hydra experiment
files (``python train.py -m experiment=NAME``)."""

from __future__ import annotations

import json
import math
import os
import re
from itertools import pairwise

import numpy as np
import pandas as pd
import scipy.special
from omegaconf import OmegaConf

from analysis import figures as FG
from analysis.output import write_text
from analysis.runs import flatten
from dgl.config import LAM_RANGE, compose
from dgl.identity import PLACE_AND_SPEED, SELECTORS


def split_gaps(lo: float, hi: float, grid, n: int) -> list[tuple[float, float, float]]:
    """n new points in [lo, hi], each halving the widest gap left between the interval's ends,
    the grid points inside it and the points already placed: (new point, gap low, gap high)."""
    pts, out = sorted({lo, hi} | {float(g) for g in grid if lo < g < hi}), []
    for _ in range(n):
        a, b = max(pairwise(pts), key=lambda g: g[1] - g[0])
        m = round((a + b) / 2, 4)
        if not a < m < b:
            break  # nothing left to split at this resolution
        out.append((m, a, b))
        pts = sorted(pts + [m])
    return out


def target(lo: float, hi: float, xs) -> tuple[float, float, str]:
    """The interval to fill: [lo, hi], opened past the grid edge by two grid steps where the
    estimate lies beyond it (or has no interval)."""
    step = float(min(b - a for a, b in pairwise(xs))) if len(xs) > 1 else 0.05
    if lo == -float("inf") or (math.isnan(lo) and hi == xs[0]):
        return xs[0] - 2 * step, xs[0], "below the grid"
    if hi == float("inf") or (math.isnan(hi) and lo == xs[-1]):
        return xs[-1], xs[-1] + 2 * step, "above the grid"
    return lo, hi, ""


SPAN = (0.1, 0.9)  # --span: the collapse probabilities between which the new values lie


def span(logit, n: int, lo: float, hi: float) -> list[tuple[float, float]]:
    """n values of x across a curve's fitted rise of the collapse probability, where it has
    risen by fractions of its level evenly spaced over SPAN (P itself where it rises to 1),
    kept within [lo, hi], ascending: (x, P there). Empty without a finite fitted slope."""
    lc, b = logit.midpoint[0], logit.steepness[0]
    if not (math.isfinite(lc) and math.isfinite(b) and b != 0):
        return []
    xs = sorted({round(min(max(lc + scipy.special.logit(p) / b, lo), hi), 4) for p in np.linspace(*SPAN, n)})
    return [(x, float(logit.p(x))) for x in xs]


GROUPS = ("data", "model", "noise")  # config groups, chosen by their `name`


def composes(experiment: str) -> bool:
    """Whether ``experiment=NAME`` composes under the plain sweeper (an adaptive sweep's
    experiment sets options only the adaptive sweeper takes)."""
    try:
        compose([f"experiment={experiment}"])
        return True
    except Exception:  # Hydra's composition errors (an unknown experiment too): build on the runs instead
        return False


def recorded_choices(run: pd.Series) -> tuple[dict, dict]:
    """A run's recorded config without its experiment: the config groups it chose, and every
    computational value that differs from what those choices give (dotted keys)."""
    choices = {g: str(run[f"{g}.name"]) for g in GROUPS if f"{g}.name" in run}
    cfg = compose([f"{g}={v}" for g, v in choices.items()])
    skip = (*PLACE_AND_SPEED, *SELECTORS, "name", "lam", "seed")
    values = {}
    for key in flatten(OmegaConf.to_container(cfg, resolve=False)):
        default = OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
        if key in run and key not in skip and not _same(run[key], default):
            values[key] = run[key].item() if hasattr(run[key], "item") else run[key]
    return choices, values


def _same(recorded, default) -> bool:
    """Whether a recorded value (NaN where it was None) is a config default."""
    if default is None:
        return recorded is None or (isinstance(recorded, float) and math.isnan(recorded))
    try:
        return float(recorded) == float(default)
    except (TypeError, ValueError):
        return str(recorded) == str(default)


def experiment_file(runs: pd.DataFrame, x_key: str, values, reasons: list[str], command: str,
                    n_seeds: int = 0) -> tuple[str, str]:
    """(experiment name, YAML text) of a sweep over ``values`` of ``x_key`` with everything else
    as in ``runs`` (their overrides), seeds 0..n_seeds-1 (0: the seeds they used)."""
    overrides = ([dict(o.split("=", 1) for o in json.loads(s)) for s in runs["overrides"].dropna()]
                 if "overrides" in runs else [])
    fixed, seeds = {}, list(range(n_seeds)) if n_seeds else sorted({int(s) for s in runs["seed"]})
    for o in overrides:
        for k, v in o.items():
            fixed.setdefault(k, v)  # keys that moved with x (such as lam_index) keep one value: x is set directly
    base = fixed.pop("experiment", None)
    fixed = {k: v for k, v in fixed.items()
             if k not in (x_key, "seed", *PLACE_AND_SPEED) and not k.startswith(("hydra", "+"))}
    name = str(runs["name"].iloc[0]) if "name" in runs else "sweep"
    slug = re.sub(r"[^A-Za-z0-9]+", "_", "_".join(f"{k}{v}" for k, v in fixed.items() if k != "lam_index"))
    groups, recorded = {}, {}
    if base and not composes(base):  # an adaptive sweep's experiment: a grid cannot build on it
        (groups, recorded), base = recorded_choices(runs.iloc[0]), None
        recorded = {k: v for k, v in recorded.items() if k not in fixed}
    exp = f"{name}_next_{slug}".strip("_")
    lines = ["# @package _global_", f"# Suggested by {command}:", *(f"#   {r}" for r in reasons),
             f"#   python train.py -m experiment={exp}"]
    lines += ["defaults:", f"  - {base}"] if base else []
    lines += ["defaults:", *(f"  - override /{g}: {v}" for g, v in groups.items())] if groups else []
    nested = OmegaConf.to_yaml(OmegaConf.from_dotlist([f"{k}={json.dumps(v)}" for k, v in recorded.items()]))
    lines += [nested.rstrip("\n")] if recorded else []
    lines += [f"name: {exp}", "hydra:", "  sweeper:", "    params:"]
    lines += [f"      {k}: {v}" for k, v in fixed.items()]
    lines += [f"      {x_key}: {','.join(FG.fmt(v) for v in values)}", f"      seed: {','.join(map(str, seeds))}"]
    return exp, "\n".join(lines) + "\n"


def suggest(echo, args, runs: pd.DataFrame, curve_key: str, plans, prog: str) -> None:
    """Print (and with ``--experiment-dir`` write) ``args.suggest`` new x values per curve.

    ``plans``: (panel value, curve value, grid xs, lo, hi, what the interval is, the curve's
    collapse.Logit) per curve."""
    x = FG.sym(args.x_key)
    how = f"spread in P(collapse) from {SPAN[0]:g} to {SPAN[1]:g} (--span)" if args.span else "(--suggest)"
    echo(f"\n--- Next grid: {args.suggest} new {x} per curve {how} ---")
    bounds = LAM_RANGE if args.x_key == "lam" else (-math.inf, math.inf)  # the trainer refuses a lam outside
    for panel, curve, xs, lo, hi, what, logit in plans:
        head = (f"{FG.label(args.panel_key, panel)}, " if args.panel_key else "") + FG.label(curve_key, curve)
        if args.span:
            new = span(logit, args.suggest, *bounds)
            if not new:
                echo(f"  {head}: no fitted collapse logistic to span ({logit.why or 'no finite slope'})")
                continue
            fit = (f"the rise to {logit.ceiling[0]:.2f} at {x}={logit.midpoint[0]:.4g}" if logit.rise
                   else f"the logistic {x}_c={logit.lam_c[0]:.4g}")
            reasons = [f"{x}={FG.fmt(m)}: P(collapse)={p:.2f} on {fit}, slope {logit.steepness[0]:.3g}" for m, p in new]
        else:
            lo, hi, side = target(lo, hi, list(xs))
            if math.isnan(lo) or math.isnan(hi):
                echo(f"  {head}: no estimate to refine ({what}); widen the {x} grid by hand")
                continue
            lo, hi = max(lo, bounds[0]), min(hi, bounds[1])
            if not lo < hi:
                above = side == "above the grid"
                echo(f"  {head}: {what} lies {'above' if above else 'below'} {x}={bounds[above]:g}, the "
                     f"{'largest' if above else 'smallest'} {x} the trainer accepts: nothing to place")
                continue
            new = split_gaps(lo, hi, xs, args.suggest)
            reasons = [f"{x}={FG.fmt(m)}: halves the widest gap {a:.4g}-{b:.4g} of {what} "
                       f"[{lo:.4g}, {hi:.4g}]{' (' + side + ')' if side else ''}" for m, a, b in new]
        echo(f"  {head}:")
        for r in reasons:
            echo(f"    {r}")
        if args.experiment_dir and new:
            sel = runs if args.panel_key is None else runs[runs[args.panel_key] == panel]
            command = f"{prog} --suggest {args.suggest}" + (" --span" if args.span else "")
            exp, text = experiment_file(sel[sel[curve_key] == curve], args.x_key, [v[0] for v in new], reasons, command,
                                        args.seeds)
            echo(f"    wrote {write_text(os.path.join(args.experiment_dir, exp + '.yaml'), text)}")
