"""The adaptive sweep (hydra/sweeper=adaptive, analysis.adaptive): its decisions on planted
runs, and end to end with a planted task that writes result.json in milliseconds (the project's
config, so every job of a round is checked as a real one), with the basic launcher and with
local_gpus on the CPU."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy.special import expit

from analysis.adaptive import Options, decide, round0
from dgl.status import main as status_main
from tests.helpers import REPO

APP = r'''
import json, os, sys
from pathlib import Path

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from scipy.special import expit

import dgl  # noqa: F401  (the schema and resolvers of the project's config)
from dgl import records


@hydra.main(config_path=os.environ["DGL_CONF"], config_name="config", version_base="1.3")
def main(cfg):
    out = Path(HydraConfig.get().runtime.output_dir)
    if records.is_finished(out):  # a rerun skips finished jobs, as dgl.run does
        return
    plant = json.loads(os.environ["PLANT"])
    log = Path(HydraConfig.get().sweep.dir) / "executions.log"
    stop = plant.get("stop_after")
    if stop is not None and log.exists() and len(log.read_text().splitlines()) >= stop:
        raise RuntimeError("planted interruption")
    lam_c = plant["lam_c"][str(cfg.model.width)]
    rng = np.random.default_rng([int(cfg.seed), int(round(cfg.lam * 1e4))])
    p = float(expit((cfg.lam - lam_c) / 0.01))
    if plant.get("shape") == "collapse":
        y = rng.normal(0.88, 0.02) if rng.random() < p else rng.normal(0.15, 0.01)
    else:
        y = 0.15 + 0.75 * p + rng.normal(0, 0.03)
    with open(log, "a") as f:
        f.write(f"{cfg.lam} {cfg.seed} {HydraConfig.get().job.num}\n")
    records.write_json(out / "result.json", {"status": "completed", "best_error": float(y), "lambda": float(cfg.lam),
                       "seed": int(cfg.seed), "overrides": list(HydraConfig.get().overrides.task)})


if __name__ == "__main__":
    main()
'''

BASE = ["data=synthetic", "hydra/sweeper=adaptive", "hydra.sweeper.threshold=0.525", "hydra.sweep.subdir=${hydra.job.num}"]


def sweep(tmp_path, name, *overrides, plant, check=True):
    app = tmp_path / "plant_app.py"
    app.write_text(APP)
    env = dict(os.environ, PLANT=json.dumps(plant), DGL_CONF=str(REPO / "conf"), HYDRA_FULL_ERROR="0",
               PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, str(app), "-m", *BASE, f"hydra.sweep.dir={tmp_path / name}", *overrides],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240)
    if check:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc, tmp_path / name


def state(folder):
    return json.loads((folder / "adaptive.json").read_text())


def executions(folder):
    return [line.split() for line in (folder / "executions.log").read_text().splitlines()]


def planted_runs(lam_c, points, seeds, shape="smooth"):
    out = []
    for lam in points:
        for s in seeds:
            rng = np.random.default_rng([s, int(round(lam * 1e4))])
            p = float(expit((lam - lam_c) / 0.01))
            y = (rng.normal(0.88, 0.02) if rng.random() < p else rng.normal(0.15, 0.01)) if shape == "collapse" \
                else 0.15 + 0.75 * p + rng.normal(0, 0.03)
            out.append((lam, s, y))
    return out


# ------------------------------------------------------------------ the decisions alone
def test_round0_is_the_coarse_grid_and_the_same_runs_give_the_same_round_in_any_order():
    opt = Options(threshold=0.525)
    d0 = decide({"a": []}, {"a": (0.42, 0.50)}, opt)
    assert [(lam, s) for _, lam, s in d0.jobs] == round0((0.42, 0.50), opt)
    assert sorted({lam for _, lam, _ in d0.jobs}) == [0.42, 0.44, 0.46, 0.48, 0.5]
    runs = planted_runs(0.455, [0.42, 0.44, 0.46, 0.48, 0.50], range(4))
    fine = Options(threshold=0.525, target_width=0.001)
    a = decide({"a": runs}, {"a": (0.42, 0.50)}, fine)
    b = decide({"a": runs[::-1]}, {"a": (0.42, 0.50)}, fine)
    assert a.jobs == b.jobs and a.reasons == b.reasons and a.jobs
    assert all(0.42 <= lam <= 0.50 for _, lam, _ in a.jobs)
    assert len({(lam, s) for _, lam, s in a.jobs} & {(lam, s) for lam, s, _ in runs}) == 0, "a run placed twice"


def test_a_transition_past_the_grid_is_followed_and_the_budget_cuts_the_widest_first():
    opt = Options(threshold=0.525)
    runs = planted_runs(0.56, [0.42, 0.44, 0.46, 0.48, 0.50], range(2))
    d = decide({"a": runs}, {"a": (0.42, 0.50)}, opt)
    assert d.jobs and min(lam for _, lam, _ in d.jobs) > 0.50 and "every cell below" in d.reasons["a"]
    cut = decide({"a": runs, "b": planted_runs(0.45, [0.42, 0.44, 0.46, 0.48, 0.50], range(2))},
                 {"a": (0.42, 0.50), "b": (0.42, 0.50)}, Options(threshold=0.525, max_runs=24), planned=20)
    assert len(cut.jobs) == 4 and cut.jobs[0][0] == "a", cut.jobs  # "a" has no interval: the widest
    spent = decide({"a": runs}, {"a": (0.42, 0.50)}, Options(threshold=0.525, max_runs=10), planned=10)
    assert not spent.jobs and "max_runs=10 spent" in spent.stop


def test_a_new_lambda_next_to_a_cell_adds_seeds_there():
    cells = [0.42, 0.44, 0.46, 0.48, 0.50]
    opt = Options(threshold=0.525)
    d = decide({"a": planted_runs(0.45, cells, range(4), "collapse")}, {"a": (0.42, 0.50)}, opt)
    lams = {lam for _, lam, _ in d.jobs}
    assert len(d.jobs) == 6 and 0.44 in lams, d.reasons  # 0.4373 and 0.4448 would be new lambdas beside 0.44
    assert all(lam in cells or min(abs(lam - c) for c in cells) >= opt.target_width / 4 for lam in lams), lams


def test_a_small_round_is_filled_up_and_thin_cells_reach_min_cell_runs():
    cells = [0.40, 0.43, 0.46, 0.49, 0.52]
    runs = planted_runs(0.46, cells, range(2), "collapse")
    d = decide({"a": runs}, {"a": (0.40, 0.52)}, Options(threshold=0.525))
    assert "fewer than 4 runs" in d.reasons["a"] and len(d.jobs) == 6, d.reasons  # the thin cells alone: 4 runs
    thin = d.estimates["a"].thin
    assert all(sum(lam == x for lam, _, _ in runs) + sum(lam == x for _, lam, _ in d.jobs) >= 4 for x in thin)
    assert len(decide({"a": runs}, {"a": (0.40, 0.52)}, Options(threshold=0.525, min_round_runs=10)).jobs) == 10
    assert len(decide({"a": runs}, {"a": (0.40, 0.52)}, Options(threshold=0.525, max_runs=13)).jobs) == 3


def plateau_runs(points, seeds):
    """No run collapses at lambda <= 0.5, every other one above: P flat at 0.5 (as on Fashion-MNIST at width 0.25)."""
    return [(lam, s, 0.85 if lam > 0.5 and (s + int(round(lam * 1e4))) % 2 else 0.2) for lam, s in
            ((lam, s) for lam in points for s in seeds)]


def test_a_flat_collapse_probability_is_named_and_the_sweep_stops_at_the_budget():
    opt = Options(threshold=0.55, max_runs=40)
    runs = plateau_runs([0.5, 0.6, 0.7, 0.8, 0.9], range(2))
    for r in range(20):
        d = decide({"a": runs}, {"a": (0.5, 0.9)}, opt)
        if not d.jobs:
            break
        if r == 0:
            assert "collapse probability flat over [0.6000, 0.9000]: lambda_c(P=0.5) not resolvable with 10 runs" \
                in d.reasons["a"] and {lam for _, lam, _ in d.jobs} == {0.6, 0.9}, d.reasons
        runs += [(lam, s, plateau_runs([lam], [s])[0][2]) for _, lam, s in d.jobs]
    assert len(runs) == 40 and "max_runs=40 spent" in d.stop and "flat collapse probability" in d.stop, d.stop


def test_a_collapse_probability_that_levels_off_is_located_by_its_rise():
    """No run collapses up to 0.5, half of them from 0.6 on: the sweep refines the step, not the
    logistic's P = 0.5 (an artefact of a curve that never reaches it)."""
    runs = [(lam, s, 0.85 if lam > 0.55 and s % 2 else 0.2) for lam in (0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
            for s in range(6)]
    d = decide({"a": runs}, {"a": (0.3, 1.0)}, Options(threshold=0.55))
    est = d.estimates["a"]
    assert est.method == "rise" and est.lam_c[1] <= 0.55 <= est.lam_c[2] and est.ceiling[1] <= 0.5 <= est.ceiling[2]
    assert "mid-rise of P, which levels off below 1" in d.reasons["a"], d.reasons
    assert d.jobs and all(0.5 < lam < 0.65 for _, lam, _ in d.jobs), d.jobs  # on the step, between 0.5 and 0.6
    assert est.collapse_c[0] > 0.8  # where the logistic would have sent the runs


# ------------------------------------------------------------------ end to end
def test_basic_launcher_converges_to_the_planted_lambda_c_and_status_shows_the_planned_jobs(tmp_path, capsys):
    proc, folder = sweep(tmp_path, "sw", "model.width=0.125,0.25", "hydra.sweeper.lam_range=[0.40,0.52]",
                         plant={"lam_c": {"0.125": 0.45, "0.25": 0.47}})
    s = state(folder)
    assert s["stop"].startswith("every curve located"), proc.stdout
    last = s["rounds"][-1]
    for curve, true in (("model.width=0.125", 0.45), ("model.width=0.25", 0.47)):
        (key,) = [c for c in last["estimates"] if curve in c]
        est, lo, hi = last["estimates"][key]["lam_c"]
        assert hi - lo <= 0.02 and abs(est - true) < 0.01, (curve, est, lo, hi)
    nums = [int(e[2]) for e in executions(folder)]
    planned = sum(len(r["jobs"]) for r in s["rounds"])
    assert sorted(nums) == list(range(planned)), "job numbers repeat or skip across rounds"
    assert sum(line.startswith("round ") for line in proc.stdout.splitlines()) == len(s["rounds"])
    capsys.readouterr()
    status_main([str(tmp_path)])
    out = capsys.readouterr().out
    assert "adaptive sweep" in out and f"{planned} jobs | {planned} completed" in out and "missing" not in out, out


def test_it_stops_at_the_budget(tmp_path):
    _, folder = sweep(tmp_path, "sw", "hydra.sweeper.lam_range=[0.40,0.52]", "hydra.sweeper.max_runs=14",
                      "hydra.sweeper.target_width=0.001", plant={"lam_c": {"1.0": 0.45}})
    assert "max_runs=14 spent" in state(folder)["stop"] and len(executions(folder)) == 14


def test_an_interrupted_sweep_resumes_with_the_same_decisions(tmp_path):
    plant = {"lam_c": {"1.0": 0.46}, "shape": "collapse"}
    args = ["hydra.sweeper.lam_range=[0.40,0.52]", "hydra.sweeper.max_runs=60"]
    _, whole = sweep(tmp_path, "whole", *args, plant=plant)
    proc, cut = sweep(tmp_path, "cut", *args, plant={**plant, "stop_after": 13}, check=False)
    assert proc.returncode != 0 and len(executions(cut)) == 13
    proc, _ = sweep(tmp_path, "cut", *args, plant=plant)
    assert "not launched again" in proc.stdout, proc.stdout  # round 0 finished before the interruption
    drop = ("line",)
    assert [{k: v for k, v in r.items() if k not in drop} for r in state(cut)["rounds"]] == \
        [{k: v for k, v in r.items() if k not in drop} for r in state(whole)["rounds"]]
    done = [tuple(e[:2]) for e in executions(cut)]
    assert len(done) == len(set(done)) == len(executions(whole)), "a finished run was run again"


def test_a_bad_round_is_refused_before_any_of_its_jobs_runs(tmp_path):
    """lambda_c lies above 1 (out of the config's range): round 1 extends past it and is refused."""
    proc, folder = sweep(tmp_path, "sw", "hydra.sweeper.lam_range=[0.80,0.96]", "hydra.sweeper.lam_bounds=[0,2]",
                         "hydra.sweeper.grid_points=3", plant={"lam_c": {"1.0": 1.2}}, check=False)
    assert proc.returncode != 0
    err = proc.stderr.strip().splitlines()[-1]
    assert "round 1 job #6 (" in err and "nothing of round 1 was run" in err, proc.stderr
    assert len(executions(folder)) == 6 and "refused" in state(folder)["stop"]


def test_local_gpus_on_the_cpu(tmp_path):
    proc, folder = sweep(tmp_path, "sw", "hydra/launcher=local_gpus", "hydra.launcher.gpus=[]",
                         "hydra.launcher.cpu_jobs=2", "hydra.sweeper.lam_range=[0.40,0.52]",
                         plant={"lam_c": {"1.0": 0.43}})
    s = state(folder)
    assert s["stop"].startswith("every curve located"), proc.stdout + proc.stderr
    ((_, e),) = s["rounds"][-1]["estimates"].items()
    assert abs(e["lam_c"][0] - 0.43) < 0.01 and e["lam_c"][2] - e["lam_c"][1] <= 0.02


def test_curves_are_named_without_place_keys_and_a_rerun_from_elsewhere_continues(tmp_path):
    args = ["hydra.sweeper.lam_range=[0.40,0.52]"]
    plant = {"lam_c": {"1.0": 0.46}}
    _, folder = sweep(tmp_path, "sw", *args, "data.root=/here", "hydra.sweeper.max_runs=10", plant=plant)
    assert "max_runs=10 spent" in state(folder)["stop"] and list(state(folder)["plan"]["curves"]) == ["data=synthetic"]
    proc, _ = sweep(tmp_path, "sw", *args, "data.root=/elsewhere", "hydra.sweeper.max_runs=16", plant=plant)
    assert "not launched again" in proc.stdout and "max_runs: 10 there, 16 here" in proc.stdout, proc.stdout
    done = [tuple(e[:2]) for e in executions(folder)]
    assert len(done) == len(set(done)) == 16, "a finished run was run again"
    assert all("data.root=/elsewhere" in o for r in state(folder)["rounds"] for o in r.get("overrides", []))


def test_a_rerun_replays_the_recorded_rounds_whatever_the_decisions_say_now(tmp_path):
    plant = {"lam_c": {"1.0": 0.46}, "shape": "collapse"}
    args = ["hydra.sweeper.lam_range=[0.40,0.52]", "hydra.sweeper.max_runs=40"]
    proc, folder = sweep(tmp_path, "sw", *args, plant={**plant, "stop_after": 13}, check=False)
    assert proc.returncode != 0 and len(executions(folder)) == 13
    recorded = [r["jobs"] for r in state(folder)["rounds"]]
    proc, _ = sweep(tmp_path, "sw", *args, "hydra.sweeper.min_round_runs=9", plant=plant)
    rounds = state(folder)["rounds"]
    assert [r["jobs"] for r in rounds[:len(recorded)]] == recorded, proc.stdout  # 6 runs, not 9
    assert len(rounds) > len(recorded) and "[recorded in adaptive.json]" in proc.stdout
    nums = [int(e[2]) for e in executions(folder)]
    done = [tuple(e[:2]) for e in executions(folder)]
    assert len(done) == len(set(done)) and sorted(set(nums)) == list(range(sum(len(r["jobs"]) for r in rounds)))
