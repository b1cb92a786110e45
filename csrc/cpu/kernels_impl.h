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
// This file is compiled once per instruction set (kernels_baseline.cpp, kernels_avx2.cpp,
// kernels_avx512.cpp), into the namespace V2V_CPU_ISA; register_cpu.cpp picks the build the processor runs.
#include <ATen/Dispatch.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros_like.h>

#include <limits>
#include <vector>

#include "../ops.h"

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
// enough and the loop reloaded pointers from the stack).
constexpr int64_t kTile = 128;

// The samples of a tile of output pixels, as arrays over x: structure of arrays, so that fill()
// vectorizes (with -fno-trapping-math, which lets the compiler turn the selects of warp_math.h into vector
// blends). Per pixel: the four corner offsets and, per axis, the two weights and (for the backward) their
// two derivatives; products are formed where they are used, which stores less per pixel.
template <typename acc_t, typename index_t>
struct alignas(64) TileSamples {
  index_t off[4][kTile];       // o00, o01, o10, o11 in the input
  index_t grad_off[4][kTile];  // the same in the gradient buffer, when its strides differ from the input's
  acc_t weight[4][kTile];      // x.w0, x.w1, y.w0, y.w1
  acc_t deriv[4][kTile];       // x.d0, x.d1, y.d0, y.d1 (backward only)
  acc_t sums[3][kTile];        // per-pixel accumulators over channels: flow x, flow y, and an op's third sum
  uint8_t valid[kTile];
  int64_t n = 0;               // pixels in this tile
  bool grad_offsets_differ = false;

  // Samples pixels x0 .. x0 + n - 1 of row y of batch element b: offsets for planes of strides (sy, sx) to
  // read and, with derivatives, for the gradient buffer (strides gsy, gsx) to scatter into.
  template <typename scalar_t>
  void fill(const Strided4<const scalar_t, index_t>& flow, int64_t b, int64_t y, int64_t x0, int64_t count,
            int64_t H, int64_t W, bool zeros, bool with_grads, index_t sy, index_t sx, index_t gsy, index_t gsx) {
    n = count;
    grad_offsets_differ = with_grads && (gsy != sy || gsx != sx);
    // Constant flags inside the loop, so that no control flow is left to stop vectorization.
    const auto go = [&](auto kZeros) {
      if (!with_grads) return fill_tile<decltype(kZeros)::value, false, false>(flow, b, y, x0, H, W, sy, sx, gsy, gsx);
      if (!grad_offsets_differ) return fill_tile<decltype(kZeros)::value, true, false>(flow, b, y, x0, H, W, sy, sx, gsy, gsx);
      fill_tile<decltype(kZeros)::value, true, true>(flow, b, y, x0, H, W, sy, sx, gsy, gsx);
    };
    zeros ? go(std::true_type{}) : go(std::false_type{});
  }

  CornerOffsets<index_t> offsets(int64_t x) const { return {off[0][x], off[1][x], off[2][x], off[3][x]}; }
  CornerOffsets<index_t> grad_offsets(int64_t x) const {
    return {grad_off[0][x], grad_off[1][x], grad_off[2][x], grad_off[3][x]};
  }
  // The axes of pixel x's sample; weights only (forward), or with derivatives (backward).
  AxisSample<acc_t> x_weights(int64_t x) const { return {0, 0, weight[0][x], weight[1][x], 0, 0}; }
  AxisSample<acc_t> y_weights(int64_t x) const { return {0, 0, weight[2][x], weight[3][x], 0, 0}; }
  AxisSample<acc_t> x_axis(int64_t x) const { return {0, 0, weight[0][x], weight[1][x], deriv[0][x], deriv[1][x]}; }
  AxisSample<acc_t> y_axis(int64_t x) const { return {0, 0, weight[2][x], weight[3][x], deriv[2][x], deriv[3][x]}; }
  // The sampled value of pixel x from a plane (NaN for an invalid sample).
  template <typename scalar_t>
  acc_t value(const scalar_t* plane, int64_t x) const {
    return valid[x] ? interpolate(read_corners<acc_t>(plane, offsets(x)), x_weights(x), y_weights(x))
                    : quiet_nan<acc_t>();
  }
  void zero_sums() { std::fill(&sums[0][0], &sums[0][0] + 3 * kTile, acc_t(0)); }

 private:
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
      const Sample<acc_t> s = sample_at<acc_t>(first + x, row, static_cast<acc_t>(dx[x * fsx]),
                                               static_cast<acc_t>(dy[x * fsx]), height, width, kZeros);
      const CornerOffsets<index_t> o = corner_offsets(s, sy, sx);
      off[0][x] = o.o00, off[1][x] = o.o01, off[2][x] = o.o10, off[3][x] = o.o11;
      if (kGradOffsets) {
        const CornerOffsets<index_t> g = corner_offsets(s, gsy, gsx);
        grad_off[0][x] = g.o00, grad_off[1][x] = g.o01, grad_off[2][x] = g.o10, grad_off[3][x] = g.o11;
      }
      weight[0][x] = s.x.w0, weight[1][x] = s.x.w1, weight[2][x] = s.y.w0, weight[3][x] = s.y.w1;
      valid[x] = s.valid;
      if (kGrads) deriv[0][x] = s.x.d0, deriv[1][x] = s.x.d1, deriv[2][x] = s.y.d0, deriv[3][x] = s.y.d1;
    }
  }
};

// Adds g times the bilinear weights of a sample (axes sx, sy; corners at offsets o) into a gradient plane.
template <typename acc_t, typename index_t>
V2V_ALWAYS_INLINE void scatter_sample(acc_t* plane, const CornerOffsets<index_t>& o, const AxisSample<acc_t>& sx,
                                      const AxisSample<acc_t>& sy, acc_t g) {
  scatter_corners(sx, sy, o, g, [plane](index_t offset, acc_t v) { plane[offset] += v; });
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

// The backward driver (see the file comment). Calls f(b, y, x0, tile, scatter, grad_offsets_differ) for
// every tile, where scatter is the acc_t gradient buffer this row's chunk scatters into (laid out like
// `grad`) and grad_offsets_differ a std::bool_constant: true when the buffer's strides differ from the
// input's, so f must scatter through tile.grad_offsets(x) rather than tile.offsets(x). f writes the tile's
// gathered gradients directly. `grad` (undefined when no image gradient is needed) ends up holding the sum.
template <typename acc_t, typename index_t, typename scalar_t, typename F>
void for_each_backward_tile(const Tensor& flow, int64_t C, bool zeros, index_t sy, index_t sx, Tensor& grad,
                            const F& f) {
  const int64_t B = flow.size(0), H = flow.size(2), W = flow.size(3);
  const int64_t rows = B * H;
  if (rows * W == 0) return;
  const auto fl = strided4<const scalar_t, index_t>(flow);
  const int64_t chunks = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), rows / min_rows_per_chunk(W, C)));
  // When the batch divides evenly, chunks hold whole batch elements: their scatters cannot meet, and no
  // private buffers are needed. Otherwise rows are split evenly and chunks k > 0 scatter into private buffers.
  const bool by_batch = B % chunks == 0;
  const int64_t rows_per_chunk = by_batch ? (B / chunks) * H : div_up(rows, chunks);
  std::vector<Tensor> buffers{grad};
  if (grad.defined() && !by_batch) {
    for (int64_t k = 1; k < chunks; ++k) buffers.push_back(at::zeros_like(grad));
  }
  const index_t gsy = grad.defined() ? static_cast<index_t>(grad.stride(2)) : sy;
  const index_t gsx = grad.defined() ? static_cast<index_t>(grad.stride(3)) : sx;
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    TileSamples<acc_t, index_t> tile;
    for (int64_t k = begin; k < end; ++k) {
      acc_t* scatter = grad.defined() ? buffers[by_batch ? 0 : k].data_ptr<acc_t>() : nullptr;
      for (int64_t row = k * rows_per_chunk; row < std::min(rows, (k + 1) * rows_per_chunk); ++row) {
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
      const auto in = strided4<const scalar_t, index_t>(img);
      const auto o = strided4<scalar_t, index_t>(out);
      const int64_t C = img.size(1);
      for_each_tile<acc_t, index_t, scalar_t>(flow, C, zeros, in.sy, in.sx,
                                              [&](int64_t b, int64_t y, int64_t x0, const TileSamples<acc_t, index_t>& t) {
        for (int64_t c = 0; c < C; ++c) {
          const scalar_t* src = in.plane(b, c);
          scalar_t* dst = &o(b, c, y, x0);
          for (int64_t x = 0; x < t.n; ++x) {
            dst[x * o.sx] = static_cast<scalar_t>(t.value(src, x));
          }
        }
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
  Tensor grad_img = unrequested(img), grad_flow = unrequested(flow);
  V2V_DISPATCH_CPU(img.scalar_type(), "flow_warp_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    Tensor acc = mask[0] ? zeros_like_layout(img, c10::CppTypeToScalarType<acc_t>::value) : Tensor();
    if (mask[1]) grad_flow = empty_like_layout(flow);
    V2V_DISPATCH_INDEX(all_fit_int32(img, flow, grad_out), [&] {
      const auto in = strided4<const scalar_t, index_t>(img);
      const auto go = strided4<const scalar_t, index_t>(grad_out);
      const auto gf = strided4<scalar_t, index_t>(mask[1] ? grad_flow : flow);
      const index_t gsn = mask[0] ? static_cast<index_t>(acc.stride(0)) : 0;
      const index_t gsc = mask[0] ? static_cast<index_t>(acc.stride(1)) : 0;
      const int64_t C = img.size(1);
      for_each_backward_tile<acc_t, index_t, scalar_t>(
          flow, C, zeros, in.sy, in.sx, acc,
          [&](int64_t b, int64_t y, int64_t x0, TileSamples<acc_t, index_t>& t, acc_t* scatter, auto differ) {
            t.zero_sums();
            for (int64_t c = 0; c < C; ++c) {
              const scalar_t* src = in.plane(b, c);
              const scalar_t* g_row = &go(b, c, y, x0);
              acc_t* to_img = mask[0] ? scatter + b * gsn + c * gsc : nullptr;
              for (int64_t x = 0; x < t.n; ++x) {
                if (!t.valid[x]) continue;  // a NaN-flow pixel sends no gradient anywhere
                // Everything the pixel needs is loaded before the first store, which the compiler must
                // otherwise assume could change it.
                const AxisSample<acc_t> ax = t.x_axis(x), ay = t.y_axis(x);
                const CornerOffsets<index_t> off = t.offsets(x);
                const CornerOffsets<index_t> goff = decltype(differ)::value ? t.grad_offsets(x) : off;
                const acc_t g = static_cast<acc_t>(g_row[x * go.sx]);
                if (mask[0]) scatter_sample(to_img, goff, ax, ay, g);
                if (mask[1]) {
                  const Corners<acc_t> k = read_corners<acc_t>(src, off);
                  t.sums[0][x] += g * interpolate_dx(k, ax, ay);
                  t.sums[1][x] += g * interpolate_dy(k, ax, ay);
                }
              }
            }
            if (!mask[1]) return;
            for (int64_t x = 0; x < t.n; ++x) {
              gf(b, 0, y, x0 + x) = static_cast<scalar_t>(t.sums[0][x]);
              gf(b, 1, y, x0 + x) = static_cast<scalar_t>(t.sums[1][x]);
            }
          });
    });
    if (mask[0]) grad_img = finish_grad(acc, img);
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
      const auto pv = strided4<const scalar_t, index_t>(prev);
      const auto rw = strided4<const scalar_t, index_t>(raw);
      const auto wt = strided4<const scalar_t, index_t>(weight);
      const auto o = strided4<scalar_t, index_t>(out);
      const int64_t C = prev.size(1);
      for_each_tile<acc_t, index_t, scalar_t>(flow, C, zeros, pv.sy, pv.sx,
                                              [&](int64_t b, int64_t y, int64_t x0, const TileSamples<acc_t, index_t>& t) {
        const scalar_t* w_row = &wt(b, 0, y, x0);
        for (int64_t c = 0; c < C; ++c) {
          const scalar_t* src = pv.plane(b, c);
          const scalar_t* r_row = &rw(b, c, y, x0);
          scalar_t* dst = &o(b, c, y, x0);
          for (int64_t x = 0; x < t.n; ++x) {
            const acc_t w = static_cast<acc_t>(w_row[x * wt.sx]);
            const acc_t warped = t.value(src, x);
            dst[x * o.sx] = static_cast<scalar_t>(static_cast<acc_t>(r_row[x * rw.sx]) * w + warped * (acc_t(1) - w));
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
  Tensor grad_prev = unrequested(prev), grad_flow = unrequested(flow);
  Tensor grad_raw = unrequested(raw), grad_weight = unrequested(weight);
  V2V_DISPATCH_CPU(prev.scalar_type(), "warp_blend_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    Tensor acc = mask[0] ? zeros_like_layout(prev, c10::CppTypeToScalarType<acc_t>::value) : Tensor();
    if (mask[1]) grad_flow = empty_like_layout(flow);
    if (mask[2]) grad_raw = empty_like_layout(raw);
    if (mask[3]) grad_weight = empty_like_layout(weight);
    V2V_DISPATCH_INDEX(all_fit_int32(prev, flow, raw, weight, grad_out, grad_raw), [&] {
      const auto pv = strided4<const scalar_t, index_t>(prev);
      const auto rw = strided4<const scalar_t, index_t>(raw);
      const auto wt = strided4<const scalar_t, index_t>(weight);
      const auto go = strided4<const scalar_t, index_t>(grad_out);
      const auto gf = strided4<scalar_t, index_t>(mask[1] ? grad_flow : flow);
      const auto gr = strided4<scalar_t, index_t>(mask[2] ? grad_raw : raw);
      const auto gw = strided4<scalar_t, index_t>(mask[3] ? grad_weight : weight);
      const index_t gsn = mask[0] ? static_cast<index_t>(acc.stride(0)) : 0;
      const index_t gsc = mask[0] ? static_cast<index_t>(acc.stride(1)) : 0;
      const bool need_warped = mask[1] || mask[3];
      const int64_t C = prev.size(1);
      for_each_backward_tile<acc_t, index_t, scalar_t>(
          flow, C, zeros, pv.sy, pv.sx, acc,
          [&](int64_t b, int64_t y, int64_t x0, TileSamples<acc_t, index_t>& t, acc_t* scatter, auto differ) {
            t.zero_sums();
            const scalar_t* w_row = &wt(b, 0, y, x0);
            for (int64_t c = 0; c < C; ++c) {
              const scalar_t* src = pv.plane(b, c);
              const scalar_t* g_row = &go(b, c, y, x0);
              const scalar_t* r_row = &rw(b, c, y, x0);
              scalar_t* gr_row = &gr(b, c, y, x0);
              acc_t* to_prev = mask[0] ? scatter + b * gsn + c * gsc : nullptr;
              for (int64_t x = 0; x < t.n; ++x) {
                // Everything the pixel needs is loaded before the first store (see flow_warp_backward_cpu).
                const AxisSample<acc_t> ax = t.x_axis(x), ay = t.y_axis(x);
                const CornerOffsets<index_t> off = t.offsets(x);
                const CornerOffsets<index_t> goff = decltype(differ)::value ? t.grad_offsets(x) : off;
                const bool valid = t.valid[x];
                const acc_t r = static_cast<acc_t>(r_row[x * rw.sx]);
                const acc_t g = static_cast<acc_t>(g_row[x * go.sx]);
                const acc_t w = static_cast<acc_t>(w_row[x * wt.sx]);
                const acc_t g_prev = g * (acc_t(1) - w);
                if (mask[2]) gr_row[x * gr.sx] = static_cast<scalar_t>(g * w);
                if (!valid) {
                  // A NaN-flow pixel: its warped value is NaN, and it sends no gradient to prev or flow.
                  t.sums[2][x] += g * (r - quiet_nan<acc_t>());
                  continue;
                }
                if (mask[0]) scatter_sample(to_prev, goff, ax, ay, g_prev);
                if (!need_warped) continue;
                const Corners<acc_t> k = read_corners<acc_t>(src, off);
                t.sums[0][x] += g_prev * interpolate_dx(k, ax, ay);
                t.sums[1][x] += g_prev * interpolate_dy(k, ax, ay);
                t.sums[2][x] += g * (r - interpolate(k, ax, ay));
              }
            }
            for (int64_t x = 0; x < t.n; ++x) {
              if (mask[1]) {
                gf(b, 0, y, x0 + x) = static_cast<scalar_t>(t.sums[0][x]);
                gf(b, 1, y, x0 + x) = static_cast<scalar_t>(t.sums[1][x]);
              }
              if (mask[3]) gw(b, 0, y, x0 + x) = static_cast<scalar_t>(t.sums[2][x]);
            }
          });
    });
    if (mask[0]) grad_prev = finish_grad(acc, prev);
  });
  return {grad_prev, grad_flow, grad_raw, grad_weight};
}

// ----------------------------------------------------------------------------------------- masked_warp_l1

// Rows per partial sum of the loss. Fixed, not derived from the thread count, so the summation order
// (and so the bits of the result) is the same on every machine.
constexpr int64_t kRowsPerPartial = 16;

Tensor masked_warp_l1_cpu(const Tensor& src, const Tensor& flow, const Tensor& target, const Tensor& mask,
                          const std::string& padding_mode) {
  check_masked_warp_l1(src, flow, target, mask);
  const bool zeros = parse_zeros_padding(padding_mode);
  const int64_t B = src.size(0), C = src.size(1), H = src.size(2), W = src.size(3);
  Tensor out = at::empty({}, src.options());
  V2V_DISPATCH_CPU(src.scalar_type(), "masked_warp_l1_cpu", [&] {
    V2V_DISPATCH_INDEX(all_fit_int32(src, flow, target, mask), [&] {
      using acc_t = at::opmath_type<scalar_t>;
      const auto sv = strided4<const scalar_t, index_t>(src);
      const auto fl = strided4<const scalar_t, index_t>(flow);
      const auto tg = strided4<const scalar_t, index_t>(target);
      const auto mk = strided4<const scalar_t, index_t>(mask);
      const int64_t rows = B * H;
      const int64_t n_partials = div_up(rows, kRowsPerPartial);
      std::vector<double> partials(n_partials, 0.0);
      const int64_t grain = std::max<int64_t>(1, min_rows_per_chunk(W, C) / kRowsPerPartial);
      at::parallel_for(0, n_partials, grain, [&](int64_t begin, int64_t end) {
        TileSamples<acc_t, index_t> t;
        for (int64_t p = begin; p < end; ++p) {
          double sum = 0.0;
          for (int64_t row = p * kRowsPerPartial; row < std::min(rows, (p + 1) * kRowsPerPartial); ++row) {
            const int64_t b = row / H, y = row % H;
            acc_t row_sum = 0;
            for (int64_t x0 = 0; x0 < W; x0 += kTile) {
              t.fill(fl, b, y, x0, std::min(kTile, W - x0), H, W, zeros, false, sv.sy, sv.sx, sv.sy, sv.sx);
              for (int64_t c = 0; c < C; ++c) {
                const scalar_t* plane = sv.plane(b, c);
                const scalar_t* t_row = &tg(b, c, y, x0);
                const scalar_t* m_row = &mk(b, c, y, x0);
                for (int64_t x = 0; x < t.n; ++x) {
                  const acc_t warped = t.value(plane, x);
                  const acc_t m = static_cast<acc_t>(m_row[x * mk.sx]);
                  row_sum += std::abs(warped * m - static_cast<acc_t>(t_row[x * tg.sx]) * m);
                }
              }
            }
            sum += static_cast<double>(row_sum);
          }
          partials[p] = sum;
        }
      });
      double total = 0.0;
      for (double p : partials) total += p;
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
  Tensor grad_src = unrequested(src), grad_flow = unrequested(flow);
  Tensor grad_target = unrequested(target), grad_mask = unrequested(mask);
  V2V_DISPATCH_CPU(src.scalar_type(), "masked_warp_l1_backward_cpu", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    const acc_t scale = static_cast<acc_t>(grad_out.item<double>() / static_cast<double>(B * C * H * W));
    Tensor acc = need[0] ? zeros_like_layout(src, c10::CppTypeToScalarType<acc_t>::value) : Tensor();
    // Gathered gradients start at 0 so that a channel count of 0 leaves them defined.
    if (need[1]) grad_flow = at::zeros_like(flow);
    if (need[2]) grad_target = empty_like_layout(target);
    if (need[3]) grad_mask = at::zeros_like(mask);
    V2V_DISPATCH_INDEX(all_fit_int32(src, flow, target, mask, grad_target), [&] {
      const auto sv = strided4<const scalar_t, index_t>(src);
      const auto tg = strided4<const scalar_t, index_t>(target);
      const auto mk = strided4<const scalar_t, index_t>(mask);
      const auto gf = strided4<scalar_t, index_t>(need[1] ? grad_flow : flow);
      const auto gt = strided4<scalar_t, index_t>(need[2] ? grad_target : target);
      const auto gm = strided4<scalar_t, index_t>(need[3] ? grad_mask : mask);
      const index_t gsn = need[0] ? static_cast<index_t>(acc.stride(0)) : 0;
      const index_t gsc = need[0] ? static_cast<index_t>(acc.stride(1)) : 0;
      for_each_backward_tile<acc_t, index_t, scalar_t>(
          flow, C, zeros, sv.sy, sv.sx, acc,
          [&](int64_t b, int64_t y, int64_t x0, TileSamples<acc_t, index_t>& t, acc_t* scatter, auto differ) {
            t.zero_sums();
            for (int64_t c = 0; c < C; ++c) {
              const scalar_t* plane = sv.plane(b, c);
              const scalar_t* t_row = &tg(b, c, y, x0);
              const scalar_t* m_row = &mk(b, c, y, x0);
              acc_t* to_src = need[0] ? scatter + b * gsn + c * gsc : nullptr;
              for (int64_t x = 0; x < t.n; ++x) {
                // Everything the pixel needs is loaded before the first store (see flow_warp_backward_cpu).
                const bool valid = t.valid[x];
                const AxisSample<acc_t> ax = t.x_axis(x), ay = t.y_axis(x);
                const CornerOffsets<index_t> off = t.offsets(x);
                const CornerOffsets<index_t> goff = decltype(differ)::value ? t.grad_offsets(x) : off;
                const Corners<acc_t> k = read_corners<acc_t>(plane, off);
                const acc_t warped = valid ? interpolate(k, ax, ay) : quiet_nan<acc_t>();
                const acc_t m = static_cast<acc_t>(m_row[x * mk.sx]);
                const acc_t tv = static_cast<acc_t>(t_row[x * tg.sx]);
                // d loss / d warped, before the mask: sign(warped * m - t * m) / numel * grad_out.
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
                if (!valid) continue;
                if (need[0]) scatter_sample(to_src, goff, ax, ay, sg * m);
                t.sums[0][x] += sg * m * interpolate_dx(k, ax, ay);
                t.sums[1][x] += sg * m * interpolate_dy(k, ax, ay);
              }
            }
            for (int64_t x = 0; x < t.n; ++x) {
              if (need[1]) {
                gf(b, 0, y, x0 + x) = static_cast<scalar_t>(t.sums[0][x]);
                gf(b, 1, y, x0 + x) = static_cast<scalar_t>(t.sums[1][x]);
              }
              if (need[3] && !mask_per_channel) gm(b, 0, y, x0 + x) = static_cast<scalar_t>(t.sums[2][x]);
            }
          });
    });
    if (need[0]) grad_src = finish_grad(acc, src);
  });
  return {grad_src, grad_flow, grad_target, grad_mask};
}

}  // namespace V2V_CPU_ISA
}  // namespace vid2vid_fast
