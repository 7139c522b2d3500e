"""analysis/collapse.py and what the scripts do with it, on planted collapse data: cells whose
runs collapse with a known probability P(lambda, L) = logistic((lambda - lambda_c(L)) / s(L));
and the defects found on the way (notebook records named result.json, reasons for unreadable
files, the phase boundary's legend, an unresolved nu)."""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

sys.path.insert(0, os.path.dirname(__file__))
import analysis_fixtures as F

from analysis import cli, runs
from analysis import collapse as C
from analysis import figures as FG
from analysis import phase_boundary as PB
from analysis import stats as S
from analysis import variance_peak as VP

XS = np.round(np.linspace(0.5, 1.0, 11), 4)
WIDTHS = np.array([0.5, 1.0, 2.0])


def lam_c(L):
    return 0.75 + 0.05 * np.log2(L)  # moves by 0.05 per doubling


def s_sharp(L):
    return 0.06 * L**-1.0  # sharpens: slope 1/s doubles per doubling


def planted_counts(rng, widths, s_of, n=20):
    P = expit((XS[None, :] - lam_c(widths)[:, None]) / s_of(widths)[:, None])
    return rng.binomial(n, P), np.full(P.shape, n), P


def run_main(main, argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


# --------------------------------------------------------------------------- statistics


def test_cell_intervals_cover_the_planted_fraction_about_95_percent():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.02, 0.98, 4000)
    n = rng.integers(5, 30, p.size)
    k = rng.binomial(n, p)
    for method in ("jeffreys", "wilson"):
        lo, hi = C.interval(k, n, 0.95, method)
        cover = np.mean((lo <= p) & (p <= hi))
        assert 0.93 <= cover <= 0.975, (method, cover)


def test_logistic_recovers_planted_lambda_c_and_slope_within_intervals():
    rng = np.random.default_rng(1)
    hits_lc = hits_slope = 0
    trials = 40
    for _ in range(trials):
        k, n, _ = planted_counts(rng, np.array([1.0]), lambda L: np.full(np.shape(L), 0.05))
        f = C.fit_logistic(XS, k[0], n[0])
        assert f.why == "" and f.fitted
        hits_lc += f.lam_c[1] <= 0.75 <= f.lam_c[2]
        hits_slope += f.slope[1] <= 20.0 <= f.slope[2]
    assert hits_lc >= 0.85 * trials and hits_slope >= 0.85 * trials, (hits_lc, hits_slope)


def test_lambda_c_per_size_is_recovered_and_sharpening_detected_when_planted():
    rng = np.random.default_rng(2)
    k, n, _ = planted_counts(rng, WIDTHS, s_sharp)
    fits = [C.fit_logistic(XS, k[i], n[i]) for i in range(3)]
    for L, f in zip(WIDTHS, fits):
        assert f.lam_c[1] <= lam_c(L) <= f.lam_c[2], (L, f)
        assert f.slope[1] <= 1 / s_sharp(L) <= f.slope[2] or math.isinf(f.slope[0]), (L, f)
    verdict, _ = C.moves(list(WIDTHS), fits, str)
    assert verdict == "YES"
    sh = C.fit_sharpening(XS, WIDTHS, k, n)
    assert sh.d[1] > 0 and sh.verdict().startswith("YES"), sh


def test_sharpening_not_claimed_when_not_planted():
    rng = np.random.default_rng(3)
    claimed = 0
    for _ in range(30):
        k, n, _ = planted_counts(rng, WIDTHS, lambda L: np.full(np.shape(L), 0.06))
        sh = C.fit_sharpening(XS, WIDTHS, k, n)
        claimed += sh.verdict().startswith(("YES", "NO "))
    assert claimed <= 4, claimed  # about 5 % of 30


def test_scaling_of_p_finds_a_positive_nu_when_planted():
    rng = np.random.default_rng(4)
    L = np.array([1.0, 4.0, 16.0])
    P = expit((XS[None, :] - 0.75) * (L[:, None] / 4.0) ** 0.5 / 0.05)  # 1/nu = 0.5, L0 = 4 (geometric mean)
    n = np.full(P.shape, 20)
    k = rng.binomial(n, P)
    sc = C.fit_scaling(XS, L, k, n)
    assert sc.why == "" and sc.nu_note == ""
    assert sc.inv_nu[1] <= 0.5 <= sc.inv_nu[2] and sc.lam_c[1] <= 0.75 <= sc.lam_c[2], sc


def test_too_few_runs_or_no_collapse_is_said_not_fitted():
    assert C.fit_logistic(XS, np.zeros(11), np.full(11, 5)).why == "no run collapsed"
    few = C.fit_logistic([0.5, 0.6], [0, 1], [2, 2])
    assert not few.fitted and "too few" in few.why
    sep = C.fit_logistic(XS, (XS > 0.8) * 5, np.full(11, 5))
    assert sep.lam_c[1:] == (0.8, 0.85) and math.isinf(sep.slope[0]) and "separate" in sep.why
    assert C.fit_sharpening(XS, WIDTHS, np.zeros((3, 11)), np.full((3, 11), 5)).verdict().startswith("NOT ANSWERED")


def test_a_mixed_cell_at_the_edge_of_separation_is_not_a_zero_width_interval():
    # no run collapses below 1.0, one of two does at 1.0 (the grid's end): lambda_c lies
    # somewhere past 0.95, not exactly at 1.0
    x = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0]
    edge = C.fit_logistic(x, [0, 0, 0, 0, 0, 0, 1], [2] * 7)
    assert edge.lam_c[1] == 0.95 and math.isinf(edge.lam_c[2]) and "grid's end" in edge.why, edge
    # a mixed cell between an all-surviving and an all-collapsed one: the bracket spans both
    mid = C.fit_logistic(x, [0, 0, 0, 1, 2, 2, 2], [2] * 7)
    assert mid.lam_c[1:] == (0.7, 0.9) and mid.lam_c[0] == 0.8, mid
    # decreasing: every run collapses below 0.8, one of two at 0.8, none above
    down = C.fit_logistic(x, [2, 2, 2, 1, 0, 0, 0], [2] * 7)
    assert down.lam_c[1:] == (0.7, 0.9) and down.slope[0] == -math.inf, down


def test_an_unresolved_nu_is_not_printed_as_a_number():
    assert "not positive" in C.nu_resolved(-182.77, -1839.70, 1042.54)
    assert "factor of 10" in C.nu_resolved(2.0, 0.3, 40.0)
    assert C.nu_resolved(1.5, 1.0, 2.5) == ""


# --------------------------------------------------------------------------- the scripts


def plant_runs(root, rng, seeds=10):
    """dgl runs of three widths; a run collapses (error ~0.85) with the planted probability,
    else it sits on a plateau ~0.2."""
    truth = {}
    for w in WIDTHS:
        for lam in XS:
            p = float(expit((lam - lam_c(w)) / s_sharp(w)))
            for seed in range(seeds):
                y = 0.85 + 0.02 * rng.standard_normal() if rng.random() < p else 0.2 + 0.01 * rng.standard_normal()
                F.write_run(root, "sweep", F.record(F.config(width=float(w), lam=float(lam), seed=seed, eta=0.8), y))
            truth[(w, lam)] = p
    return truth


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("collapse"))
    return root, plant_runs(root, np.random.default_rng(7))


def test_variance_peak_reports_the_collapse_probability(planted, tmp_path):
    root, truth = planted
    rc, text, err = run_main(VP.main, [root, "--out", str(tmp_path), "--n-boot", "20", "--size-measure", "value"])
    assert rc == 0, err
    assert "collapsed when best_error > 0.5" in text and "midway between the plateau" in text
    cells = pd.read_csv(tmp_path / "variance_peak_cells.csv")
    assert {"n_collapsed", "p_collapse", "p_lo", "p_hi", "p_1mp", "collapse_var_share"} <= set(cells.columns)
    cover = np.mean([r.p_lo <= truth[(r["model.width"], r.lam)] <= r.p_hi for _, r in cells.iterrows()])
    assert cover >= 0.85, cover
    summary = pd.read_csv(tmp_path / "variance_peak_summary.csv")  # 95% intervals: one miss of three is chance
    assert sum(r.lam_c_P50_lo <= lam_c(r["model.width"]) <= r.lam_c_P50_hi for _, r in summary.iterrows()) >= 2
    claims = pd.read_csv(tmp_path / "variance_peak_claims.csv").set_index("claim")
    assert claims.loc["collapse probability sharpens with size (d slope / d ln L)", "verdict"].startswith("YES")
    assert claims.loc["the rise of P (lam_c at P=0.5, or mid-rise where P levels off) moves with size", "verdict"].startswith("YES")
    assert "p(1-p)=" in text and os.path.getsize(tmp_path / "variance_peak_probability.png") > 10_000


def test_phase_boundary_reports_lambda_c_at_half_collapse(planted, tmp_path):
    root, _ = planted
    rc, text, err = run_main(PB.main, [root, "--out", str(tmp_path), "--n-boot", "20", "--curve-key", "model.width",
                                       "--collapse-error", "0.5"])
    assert rc == 0, err
    assert "given by --collapse-error" in text
    s = pd.read_csv(tmp_path / "phase_boundary_summary.csv")
    assert sum(r.lam_c_P50_lo <= lam_c(r["model.width"]) <= r.lam_c_P50_hi for _, r in s.iterrows()) >= 2
    v = pd.read_csv(tmp_path / "phase_boundary_verdict.csv").iloc[0]
    assert v.verdict_collapse == "depends", v
    assert "from λ_c at P(collapse)=0.5: Phase boundary depends on" in text


def test_no_collapse_anywhere_is_said(tmp_path):
    for lam in XS:
        for seed in range(5):
            F.write_run(str(tmp_path / "r"), "s", F.record(F.config(lam=float(lam), seed=seed), 0.2 + 0.01 * seed))
    rc, text, err = run_main(PB.main, [str(tmp_path / "r"), "--out", str(tmp_path / "o"), "--n-boot", "10",
                                       "--panel-key", "none"])
    assert rc == 0, err
    assert "no run collapsed anywhere" in text and "not fitted: no run collapsed" in text


# --------------------------------------------------------------------------- defects


def test_a_notebook_record_named_result_json_is_a_notebook_record(tmp_path):
    rec = F.notebook_q1_records(seeds=3)[0]
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "result.json").write_text(json.dumps(rec))
    table, report = runs.collect(str(tmp_path))
    assert not report.bad_files and len(table) == 1 and report.sources == {"notebook record": 1}
    assert table.iloc[0]["best_error"] == pytest.approx(rec["best_error"])


def test_no_runs_found_names_the_first_reasons(tmp_path):
    for i in range(6):
        (tmp_path / f"r{i}").mkdir()
        (tmp_path / f"r{i}" / "result.json").write_text('{"status": "completed", "config": {' if i % 2 else "")
    with pytest.raises(runs.AnalysisError) as e:
        cli.collected([str(tmp_path)])
    msg = str(e.value)
    assert "6 unreadable" in msg and "half-written" in msg and "r0" in msg and "and 3 more" in msg


def test_phase_boundary_legend_matches_what_is_drawn(tmp_path):
    """Three lambdas (no logistic fit): no 'logistic fit' in the legend; the notebook's bars
    are drawn in the grey of their legend swatch."""
    root = str(tmp_path / "r")
    for lr in (0.05, 0.1):
        for lam, y in ((0.4, 0.15), (0.5, 0.22), (0.6, 0.3)):
            for seed in range(3):
                F.write_run(root, "s", F.record(F.config(lam=lam, lr=lr, seed=seed), y + 0.005 * seed))
    args = PB.build_parser().parse_args([root, "--out", str(tmp_path / "o"), "--panel-key", "none", "--n-boot", "10"])
    cli.check(args)
    echo, used = cli.start(args, "--curve-key", args.curve_key, "T")
    C.setup(echo, used.df, args, [args.curve_key, args.x_key])
    panels = [PB.analyse_panel(g, args) for g in S.grids(used.df, None, args.curve_key, args.x_key)]
    fig = PB.draw(panels, args)
    ax, axb = fig.axes[:2]
    assert "logistic fit" not in [t.get_text() for t in ax.get_legend().get_texts()]
    import matplotlib.colors as mc

    bars = [r for r in axb.patches if r.get_width() == pytest.approx(0.6)]
    swatch = axb.get_legend().get_patches()[0]
    assert bars and all(mc.to_rgb(b.get_facecolor()) == mc.to_rgb(swatch.get_facecolor()) for b in bars)


def test_the_collapse_figure_draws_a_fit_only_where_p_is_shown_to_rise(tmp_path):
    """lr 0.2 collapses from lambda 0.6 on; lr 0.1 once, at the grid's end (its slope interval
    holds 0): one fitted line and one mid-rise diamond, both lr 0.2's."""
    root = str(tmp_path / "r")
    for lam in (0.4, 0.5, 0.6, 0.7, 0.8):
        for seed in range(6):
            F.write_run(root, "s", F.record(F.config(lam=lam, lr=0.2, seed=seed), 0.85 if lam >= 0.6 else 0.2))
            F.write_run(root, "s", F.record(F.config(lam=lam, lr=0.1, seed=seed),
                                            0.85 if (lam, seed) == (0.8, 0) else 0.2))
    args = PB.build_parser().parse_args([root, "--out", str(tmp_path / "o"), "--panel-key", "none", "--n-boot", "10",
                                         "--collapse-error", "0.55"])
    cli.check(args)
    echo, used = cli.start(args, "--curve-key", args.curve_key, "T")
    C.setup(echo, used.df, args, [args.curve_key, args.x_key])
    panels = [PB.analyse_panel(g, args) for g in S.grids(used.df, None, args.curve_key, args.x_key)]
    rising = [C.rises(f) for f in panels[0].logits]
    assert rising == [False, True]  # lr 0.1, lr 0.2
    ax = PB.draw_collapse_p(panels, args).axes[0]
    fitted = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 300]
    assert len(fitted) == 1
    diamonds = [ln for ln in ax.get_lines() if ln.get_marker() == "D"]
    assert len(diamonds) == 1 and 0.5 <= diamonds[0].get_xdata()[0] <= 0.6
    boundary = PB.draw(panels, args).axes[1]  # the phase boundary marks lr 0.2's rise only
    squares = [ln for ln in boundary.get_lines() if ln.get_marker() == "s" and len(ln.get_xdata())]
    assert len(squares) == 1 and squares[0].get_xdata()[0] == pytest.approx(1.12)


def test_a_collapse_probability_that_levels_off_below_one_is_named():
    x = np.linspace(0.3, 0.9, 7)
    n = np.full(7, 20)
    plateau = C.fit_logistic(x, np.round(n * 0.5 * expit((x - 0.5) / 0.02)), n)
    level, lo, hi = plateau.ceiling
    assert lo <= 0.5 <= hi < 1 and "levels off" in C.describe_fit(plateau, "λ", FG.fci, FG.fnum)
    rising = C.fit_logistic(x, np.round(n * expit((x - 0.6) / 0.05)), n)
    assert math.isnan(rising.ceiling[0]) and "levels off" not in C.describe_fit(rising, "λ", FG.fci, FG.fnum)


def test_a_planned_grid_resolves_lambda_c_better_with_more_seeds_and_covers_it():
    from benchmarks.collapse_design import main, simulate

    lams, rng = [0.45, 0.5, 0.53, 0.56, 0.6, 0.65], np.random.default_rng(0)
    few, many = (simulate(lams, seeds, 0.55, 20.0, 60, rng) for seeds in (5, 20))
    width = {k: np.nanmedian(s["lam_c"][:, 2] - s["lam_c"][:, 1]) for k, s in (("few", few), ("many", many))}
    assert width["many"] < 0.7 * width["few"]  # ~1/sqrt(4) of it
    lo, hi = many["lam_c"][:, 1], many["lam_c"][:, 2]
    assert np.mean((lo <= 0.55) & (0.55 <= hi)) >= 0.85
    with pytest.raises(SystemExit):
        main(["--study", "--lam", "0.5"])  # one or the other


def test_the_moves_verdict_on_planted_cells_says_yes_where_the_rises_differ_only():
    from benchmarks.collapse_design import moves_draws

    x = np.round(np.arange(0.40, 0.81, 0.05), 2)
    n = np.full(x.size, 10.0)
    cells, rng = {"a": (x, None, n), "b": (x, None, n)}, np.random.default_rng(0)
    apart = moves_draws(cells, {"a": (0.5, 40.0, 1.0), "b": (0.7, 40.0, 1.0)}, 10, rng)
    same = moves_draws(cells, {"a": (0.6, 40.0, 1.0), "b": (0.6, 40.0, 1.0)}, 10, rng)
    assert apart["yes"].mean() >= 0.8 and same["yes"].mean() <= 0.2
    assert min(v.mean() for v in apart["cover"].values()) >= 0.7
    gaps = same["midpoints"]["b"] - same["midpoints"]["a"]
    assert np.all(np.abs(gaps) < 0.2)  # no draw at one onset puts them as far apart as 0.5 and 0.7


def test_the_moves_benchmark_plants_the_study_curves_as_the_analysis_fits_them():
    from benchmarks.collapse_design import STEP, planted_as_fitted, run_cells

    cells_csv = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "analysis",
                             "q1_widths_to_0.5", "variance_peak_cells.csv")
    cells = run_cells(cells_csv, "model.width")
    x, k, n = cells[0.5]
    assert int(k.sum()) == 14 and int(n.sum()) == 92
    midpoint, slope, level = planted_as_fitted(x, k, n)  # a step from 0.6 to 0.65, to about a quarter
    assert 0.6 < midpoint < 0.65 and slope == STEP and 0.2 < level < 0.3


def test_a_collapse_probability_that_falls_again_is_named_and_a_plateau_is_not():
    x, n = np.round(np.arange(0.3, 1.01, 0.1), 2), np.full(8, 10.0)
    fits = {name: C.fit_logistic(x, np.array(k, float), n) for name, k in
            (("window", [0, 0, 3, 9, 10, 10, 1, 0]), ("plateau", [0, 0, 3, 5, 5, 5, 5, 5]),
             ("rise", [0, 0, 3, 9, 10, 10, 10, 10]))}
    assert fits["window"].falls and 0.8 < fits["window"].falls[0] < 0.95 and fits["window"].falls[1] < 1e-6
    assert not fits["plateau"].falls and not fits["rise"].falls
    text = C.describe_fit(fits["window"], "λ", lambda lo, hi, f: f"[{lo:{f}}, {hi:{f}}]", lambda v, f: f"{v:{f}}")
    assert "note: P falls again near λ=0.899" in text and "restrict the fit to its rise with --where" in text
    # 7 lambdas x 5 runs, 100 draws each (docs/ANALYSIS.md quotes these rates)
    rng, x, n = np.random.default_rng(1), np.linspace(0.4, 0.7, 7), np.full(7, 5.0)
    shapes = {"logistic": expit(25 * (x - 0.55)), "plateau": 0.6 * expit(40 * (x - 0.5)),
              "window": 0.95 * expit(40 * (x - 0.45)) * expit(-40 * (x - 0.66))}
    rate = {name: np.mean([bool(C.fit_logistic(x, rng.binomial(5, p).astype(float), n).falls) for _ in range(100)])
            for name, p in shapes.items()}
    assert rate["logistic"] <= 0.05 and rate["plateau"] <= 0.10 and rate["window"] >= 0.8, rate


def test_a_collapse_probability_that_levels_off_is_located_by_its_rise():
    x, n = np.round(np.linspace(0.3, 0.9, 13), 3), np.full(13, 20.0)
    low, high = (C.fit_logistic(x, np.round(n * 0.6 * expit((x - mid) / 0.01)), n) for mid in (0.45, 0.7))
    for fit, mid in ((low, 0.45), (high, 0.7)):
        (x0, lo, hi), (b, blo, bhi) = fit.rise
        assert lo <= mid <= hi and hi - lo < 0.06 and blo > 20, fit.rise  # the rise, not the logistic's 0.5
        assert fit.midpoint == fit.rise[0] and fit.p(0.9) == pytest.approx(fit.ceiling[0], abs=1e-3)
        assert fit.ceiling[1] <= 0.6 <= fit.ceiling[2]
    text = C.describe_fit(low, "λ", FG.fci, FG.fnum)
    assert "the rise to that level is at λ=0.45" in text, text
    label = str
    assert C.moves(["a", "b"], [low, high], label)[0] == "YES"
    rising = C.fit_logistic(x, np.round(n * expit((x - 0.6) / 0.05)), n)
    assert not rising.rise and rising.midpoint == rising.lam_c
    # a few scattered collapses: no rise shown, so nothing is located or compared
    scattered = C.fit_logistic(x, np.array([0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0.0]), n)
    assert not C.rises(scattered) and C.moves(["a", "b"], [low, scattered], label)[0] == "NOT ANSWERED"
    # a low level the test cannot find reads as a logistic reaching P = 0.5 beyond the grid: no verdict rests on it
    shallow = C.fit_logistic(x, np.array([0, 0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 5.0]), n)
    assert C.rises(shallow) and shallow.midpoint[0] > x.max() and not shallow.rise
    assert C.moves(["a", "b"], [low, shallow], label)[0] == "YES"  # without the grid
    assert C.moves(["a", "b"], [low, shallow], label, (x.min(), x.max()))[0] == "NOT ANSWERED"


def test_whether_the_rise_steepens_is_read_curve_by_curve():
    x, n = np.round(np.linspace(0.3, 0.9, 13), 3), np.full(13, 40.0)
    shallow, steep = (C.fit_logistic(x, np.round(n * expit((x - 0.6) * b)), n) for b in (8.0, 60.0))
    assert C.steepens(["small", "large"], [shallow, steep], str)[0].startswith("YES")
    assert C.steepens(["small", "large"], [steep, shallow], str)[0].startswith("NO")
    assert C.steepens(["small", "large"], [shallow, shallow], str)[0] == "NOT RESOLVED"
    # a levelled curve is compared by its rise's slope, not by the logistic's shallow one
    levelled = C.fit_logistic(x, np.round(n * 0.6 * expit((x - 0.6) * 60.0)), n)
    assert levelled.rise and levelled.slope[2] < levelled.steepness[1]
    assert C.steepens(["small", "large"], [shallow, levelled], str)[0].startswith("YES")


def test_span_places_values_across_the_rise_of_a_levelled_curve():
    from analysis.suggest import span

    x, n = np.round(np.linspace(0.3, 0.9, 13), 3), np.full(13, 20.0)
    levelled = C.fit_logistic(x, np.round(n * 0.6 * expit((x - 0.5) / 0.03)), n)
    placed = span(levelled, 5, 0.0, 1.0)
    xs, ps = zip(*placed)
    assert 0.4 < xs[0] < 0.5 < xs[-1] < 0.6  # on the rise at 0.5, not the logistic's later lambda_c
    level = levelled.ceiling[0]
    assert ps[0] == pytest.approx(0.1 * level, abs=0.01) and ps[-1] == pytest.approx(0.9 * level, abs=0.01)
