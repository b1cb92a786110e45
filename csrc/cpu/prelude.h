// Everything the CPU kernel layers include, for every build of them. Each instruction-set translation unit
// (kernels_baseline.cpp, kernels_avx2.cpp, kernels_avx512.cpp) includes this file before its target pragma,
// so that torch's and the standard library's inline functions keep the baseline instruction set, the same in
// every translation unit; the layers themselves (tile_samples.h ... ops_impl.h) include no system header and
// refuse to compile without this one, so an include added to them cannot slip under the target pragma.
#pragma once

#ifdef V2V_CPU_ISA
#error "include prelude.h before the target pragma and the definition of V2V_CPU_ISA"
#endif

#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/zeros_like.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <type_traits>
#include <vector>

#include "../ops.h"
#include "kernels.h"

#if V2V_CPU_HAS_X86_BUILDS
#include <immintrin.h>
#endif

#define V2V_CPU_PRELUDE_INCLUDED 1

// The layers' code lives in the namespace of its build (V2V_CPU_ISA, defined after this file), with internal
// linkage; the op entry points in ops_impl.h are the only names a build exports.
#define V2V_CPU_NAMESPACE_BEGIN \
  namespace vid2vid_fast {      \
  namespace V2V_CPU_ISA {       \
  namespace {
#define V2V_CPU_NAMESPACE_END \
  }                           \
  }                           \
  }

#if defined(__clang__)
#define V2V_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define V2V_IVDEP _Pragma("GCC ivdep")
#else
#define V2V_IVDEP
#endif

#if defined(__GNUC__)
#define V2V_ALWAYS_INLINE inline __attribute__((always_inline))
#define V2V_NOINLINE __attribute__((noinline))
#else
#define V2V_ALWAYS_INLINE inline
#define V2V_NOINLINE
#endif
