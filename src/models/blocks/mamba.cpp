#include "models/blocks/mamba.h"

#include <algorithm>
#include <cstring>

#include "models/blocks/common.h"
#include "tensor/ssm.h"
#include "tensor/vector_ops.h"

namespace flatline {

namespace {

// Channel ranges handed to threads stay multiples of the widest vector.
constexpr int64_t kChannelGrain = 64;

void convolve(const ChunkContext& ctx, const Segment& s, float* window, const float* x, int64_t x_stride, float* y,
              int64_t channels, int64_t d_conv, const std::vector<float>& taps, const std::vector<float>& bias) {
  Conv1dArgs a{window, x + s.row0 * x_stride, x_stride, y + s.row0 * channels, channels, s.n, channels, d_conv,
               taps.data(), bias.data()};
  const int64_t groups = (channels + kChannelGrain - 1) / kChannelGrain;
  ctx.pool.parallel_work(groups, s.n * kChannelGrain * d_conv * 4, [&](int64_t g0, int64_t g1) {
    conv1d_silu(a, g0 * kChannelGrain, std::min(channels, g1 * kChannelGrain));
  });
}

// y *= silu(z) over rows of d_inner (z rows `z_stride` apart).
void gate_by_silu(const ChunkContext& ctx, float* y, const float* z, int64_t z_stride, int64_t d_inner) {
  ctx.pool.parallel_work(ctx.n_rows, d_inner, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r)
      for (int64_t i = 0; i < d_inner; ++i) y[r * d_inner + i] *= silu(z[r * z_stride + i]);
  });
}

}  // namespace

std::vector<int64_t> mamba1_slabs(const Mamba1Config& c) {
  return {(c.d_conv - 1) * c.d_inner, c.d_state * c.d_inner};
}

std::vector<int64_t> mamba2_slabs(const Mamba2Config& c) {
  return {(c.d_conv - 1) * c.conv_channels(), c.n_head * c.d_state * c.head_dim()};
}

void mamba1_forward(const ChunkContext& ctx, const Mamba1Config& c, const Mamba1Weights& w, int64_t slab,
                    float norm_eps, const float* xn, float* out) {
  const int64_t n = ctx.n_rows, Di = c.d_inner, N = c.d_state, R = c.dt_rank;
  const int64_t dbc = R + 2 * N;
  float* xz = ctx.scratch.floats(kSlotSsmIn, static_cast<size_t>(n * 2 * Di));
  float* xc = ctx.scratch.floats(kSlotSsmConv, static_cast<size_t>(n * Di));
  float* xdb = ctx.scratch.floats(kSlotSsmDbc, static_cast<size_t>(n * (dbc + R)));
  float* dt = ctx.scratch.floats(kSlotSsmDt, static_cast<size_t>(n * Di));
  float* y = ctx.scratch.floats(kSlotSsmY, static_cast<size_t>(n * Di));
  project(w.in, {}, xn, n, xz, ctx.pool);
  for (const Segment& s : ctx.segments)
    convolve(ctx, s, ctx.state(s).recurrent().slab(slab), xz, 2 * Di, xc, Di, c.d_conv, w.conv_taps, w.conv_bias);
  project(w.x_proj, {}, xc, n, xdb, ctx.pool);
  // dt_low is copied out to contiguous rows (after the dbc block) for dt_proj.
  float* dt_low = xdb + n * dbc;
  for (int64_t r = 0; r < n; ++r) {
    float* row = xdb + r * dbc;
    if (c.dt_bc_norm) {
      rms_norm(row, row, R, w.dt_norm.data(), norm_eps);
      rms_norm(row + R, row + R, N, w.b_norm.data(), norm_eps);
      rms_norm(row + R + N, row + R + N, N, w.c_norm.data(), norm_eps);
    }
    std::memcpy(dt_low + r * R, row, R * sizeof(float));
  }
  project(w.dt_proj, w.dt_bias, dt_low, n, dt, ctx.pool);
  for (const Segment& s : ctx.segments) {
    Ssm1Args a{ctx.state(s).recurrent().slab(slab + 1), N, Di, s.n, xc + s.row0 * Di, Di, dt + s.row0 * Di, Di,
               xdb + s.row0 * dbc + R, xdb + s.row0 * dbc + R + N, dbc, w.A.data(), w.D.data(), y + s.row0 * Di, Di};
    const int64_t groups = (Di + kChannelGrain - 1) / kChannelGrain;
    ctx.pool.parallel_work(groups, s.n * kChannelGrain * N * 8, [&](int64_t g0, int64_t g1) {
      ssm1_scan(a, g0 * kChannelGrain, std::min(Di, g1 * kChannelGrain));
    });
  }
  gate_by_silu(ctx, y, xz + Di, 2 * Di, Di);
  project(w.out, {}, y, n, out, ctx.pool);
}

void mamba2_forward(const ChunkContext& ctx, const Mamba2Config& c, const Mamba2Weights& w, int64_t slab,
                    float norm_eps, const float* xn, float* out) {
  const int64_t n = ctx.n_rows, Di = c.d_inner, N = c.d_state, G = c.n_group, H = c.n_head;
  const int64_t P = c.head_dim(), conv_ch = c.conv_channels(), in_rows = c.in_rows();
  float* zxbcdt = ctx.scratch.floats(kSlotSsmIn, static_cast<size_t>(n * in_rows));
  float* xbc = ctx.scratch.floats(kSlotSsmConv, static_cast<size_t>(n * conv_ch));
  float* y = ctx.scratch.floats(kSlotSsmY, static_cast<size_t>(n * Di));
  project(w.in, {}, xn, n, zxbcdt, ctx.pool);
  for (const Segment& s : ctx.segments)
    convolve(ctx, s, ctx.state(s).recurrent().slab(slab), zxbcdt + Di, in_rows, xbc, conv_ch, c.d_conv, w.conv_taps,
             w.conv_bias);
  const int64_t heads_per_group = H / G;
  for (const Segment& s : ctx.segments) {
    float* h_all = ctx.state(s).recurrent().slab(slab + 1);
    ctx.pool.parallel_work(H, s.n * N * P * 3, [&](int64_t h0, int64_t h1) {
      for (int64_t h = h0; h < h1; ++h) {
        const int64_t g = h / heads_per_group;
        const float* rows = xbc + s.row0 * conv_ch;
        Ssm2Args a{h_all + h * N * P, N, P, s.n, rows + h * P, conv_ch, rows + Di + g * N, rows + Di + G * N + g * N,
                   conv_ch, zxbcdt + s.row0 * in_rows + Di + conv_ch + h, in_rows, w.dt_bias[h], w.A[h], w.D[h],
                   y + s.row0 * Di + h * P, Di};
        ssm2_scan_head(a);
      }
    });
  }
  gate_by_silu(ctx, y, zxbcdt, in_rows, Di);
  // Grouped RMSNorm: each of the G groups of d_inner / G channels normed alone.
  const int64_t group_dim = Di / G;
  ctx.pool.parallel_work(n * G, group_dim, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i)
      rms_norm(y + i * group_dim, y + i * group_dim, group_dim, w.norm.data() + (i % G) * group_dim, norm_eps);
  });
  project(w.out, {}, y, n, out, ctx.pool);
}

}  // namespace flatline
