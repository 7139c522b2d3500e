#!/usr/bin/env bash
# The end-to-end check of docs/VALIDATION.md, on one GPU machine with Fashion-MNIST:
# launch a sweep through the local launcher, kill the launcher part-way, look at the
# status, rerun the same command, check that nothing finished was redone, analyse.
#
#   bash scripts/gpu_validation.sh EXPERIMENT KILL_AFTER_S REPORT_DIR [extra overrides...]
#   bash scripts/gpu_validation.sh fmnist_scan 150 validation data.root=/usr/share/datasets/fashion-mnist
set -u
experiment=$1 kill_after=$2 report=$3
shift 3
mkdir -p "$report"
sweep=(python3 train.py -m "experiment=$experiment" hydra/launcher=local_gpus hydra.launcher.jobs_per_gpu=4 "$@")
sweep_dir=$(python3 -c "
import sys; sys.path.insert(0, '.'); import dgl
from tests.helpers import make_cfg; print('outputs/' + make_cfg(['experiment=$experiment']).name)")
echo "command: ${sweep[*]}" | tee "$report/commands.txt"
echo "sweep folder: $sweep_dir" | tee -a "$report/commands.txt"
nvidia-smi -L | tee "$report/gpu.txt"

t0=$(date +%s)
timeout -s KILL "$kill_after" "${sweep[@]}" > "$report/launch1.log" 2>&1
echo "launcher killed (SIGKILL) after ${kill_after}s, exit $?" | tee -a "$report/commands.txt"
sleep 5  # the jobs die with the launcher
python3 -m dgl.status "$sweep_dir" --all > "$report/status_after_kill.txt" 2>&1
head -3 "$report/status_after_kill.txt"
find "$sweep_dir" -name result.json -printf '%p %T@\n' | sort > "$report/results_before_rerun.txt"

t1=$(date +%s)
"${sweep[@]}" > "$report/launch2.log" 2>&1
echo "rerun exit $?" | tee -a "$report/commands.txt"
t2=$(date +%s)
python3 -m dgl.status "$sweep_dir" > "$report/status_after_rerun.txt" 2>&1
head -3 "$report/status_after_rerun.txt"
python3 - "$report/results_before_rerun.txt" <<'PY' | tee "$report/redo_check.txt"
import os, sys
before = dict(line.rsplit(" ", 1) for line in open(sys.argv[1]).read().splitlines())
redone = [p for p, t in before.items() if abs(os.path.getmtime(p) - float(t)) > 1e-3]
print(f"{len(before)} results finished before the kill; {len(redone)} of them rewritten by the rerun")
PY
grep -h "resumed from" "$sweep_dir"/*/train.log | wc -l | xargs echo "jobs resumed from a checkpoint:" | tee -a "$report/redo_check.txt"
echo "wall: first launch ${kill_after}s (killed), rerun $((t2 - t1))s, total $((t2 - t0))s" | tee -a "$report/commands.txt"
