// Element-wise and normalisation operations on f32 vectors. They cost O(n)
// per token against the O(n^2) of the matrix kernels, so they are written
// plainly and left to the compiler's vectoriser.
#pragma once

#include <cstdint>

namespace flatline {

// y = (x - mean) / sqrt(var + eps) * w + b   (w, b may be null: 1 and 0)
void layer_norm(const float* x, float* y, int64_t n, const float* w, const float* b, float eps);
// y = x / sqrt(mean(x^2) + eps) * w          (w may be null)
void rms_norm(const float* x, float* y, int64_t n, const float* w, float eps);
// In place softmax over n values.
void softmax(float* x, int64_t n);

float dot_f32(const float* a, const float* b, int64_t n);
void add_inplace(float* y, const float* x, int64_t n);       // y += x
void scale_inplace(float* y, float s, int64_t n);            // y *= s

inline float sigmoid(float x) { return 1.0f / (1.0f + __builtin_expf(-x)); }
float silu(float x);
float gelu_tanh(float x);
// log(1 + e^x), as ggml computes it (x itself above 20, where they agree in f32).
inline float softplus(float x) { return x > 20.0f ? x : __builtin_log1pf(__builtin_expf(x)); }

}  // namespace flatline
