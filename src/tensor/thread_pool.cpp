#include "tensor/thread_pool.h"

#include <chrono>

#include "tensor/isa.h"

#if FLATLINE_ARCH_X86
#include <immintrin.h>
#endif

#include "util/system_info.h"

namespace flatline {

namespace {

using Clock = std::chrono::steady_clock;

// Workers keep polling this long after their last task before sleeping on
// the condition variable: generating a token is a long series of short
// tasks, and a futex wake-up costs more than the gap between two of them.
constexpr auto kSpinTime = std::chrono::microseconds(500);
// While polling, a worker gives its core away every this many pauses, so a
// spinning worker never starves a busy thread that shares its core.
constexpr int kPausesPerYield = 64;

// A spin-wait hint to the core (and its SMT sibling, where it has one).
inline void cpu_relax() {
#if FLATLINE_ARCH_X86
  _mm_pause();
#elif FLATLINE_ARCH_ARM
  __asm__ volatile("yield");
#endif
}

}  // namespace

ThreadPool::ThreadPool(int n_threads) {
  n_threads_ = n_threads > 0 ? n_threads : default_thread_count().threads;
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

void ThreadPool::wait_until_zero(const std::atomic<int>& counter) {
  for (int i = 1; counter.load(std::memory_order_acquire) != 0; ++i) {
    cpu_relax();
    if (i % kPausesPerYield == 0) std::this_thread::yield();
  }
}

void ThreadPool::dispatch(TaskFn fn, void* ctx, bool may_skip) {
  flush_denormals_on_this_thread();  // the caller computes too (as thread 0)
  if (n_threads_ == 1) {
    fn(ctx, 0, 1);
    return;
  }
  std::lock_guard<std::mutex> run_lock(dispatch_mutex_);
  uint64_t gen;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = fn;
    task_ctx_ = ctx;
    task_may_skip_ = may_skip;
    if (!may_skip) pending_.store(n_threads_ - 1, std::memory_order_relaxed);
    gen = generation_.load(std::memory_order_relaxed) + 1;
    generation_.store(gen, std::memory_order_release);
  }
  wake_.notify_all();
  fn(ctx, 0, n_threads_);
  if (may_skip) {
    // Workers that have not entered yet will see the generation closed and
    // stay out (seq_cst pairs with their active_ increment); wait only for
    // those already inside.
    closed_gen_.store(gen, std::memory_order_seq_cst);
    wait_until_zero(active_);
  } else {
    wait_until_zero(pending_);
  }
}

void flush_denormals_on_this_thread() {
  // MXCSR bits: FTZ (15) writes denormal results as zero, DAZ (6) reads
  // denormal inputs as zero. Values below 1.2e-38 change nothing a model
  // computes, but each one costs a slow microcode assist on x86: recurrent
  // states whose entries decay over thousands of tokens would otherwise
  // make decoding slower the longer a conversation gets. On AArch64 the FZ
  // bit (24) of FPCR does both, so the two architectures compute alike.
#if FLATLINE_ARCH_X86
  _mm_setcsr(_mm_getcsr() | 0x8040);
#elif FLATLINE_ARCH_ARM
  uint64_t fpcr;
  __asm__ volatile("mrs %0, fpcr" : "=r"(fpcr));
  __asm__ volatile("msr fpcr, %0" : : "r"(fpcr | (uint64_t{1} << 24)));
#endif
}

void ThreadPool::worker_loop(int ith) {
  flush_denormals_on_this_thread();
  uint64_t seen = 0;
  for (;;) {
    const auto spin_start = Clock::now();
    for (int i = 1; generation_.load(std::memory_order_acquire) == seen; ++i) {
      cpu_relax();
      if (i % kPausesPerYield != 0) continue;
      if (Clock::now() - spin_start < kSpinTime) {
        std::this_thread::yield();
        continue;
      }
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
      break;
    }
    TaskFn fn;
    void* ctx;
    bool may_skip;
    {
      // Generation and task are read together: with skippable tasks the
      // caller may already have moved on to a newer one.
      std::lock_guard<std::mutex> lock(mutex_);
      seen = generation_.load(std::memory_order_relaxed);
      fn = task_;
      ctx = task_ctx_;
      may_skip = task_may_skip_;
    }
    if (stop_) return;
    if (may_skip) {
      active_.fetch_add(1, std::memory_order_seq_cst);
      if (closed_gen_.load(std::memory_order_seq_cst) < seen) fn(ctx, ith, n_threads_);
      active_.fetch_sub(1, std::memory_order_release);
    } else {
      fn(ctx, ith, n_threads_);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }
}

}  // namespace flatline
