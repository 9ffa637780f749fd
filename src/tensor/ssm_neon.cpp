// NEON instantiation of the state-space kernels (simd/ssm_body.h).
#include "tensor/simd/vec_neon.h"
#include "tensor/simd/ssm_body.h"

namespace flatline::kernels {
const SsmKernels& ssm_neon() { return simd::SsmBody<simd::VecNeon>::table(); }
}  // namespace flatline::kernels
