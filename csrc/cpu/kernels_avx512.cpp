// The CPU kernels compiled for AVX-512 (F, VL, BW, DQ): as kernels_avx2.cpp, with mask registers, and with
// float32 images sampled by channel blocks 16 pixels at a time (blocks_avx512.h).
#include "prelude.h"

#if V2V_CPU_BUILD_AVX512
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
#define V2V_CPU_ISA cpu_avx512
#define V2V_CPU_AVX512 1
#include "ops_impl.h"
#pragma GCC pop_options
#endif
