// Measured memory read bandwidth: the denominator of the "roofline fraction"
// that `flatline bench` reports (a memory-bound matvec can at best read its
// weights at this speed).
#pragma once

#include <cstddef>
#include <cstdint>

#include "tensor/thread_pool.h"

namespace flatline {

// Best of `runs` multi-threaded streaming reads (SIMD loads; the pool's
// threads take 4 MiB pieces in turn) over a freshly allocated buffer of
// `bytes` (default 1 GiB, far larger than any L3). GB/s = 1e9 bytes / s.
double measure_read_bandwidth_gbs(ThreadPool& pool, size_t bytes = size_t{1} << 30, int runs = 5);

namespace kernels {
// Reads [p, p + bytes) (bytes a multiple of 256, p 64-byte aligned) and
// returns a value depending on every byte, so the reads cannot be dropped.
uint64_t read_sum(const void* p, size_t bytes);       // the best of those below this build has
uint64_t read_sum_sse2(const void* p, size_t bytes);  // x86-64 builds only
uint64_t read_sum_avx2(const void* p, size_t bytes);  // x86-64 builds only
uint64_t read_sum_neon(const void* p, size_t bytes);  // AArch64 builds only
}  // namespace kernels

}  // namespace flatline
