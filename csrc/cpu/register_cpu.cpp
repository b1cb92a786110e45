// Registers the CPU kernels: the AVX-512 build where the processor has it, else the AVX2 + FMA build where it
// has those, else the baseline build. VID2VID_FAST_CPU_ISA=baseline|avx2|avx512 asks for a build (for tests
// and comparisons); one the processor cannot run, or the library does not hold (kernels.h), is not used.
#include <torch/library.h>

#include <cstdlib>
#include <string>

#include "kernels.h"

namespace vid2vid_fast {
namespace {

enum class Isa { kBaseline, kAvx2, kAvx512 };

Isa pick_isa() {
#if V2V_CPU_HAS_X86_BUILDS
  const bool runs_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  const bool avx2 = V2V_CPU_BUILD_AVX2 && runs_avx2;
  const bool avx512 = V2V_CPU_BUILD_AVX512 && runs_avx2 && __builtin_cpu_supports("avx512f") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512dq");
  const char* forced = std::getenv("VID2VID_FAST_CPU_ISA");
  const std::string asked = forced != nullptr ? forced : "";
  if (asked == "baseline") return Isa::kBaseline;
  if (asked == "avx2") return avx2 ? Isa::kAvx2 : Isa::kBaseline;
  return avx512 ? Isa::kAvx512 : (avx2 ? Isa::kAvx2 : Isa::kBaseline);
#else
  return Isa::kBaseline;
#endif
}

Isa isa() {
  static const Isa picked = pick_isa();
  return picked;
}

// A build the library does not hold is never picked (pick_isa); its name stands for the baseline build, so
// that the calls below compile.
#if !V2V_CPU_BUILD_AVX512
namespace cpu_avx512 = cpu_baseline;
#endif
#if !V2V_CPU_BUILD_AVX2
namespace cpu_avx2 = cpu_baseline;
#endif
#define V2V_CPU_CALL(fn, ...)                                             \
  (isa() == Isa::kAvx512 ? cpu_avx512::fn(__VA_ARGS__)                    \
                         : (isa() == Isa::kAvx2 ? cpu_avx2::fn(__VA_ARGS__) \
                                                : cpu_baseline::fn(__VA_ARGS__)))

using at::Tensor;
using Grads2 = std::tuple<Tensor, Tensor>;
using Grads4 = std::tuple<Tensor, Tensor, Tensor, Tensor>;

Tensor flow_warp(const Tensor& img, const Tensor& flow, V2V_SAMPLING_PARAMS) {
  return V2V_CPU_CALL(flow_warp_cpu, img, flow, V2V_SAMPLING_ARGS);
}
Grads2 flow_warp_backward(const Tensor& g, const Tensor& img, const Tensor& flow, V2V_SAMPLING_PARAMS,
                          std::array<bool, 2> mask) {
  return V2V_CPU_CALL(flow_warp_backward_cpu, g, img, flow, V2V_SAMPLING_ARGS, mask);
}
Tensor warp_blend(const Tensor& prev, const Tensor& flow, const Tensor& raw, const Tensor& w, V2V_SAMPLING_PARAMS) {
  return V2V_CPU_CALL(warp_blend_cpu, prev, flow, raw, w, V2V_SAMPLING_ARGS);
}
Grads4 warp_blend_backward(const Tensor& g, const Tensor& prev, const Tensor& flow, const Tensor& raw, const Tensor& w,
                           V2V_SAMPLING_PARAMS, std::array<bool, 4> mask) {
  return V2V_CPU_CALL(warp_blend_backward_cpu, g, prev, flow, raw, w, V2V_SAMPLING_ARGS, mask);
}
Tensor masked_warp_l1(const Tensor& src, const Tensor& flow, const Tensor& target, const Tensor& mask,
                      V2V_SAMPLING_PARAMS) {
  return V2V_CPU_CALL(masked_warp_l1_cpu, src, flow, target, mask, V2V_SAMPLING_ARGS);
}
Grads4 masked_warp_l1_backward(const Tensor& g, const Tensor& src, const Tensor& flow, const Tensor& target,
                               const Tensor& mask, V2V_SAMPLING_PARAMS, std::array<bool, 4> need) {
  return V2V_CPU_CALL(masked_warp_l1_backward_cpu, g, src, flow, target, mask, V2V_SAMPLING_ARGS, need);
}

std::string cpu_isa() { return isa() == Isa::kAvx512 ? "avx512" : (isa() == Isa::kAvx2 ? "avx2" : "baseline"); }

}  // namespace

TORCH_LIBRARY_FRAGMENT(vid2vid_fast, m) {
  // Which build of the CPU kernels runs: "avx512", "avx2" or "baseline".
  m.def("cpu_isa() -> str", &cpu_isa);
}

TORCH_LIBRARY_IMPL(vid2vid_fast, CPU, m) {
  m.impl("flow_warp", &flow_warp);
  m.impl("flow_warp_backward", &flow_warp_backward);
  m.impl("warp_blend", &warp_blend);
  m.impl("warp_blend_backward", &warp_blend_backward);
  m.impl("masked_warp_l1", &masked_warp_l1);
  m.impl("masked_warp_l1_backward", &masked_warp_l1_backward);
}

}  // namespace vid2vid_fast
