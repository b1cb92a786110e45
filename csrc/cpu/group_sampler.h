// Sampling an image by groups of up to four channels, from its planes or from channel blocks, and the two
// drivers every op is written over: for_each_group_tile (forward) and backward_by_groups.
#pragma once
#ifndef V2V_CPU_PRELUDE_INCLUDED
#error "include prelude.h first (before the target pragma)"
#endif

#include "block_layout.h"

// The builds that sample float32 images by channel blocks have a BlockKernels of their instruction set.
#if V2V_CPU_AVX512
#include "blocks_avx512.h"
#define V2V_CPU_BLOCKS 1
#elif V2V_CPU_AVX2
#include "blocks_avx2.h"
#define V2V_CPU_BLOCKS 1
#else
#define V2V_CPU_BLOCKS 0
#endif

V2V_CPU_NAMESPACE_BEGIN

#if V2V_CPU_BLOCKS
// Whether the ops sample img by channel blocks: for float32 with 32-bit offsets, both sizes above 1 (a
// pixel's corner pairs are then neighbours in memory) and block offsets in int32. Otherwise, and in the
// baseline build, they sample its planes.
template <typename scalar_t, typename index_t>
bool samples_by_blocks(const Tensor& img) {
  return std::is_same_v<scalar_t, float> && std::is_same_v<index_t, int32_t> && img.size(2) > 1 && img.size(3) > 1 &&
         BlockLayout(img).offsets_fit_int32();
}
#endif

// An image sampled by groups of up to kChannelGroup channels, with the layout of its gradient buffer:
// from its planes, or from channel blocks (the gradient buffer then in blocks too). Tiles are filled with
// the strides (sy, sx) and, for the gradient buffer, (gsy, gsx).
template <typename acc_t, typename index_t, typename scalar_t>
struct GroupSampler {
  Strided4<const scalar_t, index_t> planes;
  const float* blocks;  // the image in channel blocks, or null
  BlockLayout layout;
  // A block plane is an (H, W) plane of unit x step, every offset counting 4 floats.
  index_t sy, sx;
  index_t gsn = 0, gsc = 0, gsy, gsx;  // a planar gradient buffer's strides

  GroupSampler(const Tensor& img, const float* blocks_)
      : planes(strided4<const scalar_t, index_t>(img)), blocks(blocks_), layout(img),
        sy(blocks ? static_cast<index_t>(layout.width) : planes.sy), sx(blocks ? index_t(1) : planes.sx),
        gsy(sy), gsx(sx) {}

  // t.values[k] for the `channels` channels from c0 of batch element b.
  void sample(TileSamples<acc_t, index_t>& t, int64_t b, int64_t c0, int64_t channels) const {
#if V2V_CPU_BLOCKS
    if constexpr (std::is_same_v<acc_t, float> && std::is_same_v<index_t, int32_t>) {
      if (blocks) return BlockKernels::sample(t, layout.block(blocks, b, c0), channels, {true, false, nullptr});
    }
#endif
    for (int64_t k = 0; k < channels; ++k) t.sample(planes.plane(b, c0 + k), k);
  }

  // The backward of a group, from the gradients of its values in t.grad[k]: adds the flow gradient to
  // t.sums when flow_grad, fills t.values when `values`, and unless `scatter` (the gradient buffer of the
  // tile's chunk) is null, scatters the image gradient into it.
  template <bool kGradOffsets>
  void backward(TileSamples<acc_t, index_t>& t, int64_t b, int64_t c0, int64_t channels, bool values,
                bool flow_grad, acc_t* scatter) const {
#if V2V_CPU_BLOCKS
    if constexpr (std::is_same_v<acc_t, float> && std::is_same_v<index_t, int32_t>) {
      if (blocks) {
        return BlockKernels::sample(t, layout.block(blocks, b, c0), channels,
                                    {values, flow_grad, scatter ? layout.block(scatter, b, c0) : nullptr});
      }
    }
#endif
    for (int64_t k = 0; k < channels; ++k) {
      if (flow_grad) {
        t.sample_and_add_flow_grad(planes.plane(b, c0 + k), k);
      } else if (values) {
        t.sample(planes.plane(b, c0 + k), k);
      }
    }
    if (scatter) t.template scatter<kGradOffsets>(scatter + b * gsn + c0 * gsc, gsc, channels);
  }

};

// The forward's sampler of img: in channel blocks (copied into this thread's workspace) where the ops
// sample so.
template <typename acc_t, typename index_t, typename scalar_t>
GroupSampler<acc_t, index_t, scalar_t> forward_sampler(const Tensor& img) {
  float* blocks = nullptr;
#if V2V_CPU_BLOCKS
  if (samples_by_blocks<scalar_t, index_t>(img)) {
    const BlockLayout layout(img);
    float* workspace = block_workspace(layout.floats());
    to_blocks<BlockKernels>(layout, img, workspace, 0);
    blocks = layout.buffer(workspace, BlockLayout::kCopy);
  }
#endif
  return GroupSampler<acc_t, index_t, scalar_t>(img, blocks);
}

// Calls f(b, y, x0, tile, c0, channels) for every tile and channel group of img, with the group's values
// in tile.values.
template <typename acc_t, typename index_t, typename scalar_t, typename F>
void for_each_group_tile(const Tensor& img, const Tensor& flow, Sampling sampling, const F& f) {
  const int64_t C = img.size(1);
  const auto s = forward_sampler<acc_t, index_t, scalar_t>(img);
  for_each_tile<acc_t, index_t, scalar_t>(flow, C, sampling, s.sy, s.sx,
                                          [&](int64_t b, int64_t y, int64_t x0, TileSamples<acc_t, index_t>& t) {
    for (int64_t c0 = 0; c0 < C; c0 += kChannelGroup) {
      const int64_t channels = std::min(kChannelGroup, C - c0);
      s.sample(t, b, c0, channels);
      f(b, y, x0, t, c0, channels);
    }
  });
}

// When the backward samples the values (tile.values): not at all, in the pass that adds up the gradients,
// or in a pass of their own before `prepare`, for gradients that depend on them.
enum class GroupValues { kNone, kWithGradients, kBeforeGradients };

// The backward: for every tile, zeroes its sums; for every channel group, calls
// prepare(b, y, x0, tile, c0, channels), which sets tile.grad[k] for the group's channels, then samples
// (adding the flow gradient to the sums when flow_grad; the values as `values` says; scattering the image
// gradient when image_grad), then after(b, y, x0, tile, c0, channels); and calls done(b, y, x0, tile) at the
// end of the tile. Returns the image gradient when image_grad, else an undefined tensor.
template <typename acc_t, typename index_t, typename scalar_t, typename Prepare, typename After, typename Done>
Tensor backward_by_groups(const Tensor& img, const Tensor& flow, Sampling sampling, bool image_grad, bool flow_grad,
                          GroupValues values, const Prepare& prepare, const After& after, const Done& done) {
  const int64_t C = img.size(1);
  TORCH_INTERNAL_ASSERT(!(flow_grad && sampling.nearest), "nearest's flow gradient is not computed by tiles");
  Tensor acc;
  std::vector<Tensor> private_buffers;
  float* blocks = nullptr;
#if V2V_CPU_BLOCKS
  // The workspace: the blocks, then the gradient buffer and the private buffers of the chunks that need them.
  const BlockLayout layout(img);
  float* workspace = nullptr;
  if (samples_by_blocks<scalar_t, index_t>(img)) {
    const int64_t gradients =
        image_grad ? 1 + backward_row_chunks(layout.batch, layout.height, layout.width, C).private_buffers() : 0;
    workspace = block_workspace((1 + gradients) * layout.floats());
    to_blocks<BlockKernels>(layout, img, workspace, gradients, flow_grad || values != GroupValues::kNone);
    blocks = layout.buffer(workspace, BlockLayout::kCopy);
    if (image_grad) acc = layout.buffer_tensor(workspace, BlockLayout::kGradient, img);
    for (int64_t k = BlockLayout::kGradient + 1; k <= gradients; ++k) private_buffers.push_back(layout.buffer_tensor(workspace, k, img));
  }
#endif
  GroupSampler<acc_t, index_t, scalar_t> s(img, blocks);
  if (image_grad && !blocks) {
    acc = zeros_like_layout(img, c10::CppTypeToScalarType<acc_t>::value);
    s.gsn = static_cast<index_t>(acc.stride(0)), s.gsc = static_cast<index_t>(acc.stride(1));
    s.gsy = static_cast<index_t>(acc.stride(2)), s.gsx = static_cast<index_t>(acc.stride(3));
  }
  for_each_backward_tile<acc_t, index_t, scalar_t>(
      flow, C, sampling, s.sy, s.sx, acc, private_buffers, s.gsy, s.gsx,
      [&](int64_t b, int64_t y, int64_t x0, TileSamples<acc_t, index_t>& t, acc_t* scatter, auto differ) {
        t.zero_sums();
        for (int64_t c0 = 0; c0 < C; c0 += kChannelGroup) {
          const int64_t channels = std::min(kChannelGroup, C - c0);
          if (values == GroupValues::kBeforeGradients) s.sample(t, b, c0, channels);
          prepare(b, y, x0, t, c0, channels);
          s.template backward<decltype(differ)::value>(t, b, c0, channels, values == GroupValues::kWithGradients,
                                                       flow_grad, scatter);
          after(b, y, x0, t, c0, channels);
        }
        done(b, y, x0, t);
      });
  if (!image_grad) return Tensor();
#if V2V_CPU_BLOCKS
  if (blocks) {
    Tensor grad = empty_like_layout(img);
    from_blocks<BlockKernels>(layout, workspace, BlockLayout::kGradient, grad);
    return grad;
  }
#endif
  return finish_grad(acc, img);
}

// Whether the backward's tiles compute the flow gradient: when it is requested, unless the sampling is
// nearest, whose flow gradient is 0 everywhere (its derivative is 0 even where the image is not finite, as
// grid_sample's): then grad_flow is zeroed here, at once, and no tile samples or copies for it.
inline bool flow_grad_by_tiles(Sampling sampling, bool requested, const Tensor& grad_flow) {
  if (requested && sampling.nearest) grad_flow.zero_();
  return requested && !sampling.nearest;
}

// A backward callback with nothing to do.
struct Nothing {
  template <typename... Args>
  void operator()(Args&&...) const {}
};

V2V_CPU_NAMESPACE_END
