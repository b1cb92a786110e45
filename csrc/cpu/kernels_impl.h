// CPU kernels for flow_warp, warp_blend and masked_warp_l1, forward and backward.
//
// Work goes row by row. The samples of a row (corner offsets and weights, warp_math.h) are computed first
// into arrays, in a loop the compiler vectorizes; then each channel walks the row, which keeps the reads
// of an NCHW plane local (a channel-inner loop would touch C planes per pixel).
//
// Rows are split into chunks, one per thread. The image gradient is a scatter: a chunk scatters only into
// the batch elements its rows belong to, so chunks of whole batch elements share nothing; when the batch
// does not divide into the chunks, chunk 0 scatters into the gradient itself and chunk k > 0 into a
// private buffer, and the buffers are added in chunk order at the end. No two threads write the same
// memory and the order of every floating-point addition is fixed by the shapes and the thread count, so
// the backward is race-free and bit-identical from run to run.
//
// This file is compiled twice (kernels_baseline.cpp, kernels_avx2.cpp), into the namespace V2V_CPU_ISA;
// register_cpu.cpp picks the build the processor can run.
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

// The samples of one row of output pixels, as arrays over x: structure of arrays, so that fill()
// vectorizes (with -fno-trapping-math, which lets the compiler turn the selects of warp_math.h into vector
// blends). Per pixel: the four corner offsets and, per axis, the two weights and (for the backward) their
// two derivatives; products are formed where they are used, which stores less per pixel.
template <typename acc_t, typename index_t>
struct RowSamples {
  RowSamples(int64_t width, bool with_grads) : W(width), with_grads(with_grads), valid(width), sums(3 * width) {
    for (auto& v : off) v.resize(width);
    for (auto& v : weight) v.resize(width);
    if (with_grads) {
      for (auto& v : off_grad) v.resize(width);
      for (auto& v : deriv) v.resize(width);
    }
  }

  // Samples row y of batch element b: offsets for planes of strides (sy, sx) to read, and for the gradient
  // buffer (strides gsy, gsx) to scatter into when those differ (an input that is not dense).
  template <typename scalar_t>
  void fill(const Strided4<const scalar_t, index_t>& flow, int64_t b, int64_t y, int64_t H, bool zeros, index_t sy,
            index_t sx, index_t gsy = 0, index_t gsx = 0) {
    grad_offsets_differ = with_grads && (gsy != sy || gsx != sx);
    // Constant flags inside the loop, so that no control flow is left to stop vectorization.
    if (zeros) {
      with_grads ? fill_row<true, true>(flow, b, y, H, sy, sx, off) : fill_row<true, false>(flow, b, y, H, sy, sx, off);
      if (grad_offsets_differ) fill_row<true, false>(flow, b, y, H, gsy, gsx, off_grad);
    } else {
      with_grads ? fill_row<false, true>(flow, b, y, H, sy, sx, off) : fill_row<false, false>(flow, b, y, H, sy, sx, off);
      if (grad_offsets_differ) fill_row<false, false>(flow, b, y, H, gsy, gsx, off_grad);
    }
  }

  // Raw pointers to the arrays, to copy into a local before a loop: Python's build flags include
  // -fno-strict-aliasing, under which every store in the loop would force a reload of the vectors' data
  // pointers.
  struct View {
    const index_t *o00, *o01, *o10, *o11, *g00, *g01, *g10, *g11;
    const acc_t *wx0, *wx1, *wy0, *wy1, *dx0, *dx1, *dy0, *dy1;
    const uint8_t* valid;

    CornerOffsets<index_t> offsets(int64_t x) const { return {o00[x], o01[x], o10[x], o11[x]}; }
    CornerOffsets<index_t> grad_offsets(int64_t x) const { return {g00[x], g01[x], g10[x], g11[x]}; }
    // The axes of pixel x's sample; weights only (forward), or with derivatives (backward).
    AxisSample<acc_t> x_weights(int64_t x) const { return {0, 0, wx0[x], wx1[x], 0, 0}; }
    AxisSample<acc_t> y_weights(int64_t x) const { return {0, 0, wy0[x], wy1[x], 0, 0}; }
    AxisSample<acc_t> x_axis(int64_t x) const { return {0, 0, wx0[x], wx1[x], dx0[x], dx1[x]}; }
    AxisSample<acc_t> y_axis(int64_t x) const { return {0, 0, wy0[x], wy1[x], dy0[x], dy1[x]}; }
    // The sampled value of pixel x from a plane (NaN for an invalid sample).
    template <typename scalar_t>
    acc_t value(const scalar_t* plane, int64_t x) const {
      return valid[x] ? interpolate(read_corners<acc_t>(plane, offsets(x)), x_weights(x), y_weights(x))
                      : quiet_nan<acc_t>();
    }
  };

  View view() const {
    const auto& g = grad_offsets_differ ? off_grad : off;
    const auto& d = with_grads ? deriv : weight;  // forward: no derivatives are read
    return View{off[0].data(),    off[1].data(),    off[2].data(),    off[3].data(),    g[0].data(),
                g[1].data(),      g[2].data(),      g[3].data(),      weight[0].data(), weight[1].data(),
                weight[2].data(), weight[3].data(), d[0].data(),      d[1].data(),      d[2].data(),
                d[3].data(),      valid.data()};
  }

  // Three per-pixel accumulators over channels (flow x, flow y, and an op's third sum), zeroed.
  std::array<acc_t*, 3> zeroed_sums() {
    std::fill(sums.begin(), sums.end(), acc_t(0));
    return {sums.data(), sums.data() + W, sums.data() + 2 * W};
  }

  int64_t W;
  bool with_grads;
  bool grad_offsets_differ = false;
  std::array<std::vector<index_t>, 4> off, off_grad;  // o00, o01, o10, o11
  std::array<std::vector<acc_t>, 4> weight, deriv;    // x.w0, x.w1, y.w0, y.w1 and x.d0, x.d1, y.d0, y.d1
  std::vector<uint8_t> valid;
  std::vector<acc_t> sums;

 private:
  // Fills `offsets` (for strides sy, sx), the weights and validity, and with kGrads the derivatives.
  // Kept out of line: inlined into a kernel's large loop nest, GCC stops vectorizing it.
  template <bool kZeros, bool kGrads, typename scalar_t>
  V2V_NOINLINE void fill_row(const Strided4<const scalar_t, index_t>& flow, int64_t b, int64_t y, int64_t H, index_t sy,
                index_t sx, std::array<std::vector<index_t>, 4>& offsets) {
    // Plain pointers: through the vectors, the compiler would reload their data pointers after every store.
    const scalar_t* dx = &flow(b, 0, y, 0);
    const scalar_t* dy = &flow(b, 1, y, 0);
    index_t *o00 = offsets[0].data(), *o01 = offsets[1].data(), *o10 = offsets[2].data(), *o11 = offsets[3].data();
    acc_t *wx0 = weight[0].data(), *wx1 = weight[1].data(), *wy0 = weight[2].data(), *wy1 = weight[3].data();
    acc_t *dx0 = nullptr, *dx1 = nullptr, *dy0 = nullptr, *dy1 = nullptr;
    if (kGrads) dx0 = deriv[0].data(), dx1 = deriv[1].data(), dy0 = deriv[2].data(), dy1 = deriv[3].data();
    uint8_t* ok = valid.data();
    const index_t fsx = flow.sx;
    const int32_t width = static_cast<int32_t>(W), height = static_cast<int32_t>(H), row = static_cast<int32_t>(y);
    // The arrays never overlap; without this GCC needs more run-time alias checks than it will emit.
    V2V_IVDEP
    for (int32_t x = 0; x < width; ++x) {
      const Sample<acc_t> s = sample_at<acc_t>(x, row, static_cast<acc_t>(dx[x * fsx]), static_cast<acc_t>(dy[x * fsx]),
                                               height, width, kZeros);
      const CornerOffsets<index_t> o = corner_offsets(s, sy, sx);
      o00[x] = o.o00, o01[x] = o.o01, o10[x] = o.o10, o11[x] = o.o11;
      wx0[x] = s.x.w0, wx1[x] = s.x.w1, wy0[x] = s.y.w0, wy1[x] = s.y.w1;
      ok[x] = s.valid;
      if (kGrads) dx0[x] = s.x.d0, dx1[x] = s.x.d1, dy0[x] = s.y.d0, dy1[x] = s.y.d1;
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

// Calls f(b, y, samples) for every row of output pixels; rows are split across threads.
template <typename acc_t, typename index_t, typename scalar_t, typename F>
void for_each_row(const Tensor& flow, int64_t C, bool zeros, index_t sy, index_t sx, const F& f) {
  const int64_t B = flow.size(0), H = flow.size(2), W = flow.size(3);
  const auto fl = strided4<const scalar_t, index_t>(flow);
  at::parallel_for(0, B * H, min_rows_per_chunk(W, C), [&](int64_t begin, int64_t end) {
    RowSamples<acc_t, index_t> rs(W, false);
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / H, y = row % H;
      rs.fill(fl, b, y, H, zeros, sy, sx);
      f(b, y, rs);
    }
  });
}

// The backward driver (see the file comment). Calls f(b, y, samples, scatter) for every row, where scatter
// is the acc_t gradient buffer this row's chunk scatters into (laid out like `grad`); f writes the row's
// gathered gradients directly. `grad` (undefined when no image gradient is needed) ends up holding the sum.
template <typename acc_t, typename index_t, typename scalar_t, typename F>
void for_each_backward_row(const Tensor& flow, int64_t C, bool zeros, index_t sy, index_t sx, Tensor& grad,
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
    RowSamples<acc_t, index_t> rs(W, true);
    for (int64_t k = begin; k < end; ++k) {
      acc_t* scatter = grad.defined() ? buffers[by_batch ? 0 : k].data_ptr<acc_t>() : nullptr;
      for (int64_t row = k * rows_per_chunk; row < std::min(rows, (k + 1) * rows_per_chunk); ++row) {
        const int64_t b = row / H, y = row % H;
        rs.fill(fl, b, y, H, zeros, sy, sx, gsy, gsx);
        f(b, y, rs, scatter);
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
      const int64_t C = img.size(1), W = img.size(3);
      for_each_row<acc_t, index_t, scalar_t>(flow, C, zeros, in.sy, in.sx,
                                             [&](int64_t b, int64_t y, const RowSamples<acc_t, index_t>& samples) {
        const auto rs = samples.view();
        for (int64_t c = 0; c < C; ++c) {
          const scalar_t* src = in.plane(b, c);
          scalar_t* dst = &o(b, c, y, 0);
          for (int64_t x = 0; x < W; ++x) {
            dst[x * o.sx] = static_cast<scalar_t>(rs.value(src, x));
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
      const int64_t C = img.size(1), W = img.size(3);
      for_each_backward_row<acc_t, index_t, scalar_t>(
          flow, C, zeros, in.sy, in.sx, acc,
          [&](int64_t b, int64_t y, RowSamples<acc_t, index_t>& samples, acc_t* scatter) {
            const auto rs = samples.view();
            const auto [gx, gy, unused] = samples.zeroed_sums();
            for (int64_t c = 0; c < C; ++c) {
              const scalar_t* src = in.plane(b, c);
              const scalar_t* g_row = &go(b, c, y, 0);
              acc_t* to_img = mask[0] ? scatter + b * gsn + c * gsc : nullptr;
              for (int64_t x = 0; x < W; ++x) {
                if (!rs.valid[x]) continue;  // a NaN-flow pixel sends no gradient anywhere
                // Everything the pixel needs is loaded before the first store, which the compiler must
                // otherwise assume could change it (-fno-strict-aliasing).
                const AxisSample<acc_t> ax = rs.x_axis(x), ay = rs.y_axis(x);
                const CornerOffsets<index_t> off = rs.offsets(x);
                const acc_t g = static_cast<acc_t>(g_row[x * go.sx]);
                if (mask[0]) scatter_sample(to_img, rs.grad_offsets(x), ax, ay, g);
                if (mask[1]) {
                  const Corners<acc_t> k = read_corners<acc_t>(src, off);
                  gx[x] += g * interpolate_dx(k, ax, ay);
                  gy[x] += g * interpolate_dy(k, ax, ay);
                }
              }
            }
            if (!mask[1]) return;
            for (int64_t x = 0; x < W; ++x) {
              gf(b, 0, y, x) = static_cast<scalar_t>(gx[x]);
              gf(b, 1, y, x) = static_cast<scalar_t>(gy[x]);
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
      const int64_t C = prev.size(1), W = prev.size(3);
      for_each_row<acc_t, index_t, scalar_t>(flow, C, zeros, pv.sy, pv.sx,
                                             [&](int64_t b, int64_t y, const RowSamples<acc_t, index_t>& samples) {
        const auto rs = samples.view();
        const scalar_t* w_row = &wt(b, 0, y, 0);
        for (int64_t c = 0; c < C; ++c) {
          const scalar_t* src = pv.plane(b, c);
          const scalar_t* r_row = &rw(b, c, y, 0);
          scalar_t* dst = &o(b, c, y, 0);
          for (int64_t x = 0; x < W; ++x) {
            const acc_t w = static_cast<acc_t>(w_row[x * wt.sx]);
            const acc_t warped = rs.value(src, x);
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
      const int64_t C = prev.size(1), W = prev.size(3);
      for_each_backward_row<acc_t, index_t, scalar_t>(
          flow, C, zeros, pv.sy, pv.sx, acc,
          [&](int64_t b, int64_t y, RowSamples<acc_t, index_t>& samples, acc_t* scatter) {
            const auto rs = samples.view();
            const auto [gx, gy, gw_sum] = samples.zeroed_sums();
            const scalar_t* w_row = &wt(b, 0, y, 0);
            for (int64_t c = 0; c < C; ++c) {
              const scalar_t* src = pv.plane(b, c);
              const scalar_t* g_row = &go(b, c, y, 0);
              const scalar_t* r_row = &rw(b, c, y, 0);
              scalar_t* gr_row = &gr(b, c, y, 0);
              acc_t* to_prev = mask[0] ? scatter + b * gsn + c * gsc : nullptr;
              for (int64_t x = 0; x < W; ++x) {
                // Everything the pixel needs is loaded before the first store (see flow_warp_backward_cpu).
                const AxisSample<acc_t> ax = rs.x_axis(x), ay = rs.y_axis(x);
                const CornerOffsets<index_t> off = rs.offsets(x), goff = rs.grad_offsets(x);
                const acc_t r = static_cast<acc_t>(r_row[x * rw.sx]);
                const acc_t g = static_cast<acc_t>(g_row[x * go.sx]);
                const acc_t w = static_cast<acc_t>(w_row[x * wt.sx]);
                const acc_t g_prev = g * (acc_t(1) - w);
                if (mask[2]) gr_row[x * gr.sx] = static_cast<scalar_t>(g * w);
                if (!rs.valid[x]) {
                  // A NaN-flow pixel: its warped value is NaN, and it sends no gradient to prev or flow.
                  gw_sum[x] += g * (r - quiet_nan<acc_t>());
                  continue;
                }
                if (mask[0]) scatter_sample(to_prev, goff, ax, ay, g_prev);
                if (!need_warped) continue;
                const Corners<acc_t> k = read_corners<acc_t>(src, off);
                gx[x] += g_prev * interpolate_dx(k, ax, ay);
                gy[x] += g_prev * interpolate_dy(k, ax, ay);
                gw_sum[x] += g * (r - interpolate(k, ax, ay));
              }
            }
            for (int64_t x = 0; x < W; ++x) {
              if (mask[1]) {
                gf(b, 0, y, x) = static_cast<scalar_t>(gx[x]);
                gf(b, 1, y, x) = static_cast<scalar_t>(gy[x]);
              }
              if (mask[3]) gw(b, 0, y, x) = static_cast<scalar_t>(gw_sum[x]);
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
        RowSamples<acc_t, index_t> samples(W, false);
        for (int64_t p = begin; p < end; ++p) {
          double sum = 0.0;
          for (int64_t row = p * kRowsPerPartial; row < std::min(rows, (p + 1) * kRowsPerPartial); ++row) {
            const int64_t b = row / H, y = row % H;
            samples.fill(fl, b, y, H, zeros, sv.sy, sv.sx);
            const auto rs = samples.view();
            acc_t row_sum = 0;
            for (int64_t c = 0; c < C; ++c) {
              const scalar_t* plane = sv.plane(b, c);
              const scalar_t* t_row = &tg(b, c, y, 0);
              const scalar_t* m_row = &mk(b, c, y, 0);
              for (int64_t x = 0; x < W; ++x) {
                const acc_t warped = rs.value(plane, x);
                const acc_t m = static_cast<acc_t>(m_row[x * mk.sx]);
                row_sum += std::abs(warped * m - static_cast<acc_t>(t_row[x * tg.sx]) * m);
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
      for_each_backward_row<acc_t, index_t, scalar_t>(
          flow, C, zeros, sv.sy, sv.sx, acc,
          [&](int64_t b, int64_t y, RowSamples<acc_t, index_t>& samples, acc_t* scatter) {
            const auto rs = samples.view();
            const auto [gx, gy, gm_sum] = samples.zeroed_sums();
            for (int64_t c = 0; c < C; ++c) {
              const scalar_t* plane = sv.plane(b, c);
              const scalar_t* t_row = &tg(b, c, y, 0);
              const scalar_t* m_row = &mk(b, c, y, 0);
              acc_t* to_src = need[0] ? scatter + b * gsn + c * gsc : nullptr;
              for (int64_t x = 0; x < W; ++x) {
                // Everything the pixel needs is loaded before the first store (see flow_warp_backward_cpu).
                const bool valid = rs.valid[x];
                const AxisSample<acc_t> ax = rs.x_axis(x), ay = rs.y_axis(x);
                const CornerOffsets<index_t> goff = rs.grad_offsets(x);
                const Corners<acc_t> k = read_corners<acc_t>(plane, rs.offsets(x));
                const acc_t warped = valid ? interpolate(k, ax, ay) : quiet_nan<acc_t>();
                const acc_t m = static_cast<acc_t>(m_row[x * mk.sx]);
                const acc_t t = static_cast<acc_t>(t_row[x * tg.sx]);
                // d loss / d warped, before the mask: sign(warped * m - t * m) / numel * grad_out.
                const acc_t sg = sign_of(warped * m - t * m) * scale;
                if (need[2]) gt(b, c, y, x) = static_cast<scalar_t>(-sg * m);
                if (need[3]) {
                  const acc_t v = sg * (warped - t);
                  if (mask_per_channel) {
                    gm(b, c, y, x) = static_cast<scalar_t>(v);
                  } else {
                    gm_sum[x] += v;
                  }
                }
                if (!valid) continue;
                if (need[0]) scatter_sample(to_src, goff, ax, ay, sg * m);
                gx[x] += sg * m * interpolate_dx(k, ax, ay);
                gy[x] += sg * m * interpolate_dy(k, ax, ay);
              }
            }
            for (int64_t x = 0; x < W; ++x) {
              if (need[1]) {
                gf(b, 0, y, x) = static_cast<scalar_t>(gx[x]);
                gf(b, 1, y, x) = static_cast<scalar_t>(gy[x]);
              }
              if (need[3] && !mask_per_channel) gm(b, 0, y, x) = static_cast<scalar_t>(gm_sum[x]);
            }
          });
    });
    if (need[0]) grad_src = finish_grad(acc, src);
  });
  return {grad_src, grad_flow, grad_target, grad_mask};
}

}  // namespace V2V_CPU_ISA
}  // namespace vid2vid_fast
