#include "models/blocks/rope.h"

#include <cmath>

namespace flatline {

Rope::Rope(RopeSpec spec) : spec_(std::move(spec)) {
  for (int64_t j = 0; j < half(); ++j) {
    double f = spec_.scale * std::pow(spec_.base, -2.0 * double(j) / double(spec_.n_rot));
    if (!spec_.freq_factors.empty()) f /= spec_.freq_factors[j];
    inv_freq_.push_back(f);
  }
}

void Rope::tables(std::span<const Segment> segments, float* cos, float* sin) const {
  const int64_t h = half();
  for (const Segment& s : segments)
    for (int64_t i = 0; i < s.n; ++i) {
      const double pos = static_cast<double>(s.pos0 + i);
      float* c = cos + (s.row0 + i) * h;
      float* sn = sin + (s.row0 + i) * h;
      for (int64_t j = 0; j < h; ++j) {
        const double theta = pos * inv_freq_[j];
        c[j] = static_cast<float>(std::cos(theta));
        sn[j] = static_cast<float>(std::sin(theta));
      }
    }
}

void Rope::apply(float* x, int64_t row0, int64_t n, int64_t n_heads, int64_t head_dim, const float* cos,
                 const float* sin) const {
  const int64_t h = half();
  const int64_t stride = spec_.style == RopeStyle::Norm ? 2 : 1;
  const int64_t partner = spec_.style == RopeStyle::Norm ? 1 : h;
  for (int64_t t = row0; t < row0 + n; ++t) {
    const float* c = cos + t * h;
    const float* s = sin + t * h;
    for (int64_t hd = 0; hd < n_heads; ++hd) {
      float* v = x + (t * n_heads + hd) * head_dim;
      for (int64_t j = 0; j < h; ++j) {
        float* a = v + j * stride;
        float* b = a + partner;
        const float x0 = *a, x1 = *b;
        *a = x0 * c[j] - x1 * s[j];
        *b = x0 * s[j] + x1 * c[j];
      }
    }
  }
}

}  // namespace flatline
