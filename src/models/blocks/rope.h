// Rotary position embeddings as llama.cpp applies them: NORM rotates
// adjacent pairs (x[2j], x[2j+1]) (the Llama layout after the converter's
// q/k permutation), NEOX rotates x[j] with x[j + n_rot/2]. The frequency of
// pair j is scale * base^(-2j/n_rot), divided by freq_factors[j] when the
// file has them (Llama-3 scaling as the rope_freqs tensor).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "models/batch.h"

namespace flatline {

enum class RopeStyle { Norm, Neox };

struct RopeSpec {
  RopeStyle style = RopeStyle::Norm;
  int64_t n_rot = 0;         // leading dims of each head that are rotated
  double base = 10000.0;
  double scale = 1.0;        // positions are multiplied by this (linear scaling = 1 / factor)
  std::vector<float> freq_factors;

  bool operator==(const RopeSpec&) const = default;
};

class Rope {
 public:
  explicit Rope(RopeSpec spec);
  const RopeSpec& spec() const { return spec_; }
  int64_t half() const { return spec_.n_rot / 2; }

  // cos / sin of every row's angles, [rows][n_rot / 2], rows at the
  // positions the segments give.
  void tables(std::span<const Segment> segments, float* cos, float* sin) const;
  // Rotates rows [row0, row0 + n) of heads laid out [row][head][head_dim].
  void apply(float* x, int64_t row0, int64_t n, int64_t n_heads, int64_t head_dim, const float* cos,
             const float* sin) const;

 private:
  RopeSpec spec_;
  std::vector<double> inv_freq_;
};

}  // namespace flatline
