// NEON weight kernels with the Armv8.2 dot-product instruction (SDOT), for
// the quantized types (compiled with -march=armv8.2-a+dotprod, chosen at run
// time when the CPU has it, e.g. the Raspberry Pi 5's Cortex-A76). Float
// weights have no integer dot and use the plain NEON kernels (nullptr here).
#include "tensor/kernels_neon_body.h"

namespace flatline::kernels {

namespace {

// acc lane i + a[4i..4i+3] . b[4i..4i+3]: one instruction for what the
// plain NEON path does with two widening multiplies and two pairwise adds.
struct DotSdot {
  static int32x4_t dot(int32x4_t acc, int8x16_t a, int8x16_t b) { return vdotq_s32(acc, a, b); }
};

}  // namespace

const TypeKernels* neon_dotprod_kernels(DType type) { return QuantTables<DotSdot>::get(type); }

}  // namespace flatline::kernels
