#!/bin/sh
# Masked-diffusion decoding at LLaDA-8B's shape (32 layers, 4096 wide, MHA,
# FFN 12288, vocab 126464; random weights written by `flatline synth`):
# wall time for GEN generated tokens at each of STEPS (block length 32),
# exact and with the approximate cache (--diffusion-cache REFRESH), next to
# llama.cpp's llama-diffusion-cli on the same file and an autoregressive
# Llama-3.1-8B-shaped model generating the same number of tokens.
#
#   bench/diffusion.sh
#   LLAMA_DIFFUSION=/path/llama-diffusion-cli LLAMA_BENCH=/path/llama-bench STEPS="16 32" bench/diffusion.sh
#   LAYERS=8 bench/diffusion.sh          # a quarter of the depth (same widths), 4x quicker
#
# Schedules: flatline's blocks are LLaDA's generate.py blocks (over the
# generated part). llama-diffusion-cli counts blocks over the whole
# max_length (prompt included) and runs steps/blocks passes in each, also in
# blocks that lie beyond the canvas' masks; to give it the same passes per
# generated block it is run with steps * (prompt + gen) / gen steps, and both
# its wall time and its time per pass are reported.
# Figures: BENCHMARKS.md ("Diffusion").
set -eu
cd "$(dirname "$0")/.."
BIN=${FLATLINE:-build/flatline}
THREADS=${THREADS:-2}
TYPE=${TYPE:-q4_k}
LAYERS=${LAYERS:-32}
STEPS=${STEPS:-16 32 64}
GEN=${GEN:-64}
REFRESH=${REFRESH:-8}
DIR=${BENCH_DIR:-/tmp/flatline-bench}
LLADA="$DIR/llada-8b-L$LAYERS-$TYPE.gguf"
LLAMA="$DIR/llama-8b-L$LAYERS-$TYPE.gguf"
# 32 one-byte tokens (the synthetic byte-level vocabulary), so the prompt is
# exactly one block and both engines see the same ids.
PROMPT="The quick brown fox jumps over a"
P=32
mkdir -p "$DIR"
if [ ! -f "$LLADA" ]; then
  echo "writing $LLADA (random weights)..." >&2
  "$BIN" synth --arch llada --preset 8b --n-layer "$LAYERS" --type "$TYPE" -o "$LLADA"
fi
if [ ! -f "$LLAMA" ]; then
  echo "writing $LLAMA (random weights)..." >&2
  "$BIN" synth --arch llama --preset 8b --n-layer "$LAYERS" --type "$TYPE" -o "$LLAMA"
fi

now() { date +%s.%N; }
secs() { echo "$2 - $1" | bc; }

echo "| engine | mode | steps | passes | wall s | s per pass | tokens |"
echo "|---|---|---|---|---|---|---|"
for S in $STEPS; do
  for MODE in exact approx; do
    CACHE=0
    [ "$MODE" = approx ] && CACHE=$REFRESH
    t0=$(now)
    out=$("$BIN" run "$LLADA" -t "$THREADS" -p "$PROMPT" --gen-length "$GEN" --block-length 32 --steps "$S" \
          --top-k 1 --diffusion-cache "$CACHE" --stats 2>&1 >/dev/null | tail -2)
    t1=$(now)
    w=$(secs "$t0" "$t1")
    echo "| flatline | $MODE (refresh $CACHE) | $S | $S | $w | $(echo "scale=3; $w / $S" | bc) | $GEN |"
    echo "$out" | sed 's/^/    /' >&2
  done
  if [ -n "${LLAMA_DIFFUSION:-}" ]; then
    LS=$(( S * (P + GEN) / GEN ))
    t0=$(now)
    "$LLAMA_DIFFUSION" -m "$LLADA" -t "$THREADS" -p "$PROMPT" --diffusion-steps "$LS" --diffusion-block-length 32 \
      -ub $((P + GEN)) -b $((P + GEN)) -c $((P + GEN)) --top-k 1 >/dev/null 2>"$DIR/llama-diffusion.log" || true
    t1=$(now)
    w=$(secs "$t0" "$t1")
    echo "| llama.cpp diffusion-cli | exact | $S per gen block | $LS | $w | $(echo "scale=3; $w / $LS" | bc) | $GEN |"
    grep "total time" "$DIR/llama-diffusion.log" | sed 's/^/    /' >&2 || true
  fi
done
# The autoregressive baseline: Llama-3.1-8B's shape (the model llama.cpp's
# diffusion PR compared against), prompt P then GEN generated tokens.
"$BIN" bench "$LLAMA" -t "$THREADS" -p "$P" -n "$GEN" -r 1
if [ -n "${LLAMA_BENCH:-}" ]; then
  "$LLAMA_BENCH" -m "$LLAMA" -t "$THREADS" -p "$P" -n "$GEN" -r 1
fi
