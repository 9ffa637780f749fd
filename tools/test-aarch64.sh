#!/usr/bin/env bash
# Runs the kernel and fixture tests of an aarch64 build (tools/cross-aarch64.sh)
# under qemu user-mode emulation, once per instruction set flatline can pick
# on ARM: FLATLINE_ISA=scalar, neon and neon-dotprod on an emulated CPU with
# the dot-product instructions (QEMU_CPU=max), then the detection on a plain
# Armv8.0 CPU (cortex-a57: neon found, neon-dotprod refused). The SIMD-vs-
# scalar kernel tests compare every variant the CPU has against the scalar
# one in each run; the fixture tests run whole models with the forced set.
#   tools/test-aarch64.sh [BUILD_DIR] [GTEST_FILTER]
# Fixtures: FLATLINE_SHARED_DIR (default ../shared beside the checkout).
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build-aarch64}
filter=${2:-'*Tensor*:*Wkv7*:*SsmKernels*:*AttentionKernel*:*Rwkv7*:*Mamba*:*TransformerFixture*:*TransformerReference*:*HybridFixture*'}
tests="$build_dir/tests/flatline_tests"
[ -x "$tests" ] || { echo "no $tests: run tools/cross-aarch64.sh $build_dir first" >&2; exit 1; }
# No QEMU_LD_PREFIX / -L: the binary runs on the multiarch libc6:arm64 that
# tools/cross-aarch64.sh installs; with -L /usr/aarch64-linux-gnu (the cross
# sysroot) qemu 7.2 hangs in the first pthread_create.
unset QEMU_LD_PREFIX
export FLATLINE_SHARED_DIR=${FLATLINE_SHARED_DIR:-$(cd .. && pwd)/shared}

failed=0
run() {  # run CPU ISA: the filtered tests on that emulated CPU with FLATLINE_ISA forced
  local cpu=$1 isa=$2 start=$SECONDS
  echo "=== QEMU_CPU=$cpu FLATLINE_ISA=$isa"
  if QEMU_CPU=$cpu FLATLINE_ISA=$isa qemu-aarch64 "$tests" --gtest_filter="$filter" --gtest_brief=1; then
    echo "=== $cpu/$isa passed in $((SECONDS - start)) s"
  else
    echo "=== $cpu/$isa FAILED after $((SECONDS - start)) s"
    failed=1
  fi
}

run max scalar
run max neon
run max neon-dotprod
# Detection without the dot product: the NEON kernels only, and asking for
# neon-dotprod is an error at start-up.
run cortex-a57 neon
if QEMU_CPU=cortex-a57 FLATLINE_ISA=neon-dotprod qemu-aarch64 "$tests" --gtest_filter='TensorKernels*' >/dev/null 2>&1; then
  echo "=== cortex-a57 accepted FLATLINE_ISA=neon-dotprod: FAILED"
  failed=1
else
  echo "=== cortex-a57 refuses FLATLINE_ISA=neon-dotprod: passed"
fi
[ $failed = 0 ] && echo "aarch64 emulated tests: all passed"
exit $failed
