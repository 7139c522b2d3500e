"""A job folder answers only for its own config, and bad input is refused before anything
runs: the schema, one-line errors, the preflight of single runs and of every job
of a sweep, identity checks before skip or resume, length-safe folder names, `list`."""

import json

import pytest

from dgl.identity import MAX_NAME_BYTES, folder_name
from tests.helpers import TINY, run_train

QUICK = [*TINY, "train.epochs=1"]


def one_error_line(proc):
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


@pytest.mark.parametrize("override,expected", [
    ("lam=true", "lam=true is not allowed (allowed: a number)"),
    ("train.compile=maybe", "train.compile=maybe is not allowed (allowed: true or false)"),
    ("seed=4294967296", "seed=4294967296 is not allowed (allowed: an integer in [0, 2**32))"),
    ("data.n_train=-5", "data.n_train=-5 is not allowed (allowed: an integer >= 1)"),
    ("noise=none noise.rate=0.4", "noise.rate=0.4 is not allowed (allowed: 0 with noise=none)"),
    ("+lamda=0.4", "lamda is not a config key (did you mean lam?"),
    ("lamda=0.4", "lamda is not a config key (did you mean lam?"),
    ("+train.foo=1", "train.foo is not a config key (allowed: epochs,"),
    ("lam=1.5", "lam=1.5 is not allowed (allowed: [0, 1])"),
    ("lr=abc", "lr=abc is not allowed (allowed: a number)"),
    ("model=resnet50", "Could not find 'model/resnet50' (allowed: resnet18, tv_resnet18)"),
    ("model.width=0", "model.width=0.0 is not allowed (allowed: > 0)"),
    ("model=tv_resnet18 model.width=2", "model.width=2.0 is not allowed (allowed: 1 for tv_resnet18"),
    ("train.value_every=0", "train.value_every=0 is not allowed (allowed: an integer >= 1)"),
    ("train.device=tpu", "train.device=tpu is not allowed (allowed: auto, cpu, cuda)"),
    ("data=fashion_mnist data.root=/nonexistent", "data.root: /nonexistent does not exist"),
])
def test_bad_input_is_one_line_and_leaves_no_folder(tmp_path, override, expected):
    base = [a for a in QUICK if not a.startswith("data")] if override.startswith("data=") else QUICK
    proc = run_train([*base, *override.split()], cwd=tmp_path, check=False)
    assert expected in one_error_line(proc)
    assert not (tmp_path / "outputs").exists(), "a rejected command left a folder behind"


def test_missing_cifar_leaves_no_folder(tmp_path):
    args = [a for a in QUICK if not a.startswith("data")]
    proc = run_train([*args, "data=cifar10", f"data.root={tmp_path / 'none'}", "data.download=false"],
                     cwd=tmp_path, check=False)
    assert "CIFAR-10 not found" in one_error_line(proc)
    assert not (tmp_path / "outputs").exists()


def test_missing_cifar_at_the_default_root_is_one_line_too(tmp_path, monkeypatch):
    """The default data.root reads ${hydra:runtime.cwd}, which the single-run check (a Hydra
    callback, before the job starts) must be able to resolve."""
    monkeypatch.delenv("DGL_DATA", raising=False)
    args = [a for a in QUICK if not a.startswith("data")]
    proc = run_train([*args, "data=cifar10", "data.download=false"], cwd=tmp_path, check=False)
    assert f"CIFAR-10 not found in {tmp_path / 'data'}" in one_error_line(proc)
    assert not (tmp_path / "outputs").exists()


def test_a_quoted_number_is_read_as_the_number(tmp_path):
    run_train([*QUICK, "lr='0.05'", "hydra.run.dir=run"], cwd=tmp_path)
    assert json.loads((tmp_path / "run" / "result.json").read_text())["lr"] == 0.05


def test_one_bad_value_stops_the_whole_sweep_before_any_job(tmp_path):
    proc = run_train(["-m", *QUICK, "lam=0.4,1.5,0.6"], cwd=tmp_path, check=False)
    line = one_error_line(proc)
    assert "job #1" in line and "lam=1.5" in line and "allowed: [0, 1]" in line, line
    assert not (tmp_path / "outputs").exists(), "the sweep trained or wrote something"


@pytest.mark.parametrize("launcher", [[], ["hydra/launcher=local_gpus"], ["hydra/launcher=slurm"]])
def test_every_launcher_is_preceded_by_the_check(tmp_path, launcher):
    # the check is the sweeper's, so it runs before any launcher (SLURM: before sbatch)
    proc = run_train(["-m", *QUICK, "seed=0,1", "noise.rate=0.4,1.0", *launcher], cwd=tmp_path, check=False)
    assert "noise.rate=1.0 is not allowed" in one_error_line(proc)
    assert not (tmp_path / "outputs").exists()


def test_a_folder_of_another_config_is_never_reused(tmp_path):
    run_train([*QUICK, "lam=0.3", "hydra.run.dir=run"], cwd=tmp_path)
    result = tmp_path / "run" / "result.json"
    before = result.read_bytes()
    # same folder, another model: refused, naming both configs; the result is untouched
    proc = run_train([*QUICK, "lam=0.3", "model=tv_resnet18", "model.width=1", "hydra.run.dir=run"],
                     cwd=tmp_path, check=False)
    line = one_error_line(proc)
    assert "holds a run of another config" in line and "model.name: resnet18 there, tv_resnet18 here" in line
    assert result.read_bytes() == before
    # options that do not change what is computed may differ: the finished run answers
    again = run_train([*QUICK, "lam=0.3", "train.progress=false", "hydra.run.dir=run"], cwd=tmp_path)
    assert "already completed" in again.stdout + again.stderr
    assert json.loads(before)["fingerprint"] == json.loads(result.read_text())["fingerprint"]


def test_an_interrupted_run_of_another_config_is_not_resumed(tmp_path):
    job = tmp_path / "sweep" / "job"
    job.mkdir(parents=True)
    # a started run: its config.yaml is written before training begins
    run_train([*QUICK, "lam=0.3", f"hydra.run.dir={job}"], cwd=tmp_path)
    (job / "result.json").unlink()
    proc = run_train(["-m", *QUICK, "lam=0.3", "seed=5", "hydra.sweep.dir=sweep", "hydra.sweep.subdir=job"],
                     cwd=tmp_path, check=False)
    line = one_error_line(proc)
    assert "job #0" in line and "seed: 0 there, 5 here" in line, line
    assert not (job / "result.json").exists() and not (tmp_path / "sweep" / "multirun.yaml").exists()


def test_a_single_run_of_an_experiment_gets_its_own_folder(tmp_path):
    run_train(QUICK, cwd=tmp_path)
    run_train(["experiment=fmnist_transition_scan", *QUICK], cwd=tmp_path)  # the command line's data wins
    folders = sorted(p.name for p in (tmp_path / "outputs" / "runs").iterdir())
    assert len(folders) == 2 and folders[1] == "experiment=fmnist_transition_scan," + folders[0], folders
    assert folder_name([], None) == "default"


def test_long_override_lists_get_a_short_readable_folder(tmp_path):
    many = [f"train.{k}={v}" for k, v in (("momentum", 0.91), ("weight_decay", 0.0004), ("gamma", 0.2),
                                          ("value_every", 8), ("eval_every", 1), ("checkpoint_every", 1))]
    many += ["lam=0.123456789", "lr=0.0987654321", "seed=123456", "noise.rate=0.3333333",
             "train.milestones=[0.3,0.6,0.9]", "model.width=0.1875", "data.n_train=301",
             "data.n_test=201", "data.image_size=32", "noise=symmetric"]
    assert len(many) >= 16
    args = [a for a in QUICK if not any(a.startswith(k) for k in ("data.n_", "model.width"))]
    run_train(["-m", *args, *many, "hydra.sweep.dir=sweep"], cwd=tmp_path)
    (job,) = [p for p in (tmp_path / "sweep").iterdir() if p.is_dir()]
    assert len(job.name.encode()) <= MAX_NAME_BYTES and job.name.startswith("data.image_size=32")
    result = json.loads((job / "result.json").read_text())
    assert result["status"] == "completed" and "lam=0.123456789" in result["overrides"]
    # a name past the limit ends in a hash of the whole name: different overrides, different folders
    a, b = folder_name([*many, "x=1"]), folder_name([*many, "x=2"])
    assert a != b and a[:60] == b[:60]
    # keys that change nothing computed stay out of the name; lam_index (a selector) stays in
    assert folder_name(["lam_index=2", "train.device=cpu", "data.root=/x", "train.deterministic=false"]) == "lam_index=2"


def test_list_writes_nothing_and_shows_each_jobs_lambda(tmp_path):
    proc = run_train(["-m", "experiment=q1", "hydra/launcher=list", "model.width=0.5", "noise.rate=0.8",
                      "seed=0"], cwd=tmp_path, check=False)
    lines = [line for line in proc.stdout.splitlines() if "lam_index=" in line]
    assert len(lines) == 5, proc.stdout + proc.stderr
    # the notebook's grid for noise 0.8, resolved from lam_index
    assert [line.split("lam=")[1].split()[0] for line in lines] == ["0.38", "0.4", "0.42", "0.44", "0.46"]
    assert not (tmp_path / "outputs").exists()
    # each folder name starts with its resolved lambda
    assert [line.split("->")[1].split("/")[-1] for line in lines][0] == "lam=0.38,lam_index=0,model.width=0.5,noise.rate=0.8,seed=0"


def test_a_sweep_that_places_lam_itself_names_it_once(tmp_path):
    proc = run_train(["-m", "experiment=q1", "hydra/sweeper=adaptive", "hydra/launcher=list", "model.width=0.5",
                      "noise.rate=0.8"], cwd=tmp_path, check=False)
    folders = [line.split("->")[1].split("/")[-1] for line in proc.stdout.splitlines() if "->" in line]
    assert folders and folders[0] == "lam=0.38,model.width=0.5,noise.rate=0.8,seed=0", proc.stdout + proc.stderr
    assert not (tmp_path / "outputs").exists()  # listing writes nothing, not even the adaptive plan

