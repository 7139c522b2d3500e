"""analysis.repeats: runs of one config in several sweep folders (reruns under another `name`)
are grouped by their fingerprint, and their spread is the spread of the planted values."""

import numpy as np
import pandas as pd
import pytest

from analysis.repeats import main
from dgl.identity import fingerprint
from tests.analysis_fixtures import config, record, write_run


def test_reruns_of_one_config_are_grouped_by_fingerprint_across_folders(tmp_path, capsys):
    planted = {0.55: [0.21, 0.22, 0.20], 0.60: [0.23, 0.66, 0.34]}
    folders = []
    for i in range(3):
        name = f"repeat_{i}"
        for lam, errs in planted.items():
            cfg = config(lam=lam, seed=0, eta=0.8, name=name)
            rec = record(cfg, errs[i])
            rec["fingerprint"] = fingerprint(cfg)
            write_run(str(tmp_path), name, rec)
        folders.append(str(tmp_path / name))
    once = config(lam=0.65, seed=0, eta=0.8, name="repeat_0")  # run once: not a repeat
    write_run(str(tmp_path), "repeat_0", {**record(once, 0.3), "fingerprint": fingerprint(once)})
    other_seed = config(lam=0.55, seed=1, eta=0.8, name="repeat_1")  # another config, also once
    write_run(str(tmp_path), "repeat_1", {**record(other_seed, 0.9), "fingerprint": fingerprint(other_seed)})

    write_run(str(tmp_path), "old", record(config(lam=0.55, seed=0, eta=0.8, name="old"), 0.5))  # no fingerprint
    out = tmp_path / "repeats.csv"
    assert main([*folders, str(tmp_path / "old"), "--out", str(out)]) == 0
    assert "1 run(s) without a fingerprint" in capsys.readouterr().out
    table = pd.read_csv(out).set_index("lam")
    assert sorted(table.index) == [0.55, 0.60] and (table.n == 3).all()
    for lam, errs in planted.items():
        assert table.loc[lam, "std"] == pytest.approx(np.std(errs, ddof=1))
        assert (table.loc[lam, "min"], table.loc[lam, "max"]) == (min(errs), max(errs))


def test_no_repeats_is_one_line_error(tmp_path, capsys):
    cfg = config(lam=0.5)
    write_run(str(tmp_path), "sweep", {**record(cfg, 0.2), "fingerprint": fingerprint(cfg)})
    assert main([str(tmp_path / "sweep")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no config was run more than once" in err


@pytest.mark.parametrize("script", ["repeats", "paired"])
def test_an_unwritable_out_is_refused_before_any_work(tmp_path, capsys, script):
    import importlib

    main_of = importlib.import_module(f"analysis.{script}").main
    (tmp_path / "taken").mkdir()  # a folder where a CSV file is wanted
    assert main_of([str(tmp_path / "no_such_sweep"), "--out", str(tmp_path / "taken")]) != 0
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--out" in err and "is a folder" in err, err
