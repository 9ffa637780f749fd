#include "tensor/bandwidth.h"

#include "tensor/isa.h"

#if FLATLINE_ARCH_X86
#include <emmintrin.h>
#elif FLATLINE_ARCH_ARM
#include <arm_neon.h>
#endif

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

namespace flatline {

namespace kernels {

#if FLATLINE_ARCH_X86
uint64_t read_sum_sse2(const void* p, size_t bytes) {
  const __m128i* v = static_cast<const __m128i*>(p);
  __m128i a = _mm_setzero_si128(), b = a, c = a, d = a;
  for (size_t i = 0; i < bytes / 16; i += 4) {
    a = _mm_xor_si128(a, _mm_load_si128(v + i + 0));
    b = _mm_xor_si128(b, _mm_load_si128(v + i + 1));
    c = _mm_xor_si128(c, _mm_load_si128(v + i + 2));
    d = _mm_xor_si128(d, _mm_load_si128(v + i + 3));
  }
  a = _mm_xor_si128(_mm_xor_si128(a, b), _mm_xor_si128(c, d));
  return static_cast<uint64_t>(_mm_cvtsi128_si64(a)) ^ static_cast<uint64_t>(_mm_cvtsi128_si64(_mm_srli_si128(a, 8)));
}
#elif FLATLINE_ARCH_ARM
// Every AArch64 CPU has AdvSIMD, so this one loop serves all ARM ISAs; four
// independent accumulators keep several loads in flight.
uint64_t read_sum_neon(const void* p, size_t bytes) {
  const uint64_t* v = static_cast<const uint64_t*>(p);
  uint64x2_t a = vdupq_n_u64(0), b = a, c = a, d = a;
  for (size_t i = 0; i < bytes / 8; i += 8) {
    a = veorq_u64(a, vld1q_u64(v + i + 0));
    b = veorq_u64(b, vld1q_u64(v + i + 2));
    c = veorq_u64(c, vld1q_u64(v + i + 4));
    d = veorq_u64(d, vld1q_u64(v + i + 6));
  }
  a = veorq_u64(veorq_u64(a, b), veorq_u64(c, d));
  return vgetq_lane_u64(a, 0) ^ vgetq_lane_u64(a, 1);
}
#endif

// The widest read loop this build has for the active instruction set.
uint64_t read_sum(const void* p, size_t bytes) {
#if FLATLINE_ARCH_X86
  return active_isa() != Isa::Scalar ? read_sum_avx2(p, bytes) : read_sum_sse2(p, bytes);
#elif FLATLINE_ARCH_ARM
  return read_sum_neon(p, bytes);
#else
  const uint64_t* v = static_cast<const uint64_t*>(p);
  uint64_t a = 0, b = 0, c = 0, d = 0;
  for (size_t i = 0; i < bytes / 8; i += 4) {
    a ^= v[i];
    b ^= v[i + 1];
    c ^= v[i + 2];
    d ^= v[i + 3];
  }
  return a ^ b ^ c ^ d;
#endif
}

}  // namespace kernels

double measure_read_bandwidth_gbs(ThreadPool& pool, size_t bytes, int runs) {
  // Pieces of 4 MiB handed out dynamically (as the kernels do), so a thread
  // that the OS deschedules for a moment does not stall the measurement.
  constexpr size_t kPiece = size_t{4} << 20;
  const size_t pieces = std::max<size_t>(1, bytes / kPiece);
  const size_t total = pieces * kPiece;
  std::unique_ptr<uint8_t, decltype(&std::free)> buf(static_cast<uint8_t*>(std::aligned_alloc(4096, total)), &std::free);
  if (!buf) throw std::bad_alloc();
  uint8_t* base = buf.get();
  pool.parallel_chunks(static_cast<int64_t>(pieces), 1, [&](int64_t p0, int64_t p1) {
    std::memset(base + p0 * kPiece, static_cast<int>(p0 & 0xff), static_cast<size_t>(p1 - p0) * kPiece);
  });

  std::atomic<uint64_t> sink{0};
  double best = 0;
  for (int run = 0; run < std::max(1, runs); ++run) {
    const auto start = std::chrono::steady_clock::now();
    pool.parallel_chunks(static_cast<int64_t>(pieces), 1, [&](int64_t p0, int64_t p1) {
      const uint8_t* p = base + p0 * kPiece;
      const size_t len = static_cast<size_t>(p1 - p0) * kPiece;
      sink.fetch_xor(kernels::read_sum(p, len), std::memory_order_relaxed);
    });
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, static_cast<double>(total) / seconds / 1e9);
  }
  if (sink.load() == 0x5a5a5a5a5a5a5a5aull) best += 0;  // keep the reads observable
  return best;
}

}  // namespace flatline
