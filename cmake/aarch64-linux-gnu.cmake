# Cross build for 64-bit ARM Linux (Raspberry Pi 5 class) with Debian's
# g++-aarch64-linux-gnu; the libraries flatline links (cpp-httplib with its
# OpenSSL / zlib / brotli, GoogleTest) come from Debian's arm64 multiarch
# packages under /usr/lib/aarch64-linux-gnu. tools/cross-aarch64.sh installs
# all of it and runs the build; docs/ARM.md says more.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# Headers and arch-independent CMake packages (nlohmann-json, CLI11) are
# shared with the host in /usr; libraries are found through the
# aarch64-linux-gnu library architecture, programs on the host.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)
# pkg-config (cpp-httplib) must read the arm64 .pc files, not the host's.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)

# Test discovery at build time and ctest run the test binary through
# user-mode emulation; QEMU_CPU=max in the environment (tools/test-aarch64.sh)
# gives it the dot-product instructions. The arm64 libc is the multiarch
# libc6:arm64 (its loader is /lib/ld-linux-aarch64.so.1), not the cross
# sysroot: with `-L /usr/aarch64-linux-gnu` qemu 7.2 hangs in the first
# pthread_create, so the thread pool never starts.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64)
