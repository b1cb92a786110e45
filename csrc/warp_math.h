// Per-pixel math of backward bilinear warping, shared by the CPU and the CUDA kernels so that the CPU
// tests exercise the arithmetic the GPU runs (the pattern of ATen's GridSampler.h). The CPU kernels sample
// in paired form (paired_sample_axis), which moves a weight from one corner to its neighbour only where
// sample_axis clamps both corners onto one pixel; interpolation and its adjoint are the same functions.
//
// Conventions (DESIGN.md §2): positions are in pixels, pixel centres at integer coordinates
// (align_corners=True). "border" clips the position into [0, size - 1] and its derivative is 0 where it
// was clipped, as grid_sample's border mode does; "zeros" lets corners outside the image contribute 0.
// Every corner index is clamped into the image before it is used, so no flow, however wrong, makes a
// kernel read or write out of bounds. A NaN position marks the pixel invalid: it reads nothing.
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

template <typename T>
V2V_HOST_DEVICE T clamp_value(T v, T lo, T hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

// floor() for a position already clamped into a small finite range. Truncation plus a correction: on
// baseline x86-64 (no SSE4.1) floorf is a library call, and this is the innermost loop.
// (Subtracting the comparison, not selecting on it: GCC vectorizes this form for AVX2 too.)
template <typename acc_t>
V2V_HOST_DEVICE int32_t floor_index(acc_t p) {
  const int32_t i = static_cast<int32_t>(p);
  return i - static_cast<int32_t>(static_cast<acc_t>(i) > p);
}

template <typename acc_t>
V2V_HOST_DEVICE bool is_nan(acc_t v) {
  return v != v;
}

// One axis of a bilinear sample: two corner indices (always inside [0, size - 1]), their weights
// (0 for a corner outside the image with zeros padding) and the derivative of each weight with
// respect to the sample position. Sizes are below 2^31 - 2 (checked on the host), so indices fit int32.
//
// Written without branches (selects only) so that the CPU compiler vectorizes it over a row.
template <typename acc_t>
struct AxisSample {
  int32_t i0, i1;
  acc_t w0, w1;
  acc_t d0, d1;
};

template <typename acc_t>
V2V_HOST_DEVICE AxisSample<acc_t> sample_axis(acc_t pos, int32_t size, bool zeros_padding) {
  AxisSample<acc_t> s;
  const acc_t last = static_cast<acc_t>(size - 1);
  if (!zeros_padding) {
    // Comparisons, not fmin/fmax, so that ±Inf clips like any other far position.
    const acc_t gate = ((pos > acc_t(0)) & (pos < last)) ? acc_t(1) : acc_t(0);
    const acc_t p = pos > last ? last : (pos < acc_t(0) ? acc_t(0) : pos);
    const int32_t i0 = floor_index(p);
    const acc_t t = p - static_cast<acc_t>(i0);
    s.i0 = i0;
    s.i1 = i0 + 1 < size ? i0 + 1 : size - 1;
    s.w0 = acc_t(1) - t;
    s.w1 = t;
    s.d0 = -gate;
    s.d1 = gate;
  } else {
    // A position more than one pixel outside touches no pixel, so clamping it to [-2, size + 1]
    // changes nothing but keeps the float-to-integer conversion defined for huge or infinite flows.
    const acc_t p = clamp_value(pos, acc_t(-2), last + acc_t(2));
    const int32_t i0 = floor_index(p);
    const acc_t f0 = static_cast<acc_t>(i0);
    const acc_t t = p - f0;
    // 1 for a corner inside the image, else 0; float factors rather than bools keep the code vectorizable.
    const acc_t in0 = (f0 >= acc_t(0) ? acc_t(1) : acc_t(0)) * (f0 <= last ? acc_t(1) : acc_t(0));
    const acc_t in1 = (f0 >= acc_t(-1) ? acc_t(1) : acc_t(0)) * (f0 <= last - acc_t(1) ? acc_t(1) : acc_t(0));
    s.i0 = clamp_value<int32_t>(i0, 0, size - 1);
    s.i1 = clamp_value<int32_t>(i0 + 1, 0, size - 1);
    s.w0 = in0 * (acc_t(1) - t);
    s.w1 = in1 * t;
    s.d0 = -in0;
    s.d1 = in1;
  }
  return s;
}

// The same sample as sample_axis, in paired form (the CPU kernels'): the corners are always neighbours,
// i1 = i0 + 1 (i1 = i0 for size 1), with i0 clamped into [0, size - 2], and each weight and derivative is
// that of the pixel the corner sits on. The value and its derivative equal sample_axis's; only where that
// clamps both corners onto one pixel (at the last pixel, or outside with zeros padding) does the weight
// move to the pair's other corner. So a kernel can read both corners of a row as one pair.
template <typename acc_t>
V2V_HOST_DEVICE AxisSample<acc_t> paired_sample_axis(acc_t pos, int32_t size, bool zeros_padding) {
  AxisSample<acc_t> s;
  const acc_t last = static_cast<acc_t>(size - 1);
  const int32_t last_pair = size > 1 ? size - 2 : 0;
  const acc_t has_pair = size > 1 ? acc_t(1) : acc_t(0);
  if (!zeros_padding) {
    const acc_t gate = ((pos > acc_t(0)) & (pos < last)) ? acc_t(1) : acc_t(0);
    const acc_t p = pos > last ? last : (pos < acc_t(0) ? acc_t(0) : pos);
    const acc_t left_max = static_cast<acc_t>(last_pair);
    const int32_t i0 = floor_index(p < left_max ? p : left_max);
    const acc_t t = p - static_cast<acc_t>(i0);  // in [0, 1]; 1 at the last pixel, 0 for size 1
    s.i0 = i0;
    s.w0 = acc_t(1) - t;
    s.w1 = t;
    s.d0 = -gate;
    s.d1 = gate;
  } else {
    const acc_t p = clamp_value(pos, acc_t(-2), last + acc_t(2));  // as in sample_axis
    const int32_t i = floor_index(p);
    const acc_t t = p - static_cast<acc_t>(i);
    s.i0 = clamp_value<int32_t>(i, 0, last_pair);
    // Where pixel i sits in the pair: 0 (left corner, both inside), -1 (the left corner is outside, the
    // right one is pixel 0) or 1 (the right corner is outside, the left one is the last pixel).
    const int32_t e = i - s.i0;
    const acc_t on = e == 0 ? acc_t(1) : acc_t(0), before = e == -1 ? acc_t(1) : acc_t(0);
    const acc_t after = e == 1 ? acc_t(1) : acc_t(0);
    s.w0 = on * (acc_t(1) - t) + before * t;
    s.w1 = has_pair * (on * t + after * (acc_t(1) - t));
    s.d0 = before - on;
    s.d1 = has_pair * (on - after);
  }
  s.i1 = size > 1 ? s.i0 + 1 : s.i0;
  return s;
}

template <typename acc_t>
struct Sample {
  AxisSample<acc_t> x, y;
  bool valid;  // false when either flow component is NaN
};

// The sample for output pixel (x, y) displaced by (dx, dy) pixels, in an H x W image (paired: the CPU form).
template <typename acc_t, bool kPaired = false>
V2V_HOST_DEVICE Sample<acc_t> sample_at(int32_t x, int32_t y, acc_t dx, acc_t dy, int32_t H, int32_t W,
                                        bool zeros_padding) {
  Sample<acc_t> s;
  s.valid = !(is_nan(dx) | is_nan(dy));
  const acc_t px = static_cast<acc_t>(x) + (s.valid ? dx : acc_t(0));
  const acc_t py = static_cast<acc_t>(y) + (s.valid ? dy : acc_t(0));
  if constexpr (kPaired) {
    s.x = paired_sample_axis<acc_t>(px, W, zeros_padding);
    s.y = paired_sample_axis<acc_t>(py, H, zeros_padding);
  } else {
    s.x = sample_axis<acc_t>(px, W, zeros_padding);
    s.y = sample_axis<acc_t>(py, H, zeros_padding);
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
