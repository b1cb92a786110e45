// The CPU kernels compiled for AVX2 + FMA: the row sampling vectorizes 8 wide with native integer
// multiplies and blends, and gathers vectorize. Every header is included before the target pragma, so
// that only this file's own functions use AVX2 (torch's and the standard library's inline functions keep
// the baseline instruction set, the same in every translation unit).
#include "kernels.h"

#if V2V_CPU_HAS_X86_BUILDS
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/zeros_like.h>

#include <cstdlib>
#include <limits>
#include <type_traits>
#include <vector>

#include "../ops.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma")
#define V2V_CPU_ISA cpu_avx2
#include "kernels_impl.h"
#pragma GCC pop_options
#endif
