// Host-side pieces shared by the CPU and CUDA implementations: the schemas' sampling arguments, the host
// prologue of every entry point (checks, option parsing, output allocation) and strided views.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros_like.h>
#include <c10/util/ArrayRef.h>
#include <c10/util/Exception.h>

#include <array>
#include <string>
#include <tuple>

#include "warp_math.h"

// "vid2vid_fast", the op namespace, as a string. The CUDA emulation test library (csrc/cuda_emulation) is built
// with -Dvid2vid_fast=vid2vid_fast_cuda_emulated, which renames the C++ namespace, the TORCH_LIBRARY namespace and
// this string together.
#define V2V_STRINGIFY(x) #x
#define V2V_EXPAND_AND_STRINGIFY(x) V2V_STRINGIFY(x)
#define V2V_OP_NAMESPACE V2V_EXPAND_AND_STRINGIFY(vid2vid_fast)

namespace vid2vid_fast {

// The sampling arguments every op takes after its tensors, in the schemas (ops.cpp), as C++ parameters of the
// entry points, and as the arguments that pass them on.
#define V2V_SAMPLING_SCHEMA "str padding_mode, str mode, bool align_corners"
#define V2V_SAMPLING_PARAMS const std::string &padding_mode, const std::string &mode, bool align_corners
#define V2V_SAMPLING_ARGS padding_mode, mode, align_corners

// padding_mode "border" | "zeros" | "reflection", mode "bilinear" | "nearest"; anything else is an error.
Sampling parse_sampling(V2V_SAMPLING_PARAMS);

// The host prologue of every CPU and CUDA entry point: an op's inputs checked (the last line of defence for
// callers of torch.ops.vid2vid_fast.* that skip the Python API), its sampling options parsed and its outputs
// allocated. Inputs are in the op's order: the image, the flow, then raw and weight (warp_blend) or target and
// mask (masked_warp_l1).
enum class Op { kFlowWarp, kWarpBlend, kMaskedWarpL1 };

struct ForwardStart {
  Sampling sampling;
  at::Tensor out;  // laid out like the image (flow_warp) or raw (warp_blend); a scalar (masked_warp_l1)
};
ForwardStart start_forward(Op op, at::TensorList inputs, V2V_SAMPLING_PARAMS);

struct BackwardStart {
  Sampling sampling;
  // grads[i] for input i > 0: laid out like it when output_mask[i], else undefined (see requested_grad).
  // grads[0], the image's, is left to the backend, which accumulates it its own way.
  std::array<at::Tensor, 4> grads;
};
BackwardStart start_backward(Op op, const at::Tensor& grad_out, at::TensorList inputs, V2V_SAMPLING_PARAMS,
                             c10::ArrayRef<bool> output_mask);

// A view of t; of an undefined tensor, a null view (data nullptr, strides 0): what a kernel gets for a
// gradient that is not requested, so that a missing guard faults rather than writes into an input.
template <typename scalar_t, typename index_t>
Strided4<scalar_t, index_t> strided4(const at::Tensor& t) {
  Strided4<scalar_t, index_t> v;
  if (!t.defined()) {
    v.data = nullptr;
    v.sn = v.sc = v.sy = v.sx = 0;
    return v;
  }
  v.data = static_cast<scalar_t*>(t.data_ptr());
  v.sn = static_cast<index_t>(t.stride(0));
  // A single channel broadcasts over the image's channels (weights and masks are B x 1 x H x W).
  v.sc = t.size(1) == 1 ? index_t(0) : static_cast<index_t>(t.stride(1));
  v.sy = static_cast<index_t>(t.stride(2));
  v.sx = static_cast<index_t>(t.stride(3));
  return v;
}

// True when every element offset of t fits in int32, so kernels can index it with 32-bit arithmetic (an
// undefined tensor, a null view, has no offsets).
bool fits_int32(const at::Tensor& t);

template <typename... Ts>
bool all_fit_int32(const Ts&... ts) {
  return (fits_int32(ts) && ...);
}

// Runs the lambda with `index_t` = int32_t when use_int32, else int64_t.
#define V2V_DISPATCH_INDEX(use_int32, ...) \
  [&] {                                    \
    if (use_int32) {                       \
      using index_t = int32_t;             \
      return __VA_ARGS__();                \
    }                                      \
    using index_t = int64_t;               \
    return __VA_ARGS__();                  \
  }()

// Outputs take the layout of an input with empty_like's rules (dense inputs keep their strides, so
// channels_last stays channels_last), which the Python fake implementations mirror exactly.
inline at::Tensor empty_like_layout(const at::Tensor& like) { return at::empty_like(like); }

// A gradient buffer laid out like `like`, accumulated in `acc_dtype`.
inline at::Tensor zeros_like_layout(const at::Tensor& like, at::ScalarType acc_dtype) {
  return at::zeros_like(like, like.options().dtype(acc_dtype));
}

// A gradient accumulated in a wider dtype (fp32 for fp16/bf16 inputs), returned in the dtype of `like`.
inline at::Tensor finish_grad(const at::Tensor& acc_grad, const at::Tensor& like) {
  return acc_grad.scalar_type() == like.scalar_type() ? acc_grad : acc_grad.to(like.scalar_type());
}

// Unrequested gradients are returned as empty tensors (like aten's output_mask convention).
inline at::Tensor unrequested(const at::Tensor& like) { return at::empty({0}, like.options()); }

// Inside a backward, a gradient is allocated only when requested, laid out like `like`; an unrequested one is an
// undefined tensor, which strided4 turns into a null view, so a write that misses its guard faults rather than
// landing in an input. or_unrequested makes it the empty tensor the op returns.
inline at::Tensor requested_grad(const at::Tensor& like, bool needed) {
  return needed ? empty_like_layout(like) : at::Tensor();
}

inline at::Tensor or_unrequested(const at::Tensor& grad, const at::Tensor& like) {
  return grad.defined() ? grad : unrequested(like);
}

}  // namespace vid2vid_fast
