"""Where a sweep stands:  python -m dgl.status OUTPUT_DIR [--all]

For each sweep folder under OUTPUT_DIR: how many jobs are completed, diverged, failed,
running, interrupted (started, not running now: a rerun resumes them) or missing (never
started), the overrides of the jobs still to do, and the time left estimated from the
completed jobs. Reads only; never writes to the output folders.
"""

import argparse
import statistics
import sys
from pathlib import Path

from dgl.sweeps import STATES, sweep_folders, sweep_table


def _duration(seconds):
    h, rest = divmod(int(seconds), 3600)
    return f"{h}h{rest // 60:02d}m" if h else f"{rest // 60}m{rest % 60:02d}s"


def report(sweep_dir, show_all=False, out=None):
    out = out or sys.stdout
    rows = sweep_table(sweep_dir)
    counts = {s: 0 for s in STATES}
    for _, _, state, _ in rows:
        counts[state] = counts.get(state, 0) + 1
    print(f"{sweep_dir}: {len(rows)} jobs | " + " | ".join(f"{n} {s}" for s, n in counts.items() if n), file=out)
    times = [r["time_seconds"] for _, _, s, r in rows if s == "completed" and r.get("time_seconds")]
    left = sum(counts.get(s, 0) for s in ("running", "interrupted", "missing", "failed"))
    if times and left:
        per_job = statistics.median(times)
        print(f"  time left: {left} jobs x {_duration(per_job)} (median of {len(times)} completed) = "
              f"{_duration(left * per_job)} of one GPU", file=out)
    for overrides, job_dir, state, result in rows:
        if state == "failed":
            print(f"  failed      {' '.join(overrides)}: {result.get('error')}", file=out)
    todo = [(o, s) for o, _, s, _ in rows if s in ("missing", "interrupted", "running", "unreadable")]
    for overrides, state in todo if show_all else todo[:10]:
        print(f"  {state:11s} {' '.join(overrides)}", file=out)
    if len(todo) > 10 and not show_all:
        print(f"  ... and {len(todo) - 10} more (--all lists them)", file=out)
    return counts


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output_dir", nargs="?", default="outputs")
    ap.add_argument("--all", action="store_true", help="list every job still to do")
    args = ap.parse_args(argv)
    root = Path(args.output_dir)
    if not root.exists():
        sys.exit(f"error: {root} does not exist")
    sweeps = sweep_folders(root)
    if not sweeps:
        sys.exit(f"error: no sweep folders (with multirun.yaml) under {root}")
    for sweep_dir in sweeps:
        report(sweep_dir, args.all)


if __name__ == "__main__":
    main()
