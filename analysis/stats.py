"""Statistics and fits: the cell grid, the bootstrap over seeds, the transition (logistic) fit,
its threshold crossing and grid bracket, the variance peak and the finite-size collapse."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.stats
from scipy.optimize import curve_fit
from scipy.special import expit, logit

# --------------------------------------------------------------------------- cells


def cell_stats(df: pd.DataFrame, keys: list[str], grid: dict) -> pd.DataFrame:
    """Per cell: n, n_diverged, mean, std (ddof=1, as pandas and the notebooks). Cells of the
    full grid (``grid``: key -> all values) with no run are rows with n = 0 and NaN statistics."""
    g = df.assign(_div=(df["status"] == "diverged").astype(int)).groupby(keys)
    stats = pd.DataFrame({"n": g["y"].size(), "n_diverged": g["_div"].sum(), "mean": g["y"].mean(),
                          "std": g["y"].std(ddof=1)})
    stats = stats.reindex(pd.MultiIndex.from_product([grid[k] for k in keys], names=keys))
    stats[["n", "n_diverged"]] = stats[["n", "n_diverged"]].fillna(0).astype(int)
    return stats.reset_index()


@dataclass
class Grid:
    """The runs of one panel on the grid (curve value x x value)."""

    value: object  # the panel key's value (None: one panel)
    curves: list  # the curve key's values, ascending
    xs: np.ndarray  # the x values, ascending
    cells: pd.DataFrame  # cell_stats over the full grid
    samples: list  # the runs' values, one array per cell with runs
    where: list  # (curve index, x index) of each array in samples

    def curve(self, key: str, value, x_key: str):
        """x, mean, std and n of one curve, by ascending x (n = 0: a missing cell)."""
        cs = self.cells[self.cells[key] == value]
        return tuple(cs[k].to_numpy(float) for k in (x_key, "mean", "std", "n"))

    def missing(self, n) -> np.ndarray:
        """Where a curve's cells (``n`` by ascending x) are missing from the grid: no runs at an
        x where at least half the curves have some. An x that only another curve's adaptive
        sweep placed is not missing."""
        has_runs = np.zeros((len(self.curves), self.xs.size), bool)
        for i, j in self.where:
            has_runs[i, j] = True
        return (np.asarray(n) == 0) & (has_runs.mean(axis=0) >= 0.5)

    def means(self, samples) -> np.ndarray:
        """Cell means of (resampled) ``samples``: shape (batch..., curves, xs), NaN where empty."""
        batch = samples[0].shape[:-1]
        out = np.full(batch + (len(self.curves), self.xs.size), np.nan)
        for (i, j), a in zip(self.where, samples):
            out[..., i, j] = a.mean(-1)
        return out


def grids(df: pd.DataFrame, panel_key, curve_key: str, x_key: str) -> list[Grid]:
    """One :class:`Grid` per value of the panel key (one in all without one)."""
    out = []
    for value in [None] if panel_key is None else sorted(df[panel_key].unique().tolist()):
        sub = df if panel_key is None else df[df[panel_key] == value]
        curves, xs = sorted(sub[curve_key].unique().tolist()), sorted(sub[x_key].unique().tolist())
        cells = cell_stats(sub, [curve_key, x_key], {curve_key: curves, x_key: xs})
        samples, where = [], []
        for (c, x), grp in sub.groupby([curve_key, x_key]):
            samples.append(grp["y"].to_numpy(dtype=float))
            where.append((curves.index(c), xs.index(x)))
        out.append(Grid(value, curves, np.asarray(xs, dtype=float), cells, samples, where))
    return out


# --------------------------------------------------------------------------- bootstrap


@dataclass
class Boot:
    """Point estimates, percentile intervals and the bootstrap distribution of k statistics."""

    point: np.ndarray  # (k,)
    low: np.ndarray
    high: np.ndarray
    dist: np.ndarray | None  # (k, n_boot)

    def estimate(self, i: int) -> tuple[float, float, float]:
        """(point, low, high) of statistic ``i``."""
        return float(self.point[i]), float(self.low[i]), float(self.high[i])

    def frac_undefined(self, i: int) -> float:
        return float("nan") if self.dist is None else float(np.mean(np.isnan(self.dist[i])))


def bootstrap_cells(cells, statistic, *, n_boot: int, seed: int, confidence: float) -> Boot:
    """Bootstrap over seeds with :func:`scipy.stats.bootstrap` (percentile method): the runs of
    every cell resampled independently; a cell with one run is held fixed.

    ``statistic(samples)`` gets one array of shape ``(..., n_i)`` per cell and returns shape
    ``(k, ...)``. Resamples where a statistic is NaN (a failed fit) are left out of its
    interval; ±inf (beyond the grid) is kept and gives an open-ended interval.
    """
    cells = [np.asarray(c, dtype=float) for c in cells]
    point = np.atleast_1d(np.asarray(statistic(cells), dtype=float))
    k = point.shape[0]
    varying = [i for i, c in enumerate(cells) if c.size >= 2]
    if not varying or n_boot <= 0:
        return Boot(point, np.full(k, np.nan), np.full(k, np.nan), None)

    def stat(*samples, axis=-1):
        batch, it = samples[0].shape[:-1], iter(samples)
        full = [next(it) if c.size >= 2 else np.broadcast_to(c, batch + c.shape) for c in cells]
        return np.asarray(statistic(full), dtype=float).reshape((k, *batch))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = scipy.stats.bootstrap([cells[i] for i in varying], stat, n_resamples=n_boot, vectorized=True,
                                    method="percentile", confidence_level=confidence, rng=np.random.default_rng(seed))
    dist = np.asarray(res.bootstrap_distribution, dtype=float).reshape(k, -1)
    low = np.atleast_1d(np.asarray(res.confidence_interval.low, dtype=float)).copy()
    high = np.atleast_1d(np.asarray(res.confidence_interval.high, dtype=float)).copy()
    alpha = (1 - confidence) / 2
    for i in range(k):
        if not np.all(np.isfinite(dist[i])):  # no interpolation into infinity; NaN dropped
            v = dist[i][~np.isnan(dist[i])]
            if v.size:
                low[i], high[i] = np.quantile(v, alpha, method="lower"), np.quantile(v, 1 - alpha, method="higher")
            else:
                low[i], high[i] = np.nan, np.nan
    return Boot(point, low, high, dist)


def batched(batch, fn, n: int) -> np.ndarray:
    """``fn(idx)`` (n values) for every index of a batch shape: shape (n, *batch)."""
    out = np.full((n, *batch), np.nan)
    for idx in np.ndindex(batch):
        out[(slice(None), *idx)] = fn(idx)
    return out


# --------------------------------------------------------------------------- transition


def sigmoid(x, a, b, x0, s):
    """The transition curve: from a (far below x0) to b (far above), width s."""
    return a + (b - a) * expit((x - x0) / s)


def _sigmoid_u(x, a, b, x0, u):
    return sigmoid(x, a, b, x0, np.exp(u))


def fit_sigmoid(xs: np.ndarray, means: np.ndarray, ns: np.ndarray, p0=None):
    """(a, b, x0, s) of the least-squares logistic through the cell means (weights n), ``p0``
    warm-starting it. Bounded: s in [span/200, 2 span] (sharper is not resolved by the grid,
    wider is not a transition within it), the plateaus within a span of the means beyond
    them, x0 within the grid. NaN with fewer than 4 cells or where the fit fails."""
    ok = np.isfinite(means) & (ns > 0)
    if ok.sum() < 4:
        return (math.nan,) * 4
    x, m, n = xs[ok], means[ok], ns[ok]
    span, lo, hi, r = float(np.ptp(x)), float(m.min()), float(m.max()), float(np.ptp(m)) or 1e-9
    bounds = ([lo - r, lo - r, x.min(), math.log(span / 200)], [hi + r, hi + r, x.max(), math.log(2 * span)])
    if p0 is None or not np.all(np.isfinite(p0)):
        cross = np.nonzero(np.diff(np.sign(m - 0.5 * (m[0] + m[-1]))))[0]
        middle = float(x[cross[0] : cross[0] + 2].mean()) if cross.size else float(x.mean())
        p0 = (m[0], m[-1], middle, span / 6)
    start = np.clip([p0[0], p0[1], p0[2], math.log(max(p0[3], 1e-12))], bounds[0], bounds[1])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p, _ = curve_fit(_sigmoid_u, x, m, p0=start, sigma=1 / np.sqrt(n), bounds=bounds, max_nfev=400)
    except (RuntimeError, ValueError, FloatingPointError):
        return (math.nan,) * 4
    a, b, x0, u = (float(v) for v in p)
    return a, b, x0, math.exp(u)


def crossing(fit, threshold: float) -> float:
    """Where the fitted logistic crosses the threshold; NaN if it never does."""
    a, b, x0, s = fit
    q = (threshold - a) / (b - a) if b != a else math.nan
    return float(x0 + s * logit(q)) if 0 < q < 1 else math.nan


def brackets(xs: np.ndarray, mean: np.ndarray, threshold: float) -> list[tuple[float, float]]:
    """The pairs of neighbouring grid points (with runs) between which the mean crosses the
    threshold: for a monotone curve the true crossing lies in one of them."""
    ok = np.isfinite(mean)
    x, above = xs[ok], mean[ok] > threshold
    return [(float(x[i]), float(x[i + 1])) for i in range(x.size - 1) if above[i] != above[i + 1]]


def threshold_crossing(xs: np.ndarray, mean: np.ndarray, ns: np.ndarray, threshold: float, p0=None) -> float:
    """lambda_c: where the mean error crosses the threshold. The fitted logistic's crossing
    where it lies in a grid bracket of the cell means; otherwise the logistic does not describe
    the curve where it crosses (a late collapse of a few seeds pulls its step past the
    crossing), and the crossing is read off the means: a straight line through the first
    bracket. Without a bracket, the logistic's crossing (NaN if it has none)."""
    c = crossing(fit_sigmoid(xs, mean, ns, p0=p0), threshold)
    brs = brackets(xs, mean, threshold)
    if not brs or any(a <= c <= b for a, b in brs):
        return c
    a, b = brs[0]
    ma, mb = (float(mean[np.flatnonzero(xs == v)[0]]) for v in (a, b))
    return a + (b - a) * (threshold - ma) / (mb - ma)


def on_transition(mean: np.ndarray) -> int:
    """How many cells lie on the transition: their mean 10-90 % of the way between the lowest
    and the highest cell mean. A logistic's centre and width need two of them."""
    m = mean[np.isfinite(mean)]
    if m.size < 2 or np.ptp(m) == 0:
        return 0
    u = (m - m.min()) / np.ptp(m)
    return int(((u >= 0.1) & (u <= 0.9)).sum())


def notebook_lambda_c(xs: np.ndarray, mean: np.ndarray, threshold: float) -> float:
    """The notebook's lambda_c: the first lambda (ascending) whose mean error exceeds it."""
    return next((float(x) for x, m in zip(xs, mean) if np.isfinite(m) and m > threshold), math.nan)


# --------------------------------------------------------------------------- peaks and slopes


def peak(std: np.ndarray, xs: np.ndarray):
    """Height, grid location and parabola-refined location of the max of std (..., nx)."""
    valid = np.isfinite(std)
    filled = np.where(valid, std, -np.inf)
    j, nx = filled.argmax(-1), xs.size

    def take(a, idx):
        return np.take_along_axis(a, idx[..., None], -1)[..., 0]

    h = np.where(valid.any(-1), take(filled, j), np.nan)
    x1 = np.where(valid.any(-1), xs[j], np.nan)
    jl, jr = np.clip(j - 1, 0, nx - 1), np.clip(j + 1, 0, nx - 1)
    y0, y1, y2, xa, xb = take(filled, jl), h, take(filled, jr), xs[jl], xs[jr]
    inner = (j > 0) & (j < nx - 1) & np.isfinite(y0) & np.isfinite(y2)
    with np.errstate(divide="ignore", invalid="ignore"):
        den = (xa - x1) * (xa - xb) * (x1 - xb)
        A = (xb * (y1 - y0) + x1 * (y0 - y2) + xa * (y2 - y1)) / den
        B = (xb**2 * (y0 - y1) + x1**2 * (y2 - y0) + xa**2 * (y1 - y2)) / den
        refined = np.where(inner & (A < 0), np.clip(-B / (2 * A), xa, xb), x1)
    return h, x1, refined


def log_slope(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Least-squares slope of ln y against ln x along the last axis, over the points where y > 0
    is finite (NaN where fewer than two)."""
    lx = np.log(np.asarray(x, dtype=float))
    with np.errstate(divide="ignore", invalid="ignore"):
        ly = np.log(np.where(np.asarray(y, dtype=float) > 0, y, np.nan))
        ok = np.isfinite(ly)
        n = ok.sum(-1)[..., None]
        dx = np.where(ok, lx - np.where(ok, lx, 0).sum(-1, keepdims=True) / n, 0)
        dy = np.where(ok, ly - np.where(ok, ly, 0).sum(-1, keepdims=True) / n, 0)
        slope = (dx * dy).sum(-1) / (dx * dx).sum(-1)
    return np.where(n[..., 0] >= 2, slope, np.nan)


# --------------------------------------------------------------------------- finite-size collapse


def fit_collapse(xs: np.ndarray, sizes: np.ndarray, means: np.ndarray, ns: np.ndarray, p0=None):
    """(lambda_c, nu, a, b, w, rms) of the collapse y = F((lambda - lambda_c) L^(1/nu)),
    F(t) = a + (b - a) expit(t / w), fitted by least squares to the cell means of every size
    (``means``, ``ns``: sizes x xs; L in units of its geometric mean); rms: the root mean square
    deviation of the cell means from the collapsed curve. NaN where it fails."""
    ok = np.isfinite(means) & (ns > 0)
    fail = (math.nan,) * 6
    if ok.sum() < 6 or len(sizes) < 2:
        return fail
    L = np.broadcast_to((sizes / np.exp(np.log(sizes).mean()))[:, None], means.shape)[ok]
    lam = np.broadcast_to(xs[None, :], means.shape)[ok]
    y, n = means[ok], ns[ok]

    def model(_, a, b, lc, u, lw):
        return sigmoid((lam - lc) * L**u, a, b, 0.0, np.exp(lw))

    if p0 is None:
        p0 = (y.max(), y.min(), float(np.median(xs)), 0.5, math.log(np.ptp(xs) / 6))
        if np.corrcoef(lam, y)[0, 1] > 0:
            p0 = (p0[1], p0[0], *p0[2:])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            p, _ = curve_fit(model, lam, y, p0=p0, sigma=1 / np.sqrt(n), method="lm", maxfev=2000)
    except (RuntimeError, ValueError, FloatingPointError):
        return fail
    a, b, lc, u, lw = (float(v) for v in p)
    if not np.all(np.isfinite(p)) or u == 0:
        return fail
    return lc, 1 / u, a, b, math.exp(lw), float(np.sqrt(np.mean((y - model(None, *p)) ** 2)))
