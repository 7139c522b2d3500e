#!/usr/bin/env bash
# The end-to-end check of docs/VALIDATION.md, on one GPU machine with Fashion-MNIST:
# launch a sweep through the local launcher, kill the launcher part-way, look at the
# status, rerun the same command, check that nothing finished was redone, analyse.
# Every phase has a time cap, so the script always ends with its report written.
#
#   bash scripts/gpu_validation.sh EXPERIMENT KILL_AFTER_S RERUN_CAP_S REPORT_DIR [overrides...]
#   bash scripts/gpu_validation.sh fmnist_scan 100 330 validation data.root=/usr/share/datasets/fashion-mnist
set -u
experiment=$1 kill_after=$2 rerun_cap=$3 report=$4
shift 4
mkdir -p "$report"
sweep=(python3 train.py -m "experiment=$experiment" hydra/launcher=local_gpus "hydra.launcher.jobs_per_gpu=${JOBS_PER_GPU:-4}" "$@")
sweep_dir=outputs/$(python3 -c "
import sys; sys.path.insert(0, '.')
from tests.helpers import make_cfg; print(make_cfg(['experiment=$experiment']).name)")
{ echo "command: ${sweep[*]}"; echo "sweep folder: $sweep_dir"; nvidia-smi -L; } | tee "$report/commands.txt"

t0=$(date +%s)
timeout -s KILL "$kill_after" "${sweep[@]}" > "$report/launch1.log" 2>&1
echo "launcher killed (SIGKILL) after ${kill_after}s, exit $?" | tee -a "$report/commands.txt"
sleep 5  # the jobs die with the launcher
python3 -m dgl.status "$sweep_dir" --all > "$report/status_after_kill.txt" 2>&1
head -2 "$report/status_after_kill.txt"
find "$sweep_dir" -name result.json -printf '%p %T@\n' | sort > "$report/results_before_rerun.txt"

t1=$(date +%s)
timeout -s INT "$rerun_cap" "${sweep[@]}" > "$report/launch2.log" 2>&1
echo "rerun of the same command: exit $?, $(( $(date +%s) - t1 ))s (cap ${rerun_cap}s)" | tee -a "$report/commands.txt"
python3 -m dgl.status "$sweep_dir" > "$report/status_after_rerun.txt" 2>&1
head -2 "$report/status_after_rerun.txt"
python3 - "$report/results_before_rerun.txt" <<'PY' | tee "$report/redo_check.txt"
import os, sys
before = dict(line.rsplit(" ", 1) for line in open(sys.argv[1]).read().splitlines())
redone = [p for p, t in before.items() if abs(os.path.getmtime(p) - float(t)) > 1e-3]
print(f"{len(before)} results finished before the kill; {len(redone)} of them rewritten by the rerun")
PY
cat "$sweep_dir"/*/train.log | grep -c "resumed from" | xargs echo "jobs resumed from a checkpoint:" | tee -a "$report/redo_check.txt"
echo "wall: first launch ${kill_after}s (killed), total $(( $(date +%s) - t0 ))s" | tee -a "$report/commands.txt"

timeout 45 python3 -m analysis.variance_peak "$sweep_dir" --out "$report/variance_peak" > "$report/variance_peak.txt" 2>&1
timeout 45 python3 -m analysis.phase_boundary "$sweep_dir" --curve-key model.width --out "$report/phase_boundary" \
  > "$report/phase_boundary.txt" 2>&1
tail -25 "$report/variance_peak.txt"
tail -15 "$report/phase_boundary.txt"
