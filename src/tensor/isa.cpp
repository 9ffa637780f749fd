#include "tensor/isa.h"

#include <cpuid.h>

#include <atomic>
#include <cstdlib>
#include <string>

#include "util/error.h"

namespace flatline {

namespace {

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

Isa from_env(Isa detected) {
  const char* env = std::getenv("FLATLINE_ISA");
  if (!env || !*env) return detected;
  std::string v(env);
  Isa want;
  if (v == "scalar") want = Isa::Scalar;
  else if (v == "avx2") want = Isa::Avx2;
  else if (v == "avx512") want = Isa::Avx512;
  else throw Error("FLATLINE_ISA=" + v + " is not one of scalar, avx2, avx512");
  if (static_cast<int>(want) > static_cast<int>(detected))
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
  if (static_cast<int>(isa) > static_cast<int>(detected_isa()))
    throw Error(std::string("this CPU does not support ") + std::string(isa_name(isa)));
  active_slot().store(static_cast<int>(isa));
}

std::string_view isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
  }
  return "?";
}

}  // namespace flatline
