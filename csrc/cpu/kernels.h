// The CPU kernels, built once per instruction set (ops_impl.h and the layers it includes); register_cpu.cpp
// registers the one the processor can run.
#pragma once

#include <ATen/core/Tensor.h>

#include <array>
#include <string>
#include <tuple>

#include "../ops.h"

#define V2V_DECLARE_CPU_KERNELS(isa)                                                                                \
  namespace vid2vid_fast::isa {                                                                                     \
  at::Tensor flow_warp_cpu(const at::Tensor& img, const at::Tensor& flow, V2V_SAMPLING_PARAMS);                     \
  std::tuple<at::Tensor, at::Tensor> flow_warp_backward_cpu(const at::Tensor& grad_out, const at::Tensor& img,      \
                                                            const at::Tensor& flow,                                 \
                                                            V2V_SAMPLING_PARAMS,                                    \
                                                            std::array<bool, 2> mask);                              \
  at::Tensor warp_blend_cpu(const at::Tensor& prev, const at::Tensor& flow, const at::Tensor& raw,                  \
                            const at::Tensor& weight, V2V_SAMPLING_PARAMS);                                         \
  std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> warp_blend_backward_cpu(                               \
      const at::Tensor& grad_out, const at::Tensor& prev, const at::Tensor& flow, const at::Tensor& raw,            \
      const at::Tensor& weight, V2V_SAMPLING_PARAMS, std::array<bool, 4> mask);                                     \
  at::Tensor masked_warp_l1_cpu(const at::Tensor& src, const at::Tensor& flow, const at::Tensor& target,            \
                                const at::Tensor& mask, V2V_SAMPLING_PARAMS);                                       \
  std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> masked_warp_l1_backward_cpu(                           \
      const at::Tensor& grad_out, const at::Tensor& src, const at::Tensor& flow, const at::Tensor& target,          \
      const at::Tensor& mask, V2V_SAMPLING_PARAMS, std::array<bool, 4> need);                                       \
  }

// x86-64 with GCC: AVX2 + FMA and AVX-512 builds next to the baseline one (other compilers and processors:
// baseline only).
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define V2V_CPU_HAS_X86_BUILDS 1
#else
#define V2V_CPU_HAS_X86_BUILDS 0
#endif

// The x86 builds the library holds: both, unless setup.py left one out (VID2VID_FAST_CPU_ISAS=native builds
// only the one the build machine runs best, for a quicker build on the machine that uses it).
#if V2V_CPU_HAS_X86_BUILDS && !defined(V2V_CPU_SKIP_AVX2)
#define V2V_CPU_BUILD_AVX2 1
#else
#define V2V_CPU_BUILD_AVX2 0
#endif
#if V2V_CPU_HAS_X86_BUILDS && !defined(V2V_CPU_SKIP_AVX512)
#define V2V_CPU_BUILD_AVX512 1
#else
#define V2V_CPU_BUILD_AVX512 0
#endif

V2V_DECLARE_CPU_KERNELS(cpu_baseline)
#if V2V_CPU_BUILD_AVX2
V2V_DECLARE_CPU_KERNELS(cpu_avx2)
#endif
#if V2V_CPU_BUILD_AVX512
V2V_DECLARE_CPU_KERNELS(cpu_avx512)
#endif
