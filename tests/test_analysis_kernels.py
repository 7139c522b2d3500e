"""The analysis says when the runs it pools were made with and without deterministic kernels."""

from analysis import phase_boundary
from tests import analysis_fixtures as F


def _sweep(root, deterministic_of_seed):
    for seed, deterministic in deterministic_of_seed.items():
        for lam in (0.3, 0.4, 0.5, 0.6, 0.7):
            rec = F.record(F.config(model="tv_resnet18", eta=0.8, lam=lam, lr=0.1, seed=seed, name="k"),
                           0.2 + 0.6 * (lam > 0.5))
            if deterministic is not None:
                rec["deterministic"] = deterministic
            F.write_run(str(root), "k", rec)


def test_mixed_kernels_are_named_and_one_setting_is_not(tmp_path, capsys):
    _sweep(tmp_path / "mixed", {0: True, 1: False, 2: None})  # None: a record from before the key
    phase_boundary.main([str(tmp_path / "mixed"), "--out", str(tmp_path / "o1"), "--n-boot", "20"])
    out = capsys.readouterr().out
    assert "WARNING: 5 runs used deterministic kernels and 10 did not" in out, out

    _sweep(tmp_path / "same", {0: True, 1: True})
    phase_boundary.main([str(tmp_path / "same"), "--out", str(tmp_path / "o2"), "--n-boot", "20"])
    assert "deterministic kernels" not in capsys.readouterr().out
