// Small pieces every block uses: a projection with an optional bias, RMSNorm
// over rows, residual adds.
#pragma once

#include <cstdint>
#include <vector>

#include "tensor/kernels.h"
#include "tensor/thread_pool.h"

namespace flatline {

// y[n][w.rows] = x[n][w.cols] W^T (+ bias per row when given).
void project(const Matrix& w, const std::vector<float>& bias, const float* x, int64_t n, float* y, ThreadPool& pool);
// y = RMSNorm(x) * w for n rows of dim values (w null: no weight); y may be x.
void rms_norm_rows(const float* x, const float* w, float* y, int64_t n_rows, int64_t dim, float eps, ThreadPool& pool);
// x += scale * y over n values.
void add_scaled(float* x, const float* y, int64_t n, float scale);

}  // namespace flatline
