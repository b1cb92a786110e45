// The CPU ops, forward and backward: flow_warp, warp_blend and masked_warp_l1, each written once over the
// layers below it, the way ATen's GridSampler separates coordinates, sampling and iteration:
//   tile_samples.h   the tile arrays: a tile's samples (warp_math.h's coordinates), planar sampling, scatter
//   threading.h      the threading drivers: rows split into chunks, tiles, the backward's private buffers
//   block_layout.h   the channel-block layout (BlockLayout) and its workspace
//   blocks_avx2.h, blocks_avx512.h   the instruction-set specific sampling by channel blocks
//   group_sampler.h  sampling by channel groups from either layout; the forward and backward drivers
//
// This file is compiled once per instruction set (kernels_baseline.cpp, kernels_avx2.cpp,
// kernels_avx512.cpp), into the namespace V2V_CPU_ISA; register_cpu.cpp picks the build the processor runs.
#pragma once
#ifndef V2V_CPU_PRELUDE_INCLUDED
#error "include prelude.h first (before the target pragma)"
#endif

#ifndef V2V_CPU_ISA
#error "define V2V_CPU_ISA (the namespace of this build of the kernels) before including ops_impl.h"
#endif

#include "group_sampler.h"

V2V_CPU_NAMESPACE_BEGIN

#define V2V_DISPATCH_CPU(dtype, name, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, name, __VA_ARGS__)

// dst[x * dst_stride] = src[x * src_stride] for x < n: with unit strides a loop the compiler vectorizes,
// which it does not do for the general form.
template <typename dst_t, typename src_t>
void copy_row(dst_t* dst, int64_t dst_stride, const src_t* src, int64_t src_stride, int64_t n) {
  if (dst_stride == 1 && src_stride == 1) {
    for (int64_t x = 0; x < n; ++x) dst[x] = static_cast<dst_t>(src[x]);
  } else {
    for (int64_t x = 0; x < n; ++x) dst[x * dst_stride] = static_cast<dst_t>(src[x * src_stride]);
  }
}

V2V_CPU_NAMESPACE_END

namespace vid2vid_fast {
namespace V2V_CPU_ISA {

// ---------------------------------------------------------------------------------------------- flow_warp

Tensor flow_warp_cpu(const Tensor& img, const Tensor& flow, V2V_SAMPLING_PARAMS) {
  const auto [sampling, out] = start_forward(Op::kFlowWarp, {img, flow}, V2V_SAMPLING_ARGS);
  if (out.numel() == 0) return out;
  V2V_DISPATCH_CPU(img.scalar_type(), "flow_warp_cpu", [&] {
    V2V_DISPATCH_INDEX(all_fit_int32(img, flow, out), [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const auto o = strided4<scalar_t, index_t>(out);
      for_each_group_tile<acc_t, index_t, scalar_t>(img, flow, sampling, [&](int64_t b, int64_t y, int64_t x0,
                                                                             TileSamples<acc_t, index_t>& t,
                                                                             int64_t c0, int64_t channels) {
        for (int64_t k = 0; k < channels; ++k) copy_row(&o(b, c0 + k, y, x0), o.sx, t.values[k], 1, t.n);
      });
    });
  });
  return out;
}

std::tuple<Tensor, Tensor> flow_warp_backward_cpu(const Tensor& grad_out, const Tensor& img, const Tensor& flow,
                                                  V2V_SAMPLING_PARAMS, std::array<bool, 2> mask) {
  const auto [sampling, grads] = start_backward(Op::kFlowWarp, grad_out, {img, flow}, V2V_SAMPLING_ARGS, mask);
  Tensor grad_img;
  const Tensor& grad_flow = grads[1];
  const bool flow_grad = flow_grad_by_tiles(sampling, mask[1], grad_flow);
  if (!mask[0] && !flow_grad) return {unrequested(img), or_unrequested(grad_flow, flow)};
  V2V_DISPATCH_CPU(img.scalar_type(), "flow_warp_backward_cpu", [&] {
    V2V_DISPATCH_INDEX(all_fit_int32(img, flow, grad_out), [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const auto go = strided4<const scalar_t, index_t>(grad_out);
      const auto gf = strided4<scalar_t, index_t>(grad_flow);
      Tensor g = backward_by_groups<acc_t, index_t, scalar_t>(
          img, flow, sampling, mask[0], flow_grad, GroupValues::kNone,
          [&](int64_t b, int64_t y, int64_t x0, TileSamples<acc_t, index_t>& t, int64_t c0, int64_t channels) {
            for (int64_t k = 0; k < channels; ++k) copy_row(t.grad[k], 1, &go(b, c0 + k, y, x0), go.sx, t.n);
          },
          Nothing{},
          [&](int64_t b, int64_t y, int64_t x0, TileSamples<acc_t, index_t>& t) {
            if (!flow_grad) return;
            copy_row(&gf(b, 0, y, x0), gf.sx, t.sums[0], 1, t.n);
            copy_row(&gf(b, 1, y, x0), gf.sx, t.sums[1], 1, t.n);
          });
      grad_img = g;
    });
  });
  return {or_unrequested(grad_img, img), or_unrequested(grad_flow, flow)};
}

// --------------------------------------------------------------------------------------------- warp_blend

Tensor warp_blend_cpu(const Tensor& prev, const Tensor& flow, const Tensor& raw, const Tensor& weight,
                      V2V_SAMPLING_PARAMS) {
  const auto [sampling, out] = start_forward(Op::kWarpBlend, {prev, flow, raw, weight}, V2V_SAMPLING_ARGS);
  if (out.numel() == 0) return out;
  V2V_DISPATCH_CPU(prev.scalar_type(), "warp_blend_cpu", [&] {
    V2V_DISPATCH_INDEX(all_fit_int32(prev, flow, raw, weight, out), [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const auto rw = strided4<const scalar_t, index_t>(raw);
      const auto wt = strided4<const scalar_t, index_t>(weight);
      const auto o = strided4<scalar_t, index_t>(out);
      for_each_group_tile<acc_t, index_t, scalar_t>(prev, flow, sampling, [&](int64_t b, int64_t y, int64_t x0,
                                                                              TileSamples<acc_t, index_t>& t,
                                                                              int64_t c0, int64_t channels) {
        const scalar_t* w_row = &wt(b, 0, y, x0);
        for (int64_t k = 0; k < channels; ++k) {
          const scalar_t* r_row = &rw(b, c0 + k, y, x0);
          scalar_t* dst = &o(b, c0 + k, y, x0);
          for (int64_t x = 0; x < t.n; ++x) {
            const acc_t w = static_cast<acc_t>(w_row[x * wt.sx]);
            dst[x * o.sx] = static_cast<scalar_t>(static_cast<acc_t>(r_row[x * rw.sx]) * w + t.values[k][x] * (acc_t(1) - w));
          }
        }
      });
    });
  });
  return out;
}

std::tuple<Tensor, Tensor, Tensor, Tensor> warp_blend_backward_cpu(const Tensor& grad_out, const Tensor& prev,
                                                                   const Tensor& flow, const Tensor& raw,
                                                                   const Tensor& weight,
                                                                   V2V_SAMPLING_PARAMS, std::array<bool, 4> mask) {
  const auto [sampling, grads] =
      start_backward(Op::kWarpBlend, grad_out, {prev, flow, raw, weight}, V2V_SAMPLING_ARGS, mask);
  Tensor grad_prev;
  const Tensor &grad_flow = grads[1], &grad_raw = grads[2], &grad_weight = grads[3];
  const bool flow_grad = flow_grad_by_tiles(sampling, mask[1], grad_flow);
  V2V_DISPATCH_CPU(prev.scalar_type(), "warp_blend_backward_cpu", [&] {
    V2V_DISPATCH_INDEX(all_fit_int32(prev, flow, raw, weight, grad_out), [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const auto rw = strided4<const scalar_t, index_t>(raw);
      const auto wt = strided4<const scalar_t, index_t>(weight);
      const auto go = strided4<const scalar_t, index_t>(grad_out);
      const auto gf = strided4<scalar_t, index_t>(grad_flow);
      const auto gr = strided4<scalar_t, index_t>(grad_raw);
      const auto gw = strided4<scalar_t, index_t>(grad_weight);
      // A NaN-flow pixel's value is NaN, and so is its weight gradient; it sends no gradient to prev or flow.
      Tensor g = backward_by_groups<acc_t, index_t, scalar_t>(
          prev, flow, sampling, mask[0], flow_grad, mask[3] ? GroupValues::kWithGradients : GroupValues::kNone,
          [&](int64_t b, int64_t y, int64_t x0, TileSamples<acc_t, index_t>& t, int64_t c0, int64_t channels) {
            const scalar_t* w_row = &wt(b, 0, y, x0);
            // The raw gradient's condition is a constant of each loop, which then vectorizes.
            const auto fill = [&](auto kRawGrad) {
              for (int64_t k = 0; k < channels; ++k) {
                const scalar_t* g_row = &go(b, c0 + k, y, x0);
                scalar_t* gr_row = kRawGrad ? &gr(b, c0 + k, y, x0) : nullptr;
                for (int64_t x = 0; x < t.n; ++x) {
                  const acc_t g = static_cast<acc_t>(g_row[x * go.sx]), w = static_cast<acc_t>(w_row[x * wt.sx]);
                  if constexpr (kRawGrad) gr_row[x * gr.sx] = static_cast<scalar_t>(g * w);
                  t.grad[k][x] = g * (acc_t(1) - w);
                }
              }
            };
            mask[2] ? fill(std::true_type{}) : fill(std::false_type{});
          },
          [&](int64_t b, int64_t y, int64_t x0, TileSamples<acc_t, index_t>& t, int64_t c0, int64_t channels) {
            if (!mask[3]) return;
            for (int64_t k = 0; k < channels; ++k) {
              const scalar_t* g_row = &go(b, c0 + k, y, x0);
              const scalar_t* r_row = &rw(b, c0 + k, y, x0);
              for (int64_t x = 0; x < t.n; ++x) {
                t.sums[2][x] += static_cast<acc_t>(g_row[x * go.sx]) * (static_cast<acc_t>(r_row[x * rw.sx]) - t.values[k][x]);
              }
            }
          },
          [&](int64_t b, int64_t y, int64_t x0, TileSamples<acc_t, index_t>& t) {
            if (flow_grad) copy_row(&gf(b, 0, y, x0), gf.sx, t.sums[0], 1, t.n), copy_row(&gf(b, 1, y, x0), gf.sx, t.sums[1], 1, t.n);
            if (mask[3]) copy_row(&gw(b, 0, y, x0), gw.sx, t.sums[2], 1, t.n);
          });
      grad_prev = g;
    });
  });
  return {or_unrequested(grad_prev, prev), or_unrequested(grad_flow, flow), or_unrequested(grad_raw, raw),
          or_unrequested(grad_weight, weight)};
}

// ----------------------------------------------------------------------------------------- masked_warp_l1

Tensor masked_warp_l1_cpu(const Tensor& src, const Tensor& flow, const Tensor& target, const Tensor& mask,
                          V2V_SAMPLING_PARAMS) {
  const auto [sampling, out] = start_forward(Op::kMaskedWarpL1, {src, flow, target, mask}, V2V_SAMPLING_ARGS);
  const int64_t B = src.size(0), C = src.size(1), H = src.size(2), W = src.size(3);
  V2V_DISPATCH_CPU(src.scalar_type(), "masked_warp_l1_cpu", [&] {
    V2V_DISPATCH_INDEX(all_fit_int32(src, flow, target, mask), [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const auto fl = strided4<const scalar_t, index_t>(flow);
      const auto tg = strided4<const scalar_t, index_t>(target);
      const auto mk = strided4<const scalar_t, index_t>(mask);
      const auto s = forward_sampler<acc_t, index_t, scalar_t>(src);
      const double total = sum_rows<TileSamples<acc_t, index_t>>(B, H, W, C, [&](int64_t b, int64_t y, TileSamples<acc_t, index_t>& t) {
        acc_t row_sum = 0;
        for (int64_t x0 = 0; x0 < W; x0 += kTile) {
          t.fill(fl, b, y, x0, std::min(kTile, W - x0), H, W, sampling, false, s.sy, s.sx, s.sy, s.sx);
          for (int64_t c0 = 0; c0 < C; c0 += kChannelGroup) {
            const int64_t channels = std::min(kChannelGroup, C - c0);
            s.sample(t, b, c0, channels);
            for (int64_t k = 0; k < channels; ++k) {
              const scalar_t* t_row = &tg(b, c0 + k, y, x0);
              const scalar_t* m_row = &mk(b, c0 + k, y, x0);
              for (int64_t x = 0; x < t.n; ++x) {
                const acc_t m = static_cast<acc_t>(m_row[x * mk.sx]);
                row_sum += std::abs(t.values[k][x] * m - static_cast<acc_t>(t_row[x * tg.sx]) * m);
              }
            }
          }
        }
        return row_sum;
      });
      // The mean over zero elements is NaN, as torch.mean says.
      out.fill_(total / static_cast<double>(B * C * H * W));
    });
  });
  return out;
}

std::tuple<Tensor, Tensor, Tensor, Tensor> masked_warp_l1_backward_cpu(const Tensor& grad_out, const Tensor& src,
                                                                       const Tensor& flow, const Tensor& target,
                                                                       const Tensor& mask,
                                                                       V2V_SAMPLING_PARAMS, std::array<bool, 4> need) {
  const auto [sampling, grads] =
      start_backward(Op::kMaskedWarpL1, grad_out, {src, flow, target, mask}, V2V_SAMPLING_ARGS, need);
  const int64_t B = src.size(0), C = src.size(1), H = src.size(2), W = src.size(3);
  const bool mask_per_channel = mask.size(1) != 1 || C == 1;
  Tensor grad_src;
  const Tensor &grad_flow = grads[1], &grad_target = grads[2], &grad_mask = grads[3];
  const bool flow_grad = flow_grad_by_tiles(sampling, need[1], grad_flow);
  V2V_DISPATCH_CPU(src.scalar_type(), "masked_warp_l1_backward_cpu", [&] {
    V2V_DISPATCH_INDEX(all_fit_int32(src, flow, target, mask, grad_out), [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const acc_t scale = static_cast<acc_t>(grad_out.item<double>() / static_cast<double>(B * C * H * W));
      const auto tg = strided4<const scalar_t, index_t>(target);
      const auto mk = strided4<const scalar_t, index_t>(mask);
      const auto gf = strided4<scalar_t, index_t>(grad_flow);
      const auto gt = strided4<scalar_t, index_t>(grad_target);
      const auto gm = strided4<scalar_t, index_t>(grad_mask);
      Tensor g = backward_by_groups<acc_t, index_t, scalar_t>(
          src, flow, sampling, need[0], flow_grad, GroupValues::kBeforeGradients,
          [&](int64_t b, int64_t y, int64_t x0, TileSamples<acc_t, index_t>& t, int64_t c0, int64_t channels) {
            for (int64_t k = 0; k < channels; ++k) {
              const int64_t c = c0 + k;
              const scalar_t* t_row = &tg(b, c, y, x0);
              const scalar_t* m_row = &mk(b, c, y, x0);
              for (int64_t x = 0; x < t.n; ++x) {
                const acc_t warped = t.values[k][x], m = static_cast<acc_t>(m_row[x * mk.sx]);
                const acc_t tv = static_cast<acc_t>(t_row[x * tg.sx]);
                // d loss / d warped, before the mask: sign(warped * m - t * m) / numel * grad_out (0 where
                // the flow is NaN: the sign of NaN is 0).
                const acc_t sg = sign_of(warped * m - tv * m) * scale;
                if (need[2]) gt(b, c, y, x0 + x) = static_cast<scalar_t>(-sg * m);
                if (need[3]) {
                  const acc_t v = sg * (warped - tv);
                  if (mask_per_channel) {
                    gm(b, c, y, x0 + x) = static_cast<scalar_t>(v);
                  } else {
                    t.sums[2][x] += v;
                  }
                }
                t.grad[k][x] = sg * m;
              }
            }
          },
          Nothing{},
          [&](int64_t b, int64_t y, int64_t x0, TileSamples<acc_t, index_t>& t) {
            if (flow_grad) copy_row(&gf(b, 0, y, x0), gf.sx, t.sums[0], 1, t.n), copy_row(&gf(b, 1, y, x0), gf.sx, t.sums[1], 1, t.n);
            if (need[3] && !mask_per_channel) copy_row(&gm(b, 0, y, x0), gm.sx, t.sums[2], 1, t.n);
          });
      grad_src = g;
    });
  });
  return {or_unrequested(grad_src, src), or_unrequested(grad_flow, flow), or_unrequested(grad_target, target),
          or_unrequested(grad_mask, mask)};
}

}  // namespace V2V_CPU_ISA
}  // namespace vid2vid_fast
