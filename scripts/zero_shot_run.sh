#!/usr/bin/env bash
# One zero-shot evaluation as the committed suite results were made: `/usr/bin/time -v` around the
# command, the 1-minute load average sampled every 30 s beside it, summary.md re-rendered with both.
# usage: scripts/zero_shot_run.sh OUT_FOLDER optical-lab-evaluate-arguments...
#   e.g. scripts/zero_shot_run.sh results/afriqa-tico-zero-shot-minilm --tasks afriqa-passages,afriqa-questions,tico-sentences --langs all
set -euo pipefail
out=$1; shift
mkdir -p "$out"
python=${PYTHON:-python}
( while true; do echo "$(date -u +%H:%M:%S) $(cat /proc/loadavg)" >> "$out/loadavg.log"; sleep 30; done ) &
sampler=$!
trap 'kill $sampler' EXIT
/usr/bin/time -v -o "$out/time_v.txt" "$python" -m optical_lab.cli evaluate "$@" --out "$out"
"$python" -m optical_lab.cli report summary "$out"
find "$out" -name '*.run' -delete  # TREC runs are not committed (.gitignore); per-query CSVs are
