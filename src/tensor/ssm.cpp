#include "tensor/ssm.h"

#include "tensor/isa.h"
#include "tensor/simd/vec_scalar.h"
#include "tensor/simd/ssm_body.h"

namespace flatline {

namespace kernels {
const SsmKernels& ssm_scalar() { return simd::SsmBody<simd::VecScalar>::table(); }
}  // namespace kernels

namespace {
const kernels::SsmKernels& active() {
  return select_for_isa(&kernels::ssm_scalar, FLATLINE_X86_ONLY(&kernels::ssm_avx2), FLATLINE_X86_ONLY(&kernels::ssm_avx512),
                        FLATLINE_ARM_ONLY(&kernels::ssm_neon), FLATLINE_ARM_ONLY(&kernels::ssm_neon))();
}
}  // namespace

void conv1d_silu(const Conv1dArgs& a, int64_t c0, int64_t c1) { active().conv1d_silu(a, c0, c1); }
void ssm2_scan_head(const Ssm2Args& a) { active().ssm2_scan_head(a); }
void ssm1_scan(const Ssm1Args& a, int64_t c0, int64_t c1) { active().ssm1_scan(a, c0, c1); }

}  // namespace flatline
