// Sampling by channel blocks (block_layout.h) with AVX2 + FMA: 8 pixels per step, one 32-byte vector per
// pixel and row holding its two corners' four channels. The layout and the order of the work are those of
// blocks_avx512.h, in 256-bit vectors: without mask registers, invalid pixels are masked by AND with an
// all-ones or zero lane, and the pixel-to-channel transposes go through 128-bit lanes.
#pragma once
#ifndef V2V_CPU_PRELUDE_INCLUDED
#error "include prelude.h first (before the target pragma)"
#endif

#include "block_layout.h"

V2V_CPU_NAMESPACE_BEGIN

// Transposes, inside each 128-bit lane, the 4 x 4 matrix whose rows are that lane of v[0..3]: four
// channels of 8 pixels (v[k]: channel k) become pixels (v[j]: pixel j in the low lane, j + 4 in the high
// one), and back.
V2V_ALWAYS_INLINE void transpose_in_lanes(__m256 v[4]) {
  const __m256 t0 = _mm256_unpacklo_ps(v[0], v[1]), t1 = _mm256_unpackhi_ps(v[0], v[1]);
  const __m256 t2 = _mm256_unpacklo_ps(v[2], v[3]), t3 = _mm256_unpackhi_ps(v[2], v[3]);
  v[0] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(1, 0, 1, 0));
  v[1] = _mm256_shuffle_ps(t0, t2, _MM_SHUFFLE(3, 2, 3, 2));
  v[2] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(1, 0, 1, 0));
  v[3] = _mm256_shuffle_ps(t1, t3, _MM_SHUFFLE(3, 2, 3, 2));
}

// All ones in the lanes of the 8 pixels from p whose flag is set, zeros elsewhere.
V2V_ALWAYS_INLINE __m256 valid_lanes(const uint8_t* p) {
  const __m256i flags = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(p)));
  return _mm256_castsi256_ps(_mm256_cmpgt_epi32(flags, _mm256_setzero_si256()));
}

// The sum of the four channels in each half of a[0..3], pixel by pixel: lane i of the result's low half
// sums the low half of a[i], lane i of its high half the high half of a[i].
V2V_ALWAYS_INLINE __m256 sum_channels(__m256 a[4]) {
  transpose_in_lanes(a);
  return _mm256_add_ps(_mm256_add_ps(a[0], a[1]), _mm256_add_ps(a[2], a[3]));
}

struct BlockKernels {
  // dst (a row of 4 * W floats) = the pixels of the `channels` rows (unit stride), zeros for the others.
  static void pack_row(float* dst, const float* const rows[4], int64_t channels, int64_t W) {
    int64_t x = 0;
    for (; x + 8 <= W; x += 8) {
      __m256 v[4];
      for (int64_t k = 0; k < 4; ++k) v[k] = k < channels ? _mm256_loadu_ps(rows[k] + x) : _mm256_setzero_ps();
      transpose_in_lanes(v);  // v[j]: pixels j and j + 4
      float* d = dst + 4 * x;
      _mm256_storeu_ps(d, _mm256_permute2f128_ps(v[0], v[1], 0x20));
      _mm256_storeu_ps(d + 8, _mm256_permute2f128_ps(v[2], v[3], 0x20));
      _mm256_storeu_ps(d + 16, _mm256_permute2f128_ps(v[0], v[1], 0x31));
      _mm256_storeu_ps(d + 24, _mm256_permute2f128_ps(v[2], v[3], 0x31));
    }
    for (; x < W; ++x) {
      for (int64_t k = 0; k < 4; ++k) dst[4 * x + k] = k < channels ? rows[k][x] : 0.0f;
    }
  }

  // The `channels` rows (unit stride) = the pixels of src (a row of 4 * W floats).
  static void unpack_row(const float* src, float* const rows[4], int64_t channels, int64_t W) {
    int64_t x = 0;
    for (; x + 8 <= W; x += 8) {
      const float* s = src + 4 * x;
      const __m256 q0 = _mm256_loadu_ps(s), q1 = _mm256_loadu_ps(s + 8);
      const __m256 q2 = _mm256_loadu_ps(s + 16), q3 = _mm256_loadu_ps(s + 24);
      __m256 v[4] = {_mm256_permute2f128_ps(q0, q2, 0x20), _mm256_permute2f128_ps(q0, q2, 0x31),
                     _mm256_permute2f128_ps(q1, q3, 0x20), _mm256_permute2f128_ps(q1, q3, 0x31)};
      transpose_in_lanes(v);  // v[k]: channel k
      for (int64_t k = 0; k < channels; ++k) _mm256_storeu_ps(rows[k] + x, v[k]);
    }
    for (; x < W; ++x) {
      for (int64_t k = 0; k < channels; ++k) rows[k][x] = src[4 * x + k];
    }
  }

  // BlockWork (block_layout.h), 8 pixels at a time: a pixel's top and bottom row's corner pairs are one
  // load each. The image gradient is added 16 pixels at a time, in the order of blocks_avx512.h.
  static V2V_NOINLINE void sample(TileSamples<float, int32_t>& t, const float* block, int64_t channels,
                                  const BlockWork& work) {
    if (t.nearest) return sample_nearest(t, block, channels, work);
    const int64_t row = 4 * static_cast<int64_t>(t.step_y);
    const __m256 nan = _mm256_set1_ps(std::numeric_limits<float>::quiet_NaN());
    const bool grads = work.flow_grad || work.scatter != nullptr;
    for (int64_t x = 0; x < t.n; x += 16) {
      alignas(32) float top_add[16][8], bottom_add[16][8];
      for (int64_t h = 0; h < 16; h += 8) {
        const int64_t x8 = x + h;
        const __m256 valid = valid_lanes(t.valid + x8);
        const __m256 xw0 = _mm256_load_ps(t.weight[0] + x8), xw1 = _mm256_load_ps(t.weight[1] + x8);
        const __m256 yw0 = _mm256_load_ps(t.weight[2] + x8), yw1 = _mm256_load_ps(t.weight[3] + x8);
        // Corner weights, 0 for invalid pixels: (y0, x0), (y0, x1), (y1, x0), (y1, x1).
        const __m256 w00 = _mm256_and_ps(valid, _mm256_mul_ps(yw0, xw0));
        const __m256 w01 = _mm256_and_ps(valid, _mm256_mul_ps(yw0, xw1));
        const __m256 w10 = _mm256_and_ps(valid, _mm256_mul_ps(yw1, xw0));
        const __m256 w11 = _mm256_and_ps(valid, _mm256_mul_ps(yw1, xw1));
        // A row's weight pairs: lanes 2i and 2i + 1 are pixel i's left and right weight, for pixels 0, 1, 4, 5
        // (`low`, in that order) and 2, 3, 6, 7 (`high`).
        const __m256 top_low = _mm256_unpacklo_ps(w00, w01), top_high = _mm256_unpackhi_ps(w00, w01);
        const __m256 bottom_low = _mm256_unpacklo_ps(w10, w11), bottom_high = _mm256_unpackhi_ps(w10, w11);
        // Per pixel, the gradients of its four channels (0 where invalid, so nothing reaches the buffers):
        // g[j] holds pixel j in its low lane, j + 4 in its high one.
        __m256 g[4];
        if (grads) {
          for (int64_t k = 0; k < 4; ++k) {
            g[k] = k < channels ? _mm256_and_ps(valid, _mm256_load_ps(t.grad[k] + x8)) : _mm256_setzero_ps();
          }
          transpose_in_lanes(g);
        }
        __m256 products_top[8], products_bottom[8], values[8];
        for (int64_t p = 0; p < 8; ++p) {
          const float* a = block + 4 * static_cast<int64_t>(t.off[x8 + p]);
          // Weights per lane: [pixel p's left corner x 4, its right corner x 4].
          const int32_t e = 2 * static_cast<int32_t>((p & 1) + 2 * (p >> 2));
          const __m256i pick = _mm256_setr_epi32(e, e, e, e, e + 1, e + 1, e + 1, e + 1);
          const __m256 w_top = _mm256_permutevar8x32_ps((p & 2) ? top_high : top_low, pick);
          const __m256 w_bottom = _mm256_permutevar8x32_ps((p & 2) ? bottom_high : bottom_low, pick);
          __m256 top = _mm256_setzero_ps(), bottom = _mm256_setzero_ps();
          if (work.values || work.flow_grad) top = _mm256_loadu_ps(a), bottom = _mm256_loadu_ps(a + row);
          if (work.values) values[p] = _mm256_fmadd_ps(bottom, w_bottom, _mm256_mul_ps(top, w_top));
          if (!grads) continue;
          // [pixel p's gradients twice]
          const __m256 gp = p < 4 ? _mm256_permute2f128_ps(g[p], g[p], 0x00) : _mm256_permute2f128_ps(g[p - 4], g[p - 4], 0x11);
          if (work.flow_grad) products_top[p] = _mm256_mul_ps(top, gp), products_bottom[p] = _mm256_mul_ps(bottom, gp);
          if (work.scatter) {
            _mm256_store_ps(top_add[h + p], _mm256_mul_ps(gp, w_top));
            _mm256_store_ps(bottom_add[h + p], _mm256_mul_ps(gp, w_bottom));
          }
        }
        if (work.values) {
          // Each pixel's two corners' partial sums -> its four channels: v[j] holds pixels j and j + 4.
          __m256 v[4];
          for (int64_t j = 0; j < 4; ++j) {
            v[j] = _mm256_add_ps(_mm256_permute2f128_ps(values[j], values[j + 4], 0x20),
                                 _mm256_permute2f128_ps(values[j], values[j + 4], 0x31));
          }
          transpose_in_lanes(v);
          for (int64_t k = 0; k < 4; ++k) _mm256_store_ps(t.values[k] + x8, _mm256_blendv_ps(nan, v[k], valid));
        }
        if (work.flow_grad) {
          // Each corner's products summed over the channels: [left corners of pixels 0-3, right corners of
          // pixels 0-3], and the same for pixels 4-7, per row.
          const __m256 top_first = sum_channels(products_top), top_last = sum_channels(products_top + 4);
          const __m256 bottom_first = sum_channels(products_bottom), bottom_last = sum_channels(products_bottom + 4);
          const __m256 c00 = _mm256_permute2f128_ps(top_first, top_last, 0x20);
          const __m256 c01 = _mm256_permute2f128_ps(top_first, top_last, 0x31);
          const __m256 c10 = _mm256_permute2f128_ps(bottom_first, bottom_last, 0x20);
          const __m256 c11 = _mm256_permute2f128_ps(bottom_first, bottom_last, 0x31);
          const __m256 xd0 = _mm256_load_ps(t.deriv[0] + x8), xd1 = _mm256_load_ps(t.deriv[1] + x8);
          const __m256 yd0 = _mm256_load_ps(t.deriv[2] + x8), yd1 = _mm256_load_ps(t.deriv[3] + x8);
          const __m256 top = _mm256_fmadd_ps(xw1, c01, _mm256_mul_ps(xw0, c00));
          const __m256 bottom = _mm256_fmadd_ps(xw1, c11, _mm256_mul_ps(xw0, c10));
          const __m256 top_dx = _mm256_fmadd_ps(xd1, c01, _mm256_mul_ps(xd0, c00));
          const __m256 bottom_dx = _mm256_fmadd_ps(xd1, c11, _mm256_mul_ps(xd0, c10));
          const __m256 dx = _mm256_fmadd_ps(yw1, bottom_dx, _mm256_mul_ps(yw0, top_dx));
          const __m256 dy = _mm256_fmadd_ps(yd1, bottom, _mm256_mul_ps(yd0, top));
          _mm256_store_ps(t.sums[0] + x8, _mm256_add_ps(_mm256_load_ps(t.sums[0] + x8), _mm256_and_ps(valid, dx)));
          _mm256_store_ps(t.sums[1] + x8, _mm256_add_ps(_mm256_load_ps(t.sums[1] + x8), _mm256_and_ps(valid, dy)));
        }
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

  // BlockWork for nearest sampling, 8 pixels at a time: a pixel's weight sits on one corner of its pairs, so
  // its four channels are one 16-byte load and its image gradient one 16-byte add. (Its flow gradient is 0:
  // backward_by_groups never asks for it, and the sums are left as they are.)
  static V2V_NOINLINE void sample_nearest(TileSamples<float, int32_t>& t, const float* block, int64_t channels,
                                          const BlockWork& work) {
    const __m256 nan = _mm256_set1_ps(std::numeric_limits<float>::quiet_NaN()), zero = _mm256_setzero_ps();
    const __m256i step_x = _mm256_set1_epi32(t.step_x), step_y = _mm256_set1_epi32(t.step_y);
    for (int64_t x = 0; x < t.n; x += 8) {
      const __m256 valid = valid_lanes(t.valid + x);
      const __m256 xw1 = _mm256_load_ps(t.weight[1] + x), yw1 = _mm256_load_ps(t.weight[3] + x);
      // The pixel's weight (0 where invalid, or outside with zeros padding) and its corner of the pairs.
      const __m256 w = _mm256_and_ps(valid, _mm256_mul_ps(_mm256_add_ps(_mm256_load_ps(t.weight[0] + x), xw1),
                                                          _mm256_add_ps(_mm256_load_ps(t.weight[2] + x), yw1)));
      const __m256i right = _mm256_castps_si256(_mm256_cmp_ps(xw1, zero, _CMP_NEQ_UQ));
      const __m256i below = _mm256_castps_si256(_mm256_cmp_ps(yw1, zero, _CMP_NEQ_UQ));
      const __m256i pixel = _mm256_add_epi32(_mm256_load_si256(reinterpret_cast<const __m256i*>(t.off + x)),
                                             _mm256_add_epi32(_mm256_and_si256(right, step_x), _mm256_and_si256(below, step_y)));
      alignas(32) int32_t at[8];
      _mm256_store_si256(reinterpret_cast<__m256i*>(at), pixel);
      if (work.values) {
        __m256 v[4];  // v[j]: pixel j in the low lane, j + 4 in the high one
        for (int64_t j = 0; j < 4; ++j) {
          v[j] = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_loadu_ps(block + 4 * static_cast<int64_t>(at[j]))),
                                      _mm_loadu_ps(block + 4 * static_cast<int64_t>(at[j + 4])), 1);
        }
        transpose_in_lanes(v);  // v[k]: channel k
        for (int64_t k = 0; k < 4; ++k) _mm256_store_ps(t.values[k] + x, _mm256_blendv_ps(nan, _mm256_mul_ps(v[k], w), valid));
      }
      if (work.scatter) {
        __m256 g[4];
        for (int64_t k = 0; k < 4; ++k) {
          g[k] = k < channels ? _mm256_mul_ps(_mm256_and_ps(valid, _mm256_load_ps(t.grad[k] + x)), w) : zero;
        }
        transpose_in_lanes(g);  // g[j]: pixel j in the low lane, j + 4 in the high one
        alignas(32) float add[4][8];
        for (int64_t j = 0; j < 4; ++j) _mm256_store_ps(add[j], g[j]);
        // Pixels four apart in turn, as sample's scatter: pixel j, then j + 4.
        for (int64_t j = 0; j < 4; ++j) {
          for (int64_t half = 0; half < 2; ++half) {
            float* d = work.scatter + 4 * static_cast<int64_t>(at[j + 4 * half]);
            _mm_storeu_ps(d, _mm_add_ps(_mm_loadu_ps(d), _mm_load_ps(add[j] + 4 * half)));
          }
        }
      }
    }
  }
};

V2V_CPU_NAMESPACE_END
