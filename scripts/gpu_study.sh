#!/usr/bin/env bash
# One capped part of a GPU study (docs/VALIDATION.md): run what is still missing of a sweep
# for at most CAP_S seconds and archive what finished, so a study longer than one GPU
# allocation is resumable across GPU allocations.
#
#   bash scripts/gpu_study.sh CAP_S EXPERIMENT [overrides...]
#
# The finished runs live in git under $KEEP_DIR/<sweep>/<job>/ (default docs/validation/runs) (result.json,
# metrics.csv, config.yaml). They are copied into outputs/<sweep>/ first, so the launcher
# finds them finished and runs only the rest; at the end every finished run goes to
# $OUT/<sweep>.tar.gz (unpack it into docs/validation/runs/ and commit). Several sweeps may run
# at once, each in the background with its own cap: their jobs share the GPUs, and one sweep's
# idle slots (an adaptive round's last runs) go to the others.
set -u
cap=$1 experiment=$2
shift 2
# the sweep's name, from the overrides that are neither hydra's nor swept
sweep=$(python3 -c "import sys; from dgl.config import compose
from hydra.core.override_parser.overrides_parser import OverridesParser
fixed = [o.input_line for o in OverridesParser.create().parse_overrides(sys.argv[1:])
         if not o.is_sweep_override() and not o.key_or_group.startswith('hydra.')]
print(compose(['experiment=$experiment', *fixed]).name)" "$@") || exit 1
kept=${KEEP_DIR:-docs/validation/runs}/$sweep
mkdir -p "outputs/$sweep" "${OUT:-/tmp}"
[ -d "$kept" ] && cp -r "$kept"/. "outputs/$sweep"/
echo "$sweep: $(find "outputs/$sweep" -name result.json | wc -l) runs already finished"
# SIGINT at the cap: the launcher stops its jobs; their checkpoints stay on this machine only
timeout -s INT "$cap" python3 train.py -m "experiment=$experiment" hydra/launcher=local_gpus "$@" \
  > "${OUT:-/tmp}/$sweep.log" 2>&1
echo "launcher exit $? after at most ${cap}s"
python3 -m dgl.status "outputs/$sweep" > "${OUT:-/tmp}/$sweep.status.txt" 2>&1
head -3 "${OUT:-/tmp}/$sweep.status.txt"
(cd outputs && find "$sweep" -name result.json -exec grep -l '"status": "\(completed\|diverged\)"' {} + \
  | xargs -r -n1 dirname | while read -r d; do ls "$d"/result.json "$d"/metrics.csv "$d"/config.yaml; done \
  | cat - <(ls "$sweep"/adaptive.json 2>/dev/null) | tar czf "${OUT:-/tmp}/$sweep.tar.gz" -T -)
tar tzf "${OUT:-/tmp}/$sweep.tar.gz" | grep -c result.json | xargs echo "archived runs:"
