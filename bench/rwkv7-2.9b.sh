#!/bin/sh
# Generation / prompt speed of RWKV-7 2.9B's real shape (n_embd 2560, 32
# layers, vocab 65536) in Q8_0, with random weights written by flatline
# itself (`flatline synth`), so no download is needed. Prints flatline's
# figures and, when LLAMA_BENCH points to a llama-bench binary, llama.cpp's
# on the same file for a ratio measured in the same run.
#
#   bench/rwkv7-2.9b.sh                 # flatline only
#   LLAMA_BENCH=/path/to/llama-bench bench/rwkv7-2.9b.sh
#   TYPE=q4_0 THREADS=2 bench/rwkv7-2.9b.sh --json
set -eu
cd "$(dirname "$0")/.."
BIN=${FLATLINE:-build/flatline}
TYPE=${TYPE:-q8_0}
THREADS=${THREADS:-2}
DIR=${BENCH_DIR:-/tmp/flatline-bench}
MODEL="$DIR/rwkv7-2.9b-$TYPE.gguf"
mkdir -p "$DIR"
if [ ! -f "$MODEL" ]; then
  echo "writing $MODEL (random weights, about 3 GB for q8_0)..." >&2
  "$BIN" synth --arch rwkv7 --preset 2.9b --type "$TYPE" -o "$MODEL"
fi
"$BIN" bench "$MODEL" -p 512 -n 128 -r 3 -t "$THREADS" "$@"
if [ -n "${LLAMA_BENCH:-}" ]; then
  "$LLAMA_BENCH" -m "$MODEL" -p 512 -n 128 -r 3 -t "$THREADS"
fi
