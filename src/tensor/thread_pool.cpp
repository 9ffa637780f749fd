#include "tensor/thread_pool.h"

#include <immintrin.h>

#include "util/system_info.h"

namespace flatline {

namespace {
// Workers spin this many iterations before sleeping. Per-token work is split
// into many short tasks, and a futex wake-up costs more than a short spin.
constexpr int kSpinIterations = 4000;
}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  n_threads_ = n_threads > 0 ? n_threads : physical_core_count();
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::dispatch(TaskFn fn, void* ctx) {
  if (n_threads_ == 1) {
    fn(ctx, 0, 1);
    return;
  }
  std::lock_guard<std::mutex> run_lock(dispatch_mutex_);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = fn;
    task_ctx_ = ctx;
    pending_.store(n_threads_ - 1);
    generation_.fetch_add(1, std::memory_order_release);
  }
  wake_.notify_all();
  fn(ctx, 0, n_threads_);
  // Spin briefly (the usual case: workers finish at the same time), then
  // yield so that an oversubscribed machine still makes progress.
  for (int spins = 0; pending_.load(std::memory_order_acquire) != 0; ++spins) {
    if (spins < 2000) _mm_pause();
    else std::this_thread::yield();
  }
}

void ThreadPool::worker_loop(int ith) {
  uint64_t seen = 0;
  for (;;) {
    int spins = 0;
    while (generation_.load(std::memory_order_acquire) == seen && spins < kSpinIterations) {
      if (spins % 64 == 63) std::this_thread::yield();
      else _mm_pause();
      ++spins;
    }
    if (generation_.load(std::memory_order_acquire) == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
    }
    seen = generation_.load(std::memory_order_acquire);
    if (stop_) return;
    TaskFn fn;
    void* ctx;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      fn = task_;
      ctx = task_ctx_;
    }
    fn(ctx, ith, n_threads_);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

}  // namespace flatline
