"""Reading runs into one tidy table: this project's run folders and the notebooks' own files.

``collect(paths)`` walks every folder recursively and returns ``(table, report)``, one row per
finished run from either source (column ``source``; what is read from each and how
duplicates are resolved: docs/ANALYSIS.md, "What they read"). ``select`` then picks the value
an analysis uses and says what it left out and why.
"""

from __future__ import annotations

import json
import math
import os
from collections import defaultdict
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dgl.identity import NOT_COMPUTATIONAL, fingerprint

RUN_MARKERS = ("checkpoint.pt", ".hydra", ".lock", "metrics.csv", "labels.npz")
STATUSES = ("completed", "diverged", "failed")
#: What the notebooks fix in code (both use 100 epochs, batch 256, K = 16, fp32, SGD 0.9 /
#: 5e-4, MultiStepLR at 50 % and 75 %, evaluation every 10 epochs); per notebook, the model.
NOTEBOOK_CONFIG = {
    "data": {"name": "cifar10"},
    "noise": {"name": "symmetric"},
    "train": {"epochs": 100, "batch_size": 256, "value_every": 16, "eval_every": 10, "momentum": 0.9,
              "weight_decay": 5e-4, "milestones": [0.5, 0.75], "gamma": 0.1, "precision": "fp32"},
}
NOTEBOOK_MODEL = {
    "width_mult": {"model": {"name": "resnet18"}, "lr": 0.1},  # Q1: width varies
    "lr": {"model": {"name": "tv_resnet18", "width": 1.0}},  # Q3: lr varies
}
#: The notebook runs' equivalent in this project: ``python train.py experiment=... <overrides>``.
NOTEBOOK_EXPERIMENT = {"width_mult": ["experiment=q1", "lam_index=0"], "lr": ["experiment=q3"]}
NOTEBOOK_KEYS = {"lambda": "lam", "noise_rate": "noise.rate", "seed": "seed", "width_mult": "model.width", "lr": "lr"}
NOTEBOOK_FILES = ("_results.json", "_checkpoint.json", "_results.csv")
#: Flattened keys that do not change what a run computes (``experiment``, not a config key,
#: may come with a notebook record).
IGNORED_KEYS = frozenset(NOT_COMPUTATIONAL) | {"experiment"}
#: Every dataset here has 10 classes; a diverged run with nothing measured is at chance level.
CLASSES = 10
CHANCE_ERROR = 1 - 1 / CLASSES


class AnalysisError(Exception):
    """A problem with the user's input, reported as one line by the command-line tools."""


def is_science_key(key: str) -> bool:
    return key not in IGNORED_KEYS and not key.startswith(("hydra.", "lam_table."))


@dataclass
class CollectReport:
    """What :func:`collect` found, besides the table."""

    roots: list[str]
    sources: dict = field(default_factory=dict)  # source -> runs kept
    completed: list[str] = field(default_factory=list)
    diverged: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (run, error message)
    in_progress: list[str] = field(default_factory=list)
    bad_files: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    duplicates: list[tuple[str, list[str]]] = field(default_factory=list)  # (kept, dropped)
    copies: int = 0  # one notebook run in several of its folder's files (read once)
    config_keys: list[str] = field(default_factory=list)
    varying_keys: list[str] = field(default_factory=list)
    constant_keys: dict = field(default_factory=dict)

    @property
    def n_runs(self) -> int:
        return len(self.completed) + len(self.diverged)

    def skipped(self) -> str:
        return (f"{len(self.failed)} failed, {len(self.in_progress)} in progress or interrupted, "
                f"{len(self.bad_files)} unreadable, {sum(len(d) for _, d in self.duplicates)} duplicate(s)")

    def summary(self) -> str:
        src = ", ".join(f"{n} from {s}" for s, n in sorted(self.sources.items()))
        return (f"collected {self.n_runs} runs ({len(self.completed)} completed, {len(self.diverged)} diverged; "
                f"{src or 'none'}) from {len(self.roots)} folder(s); skipped: {self.skipped()}")

    def lines(self, max_items: int = 20) -> list[str]:
        """The summary and every problem found, by path."""
        out = [self.summary()]
        if self.copies:
            out.append(f"{self.copies} notebook run(s) appear in several files of their folder (read once)")
        for title, items in (
            ("unreadable files (fix or delete them):", [f"{p}: {why}" for p, why in self.bad_files]),
            ("duplicate runs of one config (kept the newest file):",
             [f"kept {k}; dropped {', '.join(d)}" for k, d in self.duplicates]),
            ("failed runs:", [f"{d}: {msg or 'no message'}" for d, msg in self.failed]),
            ("diverged runs:", self.diverged),
            ("in progress or interrupted (no result.json yet):", self.in_progress),
        ):
            if items:
                out += [title, *(f"  {it}" for it in items[:max_items])]
                out += [f"  ... and {len(items) - max_items} more"] if len(items) > max_items else []
        return out


def flatten(mapping: dict, prefix: str = "") -> dict:
    """``{"model": {"width": 1}}`` -> ``{"model.width": 1}``; lists become JSON text."""
    out = {}
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, (list, tuple, dict)) else value
    return out


def _read_json(path: str):
    """The parsed JSON, or raise ValueError saying why it cannot be used."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ValueError(f"cannot read ({e.strerror})") from None
    if not raw.strip():
        raise ValueError("empty file (half-written?)")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("not UTF-8 text (corrupt)") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        if e.pos >= len(text.rstrip()) - 1 or e.msg.startswith("Unterminated string"):
            raise ValueError(f"JSON ends early at line {e.lineno} (half-written?)") from None
        raise ValueError(f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None


def _dgl_record(path: str) -> dict:
    record = _read_json(path)
    if not isinstance(record, dict):
        raise ValueError(f"not a JSON object (a {type(record).__name__})")  # noqa: TRY004 (one message type)
    if record.get("status") not in STATUSES:
        raise ValueError(f"unknown status {record.get('status')!r} (expected one of {', '.join(STATUSES)})")
    if record["status"] != "failed" and not isinstance(record.get("config"), dict):
        raise ValueError("no 'config' mapping")
    return record


def is_notebook_record(r) -> bool:
    return (isinstance(r, dict) and "status" not in r and {"lambda", "noise_rate", "seed"} <= set(r)
            and ("width_mult" in r or "lr" in r))


def _notebook_kind(record: dict) -> str:
    """``width_mult`` for a Q1 record (width varies), ``lr`` for a Q3 one."""
    return "width_mult" if "width_mult" in record else "lr"


def _holds_notebook_records(path: str) -> bool:
    """A JSON file whose record(s) have only the notebooks' fields (no ``status``): a notebook
    record whatever the file's name, ``result.json`` included."""
    try:
        data = _read_json(path)
    except ValueError:
        return False
    records = data if isinstance(data, list) else [data]
    return bool(records) and all(is_notebook_record(r) for r in records)


def _notebook_records(path: str) -> list[dict]:
    """The records of one notebook file (results / checkpoint list, results CSV, one record)."""
    if path.endswith(".csv"):
        try:
            df = pd.read_csv(path)
        except (OSError, ValueError) as e:
            raise ValueError(f"not a readable CSV ({e})") from None
        records = [{k: v for k, v in r.items() if not (isinstance(v, float) and math.isnan(v))}
                   for r in df.to_dict("records")]
    else:
        data = _read_json(path)
        records = data if isinstance(data, list) else [data]
    bad = [i for i, r in enumerate(records) if not is_notebook_record(r)]
    if bad:
        raise ValueError(f"record {bad[0]} is not a notebook record (needs lambda, noise_rate, seed, width_mult or lr)")
    return records


def _notebook_config(record: dict, params: dict) -> dict:
    """The config a notebook run had: the notebook's constants, its config.json, the record."""
    cfg = json.loads(json.dumps(NOTEBOOK_CONFIG))
    for k, v in NOTEBOOK_MODEL[_notebook_kind(record)].items():
        cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
    for k, v in (("epochs", "epochs"), ("batch_size", "batch_size"), ("K", "value_every")):
        if k in params:
            cfg["train"][v] = params[k]
    if "lr" in params:
        cfg["lr"] = params["lr"]
    flat = flatten(cfg)
    flat.update({NOTEBOOK_KEYS[k]: record[k] for k in NOTEBOOK_KEYS if k in record})
    return flat


def _notebook_overrides(record: dict) -> list[str]:
    keys = [f"{NOTEBOOK_KEYS[k]}={record[k]}" for k in NOTEBOOK_KEYS if k in record]
    return NOTEBOOK_EXPERIMENT[_notebook_kind(record)] + keys


def _notebook_params(folder: str, name: str) -> dict:
    """``parameters`` of ``<EXP_NAME>_config.json`` next to a notebook file, if any."""
    for stem in (name.rsplit("_results", 1)[0], name.rsplit("_checkpoint", 1)[0]):
        try:
            return dict(_read_json(os.path.join(folder, f"{stem}_config.json")).get("parameters", {}))
        except (ValueError, AttributeError):
            continue
    return {}


def _fields(record: dict) -> dict:
    out = {}
    for key, value in record.items():
        if key in ("config", "history"):
            continue
        out[key] = json.dumps(value) if isinstance(value, (dict, list, tuple)) else value
    for kind in ("best", "test"):  # *_error = 1 - *_acc where only the accuracy is recorded
        if out.get(f"{kind}_error") is None and isinstance(out.get(f"{kind}_acc"), (int, float)):
            out[f"{kind}_error"] = 1.0 - out[f"{kind}_acc"]
    return out


def collect(paths, *, all_keys: bool = False) -> tuple[pd.DataFrame, CollectReport]:
    """Read every run under ``paths`` (folders searched recursively, or single files).

    Returns the table (one row per usable run, by default only the config keys that vary
    as columns) and a :class:`CollectReport`. Raises :class:`AnalysisError` for a missing path.
    """
    paths = [os.fspath(p) for p in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    for p in paths:
        if not os.path.exists(p):
            raise AnalysisError(f"no such file or folder: {p}")
    report = CollectReport(roots=paths)
    rows = [row for folder, name in _files(paths, report) for row in _read(folder, name, report)]
    return _table(_newest(rows, report), report, all_keys)


def _files(paths, report: CollectReport):
    """(folder, name) of every JSON and CSV file under ``paths``, each once; folders with a
    run's marks but no result.json go to ``report.in_progress``."""
    seen = set()
    for root in paths:
        single = [(os.path.dirname(os.path.abspath(root)), [], [os.path.basename(root)])]
        for folder, dirnames, filenames in single if os.path.isfile(root) else os.walk(root):
            names = set(filenames) | set(dirnames)
            dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__")))  # never Hydra's folders
            for name in sorted(filenames):
                if name.endswith((".json", ".csv")) and os.path.realpath(os.path.join(folder, name)) not in seen:
                    seen.add(os.path.realpath(os.path.join(folder, name)))
                    yield folder, name
            started = "result.json" not in filenames and any(m in names for m in RUN_MARKERS)
            if started and os.path.realpath(folder) not in seen:
                seen.add(os.path.realpath(folder))
                report.in_progress.append(folder)


def _row(run, source, path, cfg, record, rank, key) -> dict:
    """One run: its config (flat), the record's fields, and what :func:`_newest` sorts by:
    ``key`` (runs with one key are one run), the file's folder, rank (0: a dgl run, else
    the notebook file's preference) and modification time; and its science config keys."""
    row = {"run_dir": run, "source": source, "status": record.get("status", "completed"), **cfg}
    row.update({k: v for k, v in _fields(record).items() if k not in cfg and k not in row})
    row.update(_key=key, _science_keys=[k for k in cfg if is_science_key(k)], _folder=os.path.dirname(path), _rank=rank)
    row["result_mtime"] = os.stat(path).st_mtime
    return row


def _read(folder: str, name: str, report: CollectReport) -> list[dict]:
    """The runs of one file (a result.json or a notebook file); problems go to ``report``.
    A run is identified by its record's fingerprint, else by its config's (dgl.identity)."""
    path = os.path.join(folder, name)
    if name == "result.json" and not _holds_notebook_records(path):
        try:
            record = _dgl_record(path)
        except ValueError as e:
            report.bad_files.append((path, str(e)))
            return []
        if record["status"] == "failed":
            report.failed.append((folder, str(record.get("error") or "").strip()))
            return []
        key = record.get("fingerprint") or fingerprint(record["config"])
        return [_row(folder, "dgl run", path, flatten(record["config"]), record, 0, key)]
    notebook_file = name.endswith(NOTEBOOK_FILES) or name == "result.json"
    if not (notebook_file or name.endswith(".json")) or name.endswith("_config.json"):
        return []
    try:
        records = _notebook_records(path)
    except ValueError as e:
        if notebook_file:  # any other JSON file may be something else: only notebook files are reported
            report.bad_files.append((path, str(e)))
        return []
    params = _notebook_params(folder, name)
    kind = next((s for s in NOTEBOOK_FILES if name.endswith(s)), None)
    source, rank = (f"notebook {kind.strip('_')}", 1 + NOTEBOOK_FILES.index(kind)) if kind else ("notebook record", 1)
    rows = []
    for i, r in enumerate(records):
        run = f"{path}#{r.get('experiment_id', i)}" if len(records) > 1 or kind else path
        cfg = _notebook_config(r, params)  # flat: fingerprint() hashes all of it (no key here is left out)
        rows.append(_row(run, source, path, cfg, {**r, "overrides": _notebook_overrides(r)}, rank, fingerprint(cfg)))
    return rows


def _newest(rows: list[dict], report: CollectReport) -> list[dict]:
    """One row per run: copies of one notebook run in its folder's files are read once; other
    duplicates keep the newest file and are listed in ``report``, which also counts the runs."""
    groups = defaultdict(list)
    for row in rows:
        groups[row["_key"]].append(row)
    kept = []
    for group in groups.values():
        first = {}  # a notebook folder's results.json, else its checkpoint, else its CSV
        for r in sorted(group, key=lambda r: r["_rank"]):
            if r["_rank"] and r["_folder"] in first:
                report.copies += 1
            else:
                first[r["_folder"] if r["_rank"] else id(r)] = r
        group = sorted(first.values(), key=lambda r: (r["result_mtime"], r["run_dir"]))
        kept.append(group[-1])
        if len(group) > 1:
            report.duplicates.append((group[-1]["run_dir"], [r["run_dir"] for r in group[:-1]]))
    for lst in (report.duplicates, report.failed, report.in_progress, report.bad_files):
        lst.sort()
    kept.sort(key=lambda r: r["run_dir"])
    for r in kept:
        (report.diverged if r["status"] == "diverged" else report.completed).append(r["run_dir"])
        report.sources[r["source"]] = report.sources.get(r["source"], 0) + 1
    return kept


def _table(kept: list[dict], report: CollectReport, all_keys: bool) -> tuple[pd.DataFrame, CollectReport]:
    """The table of the kept runs: run, source, status, the config keys (those that vary, or
    all), the record's fields; ``report`` learns which config keys vary."""
    table = pd.DataFrame(kept).drop(columns=["_key", "_science_keys", "_folder", "_rank"], errors="ignore")
    if table.empty:
        return table, report
    cfg_keys = sorted({k for r in kept for k in r["_science_keys"]} | {k for r in kept for k in r if k in IGNORED_KEYS})
    for k in cfg_keys:
        if table[k].astype(str).nunique(dropna=False) > 1:
            report.varying_keys.append(k)
        else:
            report.constant_keys[k] = table[k].iloc[0]
    report.config_keys = cfg_keys if all_keys else report.varying_keys
    rest = [c for c in table.columns if c not in cfg_keys and c not in ("run_dir", "source", "status", "result_mtime")]
    return table[["run_dir", "source", "status", *report.config_keys, *rest, "result_mtime"]], report


def select(table: pd.DataFrame, metric: str, diverged: str,
           chance: float = CHANCE_ERROR) -> tuple[pd.DataFrame, list[str]]:
    """The runs an analysis uses, with the analysed value in column ``y``, and notes on what was
    done: diverged runs counted (the recorded value, or ``chance`` where nothing was measured)
    or left out; runs whose value is missing, not a number, NaN or infinite left out by path."""
    table, notes = table.copy(), []
    raw = table[metric] if metric in table else pd.Series([None] * len(table), index=table.index)
    y = pd.to_numeric(raw, errors="coerce").astype(float)
    div = (table["status"] == "diverged").to_numpy()
    if div.any() and diverged == "exclude":
        notes.append(f"diverged runs: {int(div.sum())} left out (--diverged exclude)")
        table, raw, y, div = table[~div], raw[~div], y[~div], div[~div]
    elif div.any():
        unmeasured = div & ~np.isfinite(y.to_numpy())
        if metric == "test_error":  # the final model of a diverged run predicts one class
            unmeasured = div
        if metric.endswith("_error"):
            y[unmeasured] = chance
        notes.append(f"diverged runs: {int(div.sum())} counted as real outcomes: {metric} as measured before the "
                     f"divergence, chance level {chance:.2f} where nothing was measured ({int(unmeasured.sum())} "
                     "run(s)); --diverged exclude leaves them out")
    bad = ~np.isfinite(y.to_numpy())
    if bad.any():
        what = [f"{d} ({metric}={v!r})" if v is not None and not (isinstance(v, float) and math.isnan(v))
                else f"{d} (no {metric})" for d, v in zip(table["run_dir"][bad], raw[bad])]
        notes.append(f"WARNING: {int(bad.sum())} run(s) left out: {metric} is missing, not a number, NaN or "
                     f"infinite: " + "; ".join(what[:20]) + (" ..." if len(what) > 20 else ""))
    return table.assign(y=y.to_numpy())[~bad], notes


def pooled_keys(df: pd.DataFrame, group_key, keys: list[str], config_keys: list[str]) -> dict:
    """Science config keys, other than ``keys`` and the seed, that vary within one group of
    ``group_key`` (a panel): the runs compared there come from different experiments."""
    others = [k for k in config_keys if k in df and k not in keys and k != "seed" and is_science_key(k)]
    if not others or df.empty:
        return {}
    groups = df.groupby(group_key, dropna=False) if group_key else [(None, df)]
    bad = {k for _, g in groups for k in others if g[k].astype(str).nunique(dropna=False) > 1}
    return {k: sorted(df[k].astype(str).unique().tolist()) for k in sorted(bad)}
