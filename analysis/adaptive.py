"""Where to run next to locate lambda_c: the decision logic of the adaptive sweep.

Pure and torch-free. Input: the finished runs of every curve (lambda, seed, error); output:
the next round's (curve, lambda, seed) list and one reason per curve. Deterministic: the same
runs (in any order) give the same round (the bootstrap's seed is fixed).

Each curve's lambda_c is estimated with the project's statistics (analysis.stats,
analysis.collapse), with an error threshold midway between the low plateau (the lowest cell
median) and chance, unless one is given:

- the mean-error crossing (:func:`analysis.stats.threshold_crossing`), its interval from
  :func:`analysis.stats.bootstrap_cells` over seeds;
- the collapse probability (a run collapses when its error is above the threshold),
  :func:`analysis.collapse.fit_logistic`: lambda at P = 0.5 with its profile interval.

The curve's interval is the collapse probability's once it is a full fit (both outcomes
overlap in lambda: runs collapse with a probability that rises with lambda), else the mean
crossing's (a smooth rise, or a step that the runs resolve completely). A curve is located when
that interval is finite and at most ``target_width`` wide. The next round adds, per curve not
located, ``points_per_round`` lambda values around the estimate, spread over half the interval
(the widest part of the evidence), ``seeds_per_point`` new seeds each; a curve whose
transition is not inside its runs (every cell below, or above, the threshold) is extended past
that edge by grid steps, within ``lam_bounds``. A new lambda closer than ``min_spacing`` to a
cell becomes that cell (its seeds go there). Cells around the crossing with fewer than
``min_cell_runs`` runs are brought straight to it. A full collapse fit whose slope interval
includes 0 is named flat: lambda_c(P=0.5) is not resolvable from these runs, and the round
adds seeds at the two ends of the range where both outcomes occur (for a near-constant P the
slope's variance falls with sum n (lambda - mean)^2, so the ends resolve it most; a real rise
then shows as a steeper fit). A round smaller than ``min_round_runs`` (each round relaunches
the workers on a GPU) is filled with seeds in the cells nearest the estimate. When the budget
cannot pay for every curve, the curves with the widest intervals go first.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from analysis import collapse as C
from analysis import stats as S
from analysis.runs import CHANCE_ERROR
from dgl.config import LAM_RANGE
from dgl.identity import PLACE_AND_SPEED, without

NAN3 = (math.nan,) * 3


@dataclass
class Options:
    target_width: float = 0.02  # stop a curve when its lambda_c interval is at most this wide
    max_runs: int = 150  # runs in all (every round, every curve)
    grid_points: int = 5  # round 0: lambda values over the range
    seeds_per_point: int = 2  # seeds at each lambda of round 0 and of each later point
    points_per_round: int = 3  # new lambda values per curve and round
    threshold: float | None = None  # error threshold; None: midway between the plateau and chance
    chance_error: float = CHANCE_ERROR
    confidence: float = 0.95
    n_boot: int = 300
    boot_seed: int = 0
    lam_bounds: tuple = LAM_RANGE  # lambda is never placed outside
    decimals: int = 4  # lambda values are rounded to this many decimals
    min_cell_runs: int = 4  # the mean crossing's interval counts once both cells around it hold this many runs
    min_round_runs: int | None = None  # a smaller round is filled up to this; None: points_per_round x seeds_per_point
    min_spacing: float | None = None  # a new lambda this close to a cell joins it; None: target_width / 4

    @property
    def round_runs(self) -> int:
        return self.points_per_round * self.seeds_per_point if self.min_round_runs is None else self.min_round_runs

    @property
    def spacing(self) -> float:
        # two cells closer than a quarter of the target width move a target-wide interval by at
        # most a quarter of it; pooled in one cell, their seeds narrow its bootstrap instead
        return self.target_width / 4 if self.min_spacing is None else self.min_spacing


@dataclass
class Estimate:
    """One curve's lambda_c: (estimate, low, high) of the statistic in use, and both statistics."""

    method: str  # "collapse" (P = 0.5), "rise" (mid-rise of a P that levels off), "mean" (mean-error crossing) or ""
    lam_c: tuple
    mean_c: tuple
    collapse_c: tuple
    threshold: float
    side: int  # no crossing inside the runs: +1 every cell below the threshold, -1 every cell above; else 0
    note: str = ""
    thin: tuple = ()  # cells around the crossing with fewer than min_cell_runs runs (the bootstrap
    # over 2-3 seeds a cell understates the spread: such an interval is not trusted yet)
    flat: tuple = ()  # (low, high) lambdas where both outcomes occur, when the collapse fit is flat
    ceiling: tuple = ()  # (level, low, high) where the collapse probability levels off below 1

    @property
    def width(self) -> float:
        lo, hi = self.lam_c[1], self.lam_c[2]
        return hi - lo if math.isfinite(lo) and math.isfinite(hi) else math.inf

    def describe(self) -> str:
        e, lo, hi = self.lam_c
        if not self.method:
            return f"lambda_c not located ({self.note})"
        what = {"collapse": "collapse P=0.5", "rise": "mid-rise of P, which levels off below 1"}.get(self.method,
                                                                                                  "mean crossing")
        return f"lambda_c {e:.4f} [{lo:.4f}, {hi:.4f}] ({what}, width {self.width:.4f})"


@dataclass
class Decision:
    jobs: list  # [(curve, lambda, seed)] of the next round, in launch order
    reasons: dict  # curve -> one line
    estimates: dict  # curve -> Estimate (None before any run)
    located: list  # the curves whose interval is at most target_width
    stop: str = ""  # why the sweep ends after this decision ("" while it goes on)
    runs: int = 0  # runs so far (every curve)

    def line(self, round_no: int, labels: dict | None = None) -> str:
        labels = labels or {}
        head = f"round {round_no}: {self.runs} runs so far"
        parts = [f"{labels.get(c, c)}: {r}" for c, r in self.reasons.items()]
        tail = f"next: {len(self.jobs)} runs" if self.jobs else "next: nothing"
        return "; ".join([head, *parts]) + f" | {tail}" + (f" | stop: {self.stop}" if self.stop else "")

    def record(self) -> dict:
        return {"runs": self.runs, "stop": self.stop, "located": list(self.located),
                "reasons": dict(self.reasons),
                "estimates": {c: (None if e is None else asdict(e)) for c, e in self.estimates.items()},
                "jobs": [list(j) for j in self.jobs]}


def _fmt(x: float) -> str:
    return f"{x:.4f}"


def _cells(runs):
    """Unique lambdas ascending and each cell's errors (ordered by seed)."""
    by = {}
    for lam, seed, y in sorted((float(r[0]), int(r[1]), float(r[2])) for r in runs):
        by.setdefault(lam, []).append(y)
    xs = np.array(sorted(by), dtype=float)
    return xs, [np.asarray(by[x], dtype=float) for x in sorted(by)]


def estimate(runs, opt: Options) -> Estimate:
    """lambda_c of one curve from its runs [(lambda, seed, error)]."""
    xs, samples = _cells(runs)
    plateau = min(float(np.median(s)) for s in samples)
    thr = opt.threshold if opt.threshold is not None else 0.5 * (plateau + opt.chance_error)
    ns = np.array([s.size for s in samples], dtype=float)
    means = np.array([s.mean() for s in samples])
    above = means > thr
    side = 1 if not above.any() else (-1 if above.all() else 0)

    # the mean-error crossing, bootstrap over seeds
    mean_c, thin = NAN3, ()
    if side == 0:
        fit0 = S.fit_sigmoid(xs, means, ns)

        def statistic(cells):
            m = np.stack([c.mean(-1) for c in cells], -1)
            return S.batched(m.shape[:-1], lambda idx: [S.threshold_crossing(xs, m[idx], ns, thr, p0=fit0)], 1)

        boot = S.bootstrap_cells(samples, statistic, n_boot=opt.n_boot, seed=opt.boot_seed,
                                 confidence=opt.confidence)
        mean_c = boot.estimate(0)
        if math.isfinite(mean_c[0]):
            j = int(np.searchsorted(xs, mean_c[0]))
            near = [i for i in (j - 1, j) if 0 <= i < xs.size]
            thin = tuple(float(xs[i]) for i in near if ns[i] < opt.min_cell_runs)
    # the collapse probability
    k = np.array([(s > thr).sum() for s in samples], dtype=float)
    fit = C.fit_logistic(xs, k, ns, opt.confidence, window=False)  # the range is chosen to hold a rise
    collapse_c = tuple(float(v) for v in fit.lam_c)

    full = fit.fitted and not fit.why
    flat = ()
    if full and fit.slope[1] <= 0 <= fit.slope[2]:  # P may not rise at all: no P = 0.5 to locate
        flat = (float(xs[k > 0].min()), float(xs[k < ns].max()))
        method, lam_c = "", (collapse_c[0], math.nan, math.nan)
        note = (f"collapse probability flat over [{_fmt(flat[0])}, {_fmt(flat[1])}]: lambda_c(P=0.5) not "
                f"resolvable with {int(ns.sum())} runs")
    elif full and fit.rise:  # its P = 0.5 is the logistic's artefact: the transition is the rise to the level
        rise = tuple(float(v) for v in fit.rise[0])
        method, lam_c = ("rise", rise) if all(map(math.isfinite, rise)) else ("", (rise[0], math.nan, math.nan))
        note = ("collapse probability levels off at {:.2f} [{:.2f}, {:.2f}], below 1: lambda_c is the midpoint "
                "of its rise".format(*fit.ceiling))
    elif full and all(math.isfinite(v) for v in collapse_c):
        method, lam_c, note = "collapse", collapse_c, ""
    elif all(math.isfinite(v) for v in mean_c) and not thin:
        method, lam_c, note = "mean", mean_c, ""
    else:
        method, lam_c = "", (mean_c[0] if math.isfinite(mean_c[0]) else collapse_c[0], math.nan, math.nan)
        note = ("every cell below the threshold" if side > 0 else "every cell above the threshold" if side < 0
                else f"fewer than {opt.min_cell_runs} runs at {','.join(_fmt(x) for x in thin)}" if thin
                else "no interval yet (too few seeds per cell)")
    return Estimate(method, tuple(float(v) for v in lam_c), tuple(float(v) for v in mean_c), collapse_c,
                    float(thr), side, note, thin if not method else (), flat,
                    fit.ceiling if math.isfinite(fit.ceiling[0]) and not flat else ())


def round0(lam_range, opt: Options) -> list:
    """The coarse grid: [(lambda, seed)]."""
    lo, hi = float(lam_range[0]), float(lam_range[1])
    pts = sorted({round(float(x), opt.decimals) for x in np.linspace(lo, hi, max(opt.grid_points, 2))})
    return [(x, s) for x in pts for s in range(opt.seeds_per_point)]


def _used(runs, opt: Options) -> dict:
    """lambda -> the seeds run (or placed) there."""
    used = {}
    for lam, seed, _ in runs:
        used.setdefault(round(float(lam), opt.decimals), set()).add(int(seed))
    return used


def _add_seeds(points, used: dict, per: int) -> list:
    """``per`` new seeds (the lowest unused, then marked used) at each of ``points`` (a point
    given twice gets twice as many): [(lambda, seed)]."""
    out = []
    for x in points:
        taken, s = used.setdefault(x, set()), 0
        for _ in range(per):
            while s in taken:
                s += 1
            taken.add(s)
            out.append((x, s))
    return out


def _snap(points, cells, spacing: float) -> list:
    """``points`` with each one closer than ``spacing`` to a cell (or to a point before it)
    replaced by that cell: seeds there, not a new lambda next to it."""
    taken, out = [float(c) for c in cells], []
    for p in points:
        near = min(taken, key=lambda c: abs(c - p), default=None)
        if near is not None and abs(near - p) < spacing:
            p = near
        else:
            taken.append(p)
        out.append(p)
    return out


def _fill(cells, used: dict, n: int) -> list:
    """n new seeds over ``cells``, one per cell in turn: [(lambda, seed)]."""
    return [job for i in range(n) for job in _add_seeds([cells[i % len(cells)]], used, 1)] if cells else []


def propose(runs, est: Estimate, lam_range, opt: Options) -> tuple[list, list, str]:
    """One curve not located: its next (lambda, seed) list, the seeds that fill a round smaller
    than min_round_runs (in the order to use them), and why."""
    xs, samples = _cells(runs)
    cells = [round(float(x), opt.decimals) for x in xs]
    counts = dict(zip(cells, (s.size for s in samples)))
    used = _used(runs, opt)
    lo_b, hi_b = opt.lam_bounds
    grid_step = (float(lam_range[1]) - float(lam_range[0])) / max(opt.grid_points - 1, 1)
    n, spp = opt.points_per_round, opt.seeds_per_point

    def clip(pts):
        return sorted({round(min(max(float(p), lo_b), hi_b), opt.decimals) for p in pts})

    def fill(jobs, e):  # seeds in the cells (old and new) nearest e, two on each side at most
        around = sorted(set(cells) | {x for x, _ in jobs}, key=lambda c: (abs(c - e), c))[:4]
        return _fill(around, used, opt.round_runs)

    if est.flat:  # before the edges: the mean of a 50/50 mixture may sit on either side of the threshold
        ends = sorted(set(est.flat))
        jobs = _add_seeds(ends, used, spp)
        return jobs, _fill(ends, used, opt.round_runs), (f"+{len(jobs)} seeds at the ends of that range, "
                                                         f"{','.join(_fmt(p) for p in ends)} (where runs resolve its slope most)")
    if not est.method and est.side:  # the transition lies past an edge of the runs: extend
        edge = xs.max() if est.side > 0 else xs.min()
        pts = [p for p in clip(edge + est.side * grid_step * np.arange(1, n + 1)) if p not in set(cells)]
        if not pts:
            return [], [], f"lambda_c is {'above' if est.side > 0 else 'below'} the bound {hi_b if est.side > 0 else lo_b:g}"
        where = "above" if est.side > 0 else "below"
        jobs = _add_seeds(_snap(pts, cells, opt.spacing), used, spp)
        return jobs, _fill(pts, used, opt.round_runs), (f"{est.note}: extends {where} {_fmt(edge)} to "
                                                        f"{','.join(_fmt(p) for p in pts)}")
    e, lo, hi = est.lam_c
    if est.thin:  # the cells around the crossing, straight to min_cell_runs
        pts = [x for x in est.thin for _ in range(max(opt.min_cell_runs - counts[round(x, opt.decimals)], 1))]
        jobs = _add_seeds(pts, used, 1)
        centre = e if math.isfinite(e) else float(np.mean(est.thin))
        return jobs, fill(jobs, centre), (f"{est.note}: +{len(jobs)} seeds at "
                                          f"{','.join(_fmt(p) for p in est.thin)} (to {opt.min_cell_runs} runs)")
    if not math.isfinite(e):
        e = float(xs.mean())
    width = est.width
    if not math.isfinite(width):  # an open or missing interval: spread over a grid step either side
        lo = lo if math.isfinite(lo) else e - grid_step
        hi = hi if math.isfinite(hi) else e + grid_step
    if e < xs.min() or e > xs.max():  # extrapolated past the runs: go there
        e = min(max(e, xs.min() - grid_step), xs.max() + grid_step)
    half = max(hi - lo, 10 ** -opt.decimals * n) / 2
    pts = _snap(clip(np.linspace(e - half / 2, e + half / 2, n) if n > 1 else [e]), cells, opt.spacing)
    jobs = _add_seeds(pts, used, spp)
    new, joined = sorted(set(pts) - set(cells)), sorted(set(pts) & set(cells))
    why = (f"interval {_fmt(est.width)} > target {opt.target_width:g}" if math.isfinite(est.width)
           else f"no closed interval ({est.note or 'open-ended'})")
    what = [f"+{len(new)} lambdas {','.join(_fmt(p) for p in new)}"] if new else []
    what += [f"+seeds at {','.join(_fmt(p) for p in joined)} (a cell within {opt.spacing:g})"] if joined else []
    return jobs, fill(jobs, e), f"{why}: {', '.join(what)}"


def decide(runs_by_curve: dict, ranges: dict, opt: Options, planned: int | None = None) -> Decision:
    """The next round for every curve. runs_by_curve: curve -> [(lambda, seed, error)] (finished
    runs); ranges: curve -> (lambda low, lambda high) of round 0; planned: runs planned so far
    (default: the runs given), charged against max_runs."""
    curves = list(ranges)
    total = sum(len(runs_by_curve.get(c, [])) for c in curves)
    planned = total if planned is None else planned
    proposals, fillers, reasons, ests, located = {}, {}, {}, {}, []
    for c in curves:
        runs = runs_by_curve.get(c) or []
        if not runs:
            ests[c] = None
            proposals[c], fillers[c] = round0(ranges[c], opt), []
            reasons[c] = (f"coarse grid {_fmt(ranges[c][0])}..{_fmt(ranges[c][1])}: {opt.grid_points} lambdas x "
                          f"{opt.seeds_per_point} seeds")
            continue
        est = estimate(runs, opt)
        ests[c] = est
        if est.width <= opt.target_width:
            located.append(c)
            proposals[c], fillers[c], reasons[c] = [], [], f"{est.describe()}: located"
            continue
        jobs, fillers[c], why = propose(runs, est, ranges[c], opt)
        proposals[c], reasons[c] = jobs, f"{est.describe()} -> {why}"
    budget = max(opt.max_runs - planned, 0)
    # the widest intervals first; ties by curve order
    order = sorted([c for c in curves if proposals[c]],
                   key=lambda c: (-(ests[c].width if ests[c] is not None else math.inf), curves.index(c)))
    jobs, queues = [], {c: list(proposals[c]) for c in order}
    while budget > 0 and any(queues.values()):
        for c in order:  # one lambda (its seeds) per curve at a time, so a cut round stays fair
            q = queues[c]
            if q and budget > 0:
                lam = q[0][0]
                while q and q[0][0] == lam and budget > 0:
                    jobs.append((c, *q.pop(0)))
                    budget -= 1
    cut = [c for c in order if queues[c]]
    for c in cut:
        reasons[c] += f" (cut to {len(proposals[c]) - len(queues[c])} runs: budget)"
    filled = dict.fromkeys(order, 0)
    while budget > 0 and len(jobs) < opt.round_runs and any(fillers[c][filled[c]:] for c in order):
        for c in order:  # a small round is filled up, curve by curve in turn
            if filled[c] < len(fillers[c]) and budget > 0 and len(jobs) < opt.round_runs:
                jobs.append((c, *fillers[c][filled[c]]))
                filled[c], budget = filled[c] + 1, budget - 1
    for c in order:
        if filled[c]:
            cells = sorted({lam for lam, _ in fillers[c][:filled[c]]})
            reasons[c] += (f", +{filled[c]} seeds at {','.join(_fmt(x) for x in cells)} "
                           f"(the round filled to {opt.round_runs} runs)")
    stop = ""
    if not jobs:
        unlocated = [c for c in curves if c not in located]
        if not unlocated:
            stop = f"every curve located to {opt.target_width:g}"
        elif budget <= 0:
            flat = sum(bool(ests[c] and ests[c].flat) for c in unlocated)
            stop = f"max_runs={opt.max_runs} spent; {len(unlocated)} curves not located" + (
                f" ({flat} with a flat collapse probability: lambda_c(P=0.5) not resolvable)" if flat else "")
        else:
            stop = f"nothing left to place; {len(unlocated)} curves not located"
    elif budget <= 0 and cut:
        stop = ""  # this round spends the budget; the next decision says so
    return Decision(jobs, reasons, ests, located, stop, total)


def curve_id(overrides) -> str:
    """A curve's name in adaptive.json: its overrides (in order) without the place and speed keys."""
    return " ".join(without(overrides, PLACE_AND_SPEED))
