"""The collapse statistics, shared by variance_peak and phase_boundary.

Near the critical lambda the runs of one cell do not scatter around a mean: most end near the
low-lambda plateau and some collapse toward chance. The order parameter is then the fraction
of runs that collapse, not the mean error: per cell its binomial interval (statsmodels), per
curve a binomial GLM with profile-likelihood intervals, across sizes its sharpening and its
finite-size collapse (docs/ANALYSIS.md, "The collapse probability").
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.special
import scipy.stats
from scipy.optimize import brentq, minimize, minimize_scalar
from statsmodels.genmod.families import Binomial
from statsmodels.genmod.generalized_linear_model import GLM
from statsmodels.stats.proportion import proportion_confint

MIN_RUNS = 5  # fewer runs in a cell: its fraction is shown, but says little
NAN3 = (math.nan,) * 3


# --------------------------------------------------------------------------- outcome per run


def choose_threshold(df: pd.DataFrame, keys: list[str], chance: float) -> tuple[float, str]:
    """The default --collapse-error: midway between the low plateau (the lowest median of a
    cell of ``keys``) and ``chance``; and how it was chosen, in words."""
    medians = df.groupby(keys)["y"].median()
    plateau = float(medians.min())
    thr = 0.5 * (plateau + chance)
    return thr, (f"midway between the plateau {plateau:.3f} (the lowest cell median) and chance {chance:.3f}; "
                 "--collapse-error sets it")


def interval(k, n, confidence: float, method: str = "jeffreys"):
    """The binomial interval of k collapsed of n (arrays); NaN where n = 0."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    lo, hi = np.full(k.shape, np.nan), np.full(k.shape, np.nan)
    ok = n > 0
    if ok.any():
        lo[ok], hi[ok] = proportion_confint(k[ok], n[ok], alpha=1 - confidence, method=method)
        if method == "jeffreys":  # the Jeffreys interval's conventional ends at 0 and n collapsed
            lo[ok & (k == 0)], hi[ok & (k == n)] = 0.0, 1.0
    return lo, hi


def cell_outcomes(g, thr: float, confidence: float, method: str = "jeffreys") -> pd.DataFrame:
    """Per cell of the grid ``g`` (rows in the order of ``g.cells``): n_collapsed, p_collapse
    with its interval, p(1-p), the share of the cell's variance that the two outcomes'
    separation explains (law of total variance; NaN without both outcomes) and few_runs."""
    nx = g.xs.size
    size = len(g.curves) * nx
    k, n, share = np.zeros(size), np.zeros(size), np.full(size, np.nan)
    for (i, j), y in zip(g.where, g.samples):
        c = y > thr
        r = i * nx + j
        k[r], n[r] = c.sum(), c.size
        var = y.var()
        if 0 < c.sum() < c.size and var > 0:
            p = c.mean()
            share[r] = p * (1 - p) * (y[c].mean() - y[~c].mean()) ** 2 / var
    with np.errstate(invalid="ignore", divide="ignore"):
        p = np.where(n > 0, k / np.where(n > 0, n, 1), np.nan)
    lo, hi = interval(k, n, confidence, method)
    return pd.DataFrame({"n_collapsed": k.astype(int), "p_collapse": p, "p_lo": lo, "p_hi": hi,
                         "p_1mp": p * (1 - p), "collapse_var_share": share, "few_runs": (n > 0) & (n < MIN_RUNS)})


# --------------------------------------------------------------------------- GLM helpers


def _glm(k, n, exog, offset=None):
    """A binomial GLM of k of n on exog (no intercept added); None where it fails."""
    endog = np.column_stack([k, n - k])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = GLM(endog, exog, family=Binomial(), offset=offset).fit()
            ok = np.all(np.isfinite(res.params)) and np.isfinite(res.deviance)
    except Exception:  # noqa: BLE001 (separation, singular design: no fit)
        return None
    return res if ok else None


def _dev_offset(k, n, offset) -> float:
    """The binomial deviance (up to a constant) of logit P = c + offset, minimised over c:
    stable for the huge offsets of a step (where the GLM's iterations overflow)."""
    ll = scipy.special.log_expit

    def nll(c):
        return -float(np.sum(k * ll(c + offset) + (n - k) * ll(-(c + offset))))

    span = float(np.ptp(offset)) + 10
    res = minimize_scalar(nll, bounds=(-float(offset.max()) - span, -float(offset.min()) + span), method="bounded",
                          options={"xatol": 1e-9})
    return 2 * res.fun


def _dev(res) -> float:
    return res.deviance if res is not None else math.inf


def _bound(f, at: float, step: float, limit: float, q: float):
    """Where the profile deviance excess ``f`` (0 at ``at``) first reaches ``q``, walking from
    ``at`` by ``step`` (sign gives the side) up to ``limit`` (returned as is: not reached)."""
    a, fa = at, 0.0
    while True:
        b = a + step
        if (step > 0 and b >= limit) or (step < 0 and b <= limit):
            b = limit
        fb = f(b)
        if fb >= q:
            try:
                return brentq(lambda t: f(t) - q, a, b, xtol=1e-6) if fa < q else b
            except ValueError:
                return b
        if b == limit:
            return limit
        a, fa, step = b, fb, step * 1.6


def _edge(v: float) -> str:
    return f"{v:g}" if math.isfinite(v) else ("the grid's end" if v > 0 else "the grid's start")


def separated(x, k, n) -> int:
    """+1 (-1) where every run at lower (higher) lambda survives and every run beyond collapses
    (complete or quasi-complete separation: the logistic's slope is infinite); 0 otherwise."""
    x, k, n = (np.asarray(v, dtype=float) for v in (x, k, n))
    has_c, has_s = k > 0, k < n
    if not has_c.any() or not has_s.any():
        return 0
    if x[has_s].max() <= x[has_c].min():
        return 1
    if x[has_c].max() <= x[has_s].min():
        return -1
    return 0


# --------------------------------------------------------------------------- one curve


@dataclass
class Logit:
    """One curve's binomial logistic, logit P(collapse) = slope (lambda - lambda_c)."""

    lam_c: tuple  # (estimate, low, high): lambda at P = 0.5 (±inf: beyond the grid)
    slope: tuple  # (estimate, low, high) in logit units per unit lambda (±inf: a step)
    why: str  # why nothing (or only a bracket) was fitted; "" for a full fit
    n_runs: int
    n_collapsed: int
    ceiling: tuple = NAN3  # (level, low, high) where P levels off below 1 (see levels_off)
    rise: tuple = ()  # (midpoint, slope), each (estimate, low, high): the rise to that level; () where none
    falls: tuple = ()  # (where, p) where P falls again after its rise (see falls_again); () where not

    @property
    def fitted(self) -> bool:
        return math.isfinite(self.lam_c[0]) or not math.isnan(self.lam_c[1])

    @property
    def steepness(self) -> tuple:
        """The slope of P(collapse)'s rise: the logistic's, or where P levels off below 1, its rise's."""
        return self.rise[1] if self.rise else self.slope

    @property
    def midpoint(self) -> tuple:
        """Where P(collapse) rises: lambda_c at P = 0.5, or, where P levels off below 1, the
        midpoint of its rise to that level (P = level / 2)."""
        return self.rise[0] if self.rise else self.lam_c

    def p(self, x):
        """The fitted P(collapse) at x (NaN without a fit): the levelled fit where P levels off."""
        if self.rise:
            (x0, *_), (b, *_) = self.rise
            return self.ceiling[0] * scipy.special.expit(b * (np.asarray(x, dtype=float) - x0))
        lc, b = self.lam_c[0], self.slope[0]
        if not (math.isfinite(lc) and not math.isnan(b)):
            return np.full(np.shape(x), np.nan)
        with np.errstate(over="ignore", invalid="ignore"):
            return scipy.special.expit(b * (np.asarray(x, dtype=float) - lc)) if math.isfinite(b) else \
                (np.sign(b) * (np.asarray(x, dtype=float) - lc) > 0).astype(float)


def fit_logistic(x, k, n, confidence: float = 0.95, min_runs: int = MIN_RUNS, window: bool = True) -> Logit:
    """The binomial logistic of one curve's cells (``k`` of ``n`` collapsed at ``x``), with
    profile-likelihood intervals; refuses, saying why, where there is too little to fit. Also
    tested: whether P levels off below 1 (levels_off) and, with ``window``, whether it falls
    again (falls_again)."""
    x, k, n = (np.asarray(v, dtype=float) for v in (x, k, n))
    ok = n > 0
    x, k, n = x[ok], k[ok], n[ok]
    total, kc = int(n.sum()), int(k.sum())
    for refused, why in ((total == 0, "no runs"), (kc == 0, "no run collapsed"), (kc == total, "every run collapsed"),
                         (x.size < 2, "a single lambda"),
                         (total < 2 * min_runs, f"{total} runs (fewer than {2 * min_runs}): too few to fit")):
        if refused:
            return Logit(NAN3, NAN3, why, total, kc)
    q = scipy.stats.chi2.ppf(confidence, 1)
    span = float(np.ptp(x))
    lo_x, hi_x = x.min() - span, x.max() + span
    side = separated(x, k, n)
    if side:
        # the step lies between the last lambda where no run collapsed and the first where all
        # did; a mixed cell at the boundary (quasi-separation) lies inside that bracket, and
        # where no cell beyond it is all-collapsed the bracket is open past the grid
        none, every = x[k == 0], x[k == n]
        if side > 0:
            a = none[none <= x[k > 0].min()].max(initial=-math.inf)
            b = every[every >= x[k < n].max()].min(initial=math.inf)
        else:
            a = every[every <= x[k < n].min()].max(initial=-math.inf)
            b = none[none >= x[k > 0].max()].min(initial=math.inf)
        finite = [v for v in (a, b) if math.isfinite(v)]
        lc = 0.5 * (a + b) if len(finite) == 2 else float(x[(k > 0) & (k < n)].mean())
        dmin = _dev_offset(k, n, side * 1e4 / span * (x - lc))

        def fb(b1):
            return _dev_offset(k, n, b1 * x) - dmin

        start = side * 1e3 / span
        low = _bound(fb, start, -side * 0.5 * abs(start), 0.0, q)
        slope = (side * math.inf, low, side * math.inf) if side > 0 else (-math.inf, -math.inf, low)
        why = (f"the outcomes separate between {_edge(a)} and {_edge(b)} (no run collapsed on one side, every "
               "run on the other, at most one mixed lambda between): lambda_c is that bracket, the slope steeper "
               "than the grid resolves")
        return Logit((lc, a, b), slope, why, total, kc)
    res = _glm(k, n, np.column_stack([np.ones_like(x), x]))
    if res is None or res.params[1] == 0:
        return Logit(NAN3, NAN3, "the fit failed", total, kc)
    b0, b1 = (float(v) for v in res.params)
    lc, dmin = -b0 / b1, res.deviance

    def flc(c):
        return _dev(_glm(k, n, (x - c)[:, None])) - dmin

    def fb(s):
        return _dev(_glm(k, n, np.ones((x.size, 1)), offset=s * x)) - dmin

    lc_in = min(max(lc, lo_x), hi_x)
    lam = (lc,
           _bound(flc, lc_in, -span / 10, lo_x, q) if lc > lo_x else -math.inf,
           _bound(flc, lc_in, span / 10, hi_x, q) if lc < hi_x else math.inf)
    lam = (lam[0], -math.inf if lam[1] <= lo_x else lam[1], math.inf if lam[2] >= hi_x else lam[2])
    big = 1e3 / span
    s_lo = _bound(fb, b1, -abs(b1) / 4 - 1 / span, -big, q)
    s_hi = _bound(fb, b1, abs(b1) / 4 + 1 / span, big, q)
    slope = (b1, -math.inf if s_lo <= -big else s_lo, math.inf if s_hi >= big else s_hi)
    ceiling, d_ceiling, rise = levels_off(x, k, n, dmin, (b1, lc), confidence)
    # a fall must fit better than the better of the logistic and a level below 1 (which a window nests)
    against = (d_ceiling, 1) if math.isfinite(ceiling[0]) else (dmin, 2)
    return Logit(lam, slope, "", total, kc, ceiling, rise,
                 falls_again(x, k, n, *against, (b1, lc), confidence) if window else ())


def _binomial_nll(p, k, n) -> float:
    """-log likelihood of ``k`` of ``n`` collapsed at probability ``p`` (binomial coefficients left out)."""
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return -float(np.sum(k * np.log(p) + (n - k) * np.log1p(-p)))


def _saturated_nll(k, n) -> float:
    """_binomial_nll at each cell's own fraction: deviance = 2 (nll - this)."""
    return -float(np.sum(scipy.special.xlogy(k, k / n) + scipy.special.xlogy(n - k, 1 - k / n)))


def _best_fit(nll, starts, args):
    """The lowest of Nelder-Mead minimisations of ``nll`` from each start."""
    fits = [minimize(nll, s0, args=args, method="Nelder-Mead", options={"xatol": 1e-6, "fatol": 1e-9, "maxiter": 4000})
            for s0 in starts]
    return min(fits, key=lambda f: f.fun)


def _nll_ceiling(theta, x, k, n, level=None):
    """-log likelihood of P = level * expit(b (x - x0)); theta = (b, x0[, logit level])."""
    b, x0 = theta[0], theta[1]
    c = scipy.special.expit(theta[2]) if level is None else level
    return _binomial_nll(c * scipy.special.expit(b * (x - x0)), k, n)


def levels_off(x, k, n, deviance_logistic: float, start, confidence: float = 0.95) -> tuple[tuple, float, tuple]:
    """Whether P(collapse) levels off below 1: P = c expit(b (x - x0)) against the logistic
    (c = 1) by a likelihood-ratio test. Where c = 1 is rejected at ``confidence``: (c, low,
    high) with c's profile interval; else NAN3. A curve that levels off at c < 1 never reaches
    P = 0.5 where c <= 0.5, and its logistic lambda_c(P = 0.5) is a fit artefact either way:
    where the transition lies is then the midpoint x0 of the rise to c (see rise_of).
    Second: the deviance of the levelling-off fit; third: rise_of's (x0, b), or ()."""
    sat = _saturated_nll(k, n)
    full = _best_fit(_nll_ceiling, [(*start, t) for t in (0.0, 2.0, -1.0)], (x, k, n))
    d_full = 2 * (full.fun - sat)
    q = scipy.stats.chi2.ppf(confidence, 1)
    if deviance_logistic - d_full <= q:
        return NAN3, d_full, ()
    levels = np.linspace(0.02, 0.98, 49)
    prof = np.array([2 * (_best_fit(_nll_ceiling, [full.x[:2], start], (x, k, n, c)).fun - sat) - d_full
                     for c in levels])
    inside = levels[prof <= q]
    ceiling = (float(levels[np.argmin(prof)]), float(inside.min()), float(inside.max())) if inside.size else NAN3
    return ceiling, d_full, rise_of(full, x, k, n, q) if inside.size else ()


def _nll_fixed(free, i, value, x, k, n):
    """_nll_ceiling with its parameter ``i`` held at ``value`` (a profile likelihood)."""
    return _nll_ceiling(np.insert(free, i, value), x, k, n)


def rise_of(full, x, k, n, q: float) -> tuple:
    """The rise of the levelled fit ``full`` (theta = b, x0, logit c): its midpoint x0 (P = c / 2)
    and slope b, each (estimate, low, high) with profile-likelihood intervals at the deviance
    excess ``q`` (±inf: not bounded within a grid's span beyond its ends, or a step)."""
    span = float(np.ptp(x)) or 1.0

    def excess(i):
        return lambda v: 2 * (_best_fit(_nll_fixed, [np.delete(full.x, i)], (i, v, x, k, n)).fun - full.fun)

    b, x0 = float(full.x[0]), float(full.x[1])
    lo_x, hi_x, big = x.min() - span, x.max() + span, 1e3 / span
    x_lo, x_hi = _bound(excess(1), x0, -span / 20, lo_x, q), _bound(excess(1), x0, span / 20, hi_x, q)
    b_lo, b_hi = (_bound(excess(0), b, -abs(b) / 4 - 1 / span, -big, q),
                  _bound(excess(0), b, abs(b) / 4 + 1 / span, big, q))
    return ((x0, -math.inf if x_lo <= lo_x else x_lo, math.inf if x_hi >= hi_x else x_hi),
            (b, -math.inf if b_lo <= -big else b_lo, math.inf if b_hi >= big else b_hi))


def _nll_window(theta, x, k, n):
    """-log likelihood of P = expit(b1 (x - a)) expit(-b2 (x - c)): a rise at a, a fall at c."""
    t1, a, t2, c = theta
    b1, b2 = np.exp(np.clip((t1, t2), -30, 30))  # slopes > 0, kept finite
    return _binomial_nll(scipy.special.expit(b1 * (x - a)) * scipy.special.expit(-b2 * (x - c)), k, n)


def falls_again(x, k, n, deviance: float, df: int, start, confidence: float = 0.95) -> tuple:
    """Whether P(collapse) falls again after its rise (a window, which one logistic
    misdescribes): P = expit(b1 (x - a)) expit(-b2 (x - c)) against a simpler fit of
    ``deviance`` (the logistic, 2 parameters fewer, or the logistic levelling off below 1, which
    the window nests as the fall flattens: 1 fewer) by a likelihood-ratio test with ``df``.
    Where the window fits better at ``confidence``: (c, p), c where P falls; else ()."""
    if deviance <= scipy.stats.chi2.ppf(confidence, df):
        return ()  # the window's deviance is >= 0: it cannot fit better by enough
    b1, lc = start
    if b1 <= 0:  # P falls with x: the same test on -x
        x, lc, b1 = -x, -lc, -b1
    span = float(np.ptp(x)) or 1.0
    t = math.log(max(b1, 4 / span))
    starts = [(t, a0, math.log(20 / span), c0) for a0 in (lc, np.quantile(x, 0.3))
              for c0 in np.quantile(x, [0.7, 0.9])]
    fit = _best_fit(_nll_window, starts, (x, k, n))
    p = float(scipy.stats.chi2.sf(max(deviance - 2 * (fit.fun - _saturated_nll(k, n)), 0.0), df))
    c = float(fit.x[3]) * (1 if start[0] > 0 else -1)
    return (c, p) if p < 1 - confidence and np.min(x) < fit.x[3] < np.max(x) else ()


# --------------------------------------------------------------------------- across sizes


@dataclass
class Sharpening:
    """logit P = a + b x + c ln L + d x ln L over all sizes: the slope at L is b + d ln L."""

    d: tuple  # (estimate, low, high): d slope / d ln L, profile interval
    relative: float  # d / |slope at the geometric mean L|: the relative sharpening per e-fold of L
    why: str

    def verdict(self) -> str:
        e, lo, hi = self.d
        if self.why:
            return f"NOT ANSWERED ({self.why})"
        if lo > 0:
            return "YES (the collapse curve steepens with size)"
        if hi < 0:
            return "NO (the collapse curve flattens with size)"
        return "NOT RESOLVED (the interval contains 0)"


def _stack(xs, L, k, n):
    """Flat arrays of the cells with runs: x, ln L (centred), k, n."""
    lnL = np.log(np.asarray(L, dtype=float))
    lnL = lnL - lnL.mean()
    X = np.broadcast_to(np.asarray(xs, dtype=float)[None, :], k.shape)
    LL = np.broadcast_to(lnL[:, None], k.shape)
    ok = n > 0
    return X[ok], LL[ok], k[ok].astype(float), n[ok].astype(float)


def fit_sharpening(xs, L, k, n, confidence: float = 0.95, min_runs: int = MIN_RUNS) -> Sharpening:
    """Whether the collapse curve sharpens with size L (``k``, ``n``: sizes x xs), with the
    direction of the transition taken from the pooled fit (rising: d > 0 is sharper)."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    usable = [(k[i].sum() > 0) and (k[i].sum() < n[i].sum()) and n[i].sum() >= 2 * min_runs for i in range(len(L))]
    for refused, why in ((len(L) < 2, "one size"), (k.sum() == 0, "no run collapsed at any size"),
                         (sum(usable) < 2, "fewer than two sizes with both outcomes and enough runs")):
        if refused:
            return Sharpening(NAN3, math.nan, why)
    x, ll, kk, nn = _stack(xs, L, k, n)
    exog = np.column_stack([np.ones_like(x), x, ll, x * ll])
    res = _glm(kk, nn, exog)
    if res is None:
        return Sharpening(NAN3, math.nan, "the fit failed (outcomes separate completely at some size)")
    b, d = float(res.params[1]), float(res.params[3])
    sign = 1.0 if b >= 0 else -1.0  # a falling curve sharpens when its slope grows more negative
    dmin = res.deviance
    q = scipy.stats.chi2.ppf(confidence, 1)
    span = float(np.ptp(x)) or 1.0
    base = exog[:, :3]

    def f(dd):
        return _dev(_glm(kk, nn, base, offset=dd * x * ll)) - dmin

    big = 1e3 / span
    lo = _bound(f, d, -abs(d) / 4 - 1 / span, -big, q)
    hi = _bound(f, d, abs(d) / 4 + 1 / span, big, q)
    est = (sign * d, *(sorted((sign * lo, sign * hi))))
    if abs(lo) >= big or abs(hi) >= big:
        return Sharpening(est, math.nan, "the interval is unbounded (outcomes nearly separate)")
    return Sharpening(est, sign * d / abs(b) if b else math.nan, "")


@dataclass
class Scaling:
    """P = expit((lambda - lambda_c) (L/L0)^(1/nu) / w) over all sizes (L0: geometric mean)."""

    lam_c: tuple  # (estimate, low, high)
    inv_nu: tuple  # 1/nu: (estimate, low, high), profile interval
    w: float
    why: str  # why not fitted
    nu_note: str  # why nu is not resolved ("" where it is)

    @property
    def nu(self) -> tuple:
        e, lo, hi = self.inv_nu
        return (1 / e if e else math.nan, *(sorted((1 / hi if hi else math.inf, 1 / lo if lo else math.inf))))


def fit_scaling(xs, L, k, n, confidence: float = 0.95, min_runs: int = MIN_RUNS, u_max: float = 4.0) -> Scaling:
    """The finite-size collapse of P(lambda, L): at each fixed u = 1/nu it is a binomial GLM in
    (L/L0)^u and lambda (L/L0)^u; u is profiled over [-u_max, u_max]."""
    k, n = np.asarray(k, dtype=float), np.asarray(n, dtype=float)
    for refused, why in ((len(L) < 2, "one size"), (k.sum() == 0, "no run collapsed at any size"),
                         (n.sum() < 4 * min_runs, f"{int(n.sum())} runs: too few"),
                         (sum(k[i].sum() > 0 for i in range(len(L))) < 2, "runs collapsed at fewer than two sizes")):
        if refused:
            return Scaling(NAN3, NAN3, math.nan, why, "")
    x, ll, kk, nn = _stack(xs, L, k, n)

    def at(u):
        s = np.exp(u * ll)
        return _glm(kk, nn, np.column_stack([s, x * s]))

    def dev(u):
        return _dev(at(u))

    grid = np.linspace(-u_max, u_max, 33)
    devs = np.array([dev(u) for u in grid])
    if not np.isfinite(devs).any():
        return Scaling(NAN3, NAN3, math.nan, "the fit failed (outcomes separate completely)", "")
    j = int(np.argmin(devs))
    lo_u, hi_u = grid[max(j - 1, 0)], grid[min(j + 1, grid.size - 1)]
    u = float(minimize_scalar(dev, bounds=(lo_u, hi_u), method="bounded").x) if hi_u > lo_u else float(grid[j])
    res = at(u)
    if res is None or res.params[1] == 0:
        return Scaling(NAN3, NAN3, math.nan, "", "")
    dmin = res.deviance
    q = scipy.stats.chi2.ppf(confidence, 1)
    b0, b1 = (float(v) for v in res.params)
    lc, w = -b0 / b1, 1 / b1

    def f(t):
        return dev(t) - dmin

    ulo = _bound(f, u, -0.1, -u_max, q)
    uhi = _bound(f, u, 0.1, u_max, q)
    inv = (u, -math.inf if ulo <= -u_max else ulo, math.inf if uhi >= u_max else uhi)

    def flc(c):  # lambda_c profiled: for fixed lambda_c and u a GLM in (x - c) (L/L0)^u
        return min(_dev(_glm(kk, nn, ((x - c) * np.exp(t * ll))[:, None])) for t in np.linspace(inv[1] if
                   math.isfinite(inv[1]) else -u_max, inv[2] if math.isfinite(inv[2]) else u_max, 9)) - dmin

    span = float(np.ptp(x)) or 1.0
    lam = (lc, _bound(flc, lc, -span / 20, lc - span, q), _bound(flc, lc, span / 20, lc + span, q))
    return Scaling(lam, inv, w, "", inv_nu_note(inv))


def inv_nu_note(inv) -> str:
    """Why a 1/nu estimate does not give a nu ("" where it does)."""
    e, lo, hi = inv
    if not math.isfinite(e):
        return "no estimate"
    if e <= 0:
        return f"1/ν = {e:.3g} ≤ 0: P does not sharpen with size"
    if not (lo > 0 and math.isfinite(hi)):
        return f"the 1/ν interval [{lo:.3g}, {hi:.3g}] reaches 0 or the search edge: ν is unbounded"
    return nu_resolved(1 / e, 1 / hi, 1 / lo)


def nu_resolved(nu: float, lo: float, hi: float) -> str:
    """Why a nu and its interval are not a result ("" where they are): a negative or missing
    nu, an interval reaching 0 or infinity, or spanning more than a factor of 10."""
    if not math.isfinite(nu):
        return "no estimate"
    if nu <= 0:
        return f"ν = {nu:.3g} is not positive (the transition does not sharpen with size under this fit)"
    if math.isnan(lo) or math.isnan(hi):
        return ""
    if lo <= 0 or not math.isfinite(hi):
        return f"the interval [{lo:.3g}, {hi:.3g}] reaches 0 or infinity"
    if hi / lo > 10:
        return f"the interval [{lo:.3g}, {hi:.3g}] spans more than a factor of 10"
    return ""


# --------------------------------------------------------------------------- what both scripts share


def add_options(p) -> None:
    p.add_argument("--collapse-error", type=float, default=None, metavar="E",
                   help="a run is collapsed when its metric is above E (default: midway between the lowest cell "
                        "median and --chance-error; printed)")
    p.add_argument("--binomial-interval", choices=("jeffreys", "wilson"), default="jeffreys",
                   help="interval of a cell's collapse fraction (default: jeffreys)")


def setup(echo, df: pd.DataFrame, args, keys: list[str]) -> bool:
    """Fill in ``args.collapse_error`` (chosen from the runs where not given) and print it and
    how many runs collapsed. False where no run collapsed anywhere (then nothing is fitted)."""
    keys = [k for k in keys if k]
    if args.collapse_error is None:
        args.collapse_error, how = choose_threshold(df, keys, args.chance_error)
    else:
        how = "given by --collapse-error"
    n_c = int((df["y"] > args.collapse_error).sum())
    echo(f"\n--- Outcome per run: collapsed when {args.metric} > {args.collapse_error:.3f} ({how}) ---")
    echo(f"{n_c} of {len(df)} runs collapsed; cell intervals: {args.binomial_interval} "
         f"{args.confidence:.0%}; cells with fewer than {MIN_RUNS} runs are marked (few runs)")
    if n_c == 0:
        echo("no run collapsed anywhere: the collapse probability is 0 in every cell, nothing is fitted")
    return n_c > 0


def panel_outcomes(g, curve_key: str, args) -> list:
    """Add the outcome columns to ``g.cells`` and fit each curve's logistic: [Logit per curve]."""
    if getattr(args, "collapse_error", None) is None:  # called without setup(): the default, from this grid
        plateau = min(float(np.median(y)) for y in g.samples)
        args.collapse_error = 0.5 * (plateau + args.chance_error)
    method = getattr(args, "binomial_interval", "jeffreys")
    out = cell_outcomes(g, args.collapse_error, args.confidence, method)
    g.cells = pd.concat([g.cells.reset_index(drop=True), out], axis=1)
    fits = []
    for c in g.curves:
        cs = g.cells[g.cells[curve_key] == c]
        fits.append(fit_logistic(cs[args.x_key].to_numpy(float), cs["n_collapsed"].to_numpy(float),
                                 cs["n"].to_numpy(float), args.confidence))
    return fits


def ktable(g, args) -> tuple[np.ndarray, np.ndarray]:
    """Collapsed counts and runs per cell: arrays (curves, xs)."""
    shape = (len(g.curves), g.xs.size)
    return g.cells["n_collapsed"].to_numpy(float).reshape(shape), g.cells["n"].to_numpy(float).reshape(shape)


def logit_cols(x_key: str, fit: Logit) -> dict:
    e, lo, hi = fit.lam_c
    s, slo, shi = fit.slope
    return {"n_collapsed": fit.n_collapsed, f"{x_key}_c_P50": e, f"{x_key}_c_P50_lo": lo, f"{x_key}_c_P50_hi": hi,
            "logit_slope": s, "logit_slope_lo": slo, "logit_slope_hi": shi, "collapse_fit_note": fit.why,
            "P_ceiling": fit.ceiling[0], "P_ceiling_lo": fit.ceiling[1], "P_ceiling_hi": fit.ceiling[2],
            **{f"rise_{name}{end}": (fit.rise[i][j] if fit.rise else math.nan) for i, name in enumerate(("midpoint", "slope"))
               for j, end in enumerate(("", "_lo", "_hi"))},
            "P_falls_at": fit.falls[0] if fit.falls else math.nan, "P_falls_p": fit.falls[1] if fit.falls else math.nan}


def describe_fit(fit: Logit, x: str, fci, fnum, grid=(-math.inf, math.inf)) -> str:
    """One line: lambda_c at P = 0.5 and the slope, or why there is none."""
    head = f"{fit.n_collapsed} of {fit.n_runs} runs collapsed"
    if not fit.fitted:
        return f"{head}; not fitted: {fit.why}"
    (e, lo, hi), (s, slo, shi) = fit.lam_c, fit.slope
    c, clo, chi = fit.ceiling
    return (f"{head}; {x}_c(P=0.5)={fnum(e, '.3f')} {fci(lo, hi, '.3f')}"
            + (" (beyond the grid: extrapolated)" if math.isfinite(e) and not grid[0] <= e <= grid[1] else "")
            + f", slope d logit P / d{x} = "
            f"{fnum(s, '.1f')} {fci(slo, shi, '.1f')}" + (f"\n    note: {fit.why}" if fit.why else "")
            + (f"\n    note: P levels off at {c:.2f} [{clo:.2f}, {chi:.2f}], below 1 (likelihood ratio against the "
               f"logistic): {x}_c(P=0.5) is not a crossing these runs show; the rise to that level is at "
               f"{x}={fnum(fit.rise[0][0], '.3f')} {fci(*fit.rise[0][1:], '.3f')} (P = {c / 2:.2f}), slope "
               f"{fnum(fit.rise[1][0], '.1f')} {fci(*fit.rise[1][1:], '.1f')}" if math.isfinite(c) else "")
            + (f"\n    note: P falls again near {x}={fit.falls[0]:.3g} (a rise and a fall fit better than a logistic, "
               f"levelling off or not: "
               f"likelihood ratio p = {fit.falls[1]:.2g}): a window, which one logistic misdescribes; restrict the "
               f"fit to its rise with --where" if fit.falls else ""))


def levelled(curves, fits, label) -> list[str]:
    """The labels of the curves whose P(collapse) levels off below 1 (located by their rise)."""
    return [label(c) for c, f in zip(curves, fits) if f.rise]


def rises(fit: Logit) -> bool:
    """Whether a curve's P(collapse) is shown to change with lambda: its slope interval excludes 0.
    Where it does not (a few scattered collapses), its lambda_c locates nothing, and neither
    steepens nor moves compares it."""
    lo, hi = fit.steepness[1:]
    return fit.fitted and (lo > 0 or hi < 0)


def steepens(curves, fits, label) -> tuple[str, str]:
    """Whether the rise of P(collapse) steepens along ``curves`` (sizes, ascending), curve by
    curve (Logit.steepness, which a curve levelling off below 1 keeps meaningful, unlike the joint
    fit of fit_sharpening): (verdict, reason) from the first two disjoint intervals, if any."""
    ivs = [(c, *f.steepness) for c, f in zip(curves, fits) if rises(f)]
    for i, (ca, _, alo, ahi) in enumerate(ivs):
        for cb, _, blo, bhi in ivs[i + 1:]:
            if blo > ahi or bhi < alo:
                word = "YES (steeper at the larger size)" if blo > ahi else "NO (flatter at the larger size)"
                return word, (f"the slope intervals of {label(ca)} [{alo:.1f}, {ahi:.1f}] and {label(cb)} "
                              f"[{blo:.1f}, {bhi:.1f}] do not overlap")
    if len(ivs) < 2:
        return "NOT ANSWERED", "fewer than two curves have a collapse probability that is shown to rise"
    return "NOT RESOLVED", f"all {len(ivs)} slope intervals overlap"


def located(fit: Logit, grid=(-math.inf, math.inf)) -> tuple:
    """Where a curve's collapse probability rises, as verdicts compare it and figures mark it
    (Logit.midpoint): NAN3 for a curve not shown to rise (a few scattered collapses), or whose
    midpoint lies beyond the ``grid`` (lo, hi): extrapolated, it decides nothing (a curve that
    levels off too low for levels_off to find reads as a logistic reaching P = 0.5 far past it)."""
    mid = fit.midpoint
    return mid if rises(fit) and not math.isnan(mid[1] + mid[2]) and grid[0] <= mid[0] <= grid[1] else NAN3


def moves(curves, fits, label, grid=(-math.inf, math.inf)) -> tuple[str, str]:
    """Whether the collapse probability's rise moves across curves (each curve's located
    midpoint on the ``grid``): (verdict, reason) from whether any two intervals are disjoint."""
    ivs = [(c, *m) for c, f in zip(curves, fits) if not math.isnan((m := located(f, grid))[0])]
    if len(ivs) < 2:
        return "NOT ANSWERED", "fewer than two curves have a collapse probability shown to rise on the grid"
    a, b = max(ivs, key=lambda t: t[2]), min(ivs, key=lambda t: t[3])
    if a[2] > b[3]:
        return "YES", (f"the intervals of {label(b[0])} [{b[2]:.3f}, {b[3]:.3f}] and {label(a[0])} "
                       f"[{a[2]:.3f}, {a[3]:.3f}] do not overlap")
    return "NOT RESOLVED", f"all {len(ivs)} intervals overlap"
