"""Where sweeps and runs stand:  python -m dgl.status OUTPUT_DIR [--all]

For each sweep folder under OUTPUT_DIR: how many jobs are completed, diverged, failed,
running, interrupted (started, not running now: a rerun resumes them) or missing (never
started), the overrides of the jobs still to do, and the time left estimated from the
completed jobs (job folders there from an earlier sweep into the same folder are counted
apart); then the same for the single runs (`python train.py ...` without -m).
A damaged file (multirun.yaml, overrides.yaml) is named in one line and the rest is shown.
Reads only; never writes to the output folders.
"""

import argparse
import statistics
import sys
from pathlib import Path

from dgl.identity import deterministic, job_key
from dgl.sweeps import STATES, Damaged, runs_table, sweep_folders, sweep_table


def _duration(seconds):
    h, rest = divmod(int(seconds), 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


def _count(n, unit):
    return f"{n} {unit}{'' if n == 1 else 's'}"


def report(title, rows, show_all=False, out=None, unit="job"):
    out = out or sys.stdout
    counts = {s: 0 for s in STATES}
    for _, _, state, _ in rows:
        counts[state] = counts.get(state, 0) + 1
    print(f"{title}: {_count(len(rows), unit)} | " + " | ".join(f"{n} {s}" for s, n in counts.items() if n), file=out)
    times = [r["time_seconds"] for _, _, s, r in rows if s == "completed" and r.get("time_seconds")]
    left = sum(counts.get(s, 0) for s in ("running", "interrupted", "missing", "failed"))
    if times and left:
        per_job = statistics.median(times)
        print(f"  time left: {_count(left, unit)} x {_duration(per_job)} (median of {len(times)} completed) = "
              f"{_duration(left * per_job)} of one GPU", file=out)
    kernels = [deterministic(r.get("config") or {}) for _, _, s, r in rows
               if s in ("completed", "diverged") and isinstance(r, dict)]
    if len(set(kernels)) > 1:
        print(f"  mixed kernels: {sum(kernels)} finished with train.deterministic=true, "
              f"{len(kernels) - sum(kernels)} with false (or from before the key): their numbers are "
              f"not all reproducible", file=out)
    for overrides, job_dir, state, result in rows:
        if state == "failed":
            print(f"  failed      {' '.join(overrides)}: {result.get('error')}", file=out)
    todo = [(o, s) for o, _, s, _ in rows if s in ("missing", "interrupted", "running", "unreadable")]
    for overrides, state in todo if show_all else todo[:10]:
        print(f"  {state:11s} {' '.join(overrides)}", file=out)
    if len(todo) > 10 and not show_all:
        print(f"  ... and {len(todo) - 10} more (--all lists them)", file=out)
    return counts


def adaptive_table(sweep_dir, damaged):
    """sweep_table for an adaptive sweep (hydra/sweeper=adaptive; None for any other): its jobs
    are the ones its rounds planned (adaptive.json), not its multirun.yaml's grid, each found by
    its overrides without the place and speed keys (as the sweeper finds them)."""
    import json

    from dgl.sweeps import _row, existing_jobs

    path = Path(sweep_dir) / "adaptive.json"
    if not path.exists():
        return None
    try:
        state = json.loads(path.read_text())
        planned = [list(o) for r in state["rounds"] for o in r.get("overrides", [])]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise Damaged(f"{path}: unreadable ({e})") from None
    rounds = state["rounds"]
    last = rounds[-1] if rounds else {}
    print(f"{sweep_dir}: adaptive sweep, {len(rounds)} rounds decided, {len(planned)} jobs planned; "
          f"{'stopped: ' + state['stop'] if state.get('stop') else 'going on (a rerun continues it)'}"
          + (f"\n  last: {last['line']}" if last.get("line") else ""))
    existing = existing_jobs(sweep_dir, damaged)
    latest = {job_key(o): d for o, d in existing}
    rows = [_row(o, latest.get(job_key(o))) for o in planned]
    used = {d for _, d, _, _ in rows}
    return rows, [_row(o, d) for o, d in existing if d not in used]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output_dir", nargs="?", default="outputs")
    ap.add_argument("--all", action="store_true", help="list every job still to do")
    args = ap.parse_args(argv)
    root = Path(args.output_dir)
    if not root.exists():
        sys.exit(f"error: {root} does not exist")
    sweeps, runs_damaged = sweep_folders(root), []
    runs = runs_table(root, runs_damaged)
    if not sweeps and not runs:
        sys.exit(f"error: no sweep folders (with multirun.yaml) or runs (with result.json or .hydra/) under {root}")
    for sweep_dir in sweeps:
        damaged = []
        try:
            adaptive = adaptive_table(sweep_dir, damaged)
            rows, earlier = adaptive or sweep_table(sweep_dir, damaged)
            report(sweep_dir, rows, args.all)
            if earlier:
                report(f"{sweep_dir} (not in its multirun.yaml: from an earlier sweep into this folder)",
                       earlier, args.all)
        except Damaged as e:
            damaged.append(str(e))
        for line in damaged:
            print(f"damaged: {line}")
    if runs:
        report(f"{root} (single runs)", runs, args.all, unit="run")
    for line in runs_damaged:
        print(f"damaged: {line}")


if __name__ == "__main__":
    main()
