#!/bin/sh
# The 10-turn beekeeping conversation (issue #4) for RWKV-7 2.9B and Gemma 3
# 4B side by side, both Q8_0 with random weights (files as in
# depth-gemma3-vs-rwkv7.sh), under a memory budget too small for Gemma's
# default 4096-token context, so its last turn shows the context policy.
#
#   bench/turns.sh                          # refuse (default policy)
#   bench/turns.sh --context-overflow drop-oldest
#   BUDGET=6G N_PREDICT=64 bench/turns.sh --json   (extra arguments go to bench turns)
# Figures: BENCHMARKS.md ("The 10-turn conversation").
set -eu
cd "$(dirname "$0")/.."
BIN=${FLATLINE:-build/flatline}
THREADS=${THREADS:-2}
BUDGET=${BUDGET:-3.95G}
N_PREDICT=${N_PREDICT:-128}
DIR=${BENCH_DIR:-/tmp/flatline-bench}
GEMMA="$DIR/gemma3-4b-q8_0.gguf"
RWKV="$DIR/rwkv7-2.9b-q8_0.gguf"
if [ ! -f "$GEMMA" ] || [ ! -f "$RWKV" ]; then
  echo "model files missing: run bench/depth-gemma3-vs-rwkv7.sh once (it writes them to $DIR)" >&2
  exit 1
fi
"$BIN" bench turns "$RWKV" "$GEMMA" -n "$N_PREDICT" -t "$THREADS" --max-memory "$BUDGET" "$@"
