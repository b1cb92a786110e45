// CUDA kernels for flow_warp, warp_blend and masked_warp_l1, forward and backward.
//
// One thread per output pixel (b, y, x): it computes the bilinear sample once (warp_math.h, the same code
// the CPU kernels run) and loops over channels. Any strides work, channels_last included, with no copy.
// Image gradients are scattered with float atomics into an fp32 (fp64 for double) buffer, which is also
// what keeps fp16/bf16 gradients accurate; every other gradient is gathered, so it needs no atomics.
// Under torch.use_deterministic_algorithms(True) the image gradient takes a deterministic path instead
// (ImageGradSink below).
// Offsets are 32-bit when every tensor fits, 64-bit otherwise.
#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/scatter_add.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdlib>
#include <limits>

#include "../ops.h"

namespace vid2vid_fast {
namespace {

using at::Tensor;

constexpr int kThreads = 256;

template <typename acc_t>
__device__ __forceinline__ acc_t device_nan();
template <>
__device__ __forceinline__ float device_nan<float>() {
  return __int_as_float(0x7fc00000);
}
template <>
__device__ __forceinline__ double device_nan<double>() {
  return __longlong_as_double(0x7ff8000000000000LL);
}

// The pixel this thread owns, or false when it is past the end.
template <typename index_t>
__device__ __forceinline__ bool pixel_of_thread(int64_t n_pixels, int64_t H, int64_t W, int64_t* b, int64_t* y,
                                                int64_t* x) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n_pixels) return false;
  const index_t j = static_cast<index_t>(i);
  *x = j % static_cast<index_t>(W);
  const index_t rest = j / static_cast<index_t>(W);
  *y = rest % static_cast<index_t>(H);
  *b = rest / static_cast<index_t>(H);
  return true;
}

__device__ __forceinline__ int64_t pixel_index(int64_t b, int64_t y, int64_t x, int64_t H, int64_t W) {
  return (b * H + y) * W + x;
}

template <typename acc_t, typename scalar_t, typename index_t>
__device__ __forceinline__ Sample<acc_t> thread_sample(const Strided4<const scalar_t, index_t>& flow, int64_t b,
                                                       int64_t y, int64_t x, int64_t H, int64_t W, bool zeros) {
  const acc_t dx = static_cast<acc_t>(flow(b, 0, y, x));
  const acc_t dy = static_cast<acc_t>(flow(b, 1, y, x));
  return sample_at<acc_t>(static_cast<int32_t>(x), static_cast<int32_t>(y), dx, dy, static_cast<int32_t>(H),
                          static_cast<int32_t>(W), zeros);
}

// Where the image gradient goes.
//
// Fast path (values == nullptr): float atomicAdd into the acc buffer. The order in which threads add
// differs from run to run, and float addition is not associative, so the last bits vary.
//
// Deterministic path (torch.use_deterministic_algorithms(True)): every (pixel, channel, corner) has its own
// slot, ((pixel * C + c) * 4 + corner), where the kernel writes the weighted contribution and the storage
// offset it belongs to, with no atomics; the host then sums the slots into the flat buffer with a 1-d
// scatter_add_, which PyTorch documents as deterministic on CUDA under the flag (it stable-sorts the
// offsets and sums each run of equal offsets in a fixed order). The slot order depends on the shape
// alone, so the image gradient is bit-identical across runs; each contribution is the same float the
// atomic path adds, only the order of the additions differs (and is now fixed).
// Why not int64 fixed-point atomics: fixed point needs a scale chosen from the data (the gradient of a
// mean over millions of elements is ~1e-7 per element, while one pixel may receive H*W contributions),
// NaN and Inf have no fixed-point form, and the result would differ from the float path by more than
// rounding. The price here is memory and time, only in deterministic mode: 4 * B*C*H*W slots of
// sizeof(acc_t) + 8 bytes, and a sort of them.
// Slots that a pixel does not write (a NaN flow) stay zero-filled: they add +0 to offset 0, a no-op.
template <typename acc_t, typename index_t>
struct ImageGradSink {
  Strided4<acc_t, index_t> acc;
  acc_t* values = nullptr;   // deterministic path: 4 * n_pixels * C contributions...
  int64_t* targets = nullptr;  // ...and the storage offset within acc of each

  __device__ __forceinline__ void scatter(int64_t pixel, int64_t C, int64_t b, int64_t c, const Sample<acc_t>& s,
                                          const CornerOffsets<index_t>& o, acc_t g) const {
    acc_t* plane = acc.plane(b, c);
    if (values == nullptr) {
      scatter_corners(s.x, s.y, o, g, [plane](index_t offset, acc_t v) { atomicAdd(plane + offset, v); });
      return;
    }
    const int64_t plane_offset = static_cast<int64_t>(plane - acc.data);
    int64_t slot = (pixel * C + c) * 4;
    scatter_corners(s.x, s.y, o, g, [&](index_t offset, acc_t v) {
      values[slot] = v;
      targets[slot] = plane_offset + static_cast<int64_t>(offset);
      ++slot;
    });
  }
};

// The slots of the deterministic path, allocated only when the flag is on; summed by finish().
struct DeterministicSlots {
  Tensor values, targets;

  DeterministicSlots(const Tensor& acc, int64_t n_pixels, int64_t C, bool needed) {
    if (!needed || !at::globalContext().deterministicAlgorithms() || acc.numel() == 0) return;
    const int64_t n = n_pixels * C * 4;
    values = at::zeros({n}, acc.options());
    targets = at::zeros({n}, acc.options().dtype(at::kLong));
  }

  template <typename acc_t, typename index_t>
  ImageGradSink<acc_t, index_t> sink(const Tensor& acc_view) const {
    ImageGradSink<acc_t, index_t> sink;
    sink.acc = strided4<acc_t, index_t>(acc_view);
    if (values.defined()) {
      sink.values = values.data_ptr<acc_t>();
      sink.targets = targets.data_ptr<int64_t>();
    }
    return sink;
  }

  // acc comes from zeros_like_layout, so it is dense and non-overlapping: its storage offsets are exactly
  // 0 .. numel - 1, and a flat stride-1 view of it addresses every element by the offsets the kernel wrote.
  void finish(Tensor& acc) const {
    if (!values.defined()) return;
    TORCH_INTERNAL_ASSERT(acc.is_non_overlapping_and_dense() && acc.storage_offset() == 0);
    acc.as_strided({acc.numel()}, {1}).scatter_add_(0, targets, values);
  }
};

int64_t blocks_for(int64_t n) { return (n + kThreads - 1) / kThreads; }

// ---------------------------------------------------------------------------------------------- flow_warp

template <typename scalar_t, typename index_t>
__global__ void flow_warp_forward_kernel(int64_t n_pixels, int64_t C, int64_t H, int64_t W,
                                         Strided4<const scalar_t, index_t> img, Strided4<const scalar_t, index_t> flow,
                                         Strided4<scalar_t, index_t> out, bool zeros) {
  using acc_t = at::opmath_type<scalar_t>;
  int64_t b, y, x;
  if (!pixel_of_thread<index_t>(n_pixels, H, W, &b, &y, &x)) return;
  const Sample<acc_t> s = thread_sample<acc_t>(flow, b, y, x, H, W, zeros);
  const auto off = corner_offsets(s, img.sy, img.sx);
  for (int64_t c = 0; c < C; ++c) {
    const acc_t v = s.valid ? interpolate(read_corners<acc_t>(img.plane(b, c), off), s.x, s.y) : device_nan<acc_t>();
    out(b, c, y, x) = static_cast<scalar_t>(v);
  }
}

template <typename scalar_t, typename index_t>
__global__ void flow_warp_backward_kernel(int64_t n_pixels, int64_t C, int64_t H, int64_t W,
                                          Strided4<const scalar_t, index_t> grad_out,
                                          Strided4<const scalar_t, index_t> img, Strided4<const scalar_t, index_t> flow,
                                          ImageGradSink<at::opmath_type<scalar_t>, index_t> grad_img,
                                          Strided4<scalar_t, index_t> grad_flow, bool need_img, bool need_flow,
                                          bool zeros) {
  using acc_t = at::opmath_type<scalar_t>;
  int64_t b, y, x;
  if (!pixel_of_thread<index_t>(n_pixels, H, W, &b, &y, &x)) return;
  const Sample<acc_t> s = thread_sample<acc_t>(flow, b, y, x, H, W, zeros);
  acc_t gx = 0, gy = 0;
  if (s.valid) {
    const auto off_img = corner_offsets(s, img.sy, img.sx);
    const auto off_grad = corner_offsets(s, grad_img.acc.sy, grad_img.acc.sx);
    for (int64_t c = 0; c < C; ++c) {
      const acc_t g = static_cast<acc_t>(grad_out(b, c, y, x));
      if (need_img) grad_img.scatter(pixel_index(b, y, x, H, W), C, b, c, s, off_grad, g);
      if (need_flow) {
        const Corners<acc_t> k = read_corners<acc_t>(img.plane(b, c), off_img);
        gx += g * interpolate_dx(k, s.x, s.y);
        gy += g * interpolate_dy(k, s.x, s.y);
      }
    }
  }
  if (need_flow) {
    grad_flow(b, 0, y, x) = static_cast<scalar_t>(gx);
    grad_flow(b, 1, y, x) = static_cast<scalar_t>(gy);
  }
}

Tensor flow_warp_cuda(const Tensor& img, const Tensor& flow, const std::string& padding_mode) {
  check_image_and_flow(img, flow, "img");
  const bool zeros = parse_zeros_padding(padding_mode);
  Tensor out = empty_like_layout(img);
  const int64_t B = img.size(0), C = img.size(1), H = img.size(2), W = img.size(3);
  const int64_t n_pixels = B * H * W;
  if (out.numel() == 0) return out;
  const c10::cuda::CUDAGuard guard(img.device());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, img.scalar_type(), "flow_warp_cuda", [&] {
    V2V_DISPATCH_INDEX(all_fit_int32(img, flow, out), [&] {
      flow_warp_forward_kernel<scalar_t, index_t><<<blocks_for(n_pixels), kThreads, 0, stream>>>(
          n_pixels, C, H, W, strided4<const scalar_t, index_t>(img), strided4<const scalar_t, index_t>(flow),
          strided4<scalar_t, index_t>(out), zeros);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return out;
}

std::tuple<Tensor, Tensor> flow_warp_backward_cuda(const Tensor& grad_out, const Tensor& img, const Tensor& flow,
                                                   const std::string& padding_mode, std::array<bool, 2> mask) {
  check_image_and_flow(img, flow, "img");
  check_same_layout(grad_out, "grad_out", img, "img", 0);
  const bool zeros = parse_zeros_padding(padding_mode);
  const int64_t B = img.size(0), C = img.size(1), H = img.size(2), W = img.size(3);
  const int64_t n_pixels = B * H * W;
  Tensor grad_img = unrequested(img), grad_flow = unrequested(flow);
  const c10::cuda::CUDAGuard guard(img.device());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, img.scalar_type(), "flow_warp_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    Tensor acc = mask[0] ? zeros_like_layout(img, c10::CppTypeToScalarType<acc_t>::value) : Tensor();
    if (mask[1]) grad_flow = empty_like_layout(flow);
    if (n_pixels > 0) {
      const Tensor& acc_view = mask[0] ? acc : img;
      const DeterministicSlots slots(acc_view, n_pixels, C, mask[0]);
      const Tensor& gf_view = mask[1] ? grad_flow : flow;
      V2V_DISPATCH_INDEX(all_fit_int32(img, flow, grad_out, acc_view), [&] {
        flow_warp_backward_kernel<scalar_t, index_t><<<blocks_for(n_pixels), kThreads, 0, stream>>>(
            n_pixels, C, H, W, strided4<const scalar_t, index_t>(grad_out), strided4<const scalar_t, index_t>(img),
            strided4<const scalar_t, index_t>(flow), slots.sink<acc_t, index_t>(acc_view),
            strided4<scalar_t, index_t>(gf_view), mask[0], mask[1], zeros);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
      if (mask[0]) slots.finish(acc);
    }
    if (mask[0]) grad_img = finish_grad(acc, img);
  });
  return {grad_img, grad_flow};
}

// --------------------------------------------------------------------------------------------- warp_blend

template <typename scalar_t, typename index_t>
__global__ void warp_blend_forward_kernel(int64_t n_pixels, int64_t C, int64_t H, int64_t W,
                                          Strided4<const scalar_t, index_t> prev, Strided4<const scalar_t, index_t> flow,
                                          Strided4<const scalar_t, index_t> raw, Strided4<const scalar_t, index_t> weight,
                                          Strided4<scalar_t, index_t> out, bool zeros) {
  using acc_t = at::opmath_type<scalar_t>;
  int64_t b, y, x;
  if (!pixel_of_thread<index_t>(n_pixels, H, W, &b, &y, &x)) return;
  const Sample<acc_t> s = thread_sample<acc_t>(flow, b, y, x, H, W, zeros);
  const acc_t w = static_cast<acc_t>(weight(b, 0, y, x));
  const auto off = corner_offsets(s, prev.sy, prev.sx);
  for (int64_t c = 0; c < C; ++c) {
    const acc_t warped = s.valid ? interpolate(read_corners<acc_t>(prev.plane(b, c), off), s.x, s.y) : device_nan<acc_t>();
    out(b, c, y, x) = static_cast<scalar_t>(static_cast<acc_t>(raw(b, c, y, x)) * w + warped * (acc_t(1) - w));
  }
}

template <typename scalar_t, typename index_t>
__global__ void warp_blend_backward_kernel(int64_t n_pixels, int64_t C, int64_t H, int64_t W,
                                           Strided4<const scalar_t, index_t> grad_out,
                                           Strided4<const scalar_t, index_t> prev, Strided4<const scalar_t, index_t> flow,
                                           Strided4<const scalar_t, index_t> raw, Strided4<const scalar_t, index_t> weight,
                                           ImageGradSink<at::opmath_type<scalar_t>, index_t> grad_prev,
                                           Strided4<scalar_t, index_t> grad_flow, Strided4<scalar_t, index_t> grad_raw,
                                           Strided4<scalar_t, index_t> grad_weight, bool need_prev, bool need_flow,
                                           bool need_raw, bool need_weight, bool zeros) {
  using acc_t = at::opmath_type<scalar_t>;
  int64_t b, y, x;
  if (!pixel_of_thread<index_t>(n_pixels, H, W, &b, &y, &x)) return;
  const Sample<acc_t> s = thread_sample<acc_t>(flow, b, y, x, H, W, zeros);
  const acc_t w = static_cast<acc_t>(weight(b, 0, y, x));
  const bool need_warped = need_flow || need_weight;
  const auto off_prev = corner_offsets(s, prev.sy, prev.sx);
  const auto off_grad = corner_offsets(s, grad_prev.acc.sy, grad_prev.acc.sx);
  acc_t gx = 0, gy = 0, gw = 0;
  for (int64_t c = 0; c < C; ++c) {
    const acc_t g = static_cast<acc_t>(grad_out(b, c, y, x));
    if (need_raw) grad_raw(b, c, y, x) = static_cast<scalar_t>(g * w);
    const acc_t gp = g * (acc_t(1) - w);
    if (need_prev && s.valid) grad_prev.scatter(pixel_index(b, y, x, H, W), C, b, c, s, off_grad, gp);
    if (!need_warped) continue;
    acc_t warped = device_nan<acc_t>();
    if (s.valid) {
      const Corners<acc_t> k = read_corners<acc_t>(prev.plane(b, c), off_prev);
      warped = interpolate(k, s.x, s.y);
      gx += gp * interpolate_dx(k, s.x, s.y);
      gy += gp * interpolate_dy(k, s.x, s.y);
    }
    gw += g * (static_cast<acc_t>(raw(b, c, y, x)) - warped);
  }
  if (need_flow) {
    grad_flow(b, 0, y, x) = static_cast<scalar_t>(gx);
    grad_flow(b, 1, y, x) = static_cast<scalar_t>(gy);
  }
  if (need_weight) grad_weight(b, 0, y, x) = static_cast<scalar_t>(gw);
}

Tensor warp_blend_cuda(const Tensor& prev, const Tensor& flow, const Tensor& raw, const Tensor& weight,
                       const std::string& padding_mode) {
  check_warp_blend(prev, flow, raw, weight);
  const bool zeros = parse_zeros_padding(padding_mode);
  Tensor out = empty_like_layout(raw);
  const int64_t B = prev.size(0), C = prev.size(1), H = prev.size(2), W = prev.size(3);
  const int64_t n_pixels = B * H * W;
  if (out.numel() == 0) return out;
  const c10::cuda::CUDAGuard guard(prev.device());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, prev.scalar_type(), "warp_blend_cuda", [&] {
    V2V_DISPATCH_INDEX(all_fit_int32(prev, flow, raw, weight, out), [&] {
      warp_blend_forward_kernel<scalar_t, index_t><<<blocks_for(n_pixels), kThreads, 0, stream>>>(
          n_pixels, C, H, W, strided4<const scalar_t, index_t>(prev), strided4<const scalar_t, index_t>(flow),
          strided4<const scalar_t, index_t>(raw), strided4<const scalar_t, index_t>(weight),
          strided4<scalar_t, index_t>(out), zeros);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  return out;
}

std::tuple<Tensor, Tensor, Tensor, Tensor> warp_blend_backward_cuda(const Tensor& grad_out, const Tensor& prev,
                                                                    const Tensor& flow, const Tensor& raw,
                                                                    const Tensor& weight,
                                                                    const std::string& padding_mode,
                                                                    std::array<bool, 4> mask) {
  check_warp_blend(prev, flow, raw, weight);
  check_same_layout(grad_out, "grad_out", prev, "prev", 0);
  const bool zeros = parse_zeros_padding(padding_mode);
  const int64_t B = prev.size(0), C = prev.size(1), H = prev.size(2), W = prev.size(3);
  const int64_t n_pixels = B * H * W;
  Tensor grad_prev = unrequested(prev), grad_flow = unrequested(flow);
  Tensor grad_raw = unrequested(raw), grad_weight = unrequested(weight);
  const c10::cuda::CUDAGuard guard(prev.device());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, prev.scalar_type(), "warp_blend_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    Tensor acc = mask[0] ? zeros_like_layout(prev, c10::CppTypeToScalarType<acc_t>::value) : Tensor();
    if (mask[1]) grad_flow = empty_like_layout(flow);
    if (mask[2]) grad_raw = empty_like_layout(raw);
    if (mask[3]) grad_weight = empty_like_layout(weight);
    if (n_pixels > 0) {
      const Tensor& acc_view = mask[0] ? acc : prev;
      const DeterministicSlots slots(acc_view, n_pixels, C, mask[0]);
      V2V_DISPATCH_INDEX(all_fit_int32(prev, flow, raw, weight, grad_out, acc_view), [&] {
        warp_blend_backward_kernel<scalar_t, index_t><<<blocks_for(n_pixels), kThreads, 0, stream>>>(
            n_pixels, C, H, W, strided4<const scalar_t, index_t>(grad_out), strided4<const scalar_t, index_t>(prev),
            strided4<const scalar_t, index_t>(flow), strided4<const scalar_t, index_t>(raw),
            strided4<const scalar_t, index_t>(weight), slots.sink<acc_t, index_t>(acc_view),
            strided4<scalar_t, index_t>(mask[1] ? grad_flow : flow), strided4<scalar_t, index_t>(mask[2] ? grad_raw : raw),
            strided4<scalar_t, index_t>(mask[3] ? grad_weight : weight), mask[0], mask[1], mask[2], mask[3], zeros);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
      if (mask[0]) slots.finish(acc);
    }
    if (mask[0]) grad_prev = finish_grad(acc, prev);
  });
  return {grad_prev, grad_flow, grad_raw, grad_weight};
}

// ----------------------------------------------------------------------------------------- masked_warp_l1

// Sums |warped * m - t * m| over the channels of each pixel, then over the block with a fixed tree, into
// one partial per block; the partials are summed by at::sum. No atomics, so the loss is reproducible.
template <typename scalar_t, typename index_t>
__global__ void masked_warp_l1_forward_kernel(int64_t n_pixels, int64_t C, int64_t H, int64_t W,
                                              Strided4<const scalar_t, index_t> src, Strided4<const scalar_t, index_t> flow,
                                              Strided4<const scalar_t, index_t> target,
                                              Strided4<const scalar_t, index_t> mask,
                                              at::opmath_type<scalar_t>* partials, bool zeros) {
  using acc_t = at::opmath_type<scalar_t>;
  __shared__ acc_t block_sum[kThreads];
  acc_t sum = 0;
  int64_t b, y, x;
  if (pixel_of_thread<index_t>(n_pixels, H, W, &b, &y, &x)) {
    const Sample<acc_t> s = thread_sample<acc_t>(flow, b, y, x, H, W, zeros);
      const auto off = corner_offsets(s, src.sy, src.sx);
    for (int64_t c = 0; c < C; ++c) {
      const acc_t warped = s.valid ? interpolate(read_corners<acc_t>(src.plane(b, c), off), s.x, s.y) : device_nan<acc_t>();
      const acc_t m = static_cast<acc_t>(mask(b, c, y, x));
      const acc_t d = warped * m - static_cast<acc_t>(target(b, c, y, x)) * m;
      sum += d < acc_t(0) ? -d : d;
    }
  }
  block_sum[threadIdx.x] = sum;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) block_sum[threadIdx.x] += block_sum[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) partials[blockIdx.x] = block_sum[0];
}

template <typename scalar_t, typename index_t>
__global__ void masked_warp_l1_backward_kernel(int64_t n_pixels, int64_t C, int64_t H, int64_t W,
                                               const scalar_t* grad_out, double inv_count,
                                               Strided4<const scalar_t, index_t> src,
                                               Strided4<const scalar_t, index_t> flow,
                                               Strided4<const scalar_t, index_t> target,
                                               Strided4<const scalar_t, index_t> mask,
                                               ImageGradSink<at::opmath_type<scalar_t>, index_t> grad_src,
                                               Strided4<scalar_t, index_t> grad_flow,
                                               Strided4<scalar_t, index_t> grad_target,
                                               Strided4<scalar_t, index_t> grad_mask, bool need_src, bool need_flow,
                                               bool need_target, bool need_mask, bool mask_per_channel, bool zeros) {
  using acc_t = at::opmath_type<scalar_t>;
  int64_t b, y, x;
  if (!pixel_of_thread<index_t>(n_pixels, H, W, &b, &y, &x)) return;
  const acc_t scale = static_cast<acc_t>(static_cast<double>(static_cast<acc_t>(*grad_out)) * inv_count);
  const Sample<acc_t> s = thread_sample<acc_t>(flow, b, y, x, H, W, zeros);
  const auto off_src = corner_offsets(s, src.sy, src.sx);
  const auto off_grad = corner_offsets(s, grad_src.acc.sy, grad_src.acc.sx);
  acc_t gx = 0, gy = 0, gm_sum = 0;
  for (int64_t c = 0; c < C; ++c) {
    Corners<acc_t> k{};
    acc_t warped = device_nan<acc_t>();
    if (s.valid) {
      k = read_corners<acc_t>(src.plane(b, c), off_src);
      warped = interpolate(k, s.x, s.y);
    }
    const acc_t m = static_cast<acc_t>(mask(b, c, y, x));
    const acc_t t = static_cast<acc_t>(target(b, c, y, x));
    const acc_t sg = sign_of(warped * m - t * m) * scale;
    if (need_target) grad_target(b, c, y, x) = static_cast<scalar_t>(-sg * m);
    if (need_mask) {
      const acc_t v = sg * (warped - t);
      if (mask_per_channel) {
        grad_mask(b, c, y, x) = static_cast<scalar_t>(v);
      } else {
        gm_sum += v;
      }
    }
    if (s.valid) {
      if (need_src) grad_src.scatter(pixel_index(b, y, x, H, W), C, b, c, s, off_grad, sg * m);
      if (need_flow) {
        gx += sg * m * interpolate_dx(k, s.x, s.y);
        gy += sg * m * interpolate_dy(k, s.x, s.y);
      }
    }
  }
  if (need_flow) {
    grad_flow(b, 0, y, x) = static_cast<scalar_t>(gx);
    grad_flow(b, 1, y, x) = static_cast<scalar_t>(gy);
  }
  if (need_mask && !mask_per_channel) grad_mask(b, 0, y, x) = static_cast<scalar_t>(gm_sum);
}

Tensor masked_warp_l1_cuda(const Tensor& src, const Tensor& flow, const Tensor& target, const Tensor& mask,
                           const std::string& padding_mode) {
  check_masked_warp_l1(src, flow, target, mask);
  const bool zeros = parse_zeros_padding(padding_mode);
  const int64_t B = src.size(0), C = src.size(1), H = src.size(2), W = src.size(3);
  const int64_t n_pixels = B * H * W;
  const double count = static_cast<double>(src.numel());
  if (src.numel() == 0) return at::full({}, std::numeric_limits<double>::quiet_NaN(), src.options());
  const c10::cuda::CUDAGuard guard(src.device());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  Tensor out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, src.scalar_type(), "masked_warp_l1_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const int64_t blocks = blocks_for(n_pixels);
    Tensor partials = at::empty({blocks}, src.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    V2V_DISPATCH_INDEX(all_fit_int32(src, flow, target, mask), [&] {
      masked_warp_l1_forward_kernel<scalar_t, index_t><<<blocks, kThreads, 0, stream>>>(
          n_pixels, C, H, W, strided4<const scalar_t, index_t>(src), strided4<const scalar_t, index_t>(flow),
          strided4<const scalar_t, index_t>(target), strided4<const scalar_t, index_t>(mask),
          partials.data_ptr<acc_t>(), zeros);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
    out = partials.sum(at::kDouble).div_(count).to(src.scalar_type());
  });
  return out;
}

std::tuple<Tensor, Tensor, Tensor, Tensor> masked_warp_l1_backward_cuda(const Tensor& grad_out, const Tensor& src,
                                                                        const Tensor& flow, const Tensor& target,
                                                                        const Tensor& mask,
                                                                        const std::string& padding_mode,
                                                                        std::array<bool, 4> need) {
  check_masked_warp_l1(src, flow, target, mask);
  TORCH_CHECK(grad_out.numel() == 1, "grad_out of masked_warp_l1 must be a scalar, got ", grad_out.sizes());
  TORCH_CHECK(grad_out.device() == src.device() && grad_out.scalar_type() == src.scalar_type(),
              "grad_out must be a ", src.scalar_type(), " scalar on ", src.device());
  const bool zeros = parse_zeros_padding(padding_mode);
  const int64_t B = src.size(0), C = src.size(1), H = src.size(2), W = src.size(3);
  const int64_t n_pixels = B * H * W;
  const bool mask_per_channel = mask.size(1) != 1 || C == 1;
  Tensor grad_src = unrequested(src), grad_flow = unrequested(flow);
  Tensor grad_target = unrequested(target), grad_mask = unrequested(mask);
  const c10::cuda::CUDAGuard guard(src.device());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  const Tensor grad_scalar = grad_out.reshape({}).contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, src.scalar_type(), "masked_warp_l1_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    Tensor acc = need[0] ? zeros_like_layout(src, c10::CppTypeToScalarType<acc_t>::value) : Tensor();
    if (need[1]) grad_flow = empty_like_layout(flow);
    if (need[2]) grad_target = empty_like_layout(target);
    if (need[3]) grad_mask = empty_like_layout(mask);
    if (src.numel() > 0) {
      const Tensor& acc_view = need[0] ? acc : src;
      const DeterministicSlots slots(acc_view, n_pixels, C, need[0]);
      V2V_DISPATCH_INDEX(all_fit_int32(src, flow, target, mask, acc_view), [&] {
        masked_warp_l1_backward_kernel<scalar_t, index_t><<<blocks_for(n_pixels), kThreads, 0, stream>>>(
            n_pixels, C, H, W, grad_scalar.data_ptr<scalar_t>(), 1.0 / static_cast<double>(src.numel()),
            strided4<const scalar_t, index_t>(src), strided4<const scalar_t, index_t>(flow),
            strided4<const scalar_t, index_t>(target), strided4<const scalar_t, index_t>(mask),
            slots.sink<acc_t, index_t>(acc_view), strided4<scalar_t, index_t>(need[1] ? grad_flow : flow),
            strided4<scalar_t, index_t>(need[2] ? grad_target : target),
            strided4<scalar_t, index_t>(need[3] ? grad_mask : mask), need[0], need[1], need[2], need[3],
            mask_per_channel, zeros);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      });
      if (need[0]) slots.finish(acc);
    } else {
      if (need[1]) grad_flow.zero_();
      if (need[2]) grad_target.zero_();
      if (need[3]) grad_mask.zero_();
    }
    if (need[0]) grad_src = finish_grad(acc, src);
  });
  return {grad_src, grad_flow, grad_target, grad_mask};
}

}  // namespace

TORCH_LIBRARY_IMPL(vid2vid_fast, CUDA, m) {
  m.impl("flow_warp", &flow_warp_cuda);
  m.impl("flow_warp_backward", &flow_warp_backward_cuda);
  m.impl("warp_blend", &warp_blend_cuda);
  m.impl("warp_blend_backward", &warp_blend_backward_cuda);
  m.impl("masked_warp_l1", &masked_warp_l1_cuda);
  m.impl("masked_warp_l1_backward", &masked_warp_l1_backward_cuda);
}

}  // namespace vid2vid_fast
