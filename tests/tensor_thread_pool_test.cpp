// ThreadPool: run() reaches every thread exactly once; parallel_chunks()
// covers every chunk exactly once even when workers arrive late or not at
// all, across many back-to-back dispatches of both kinds.
#include <gtest/gtest.h>

#include <atomic>
#include <numeric>
#include <vector>

#include "tensor/bandwidth.h"
#include "tensor/thread_pool.h"

namespace flatline {
namespace {

TEST(TensorThreadPool, RunCallsEveryThreadOnce) {
  for (int threads : {1, 2, 3, 5}) {
    ThreadPool pool(threads);
    for (int rep = 0; rep < 200; ++rep) {
      std::vector<std::atomic<int>> hits(threads);
      pool.run([&](int ith, int nth) {
        ASSERT_EQ(nth, threads);
        hits[ith].fetch_add(1);
      });
      for (int i = 0; i < threads; ++i) ASSERT_EQ(hits[i].load(), 1) << "thread " << i << " rep " << rep;
    }
  }
}

TEST(TensorThreadPool, ParallelChunksCoverEveryItemOnce) {
  for (int threads : {1, 2, 3}) {
    ThreadPool pool(threads);
    for (int64_t n : {1, 2, 7, 64, 1000}) {
      for (int64_t grain : {1, 3, 64, 5000}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        pool.parallel_chunks(n, grain, [&](int64_t b, int64_t e) {
          ASSERT_LT(b, e);
          ASSERT_LE(e - b, grain);
          for (int64_t i = b; i < e; ++i) hits[i].fetch_add(1);
        });
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n " << n << " grain " << grain << " item " << i;
      }
    }
  }
}

TEST(TensorThreadPool, AlternatingDispatchKindsStress) {
  ThreadPool pool(3);
  int64_t total = 0;
  for (int rep = 0; rep < 5000; ++rep) {
    std::atomic<int64_t> sum{0};
    if (rep % 3 == 0) {
      pool.run([&](int ith, int) { sum.fetch_add(ith + 1); });
      ASSERT_EQ(sum.load(), 1 + 2 + 3);
    } else {
      pool.parallel_chunks(10, 1, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) sum.fetch_add(i);
      });
      ASSERT_EQ(sum.load(), 45);
    }
    total += sum.load();
  }
  EXPECT_GT(total, 0);
}

TEST(TensorBandwidth, SmallBufferGivesAPlausibleFigure) {
  ThreadPool pool(2);
  const double gbs = measure_read_bandwidth_gbs(pool, size_t{16} << 20, 2);
  EXPECT_GT(gbs, 0.1);     // any machine that runs this reads 16 MiB in well under 0.2 s
  EXPECT_LT(gbs, 10000.0);  // and not faster than 10 TB/s
}

}  // namespace
}  // namespace flatline
