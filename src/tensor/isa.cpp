#include "tensor/isa.h"

#if FLATLINE_ARCH_X86
#include <cpuid.h>
#elif FLATLINE_ARCH_ARM
#include <asm/hwcap.h>
#include <sys/auxv.h>
#endif

#include <atomic>
#include <cstdlib>
#include <string>

#include "util/error.h"

namespace flatline {

namespace {

#if FLATLINE_ARCH_X86
bool os_saves_zmm() {
  unsigned eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (eax & 0xe6) == 0xe6;  // XMM, YMM, opmask, ZMM_Hi256, Hi16_ZMM
}

bool os_saves_ymm() {
  unsigned eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (eax & 0x6) == 0x6;
}

Isa probe() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return Isa::Scalar;
  bool osxsave = c & bit_OSXSAVE;
  bool fma = c & bit_FMA;
  bool f16c = c & bit_F16C;
  bool avx = c & bit_AVX;
  if (!osxsave || !avx || !os_saves_ymm()) return Isa::Scalar;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return Isa::Scalar;
  bool avx2 = b & bit_AVX2;
  bool avx512 = (b & bit_AVX512F) && (b & bit_AVX512BW) && (b & bit_AVX512VL) && (b & bit_AVX512DQ) &&
                (c & bit_AVX512VNNI);
  if (avx512 && fma && f16c && avx2 && os_saves_zmm()) return Isa::Avx512;
  if (avx2 && fma && f16c) return Isa::Avx2;
  return Isa::Scalar;
}
#elif FLATLINE_ARCH_ARM
// AdvSIMD is part of every AArch64 Linux target in practice, but the kernel
// says so explicitly; the dot-product instructions (SDOT/UDOT, Armv8.2,
// e.g. the Cortex-A76 of the Raspberry Pi 5) are optional.
Isa probe() {
  const unsigned long hwcap = getauxval(AT_HWCAP);
  if (!(hwcap & HWCAP_ASIMD)) return Isa::Scalar;
  if (hwcap & HWCAP_ASIMDDP) return Isa::NeonDotprod;
  return Isa::Neon;
}
#else
Isa probe() { return Isa::Scalar; }
#endif

Isa parse_isa(const std::string& v) {
  if (v == "scalar") return Isa::Scalar;
  if (v == "avx2") return Isa::Avx2;
  if (v == "avx512") return Isa::Avx512;
  if (v == "neon") return Isa::Neon;
  if (v == "neon-dotprod") return Isa::NeonDotprod;
  throw Error("FLATLINE_ISA=" + v + " is not one of scalar, avx2, avx512, neon, neon-dotprod");
}

Isa from_env(Isa detected) {
  const char* env = std::getenv("FLATLINE_ISA");
  if (!env || !*env) return detected;
  std::string v(env);
  const Isa want = parse_isa(v);
  if (!isa_includes(detected, want))
    throw Error("FLATLINE_ISA=" + v + " but this CPU supports only " + std::string(isa_name(detected)));
  return want;
}

std::atomic<int>& active_slot() {
  static std::atomic<int> slot{static_cast<int>(from_env(detected_isa()))};
  return slot;
}

}  // namespace

Isa detected_isa() {
  static const Isa isa = probe();
  return isa;
}

Isa active_isa() { return static_cast<Isa>(active_slot().load(std::memory_order_relaxed)); }

void set_active_isa(Isa isa) {
  if (!isa_includes(detected_isa(), isa))
    throw Error(std::string("this CPU does not support ") + std::string(isa_name(isa)));
  active_slot().store(static_cast<int>(isa));
}

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Neon: return "neon";
    case Isa::NeonDotprod: return "neon-dotprod";
  }
  return "?";
}

std::vector<Isa> available_isas() {
  std::vector<Isa> out;
  for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512, Isa::Neon, Isa::NeonDotprod})
    if (isa_includes(detected_isa(), isa)) out.push_back(isa);
  return out;
}

bool isa_includes(Isa have, Isa want) {
  if (want == Isa::Scalar || want == have) return true;
  if (have == Isa::Avx512) return want == Isa::Avx2;
  if (have == Isa::NeonDotprod) return want == Isa::Neon;
  return false;
}

}  // namespace flatline
