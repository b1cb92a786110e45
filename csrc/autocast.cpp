// Autocast for the ops at the dispatcher, so that torch.ops.vid2vid_fast.* called directly under torch.autocast
// behaves like the public functions (vid2vid_fast/ops/checks.py autocast_inputs): float32 inputs are cast to the
// autocast dtype, nothing is cast up (float64 and the autocast dtype stay as they are), then the op runs with
// autocast off. The _backward companions need no kernel: autograd saved the already cast inputs.
#include <ATen/autocast_mode.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <string>

#include "ops.h"

namespace vid2vid_fast {
namespace {

template <typename>
using TensorFor = at::Tensor;

template <c10::DeviceType kDevice>
at::Tensor autocast_input(const at::Tensor& t) {
  const bool cast = t.defined() && t.device().type() == kDevice && t.scalar_type() == at::kFloat;
  return cast ? t.to(at::autocast::get_autocast_dtype(kDevice)) : t;
}

// The op `name`, called below autocast on the cast inputs.
template <c10::DeviceType kDevice, const char* kName, typename... Tensors>
at::Tensor autocast_op(const Tensors&... inputs, V2V_SAMPLING_PARAMS) {
  const c10::impl::ExcludeDispatchKeyGuard no_autocast(at::autocast::get_autocast_dispatch_key_from_device_type(kDevice));
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow(kName, "")
                             .typed<at::Tensor(const TensorFor<Tensors>&..., V2V_SAMPLING_PARAMS)>();
  return op.call(autocast_input<kDevice>(inputs)..., V2V_SAMPLING_ARGS);
}

constexpr char kFlowWarp[] = V2V_OP_NAMESPACE "::flow_warp";
constexpr char kWarpBlend[] = V2V_OP_NAMESPACE "::warp_blend";
constexpr char kMaskedWarpL1[] = V2V_OP_NAMESPACE "::masked_warp_l1";

template <c10::DeviceType kDevice>
void register_autocast(torch::Library& m) {
  using at::Tensor;
  m.impl("flow_warp", &autocast_op<kDevice, kFlowWarp, Tensor, Tensor>);
  m.impl("warp_blend", &autocast_op<kDevice, kWarpBlend, Tensor, Tensor, Tensor, Tensor>);
  m.impl("masked_warp_l1", &autocast_op<kDevice, kMaskedWarpL1, Tensor, Tensor, Tensor, Tensor>);
}

}  // namespace
}  // namespace vid2vid_fast

TORCH_LIBRARY_IMPL(vid2vid_fast, AutocastCPU, m) { vid2vid_fast::register_autocast<c10::DeviceType::CPU>(m); }
TORCH_LIBRARY_IMPL(vid2vid_fast, AutocastCUDA, m) { vid2vid_fast::register_autocast<c10::DeviceType::CUDA>(m); }
