#include "models/blocks/common.h"

#include "tensor/vector_ops.h"

namespace flatline {

void project(const Matrix& w, const std::vector<float>& bias, const float* x, int64_t n, float* y, ThreadPool& pool) {
  if (n == 1) matvec(w, x, y, pool);
  else matmul(w, x, n, y, pool);
  if (bias.empty()) return;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < w.rows; ++i) y[t * w.rows + i] += bias[i];
}

void rms_norm_rows(const float* x, const float* w, float* y, int64_t n_rows, int64_t dim, float eps, ThreadPool& pool) {
  pool.parallel_work(n_rows, dim, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) rms_norm(x + r * dim, y + r * dim, dim, w, eps);
  });
}

void add_scaled(float* x, const float* y, int64_t n, float scale) {
  if (scale == 1.0f) {
    for (int64_t i = 0; i < n; ++i) x[i] += y[i];
  } else {
    for (int64_t i = 0; i < n; ++i) x[i] += scale * y[i];
  }
}

}  // namespace flatline
