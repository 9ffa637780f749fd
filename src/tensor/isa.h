// Which instruction set the kernels use. Detected once at start-up (CPUID on
// x86-64, getauxval(AT_HWCAP) on AArch64); the environment variable
// FLATLINE_ISA forces a lower one: scalar|avx2|avx512 on x86-64,
// scalar|neon|neon-dotprod on AArch64 (asking for one the CPU lacks is an
// error at start-up, not a crash later).
#pragma once

#include <string_view>
#include <type_traits>
#include <vector>

// Which family of kernel files this build compiles (CMakeLists.txt picks the
// *_avx2/_avx512 or *_neon files on CMAKE_SYSTEM_PROCESSOR).
#if defined(__x86_64__)
#define FLATLINE_ARCH_X86 1
#define FLATLINE_ARCH_ARM 0
#elif defined(__aarch64__)
#define FLATLINE_ARCH_X86 0
#define FLATLINE_ARCH_ARM 1
#else
#define FLATLINE_ARCH_X86 0
#define FLATLINE_ARCH_ARM 0
#endif

// A variant that exists only in the other architecture's build becomes
// nullptr, so a dispatch site names every variant without #if and never
// references a symbol that was not compiled.
#if FLATLINE_ARCH_X86
#define FLATLINE_X86_ONLY(variant) (variant)
#else
#define FLATLINE_X86_ONLY(variant) nullptr
#endif
#if FLATLINE_ARCH_ARM
#define FLATLINE_ARM_ONLY(variant) (variant)
#else
#define FLATLINE_ARM_ONLY(variant) nullptr
#endif

namespace flatline {

// Two families, each ordered from least to most capable: Avx512 implies
// Avx2, NeonDotprod implies Neon. Compare them with isa_includes, not <.
enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2, Neon = 3, NeonDotprod = 4 };

Isa detected_isa();   // best the CPU supports
Isa active_isa();     // what the kernels use now
void set_active_isa(Isa isa);  // throws Error if the CPU lacks it (tests use this)
std::string_view isa_name(Isa isa);
// True when a CPU with `have` can run code written for `want` (the same
// family and at least as capable, or want is Scalar).
bool isa_includes(Isa have, Isa want);
// Every instruction set this CPU can run, Scalar first (tests iterate it).
std::vector<Isa> available_isas();

// The one dispatch helper: of the variants of a kernel (any of them but the
// scalar one may be null), the best one the active instruction set allows;
// a missing variant falls back to the next lower one of its family.
// Call sites wrap the variants of the other architecture in
// FLATLINE_X86_ONLY / FLATLINE_ARM_ONLY (the scalar variant alone decides
// Fn, so the others may be plain nullptr).
template <class Fn>
Fn select_for_isa(Fn scalar, std::type_identity_t<Fn> avx2, std::type_identity_t<Fn> avx512,
                  std::type_identity_t<Fn> neon, std::type_identity_t<Fn> neon_dotprod) {
  switch (active_isa()) {
    case Isa::Avx512:
      if (avx512) return avx512;
      [[fallthrough]];
    case Isa::Avx2:
      if (avx2) return avx2;
      break;
    case Isa::NeonDotprod:
      if (neon_dotprod) return neon_dotprod;
      [[fallthrough]];
    case Isa::Neon:
      if (neon) return neon;
      break;
    case Isa::Scalar: break;
  }
  return scalar;
}

}  // namespace flatline
