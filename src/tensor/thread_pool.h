// A persistent pool of worker threads. run() hands the same task to every
// thread (the caller takes part as thread 0) and returns when all are done.
// Tasks are passed as a plain function pointer + context, so dispatching work
// allocates nothing (this runs hundreds of times per generated token).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace flatline {

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
    dispatch(trampoline, &fn);
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

 private:
  using TaskFn = void (*)(void*, int, int);
  void dispatch(TaskFn fn, void* ctx);
  void worker_loop(int ith);

  int n_threads_ = 1;
  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  TaskFn task_ = nullptr;
  void* task_ctx_ = nullptr;
  std::mutex dispatch_mutex_;  // one run() at a time
};

}  // namespace flatline
