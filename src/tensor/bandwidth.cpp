// PLACEHOLDER until the SIMD kernels branch lands (it provides a tuned version).
#include "tensor/bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <vector>

namespace flatline {

double measure_read_bandwidth_gbs(ThreadPool& pool) {
  const size_t n = (size_t{1} << 30) / sizeof(uint64_t);
  std::vector<uint64_t> buf(n);
  pool.parallel_for(static_cast<int64_t>(n), [&](int64_t b, int64_t e) {
    std::memset(buf.data() + b, 1, static_cast<size_t>(e - b) * sizeof(uint64_t));
  });
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    std::vector<uint64_t> sums(static_cast<size_t>(pool.size()), 0);
    auto t0 = std::chrono::steady_clock::now();
    pool.run([&](int ith, int nth) {
      size_t per = (n + nth - 1) / nth, b = per * ith, e = std::min(n, b + per);
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      for (size_t i = b; i + 4 <= e; i += 4) s0 += buf[i], s1 += buf[i + 1], s2 += buf[i + 2], s3 += buf[i + 3];
      sums[ith] = s0 + s1 + s2 + s3;
    });
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, n * sizeof(uint64_t) / s / 1e9);
    volatile uint64_t sink = sums[0];
    (void)sink;
  }
  return best;
}

}  // namespace flatline
