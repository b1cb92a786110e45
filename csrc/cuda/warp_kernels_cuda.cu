// CUDA kernels for flow_warp, warp_blend and masked_warp_l1, forward and backward.
//
// One thread per output pixel (b, y, x): it computes the bilinear sample once (warp_math.h, the same code
// the CPU kernels run) and loops over channels. Any strides work, channels_last included, with no copy.
// Image gradients are scattered with float atomics into an fp32 (fp64 for double) buffer, which is also
// what keeps fp16/bf16 gradients accurate; every other gradient is gathered, so it needs no atomics.
// Under torch.use_deterministic_algorithms(True) the image gradient takes a deterministic path instead
// (ImageGradSink below).
// Offsets are 32-bit when every tensor fits, 64-bit otherwise.
// Gradients that are not requested get null views (strided4 of an undefined tensor), never a view of an
// input, so a missing need_* guard faults instead of overwriting the caller's tensor.
#include <ATen/Context.h>
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/scatter_add.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <cmath>
#include <limits>

#include "../ops.h"
#include "platform.cuh"

namespace vid2vid_fast {
namespace {

using at::Tensor;

constexpr int kThreads = 256;

// The pixels of a launch: one thread per output pixel (b, y, x), and the image's channel count.
struct Pixels {
  int64_t n, C, H, W;

  // The pixels of a B x C x H x W image.
  static Pixels of(const Tensor& image) {
    return {image.size(0) * image.size(2) * image.size(3), image.size(1), image.size(2), image.size(3)};
  }

  // Pixel i, decomposed with index_t arithmetic (i < n, which fits index_t on the 32-bit path).
  template <typename index_t>
  V2V_HOST_DEVICE void locate(int64_t i, int64_t* b, int64_t* y, int64_t* x) const {
    const index_t j = static_cast<index_t>(i);
    *x = j % static_cast<index_t>(W);
    const index_t rest = j / static_cast<index_t>(W);
    *y = rest % static_cast<index_t>(H);
    *b = rest / static_cast<index_t>(H);
  }
};

// A thread's pixel (b, y, x) and its sample.
template <typename acc_t>
struct ThreadPixel {
  int64_t b, y, x;
  Sample<acc_t> s;
};

template <typename acc_t, typename scalar_t, typename index_t>
V2V_HOST_DEVICE ThreadPixel<acc_t> thread_pixel(int64_t i, const Pixels& p,
                                                const Strided4<const scalar_t, index_t>& flow, Sampling sampling) {
  ThreadPixel<acc_t> t;
  p.locate<index_t>(i, &t.b, &t.y, &t.x);
  const acc_t dx = static_cast<acc_t>(flow(t.b, 0, t.y, t.x));
  const acc_t dy = static_cast<acc_t>(flow(t.b, 1, t.y, t.x));
  t.s = sample_at<acc_t>(static_cast<int32_t>(t.x), static_cast<int32_t>(t.y), dx, dy, static_cast<int32_t>(p.H),
                         static_cast<int32_t>(p.W), sampling);
  return t;
}

// The kernels. Each op's per-thread work is a struct of its arguments with a host-device
// `operator()(int64_t pixel)`; the __global__ functions below are the only kernels, thin wrappers that find
// the thread's pixel and call it. So the host compiler can build and run the same work (csrc/cuda_emulation).

template <typename Work>
__global__ void per_pixel_kernel(Work work) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < work.pixels.n) work(i);
}

// Sums work(i) (a value per pixel, 0 past the end) over each block with a fixed tree in shared memory, into
// one partial per block. No atomics, so the sum is reproducible.
template <typename Work>
__global__ void per_pixel_block_sum_kernel(Work work, typename Work::acc_t* partials) {
  using acc_t = typename Work::acc_t;
  __shared__ acc_t block_sum[kThreads];
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  block_sum[threadIdx.x] = i < work.pixels.n ? work(i) : acc_t(0);
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) block_sum[threadIdx.x] += block_sum[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) partials[blockIdx.x] = block_sum[0];
}

int64_t blocks_for(int64_t n) { return (n + kThreads - 1) / kThreads; }

// Every launch: one thread per pixel, kThreads a block.
template <typename Work>
void launch_per_pixel(const Tensor& on, const Work& work) {
  launch_kernel(per_pixel_kernel<Work>, on, blocks_for(work.pixels.n), kThreads, work);
}

template <typename Work>
void launch_per_pixel_block_sum(const Tensor& on, const Work& work, typename Work::acc_t* partials) {
  launch_kernel(per_pixel_block_sum_kernel<Work>, on, blocks_for(work.pixels.n), kThreads, work, partials);
}

// 32-bit offsets when every tensor (undefined ones are skipped) fits, else 64-bit.
template <typename... Ts>
bool use_int32(const Ts&... ts) {
  return !force_64bit_offsets() && all_fit_int32(ts...);
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
  Strided4<acc_t, index_t> acc;  // null when the gradient is not requested
  acc_t* values = nullptr;       // deterministic path: 4 * n_pixels * C contributions...
  int64_t* targets = nullptr;    // ...and the storage offset within acc of each
  bool nearest = false;          // mode "nearest": the gradient goes to one pixel (sample_axis's i0 of each axis)

  V2V_HOST_DEVICE void scatter(int64_t pixel, int64_t C, int64_t b, int64_t c, const Sample<acc_t>& s,
                               const CornerOffsets<index_t>& o, acc_t g) const {
    acc_t* plane = acc.plane(b, c);
    const int64_t plane_offset = static_cast<int64_t>(plane - acc.data);
    int64_t slot = (pixel * C + c) * 4;
    if (nearest) {
      // One add, not four of which three carry a weight of 0 (and would turn an infinite gradient into NaN).
      const acc_t v = g * s.y.w0 * s.x.w0;
      if (values == nullptr) {
        atomicAdd(plane + o.o00, v);
      } else {
        values[slot] = v;
        targets[slot] = plane_offset + static_cast<int64_t>(o.o00);
      }
      return;
    }
    if (values == nullptr) {
      scatter_corners(s.x, s.y, o, g, [plane](index_t offset, acc_t v) { atomicAdd(plane + offset, v); });
      return;
    }
    scatter_corners(s.x, s.y, o, g, [&](index_t offset, acc_t v) {
      values[slot] = v;
      targets[slot] = plane_offset + static_cast<int64_t>(offset);
      ++slot;
    });
  }
};

// The image gradient of a backward: the fp32 (fp64) accumulation buffer when requested (undefined otherwise)
// and, when the deterministic flag is on, the slots of the deterministic path, summed by finish().
struct ImageGrad {
  Tensor acc, values, targets;

  ImageGrad(const Tensor& like, bool needed, at::ScalarType acc_dtype, int64_t n_pixels) {
    if (!needed) return;
    acc = zeros_like_layout(like, acc_dtype);
    if (!at::globalContext().deterministicAlgorithms() || acc.numel() == 0) return;
    const int64_t n = n_pixels * like.size(1) * 4;
    values = at::zeros({n}, acc.options());
    targets = at::zeros({n}, acc.options().dtype(at::kLong));
  }

  template <typename acc_t, typename index_t>
  ImageGradSink<acc_t, index_t> sink(Sampling sampling) const {
    ImageGradSink<acc_t, index_t> sink;
    sink.nearest = sampling.nearest;
    sink.acc = strided4<acc_t, index_t>(acc);
    if (values.defined()) {
      sink.values = values.data_ptr<acc_t>();
      sink.targets = targets.data_ptr<int64_t>();
    }
    return sink;
  }

  // acc comes from zeros_like_layout, so it is dense and non-overlapping: its storage offsets are exactly
  // 0 .. numel - 1, and a flat stride-1 view of it addresses every element by the offsets the kernel wrote.
  // Returns the gradient in the dtype of `like` (undefined when not requested).
  Tensor finish(const Tensor& like) {
    if (!acc.defined()) return unrequested(like);
    if (values.defined()) {
      TORCH_INTERNAL_ASSERT(acc.is_non_overlapping_and_dense() && acc.storage_offset() == 0);
      acc.as_strided({acc.numel()}, {1}).scatter_add_(0, targets, values);
    }
    return finish_grad(acc, like);
  }
};

// ---------------------------------------------------------------------------------------------- flow_warp

template <typename scalar_t, typename index_t>
struct FlowWarpForward {
  using acc_t = at::opmath_type<scalar_t>;
  Pixels pixels;
  Strided4<const scalar_t, index_t> img, flow;
  Strided4<scalar_t, index_t> out;
  Sampling sampling;

  V2V_HOST_DEVICE void operator()(int64_t i) const {
    const auto [b, y, x, s] = thread_pixel<acc_t>(i, pixels, flow, sampling);
    const auto off = corner_offsets(s, img.sy, img.sx);
    for (int64_t c = 0; c < pixels.C; ++c) {
      const acc_t v = s.valid ? interpolate(read_corners<acc_t>(img.plane(b, c), off), s.x, s.y) : acc_t(NAN);
      out(b, c, y, x) = static_cast<scalar_t>(v);
    }
  }
};

template <typename scalar_t, typename index_t>
struct FlowWarpBackward {
  using acc_t = at::opmath_type<scalar_t>;
  Pixels pixels;
  Strided4<const scalar_t, index_t> grad_out, img, flow;
  ImageGradSink<acc_t, index_t> grad_img;
  Strided4<scalar_t, index_t> grad_flow;
  bool need_img, need_flow;
  Sampling sampling;

  V2V_HOST_DEVICE void operator()(int64_t i) const {
    const auto [b, y, x, s] = thread_pixel<acc_t>(i, pixels, flow, sampling);
    acc_t gx = 0, gy = 0;
    if (s.valid) {
      const auto off_img = corner_offsets(s, img.sy, img.sx);
      const auto off_grad = corner_offsets(s, grad_img.acc.sy, grad_img.acc.sx);
      for (int64_t c = 0; c < pixels.C; ++c) {
        const acc_t g = static_cast<acc_t>(grad_out(b, c, y, x));
        if (need_img) grad_img.scatter(i, pixels.C, b, c, s, off_grad, g);
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
};

Tensor flow_warp_cuda(const Tensor& img, const Tensor& flow, V2V_SAMPLING_PARAMS) {
  const auto [sampling, out] = start_forward(Op::kFlowWarp, {img, flow}, V2V_SAMPLING_ARGS);
  const Pixels pixels = Pixels::of(img);
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, img.scalar_type(), "flow_warp_cuda", [&] {
    V2V_DISPATCH_INDEX(use_int32(img, flow, out), [&] {
      launch_per_pixel(img, FlowWarpForward<scalar_t, index_t>{pixels, strided4<const scalar_t, index_t>(img),
                                                               strided4<const scalar_t, index_t>(flow),
                                                               strided4<scalar_t, index_t>(out), sampling});
    });
  });
  return out;
}

std::tuple<Tensor, Tensor> flow_warp_backward_cuda(const Tensor& grad_out, const Tensor& img, const Tensor& flow,
                                                   V2V_SAMPLING_PARAMS, std::array<bool, 2> need) {
  const auto [sampling, grads] = start_backward(Op::kFlowWarp, grad_out, {img, flow}, V2V_SAMPLING_ARGS, need);
  const Pixels pixels = Pixels::of(img);
  const Tensor& grad_flow = grads[1];
  Tensor grad_img;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, img.scalar_type(), "flow_warp_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    ImageGrad image_grad(img, need[0], c10::CppTypeToScalarType<acc_t>::value, pixels.n);
    if (pixels.n > 0) {
      V2V_DISPATCH_INDEX(use_int32(img, flow, grad_out, image_grad.acc, grad_flow), [&] {
        launch_per_pixel(img, FlowWarpBackward<scalar_t, index_t>{
                                  pixels, strided4<const scalar_t, index_t>(grad_out),
                                  strided4<const scalar_t, index_t>(img), strided4<const scalar_t, index_t>(flow),
                                  image_grad.sink<acc_t, index_t>(sampling), strided4<scalar_t, index_t>(grad_flow), need[0],
                                  need[1], sampling});
      });
    }
    grad_img = image_grad.finish(img);
  });
  return {grad_img, or_unrequested(grad_flow, flow)};
}

// --------------------------------------------------------------------------------------------- warp_blend

template <typename scalar_t, typename index_t>
struct WarpBlendForward {
  using acc_t = at::opmath_type<scalar_t>;
  Pixels pixels;
  Strided4<const scalar_t, index_t> prev, flow, raw, weight;
  Strided4<scalar_t, index_t> out;
  Sampling sampling;

  V2V_HOST_DEVICE void operator()(int64_t i) const {
    const auto [b, y, x, s] = thread_pixel<acc_t>(i, pixels, flow, sampling);
    const acc_t w = static_cast<acc_t>(weight(b, 0, y, x));
    const auto off = corner_offsets(s, prev.sy, prev.sx);
    for (int64_t c = 0; c < pixels.C; ++c) {
      const acc_t warped = s.valid ? interpolate(read_corners<acc_t>(prev.plane(b, c), off), s.x, s.y) : acc_t(NAN);
      out(b, c, y, x) = static_cast<scalar_t>(static_cast<acc_t>(raw(b, c, y, x)) * w + warped * (acc_t(1) - w));
    }
  }
};

template <typename scalar_t, typename index_t>
struct WarpBlendBackward {
  using acc_t = at::opmath_type<scalar_t>;
  Pixels pixels;
  Strided4<const scalar_t, index_t> grad_out, prev, flow, raw, weight;
  ImageGradSink<acc_t, index_t> grad_prev;
  Strided4<scalar_t, index_t> grad_flow, grad_raw, grad_weight;
  bool need_prev, need_flow, need_raw, need_weight;
  Sampling sampling;

  V2V_HOST_DEVICE void operator()(int64_t i) const {
    const auto [b, y, x, s] = thread_pixel<acc_t>(i, pixels, flow, sampling);
    const acc_t w = static_cast<acc_t>(weight(b, 0, y, x));
    const bool need_warped = need_flow || need_weight;
    const auto off_prev = corner_offsets(s, prev.sy, prev.sx);
    const auto off_grad = corner_offsets(s, grad_prev.acc.sy, grad_prev.acc.sx);
    acc_t gx = 0, gy = 0, gw = 0;
    for (int64_t c = 0; c < pixels.C; ++c) {
      const acc_t g = static_cast<acc_t>(grad_out(b, c, y, x));
      if (need_raw) grad_raw(b, c, y, x) = static_cast<scalar_t>(g * w);
      const acc_t gp = g * (acc_t(1) - w);
      if (need_prev && s.valid) grad_prev.scatter(i, pixels.C, b, c, s, off_grad, gp);
      if (!need_warped) continue;
      acc_t warped = acc_t(NAN);
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
};

Tensor warp_blend_cuda(const Tensor& prev, const Tensor& flow, const Tensor& raw, const Tensor& weight,
                       V2V_SAMPLING_PARAMS) {
  const auto [sampling, out] = start_forward(Op::kWarpBlend, {prev, flow, raw, weight}, V2V_SAMPLING_ARGS);
  const Pixels pixels = Pixels::of(prev);
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, prev.scalar_type(), "warp_blend_cuda", [&] {
    V2V_DISPATCH_INDEX(use_int32(prev, flow, raw, weight, out), [&] {
      launch_per_pixel(prev, WarpBlendForward<scalar_t, index_t>{
                                 pixels, strided4<const scalar_t, index_t>(prev), strided4<const scalar_t, index_t>(flow),
                                 strided4<const scalar_t, index_t>(raw), strided4<const scalar_t, index_t>(weight),
                                 strided4<scalar_t, index_t>(out), sampling});
    });
  });
  return out;
}

std::tuple<Tensor, Tensor, Tensor, Tensor> warp_blend_backward_cuda(const Tensor& grad_out, const Tensor& prev,
                                                                    const Tensor& flow, const Tensor& raw,
                                                                    const Tensor& weight,
                                                                    V2V_SAMPLING_PARAMS, std::array<bool, 4> need) {
  const auto [sampling, grads] =
      start_backward(Op::kWarpBlend, grad_out, {prev, flow, raw, weight}, V2V_SAMPLING_ARGS, need);
  const Pixels pixels = Pixels::of(prev);
  const Tensor &grad_flow = grads[1], &grad_raw = grads[2], &grad_weight = grads[3];
  Tensor grad_prev;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, prev.scalar_type(), "warp_blend_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    ImageGrad image_grad(prev, need[0], c10::CppTypeToScalarType<acc_t>::value, pixels.n);
    if (pixels.n > 0) {
      V2V_DISPATCH_INDEX(use_int32(prev, flow, raw, weight, grad_out, image_grad.acc, grad_flow, grad_raw, grad_weight), [&] {
        launch_per_pixel(prev, WarpBlendBackward<scalar_t, index_t>{
                                   pixels, strided4<const scalar_t, index_t>(grad_out),
                                   strided4<const scalar_t, index_t>(prev), strided4<const scalar_t, index_t>(flow),
                                   strided4<const scalar_t, index_t>(raw), strided4<const scalar_t, index_t>(weight),
                                   image_grad.sink<acc_t, index_t>(sampling), strided4<scalar_t, index_t>(grad_flow),
                                   strided4<scalar_t, index_t>(grad_raw), strided4<scalar_t, index_t>(grad_weight),
                                   need[0], need[1], need[2], need[3], sampling});
      });
    }
    grad_prev = image_grad.finish(prev);
  });
  return {grad_prev, or_unrequested(grad_flow, flow), or_unrequested(grad_raw, raw),
          or_unrequested(grad_weight, weight)};
}

// ----------------------------------------------------------------------------------------- masked_warp_l1

// The forward's per-pixel value: |warped * m - t * m| summed over the channels (per_pixel_block_sum_kernel
// sums it over each block; at::sum over the blocks).
template <typename scalar_t, typename index_t>
struct MaskedWarpL1Forward {
  using acc_t = at::opmath_type<scalar_t>;
  Pixels pixels;
  Strided4<const scalar_t, index_t> src, flow, target, mask;
  Sampling sampling;

  V2V_HOST_DEVICE acc_t operator()(int64_t i) const {
    const auto [b, y, x, s] = thread_pixel<acc_t>(i, pixels, flow, sampling);
    const auto off = corner_offsets(s, src.sy, src.sx);
    acc_t sum = 0;
    for (int64_t c = 0; c < pixels.C; ++c) {
      const acc_t warped = s.valid ? interpolate(read_corners<acc_t>(src.plane(b, c), off), s.x, s.y) : acc_t(NAN);
      const acc_t m = static_cast<acc_t>(mask(b, c, y, x));
      const acc_t d = warped * m - static_cast<acc_t>(target(b, c, y, x)) * m;
      sum += d < acc_t(0) ? -d : d;
    }
    return sum;
  }
};

template <typename scalar_t, typename index_t>
struct MaskedWarpL1Backward {
  using acc_t = at::opmath_type<scalar_t>;
  Pixels pixels;
  const scalar_t* grad_out;
  double inv_count;
  Strided4<const scalar_t, index_t> src, flow, target, mask;
  ImageGradSink<acc_t, index_t> grad_src;
  Strided4<scalar_t, index_t> grad_flow, grad_target, grad_mask;
  bool need_src, need_flow, need_target, need_mask, mask_per_channel;
  Sampling sampling;

  V2V_HOST_DEVICE void operator()(int64_t i) const {
    const auto [b, y, x, s] = thread_pixel<acc_t>(i, pixels, flow, sampling);
    const acc_t scale = static_cast<acc_t>(static_cast<double>(static_cast<acc_t>(*grad_out)) * inv_count);
    const auto off_src = corner_offsets(s, src.sy, src.sx);
    const auto off_grad = corner_offsets(s, grad_src.acc.sy, grad_src.acc.sx);
    acc_t gx = 0, gy = 0, gm_sum = 0;
    for (int64_t c = 0; c < pixels.C; ++c) {
      Corners<acc_t> k{};
      acc_t warped = acc_t(NAN);
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
        if (need_src) grad_src.scatter(i, pixels.C, b, c, s, off_grad, sg * m);
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
};

Tensor masked_warp_l1_cuda(const Tensor& src, const Tensor& flow, const Tensor& target, const Tensor& mask,
                           V2V_SAMPLING_PARAMS) {
  const auto [sampling, out] = start_forward(Op::kMaskedWarpL1, {src, flow, target, mask}, V2V_SAMPLING_ARGS);
  const Pixels pixels = Pixels::of(src);
  const double count = static_cast<double>(src.numel());
  // The mean over zero elements is NaN, as torch.mean says.
  if (src.numel() == 0) return out.fill_(std::numeric_limits<double>::quiet_NaN());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, src.scalar_type(), "masked_warp_l1_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    Tensor partials = at::empty({blocks_for(pixels.n)}, src.options().dtype(c10::CppTypeToScalarType<acc_t>::value));
    V2V_DISPATCH_INDEX(use_int32(src, flow, target, mask), [&] {
      launch_per_pixel_block_sum(
          src,
          MaskedWarpL1Forward<scalar_t, index_t>{pixels, strided4<const scalar_t, index_t>(src),
                                                 strided4<const scalar_t, index_t>(flow),
                                                 strided4<const scalar_t, index_t>(target),
                                                 strided4<const scalar_t, index_t>(mask), sampling},
          partials.data_ptr<acc_t>());
    });
    out.copy_(partials.sum(at::kDouble).div_(count));
  });
  return out;
}

std::tuple<Tensor, Tensor, Tensor, Tensor> masked_warp_l1_backward_cuda(const Tensor& grad_out, const Tensor& src,
                                                                        const Tensor& flow, const Tensor& target,
                                                                        const Tensor& mask,
                                                                        V2V_SAMPLING_PARAMS, std::array<bool, 4> need) {
  const auto [sampling, grads] =
      start_backward(Op::kMaskedWarpL1, grad_out, {src, flow, target, mask}, V2V_SAMPLING_ARGS, need);
  const Pixels pixels = Pixels::of(src);
  const bool mask_per_channel = mask.size(1) != 1 || pixels.C == 1;
  const Tensor &grad_flow = grads[1], &grad_target = grads[2], &grad_mask = grads[3];
  Tensor grad_src;
  const Tensor grad_scalar = grad_out.reshape({}).contiguous();
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, src.scalar_type(), "masked_warp_l1_backward_cuda", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    ImageGrad image_grad(src, need[0], c10::CppTypeToScalarType<acc_t>::value, pixels.n);
    if (src.numel() > 0) {
      V2V_DISPATCH_INDEX(use_int32(src, flow, target, mask, image_grad.acc, grad_flow, grad_target, grad_mask), [&] {
        launch_per_pixel(src, MaskedWarpL1Backward<scalar_t, index_t>{
                                  pixels, grad_scalar.data_ptr<scalar_t>(), 1.0 / static_cast<double>(src.numel()),
                                  strided4<const scalar_t, index_t>(src), strided4<const scalar_t, index_t>(flow),
                                  strided4<const scalar_t, index_t>(target), strided4<const scalar_t, index_t>(mask),
                                  image_grad.sink<acc_t, index_t>(sampling), strided4<scalar_t, index_t>(grad_flow),
                                  strided4<scalar_t, index_t>(grad_target), strided4<scalar_t, index_t>(grad_mask),
                                  need[0], need[1], need[2], need[3], mask_per_channel, sampling});
      });
    } else {
      for (const Tensor* g : {&grad_flow, &grad_target, &grad_mask}) {
        if (g->defined()) g->zero_();
      }
    }
    grad_src = image_grad.finish(src);
  });
  return {grad_src, or_unrequested(grad_flow, flow), or_unrequested(grad_target, target),
          or_unrequested(grad_mask, mask)};
}

}  // namespace

TORCH_LIBRARY_IMPL(vid2vid_fast, V2V_CUDA_DISPATCH_KEY, m) {
  m.impl("flow_warp", &flow_warp_cuda);
  m.impl("flow_warp_backward", &flow_warp_backward_cuda);
  m.impl("warp_blend", &warp_blend_cuda);
  m.impl("warp_blend_backward", &warp_blend_backward_cuda);
  m.impl("masked_warp_l1", &masked_warp_l1_cuda);
  m.impl("masked_warp_l1_backward", &masked_warp_l1_backward_cuda);
}

}  // namespace vid2vid_fast
