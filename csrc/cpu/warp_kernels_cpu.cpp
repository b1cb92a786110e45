// CPU kernels for flow_warp, warp_blend and masked_warp_l1, forward and backward.
//
// Work is split two ways. Per-pixel outputs (the forward, and the gradients that are gathered: flow,
// blend weight, raw, target, mask) are split by image rows. The image gradient is a scatter, so it is
// split by (batch, channel) planes instead: a plane is only ever written by the thread that owns it,
// which makes the backward race-free and bit-identical from run to run without atomics.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <limits>
#include <vector>

#include "../ops.h"

namespace vid2vid_fast {
namespace {

using at::Tensor;

// Elements a thread should get at least, so small images do not pay for thread wake-ups.
constexpr int64_t kGrainElements = 16384;

template <typename scalar_t>
using View = Strided4<scalar_t, int64_t>;

template <typename acc_t>
acc_t quiet_nan() {
  return std::numeric_limits<acc_t>::quiet_NaN();
}

// Calls f(b, y, x, sample) for every output pixel; rows are split across threads.
template <typename acc_t, typename scalar_t, typename F>
void for_each_pixel(const View<const scalar_t>& flow, int64_t B, int64_t C, int64_t H, int64_t W, bool zeros,
                    const F& f) {
  const int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, W * C));
  at::parallel_for(0, B * H, grain, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / H;
      const int64_t y = row % H;
      for (int64_t x = 0; x < W; ++x) {
        const acc_t dx = static_cast<acc_t>(flow(b, 0, y, x));
        const acc_t dy = static_cast<acc_t>(flow(b, 1, y, x));
        f(b, y, x, sample_at<acc_t>(x, y, dx, dy, H, W, zeros));
      }
    }
  });
}

// Scatters g(b, c, y, x, sample) into grad (an acc_t buffer laid out like the image) for every valid pixel;
// (b, c) planes are split across threads.
template <typename acc_t, typename scalar_t, typename G>
void scatter_planes(const View<const scalar_t>& flow, Tensor& grad, bool zeros, const G& g) {
  const int64_t B = grad.size(0), C = grad.size(1), H = grad.size(2), W = grad.size(3);
  const View<acc_t> out = strided4<acc_t, int64_t>(grad);
  const int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, H * W));
  at::parallel_for(0, B * C, grain, [&](int64_t begin, int64_t end) {
    for (int64_t bc = begin; bc < end; ++bc) {
      const int64_t b = bc / C;
      const int64_t c = bc % C;
      const Plane<acc_t, int64_t> plane = out.plane(b, c);
      auto add = [&](int64_t yy, int64_t xx, acc_t v) { plane.at(yy, xx) += v; };
      for (int64_t y = 0; y < H; ++y) {
        for (int64_t x = 0; x < W; ++x) {
          const acc_t dx = static_cast<acc_t>(flow(b, 0, y, x));
          const acc_t dy = static_cast<acc_t>(flow(b, 1, y, x));
          const Sample<acc_t> s = sample_at<acc_t>(x, y, dx, dy, H, W, zeros);
          if (s.valid) scatter_corners(s, g(b, c, y, x, s), add);
        }
      }
    }
  });
}

// Returns the image gradient in the image's dtype (accumulated in acc_t, which is wider for fp16/bf16).
Tensor finish_grad(const Tensor& acc_grad, const Tensor& like) {
  return acc_grad.scalar_type() == like.scalar_type() ? acc_grad : acc_grad.to(like.scalar_type());
}

// ---------------------------------------------------------------------------------------------- flow_warp

Tensor flow_warp_cpu(const Tensor& img, const Tensor& flow, const std::string& padding_mode) {
  check_image_and_flow(img, flow, "img");
  const bool zeros = parse_zeros_padding(padding_mode);
  Tensor out = empty_like_layout(img);
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, img.scalar_type(), "flow_warp_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto in = strided4<const scalar_t, int64_t>(img);
    const auto fl = strided4<const scalar_t, int64_t>(flow);
    const auto o = strided4<scalar_t, int64_t>(out);
    const int64_t C = img.size(1);
    for_each_pixel<acc_t>(fl, img.size(0), C, img.size(2), img.size(3), zeros,
                          [&](int64_t b, int64_t y, int64_t x, const Sample<acc_t>& s) {
                            for (int64_t c = 0; c < C; ++c) {
                              const acc_t v = s.valid ? interpolate(read_corners(in.plane(b, c), s), s)
                                                      : quiet_nan<acc_t>();
                              o(b, c, y, x) = static_cast<scalar_t>(v);
                            }
                          });
  });
  return out;
}

std::tuple<Tensor, Tensor> flow_warp_backward_cpu(const Tensor& grad_out, const Tensor& img, const Tensor& flow,
                                                  const std::string& padding_mode, std::array<bool, 2> mask) {
  check_image_and_flow(img, flow, "img");
  check_same_layout(grad_out, "grad_out", img, "img", 0);
  const bool zeros = parse_zeros_padding(padding_mode);
  Tensor grad_img = unrequested(img), grad_flow = unrequested(flow);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, img.scalar_type(), "flow_warp_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto acc_type = c10::CppTypeToScalarType<acc_t>::value;
    const auto in = strided4<const scalar_t, int64_t>(img);
    const auto fl = strided4<const scalar_t, int64_t>(flow);
    const auto go = strided4<const scalar_t, int64_t>(grad_out);
    const int64_t C = img.size(1);
    if (mask[0]) {
      Tensor acc = zeros_like_layout(img, acc_type);
      scatter_planes<acc_t>(fl, acc, zeros, [&](int64_t b, int64_t c, int64_t y, int64_t x, const Sample<acc_t>&) {
        return static_cast<acc_t>(go(b, c, y, x));
      });
      grad_img = finish_grad(acc, img);
    }
    if (mask[1]) {
      grad_flow = empty_like_layout(flow);
      const auto gf = strided4<scalar_t, int64_t>(grad_flow);
      for_each_pixel<acc_t>(fl, img.size(0), C, img.size(2), img.size(3), zeros,
                            [&](int64_t b, int64_t y, int64_t x, const Sample<acc_t>& s) {
                              acc_t gx = 0, gy = 0;
                              if (s.valid) {
                                for (int64_t c = 0; c < C; ++c) {
                                  const Corners<acc_t> k = read_corners(in.plane(b, c), s);
                                  const acc_t g = static_cast<acc_t>(go(b, c, y, x));
                                  gx += g * interpolate_dx(k, s);
                                  gy += g * interpolate_dy(k, s);
                                }
                              }
                              gf(b, 0, y, x) = static_cast<scalar_t>(gx);
                              gf(b, 1, y, x) = static_cast<scalar_t>(gy);
                            });
    }
  });
  return {grad_img, grad_flow};
}

// --------------------------------------------------------------------------------------------- warp_blend

void check_warp_blend(const Tensor& prev, const Tensor& flow, const Tensor& raw, const Tensor& weight) {
  check_image_and_flow(prev, flow, "prev");
  check_same_layout(raw, "raw", prev, "prev", 0);
  check_mask(weight, "weight", prev, /*per_channel_ok=*/false);
}

Tensor warp_blend_cpu(const Tensor& prev, const Tensor& flow, const Tensor& raw, const Tensor& weight,
                      const std::string& padding_mode) {
  check_warp_blend(prev, flow, raw, weight);
  const bool zeros = parse_zeros_padding(padding_mode);
  Tensor out = empty_like_layout(raw);
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, prev.scalar_type(), "warp_blend_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto pv = strided4<const scalar_t, int64_t>(prev);
    const auto fl = strided4<const scalar_t, int64_t>(flow);
    const auto rw = strided4<const scalar_t, int64_t>(raw);
    const auto wt = strided4<const scalar_t, int64_t>(weight);
    const auto o = strided4<scalar_t, int64_t>(out);
    const int64_t C = prev.size(1);
    for_each_pixel<acc_t>(fl, prev.size(0), C, prev.size(2), prev.size(3), zeros,
                          [&](int64_t b, int64_t y, int64_t x, const Sample<acc_t>& s) {
                            const acc_t w = static_cast<acc_t>(wt(b, 0, y, x));
                            for (int64_t c = 0; c < C; ++c) {
                              const acc_t warped = s.valid ? interpolate(read_corners(pv.plane(b, c), s), s)
                                                           : quiet_nan<acc_t>();
                              const acc_t r = static_cast<acc_t>(rw(b, c, y, x));
                              o(b, c, y, x) = static_cast<scalar_t>(r * w + warped * (acc_t(1) - w));
                            }
                          });
  });
  return out;
}

std::tuple<Tensor, Tensor, Tensor, Tensor> warp_blend_backward_cpu(const Tensor& grad_out, const Tensor& prev,
                                                                   const Tensor& flow, const Tensor& raw,
                                                                   const Tensor& weight,
                                                                   const std::string& padding_mode,
                                                                   std::array<bool, 4> mask) {
  check_warp_blend(prev, flow, raw, weight);
  check_same_layout(grad_out, "grad_out", prev, "prev", 0);
  const bool zeros = parse_zeros_padding(padding_mode);
  Tensor grad_prev = unrequested(prev), grad_flow = unrequested(flow);
  Tensor grad_raw = unrequested(raw), grad_weight = unrequested(weight);
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, prev.scalar_type(), "warp_blend_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto acc_type = c10::CppTypeToScalarType<acc_t>::value;
    const auto pv = strided4<const scalar_t, int64_t>(prev);
    const auto fl = strided4<const scalar_t, int64_t>(flow);
    const auto rw = strided4<const scalar_t, int64_t>(raw);
    const auto wt = strided4<const scalar_t, int64_t>(weight);
    const auto go = strided4<const scalar_t, int64_t>(grad_out);
    const int64_t C = prev.size(1);
    if (mask[0]) {
      Tensor acc = zeros_like_layout(prev, acc_type);
      scatter_planes<acc_t>(fl, acc, zeros, [&](int64_t b, int64_t c, int64_t y, int64_t x, const Sample<acc_t>&) {
        return static_cast<acc_t>(go(b, c, y, x)) * (acc_t(1) - static_cast<acc_t>(wt(b, 0, y, x)));
      });
      grad_prev = finish_grad(acc, prev);
    }
    if (!(mask[1] || mask[2] || mask[3])) return;
    if (mask[1]) grad_flow = empty_like_layout(flow);
    if (mask[2]) grad_raw = empty_like_layout(raw);
    if (mask[3]) grad_weight = empty_like_layout(weight);
    const auto gf = strided4<scalar_t, int64_t>(grad_flow.numel() ? grad_flow : flow);
    const auto gr = strided4<scalar_t, int64_t>(grad_raw.numel() ? grad_raw : raw);
    const auto gw = strided4<scalar_t, int64_t>(grad_weight.numel() ? grad_weight : weight);
    const bool need_warped = mask[1] || mask[3];
    for_each_pixel<acc_t>(
        fl, prev.size(0), C, prev.size(2), prev.size(3), zeros,
        [&](int64_t b, int64_t y, int64_t x, const Sample<acc_t>& s) {
          const acc_t w = static_cast<acc_t>(wt(b, 0, y, x));
          acc_t gx = 0, gy = 0, gwsum = 0;
          for (int64_t c = 0; c < C; ++c) {
            const acc_t g = static_cast<acc_t>(go(b, c, y, x));
            if (mask[2]) gr(b, c, y, x) = static_cast<scalar_t>(g * w);
            if (!need_warped) continue;
            acc_t warped = quiet_nan<acc_t>();
            if (s.valid) {
              const Corners<acc_t> k = read_corners(pv.plane(b, c), s);
              warped = interpolate(k, s);
              const acc_t gp = g * (acc_t(1) - w);
              gx += gp * interpolate_dx(k, s);
              gy += gp * interpolate_dy(k, s);
            }
            gwsum += g * (static_cast<acc_t>(rw(b, c, y, x)) - warped);
          }
          if (mask[1]) {
            gf(b, 0, y, x) = static_cast<scalar_t>(gx);
            gf(b, 1, y, x) = static_cast<scalar_t>(gy);
          }
          if (mask[3]) gw(b, 0, y, x) = static_cast<scalar_t>(gwsum);
        });
  });
  return {grad_prev, grad_flow, grad_raw, grad_weight};
}

// ----------------------------------------------------------------------------------------- masked_warp_l1

void check_masked_warp_l1(const Tensor& src, const Tensor& flow, const Tensor& target, const Tensor& mask) {
  check_image_and_flow(src, flow, "src");
  check_same_layout(target, "target", src, "src", 0);
  check_mask(mask, "mask", src, /*per_channel_ok=*/true);
}

// Rows per partial sum of the loss. Fixed, not derived from the thread count, so the summation order
// (and so the bits of the result) is the same on every machine.
constexpr int64_t kRowsPerPartial = 16;

Tensor masked_warp_l1_cpu(const Tensor& src, const Tensor& flow, const Tensor& target, const Tensor& mask,
                          const std::string& padding_mode) {
  check_masked_warp_l1(src, flow, target, mask);
  const bool zeros = parse_zeros_padding(padding_mode);
  const int64_t B = src.size(0), C = src.size(1), H = src.size(2), W = src.size(3);
  Tensor out = at::empty({}, src.options());
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, src.scalar_type(), "masked_warp_l1_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto sv = strided4<const scalar_t, int64_t>(src);
    const auto fl = strided4<const scalar_t, int64_t>(flow);
    const auto tg = strided4<const scalar_t, int64_t>(target);
    const auto mk = strided4<const scalar_t, int64_t>(mask);
    const int64_t rows = B * H;
    const int64_t n_partials = (rows + kRowsPerPartial - 1) / kRowsPerPartial;
    std::vector<double> partials(n_partials, 0.0);
    const int64_t grain = std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, kRowsPerPartial * W * C));
    at::parallel_for(0, n_partials, grain, [&](int64_t begin, int64_t end) {
      for (int64_t p = begin; p < end; ++p) {
        double sum = 0.0;
        for (int64_t row = p * kRowsPerPartial; row < std::min(rows, (p + 1) * kRowsPerPartial); ++row) {
          const int64_t b = row / H, y = row % H;
          for (int64_t x = 0; x < W; ++x) {
            const acc_t dx = static_cast<acc_t>(fl(b, 0, y, x));
            const acc_t dy = static_cast<acc_t>(fl(b, 1, y, x));
            const Sample<acc_t> s = sample_at<acc_t>(x, y, dx, dy, H, W, zeros);
            for (int64_t c = 0; c < C; ++c) {
              const acc_t warped =
                  s.valid ? interpolate(read_corners(sv.plane(b, c), s), s) : quiet_nan<acc_t>();
              const acc_t m = static_cast<acc_t>(mk(b, c, y, x));
              sum += std::abs(static_cast<double>(warped * m - static_cast<acc_t>(tg(b, c, y, x)) * m));
            }
          }
        }
        partials[p] = sum;
      }
    });
    double total = 0.0;
    for (double p : partials) total += p;
    // The mean over zero elements is NaN, as torch.mean says.
    out.fill_(total / static_cast<double>(B * C * H * W));
  });
  return out;
}

std::tuple<Tensor, Tensor, Tensor, Tensor> masked_warp_l1_backward_cpu(const Tensor& grad_out, const Tensor& src,
                                                                       const Tensor& flow, const Tensor& target,
                                                                       const Tensor& mask,
                                                                       const std::string& padding_mode,
                                                                       std::array<bool, 4> need) {
  check_masked_warp_l1(src, flow, target, mask);
  TORCH_CHECK(grad_out.numel() == 1, "grad_out of masked_warp_l1 must be a scalar, got ", grad_out.sizes());
  const bool zeros = parse_zeros_padding(padding_mode);
  const int64_t B = src.size(0), C = src.size(1), H = src.size(2), W = src.size(3);
  const bool mask_per_channel = mask.size(1) != 1 || C == 1;
  Tensor grad_src = unrequested(src), grad_flow = unrequested(flow);
  Tensor grad_target = unrequested(target), grad_mask = unrequested(mask);
  if (src.numel() == 0) {
    if (need[0]) grad_src = at::zeros_like(src);
    if (need[1]) grad_flow = at::zeros_like(flow);
    if (need[2]) grad_target = at::zeros_like(target);
    if (need[3]) grad_mask = at::zeros_like(mask);
    return {grad_src, grad_flow, grad_target, grad_mask};
  }
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, src.scalar_type(), "masked_warp_l1_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const auto acc_type = c10::CppTypeToScalarType<acc_t>::value;
    const acc_t scale = static_cast<acc_t>(grad_out.item<double>() / static_cast<double>(B * C * H * W));
    const auto sv = strided4<const scalar_t, int64_t>(src);
    const auto fl = strided4<const scalar_t, int64_t>(flow);
    const auto tg = strided4<const scalar_t, int64_t>(target);
    const auto mk = strided4<const scalar_t, int64_t>(mask);
    // d loss / d (warped value) at (b, c, y, x), before the mask: sign(warped*m - t*m) * scale.
    auto warped_and_sign = [&](int64_t b, int64_t c, int64_t y, int64_t x, const Sample<acc_t>& s,
                               const Corners<acc_t>* k, acc_t* warped) {
      *warped = s.valid ? interpolate(*k, s) : quiet_nan<acc_t>();
      const acc_t m = static_cast<acc_t>(mk(b, c, y, x));
      return sign_of(*warped * m - static_cast<acc_t>(tg(b, c, y, x)) * m) * scale;
    };
    if (need[0]) {
      Tensor acc = zeros_like_layout(src, acc_type);
      scatter_planes<acc_t>(fl, acc, zeros, [&](int64_t b, int64_t c, int64_t y, int64_t x, const Sample<acc_t>& s) {
        const Corners<acc_t> k = read_corners(sv.plane(b, c), s);
        acc_t warped;
        return warped_and_sign(b, c, y, x, s, &k, &warped) * static_cast<acc_t>(mk(b, c, y, x));
      });
      grad_src = finish_grad(acc, src);
    }
    if (!(need[1] || need[2] || need[3])) return;
    if (need[1]) grad_flow = empty_like_layout(flow);
    if (need[2]) grad_target = empty_like_layout(target);
    if (need[3]) grad_mask = empty_like_layout(mask);
    const auto gf = strided4<scalar_t, int64_t>(grad_flow.numel() ? grad_flow : flow);
    const auto gt = strided4<scalar_t, int64_t>(grad_target.numel() ? grad_target : target);
    const auto gm = strided4<scalar_t, int64_t>(grad_mask.numel() ? grad_mask : mask);
    for_each_pixel<acc_t>(fl, B, C, H, W, zeros, [&](int64_t b, int64_t y, int64_t x, const Sample<acc_t>& s) {
      acc_t gx = 0, gy = 0, gmsum = 0;
      for (int64_t c = 0; c < C; ++c) {
        Corners<acc_t> k{};
        if (s.valid) k = read_corners(sv.plane(b, c), s);
        acc_t warped;
        const acc_t sg = warped_and_sign(b, c, y, x, s, &k, &warped);
        const acc_t m = static_cast<acc_t>(mk(b, c, y, x));
        const acc_t t = static_cast<acc_t>(tg(b, c, y, x));
        if (need[2]) gt(b, c, y, x) = static_cast<scalar_t>(-sg * m);
        if (need[3]) {
          const acc_t v = sg * (warped - t);
          if (mask_per_channel) {
            gm(b, c, y, x) = static_cast<scalar_t>(v);
          } else {
            gmsum += v;
          }
        }
        if (need[1] && s.valid) {
          gx += sg * m * interpolate_dx(k, s);
          gy += sg * m * interpolate_dy(k, s);
        }
      }
      if (need[1]) {
        gf(b, 0, y, x) = static_cast<scalar_t>(gx);
        gf(b, 1, y, x) = static_cast<scalar_t>(gy);
      }
      if (need[3] && !mask_per_channel) gm(b, 0, y, x) = static_cast<scalar_t>(gmsum);
    });
  });
  return {grad_src, grad_flow, grad_target, grad_mask};
}

}  // namespace

TORCH_LIBRARY_IMPL(vid2vid_fast, CPU, m) {
  m.impl("flow_warp", &flow_warp_cpu);
  m.impl("flow_warp_backward", &flow_warp_backward_cpu);
  m.impl("warp_blend", &warp_blend_cpu);
  m.impl("warp_blend_backward", &warp_blend_backward_cpu);
  m.impl("masked_warp_l1", &masked_warp_l1_cpu);
  m.impl("masked_warp_l1_backward", &masked_warp_l1_backward_cpu);
}

}  // namespace vid2vid_fast
