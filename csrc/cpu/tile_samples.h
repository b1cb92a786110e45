// The tile arrays: the samples of a tile of output pixels (corner offsets, weights, derivatives, validity),
// computed once per tile in a vectorized loop and reused by every channel, with the per-channel value and
// gradient arrays the ops read and write, and the planar sampling and scatter over them.
#pragma once
#ifndef V2V_CPU_PRELUDE_INCLUDED
#error "include prelude.h first (before the target pragma)"
#endif

V2V_CPU_NAMESPACE_BEGIN

using at::Tensor;

// Elements a thread should get at least, so small images do not pay for thread wake-ups.
constexpr int64_t kGrainElements = 16384;

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

// A Sampling as a type (value: a constant expression). Its fields are separate parameters: a class-type
// template parameter needs C++20, and the extension also builds as C++17 (torch 2.11).
template <Padding kPadding, bool kNearest, bool kAlignCorners>
struct SamplingConstant {
  static constexpr Sampling value = {kPadding, kNearest, kAlignCorners};
};

// Calls f(SamplingConstant<s>{}): one instance of f per combination of the options, each with the options
// constant inside its loops.
template <typename F>
void with_constant_sampling(Sampling s, const F& f) {
  const auto with_align_corners = [&](auto padding, auto nearest) {
    constexpr Padding p = decltype(padding)::value;
    constexpr bool n = decltype(nearest)::value;
    if (s.align_corners) return f(SamplingConstant<p, n, true>{});
    f(SamplingConstant<p, n, false>{});
  };
  const auto with_mode = [&](auto padding) {
    if (s.nearest) return with_align_corners(padding, std::true_type{});
    with_align_corners(padding, std::false_type{});
  };
  switch (s.padding) {
    case Padding::kBorder:
      return with_mode(std::integral_constant<Padding, Padding::kBorder>{});
    case Padding::kZeros:
      return with_mode(std::integral_constant<Padding, Padding::kZeros>{});
    case Padding::kReflection:
      return with_mode(std::integral_constant<Padding, Padding::kReflection>{});
  }
}

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
// AVX2 and AVX-512 builds fill the same arrays from channel blocks (BlockKernels::sample, blocks_*.h).
template <typename acc_t, typename index_t>
struct alignas(64) TileSamples {
  // Every array starts on a 64-byte boundary: the block sampling reads them with aligned vector loads.
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
  bool nearest = false;  // mode "nearest": each pixel's weight sits on one corner of its pair

  // Samples pixels x0 .. x0 + count - 1 of row y of batch element b: offsets for planes of strides (sy, sx)
  // to read and, with derivatives, for the gradient buffer (strides gsy, gsx) to scatter into.
  template <typename scalar_t>
  void fill(const Strided4<const scalar_t, index_t>& flow, int64_t b, int64_t y, int64_t x0, int64_t count,
            int64_t H, int64_t W, Sampling sampling, bool with_grads, index_t sy, index_t sx, index_t gsy,
            index_t gsx) {
    n = count;
    step_x = W > 1 ? sx : 0, step_y = H > 1 ? sy : 0;
    grad_step_x = W > 1 ? gsx : 0, grad_step_y = H > 1 ? gsy : 0;
    grad_offsets_differ = with_grads && (gsy != sy || gsx != sx);
    nearest = sampling.nearest;
    // The tile's flow in acc_t: fill_tile has one instance per acc_t, not per storage dtype (its instances
    // are most of the kernels' code and compile time); a float16 or bfloat16 flow is converted here first.
    const scalar_t* dx = &flow(b, 0, y, x0);
    const scalar_t* dy = &flow(b, 1, y, x0);
    FlowRow row{nullptr, nullptr, flow.sx};
    alignas(64) acc_t converted[2][kTile];
    if constexpr (std::is_same_v<scalar_t, acc_t>) {
      row.dx = dx, row.dy = dy;
    } else {
      for (int64_t x = 0; x < n; ++x) {
        converted[0][x] = static_cast<acc_t>(dx[x * flow.sx]), converted[1][x] = static_cast<acc_t>(dy[x * flow.sx]);
      }
      row = {converted[0], converted[1], 1};
    }
    // Constant options and flags inside the loop, so that no control flow is left to stop vectorization.
    // Nearest's derivatives are 0 and never read (backward_by_groups skips its flow gradient): not stored.
    with_constant_sampling(sampling, [&](auto kSampling) {
      using K = decltype(kSampling);
      constexpr bool kDerivs = !K::value.nearest;
      if (!with_grads) return fill_tile<K, false, false>(row, x0, y, H, W, sy, sx, gsy, gsx);
      if (!grad_offsets_differ) return fill_tile<K, kDerivs, false>(row, x0, y, H, W, sy, sx, gsy, gsx);
      fill_tile<K, kDerivs, true>(row, x0, y, H, W, sy, sx, gsy, gsx);
    });
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
  // A tile's flow: its x and y components, pixel x at dx[x * stride] and dy[x * stride].
  struct FlowRow {
    const acc_t *dx, *dy;
    index_t stride;
  };

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
  template <typename SamplingK, bool kGrads, bool kGradOffsets>
  V2V_NOINLINE void fill_tile(const FlowRow& flow, int64_t x0, int64_t y, int64_t H, int64_t W, index_t sy,
                              index_t sx, index_t gsy, index_t gsx) {
    constexpr Sampling kSampling = SamplingK::value;
    const acc_t* dx = flow.dx;
    const acc_t* dy = flow.dy;
    const index_t fsx = flow.stride;
    const int32_t width = static_cast<int32_t>(W), height = static_cast<int32_t>(H), row = static_cast<int32_t>(y);
    const int32_t first = static_cast<int32_t>(x0), count = static_cast<int32_t>(n);
    const auto store = [&](int32_t x, const Sample<acc_t>& s) {
      const AxisSample<acc_t>& ax = s.x;
      const AxisSample<acc_t>& ay = s.y;
      off[x] = static_cast<index_t>(ay.i0) * sy + static_cast<index_t>(ax.i0) * sx;
      if (kGradOffsets) grad_off[x] = static_cast<index_t>(ay.i0) * gsy + static_cast<index_t>(ax.i0) * gsx;
      weight[0][x] = ax.w0, weight[1][x] = ax.w1, weight[2][x] = ay.w0, weight[3][x] = ay.w1;
      valid[x] = s.valid;
      if (kGrads) deriv[0][x] = ax.d0, deriv[1][x] = ax.d1, deriv[2][x] = ay.d0, deriv[3][x] = ay.d1;
    };
    // The flow never overlaps the tile; without this GCC needs more run-time alias checks than it will emit.
    V2V_IVDEP
    for (int32_t x = 0; x < count; ++x) {
      const acc_t fx = dx[x * fsx], fy = dy[x * fsx];
      store(x, sample_at<acc_t, /*kPaired=*/true, /*kReduceByDivision=*/true>(first + x, row, fx, fy, height,
                                                                             width, kSampling));
    }
    if constexpr (kSampling.padding == Padding::kReflection) {
      // Flows of 2^22 pixels and more (and ±Inf, NaN), again with the reduction by fmod. (Loops of their own:
      // a flag set in the loop above stopped GCC from vectorizing it. The search is a vectorized OR, and
      // the scalar loop runs only for a tile that has such a flow: as a scalar test of every pixel, it took
      // a third of the fill's time.)
      int32_t far = 0;
      for (int32_t x = 0; x < count; ++x) {
        const acc_t fx = dx[x * fsx], fy = dy[x * fsx];
        far |= static_cast<int32_t>(!(reduces_by_division(fx) & reduces_by_division(fy)));
      }
      if (!far) return;
      for (int32_t x = 0; x < count; ++x) {
        const acc_t fx = dx[x * fsx], fy = dy[x * fsx];
        if (reduces_by_division(fx) & reduces_by_division(fy)) continue;
        store(x, sample_at<acc_t, /*kPaired=*/true>(first + x, row, fx, fy, height, width, kSampling));
      }
    }
  }
};

V2V_CPU_NAMESPACE_END
