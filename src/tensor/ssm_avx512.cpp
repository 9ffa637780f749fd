// AVX-512 instantiation of the state-space kernels (simd/ssm_body.h).
#include "tensor/simd/vec_avx512.h"
#include "tensor/simd/ssm_body.h"

namespace flatline::kernels {
const SsmKernels& ssm_avx512() { return simd::SsmBody<simd::VecAvx512>::table(); }
}  // namespace flatline::kernels
