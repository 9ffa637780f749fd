// Which instruction set the kernels use. Detected once from CPUID; the
// environment variable FLATLINE_ISA=scalar|avx2|avx512 forces a lower one
// (asking for one the CPU lacks is an error at start-up, not a crash later).
#pragma once

#include <string_view>

namespace flatline {

enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2 };

Isa detected_isa();   // best the CPU supports
Isa active_isa();     // what the kernels use now
void set_active_isa(Isa isa);  // throws Error if the CPU lacks it (tests use this)
std::string_view isa_name(Isa isa);

// The one dispatch helper: of the variants of a kernel (any of them but the
// scalar one may be null), the best one the active instruction set allows.
template <class Fn>
Fn select_for_isa(Fn scalar, Fn avx2, Fn avx512) {
  switch (active_isa()) {
    case Isa::Avx512:
      if (avx512) return avx512;
      [[fallthrough]];
    case Isa::Avx2:
      if (avx2) return avx2;
      [[fallthrough]];
    case Isa::Scalar: break;
  }
  return scalar;
}

}  // namespace flatline
