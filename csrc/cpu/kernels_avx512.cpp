// The CPU kernels compiled for AVX-512 (F, VL, BW, DQ): as kernels_avx2.cpp, with mask registers, and with
// float32 sampling written in intrinsics (V2V_CPU_AVX512, kernels_impl.h), by blocks of four channels.
#include "kernels.h"

#if V2V_CPU_HAS_X86_BUILDS
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/zeros_like.h>

#include <immintrin.h>

#include <cstdlib>
#include <limits>
#include <type_traits>
#include <vector>

#include "../ops.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
#define V2V_CPU_ISA cpu_avx512
#define V2V_CPU_AVX512 1
#include "kernels_impl.h"
#pragma GCC pop_options
#endif
