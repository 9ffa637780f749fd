// The Mamba-1 and Mamba-2 mixers as llama.cpp lays them out in GGUF
// (src/models/mamba-base.cpp there):
//   Mamba-1: [x | z] = in x; x = silu(conv1d(x)); [dt_low | B | C] = x_proj x
//            (optionally RMS-normed, Jamba); dt = dt_proj dt_low + dt_bias;
//            y = selective_scan(x, dt, A, B, C) + D x; out = out_proj(y * silu(z))
//   Mamba-2: [z | xBC | dt] = in x; xBC = silu(conv1d(xBC)); [x | B | C] = xBC
//            with B, C per group; y = scan with scalar A per head + D x;
//            y = grouped_rmsnorm(y * silu(z)); out = out_proj(y)
// The recurrent state of a layer is two slabs: the convolution window
// [d_conv - 1][channels] and the SSM state (Mamba-1 [d_state][d_inner],
// Mamba-2 [heads][d_state][head_dim]).
#pragma once

#include <cstdint>
#include <vector>

#include "models/blocks/chunk.h"
#include "tensor/kernels.h"

namespace flatline {

struct Mamba1Config {
  int64_t d_inner = 0, d_state = 0, d_conv = 0, dt_rank = 0;
  bool dt_bc_norm = false;  // RMSNorm on dt_low, B and C (Jamba, FalconMamba)
};

struct Mamba1Weights {
  Matrix in, x_proj, dt_proj, out;
  std::vector<float> conv_taps;  // [d_conv][d_inner] (transposed from the file's {d_conv, d_inner})
  std::vector<float> conv_bias, dt_bias, D;
  std::vector<float> A;          // [d_state][d_inner] (transposed from {d_state, d_inner})
  std::vector<float> dt_norm, b_norm, c_norm;
};

struct Mamba2Config {
  int64_t d_inner = 0, d_state = 0, d_conv = 0, n_head = 0, n_group = 0;
  int64_t head_dim() const { return d_inner / n_head; }
  int64_t conv_channels() const { return d_inner + 2 * n_group * d_state; }
  int64_t in_rows() const { return 2 * d_inner + 2 * n_group * d_state + n_head; }
};

struct Mamba2Weights {
  Matrix in, out;
  std::vector<float> conv_taps;  // [d_conv][conv_channels]
  std::vector<float> conv_bias, dt_bias, A, D;  // A, D, dt_bias: one per head
  std::vector<float> norm;       // [d_inner], grouped RMSNorm weights
};

// Recurrent slab sizes of one layer: {convolution window, SSM state}.
std::vector<int64_t> mamba1_slabs(const Mamba1Config& c);
std::vector<int64_t> mamba2_slabs(const Mamba2Config& c);

// out[rows][n_embd] = mixer(xn); the states' slabs `slab` and `slab + 1`
// are read and updated per segment.
void mamba1_forward(const ChunkContext& ctx, const Mamba1Config& c, const Mamba1Weights& w, int64_t slab,
                    float norm_eps, const float* xn, float* out);
void mamba2_forward(const ChunkContext& ctx, const Mamba2Config& c, const Mamba2Weights& w, int64_t slab,
                    float norm_eps, const float* xn, float* out);

}  // namespace flatline
