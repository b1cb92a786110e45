// The CPU kernels compiled for AVX2 + FMA: the row sampling vectorizes 8 wide with native integer
// multiplies and blends, gathers vectorize, and float32 images are sampled by channel blocks in intrinsics
// (blocks_avx2.h). prelude.h comes before the target pragma, so that only this file's own functions use AVX2.
#include "prelude.h"

#if V2V_CPU_BUILD_AVX2
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define V2V_CPU_ISA cpu_avx2
#define V2V_CPU_AVX2 1
#include "ops_impl.h"
#pragma GCC pop_options
#endif
