// A persistent pool of worker threads. run() hands the same task to every
// thread (the caller takes part as thread 0) and returns when all are done.
// Tasks are passed as a plain function pointer + context, so dispatching work
// allocates nothing (this runs hundreds of times per generated token).
//
// parallel_chunks() is the variant for work that can be split into many
// independent pieces (the weight kernels use it): threads take chunks from a
// shared counter, and a worker that has not started by the time every chunk
// is taken is not waited for. On a machine shared with other busy processes
// a descheduled worker then costs nothing, where a static split would make
// the caller wait a whole scheduler time slice for it.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace flatline {

// Sets flush-to-zero / denormals-are-zero for the calling thread. Every
// pool thread and every thread that dispatches work runs with it.
void flush_denormals_on_this_thread();

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);  // n_threads <= 0: physical cores
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }

  // Calls fn(ith, nth) once on each of the nth = size() threads.
  template <typename F>
  void run(F&& fn) {
    auto trampoline = [](void* ctx, int ith, int nth) { (*static_cast<F*>(ctx))(ith, nth); };
    dispatch(trampoline, &fn, /*may_skip=*/false);
  }

  // Splits [0, n) into one contiguous range per thread: fn(begin, end).
  template <typename F>
  void parallel_for(int64_t n, F&& fn) {
    if (n <= 0) return;
    if (n_threads_ == 1 || n == 1) {
      fn(int64_t{0}, n);
      return;
    }
    run([&](int ith, int nth) {
      int64_t per = (n + nth - 1) / nth;
      int64_t begin = per * ith;
      int64_t end = begin + per < n ? begin + per : n;
      if (begin < end) fn(begin, end);
    });
  }

  // The one heuristic for element-wise work over n items of about
  // `work_per_item` operations each: small jobs (decode steps are full of
  // them) run on the calling thread, since waking the pool costs more than it
  // saves; larger ones go out in chunks of about a quarter of a thread's share.
  template <typename F>
  void parallel_work(int64_t n, int64_t work_per_item, F&& fn) {
    constexpr int64_t kMinParallelWork = 32768;
    if (n <= 0) return;
    if (n_threads_ == 1 || n == 1 || n * work_per_item < kMinParallelWork) {
      fn(int64_t{0}, n);
      return;
    }
    parallel_chunks(n, (n + 4 * n_threads_ - 1) / (4 * n_threads_), fn);
  }

  // Calls fn(begin, end) for consecutive chunks of [0, n) of `grain` items
  // (the last may be shorter), each exactly once, on whichever threads get
  // to them first. fn must not depend on which thread runs it.
  template <typename F>
  void parallel_chunks(int64_t n, int64_t grain, F&& fn) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    const int64_t chunks = (n + grain - 1) / grain;
    if (n_threads_ == 1 || chunks == 1) {
      for (int64_t begin = 0; begin < n; begin += grain) fn(begin, begin + grain < n ? begin + grain : n);
      return;
    }
    using Fn = std::remove_reference_t<F>;
    struct Ctx {
      Fn* fn;
      int64_t n, grain, chunks;
      std::atomic<int64_t> next{0};
    } ctx{&fn, n, grain, chunks};
    auto body = [](void* p, int, int) {
      Ctx& c = *static_cast<Ctx*>(p);
      for (int64_t i; (i = c.next.fetch_add(1, std::memory_order_relaxed)) < c.chunks;) {
        const int64_t begin = i * c.grain;
        (*c.fn)(begin, begin + c.grain < c.n ? begin + c.grain : c.n);
      }
    };
    dispatch(body, &ctx, /*may_skip=*/true);
  }

 private:
  using TaskFn = void (*)(void*, int, int);
  void dispatch(TaskFn fn, void* ctx, bool may_skip);
  void worker_loop(int ith);
  void wait_until_zero(const std::atomic<int>& counter);

  int n_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex mutex_;               // guards the task fields and sleeping
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<bool> stop_{false};
  TaskFn task_ = nullptr;
  void* task_ctx_ = nullptr;
  bool task_may_skip_ = false;
  std::atomic<int> pending_{0};           // run(): workers that have not finished
  std::atomic<int> active_{0};            // parallel_chunks(): workers inside the task
  std::atomic<uint64_t> closed_gen_{0};   // parallel_chunks(): last generation no longer joinable
  std::mutex dispatch_mutex_;  // one dispatch at a time
};

}  // namespace flatline
