#!/usr/bin/env bash
# Cross-compiles flatline for aarch64 (Raspberry Pi 5 class) on a Debian
# x86-64 machine: installs the cross compiler, qemu-user and the arm64
# multiarch libraries flatline links, then builds the library, the
# `flatline` command and the test binary into BUILD_DIR (default
# build-aarch64). Run the tests with tools/test-aarch64.sh BUILD_DIR.
#   tools/cross-aarch64.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build-aarch64}
jobs=${JOBS:-2}

need_install=()
command -v aarch64-linux-gnu-g++ >/dev/null || need_install+=(g++-aarch64-linux-gnu)
command -v qemu-aarch64 >/dev/null || need_install+=(qemu-user)
command -v ninja >/dev/null || need_install+=(ninja-build)
command -v cmake >/dev/null || need_install+=(cmake)
command -v pkg-config >/dev/null || need_install+=(pkg-config)
# Header-only dependencies are shared with the host build.
[ -f /usr/include/nlohmann/json.hpp ] || need_install+=(nlohmann-json3-dev)
[ -f /usr/include/CLI/CLI.hpp ] || need_install+=(libcli11-dev)
# cpp-httplib is a compiled library in Debian, GoogleTest static libraries:
# both come as arm64 multiarch packages.
arm64_pkgs=()
[ -f /usr/lib/aarch64-linux-gnu/pkgconfig/cpp-httplib.pc ] || arm64_pkgs+=(libcpp-httplib-dev:arm64)
[ -f /usr/lib/aarch64-linux-gnu/libgtest.a ] || arm64_pkgs+=(libgtest-dev:arm64)
if [ ${#need_install[@]} -gt 0 ] || [ ${#arm64_pkgs[@]} -gt 0 ]; then
  if [ ${#arm64_pkgs[@]} -gt 0 ] && ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
  fi
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_install[@]}" "${arm64_pkgs[@]}"
fi

launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE="$PWD/cmake/aarch64-linux-gnu.cmake" "${launcher[@]}"
# Only what runs on the board and the tests (the fuzz replayers are not needed).
nice ninja -C "$build_dir" -j"$jobs" flatline flatline_tests
file "$build_dir/flatline" 2>/dev/null || true
