// Channel blocks: the layout from which the AVX2 and AVX-512 builds sample float32 images. A copy of the
// image is laid out as (B, ceil(C / 4), H, W, 4), a pixel's four channels in 16 bytes, the last block padded
// with zeros; a pixel's two corners in a row are then 32 contiguous bytes for four channels, where planes need
// a gathered pair of floats per channel. The backward scatters the image gradient into a buffer of the same
// layout and copies it out at the end. BlockLayout owns the arithmetic of this layout and of the workspace
// that holds the copy and the buffers; the instruction-set specific code (blocks_avx2.h, blocks_avx512.h)
// packs and unpacks rows and samples blocks.
#pragma once
#ifndef V2V_CPU_PRELUDE_INCLUDED
#error "include prelude.h first (before the target pragma)"
#endif

#include "threading.h"

V2V_CPU_NAMESPACE_BEGIN

// A pixel's four channels: a channel group is one block.
constexpr int64_t kBlockChannels = 4;
static_assert(kChannelGroup == kBlockChannels, "a channel group is one channel block");

struct BlockLayout {
  int64_t batch, channels, height, width;
  int64_t blocks;  // per batch element

  explicit BlockLayout(const Tensor& img)
      : batch(img.size(0)), channels(img.size(1)), height(img.size(2)), width(img.size(3)),
        blocks(div_up(img.size(1), kBlockChannels)) {}

  // Floats in one block plane (H, W, 4), and in a whole buffer of this layout.
  int64_t plane_floats() const { return kBlockChannels * height * width; }
  int64_t floats() const { return batch * blocks * plane_floats(); }

  // The block plane of batch element b that holds channels c0 .. c0 + 3 (c0 a multiple of 4).
  template <typename T>
  T* block(T* buffer, int64_t b, int64_t c0) const {
    return buffer + (b * blocks + c0 / kBlockChannels) * plane_floats();
  }

  // Whether tiles can address a block plane with int32 offsets (TileSamples counts them in pixels).
  bool offsets_fit_int32() const { return plane_floats() <= std::numeric_limits<int32_t>::max(); }

  // A buffer is a sequence of rows of 4 * W floats, row r = (b * blocks + j) * H + y holding row y of
  // channels c0 = 4 j .. c0 + channels - 1 of batch element b.
  struct Row {
    int64_t b, c0, y, channels;
  };
  int64_t rows() const { return batch * blocks * height; }
  Row row(int64_t r) const {
    const int64_t c0 = kBlockChannels * ((r / height) % blocks);
    return {r / (height * blocks), c0, r % height, std::min(kBlockChannels, channels - c0)};
  }
  float* row_data(float* buffer, int64_t r) const { return buffer + r * kBlockChannels * width; }

  // The workspace holds buffers of this layout one after another: 0 is the image's copy, 1 the backward's
  // image gradient, 2 and on the private gradient buffers of its chunks (RowChunks).
  static constexpr int64_t kCopy = 0, kGradient = 1;
  float* buffer(float* workspace, int64_t k) const { return workspace + k * floats(); }
  Tensor buffer_tensor(float* workspace, int64_t k, const Tensor& like) const {
    return at::from_blob(buffer(workspace, k), {batch, blocks, height, width, kBlockChannels}, like.options());
  }
};

// Scratch memory of at least `floats` floats, 64-byte aligned, kept by the calling thread for its next call:
// the channel blocks and their gradient buffers are as large as the image, and memory allocated afresh on
// every call came from the system a page at a time, faulting on first touch (measured: 3.3 against 0.7 ms
// for a flow_warp backward at 4x3x128x256 in the processes where it happened). A thread holds the most
// its largest call needed: twice the image or more (2.7 times for 3 channels), until it exits.
inline float* block_workspace(int64_t floats) {
  struct Buffer {
    float* data = nullptr;
    int64_t floats = 0;
    ~Buffer() { std::free(data); }
  };
  thread_local Buffer buffer;
  if (buffer.floats < floats) {
    std::free(buffer.data);
    buffer.data = static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>(div_up(floats, 16) * 64)));
    buffer.floats = buffer.data ? floats : 0;
    TORCH_CHECK(buffer.data, "vid2vid_fast: could not allocate ", floats * 4, " bytes of scratch memory");
  }
  return buffer.data;
}

// Calls f(r, row) for every row of a buffer of layout l, split across threads.
template <typename F>
void for_each_block_row(const BlockLayout& l, const F& f) {
  at::parallel_for(0, l.rows(), std::max<int64_t>(1, kGrainElements / (kBlockChannels * l.width)),
                   [&](int64_t begin, int64_t end) {
                     for (int64_t r = begin; r < end; ++r) f(r, l.row(r));
                   });
}

// Writes img into the workspace's copy (BlockLayout::kCopy) unless `copy` is false (a backward that never
// reads the image: nearest's image gradient alone), and zeroes the `zeroed` buffers after it, row by row in
// the same pass. Kernels::pack_row(dst, channel rows, channels, W) packs rows of unit stride.
template <typename Kernels>
void to_blocks(const BlockLayout& l, const Tensor& img, float* workspace, int64_t zeroed, bool copy = true) {
  const auto in = strided4<const float, int64_t>(img);
  const int64_t W = l.width;
  for_each_block_row(l, [&](int64_t r, const BlockLayout::Row& row) {
    float* d = l.row_data(l.buffer(workspace, BlockLayout::kCopy), r);
    for (int64_t z = 1; z <= zeroed; ++z) std::fill(d + z * l.floats(), d + z * l.floats() + kBlockChannels * W, 0.0f);
    if (!copy) return;
    if (in.sx == 1) {
      const float* channel_rows[kBlockChannels] = {};
      for (int64_t k = 0; k < row.channels; ++k) channel_rows[k] = &in(row.b, row.c0 + k, row.y, 0);
      return Kernels::pack_row(d, channel_rows, row.channels, W);
    }
    for (int64_t x = 0; x < W; ++x) {
      for (int64_t k = 0; k < kBlockChannels; ++k) d[4 * x + k] = k < row.channels ? in(row.b, row.c0 + k, row.y, x) : 0.0f;
    }
  });
}

// Writes the buffer `k` of the workspace into out (B, C, H, W), any strides. Kernels::unpack_row(src,
// channel rows, channels, W) unpacks rows of unit stride.
template <typename Kernels>
void from_blocks(const BlockLayout& l, float* workspace, int64_t k, Tensor& out) {
  const auto o = strided4<float, int64_t>(out);
  const int64_t W = l.width;
  for_each_block_row(l, [&](int64_t r, const BlockLayout::Row& row) {
    const float* s = l.row_data(l.buffer(workspace, k), r);
    if (o.sx == 1) {
      float* channel_rows[kBlockChannels] = {};
      for (int64_t c = 0; c < row.channels; ++c) channel_rows[c] = &o(row.b, row.c0 + c, row.y, 0);
      return Kernels::unpack_row(s, channel_rows, row.channels, W);
    }
    for (int64_t x = 0; x < W; ++x) {
      for (int64_t c = 0; c < row.channels; ++c) o(row.b, row.c0 + c, row.y, x) = s[4 * x + c];
    }
  });
}

// What Kernels::sample(tile, block, channels, work) computes: the sampled values, the flow gradient, the
// image gradient (any of them), for the tile's pixels (filled with the offsets of an (H, W) plane of unit x
// step, sy = W and sx = 1: in a block plane every offset counts 4 floats), from the four channels of the
// block plane at `block`. With the flow gradient or the image gradient, t.grad[k] (k < channels; others
// count as 0) are the gradients of the values. The arithmetic is that of interpolate, interpolate_dx,
// interpolate_dy and scatter_corners (warp_math.h), summed over the channels before the derivative weights
// are applied.
struct BlockWork {
  bool values;     // t.values[k][x]: channel k sampled at pixel x (NaN where invalid)
  bool flow_grad;  // sums[0] and sums[1] grow by the flow gradient of t.grad[k] (the gradients of the values)
  float* scatter;  // if not null: the block's gradient buffer, which grows by t.grad[k] times the weights
};

V2V_CPU_NAMESPACE_END
