// Autograd for the ops, registered in C++ for every device: each op saves its inputs and its backward calls
// the op's _backward companion, asking only for the gradients autograd needs. Registered from Python
// (torch.library.register_autograd), a forward + backward of flow_warp on a 2 x 2 image took 30 us; it takes
// 20 us with this (grid_sample's: 17 us). Ten microseconds are a few percent of an op on a 128 x 256 image,
// and more at vid2vid's coarse scales.
//
// The _backward companions have an autograd kernel too, whose own backward raises: a double backward (a
// gradient of a gradient) is a clear error rather than a silent zero, as in torchvision's ops.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>

#include <array>
#include <string>
#include <tuple>
#include <utility>

#include "ops.h"

namespace vid2vid_fast {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

// The op `name` of this library, called through the dispatcher with the C++ signature Signature.
template <typename Signature>
c10::TypedOperatorHandle<Signature> find_op(const char* name) {
  return c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<Signature>();
}

template <size_t>
using TensorAt = at::Tensor;
template <typename>
using TensorFor = at::Tensor;

// The sampling arguments of a call (V2V_SAMPLING_PARAMS), kept for the backward.
struct SamplingArgs {
  std::string padding_mode, mode;
  bool align_corners;
};

// The companion kBackward(grad_out, inputs..., sampling arguments, bool[N] output_mask) -> one gradient per
// input, as an autograd function whose backward refuses.
template <size_t N, const char* kBackward>
struct WarpOpBackward : torch::autograd::Function<WarpOpBackward<N, kBackward>> {
  template <typename... Tensors>
  static variable_list forward(AutogradContext* ctx, const SamplingArgs& a, std::array<bool, N> mask,
                               const at::Tensor& grad_out, const Tensors&... inputs) {
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    static const auto op =
        find_op<std::tuple<TensorFor<Tensors>...>(const at::Tensor&, const Tensors&..., V2V_SAMPLING_PARAMS,
                                                   std::array<bool, N>)>(kBackward);
    return std::apply([](auto&&... grads) { return variable_list{grads...}; },
                      op.call(grad_out, inputs..., a.padding_mode, a.mode, a.align_corners, mask));
  }

  static variable_list backward(AutogradContext*, variable_list) {
    TORCH_CHECK(false, "double backward of ", kBackward,
                " is not supported: the ops have first derivatives only (use the reference backend, "
                "backend=\"reference\", for higher-order gradients)");
  }
};

// An op of the form op(tensor inputs..., sampling arguments) -> Tensor, with the companion kBackward.
template <size_t N, const char* kForward, const char* kBackward>
struct WarpOp : torch::autograd::Function<WarpOp<N, kForward, kBackward>> {
  template <typename... Tensors>
  static at::Tensor forward(AutogradContext* ctx, const SamplingArgs& a, const Tensors&... inputs) {
    static_assert(sizeof...(Tensors) == N, "one tensor per input of the op");
    ctx->save_for_backward({inputs...});
    ctx->saved_data["padding_mode"] = a.padding_mode;
    ctx->saved_data["mode"] = a.mode;
    ctx->saved_data["align_corners"] = a.align_corners;
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    static const auto op = find_op<at::Tensor(const Tensors&..., V2V_SAMPLING_PARAMS)>(kForward);
    return op.call(inputs..., a.padding_mode, a.mode, a.align_corners);
  }

  static variable_list backward(AutogradContext* ctx, variable_list grad_out) {
    return backward(ctx, grad_out[0], std::make_index_sequence<N>{});
  }

 private:
  template <size_t... I>
  static variable_list backward(AutogradContext* ctx, const at::Tensor& grad_out, std::index_sequence<I...>) {
    static const auto op =
        find_op<std::tuple<TensorAt<I>...>(const at::Tensor&, const TensorAt<I>&..., V2V_SAMPLING_PARAMS,
                                           std::array<bool, N>)>(kBackward);
    const auto saved = ctx->get_saved_variables();
    const std::array<bool, N> mask{ctx->needs_input_grad(I)...};
    const auto grads = op.call(grad_out, saved[I]..., ctx->saved_data["padding_mode"].toStringRef(),
                               ctx->saved_data["mode"].toStringRef(), ctx->saved_data["align_corners"].toBool(), mask);
    // One gradient per forward argument, in their order: none for the sampling arguments, then the requested
    // ones.
    return {at::Tensor(), (mask[I] ? std::get<I>(grads) : at::Tensor())...};
  }
};

constexpr char kFlowWarp[] = V2V_OP_NAMESPACE "::flow_warp";
constexpr char kFlowWarpBackward[] = V2V_OP_NAMESPACE "::flow_warp_backward";
constexpr char kWarpBlend[] = V2V_OP_NAMESPACE "::warp_blend";
constexpr char kWarpBlendBackward[] = V2V_OP_NAMESPACE "::warp_blend_backward";
constexpr char kMaskedWarpL1[] = V2V_OP_NAMESPACE "::masked_warp_l1";
constexpr char kMaskedWarpL1Backward[] = V2V_OP_NAMESPACE "::masked_warp_l1_backward";
using FlowWarp = WarpOp<2, kFlowWarp, kFlowWarpBackward>;
using WarpBlend = WarpOp<4, kWarpBlend, kWarpBlendBackward>;
using MaskedWarpL1 = WarpOp<4, kMaskedWarpL1, kMaskedWarpL1Backward>;
using FlowWarpBackward = WarpOpBackward<2, kFlowWarpBackward>;
using WarpBlendBackward = WarpOpBackward<4, kWarpBlendBackward>;
using MaskedWarpL1Backward = WarpOpBackward<4, kMaskedWarpL1Backward>;

using Tensor2 = std::tuple<at::Tensor, at::Tensor>;
using Tensor4 = std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor>;

}  // namespace
}  // namespace vid2vid_fast

TORCH_LIBRARY_IMPL(vid2vid_fast, Autograd, m) {
  using namespace vid2vid_fast;
  using at::Tensor;
  m.impl("flow_warp", [](const Tensor& img, const Tensor& flow, V2V_SAMPLING_PARAMS) {
    return FlowWarp::apply(SamplingArgs{V2V_SAMPLING_ARGS}, img, flow);
  });
  m.impl("warp_blend", [](const Tensor& prev, const Tensor& flow, const Tensor& raw, const Tensor& weight,
                          V2V_SAMPLING_PARAMS) {
    return WarpBlend::apply(SamplingArgs{V2V_SAMPLING_ARGS}, prev, flow, raw, weight);
  });
  m.impl("masked_warp_l1", [](const Tensor& src, const Tensor& flow, const Tensor& target, const Tensor& mask,
                              V2V_SAMPLING_PARAMS) {
    return MaskedWarpL1::apply(SamplingArgs{V2V_SAMPLING_ARGS}, src, flow, target, mask);
  });
  m.impl("flow_warp_backward", [](const Tensor& grad_out, const Tensor& img, const Tensor& flow, V2V_SAMPLING_PARAMS,
                                  std::array<bool, 2> mask) {
    const auto g = FlowWarpBackward::apply(SamplingArgs{V2V_SAMPLING_ARGS}, mask, grad_out, img, flow);
    return Tensor2{g[0], g[1]};
  });
  m.impl("warp_blend_backward", [](const Tensor& grad_out, const Tensor& prev, const Tensor& flow, const Tensor& raw,
                                   const Tensor& weight, V2V_SAMPLING_PARAMS, std::array<bool, 4> mask) {
    const auto g = WarpBlendBackward::apply(SamplingArgs{V2V_SAMPLING_ARGS}, mask, grad_out, prev, flow, raw, weight);
    return Tensor4{g[0], g[1], g[2], g[3]};
  });
  m.impl("masked_warp_l1_backward", [](const Tensor& grad_out, const Tensor& src, const Tensor& flow,
                                       const Tensor& target, const Tensor& mask, V2V_SAMPLING_PARAMS,
                                       std::array<bool, 4> output_mask) {
    const auto g = MaskedWarpL1Backward::apply(SamplingArgs{V2V_SAMPLING_ARGS}, output_mask, grad_out, src, flow,
                                               target, mask);
    return Tensor4{g[0], g[1], g[2], g[3]};
  });
}
