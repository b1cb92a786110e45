// Per-pixel math of backward bilinear warping, shared by the CPU and the CUDA kernels so that the CPU
// tests exercise the exact arithmetic the GPU runs (the pattern of ATen's GridSampler.h).
//
// Conventions (DESIGN.md §2): positions are in pixels, pixel centres at integer coordinates
// (align_corners=True). "border" clips the position into [0, size - 1] and its derivative is 0 where it
// was clipped, as grid_sample's border mode does; "zeros" lets corners outside the image contribute 0.
// Every corner index is clamped into the image before it is used, so no flow, however wrong, makes a
// kernel read or write out of bounds. A NaN position marks the pixel invalid: it reads nothing.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define V2V_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define V2V_HOST_DEVICE inline
#endif

namespace vid2vid_fast {

template <typename T>
V2V_HOST_DEVICE T clamp_value(T v, T lo, T hi) {
  return v < lo ? lo : (v > hi ? hi : v);
}

V2V_HOST_DEVICE float floor_of(float v) { return floorf(v); }
V2V_HOST_DEVICE double floor_of(double v) { return ::floor(v); }

template <typename acc_t>
V2V_HOST_DEVICE bool is_nan(acc_t v) {
  return v != v;
}

// One axis of a bilinear sample: two corner indices (always inside [0, size - 1]), their weights
// (0 for a corner outside the image with zeros padding) and the derivative of each weight with
// respect to the sample position.
template <typename acc_t>
struct AxisSample {
  int64_t i0, i1;
  acc_t w0, w1;
  acc_t d0, d1;
};

template <typename acc_t>
V2V_HOST_DEVICE AxisSample<acc_t> sample_axis(acc_t pos, int64_t size, bool zeros_padding) {
  AxisSample<acc_t> s;
  const acc_t last = static_cast<acc_t>(size - 1);
  if (!zeros_padding) {
    // Comparisons, not fmin/fmax, so that ±Inf clips like any other far position.
    const acc_t gate = (pos > acc_t(0) && pos < last) ? acc_t(1) : acc_t(0);
    const acc_t p = pos > last ? last : (pos < acc_t(0) ? acc_t(0) : pos);
    const acc_t f = floor_of(p);
    const int64_t i0 = static_cast<int64_t>(f);
    const acc_t t = p - f;
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
    const acc_t f = floor_of(p);
    const int64_t i0 = static_cast<int64_t>(f);
    const int64_t i1 = i0 + 1;
    const acc_t t = p - f;
    const bool in0 = i0 >= 0 && i0 < size;
    const bool in1 = i1 >= 0 && i1 < size;
    s.i0 = clamp_value<int64_t>(i0, 0, size - 1);
    s.i1 = clamp_value<int64_t>(i1, 0, size - 1);
    s.w0 = in0 ? acc_t(1) - t : acc_t(0);
    s.w1 = in1 ? t : acc_t(0);
    s.d0 = in0 ? acc_t(-1) : acc_t(0);
    s.d1 = in1 ? acc_t(1) : acc_t(0);
  }
  return s;
}

template <typename acc_t>
struct Sample {
  AxisSample<acc_t> x, y;
  bool valid;  // false when either flow component is NaN
};

// The sample for output pixel (x, y) displaced by (dx, dy) pixels, in an H x W image.
template <typename acc_t>
V2V_HOST_DEVICE Sample<acc_t> sample_at(int64_t x, int64_t y, acc_t dx, acc_t dy, int64_t H, int64_t W,
                                        bool zeros_padding) {
  Sample<acc_t> s;
  s.valid = !(is_nan(dx) || is_nan(dy));
  const acc_t px = static_cast<acc_t>(x) + (s.valid ? dx : acc_t(0));
  const acc_t py = static_cast<acc_t>(y) + (s.valid ? dy : acc_t(0));
  s.x = sample_axis<acc_t>(px, W, zeros_padding);
  s.y = sample_axis<acc_t>(py, H, zeros_padding);
  return s;
}

// A strided view of one image plane: element (y, x) is at data[y * sy + x * sx].
template <typename scalar_t, typename index_t>
struct Plane {
  scalar_t* data;
  index_t sy, sx;
  V2V_HOST_DEVICE scalar_t& at(int64_t y, int64_t x) const {
    return data[static_cast<index_t>(y) * sy + static_cast<index_t>(x) * sx];
  }
};

// A strided 4-d tensor (N, C, H, W) of any layout; a broadcast dimension has stride 0.
template <typename scalar_t, typename index_t>
struct Strided4 {
  scalar_t* data;
  index_t sn, sc, sy, sx;
  V2V_HOST_DEVICE scalar_t& operator()(int64_t n, int64_t c, int64_t y, int64_t x) const {
    return data[static_cast<index_t>(n) * sn + static_cast<index_t>(c) * sc + static_cast<index_t>(y) * sy +
                static_cast<index_t>(x) * sx];
  }
  V2V_HOST_DEVICE Plane<scalar_t, index_t> plane(int64_t n, int64_t c) const {
    return Plane<scalar_t, index_t>{data + static_cast<index_t>(n) * sn + static_cast<index_t>(c) * sc, sy, sx};
  }
};

template <typename acc_t>
struct Corners {
  acc_t v00, v01, v10, v11;  // v{row}{column}: (y0, x0), (y0, x1), (y1, x0), (y1, x1)
};

template <typename acc_t, typename scalar_t, typename index_t>
V2V_HOST_DEVICE Corners<acc_t> read_corners(const Plane<const scalar_t, index_t>& p, const Sample<acc_t>& s) {
  Corners<acc_t> c;
  c.v00 = static_cast<acc_t>(p.at(s.y.i0, s.x.i0));
  c.v01 = static_cast<acc_t>(p.at(s.y.i0, s.x.i1));
  c.v10 = static_cast<acc_t>(p.at(s.y.i1, s.x.i0));
  c.v11 = static_cast<acc_t>(p.at(s.y.i1, s.x.i1));
  return c;
}

template <typename acc_t>
V2V_HOST_DEVICE acc_t interpolate(const Corners<acc_t>& c, const Sample<acc_t>& s) {
  return s.y.w0 * (s.x.w0 * c.v00 + s.x.w1 * c.v01) + s.y.w1 * (s.x.w0 * c.v10 + s.x.w1 * c.v11);
}

// d(sampled value) / d(position), per axis; multiplied by the upstream gradient this is the flow gradient.
template <typename acc_t>
V2V_HOST_DEVICE acc_t interpolate_dx(const Corners<acc_t>& c, const Sample<acc_t>& s) {
  return s.y.w0 * (s.x.d0 * c.v00 + s.x.d1 * c.v01) + s.y.w1 * (s.x.d0 * c.v10 + s.x.d1 * c.v11);
}

template <typename acc_t>
V2V_HOST_DEVICE acc_t interpolate_dy(const Corners<acc_t>& c, const Sample<acc_t>& s) {
  return s.y.d0 * (s.x.w0 * c.v00 + s.x.w1 * c.v01) + s.y.d1 * (s.x.w0 * c.v10 + s.x.w1 * c.v11);
}

// The four (weight, y, x) terms through which gradient g reaches the image: the adjoint of interpolate.
// `add` is called once per corner; the CPU passes a plain +=, the CUDA kernels an atomic add.
template <typename acc_t, typename Add>
V2V_HOST_DEVICE void scatter_corners(const Sample<acc_t>& s, acc_t g, Add add) {
  add(s.y.i0, s.x.i0, g * s.y.w0 * s.x.w0);
  add(s.y.i0, s.x.i1, g * s.y.w0 * s.x.w1);
  add(s.y.i1, s.x.i0, g * s.y.w1 * s.x.w0);
  add(s.y.i1, s.x.i1, g * s.y.w1 * s.x.w1);
}

template <typename acc_t>
V2V_HOST_DEVICE acc_t sign_of(acc_t v) {
  // torch.sign semantics, NaN -> 0, so the loss gradient matches autograd through abs().
  return static_cast<acc_t>((v > acc_t(0)) - (v < acc_t(0)));
}

}  // namespace vid2vid_fast
