// AVX2 instantiation of the state-space kernels (simd/ssm_body.h).
#include "tensor/simd/vec_avx2.h"
#include "tensor/simd/ssm_body.h"

namespace flatline::kernels {
const SsmKernels& ssm_avx2() { return simd::SsmBody<simd::VecAvx2>::table(); }
}  // namespace flatline::kernels
