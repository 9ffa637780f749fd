// AVX2 streaming read loop of the bandwidth measurement.
#include <immintrin.h>

#include "tensor/bandwidth.h"

namespace flatline::kernels {

uint64_t read_sum_avx2(const void* p, size_t bytes) {
  const __m256i* v = static_cast<const __m256i*>(p);
  __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a, e = a, f = a, g = a, h = a;
  for (size_t i = 0; i < bytes / 32; i += 8) {
    a = _mm256_xor_si256(a, _mm256_load_si256(v + i + 0));
    b = _mm256_xor_si256(b, _mm256_load_si256(v + i + 1));
    c = _mm256_xor_si256(c, _mm256_load_si256(v + i + 2));
    d = _mm256_xor_si256(d, _mm256_load_si256(v + i + 3));
    e = _mm256_xor_si256(e, _mm256_load_si256(v + i + 4));
    f = _mm256_xor_si256(f, _mm256_load_si256(v + i + 5));
    g = _mm256_xor_si256(g, _mm256_load_si256(v + i + 6));
    h = _mm256_xor_si256(h, _mm256_load_si256(v + i + 7));
  }
  a = _mm256_xor_si256(_mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d)),
                       _mm256_xor_si256(_mm256_xor_si256(e, f), _mm256_xor_si256(g, h)));
  __m128i x = _mm_xor_si128(_mm256_castsi256_si128(a), _mm256_extracti128_si256(a, 1));
  return static_cast<uint64_t>(_mm_cvtsi128_si64(x)) ^ static_cast<uint64_t>(_mm_extract_epi64(x, 1));
}

}  // namespace flatline::kernels
