// Per-pixel math of backward warping, shared by the CPU and the CUDA kernels so that the CPU tests exercise
// the arithmetic the GPU runs (the pattern of ATen's GridSampler.h): the sampling coordinate of each axis
// (align_corners, padding), bilinear and nearest sampling, and their adjoints. The CPU kernels sample in paired
// form (paired_sample_axis), which moves a weight from one corner to its neighbour only where sample_axis
// clamps both corners onto one pixel; interpolation and its adjoint are the same functions.
//
// Conventions (DESIGN.md §2): positions are in pixels, pixel centres at integer coordinates. The result equals
// F.grid_sample(img, grid, mode, padding_mode, align_corners) with grid = 2 * pos / (size - 1) - 1 (the
// "(size - 1) normalisation" of BasicSR, mmagic, kornia and vid2vid), for every option; the flow gradient is
// 0 along an axis whose coordinate was clipped, as grid_sample's is. Every corner index is clamped into the
// image before it is used, so no flow, however wrong, makes a kernel read or write out of bounds. A NaN
// position (or, under reflection, an infinite one) marks the pixel invalid: it reads nothing.
#pragma once

#include <cmath>
#include <cstdint>

// Always inlined: the CPU kernels rely on these calls vanishing into loops that the compiler vectorizes.
#if defined(__CUDACC__)
#define V2V_HOST_DEVICE __host__ __device__ __forceinline__
#elif defined(__GNUC__)
#define V2V_HOST_DEVICE inline __attribute__((always_inline))
#else
#define V2V_HOST_DEVICE inline
#endif

namespace vid2vid_fast {

enum class Padding : uint8_t { kBorder, kZeros, kReflection };

// The sampling options of an op (its schema arguments padding_mode, mode and align_corners, parsed by
// parse_sampling in ops.h). A structural type: the CPU kernels take it as a template argument, so that the
// options are constants of their vectorized loops.
struct Sampling {
  Padding padding;
  bool nearest;  // mode "nearest", else "bilinear"
  bool align_corners;
};

// Two selects one after the other, not nested: GCC if-converts (and so vectorizes) this form inside larger loops.
template <typename T>
V2V_HOST_DEVICE T clamp_value(T v, T lo, T hi) {
  const T above_lo = v < lo ? lo : v;
  return above_lo > hi ? hi : above_lo;
}

// floor() for a position already clamped into a small finite range. Truncation plus a correction: on
// baseline x86-64 (no SSE4.1) floorf is a library call, and this is the innermost loop.
// (Subtracting the comparison, not selecting on it: GCC vectorizes this form for AVX2 too.)
template <typename acc_t>
V2V_HOST_DEVICE int32_t floor_index(acc_t p) {
  const int32_t i = static_cast<int32_t>(p);
  return i - static_cast<int32_t>(static_cast<acc_t>(i) > p);
}

// v rounded to an integer, halves to even (grid_sample's nearbyint), for |v| < 2^22. Adding 1.5 * 2^23 (2^52
// for double) leaves no fraction bits, so the addition itself rounds, in the default rounding mode (to
// nearest, ties to even); rintf would be a library call that stops the CPU loop from vectorizing without
// SSE4.1. (Compilers keep (v + k) - k as written unless told to reassociate, which no build here does.)
template <typename acc_t>
V2V_HOST_DEVICE acc_t round_half_to_even(acc_t v) {
  const acc_t k = sizeof(acc_t) == 8 ? acc_t(6755399441055744.0) : acc_t(12582912.0f);
  return (v + k) - k;
}

template <typename acc_t>
V2V_HOST_DEVICE bool is_nan(acc_t v) {
  return v != v;
}

// False for NaN and ±Inf (v - v is NaN for both), without a library call.
template <typename acc_t>
V2V_HOST_DEVICE bool is_finite(acc_t v) {
  return !is_nan(v - v);
}

// The sampling coordinate of one axis: u, the position in the input in pixels after align_corners and
// padding, and du = d u / d position, 0 where the coordinate was clipped. Written without branches on the
// data (selects only) so that the CPU compiler vectorizes it over a row.
template <typename acc_t>
struct AxisCoordinate {
  acc_t u, du;
};

// fmod(x, m) for m >= 1 and |x| < 2^22, computed as x - m * trunc(x / m), which vectorizes where a call to
// fmod would not. Bit for bit fmod's: the product and the difference are exact there, and where x / m was
// rounded up to the next integer the remainder's sign tells, and one m more gives fmod's exact result.
// Outside that range: x itself (the quotient taken as 0). In float arithmetic only (the truncation by
// round_half_to_even), and with factors rather than nested selects: GCC vectorizes this form; a float-to-int
// conversion here made it move the code into a branch that it then could not vectorize.
template <typename acc_t>
V2V_HOST_DEVICE acc_t fmod_by_division(acc_t x, acc_t m) {
  const acc_t q = x / m;
  const acc_t magnitude = q < acc_t(0) ? -q : q;
  const acc_t a = magnitude < acc_t(4194304) ? magnitude : acc_t(0);  // 2^22
  const acc_t nearest = round_half_to_even(a);
  const acc_t whole = nearest - static_cast<acc_t>(nearest > a);  // floor(a) = trunc(|q|)
  const acc_t r = x - m * (q < acc_t(0) ? -whole : whole);
  return r + m * (static_cast<acc_t>((r < acc_t(0)) & (x > acc_t(0))) - static_cast<acc_t>((r > acc_t(0)) & (x < acc_t(0))));
}

template <typename acc_t>
V2V_HOST_DEVICE acc_t fmod_of(acc_t x, acc_t m) {
  if constexpr (sizeof(acc_t) == 8) {
    return ::fmod(x, m);
  } else {
    return ::fmodf(x, m);
  }
}

// The flows fmod_by_division reduces exactly: |d| < 2^22 pixels.
constexpr float kDivisionReductionLimit = 4194304.0f;

template <typename acc_t>
V2V_HOST_DEVICE bool reduces_by_division(acc_t d) {
  return (d < acc_t(kDivisionReductionLimit)) & (d > -acc_t(kDivisionReductionLimit));
}

// Under reflection the sample repeats every 2 (size - 1) pixels of position, for both align_corners values: a
// flow component d is first reduced modulo that period (README; this changes no sample, and keeps huge flows
// exact). fmod's remainder, exact, and d itself for every flow shorter than the period, so ordinary flows lose
// nothing. kByDivision (the CPU's vectorized loop): fmod_by_division, the same number where
// reduces_by_division(d); elsewhere the caller must use fmod instead. Size 1: 0 (every position reflects to
// pixel 0).
template <typename acc_t, bool kByDivision>
V2V_HOST_DEVICE acc_t reduce_flow(acc_t d, int32_t size) {
  // Selects rather than an early return for size 1, so that the CPU loop has no control flow.
  const acc_t period = static_cast<acc_t>(size > 1 ? 2 * static_cast<int64_t>(size - 1) : 1);
  acc_t r;
  if constexpr (kByDivision) {
    r = fmod_by_division(d, period);
  } else {
    r = fmod_of(d, period);
  }
  return r * static_cast<acc_t>(size > 1);
}

template <typename acc_t>
V2V_HOST_DEVICE AxisCoordinate<acc_t> axis_coordinate(acc_t pos, int32_t size, Sampling opt) {
  const acc_t last = static_cast<acc_t>(size - 1);
  acc_t u = pos, du = acc_t(1);
  if (!opt.align_corners) {
    // grid_sample's unnormalisation with align_corners=False, applied to grid = 2 * pos / (size - 1) - 1:
    // u = pos * size / (size - 1) - 0.5, multiplied first so that a u on a half-integer (a tie of nearest) is
    // exact. Size 1 keeps the identity (our rule: that grid divides by zero). Selects, not a branch on the
    // size, so that the CPU loop has no control flow.
    const bool scaled = size > 1;
    const acc_t denominator = scaled ? last : acc_t(1);
    u = scaled ? pos * static_cast<acc_t>(size) / denominator - acc_t(0.5) : pos;
    du = scaled ? static_cast<acc_t>(size) / denominator : acc_t(1);
  }
  if (opt.padding == Padding::kZeros) {
    // A position more than one pixel outside touches no pixel, so clamping it to [-2, size + 1] changes
    // nothing but keeps the float-to-integer conversion defined for huge or infinite flows.
    return {clamp_value(u, acc_t(-2), last + acc_t(2)), du};
  }
  if (opt.padding == Padding::kReflection) {
    // Reflected about low and low + span (pixel centres 0 and size - 1 with align_corners, else the image's
    // edges -0.5 and size - 0.5) as grid_sample reflects: |u - low| (a reflection about low), modulo the
    // period 2 * span, folded back from the far half; each reflection flips the derivative's sign. For
    // size 1 with align_corners the period is 0: u is 0. sample_at reduces the flow first (reduce_flow), so
    // |u - low| is below 1.5 periods (x + dx lies in (-2 (size - 1), 3 (size - 1))): the modulo is at most
    // one subtraction of the period, exact (Sterbenz) and so fmod's result, without a division.
    const acc_t low = opt.align_corners ? acc_t(0) : acc_t(-0.5);
    const acc_t span = opt.align_corners ? last : static_cast<acc_t>(size);
    const acc_t period = acc_t(2) * span;
    // (Sign factors rather than selects where the result is exact either way: GCC vectorizes this form.)
    const acc_t v = u - low;
    const acc_t below = static_cast<acc_t>(v < acc_t(0));
    const acc_t has_period = static_cast<acc_t>(period > acc_t(0));
    const acc_t magnitude = v * (acc_t(1) - acc_t(2) * below);
    const acc_t r = has_period * (magnitude - period * static_cast<acc_t>(magnitude >= period));
    const acc_t back = static_cast<acc_t>(r > span);
    u = low + (back != acc_t(0) ? period - r : r);
    du = du * (acc_t(1) - acc_t(2) * below) * (acc_t(1) - acc_t(2) * back);
  }
  // Border (also of a reflected coordinate, which rounding can leave a hair outside): clipped into
  // [0, size - 1], derivative 0 unless strictly inside. Comparisons, not fmin/fmax, so that ±Inf clips like
  // any other far position.
  const acc_t gate = ((u > acc_t(0)) & (u < last)) ? acc_t(1) : acc_t(0);
  return {u > last ? last : (u < acc_t(0) ? acc_t(0) : u), du * gate};
}

// One axis of a sample: two corner indices (always inside [0, size - 1]), their weights (0 for a corner
// outside the image with zeros padding; 1 and 0 for nearest) and the derivative of each weight with respect
// to the sample position (0 for nearest). Sizes are below 2^31 - 2 (checked on the host), so indices fit int32.
template <typename acc_t>
struct AxisSample {
  int32_t i0, i1;
  acc_t w0, w1;
  acc_t d0, d1;
};

// The pixel nearest to coordinate c: in [0, size - 1], or in [-2, size + 1] under zeros padding.
template <typename acc_t>
V2V_HOST_DEVICE int32_t nearest_pixel(const AxisCoordinate<acc_t>& c) {
  return static_cast<int32_t>(round_half_to_even(c.u));
}

// 1 when pixel i lies inside an axis of `size` pixels, else 0 (a factor rather than a bool keeps the CPU
// loops vectorizable).
template <typename acc_t>
V2V_HOST_DEVICE acc_t inside(int32_t i, int32_t size) {
  return ((i >= 0) & (i <= size - 1)) ? acc_t(1) : acc_t(0);
}

template <typename acc_t>
V2V_HOST_DEVICE AxisSample<acc_t> sample_axis(acc_t pos, int32_t size, Sampling opt) {
  AxisSample<acc_t> s;
  const AxisCoordinate<acc_t> c = axis_coordinate(pos, size, opt);
  if (opt.nearest) {
    const int32_t i = nearest_pixel(c);
    s.i0 = s.i1 = clamp_value<int32_t>(i, 0, size - 1);
    s.w0 = opt.padding == Padding::kZeros ? inside<acc_t>(i, size) : acc_t(1);
    s.w1 = s.d0 = s.d1 = acc_t(0);
  } else if (opt.padding != Padding::kZeros) {
    const int32_t i0 = floor_index(c.u);
    const acc_t t = c.u - static_cast<acc_t>(i0);
    s.i0 = i0;
    s.i1 = i0 + 1 < size ? i0 + 1 : size - 1;
    s.w0 = acc_t(1) - t;
    s.w1 = t;
    s.d0 = -c.du;
    s.d1 = c.du;
  } else {
    const int32_t i0 = floor_index(c.u);
    const acc_t t = c.u - static_cast<acc_t>(i0);
    const acc_t in0 = inside<acc_t>(i0, size), in1 = inside<acc_t>(i0 + 1, size);
    s.i0 = clamp_value<int32_t>(i0, 0, size - 1);
    s.i1 = clamp_value<int32_t>(i0 + 1, 0, size - 1);
    s.w0 = in0 * (acc_t(1) - t);
    s.w1 = in1 * t;
    s.d0 = -in0 * c.du;
    s.d1 = in1 * c.du;
  }
  return s;
}

// The same sample as sample_axis, in paired form (the CPU kernels'): the corners are always neighbours,
// i1 = i0 + 1 (i1 = i0 for size 1), with i0 clamped into [0, size - 2], and each weight and derivative is
// that of the pixel the corner sits on. The value and its derivative equal sample_axis's; only where that
// clamps both corners onto one pixel (at the last pixel, or outside with zeros padding), or for nearest,
// does the weight move to the pair's other corner. So a kernel can read both corners of a row as one pair.
template <typename acc_t>
V2V_HOST_DEVICE AxisSample<acc_t> paired_sample_axis(acc_t pos, int32_t size, Sampling opt) {
  AxisSample<acc_t> s;
  const AxisCoordinate<acc_t> c = axis_coordinate(pos, size, opt);
  const int32_t last_pair = size > 1 ? size - 2 : 0;
  const acc_t has_pair = size > 1 ? acc_t(1) : acc_t(0);
  if (opt.nearest) {
    const int32_t i = nearest_pixel(c);
    s.i0 = clamp_value<int32_t>(i, 0, last_pair);
    const acc_t in = opt.padding == Padding::kZeros ? inside<acc_t>(i, size) : acc_t(1);
    s.w0 = i == s.i0 ? in : acc_t(0);
    s.w1 = i == s.i0 + 1 ? has_pair * in : acc_t(0);
    s.d0 = s.d1 = acc_t(0);
  } else if (opt.padding != Padding::kZeros) {
    const acc_t left_max = static_cast<acc_t>(last_pair);
    const int32_t i0 = floor_index(c.u < left_max ? c.u : left_max);
    const acc_t t = c.u - static_cast<acc_t>(i0);  // in [0, 1]; 1 at the last pixel, 0 for size 1
    s.i0 = i0;
    s.w0 = acc_t(1) - t;
    s.w1 = t;
    s.d0 = -c.du;
    s.d1 = c.du;
  } else {
    const int32_t i = floor_index(c.u);
    const acc_t t = c.u - static_cast<acc_t>(i);
    s.i0 = clamp_value<int32_t>(i, 0, last_pair);
    // Where pixel i sits in the pair: 0 (left corner, both inside), -1 (the left corner is outside, the
    // right one is pixel 0) or 1 (the right corner is outside, the left one is the last pixel).
    const int32_t e = i - s.i0;
    const acc_t on = e == 0 ? acc_t(1) : acc_t(0), before = e == -1 ? acc_t(1) : acc_t(0);
    const acc_t after = e == 1 ? acc_t(1) : acc_t(0);
    s.w0 = on * (acc_t(1) - t) + before * t;
    s.w1 = has_pair * (on * t + after * (acc_t(1) - t));
    s.d0 = (before - on) * c.du;
    s.d1 = has_pair * (on - after) * c.du;
  }
  s.i1 = size > 1 ? s.i0 + 1 : s.i0;
  return s;
}

template <typename acc_t>
struct Sample {
  AxisSample<acc_t> x, y;
  bool valid;  // false when either flow component is NaN (or, under reflection, infinite)
};

// The sample for output pixel (x, y) displaced by (dx, dy) pixels, in an H x W image (paired: the CPU form;
// kReduceByDivision: reduce_flow's division, for the CPU's vectorized loop).
template <typename acc_t, bool kPaired = false, bool kReduceByDivision = false>
V2V_HOST_DEVICE Sample<acc_t> sample_at(int32_t x, int32_t y, acc_t dx, acc_t dy, int32_t H, int32_t W,
                                        Sampling opt) {
  Sample<acc_t> s;
  // The reflection of an infinite position is undefined; under border and zeros it samples like a far one.
  const bool reflection = opt.padding == Padding::kReflection;
  s.valid = reflection ? (is_finite(dx) & is_finite(dy)) : !(is_nan(dx) | is_nan(dy));
  if (reflection) {  // NaN and ±Inf reduce to NaN, and are replaced below
    dx = reduce_flow<acc_t, kReduceByDivision>(dx, W);
    dy = reduce_flow<acc_t, kReduceByDivision>(dy, H);
  }
  dx = s.valid ? dx : acc_t(0);
  dy = s.valid ? dy : acc_t(0);
  const acc_t px = static_cast<acc_t>(x) + dx;
  const acc_t py = static_cast<acc_t>(y) + dy;
  if constexpr (kPaired) {
    s.x = paired_sample_axis<acc_t>(px, W, opt);
    s.y = paired_sample_axis<acc_t>(py, H, opt);
  } else {
    s.x = sample_axis<acc_t>(px, W, opt);
    s.y = sample_axis<acc_t>(py, H, opt);
  }
  return s;
}

// A strided 4-d tensor (N, C, H, W) of any layout; a broadcast dimension has stride 0.
template <typename scalar_t, typename index_t>
struct Strided4 {
  scalar_t* data;
  index_t sn, sc, sy, sx;
  V2V_HOST_DEVICE scalar_t& operator()(int64_t n, int64_t c, int64_t y, int64_t x) const {
    return data[static_cast<index_t>(n) * sn + static_cast<index_t>(c) * sc + static_cast<index_t>(y) * sy +
                static_cast<index_t>(x) * sx];
  }
  // The start of plane (n, c); step to the next channel with `+ sc`.
  V2V_HOST_DEVICE scalar_t* plane(int64_t n, int64_t c) const {
    return data + static_cast<index_t>(n) * sn + static_cast<index_t>(c) * sc;
  }
};

// Offsets of a sample's four corners within a plane of strides (sy, sx): computed once per pixel and
// reused for every channel.
template <typename index_t>
struct CornerOffsets {
  index_t o00, o01, o10, o11;  // o{row}{column}: (y0, x0), (y0, x1), (y1, x0), (y1, x1)
};

template <typename acc_t, typename index_t>
V2V_HOST_DEVICE CornerOffsets<index_t> corner_offsets(const Sample<acc_t>& s, index_t sy, index_t sx) {
  const index_t r0 = static_cast<index_t>(s.y.i0) * sy, r1 = static_cast<index_t>(s.y.i1) * sy;
  const index_t c0 = static_cast<index_t>(s.x.i0) * sx, c1 = static_cast<index_t>(s.x.i1) * sx;
  return CornerOffsets<index_t>{r0 + c0, r0 + c1, r1 + c0, r1 + c1};
}

template <typename acc_t>
struct Corners {
  acc_t v00, v01, v10, v11;
};

template <typename acc_t, typename scalar_t, typename index_t>
V2V_HOST_DEVICE Corners<acc_t> read_corners(const scalar_t* plane, const CornerOffsets<index_t>& o) {
  return Corners<acc_t>{static_cast<acc_t>(plane[o.o00]), static_cast<acc_t>(plane[o.o01]),
                        static_cast<acc_t>(plane[o.o10]), static_cast<acc_t>(plane[o.o11])};
}

template <typename acc_t>
V2V_HOST_DEVICE acc_t interpolate(const Corners<acc_t>& c, const AxisSample<acc_t>& sx, const AxisSample<acc_t>& sy) {
  return sy.w0 * (sx.w0 * c.v00 + sx.w1 * c.v01) + sy.w1 * (sx.w0 * c.v10 + sx.w1 * c.v11);
}

// d(sampled value) / d(x position); times the upstream gradient this is the flow gradient along x.
template <typename acc_t>
V2V_HOST_DEVICE acc_t interpolate_dx(const Corners<acc_t>& c, const AxisSample<acc_t>& sx, const AxisSample<acc_t>& sy) {
  return sy.w0 * (sx.d0 * c.v00 + sx.d1 * c.v01) + sy.w1 * (sx.d0 * c.v10 + sx.d1 * c.v11);
}

// d(sampled value) / d(y position).
template <typename acc_t>
V2V_HOST_DEVICE acc_t interpolate_dy(const Corners<acc_t>& c, const AxisSample<acc_t>& sx, const AxisSample<acc_t>& sy) {
  return sy.d0 * (sx.w0 * c.v00 + sx.w1 * c.v01) + sy.d1 * (sx.w0 * c.v10 + sx.w1 * c.v11);
}

// The adjoint of interpolate: sends gradient g to the four corners. add(offset, value) is a plain += on
// the CPU and an atomic add on the GPU.
template <typename acc_t, typename index_t, typename Add>
V2V_HOST_DEVICE void scatter_corners(const AxisSample<acc_t>& sx, const AxisSample<acc_t>& sy,
                                     const CornerOffsets<index_t>& o, acc_t g, const Add& add) {
  const acc_t g0 = g * sy.w0, g1 = g * sy.w1;
  add(o.o00, g0 * sx.w0);
  add(o.o01, g0 * sx.w1);
  add(o.o10, g1 * sx.w0);
  add(o.o11, g1 * sx.w1);
}

template <typename acc_t>
V2V_HOST_DEVICE acc_t sign_of(acc_t v) {
  // torch.sign semantics, NaN -> 0, so the loss gradient matches autograd through abs().
  return static_cast<acc_t>((v > acc_t(0)) - (v < acc_t(0)));
}

}  // namespace vid2vid_fast
