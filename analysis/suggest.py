"""The next grid: N new lambda values per curve where the current data leave the transition
(or the variance peak) least resolved, printed with one line of reasoning each, and written on
request as Hydra experiment files (``python train.py -m experiment=NAME``)."""

from __future__ import annotations

import json
import math
import os
import re
from itertools import pairwise

import pandas as pd

from analysis import figures as FG
from analysis.output import write_text
from dgl.config import LAM_RANGE


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


def experiment_file(runs: pd.DataFrame, x_key: str, values, reasons: list[str], prog: str) -> tuple[str, str]:
    """(experiment name, YAML text) of a sweep over ``values`` of ``x_key`` with everything else
    as in ``runs`` (their overrides; the seeds they used)."""
    overrides = ([dict(o.split("=", 1) for o in json.loads(s)) for s in runs["overrides"].dropna()]
                 if "overrides" in runs else [])
    fixed, seeds = {}, sorted({int(s) for s in runs["seed"]})
    for o in overrides:
        for k, v in o.items():
            fixed.setdefault(k, v)  # keys that moved with x (such as lam_index) keep one value: x is set directly
    base = fixed.pop("experiment", None)
    fixed = {k: v for k, v in fixed.items() if k not in (x_key, "seed") and not k.startswith(("hydra", "+"))}
    name = str(runs["name"].iloc[0]) if "name" in runs else "sweep"
    slug = re.sub(r"[^A-Za-z0-9]+", "_", "_".join(f"{k}{v}" for k, v in fixed.items() if k != "lam_index"))
    exp = f"{name}_next_{slug}".strip("_")
    lines = ["# @package _global_", f"# Suggested by {prog} --suggest {len(values)}:", *(f"#   {r}" for r in reasons),
             f"#   python train.py -m experiment={exp}"]
    lines += ["defaults:", f"  - {base}"] if base else []
    lines += [f"name: {exp}", "hydra:", "  sweeper:", "    params:"]
    lines += [f"      {k}: {v}" for k, v in fixed.items()]
    lines += [f"      {x_key}: {','.join(FG.fmt(v) for v in values)}", f"      seed: {','.join(map(str, seeds))}"]
    return exp, "\n".join(lines) + "\n"


def suggest(echo, args, runs: pd.DataFrame, curve_key: str, plans, prog: str) -> None:
    """Print (and with ``--experiment-dir`` write) ``args.suggest`` new x values per curve.

    ``plans``: (panel value, curve value, grid xs, lo, hi, what the interval is) per curve."""
    x = FG.sym(args.x_key)
    echo(f"\n--- Next grid: {args.suggest} new {x} per curve (--suggest) ---")
    for panel, curve, xs, lo, hi, what in plans:
        head = (f"{FG.label(args.panel_key, panel)}, " if args.panel_key else "") + FG.label(curve_key, curve)
        lo, hi, side = target(lo, hi, list(xs))
        if math.isnan(lo) or math.isnan(hi):
            echo(f"  {head}: no estimate to refine ({what}); widen the {x} grid by hand")
            continue
        if args.x_key == "lam":  # the trainer refuses a lam outside LAM_RANGE
            lo, hi = max(lo, LAM_RANGE[0]), min(hi, LAM_RANGE[1])
            if not lo < hi:
                above = side == "above the grid"
                echo(f"  {head}: {what} lies {'above' if above else 'below'} {x}={LAM_RANGE[above]:g}, the "
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
            exp, text = experiment_file(sel[sel[curve_key] == curve], args.x_key, [m for m, _, _ in new], reasons, prog)
            echo(f"    wrote {write_text(os.path.join(args.experiment_dir, exp + '.yaml'), text)}")
