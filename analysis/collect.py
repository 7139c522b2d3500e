"""Turn output folders into one tidy table: one row per finished run.

``collect(paths)`` walks every folder recursively, reads each ``result.json`` (schema in
``docs/RUN_RECORD.md``) and returns ``(table, report)``:

- one row per usable run (status ``completed`` or ``diverged``) with ``run_dir``, ``status``,
  the run's config flattened with dots (``model.width``, ``noise.rate``, ``lam``, ``lr``,
  ``seed``, ``train.epochs``, ...), every field of the record except ``config`` and
  ``history`` (``width_mult``, ``noise_rate``, ``lambda``, ``best_error``, ...; ``overrides``
  joined with commas) and ``result_mtime``;
- by default only the config keys that vary between the runs are columns (``all_keys=True``
  keeps them all); the constant ones are listed in the report;
- failed runs and runs in progress (a folder with ``checkpoint.pt``, ``.hydra/``, ``.lock``,
  ``metrics.csv`` or ``labels.npz`` but no ``result.json``) are counted, not tabled;
- unreadable, half-written or malformed ``result.json`` files are reported by path;
- duplicates (the same config, ignoring keys that do not change what is computed, see
  ``NON_SCIENCE_KEYS``) keep the most recent ``result.json`` (file mtime) and report the rest.

Command line::

    python -m analysis.collect DIR... [--out table.csv] [--all-keys]

writes the table as CSV (and Parquet next to it where pyarrow is installed) and prints the
report. Default ``--out``: ``<first DIR>/analysis/runs.csv``.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections import defaultdict
from dataclasses import dataclass, field

import pandas as pd

#: Config keys that do not change what a run computes: runs that differ only in these are
#: duplicates. (The ones Hydra leaves out of the job folder name, plus ``data.download``.)
NON_SCIENCE_KEYS = frozenset(
    {
        "data.root",
        "data.download",
        "data.on_device",
        "train.device",
        "train.compile",
        "train.cuda_graphs",
        "train.progress",
        "train.checkpoint_every",
        "name",
        "experiment",
    }
)
NON_SCIENCE_PREFIXES = ("hydra.",)

#: Files or folders that mark a run folder whose run has started.
RUN_MARKERS = ("checkpoint.pt", ".hydra", ".lock", "metrics.csv", "labels.npz")
USABLE = ("completed", "diverged")
STATUSES = ("completed", "diverged", "failed")


class AnalysisError(Exception):
    """A problem with the user's input, reported as one line by the command-line tools."""


def is_science_key(key: str) -> bool:
    return key not in NON_SCIENCE_KEYS and not key.startswith(NON_SCIENCE_PREFIXES)


@dataclass
class CollectReport:
    """What :func:`collect` found, besides the table."""

    roots: list[str]
    n_result_files: int = 0
    completed: list[str] = field(default_factory=list)  # run dirs kept in the table
    diverged: list[str] = field(default_factory=list)  # run dirs kept in the table
    failed: list[tuple[str, str]] = field(default_factory=list)  # (run dir, error message)
    failed_superseded: list[str] = field(default_factory=list)  # failed, but rerun fine
    in_progress: list[str] = field(default_factory=list)
    bad_files: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    duplicates: list[tuple[str, list[str]]] = field(default_factory=list)  # (kept, dropped)
    inconsistent: list[str] = field(default_factory=list)
    config_keys: list[str] = field(default_factory=list)  # config columns in the table
    varying_keys: list[str] = field(default_factory=list)
    constant_keys: dict = field(default_factory=dict)

    @property
    def n_runs(self) -> int:
        return len(self.completed) + len(self.diverged)

    @property
    def n_duplicates_dropped(self) -> int:
        return sum(len(d) for _, d in self.duplicates)

    def skipped(self) -> str:
        return (
            f"{len(self.failed)} failed, {len(self.in_progress)} in progress or interrupted, "
            f"{len(self.bad_files)} unreadable, {self.n_duplicates_dropped} duplicate(s)"
        )

    def summary(self) -> str:
        """One line: what was found and what was skipped."""
        return (
            f"collected {self.n_runs} runs ({len(self.completed)} completed, "
            f"{len(self.diverged)} diverged) from {len(self.roots)} folder(s); "
            f"skipped: {self.skipped()}"
        )

    def lines(self, max_items: int = 20) -> list[str]:
        """The summary and every problem found, by path."""

        def listing(title, items):
            if not items:
                return []
            out = [title]
            out += [f"  {it}" for it in items[:max_items]]
            if len(items) > max_items:
                out.append(f"  ... and {len(items) - max_items} more")
            return out

        out = [self.summary()]
        out += listing(
            "unreadable result files (fix or delete them):",
            [f"{p}: {why}" for p, why in self.bad_files],
        )
        out += listing(
            "duplicate runs of one config (kept the most recent result.json):",
            [f"kept {k}; dropped {', '.join(d)}" for k, d in self.duplicates],
        )
        superseded = set(self.failed_superseded)
        out += listing(
            "failed runs:",
            [
                f"{d}: {msg or 'no message'}" + (" (a rerun finished)" if d in superseded else "")
                for d, msg in self.failed
            ],
        )
        out += listing("diverged runs:", self.diverged)
        out += listing("in progress or interrupted (no result.json yet):", self.in_progress)
        out += listing("inconsistent records:", self.inconsistent)
        return out


def flatten(mapping: dict, prefix: str = "") -> dict:
    """``{"model": {"width": 1}}`` -> ``{"model.width": 1}``; lists become JSON text."""
    out = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            if value:
                out.update(flatten(value, name + "."))
            else:
                out[name] = "{}"
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps(value)
        else:
            out[name] = value
    return out


def _read_record(path: str) -> tuple[dict | None, str | None]:
    """The parsed record, or None and why it cannot be used."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        return None, f"cannot read ({e.strerror})"
    if not raw.strip():
        return None, "empty file (half-written?)"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None, "not UTF-8 text (corrupt)"
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        tail = len(text.rstrip())
        if e.pos >= tail - 1 or e.msg.startswith("Unterminated string"):
            return None, f"JSON ends early at line {e.lineno} (half-written?)"
        return None, f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno})"
    if not isinstance(record, dict):
        return None, f"not a JSON object (a {type(record).__name__})"
    status = record.get("status")
    if status not in STATUSES:
        return None, f"unknown status {status!r} (expected one of {', '.join(STATUSES)})"
    if status in USABLE and not isinstance(record.get("config"), dict):
        return None, "no 'config' mapping"
    return record, None


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) or (math.isnan(a) and math.isnan(b))
    return a == b


def _record_fields(record: dict) -> dict:
    out = {}
    for key, value in record.items():
        if key in ("config", "history"):
            continue
        if key == "overrides" and isinstance(value, list):
            value = ",".join(map(str, value))
        elif isinstance(value, (dict, list, tuple)):
            value = json.dumps(value)
        out[key] = value
    for kind in ("best", "test"):  # *_error = 1 - *_acc, where only the accuracy is recorded
        err, acc = f"{kind}_error", f"{kind}_acc"
        if out.get(err) is None and isinstance(out.get(acc), (int, float)):
            out[err] = 1.0 - out[acc]
    return out


def _walk(root: str):
    """Yield (folder, has_result, started) for every folder under root (root included)."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        names = set(filenames) | set(dirnames)
        has_result = "result.json" in filenames
        started = any(m in names for m in RUN_MARKERS)
        # never descend into Hydra's or any other hidden folder
        dirnames[:] = sorted(d for d in dirnames if not d.startswith((".", "__")))
        yield dirpath, has_result, started


def collect(paths, *, all_keys: bool = False) -> tuple[pd.DataFrame, CollectReport]:
    """Read every run under ``paths`` (folders, searched recursively, or result.json files).

    Returns the tidy table (one row per usable run) and a :class:`CollectReport`.
    Raises :class:`AnalysisError` when a path does not exist.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    paths = [os.fspath(p) for p in paths]
    report = CollectReport(roots=paths)
    for p in paths:
        if not os.path.exists(p):
            raise AnalysisError(f"no such file or folder: {p}")

    seen: set[str] = set()
    rows: list[dict] = []
    keys: list[tuple] = []
    cfg_names: list[set] = []
    failed_keys: dict[str, tuple] = {}

    def science_key(cfg_flat: dict) -> tuple:
        return tuple(
            sorted(
                (k, json.dumps(v, sort_keys=True, default=str))
                for k, v in cfg_flat.items()
                if is_science_key(k)
            )
        )

    def handle(run_dir: str):
        path = os.path.join(run_dir, "result.json")
        report.n_result_files += 1
        record, why = _read_record(path)
        if record is None:
            report.bad_files.append((path, why))
            return
        status = record["status"]
        cfg = flatten(record["config"]) if isinstance(record.get("config"), dict) else {}
        if status == "failed":
            report.failed.append((run_dir, str(record.get("error") or "").strip()))
            if cfg:
                failed_keys[run_dir] = science_key(cfg)
            return
        row = {"run_dir": run_dir, "status": status}
        row.update(cfg)
        for key, value in _record_fields(record).items():
            if key in ("run_dir", "status"):
                continue
            if key in cfg:
                if not _same(cfg[key], value):
                    row[f"result.{key}"] = value
                    report.inconsistent.append(
                        f"{path}: config {key}={cfg[key]!r} but record {key}={value!r}"
                    )
                continue
            row[key] = value
        try:
            row["result_mtime"] = os.stat(path).st_mtime
        except OSError:
            row["result_mtime"] = float("nan")
        rows.append(row)
        keys.append(science_key(cfg))
        cfg_names.append(set(cfg))

    for root in paths:
        if os.path.isfile(root):
            folders = [(os.path.dirname(os.path.abspath(root)), True, True)]
        else:
            folders = _walk(root)
        for folder, has_result, started in folders:
            real = os.path.realpath(folder)
            if real in seen:
                continue
            seen.add(real)
            if has_result:
                handle(folder)
            elif started:
                report.in_progress.append(folder)

    # duplicates: keep the newest result.json of each config
    groups: dict[tuple, list[int]] = defaultdict(list)
    for i, k in enumerate(keys):
        groups[k].append(i)
    keep: list[int] = []
    for idxs in groups.values():
        idxs = sorted(idxs, key=lambda i: (rows[i]["result_mtime"], rows[i]["run_dir"]))
        keep.append(idxs[-1])
        if len(idxs) > 1:
            report.duplicates.append(
                (rows[idxs[-1]]["run_dir"], [rows[i]["run_dir"] for i in idxs[:-1]])
            )
    report.duplicates.sort()
    usable_keys = set(groups)
    report.failed_superseded = sorted(d for d, k in failed_keys.items() if k in usable_keys)
    report.failed.sort()
    report.in_progress.sort()
    report.bad_files.sort()

    kept = sorted((rows[i] for i in keep), key=lambda r: r["run_dir"])
    for r in kept:
        (report.completed if r["status"] == "completed" else report.diverged).append(r["run_dir"])
    table = pd.DataFrame(kept)
    cfg_keys = sorted(set().union(*(cfg_names[i] for i in keep)) if keep else set())
    if table.empty:
        report.config_keys = []
        return table, report
    varying, constant = [], {}
    for k in cfg_keys:
        col = table[k] if k in table else pd.Series([None] * len(table))
        if col.nunique(dropna=False) > 1:
            varying.append(k)
        else:
            constant[k] = col.iloc[0]
    report.varying_keys = varying
    report.constant_keys = constant
    shown_cfg = cfg_keys if all_keys else varying
    report.config_keys = shown_cfg
    record_cols = [c for c in table.columns if c not in cfg_keys and c not in ("run_dir", "status")]
    record_cols = [c for c in record_cols if c != "result_mtime"] + ["result_mtime"]
    table = table[["run_dir", "status", *shown_cfg, *record_cols]]
    return table.reset_index(drop=True), report


def main(argv=None) -> int:
    from analysis import common

    parser = common.OneLineParser(
        prog="python -m analysis.collect",
        description="Collect result.json files under output folders into one table.",
    )
    parser.add_argument(
        "dirs", nargs="+", metavar="DIR", help="output folders (searched recursively)"
    )
    parser.add_argument("--out", help="CSV to write (default: <first DIR>/analysis/runs.csv)")
    parser.add_argument(
        "--all-keys", action="store_true", help="keep config keys that are the same in every run"
    )
    args = parser.parse_args(argv)

    def run():
        table, report = collect(args.dirs, all_keys=args.all_keys)
        if table.empty:
            raise AnalysisError(
                f"no finished runs found under {', '.join(args.dirs)} ({report.skipped()})"
            )
        print("\n".join(report.lines()))
        out = args.out or os.path.join(common.default_out_dir(args.dirs), "runs.csv")
        for path in common.write_table(table, out):
            print(f"wrote {path}")
        if report.constant_keys and not args.all_keys:
            fixed = ", ".join(f"{k}={v}" for k, v in report.constant_keys.items())
            print(f"same in every run (not columns; --all-keys keeps them): {fixed}")
        return 0

    return common.run_cli(parser.prog, run)


if __name__ == "__main__":
    # run the importable module's main, so that its AnalysisError is the one the CLI catches
    from analysis.collect import main as _main

    sys.exit(_main())
