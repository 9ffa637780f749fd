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

}  // namespace flatline
