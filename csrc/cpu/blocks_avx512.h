// Sampling by channel blocks (block_layout.h) with AVX-512 (F, VL, BW, DQ): 16 pixels per step, a pixel pair's
// two rows of corners one 64-byte vector each. On the Zen 5 measured, a 3-channel image samples in about half
// the time of the planes' pair gathers, the copy included; the image gradient is two 32-byte adds per pixel
// instead of twelve scalar ones for three channels.
#pragma once
#ifndef V2V_CPU_PRELUDE_INCLUDED
#error "include prelude.h first (before the target pragma)"
#endif

#include "block_layout.h"

V2V_CPU_NAMESPACE_BEGIN

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


struct BlockKernels {
  // dst (a row of 4 * W floats) = the pixels of the `channels` rows (unit stride), zeros for the others.
  static void pack_row(float* dst, const float* const rows[4], int64_t channels, int64_t W) {
    for (int64_t x = 0; x < W; x += 16) {
      const __mmask16 m = first_elements(W - x);
      __m512 v[4];
      for (int64_t k = 0; k < 4; ++k) v[k] = k < channels ? _mm512_maskz_loadu_ps(m, rows[k] + x) : _mm512_setzero_ps();
      channels_to_pixels(v);
      for (int64_t q = 0; q < 4; ++q) _mm512_mask_storeu_ps(dst + 4 * x + 16 * q, first_elements(4 * (W - x) - 16 * q), v[q]);
    }
  }

  // The `channels` rows (unit stride) = the pixels of src (a row of 4 * W floats).
  static void unpack_row(const float* src, float* const rows[4], int64_t channels, int64_t W) {
    for (int64_t x = 0; x < W; x += 16) {
      __m512 v[4];
      for (int64_t q = 0; q < 4; ++q) v[q] = _mm512_maskz_loadu_ps(first_elements(4 * (W - x) - 16 * q), src + 4 * x + 16 * q);
      pixels_to_channels(v);
      for (int64_t k = 0; k < channels; ++k) _mm512_mask_storeu_ps(rows[k] + x, first_elements(W - x), v[k]);
    }
  }

  // BlockWork (block_layout.h), 16 pixels at a time: for each pair of pixels, the top and the bottom row's
  // corner pairs are one load each.
  static V2V_NOINLINE void sample(TileSamples<float, int32_t>& t, const float* block, int64_t channels,
                                  const BlockWork& work) {
    if (t.nearest) return sample_nearest(t, block, channels, work);
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

  // BlockWork for nearest sampling, 16 pixels at a time: a pixel's weight sits on one corner of its pairs,
  // so its four channels are one 16-byte load and its image gradient one 16-byte add. (Its flow gradient is
  // 0: backward_by_groups never asks for it, and the sums are left as they are.)
  static V2V_NOINLINE void sample_nearest(TileSamples<float, int32_t>& t, const float* block, int64_t channels,
                                          const BlockWork& work) {
    const __m512 nan = _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN()), zero = _mm512_setzero_ps();
    const __m512i step_x = _mm512_set1_epi32(t.step_x), step_y = _mm512_set1_epi32(t.step_y);
    for (int64_t x = 0; x < t.n; x += 16) {
      const __mmask16 valid = _mm_test_epi8_mask(_mm_loadu_si128(reinterpret_cast<const __m128i*>(t.valid + x)),
                                                 _mm_set1_epi8(-1));
      const __m512 xw1 = _mm512_load_ps(t.weight[1] + x), yw1 = _mm512_load_ps(t.weight[3] + x);
      // The pixel's weight (0 where invalid, or outside with zeros padding) and its corner of the pairs.
      const __m512 w = _mm512_maskz_mul_ps(valid, _mm512_add_ps(_mm512_load_ps(t.weight[0] + x), xw1),
                                           _mm512_add_ps(_mm512_load_ps(t.weight[2] + x), yw1));
      __m512i pixel = _mm512_load_si512(t.off + x);
      pixel = _mm512_mask_add_epi32(pixel, _mm512_cmp_ps_mask(xw1, zero, _CMP_NEQ_UQ), pixel, step_x);
      pixel = _mm512_mask_add_epi32(pixel, _mm512_cmp_ps_mask(yw1, zero, _CMP_NEQ_UQ), pixel, step_y);
      alignas(64) int32_t at[16];
      _mm512_store_si512(at, pixel);
      if (work.values) {
        __m512 v[4];  // v[j]: pixels 4j .. 4j + 3
        for (int64_t j = 0; j < 4; ++j) {
          const float* p = block + 4 * static_cast<int64_t>(at[4 * j]);
          v[j] = _mm512_castps128_ps512(_mm_loadu_ps(p));
          for (int64_t i = 1; i < 4; ++i) {
            const __m128 pv = _mm_loadu_ps(block + 4 * static_cast<int64_t>(at[4 * j + i]));
            v[j] = i == 1 ? _mm512_insertf32x4(v[j], pv, 1) : i == 2 ? _mm512_insertf32x4(v[j], pv, 2) : _mm512_insertf32x4(v[j], pv, 3);
          }
        }
        pixels_to_channels(v);
        for (int64_t k = 0; k < 4; ++k) _mm512_store_ps(t.values[k] + x, _mm512_mask_blend_ps(valid, nan, _mm512_mul_ps(v[k], w)));
      }
      if (work.scatter) {
        __m512 g[4];
        for (int64_t k = 0; k < 4; ++k) g[k] = k < channels ? _mm512_mul_ps(_mm512_maskz_load_ps(valid, t.grad[k] + x), w) : zero;
        channels_to_pixels(g);
        alignas(64) float add[16][4];
        for (int64_t j = 0; j < 4; ++j) _mm512_store_ps(add[4 * j], g[j]);
        // In the order of sample's scatter (pixels four apart in turn).
        for (int64_t first = 0; first < 4; ++first) {
          for (int64_t i = first; i < 16; i += 4) {
            float* d = work.scatter + 4 * static_cast<int64_t>(at[i]);
            _mm_storeu_ps(d, _mm_add_ps(_mm_loadu_ps(d), _mm_load_ps(add[i])));
          }
        }
      }
    }
  }
};

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

V2V_CPU_NAMESPACE_END
