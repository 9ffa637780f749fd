#!/bin/sh
# Generation speed at growing context depth (like llama-bench -d): a
# transformer with the real shape of Gemma 3 4B (KV cache grows) next to
# RWKV-7 2.9B (fixed state), both Q8_0 with random weights written here, so
# no download is needed. With LLAMA_BENCH set, llama.cpp's figures on the
# same Gemma file follow, for a ratio measured in the same run.
#
#   bench/depth-gemma3-vs-rwkv7.sh
#   DEPTHS=0,2048,4096 THREADS=2 LLAMA_BENCH=/path/to/llama-bench bench/depth-gemma3-vs-rwkv7.sh
# Figures: BENCHMARKS.md ("Flat recurrent state vs growing KV cache").
set -eu
cd "$(dirname "$0")/.."
BIN=${FLATLINE:-build/flatline}
THREADS=${THREADS:-2}
DEPTHS=${DEPTHS:-0,2048,4096}
DIR=${BENCH_DIR:-/tmp/flatline-bench}
GEMMA="$DIR/gemma3-4b-q8_0.gguf"
RWKV="$DIR/rwkv7-2.9b-q8_0.gguf"
mkdir -p "$DIR"
if [ ! -f "$GEMMA" ]; then
  echo "writing $GEMMA (random weights, 4.1 GB, a few minutes)..." >&2
  # flatline's own writer (bench/transformer/transformer_synth.py writes the
  # same shape but needs NumPy, which the install script does not install).
  "$BIN" synth --arch gemma3 --preset 4b --type q8_0 -o "$GEMMA"
fi
if [ ! -f "$RWKV" ]; then
  echo "writing $RWKV (random weights, 3.2 GB)..." >&2
  "$BIN" synth --arch rwkv7 --preset 2.9b --type q8_0 -o "$RWKV"
fi
"$BIN" bench "$RWKV" -p 128 -n 32 -r 2 -t "$THREADS" -d "$DEPTHS"
"$BIN" bench "$GEMMA" -p 128 -n 32 -r 2 -t "$THREADS" -d "$DEPTHS"
if [ -n "${LLAMA_BENCH:-}" ]; then
  "$LLAMA_BENCH" -m "$GEMMA" -p 128 -n 32 -r 2 -t "$THREADS" -d "$DEPTHS"
fi
