// CPU kernels for flow_warp, warp_blend and masked_warp_l1, forward and backward.
//
// Work goes by tiles of a row (TileSamples below): the samples of a tile are computed once, in a
// vectorized loop, and every channel reuses them.
//
// Rows are split into chunks, one per thread. The image gradient is a scatter: a chunk scatters only into
// the batch elements its rows belong to, so chunks of whole batch elements share nothing; when the batch
// does not divide into the chunks, chunk 0 scatters into the gradient itself and chunk k > 0 into a
// private buffer, and the buffers are added in chunk order at the end. No two threads write the same
// memory and the order of every floating-point addition is fixed by the shapes and the thread count, so
// the backward is race-free and bit-identical from run to run.
//
// In the AVX-512 build, the ops sample float32 images by blocks of four channels, from a copy of the image
// with each pixel's four channels side by side (see "sampling by channel blocks").
//
// This file is compiled once per instruction set (kernels_baseline.cpp, kernels_avx2.cpp,
// kernels_avx512.cpp), into the namespace V2V_CPU_ISA; register_cpu.cpp picks the build the processor runs.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/from_blob.h>
#include <ATen/ops/zeros_like.h>

#include <cstdlib>
#include <limits>
#include <type_traits>
#include <vector>

#include "../ops.h"

#ifndef V2V_CPU_AVX512
#define V2V_CPU_AVX512 0
#endif

#ifndef V2V_CPU_ISA
#error "define V2V_CPU_ISA (the namespace of this build of the kernels) before including kernels_impl.h"
#endif

namespace vid2vid_fast {
namespace V2V_CPU_ISA {
namespace {

using at::Tensor;

// Elements a thread should get at least, so small images do not pay for thread wake-ups.
constexpr int64_t kGrainElements = 16384;

#if defined(__clang__)
#define V2V_IVDEP _Pragma("clang loop vectorize(assume_safety)")
#elif defined(__GNUC__)
#define V2V_IVDEP _Pragma("GCC ivdep")
#else
#define V2V_IVDEP
#endif

#if defined(__GNUC__)
#define V2V_ALWAYS_INLINE inline __attribute__((always_inline))
#define V2V_NOINLINE __attribute__((noinline))
#else
#define V2V_ALWAYS_INLINE inline
#define V2V_NOINLINE
#endif

template <typename acc_t>
acc_t quiet_nan() {
  return std::numeric_limits<acc_t>::quiet_NaN();
}

int64_t div_up(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Pixels per tile. Kernels work on tiles of a row: the samples of a tile (corner offsets and weights,
// warp_math.h) are computed first into arrays, in a loop the compiler vectorizes; then each channel walks
// the tile, which keeps the reads of an NCHW plane local (a channel-inner loop would touch C planes per
// pixel). A fixed tile size puts every array of the tile at a constant offset from one pointer, so a
// kernel's loop needs one register for all of them (with a row of arrays, x86's 16 registers were not
// enough and the loop reloaded pointers from the stack). A multiple of the widest vector (16 floats).
constexpr int64_t kTile = 128;

// Channels whose image gradients are scattered together (TileSamples::scatter).
constexpr int64_t kChannelGroup = 4;

// What TileSamples::sample_plane computes besides the sampled value.
enum class Sampled { kValue, kFlowGrad };

// The samples of a tile of output pixels, as arrays over x: structure of arrays, so that fill()
// vectorizes (with -fno-trapping-math, which lets the compiler turn the selects of warp_math.h into vector
// blends). Samples are in paired form (warp_math.h, paired_sample_axis): a pixel's corners sit at off,
// off + step_x, off + step_y and off + step_x + step_y, so one offset per pixel locates all four, and in
// channel blocks (below) the two corners of a row are 32 contiguous bytes.
//
// Per channel k of a group, sample() or sample_and_add_flow_grad() fill values[k] (and add to the flow
// gradient sums) from a plane, and scatter() sends grad[k] back to the corners for the group: the kernels'
// own per-pixel arithmetic stays in plain loops over these arrays, which the compiler vectorizes. The
// AVX-512 build fills the same arrays from channel blocks (sample_blocks, below).
template <typename acc_t, typename index_t>
struct alignas(64) TileSamples {
  // Every array starts on a 64-byte boundary: the AVX-512 code reads them with aligned vector loads.
  alignas(64) index_t off[kTile];       // the corner (y0, x0) in the input
  alignas(64) index_t grad_off[kTile];  // the same in the gradient buffer, when its strides differ
  alignas(64) acc_t weight[4][kTile];   // x.w0, x.w1, y.w0, y.w1
  alignas(64) acc_t deriv[4][kTile];    // x.d0, x.d1, y.d0, y.d1 (backward only)
  alignas(64) acc_t sums[3][kTile];     // per-pixel sums over channels: flow x, flow y, and an op's third sum
  // Per channel of a group: the sampled value (NaN where invalid), and the gradient to send back.
  alignas(64) acc_t values[kChannelGroup][kTile];
  alignas(64) acc_t grad[kChannelGroup][kTile];
  alignas(64) uint8_t valid[kTile];  // false where the flow is NaN
  int64_t n = 0;            // pixels in this tile
  index_t step_x = 0, step_y = 0, grad_step_x = 0, grad_step_y = 0;
  bool grad_offsets_differ = false;

  // Samples pixels x0 .. x0 + count - 1 of row y of batch element b: offsets for planes of strides (sy, sx)
  // to read and, with derivatives, for the gradient buffer (strides gsy, gsx) to scatter into.
  template <typename scalar_t>
  void fill(const Strided4<const scalar_t, index_t>& flow, int64_t b, int64_t y, int64_t x0, int64_t count,
            int64_t H, int64_t W, bool zeros, bool with_grads, index_t sy, index_t sx, index_t gsy, index_t gsx) {
    n = count;
    step_x = W > 1 ? sx : 0, step_y = H > 1 ? sy : 0;
    grad_step_x = W > 1 ? gsx : 0, grad_step_y = H > 1 ? gsy : 0;
    grad_offsets_differ = with_grads && (gsy != sy || gsx != sx);
    // Constant flags inside the loop, so that no control flow is left to stop vectorization.
    const auto go = [&](auto kZeros) {
      if (!with_grads) return fill_tile<decltype(kZeros)::value, false, false>(flow, b, y, x0, H, W, sy, sx, gsy, gsx);
      if (!grad_offsets_differ) return fill_tile<decltype(kZeros)::value, true, false>(flow, b, y, x0, H, W, sy, sx, gsy, gsx);
      fill_tile<decltype(kZeros)::value, true, true>(flow, b, y, x0, H, W, sy, sx, gsy, gsx);
    };
    zeros ? go(std::true_type{}) : go(std::false_type{});
    // Vector code reads whole vectors: the rest of the last one samples pixel (0, 0) with weight 0.
    for (int64_t x = n; x < div_up(n, 16) * 16; ++x) {
      off[x] = 0, grad_off[x] = 0, valid[x] = 0;
      for (int k = 0; k < 4; ++k) weight[k][x] = 0, deriv[k][x] = 0;
    }
  }

  CornerOffsets<index_t> offsets(int64_t x) const {
    return {off[x], off[x] + step_x, off[x] + step_y, off[x] + step_y + step_x};
  }
  // The axes of pixel x's sample; weights only (forward), or with derivatives (backward).
  AxisSample<acc_t> x_weights(int64_t x) const { return {0, 0, weight[0][x], weight[1][x], 0, 0}; }
  AxisSample<acc_t> y_weights(int64_t x) const { return {0, 0, weight[2][x], weight[3][x], 0, 0}; }
  AxisSample<acc_t> x_axis(int64_t x) const { return {0, 0, weight[0][x], weight[1][x], deriv[0][x], deriv[1][x]}; }
  AxisSample<acc_t> y_axis(int64_t x) const { return {0, 0, weight[2][x], weight[3][x], deriv[2][x], deriv[3][x]}; }
  void zero_sums() { std::fill(&sums[0][0], &sums[0][0] + 3 * kTile, acc_t(0)); }

  // values[k][x] = the sample of plane at pixel x (NaN where invalid).
  template <typename scalar_t>
  void sample(const scalar_t* plane, int64_t k) {
    sample_plane<Sampled::kValue>(plane, k);
  }
  // values[k], and channel k's share of the flow gradient where valid: sums[0][x] and sums[1][x] grow by
  // grad[k][x] (the gradient of the value) times its derivatives along x and y.
  template <typename scalar_t>
  void sample_and_add_flow_grad(const scalar_t* plane, int64_t k) {
    sample_plane<Sampled::kFlowGrad>(plane, k);
  }

  // Adds grad[k][x] times the bilinear weights of pixel x's sample into gradient plane k, for the
  // `channels` (at most kChannelGroup) planes at plane + k * channel_stride (laid out like the input, or like
  // the gradient buffer when kGradOffsets); invalid pixels send nothing. A pixel's offset and weights are
  // loaded once for all the planes. Even pixels go first, then odd ones: neighbours usually share corners,
  // and an add that must wait for the previous pixel's store to the same address stalls the loop.
  template <bool kGradOffsets>
  void scatter(acc_t* plane, int64_t channel_stride, int64_t channels) const {
    const index_t* base = kGradOffsets ? grad_off : off;
    const int64_t sx = kGradOffsets ? grad_step_x : step_x, sy = kGradOffsets ? grad_step_y : step_y;
    const CornerOffsets<int64_t> corners{0, sx, sy, sy + sx};
    for (int64_t first = 0; first < 2; ++first) {
      for (int64_t x = first; x < n; x += 2) {
        if (!valid[x]) continue;
        const AxisSample<acc_t> wx = x_weights(x), wy = y_weights(x);
        acc_t* p = plane + base[x];
        for (int64_t k = 0; k < channels; ++k, p += channel_stride) {
          scatter_corners(wx, wy, corners, grad[k][x], [p](int64_t o, acc_t v) { p[o] += v; });
        }
      }
    }
  }

 private:
  template <Sampled kWhat, typename scalar_t>
  void sample_plane(const scalar_t* plane, int64_t k) {
    constexpr bool kFlowGrad = kWhat == Sampled::kFlowGrad;
    acc_t* value = values[k];
    const acc_t* g = grad[k];
    for (int64_t x = 0; x < n; ++x) {
      const Corners<acc_t> c = read_corners<acc_t>(plane, offsets(x));
      const AxisSample<acc_t> ax = kFlowGrad ? x_axis(x) : x_weights(x);
      const AxisSample<acc_t> ay = kFlowGrad ? y_axis(x) : y_weights(x);
      value[x] = valid[x] ? interpolate(c, ax, ay) : quiet_nan<acc_t>();
      if (kFlowGrad) {
        sums[0][x] += valid[x] ? g[x] * interpolate_dx(c, ax, ay) : acc_t(0);
        sums[1][x] += valid[x] ? g[x] * interpolate_dy(c, ax, ay) : acc_t(0);
      }
    }
  }

  // Kept out of line: inlined into a kernel's large loop nest, GCC stops vectorizing it.
  template <bool kZeros, bool kGrads, bool kGradOffsets, typename scalar_t>
  V2V_NOINLINE void fill_tile(const Strided4<const scalar_t, index_t>& flow, int64_t b, int64_t y, int64_t x0,
                              int64_t H, int64_t W, index_t sy, index_t sx, index_t gsy, index_t gsx) {
    const scalar_t* dx = &flow(b, 0, y, x0);
    const scalar_t* dy = &flow(b, 1, y, x0);
    const index_t fsx = flow.sx;
    const int32_t width = static_cast<int32_t>(W), height = static_cast<int32_t>(H), row = static_cast<int32_t>(y);
    const int32_t first = static_cast<int32_t>(x0), count = static_cast<int32_t>(n);
    // The flow never overlaps the tile; without this GCC needs more run-time alias checks than it will emit.
    V2V_IVDEP
    for (int32_t x = 0; x < count; ++x) {
      const Sample<acc_t> s = sample_at<acc_t, /*kPaired=*/true>(first + x, row, static_cast<acc_t>(dx[x * fsx]),
                                                                 static_cast<acc_t>(dy[x * fsx]), height, width,
                                                                 kZeros);
      const AxisSample<acc_t>& ax = s.x;
      const AxisSample<acc_t>& ay = s.y;
      off[x] = static_cast<index_t>(ay.i0) * sy + static_cast<index_t>(ax.i0) * sx;
      if (kGradOffsets) grad_off[x] = static_cast<index_t>(ay.i0) * gsy + static_cast<index_t>(ax.i0) * gsx;
      weight[0][x] = ax.w0, weight[1][x] = ax.w1, weight[2][x] = ay.w0, weight[3][x] = ay.w1;
      valid[x] = s.valid;
      if (kGrads) deriv[0][x] = ax.d0, deriv[1][x] = ax.d1, deriv[2][x] = ay.d0, deriv[3][x] = ay.d1;
    }
  }
};

#if V2V_CPU_AVX512
// ------------------------------------------------------------------- sampling by channel blocks (float32)
//
// The ops sample float32 images from a copy in channel blocks: (B, ceil(C / 4), H, W, 4), a pixel's four
// channels in 16 bytes, the last block padded with zeros. A pixel's two corners in a row are then one
// 32-byte load for four channels, where the planes need a gathered pair of floats per channel; on the Zen 5
// measured, a 3-channel image samples in about half the time of the planes' pair gathers, the copy
// included. The image gradient is scattered into a buffer of the same layout, two 32-byte adds per pixel
// instead of twelve scalar ones for three channels, and copied out at the end.
// Tiles are filled with the offsets of an (H, W) plane of unit x step (sy = W, sx = 1); in a block plane
// every offset counts 4 floats.

// GCC 12's unmasked AVX-512 shuffles start from _mm512_undefined_ps(), which it then reports as maybe
// uninitialized (GCC bug 105593); the warning says nothing about this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// Transposes, inside each 128-bit lane, the 4 x 4 matrix whose rows are that lane of v[0..3].
V2V_ALWAYS_INLINE void transpose_in_lanes(__m512 v[4]) {
  const __m512 t0 = _mm512_unpacklo_ps(v[0], v[1]), t1 = _mm512_unpackhi_ps(v[0], v[1]);
  const __m512 t2 = _mm512_unpacklo_ps(v[2], v[3]), t3 = _mm512_unpackhi_ps(v[2], v[3]);
  v[0] = _mm512_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  v[1] = _mm512_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  v[2] = _mm512_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  v[3] = _mm512_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
}

// Transposes the 4 x 4 matrix of 128-bit lanes: lane l of v[j] trades places with lane j of v[l].
V2V_ALWAYS_INLINE void transpose_lanes(__m512 v[4]) {
  const __m512 t0 = _mm512_shuffle_f32x4(v[0], v[1], _MM_SHUFFLE(1, 0, 1, 0));
  const __m512 t1 = _mm512_shuffle_f32x4(v[2], v[3], _MM_SHUFFLE(1, 0, 1, 0));
  const __m512 t2 = _mm512_shuffle_f32x4(v[0], v[1], _MM_SHUFFLE(3, 2, 3, 2));
  const __m512 t3 = _mm512_shuffle_f32x4(v[2], v[3], _MM_SHUFFLE(3, 2, 3, 2));
  v[0] = _mm512_shuffle_f32x4(t0, t1, _MM_SHUFFLE(2, 0, 2, 0));
  v[1] = _mm512_shuffle_f32x4(t0, t1, _MM_SHUFFLE(3, 1, 3, 1));
  v[2] = _mm512_shuffle_f32x4(t2, t3, _MM_SHUFFLE(2, 0, 2, 0));
  v[3] = _mm512_shuffle_f32x4(t2, t3, _MM_SHUFFLE(3, 1, 3, 1));
}

// Four channels of 16 pixels (v[k]: channel k) to 16 pixels of four channels (v[j]: pixels 4j .. 4j + 3),
// and back.
V2V_ALWAYS_INLINE void channels_to_pixels(__m512 v[4]) {
  transpose_in_lanes(v);
  transpose_lanes(v);
}
V2V_ALWAYS_INLINE void pixels_to_channels(__m512 v[4]) {
  transpose_lanes(v);
  transpose_in_lanes(v);
}

// The 32 bytes at a (pixel i) and at b (pixel i + 1) as one vector.
V2V_ALWAYS_INLINE __m512 load_pair(const float* a, const float* b) {
  return _mm512_insertf32x8(_mm512_castps256_ps512(_mm256_loadu_ps(a)), _mm256_loadu_ps(b), 1);
}

// Mask of the first `count` of 16 elements (none for count <= 0).
V2V_ALWAYS_INLINE __mmask16 first_elements(int64_t count) {
  return count >= 16 ? __mmask16(0xFFFF) : count <= 0 ? __mmask16(0) : static_cast<__mmask16>((1u << count) - 1);
}

// Floats in the channel blocks of img: (B, ceil(C / 4), H, W, 4).
int64_t block_floats(const Tensor& img) { return img.size(0) * div_up(img.size(1), 4) * img.size(2) * img.size(3) * 4; }

// Scratch memory of at least `floats` floats, 64-byte aligned, kept by the calling thread for its next call:
// the channel blocks and their gradient buffers are as large as the image, and memory allocated afresh on
// every call came from the system a page at a time, faulting on first touch (measured: 3.3 against 0.7 ms
// for a flow_warp backward at 4x3x128x256 in the processes where it happened). A thread holds the most
// its largest call needed: twice the image or more (2.7 times for 3 channels), until it exits.
float* block_workspace(int64_t floats) {
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

// Writes img in channel blocks to dst (block_floats(img) floats), and zeroes the `zeroed` block-sized buffers
// that follow it, row by row in the same pass.
void to_blocks(const Tensor& img, float* dst, int64_t zeroed) {
  const int64_t B = img.size(0), C = img.size(1), H = img.size(2), W = img.size(3);
  const int64_t blocks = div_up(C, 4), size = block_floats(img);
  const auto in = strided4<const float, int64_t>(img);
  at::parallel_for(0, B * blocks * H, std::max<int64_t>(1, kGrainElements / (4 * W)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t y = r % H, j = (r / H) % blocks, b = r / (H * blocks), c0 = 4 * j;
      const int64_t group = std::min<int64_t>(4, C - c0);
      float* d = dst + r * W * 4;
      for (int64_t z = 1; z <= zeroed; ++z) std::fill(d + z * size, d + z * size + W * 4, 0.0f);
      if (in.sx == 1) {
        for (int64_t x = 0; x < W; x += 16) {
          const __mmask16 m = first_elements(W - x);
          __m512 v[4];
          for (int64_t k = 0; k < 4; ++k) {
            v[k] = k < group ? _mm512_maskz_loadu_ps(m, &in(b, c0 + k, y, x)) : _mm512_setzero_ps();
          }
          channels_to_pixels(v);
          for (int64_t q = 0; q < 4; ++q) _mm512_mask_storeu_ps(d + 4 * x + 16 * q, first_elements(4 * (W - x) - 16 * q), v[q]);
        }
      } else {
        for (int64_t x = 0; x < W; ++x) {
          for (int64_t k = 0; k < 4; ++k) d[4 * x + k] = k < group ? in(b, c0 + k, y, x) : 0.0f;
        }
      }
    }
  });
}

// Writes channel blocks (to_blocks' layout) into out (B, C, H, W), any strides.
void from_blocks(const float* src, Tensor& out) {
  const int64_t B = out.size(0), C = out.size(1), H = out.size(2), W = out.size(3);
  const int64_t blocks = div_up(C, 4);
  const auto o = strided4<float, int64_t>(out);
  at::parallel_for(0, B * blocks * H, std::max<int64_t>(1, kGrainElements / (4 * W)), [&](int64_t begin, int64_t end) {
    for (int64_t r = begin; r < end; ++r) {
      const int64_t y = r % H, j = (r / H) % blocks, b = r / (H * blocks), c0 = 4 * j;
      const int64_t group = std::min<int64_t>(4, C - c0);
      const float* s = src + r * W * 4;
      if (o.sx == 1) {
        for (int64_t x = 0; x < W; x += 16) {
          __m512 v[4];
          for (int64_t q = 0; q < 4; ++q) v[q] = _mm512_maskz_loadu_ps(first_elements(4 * (W - x) - 16 * q), s + 4 * x + 16 * q);
          pixels_to_channels(v);
          for (int64_t k = 0; k < group; ++k) _mm512_mask_storeu_ps(&o(b, c0 + k, y, x), first_elements(W - x), v[k]);
        }
      } else {
        for (int64_t x = 0; x < W; ++x) {
          for (int64_t k = 0; k < group; ++k) o(b, c0 + k, y, x) = s[4 * x + k];
        }
      }
    }
  });
}

// What sample_blocks computes: the sampled values, the flow gradient, the image gradient (any of them).
struct BlockWork {
  bool values;     // t.values[k][x]: channel k sampled at pixel x (NaN where invalid)
  bool flow_grad;  // sums[0] and sums[1] grow by the flow gradient of t.grad[k] (the gradients of the values)
  float* scatter;  // if not null: the block's gradient buffer, which grows by t.grad[k] times the weights
};

// The four channels of the block at `block` (to_blocks' layout) for the tile's pixels, 16 at a time: for
// each pair of pixels, the top and the bottom row's corner pairs are one load each. With the flow gradient
// or the image gradient, t.grad[k] (k < channels; others count as 0) are the gradients of the values.
// The arithmetic is that of interpolate, interpolate_dx, interpolate_dy and scatter_corners (warp_math.h),
// summed over the channels before the derivative weights are applied.
void sample_blocks(TileSamples<float, int32_t>& t, const float* block, int64_t channels, const BlockWork& work) {
  const int64_t row = 4 * static_cast<int64_t>(t.step_y);
  const __m512 nan = _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN());
  const bool grads = work.flow_grad || work.scatter != nullptr;
  for (int64_t x = 0; x < t.n; x += 16) {
    const __mmask16 valid = _mm_test_epi8_mask(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t.valid + x)),
                                               _mm_set1_epi8(-1));
    const __m512 xw0 = _mm512_load_ps(t.weight[0] + x), xw1 = _mm512_load_ps(t.weight[1] + x);
    const __m512 yw0 = _mm512_load_ps(t.weight[2] + x), yw1 = _mm512_load_ps(t.weight[3] + x);
    // Corner weights, 0 for invalid pixels: (y0, x0), (y0, x1), (y1, x0), (y1, x1).
    const __m512 w00 = _mm512_maskz_mul_ps(valid, yw0, xw0), w01 = _mm512_maskz_mul_ps(valid, yw0, xw1);
    const __m512 w10 = _mm512_maskz_mul_ps(valid, yw1, xw0), w11 = _mm512_maskz_mul_ps(valid, yw1, xw1);
    // Per pixel, the gradients of its four channels (0 where invalid, so nothing reaches the buffers).
    __m512 g[4];
    if (grads) {
      for (int64_t k = 0; k < 4; ++k) g[k] = k < channels ? _mm512_maskz_load_ps(valid, t.grad[k] + x) : _mm512_setzero_ps();
      channels_to_pixels(g);
    }
    alignas(64) float top_add[16][8], bottom_add[16][8];
    __m512 products_top[8], products_bottom[8], values[8];
    for (int64_t p = 0; p < 8; ++p) {
      const float* a = block + 4 * static_cast<int64_t>(t.off[x + 2 * p]);
      const float* b = block + 4 * static_cast<int64_t>(t.off[x + 2 * p + 1]);
      // Weights per lane: [pixel 2p's left corner, its right corner, pixel 2p + 1's left, its right].
      const __m512i pick = _mm512_setr_epi32(2 * p, 2 * p, 2 * p, 2 * p, 16 + 2 * p, 16 + 2 * p, 16 + 2 * p, 16 + 2 * p,
                                             2 * p + 1, 2 * p + 1, 2 * p + 1, 2 * p + 1, 17 + 2 * p, 17 + 2 * p,
                                             17 + 2 * p, 17 + 2 * p);
      const __m512 w_top = _mm512_permutex2var_ps(w00, pick, w01), w_bottom = _mm512_permutex2var_ps(w10, pick, w11);
      __m512 top = _mm512_setzero_ps(), bottom = _mm512_setzero_ps();
      if (work.values || work.flow_grad) top = load_pair(a, b), bottom = load_pair(a + row, b + row);
      if (work.values) values[p] = _mm512_fmadd_ps(bottom, w_bottom, _mm512_mul_ps(top, w_top));
      if (!grads) continue;
      // [pixel 2p's gradients twice, pixel 2p + 1's twice]
      const __m512 gp = (p & 1) ? _mm512_shuffle_f32x4(g[p / 2], g[p / 2], _MM_SHUFFLE(3, 3, 2, 2))
                                : _mm512_shuffle_f32x4(g[p / 2], g[p / 2], _MM_SHUFFLE(1, 1, 0, 0));
      if (work.flow_grad) products_top[p] = _mm512_mul_ps(top, gp), products_bottom[p] = _mm512_mul_ps(bottom, gp);
      if (work.scatter) {
        _mm512_store_ps(top_add[2 * p], _mm512_mul_ps(gp, w_top));
        _mm512_store_ps(bottom_add[2 * p], _mm512_mul_ps(gp, w_bottom));
      }
    }
    if (work.values) {
      // Each pixel's two corners' partial sums -> its four channels: v[j] holds pixels 4j .. 4j + 3.
      __m512 v[4];
      for (int64_t j = 0; j < 4; ++j) {
        v[j] = _mm512_add_ps(_mm512_shuffle_f32x4(values[2 * j], values[2 * j + 1], _MM_SHUFFLE(2, 0, 2, 0)),
                             _mm512_shuffle_f32x4(values[2 * j], values[2 * j + 1], _MM_SHUFFLE(3, 1, 3, 1)));
      }
      pixels_to_channels(v);
      for (int64_t k = 0; k < 4; ++k) _mm512_store_ps(t.values[k] + x, _mm512_mask_blend_ps(valid, nan, v[k]));
    }
    if (work.flow_grad) {
      // Sum each corner's products over the channels: the transpose of four products puts, in lane l, the
      // four channels of lane l of each product side by side, so adding the four results sums them.
      __m512 sums[4];  // top pixels 0-7, top 8-15, bottom 0-7, bottom 8-15
      for (int64_t h = 0; h < 4; ++h) {
        __m512 v[4];
        for (int64_t i = 0; i < 4; ++i) v[i] = (h < 2 ? products_top : products_bottom)[4 * (h & 1) + i];
        transpose_in_lanes(v);
        sums[h] = _mm512_add_ps(_mm512_add_ps(v[0], v[1]), _mm512_add_ps(v[2], v[3]));
      }
      // sums[h] lane 0: left corners of pixels 0, 2, 4, 6 (of its eight); lane 1: their right corners;
      // lanes 2 and 3: the same for pixels 1, 3, 5, 7.
      const __m512i left = _mm512_setr_epi32(0, 8, 1, 9, 2, 10, 3, 11, 16, 24, 17, 25, 18, 26, 19, 27);
      const __m512i right = _mm512_setr_epi32(4, 12, 5, 13, 6, 14, 7, 15, 20, 28, 21, 29, 22, 30, 23, 31);
      const __m512 c00 = _mm512_permutex2var_ps(sums[0], left, sums[1]);
      const __m512 c01 = _mm512_permutex2var_ps(sums[0], right, sums[1]);
      const __m512 c10 = _mm512_permutex2var_ps(sums[2], left, sums[3]);
      const __m512 c11 = _mm512_permutex2var_ps(sums[2], right, sums[3]);
      const __m512 xd0 = _mm512_load_ps(t.deriv[0] + x), xd1 = _mm512_load_ps(t.deriv[1] + x);
      const __m512 yd0 = _mm512_load_ps(t.deriv[2] + x), yd1 = _mm512_load_ps(t.deriv[3] + x);
      const __m512 top = _mm512_fmadd_ps(xw1, c01, _mm512_mul_ps(xw0, c00));
      const __m512 bottom = _mm512_fmadd_ps(xw1, c11, _mm512_mul_ps(xw0, c10));
      const __m512 top_dx = _mm512_fmadd_ps(xd1, c01, _mm512_mul_ps(xd0, c00));
      const __m512 bottom_dx = _mm512_fmadd_ps(xd1, c11, _mm512_mul_ps(xd0, c10));
      const __m512 dx = _mm512_fmadd_ps(yw1, bottom_dx, _mm512_mul_ps(yw0, top_dx));
      const __m512 dy = _mm512_fmadd_ps(yd1, bottom, _mm512_mul_ps(yd0, top));
      _mm512_store_ps(t.sums[0] + x, _mm512_mask_add_ps(_mm512_load_ps(t.sums[0] + x), valid, _mm512_load_ps(t.sums[0] + x), dx));
      _mm512_store_ps(t.sums[1] + x, _mm512_mask_add_ps(_mm512_load_ps(t.sums[1] + x), valid, _mm512_load_ps(t.sums[1] + x), dy));
    }
    if (work.scatter) {
      // Pixels four apart in turn: neighbours' corner pairs overlap, and a load that overlaps part of a
      // store still in flight waits for it.
      for (int64_t first = 0; first < 4; ++first) {
        for (int64_t i = first; i < 16; i += 4) {
          float* d = work.scatter + 4 * static_cast<int64_t>(t.off[x + i]);
          _mm256_storeu_ps(d, _mm256_add_ps(_mm256_loadu_ps(d), _mm256_load_ps(top_add[i])));
          _mm256_storeu_ps(d + row, _mm256_add_ps(_mm256_loadu_ps(d + row), _mm256_load_ps(bottom_add[i])));
        }
      }
    }
  }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

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

// Rows of (batch, y) that a chunk should get at least, so small images do not pay for thread wake-ups.
int64_t min_rows_per_chunk(int64_t W, int64_t C) {
  return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, W * std::max<int64_t>(1, C)));
}

// Calls f(b, y, x0, tile) for every tile of output pixels; rows are split across threads.
template <typename acc_t, typename index_t, typename scalar_t, typename F>
void for_each_tile(const Tensor& flow, int64_t C, bool zeros, index_t sy, index_t sx, const F& f) {
  const int64_t B = flow.size(0), H = flow.size(2), W = flow.size(3);
  const auto fl = strided4<const scalar_t, index_t>(flow);
  at::parallel_for(0, B * H, min_rows_per_chunk(W, C), [&](int64_t begin, int64_t end) {
    TileSamples<acc_t, index_t> tile;
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / H, y = row % H;
      for (int64_t x0 = 0; x0 < W; x0 += kTile) {
        tile.fill(fl, b, y, x0, std::min(kTile, W - x0), H, W, zeros, false, sy, sx, sy, sx);
        f(b, y, x0, tile);
      }
    }
  });
}

// How the backward splits its rows into chunks, one per thread at most. When the batch divides evenly, chunks
// hold whole batch elements: their scatters cannot meet, and no private buffers are needed. Otherwise rows
// are split evenly and chunks k > 0 scatter into private buffers.
struct RowChunks {
  int64_t chunks, rows_per_chunk;
  bool by_batch;
  int64_t private_buffers() const { return by_batch ? 0 : chunks - 1; }
};

RowChunks backward_row_chunks(int64_t B, int64_t H, int64_t W, int64_t C) {
  const int64_t rows = B * H;
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), rows / min_rows_per_chunk(W, C)));
  const bool by_batch = B % chunks == 0;
  return {chunks, by_batch ? (B / chunks) * H : div_up(rows, chunks), by_batch};
}

// The backward driver (see the file comment). Calls f(b, y, x0, tile, scatter, grad_offsets_differ) for
// every tile, where scatter is the acc_t gradient buffer this row's chunk scatters into (`grad`, or a
// private buffer like it; rows of strides gsy, gsx) and grad_offsets_differ a std::bool_constant: true
// when those strides differ from the input's (sy, sx), to pass on to tile.scatter. f writes the tile's
// gathered gradients directly. `grad` (undefined when no image gradient is needed) ends up holding the sum.
// Chunks k > 0 that need private buffers (RowChunks) take them from `private_buffers` (zeroed, like grad),
// or, where that holds too few, from new zeroed tensors.
template <typename acc_t, typename index_t, typename scalar_t, typename F>
void for_each_backward_tile(const Tensor& flow, int64_t C, bool zeros, index_t sy, index_t sx, Tensor& grad,
                            std::vector<Tensor> private_buffers, index_t gsy, index_t gsx, const F& f) {
  const int64_t B = flow.size(0), H = flow.size(2), W = flow.size(3);
  const int64_t rows = B * H;
  if (rows * W == 0) return;
  const auto fl = strided4<const scalar_t, index_t>(flow);
  const RowChunks split = backward_row_chunks(B, H, W, C);
  std::vector<Tensor> buffers{grad};
  if (grad.defined()) {
    for (int64_t k = 1; k <= split.private_buffers(); ++k) {
      buffers.push_back(k <= static_cast<int64_t>(private_buffers.size()) ? private_buffers[k - 1] : at::zeros_like(grad));
    }
  }
  at::parallel_for(0, split.chunks, 1, [&](int64_t begin, int64_t end) {
    TileSamples<acc_t, index_t> tile;
    for (int64_t k = begin; k < end; ++k) {
      acc_t* scatter = grad.defined() ? buffers[split.by_batch ? 0 : k].data_ptr<acc_t>() : nullptr;
      const int64_t first = k * split.rows_per_chunk, last = std::min(rows, (k + 1) * split.rows_per_chunk);
      for (int64_t row = first; row < last; ++row) {
        const int64_t b = row / H, y = row % H;
        for (int64_t x0 = 0; x0 < W; x0 += kTile) {
          tile.fill(fl, b, y, x0, std::min(kTile, W - x0), H, W, zeros, true, sy, sx, gsy, gsx);
          if (tile.grad_offsets_differ) {
            f(b, y, x0, tile, scatter, std::true_type{});
          } else {
            f(b, y, x0, tile, scatter, std::false_type{});
          }
        }
      }
    }
  });
  for (size_t k = 1; k < buffers.size(); ++k) grad.add_(buffers[k]);
}

#define V2V_DISPATCH_CPU(dtype, name, ...) \
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, dtype, name, __VA_ARGS__)

// Rows per partial sum of the loss. Fixed, not derived from the thread count, so the summation order
// (and so the bits of the result) is the same on every machine.
constexpr int64_t kRowsPerPartial = 16;

// The sum over the B * H rows of row_sum(b, y, tile) (a tile of the calling thread, for the function's
// use), in an order fixed by the shapes: double partial sums of kRowsPerPartial rows each, added in order.
template <typename Tile, typename RowSum>
double sum_rows(int64_t B, int64_t H, int64_t W, int64_t C, const RowSum& row_sum) {
  const int64_t rows = B * H, n_partials = div_up(rows, kRowsPerPartial);
  std::vector<double> partials(n_partials, 0.0);
  const int64_t grain = std::max<int64_t>(1, min_rows_per_chunk(W, C) / kRowsPerPartial);
  at::parallel_for(0, n_partials, grain, [&](int64_t begin, int64_t end) {
    Tile t;
    for (int64_t p = begin; p < end; ++p) {
      double sum = 0.0;
      for (int64_t row = p * kRowsPerPartial; row < std::min(rows, (p + 1) * kRowsPerPartial); ++row) {
        sum += static_cast<double>(row_sum(row / H, row % H, t));
      }
      partials[p] = sum;
    }
  });
  double total = 0.0;
  for (double p : partials) total += p;
  return total;
}

// ------------------------------------------------------------------------------- sampling channel groups

// Whether the ops sample img by channel blocks: in the AVX-512 build, for float32 with 32-bit offsets,
// both sizes above 1 (a pixel's corner pairs are then neighbours in memory) and block offsets in int32.
// Elsewhere they sample its planes.
template <typename scalar_t, typename index_t>
bool samples_by_blocks(const Tensor& img) {
#if V2V_CPU_AVX512
  const int64_t H = img.size(2), W = img.size(3);
  return std::is_same_v<scalar_t, float> && std::is_same_v<index_t, int32_t> && H > 1 && W > 1 &&
         4 * H * W <= std::numeric_limits<int32_t>::max();
#else
  (void)img;
  return false;
#endif
}

// An image sampled by groups of up to kChannelGroup channels, with the layout of its gradient buffer:
// from its planes, or from channel blocks (the gradient buffer then in blocks too). Tiles are filled with
// the strides (sy, sx) and, for the gradient buffer, (gsy, gsx).
static_assert(kChannelGroup == 4, "a channel group is one channel block");
template <typename acc_t, typename index_t, typename scalar_t>
struct GroupSampler {
  Strided4<const scalar_t, index_t> planes;
  const float* blocks = nullptr;  // the image in channel blocks, or null
  int64_t block_plane = 0, n_blocks = 0;  // floats per block plane, blocks per batch element
  index_t sy = 0, sx = 0;
  index_t gsn = 0, gsc = 0, gsy = 0, gsx = 0;  // a planar gradient buffer's strides

  // t.values[k] for the `channels` channels from c0 of batch element b.
  void sample(TileSamples<acc_t, index_t>& t, int64_t b, int64_t c0, int64_t channels) const {
#if V2V_CPU_AVX512
    if constexpr (std::is_same_v<acc_t, float> && std::is_same_v<index_t, int32_t>) {
      if (blocks) return sample_blocks(t, block(blocks, b, c0), channels, {true, false, nullptr});
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
#if V2V_CPU_AVX512
    if constexpr (std::is_same_v<acc_t, float> && std::is_same_v<index_t, int32_t>) {
      if (blocks) {
        return sample_blocks(t, block(blocks, b, c0), channels,
                             {values, flow_grad, scatter ? block(scatter, b, c0) : nullptr});
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

 private:
  template <typename T>
  T* block(T* base, int64_t b, int64_t c0) const {
    return base + (b * n_blocks + c0 / 4) * block_plane;
  }
};

// The sampler of img: from `blocks` (img in channel blocks) when not null, else from its planes.
template <typename acc_t, typename index_t, typename scalar_t>
GroupSampler<acc_t, index_t, scalar_t> make_sampler(const Tensor& img, const float* blocks) {
  GroupSampler<acc_t, index_t, scalar_t> s;
  s.planes = strided4<const scalar_t, index_t>(img);
  s.blocks = blocks;
  if (blocks) {
    s.block_plane = 4 * img.size(2) * img.size(3), s.n_blocks = div_up(img.size(1), 4);
    s.sy = static_cast<index_t>(img.size(3)), s.sx = 1;
  } else {
    s.sy = s.planes.sy, s.sx = s.planes.sx;
  }
  s.gsy = s.sy, s.gsx = s.sx;
  return s;
}

// The forward's sampler of img: in channel blocks (copied into this thread's workspace) where the ops
// sample so.
template <typename acc_t, typename index_t, typename scalar_t>
GroupSampler<acc_t, index_t, scalar_t> forward_sampler(const Tensor& img) {
  float* blocks = nullptr;
#if V2V_CPU_AVX512
  if (samples_by_blocks<scalar_t, index_t>(img)) {
    blocks = block_workspace(block_floats(img));
    to_blocks(img, blocks, 0);
  }
#endif
  return make_sampler<acc_t, index_t, scalar_t>(img, blocks);
}

// Calls f(b, y, x0, tile, c0, channels) for every tile and channel group of img, with the group's values
// in tile.values.
template <typename acc_t, typename index_t, typename scalar_t, typename F>
void for_each_group_tile(const Tensor& img, const Tensor& flow, bool zeros, const F& f) {
  const int64_t C = img.size(1);
  const auto s = forward_sampler<acc_t, index_t, scalar_t>(img);
  for_each_tile<acc_t, index_t, scalar_t>(flow, C, zeros, s.sy, s.sx,
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
Tensor backward_by_groups(const Tensor& img, const Tensor& flow, bool zeros, bool image_grad, bool flow_grad,
                          GroupValues values, const Prepare& prepare, const After& after, const Done& done) {
  const int64_t C = img.size(1);
  Tensor acc;
  std::vector<Tensor> private_buffers;
  float* blocks = nullptr;
#if V2V_CPU_AVX512
  // The blocks, then the gradient buffer and the private buffers of the chunks that need them.
  const int64_t size = block_floats(img);
  if (samples_by_blocks<scalar_t, index_t>(img)) {
    const int64_t B = img.size(0), H = img.size(2), W = img.size(3);
    const int64_t buffers = image_grad ? 1 + backward_row_chunks(B, H, W, C).private_buffers() : 0;
    blocks = block_workspace((1 + buffers) * size);
    to_blocks(img, blocks, buffers);
    const auto as_tensor = [&](int64_t k) {
      return at::from_blob(blocks + k * size, {B, div_up(C, 4), H, W, 4}, img.options());
    };
    if (image_grad) acc = as_tensor(1);
    for (int64_t k = 2; k <= buffers; ++k) private_buffers.push_back(as_tensor(k));
  }
#endif
  auto s = make_sampler<acc_t, index_t, scalar_t>(img, blocks);
  if (image_grad && !blocks) {
    acc = zeros_like_layout(img, c10::CppTypeToScalarType<acc_t>::value);
    s.gsn = static_cast<index_t>(acc.stride(0)), s.gsc = static_cast<index_t>(acc.stride(1));
    s.gsy = static_cast<index_t>(acc.stride(2)), s.gsx = static_cast<index_t>(acc.stride(3));
  }
  for_each_backward_tile<acc_t, index_t, scalar_t>(
      flow, C, zeros, s.sy, s.sx, acc, private_buffers, s.gsy, s.gsx,
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
#if V2V_CPU_AVX512
  if (blocks) {
    Tensor grad = empty_like_layout(img);
    from_blocks(blocks + size, grad);
    return grad;
  }
#endif
  return finish_grad(acc, img);
}

// A backward callback with nothing to do.
struct Nothing {
  template <typename... Args>
  void operator()(Args&&...) const {}
};

}  // namespace

// ---------------------------------------------------------------------------------------------- flow_warp

Tensor flow_warp_cpu(const Tensor& img, const Tensor& flow, const std::string& padding_mode) {
  check_image_and_flow(img, flow, "img");
  const bool zeros = parse_zeros_padding(padding_mode);
  Tensor out = empty_like_layout(img);
  if (out.numel() == 0) return out;
  V2V_DISPATCH_CPU(img.scalar_type(), "flow_warp_cpu", [&] {
    V2V_DISPATCH_INDEX(all_fit_int32(img, flow, out), [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const auto o = strided4<scalar_t, index_t>(out);
      for_each_group_tile<acc_t, index_t, scalar_t>(img, flow, zeros, [&](int64_t b, int64_t y, int64_t x0,
                                                                          TileSamples<acc_t, index_t>& t,
                                                                          int64_t c0, int64_t channels) {
        for (int64_t k = 0; k < channels; ++k) copy_row(&o(b, c0 + k, y, x0), o.sx, t.values[k], 1, t.n);
      });
    });
  });
  return out;
}

std::tuple<Tensor, Tensor> flow_warp_backward_cpu(const Tensor& grad_out, const Tensor& img, const Tensor& flow,
                                                  const std::string& padding_mode, std::array<bool, 2> mask) {
  check_image_and_flow(img, flow, "img");
  check_same_layout(grad_out, "grad_out", img, "img", 0);
  const bool zeros = parse_zeros_padding(padding_mode);
  Tensor grad_img = unrequested(img);
  Tensor grad_flow = mask[1] ? empty_like_layout(flow) : unrequested(flow);
  V2V_DISPATCH_CPU(img.scalar_type(), "flow_warp_backward_cpu", [&] {
    V2V_DISPATCH_INDEX(all_fit_int32(img, flow, grad_out), [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const auto go = strided4<const scalar_t, index_t>(grad_out);
      const auto gf = strided4<scalar_t, index_t>(mask[1] ? grad_flow : flow);
      Tensor g = backward_by_groups<acc_t, index_t, scalar_t>(
          img, flow, zeros, mask[0], mask[1], GroupValues::kNone,
          [&](int64_t b, int64_t y, int64_t x0, TileSamples<acc_t, index_t>& t, int64_t c0, int64_t channels) {
            for (int64_t k = 0; k < channels; ++k) copy_row(t.grad[k], 1, &go(b, c0 + k, y, x0), go.sx, t.n);
          },
          Nothing{},
          [&](int64_t b, int64_t y, int64_t x0, TileSamples<acc_t, index_t>& t) {
            if (!mask[1]) return;
            copy_row(&gf(b, 0, y, x0), gf.sx, t.sums[0], 1, t.n);
            copy_row(&gf(b, 1, y, x0), gf.sx, t.sums[1], 1, t.n);
          });
      if (mask[0]) grad_img = g;
    });
  });
  return {grad_img, grad_flow};
}

// --------------------------------------------------------------------------------------------- warp_blend

Tensor warp_blend_cpu(const Tensor& prev, const Tensor& flow, const Tensor& raw, const Tensor& weight,
                      const std::string& padding_mode) {
  check_warp_blend(prev, flow, raw, weight);
  const bool zeros = parse_zeros_padding(padding_mode);
  Tensor out = empty_like_layout(raw);
  if (out.numel() == 0) return out;
  V2V_DISPATCH_CPU(prev.scalar_type(), "warp_blend_cpu", [&] {
    V2V_DISPATCH_INDEX(all_fit_int32(prev, flow, raw, weight, out), [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const auto rw = strided4<const scalar_t, index_t>(raw);
      const auto wt = strided4<const scalar_t, index_t>(weight);
      const auto o = strided4<scalar_t, index_t>(out);
      for_each_group_tile<acc_t, index_t, scalar_t>(prev, flow, zeros, [&](int64_t b, int64_t y, int64_t x0,
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
                                                                   const std::string& padding_mode,
                                                                   std::array<bool, 4> mask) {
  check_warp_blend(prev, flow, raw, weight);
  check_same_layout(grad_out, "grad_out", prev, "prev", 0);
  const bool zeros = parse_zeros_padding(padding_mode);
  Tensor grad_prev = unrequested(prev);
  Tensor grad_flow = mask[1] ? empty_like_layout(flow) : unrequested(flow);
  Tensor grad_raw = mask[2] ? empty_like_layout(raw) : unrequested(raw);
  Tensor grad_weight = mask[3] ? empty_like_layout(weight) : unrequested(weight);
  V2V_DISPATCH_CPU(prev.scalar_type(), "warp_blend_backward_cpu", [&] {
    V2V_DISPATCH_INDEX(all_fit_int32(prev, flow, raw, weight, grad_out), [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const auto rw = strided4<const scalar_t, index_t>(raw);
      const auto wt = strided4<const scalar_t, index_t>(weight);
      const auto go = strided4<const scalar_t, index_t>(grad_out);
      const auto gf = strided4<scalar_t, index_t>(mask[1] ? grad_flow : flow);
      const auto gr = strided4<scalar_t, index_t>(mask[2] ? grad_raw : raw);
      const auto gw = strided4<scalar_t, index_t>(mask[3] ? grad_weight : weight);
      // A NaN-flow pixel's value is NaN, and so is its weight gradient; it sends no gradient to prev or flow.
      Tensor g = backward_by_groups<acc_t, index_t, scalar_t>(
          prev, flow, zeros, mask[0], mask[1], mask[3] ? GroupValues::kWithGradients : GroupValues::kNone,
          [&](int64_t b, int64_t y, int64_t x0, TileSamples<acc_t, index_t>& t, int64_t c0, int64_t channels) {
            const scalar_t* w_row = &wt(b, 0, y, x0);
            for (int64_t k = 0; k < channels; ++k) {
              const scalar_t* g_row = &go(b, c0 + k, y, x0);
              scalar_t* gr_row = &gr(b, c0 + k, y, x0);
              for (int64_t x = 0; x < t.n; ++x) {
                const acc_t g = static_cast<acc_t>(g_row[x * go.sx]), w = static_cast<acc_t>(w_row[x * wt.sx]);
                if (mask[2]) gr_row[x * gr.sx] = static_cast<scalar_t>(g * w);
                t.grad[k][x] = g * (acc_t(1) - w);
              }
            }
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
            if (mask[1]) copy_row(&gf(b, 0, y, x0), gf.sx, t.sums[0], 1, t.n), copy_row(&gf(b, 1, y, x0), gf.sx, t.sums[1], 1, t.n);
            if (mask[3]) copy_row(&gw(b, 0, y, x0), gw.sx, t.sums[2], 1, t.n);
          });
      if (mask[0]) grad_prev = g;
    });
  });
  return {grad_prev, grad_flow, grad_raw, grad_weight};
}

// ----------------------------------------------------------------------------------------- masked_warp_l1

Tensor masked_warp_l1_cpu(const Tensor& src, const Tensor& flow, const Tensor& target, const Tensor& mask,
                          const std::string& padding_mode) {
  check_masked_warp_l1(src, flow, target, mask);
  const bool zeros = parse_zeros_padding(padding_mode);
  const int64_t B = src.size(0), C = src.size(1), H = src.size(2), W = src.size(3);
  Tensor out = at::empty({}, src.options());
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
          t.fill(fl, b, y, x0, std::min(kTile, W - x0), H, W, zeros, false, s.sy, s.sx, s.sy, s.sx);
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
                                                                       const std::string& padding_mode,
                                                                       std::array<bool, 4> need) {
  check_masked_warp_l1(src, flow, target, mask);
  TORCH_CHECK(grad_out.numel() == 1, "grad_out of masked_warp_l1 must be a scalar, got ", grad_out.sizes());
  const bool zeros = parse_zeros_padding(padding_mode);
  const int64_t B = src.size(0), C = src.size(1), H = src.size(2), W = src.size(3);
  const bool mask_per_channel = mask.size(1) != 1 || C == 1;
  Tensor grad_src = unrequested(src);
  Tensor grad_flow = need[1] ? empty_like_layout(flow) : unrequested(flow);
  Tensor grad_target = need[2] ? empty_like_layout(target) : unrequested(target);
  Tensor grad_mask = need[3] ? empty_like_layout(mask) : unrequested(mask);
  V2V_DISPATCH_CPU(src.scalar_type(), "masked_warp_l1_backward_cpu", [&] {
    V2V_DISPATCH_INDEX(all_fit_int32(src, flow, target, mask, grad_out), [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const acc_t scale = static_cast<acc_t>(grad_out.item<double>() / static_cast<double>(B * C * H * W));
      const auto tg = strided4<const scalar_t, index_t>(target);
      const auto mk = strided4<const scalar_t, index_t>(mask);
      const auto gf = strided4<scalar_t, index_t>(need[1] ? grad_flow : flow);
      const auto gt = strided4<scalar_t, index_t>(need[2] ? grad_target : target);
      const auto gm = strided4<scalar_t, index_t>(need[3] ? grad_mask : mask);
      Tensor g = backward_by_groups<acc_t, index_t, scalar_t>(
          src, flow, zeros, need[0], need[1], GroupValues::kBeforeGradients,
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
            if (need[1]) copy_row(&gf(b, 0, y, x0), gf.sx, t.sums[0], 1, t.n), copy_row(&gf(b, 1, y, x0), gf.sx, t.sums[1], 1, t.n);
            if (need[3] && !mask_per_channel) copy_row(&gm(b, 0, y, x0), gm.sx, t.sums[2], 1, t.n);
          });
      if (need[0]) grad_src = g;
    });
  });
  return {grad_src, grad_flow, grad_target, grad_mask};
}

}  // namespace V2V_CPU_ISA
}  // namespace vid2vid_fast
