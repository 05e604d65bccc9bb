#!/usr/bin/env bash
# Protocol v3 in the background (docs/protocol_v3.md): the dev sweep, then the grid (`make v3-minilm`), committing
# every finished cell as it lands, so the work survives a lost session and continues on a fresh clone.
#
#   nohup bash scripts/v3_background.sh >> results/v3-minilm.log 2>&1 &
#
# Every finished cell folder -- sweep cells <out>/sweep/<arm>/<setting>/<lang>/ and grid cells
# <out>/runs/<lang>/<arm>/<cell>/ -- is `git add`-ed and committed once its done.json is written and the cell is
# compacted (its config.json stored as config.json.xz or .tree.xz: experiments/compact.py runs right after done.json), with
# the run's top-level records and blobs/. Commits name the cells and touch nothing but $V3_OUT (`git commit --
# $V3_OUT`: whatever else is staged stays staged). A re-run (or a fresh clone of the committed branch) resumes:
# the sweep and the grid read the cells that are there and train only the missing ones; a cell that was
# training when the run stopped restarts from its checkpoint or from scratch (checkpoints are not committed).
#
# Environment: BIN (default .venv/bin: `make` builds it), V3_OUT (default results/v3-minilm), V3_SELECT and V3_LANGS
# (the Makefile's defaults: ibo,swa,yor and the discovered family), WORKERS (grid processes, default 2),
# SWEEP_JOBS (sweep processes, default 2), SWEEP_THREADS (torch threads per sweep process, default 1), V3_DOC (the
# analysis document the grid's last step writes, default docs/results_v3.md, committed at the end),
# EVERY (seconds between commit checks, default 300), COMMIT (0: commit nothing, e.g. a dry run).
set -euo pipefail
cd "$(dirname "$0")/.."
V3_OUT=${V3_OUT:-results/v3-minilm}
V3_DOC=${V3_DOC:-docs/results_v3.md}
WORKERS=${WORKERS:-2}
SWEEP_JOBS=${SWEEP_JOBS:-2}
SWEEP_THREADS=${SWEEP_THREADS:-1}
EVERY=${EVERY:-300}
COMMIT=${COMMIT:-1}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1} TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1

log() { echo "[$(date -u +%FT%TZ)] $*"; }

# finished, compacted cells not committed yet (paths relative to the repository root), one per line
finished_cells() {
  [ -d "$V3_OUT" ] || return 0
  find "$V3_OUT" -name done.json -not -path "*/.cache/*" -not -path "*/blobs/*" | while read -r done; do
    cell=$(dirname "$done")
    case "$cell" in "$V3_OUT" | "$V3_OUT/sweep") continue ;; esac  # a whole run's marker, not a cell
    [ -e "$cell/config.json" ] && continue                             # not compacted yet (or still writing)
    git ls-files --error-unmatch "$done" > /dev/null 2>&1 && continue  # committed already
    echo "$cell"
  done | sort
}

commit_finished() {
  [ "$COMMIT" = 1 ] || return 0
  mapfile -t cells < <(finished_cells)
  # the run's own records (top level of the grid and the sweep), the shared blobs; never locks, logs, caches
  mapfile -t records < <(find "$V3_OUT" "$V3_OUT/sweep" -maxdepth 1 -type f \
    -not -name '.optical-lab.lock' -not -name '*.log' 2>/dev/null | sort -u)
  blobs=$(find "$V3_OUT" -type d -name blobs -not -path "*/.cache/*" 2>/dev/null || true)
  [ ${#cells[@]} -gt 0 ] || [ ${#records[@]} -gt 0 ] || return 0
  git add -- "${cells[@]}" "${records[@]}" $blobs
  git diff --cached --quiet -- "$V3_OUT" && return 0
  names=$(printf '%s\n' "${cells[@]}" | sed "s|^$V3_OUT/||" | head -n 12 | paste -sd ' ' -)
  more=$(( ${#cells[@]} > 12 ? ${#cells[@]} - 12 : 0 ))
  message="v3 ($V3_OUT): ${#cells[@]} finished cell(s) ${names:-(records only)}"
  [ "$more" -gt 0 ] && message="$message and $more more"
  git commit -q -m "$message" -- "$V3_OUT"
  log "committed: $message"
}

# run "$@" in the background, committing what lands every EVERY seconds until it exits; its exit status
watch() {
  "$@" &
  local pid=$!
  while kill -0 "$pid" 2> /dev/null; do
    sleep "$EVERY" &
    wait $! || true
    commit_finished
  done
  local status=0
  wait "$pid" || status=$?
  commit_finished
  return $status
}

log "protocol v3: sweep then grid into $V3_OUT (WORKERS=$WORKERS, SWEEP_JOBS=$SWEEP_JOBS); $(git rev-parse --short HEAD)"
commit_finished  # whatever a stopped run left finished
make_args=(V3_OUT="$V3_OUT" WORKERS="$WORKERS" SWEEP_JOBS="$SWEEP_JOBS" SWEEP_THREADS="$SWEEP_THREADS" V3_DOC="$V3_DOC"
  V3_EXTRA=--no-progress)
[ -n "${BIN:-}" ] && make_args+=(BIN="$BIN")
[ -n "${V3_SELECT:-}" ] && make_args+=(V3_SELECT="$V3_SELECT")
[ -n "${V3_LANGS:-}" ] && make_args+=(V3_LANGS="$V3_LANGS")
log "sweep: make sweep-v3-minilm"
watch make --no-print-directory sweep-v3-minilm "${make_args[@]}"
log "grid: make v3-minilm"
watch make --no-print-directory v3-minilm "${make_args[@]}"
# the registered analysis (`make v3-minilm` ends with `report v3`): analysis.json is a record of $V3_OUT, the document
if [ "$COMMIT" = 1 ] && [ -f "$V3_DOC" ]; then
  git add -- "$V3_DOC" && git commit -q -m "v3 ($V3_OUT): the registered analysis, $V3_DOC" -- "$V3_DOC" && log "committed $V3_DOC"
fi
log "protocol v3 grid finished: $V3_OUT"
