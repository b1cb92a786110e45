// Operator schemas (TORCH_LIBRARY) and the host prologue (checks, option parsing, outputs) of every backend of
// the extension.
#include "ops.h"

#include <Python.h>
#include <torch/library.h>

#include <cstdlib>
#include <limits>

namespace vid2vid_fast {

Sampling parse_sampling(V2V_SAMPLING_PARAMS) {
  Sampling s{Padding::kBorder, false, align_corners};
  if (padding_mode == "zeros") {
    s.padding = Padding::kZeros;
  } else if (padding_mode == "reflection") {
    s.padding = Padding::kReflection;
  } else {
    TORCH_CHECK(padding_mode == "border", "padding_mode must be 'border', 'zeros' or 'reflection', got '",
                padding_mode, "'");
  }
  TORCH_CHECK(mode == "bilinear" || mode == "nearest", "mode must be 'bilinear' or 'nearest', got '", mode, "'");
  s.nearest = mode == "nearest";
  return s;
}

bool fits_int32(const at::Tensor& t) {
  if (!t.defined()) return true;
  int64_t max_offset = 0;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (t.size(d) == 0) return true;
    max_offset += (t.size(d) - 1) * std::abs(t.stride(d));
  }
  return max_offset < std::numeric_limits<int32_t>::max() && t.numel() < std::numeric_limits<int32_t>::max();
}

// The kernels index rows and columns with int32 (warp_math.h) and clamp positions to [-2, size + 1].
constexpr int64_t kMaxSide = std::numeric_limits<int32_t>::max() - 2;

static void check_float_4d(const at::Tensor& t, const char* name) {
  TORCH_CHECK(t.dim() == 4, name, " must be a 4-d tensor (B, C, H, W), got ", t.dim(), " dimensions");
  TORCH_CHECK(at::isFloatingType(t.scalar_type()), name, " must be a floating point tensor, got ",
              t.scalar_type());
  TORCH_CHECK(t.size(2) < kMaxSide && t.size(3) < kMaxSide, name, " height and width must be below ", kMaxSide,
              ", got ", t.sizes());
}

static void check_image_and_flow(const at::Tensor& img, const at::Tensor& flow, const char* img_name) {
  check_float_4d(img, img_name);
  check_float_4d(flow, "flow");
  TORCH_CHECK(flow.size(1) == 2, "flow must have 2 channels (dx, dy), got ", flow.size(1));
  TORCH_CHECK(flow.size(0) == img.size(0) && flow.size(2) == img.size(2) && flow.size(3) == img.size(3),
              "flow must be (B, 2, H, W) with B, H, W of ", img_name, " ", img.sizes(), ", got ", flow.sizes());
  TORCH_CHECK(flow.scalar_type() == img.scalar_type(), "flow dtype ", flow.scalar_type(), " must match ",
              img_name, " dtype ", img.scalar_type());
  TORCH_CHECK(flow.device() == img.device(), "flow is on ", flow.device(), " but ", img_name, " is on ",
              img.device());
}

static void check_same_layout(const at::Tensor& t, const char* name, const at::Tensor& like, const char* like_name,
                       int64_t channels) {
  check_float_4d(t, name);
  const int64_t c = channels > 0 ? channels : like.size(1);
  TORCH_CHECK(t.size(0) == like.size(0) && t.size(1) == c && t.size(2) == like.size(2) &&
                  t.size(3) == like.size(3),
              name, " must have shape (", like.size(0), ", ", c, ", ", like.size(2), ", ", like.size(3),
              ") to match ", like_name, ", got ", t.sizes());
  TORCH_CHECK(t.scalar_type() == like.scalar_type(), name, " dtype ", t.scalar_type(), " must match ", like_name,
              " dtype ", like.scalar_type());
  TORCH_CHECK(t.device() == like.device(), name, " is on ", t.device(), " but ", like_name, " is on ",
              like.device());
}

static void check_mask(const at::Tensor& mask, const char* name, const at::Tensor& like, bool per_channel_ok) {
  check_float_4d(mask, name);
  const bool one = mask.size(1) == 1;
  const bool per_channel = per_channel_ok && mask.size(1) == like.size(1);
  TORCH_CHECK(one || per_channel, name, " must have 1", per_channel_ok ? " or C" : "", " channels, got ",
              mask.size(1));
  check_same_layout(mask, name, like, "the image", mask.size(1));
}

static void check_inputs(Op op, at::TensorList in) {
  switch (op) {
    case Op::kFlowWarp:
      TORCH_INTERNAL_ASSERT(in.size() == 2);
      return check_image_and_flow(in[0], in[1], "img");
    case Op::kWarpBlend:
      TORCH_INTERNAL_ASSERT(in.size() == 4);
      check_image_and_flow(in[0], in[1], "prev");
      check_same_layout(in[2], "raw", in[0], "prev", 0);
      return check_mask(in[3], "weight", in[0], /*per_channel_ok=*/false);
    case Op::kMaskedWarpL1:
      TORCH_INTERNAL_ASSERT(in.size() == 4);
      check_image_and_flow(in[0], in[1], "src");
      check_same_layout(in[2], "target", in[0], "src", 0);
      return check_mask(in[3], "mask", in[0], /*per_channel_ok=*/true);
  }
}

ForwardStart start_forward(Op op, at::TensorList inputs, V2V_SAMPLING_PARAMS) {
  check_inputs(op, inputs);
  const Sampling sampling = parse_sampling(V2V_SAMPLING_ARGS);
  switch (op) {
    case Op::kFlowWarp:
      return {sampling, empty_like_layout(inputs[0])};
    case Op::kWarpBlend:
      return {sampling, empty_like_layout(inputs[2])};
    case Op::kMaskedWarpL1:
      return {sampling, at::empty({}, inputs[0].options())};
  }
  TORCH_INTERNAL_ASSERT(false);
}

BackwardStart start_backward(Op op, const at::Tensor& grad_out, at::TensorList inputs, V2V_SAMPLING_PARAMS,
                             c10::ArrayRef<bool> output_mask) {
  check_inputs(op, inputs);
  TORCH_INTERNAL_ASSERT(output_mask.size() == inputs.size());
  const at::Tensor& image = inputs[0];
  if (op == Op::kMaskedWarpL1) {
    TORCH_CHECK(grad_out.numel() == 1, "grad_out of masked_warp_l1 must be a scalar, got ", grad_out.sizes());
    TORCH_CHECK(grad_out.device() == image.device() && grad_out.scalar_type() == image.scalar_type(),
                "grad_out must be a ", image.scalar_type(), " scalar on ", image.device());
  } else {
    check_same_layout(grad_out, "grad_out", image, op == Op::kFlowWarp ? "img" : "prev", 0);
  }
  BackwardStart start{parse_sampling(V2V_SAMPLING_ARGS), {}};
  for (size_t i = 1; i < inputs.size(); ++i) start.grads[i] = requested_grad(inputs[i], output_mask[i]);
  return start;
}

}  // namespace vid2vid_fast

TORCH_LIBRARY(vid2vid_fast, m) {
  m.def("flow_warp(Tensor img, Tensor flow, " V2V_SAMPLING_SCHEMA ") -> Tensor");
  m.def("flow_warp_backward(Tensor grad_out, Tensor img, Tensor flow, " V2V_SAMPLING_SCHEMA
        ", bool[2] output_mask) -> (Tensor, Tensor)");
  m.def("warp_blend(Tensor prev, Tensor flow, Tensor raw, Tensor weight, " V2V_SAMPLING_SCHEMA ") -> Tensor");
  m.def("warp_blend_backward(Tensor grad_out, Tensor prev, Tensor flow, Tensor raw, Tensor weight, " V2V_SAMPLING_SCHEMA
        ", bool[4] output_mask) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("masked_warp_l1(Tensor src, Tensor flow, Tensor target, Tensor mask, " V2V_SAMPLING_SCHEMA ") -> Tensor");
  m.def("masked_warp_l1_backward(Tensor grad_out, Tensor src, Tensor flow, Tensor target, Tensor mask, "
        V2V_SAMPLING_SCHEMA ", bool[4] output_mask) -> (Tensor, Tensor, Tensor, Tensor)");
}

// `import vid2vid_fast._C` loads this library, which runs the registrations above; the module itself
// is empty (the ops are reached through torch.ops.vid2vid_fast).
extern "C" PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
