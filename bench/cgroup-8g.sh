#!/bin/sh
# The seed's scenario as a memory-safety check: the 10-turn conversation
# (bench turns) with RWKV-7 2.9B and Gemma 3 4B (Q8_0, random weights, files
# as in depth-gemma3-vs-rwkv7.sh) inside a memory cgroup of LIMIT (default
# 8G, the $50 mini-PC), with no --max-memory: flatline must find the limit
# itself, never be OOM-killed, and RWKV-7 must finish all 10 turns. Prints
# the cgroup's peak usage, failcnt and OOM kills after the run.
#
#   sudo bench/cgroup-8g.sh                 # needs root to create the cgroup
#   LIMIT=6G N_PREDICT=32 bench/cgroup-8g.sh
# Uses cgroup v1 (/sys/fs/cgroup/memory) where mounted, else systemd-run
# --scope -p MemoryMax (cgroup v2). Figures: RELIABILITY.md.
set -eu
cd "$(dirname "$0")/.."
BIN=${FLATLINE:-build/flatline}
LIMIT=${LIMIT:-8G}
N_PREDICT=${N_PREDICT:-128}
THREADS=${THREADS:-2}
DIR=${BENCH_DIR:-/tmp/flatline-bench}
GEMMA="$DIR/gemma3-4b-q8_0.gguf"
RWKV="$DIR/rwkv7-2.9b-q8_0.gguf"
if [ ! -f "$GEMMA" ] || [ ! -f "$RWKV" ]; then
  echo "model files missing: run bench/depth-gemma3-vs-rwkv7.sh once (it writes them to $DIR)" >&2
  exit 1
fi
RUN="$BIN bench turns $RWKV $GEMMA -n $N_PREDICT -t $THREADS $*"
V1=/sys/fs/cgroup/memory
if [ -w "$V1" ]; then
  CG="$V1/flatline-bench-$$"
  mkdir "$CG"
  trap 'rmdir "$CG" 2>/dev/null || true' EXIT
  echo "$LIMIT" > "$CG/memory.limit_in_bytes"
  # Swap would hide an overshoot: the limit covers memory + swap when it can.
  echo "$LIMIT" > "$CG/memory.memsw.limit_in_bytes" 2>/dev/null || true
  echo "cgroup v1 $CG, memory.limit_in_bytes $(cat "$CG/memory.limit_in_bytes")"
  status=0
  sh -c "echo \$\$ > $CG/cgroup.procs && exec $RUN" || status=$?
  echo "exit status $status"
  echo "peak usage $(cat "$CG/memory.max_usage_in_bytes") bytes, failcnt $(cat "$CG/memory.failcnt")"
  grep oom_kill "$CG/memory.oom_control" || true
  exit "$status"
elif command -v systemd-run > /dev/null; then
  exec systemd-run --scope -p MemoryMax="$LIMIT" -p MemorySwapMax=0 $RUN
else
  echo "no writable cgroup v1 memory controller and no systemd-run: cannot set a memory limit" >&2
  exit 1
fi
