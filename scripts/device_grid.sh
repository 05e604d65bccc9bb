#!/usr/bin/env bash
# Any registered grid (a Makefile grid variable: its sweep and its cells) on a lent GPU, many training processes
# sharing the device; only finished cells come back, and a call resumes from what is committed.
#
#   GRID=V2_MINILM OUTDIR=results/v2-minilm SWEEP="--lang hau --model minilm" bash scripts/device_grid.sh args
#       here: the compare arguments of the grid (`make -s print-V2_MINILM`), written to .devgrid/args
#   bash scripts/device_grid.sh run          # on the device (the call's command), with .devgrid carried
#   bash scripts/device_grid.sh land DIR     # here: the finished cells of DIR/results.tgz into the checkout
#
# `run` starts the sweep (when SWEEP is set and OUTDIR/sweep/done.json is not committed yet) with JOBS processes,
# then the grid's owner and JOBS-1 `compare --join` workers (experiments/workers.py: each cell under its own lock),
# until BUDGET seconds; every minute and at the end it packs into $OUT/results.tgz the finished cells only (a
# folder with done.json; they are compacted as they finish, experiments/compact.py), the run's top-level records
# and every blobs/ (the grid's, the sweep's) -- never a half-trained cell, checkpoint, cache or lock. Committed cells are served as
# they are (resume), so a second call continues where the first stopped.
#
# What a call carries must stay under 64 MiB (tracked + untracked files + carried paths): the compacted results
# are ~9 MiB (`git ls-files results | xargs du -bc`), the code ~3 MiB; a model or data too big for one call is
# put in place by an earlier call into /tmp (see scripts/device_v2_me5.sh: the machine stays warm between calls).
# `check_carry` refuses to start when the working tree and KIT exceed CARRY_LIMIT (default 56 MiB: room left).
#
# Environment: GRID (Makefile variable), OUTDIR, SWEEP (sweep arguments; empty: no sweep), JOBS (processes,
# default 8), THREADS (torch threads per process, default 2), BUDGET (seconds, default 500), EXTRA (extra
# compare/sweep flags, e.g. "--preset tiny --steps 2" for a dry run), PY, OUT, KIT (default .devgrid).
set -u
mode=${1:-run}
KIT=${KIT:-.devgrid}
PY=${PY:-python3}
OUT=${OUT:-/tmp/out}
JOBS=${JOBS:-8}
THREADS=${THREADS:-2}
BUDGET=${BUDGET:-500}
EXTRA=${EXTRA:-}
CARRY_LIMIT=${CARRY_LIMIT:-$((56 * 1024 * 1024))}
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
# a subcommand without the CLI's other subcommands (the explorers need ipywidgets, absent on a bare machine)
RUNSUB='import argparse, importlib, sys
m = importlib.import_module("optical_lab.experiments." + sys.argv[1])
p = argparse.ArgumentParser(); m.add_arguments(p); m.main(p.parse_args(sys.argv[2:]))'

check_carry() {  # bytes a call would carry: tracked and untracked (not ignored) files, plus the kit
  local bytes
  bytes=$( { git ls-files -z --cached --others --exclude-standard; find "$KIT" -type f -print0 2>/dev/null; } \
           | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
  echo "a call carries $((bytes / 1024 / 1024)) MiB (limit for this kit: $((CARRY_LIMIT / 1024 / 1024)) MiB)"
  [ "$bytes" -le "$CARRY_LIMIT" ] || { echo "too much to carry: compact results (optical-lab results compact)"; exit 5; }
}

if [ "$mode" = args ]; then  # here
  : "${GRID:?name the Makefile grid variable, e.g. GRID=V2_MINILM}" "${OUTDIR:?e.g. OUTDIR=results/v2-minilm}"
  mkdir -p "$KIT"
  case $KIT in /*) ;; *) grep -qx "/$KIT/" "$(git rev-parse --git-path info/exclude)" 2>/dev/null \
                          || echo "/$KIT/" >> "$(git rev-parse --git-path info/exclude)" ;; esac
  args=$(make -s "print-$GRID") || exit 2
  [ -n "$args" ] || { echo "no grid variable $GRID in the Makefile"; exit 2; }
  printf '%s\n' "$args" > "$KIT/args"
  printf '%s\n' "$OUTDIR" > "$KIT/outdir"
  printf '%s\n' "${SWEEP:-}" > "$KIT/sweep"
  echo "grid $GRID -> $OUTDIR: compare $args"
  check_carry
  exit 0
fi

if [ "$mode" = land ]; then  # here: a file lands unless its folder is already finished here (committed cells stay)
  src=${2:?the folder a device call returned, holding results.tgz}
  tmp=$(mktemp -d)
  tar -xzf "$src/results.tgz" -C "$tmp"
  (cd "$tmp" && find . -type f) | while read -r f; do
    [ -e "$(dirname "$f")/done.json" ] && continue
    mkdir -p "$(dirname "$f")" && cp "$tmp/$f" "$f"
  done
  rm -rf "$tmp"
  echo "landed from $src/results.tgz: $(find "$(cat "$KIT/outdir")" -name done.json | wc -l) finished cells here now"
  exit 0
fi

# ---------------------------------------------------------------- run (on the device)
T0=$(date +%s)
DEADLINE=$((T0 + BUDGET))
OUTDIR=$(cat "$KIT/outdir")
read -r -a GRID_ARGS < "$KIT/args"
read -r -a SWEEP_ARGS < "$KIT/sweep" || true
read -r -a EXTRA_ARGS <<< "$EXTRA"
mkdir -p "$OUT" "$OUTDIR"
log() { echo "[$(( $(date +%s) - T0 )) s] $*" | tee -a "$OUT/device.log"; }
left() { local s=$((DEADLINE - $(date +%s))); echo $((s > 1 ? s : 1)); }
command -v nvidia-smi > /dev/null && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee -a "$OUT/device.log"

snapshot() {  # finished cells only (and the run's records, the sweep's, blobs/), atomically into $OUT
  local tmp="$OUT/results.tgz.$BASHPID" list="$OUT/.list.$BASHPID"
  find "$OUTDIR" -name done.json -printf '%h\n' | sort -u > "$list.cells"
  { find "$OUTDIR" -maxdepth 2 -type f ! -name '*.pt' ! -name .optical-lab.lock -not -path '*/.cache/*'
    find "$OUTDIR" -path '*/blobs/*' -type f  # content cells name by hash: the grid's and the sweep's blobs/
    while read -r cell; do find "$cell" -maxdepth 1 -type f ! -name '*.pt' ! -name '*.run.gz' ! -name .optical-lab.lock; done \
      < "$list.cells"; } | sort -u > "$list"
  tar -czf "$tmp" --warning=no-file-changed --ignore-failed-read -T "$list"
  if [ $? -le 1 ]; then mv "$tmp" "$OUT/results.tgz"; else rm -f "$tmp"; fi
  rm -f "$list" "$list.cells"
}
( while sleep 60; do snapshot; done ) &
SNAP=$!

if [ ${#SWEEP_ARGS[@]} -gt 0 ] && [ ! -e "$OUTDIR/sweep/done.json" ]; then  # a committed sweep is only read
  log "sweep ($(left) s left)"
  timeout "$(left)" "$PY" -c "$RUNSUB" sweep "${SWEEP_ARGS[@]}" --out "$OUTDIR/sweep" --jobs "$JOBS" \
      --threads "$THREADS" --no-progress "${EXTRA_ARGS[@]}" > "$OUT/sweep.log" 2>&1
  log "sweep exit $?"
fi
if [ ${#SWEEP_ARGS[@]} -eq 0 ] || [ -e "$OUTDIR/sweep/done.json" ]; then
  log "grid ($(left) s left): owner + $((JOBS - 1)) --join workers"
  ARGS=("${GRID_ARGS[@]}" --out "$OUTDIR" --threads "$THREADS" --no-progress "${EXTRA_ARGS[@]}")
  timeout "$(left)" "$PY" -c "$RUNSUB" compare "${ARGS[@]}" > "$OUT/grid.log" 2>&1 &
  OWNER=$!
  WORKERS=()
  for i in $(seq 2 "$JOBS"); do
    timeout "$(left)" "$PY" -c "$RUNSUB" compare "${ARGS[@]}" --join --join-wait 300 > "$OUTDIR/worker$i.log" 2>&1 &
    WORKERS+=($!)
  done
  wait $OWNER
  log "grid owner exit $?"
  [ ${#WORKERS[@]} -eq 0 ] || wait "${WORKERS[@]}"  # never a bare wait: the snapshot loop never ends
fi
kill $SNAP 2>/dev/null; wait $SNAP 2>/dev/null
snapshot
log "done: $(find "$OUTDIR" -name done.json | wc -l) finished cells; results.tgz $(stat -c %s "$OUT/results.tgz") bytes"
