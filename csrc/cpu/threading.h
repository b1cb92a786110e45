// The threading drivers: how rows of output pixels are split into chunks, one per thread, and walked tile by
// tile (forward, backward, and the fixed-order sum of a loss).
//
// The image gradient is a scatter: a chunk scatters only into the batch elements its rows belong to, so
// chunks of whole batch elements share nothing; when the batch does not divide into the chunks, chunk 0
// scatters into the gradient itself and chunk k > 0 into a private buffer, and the buffers are added in chunk
// order at the end. No two threads write the same memory and the order of every floating-point addition is
// fixed by the shapes and the thread count, so the backward is race-free and bit-identical from run to run.
#pragma once
#ifndef V2V_CPU_PRELUDE_INCLUDED
#error "include prelude.h first (before the target pragma)"
#endif

#include "tile_samples.h"

V2V_CPU_NAMESPACE_BEGIN

// Rows of (batch, y) that a chunk should get at least, so small images do not pay for thread wake-ups.
int64_t min_rows_per_chunk(int64_t W, int64_t C) {
  return std::max<int64_t>(1, kGrainElements / std::max<int64_t>(1, W * std::max<int64_t>(1, C)));
}

// Calls f(b, y, x0, tile) for every tile of output pixels; rows are split across threads.
template <typename acc_t, typename index_t, typename scalar_t, typename F>
void for_each_tile(const Tensor& flow, int64_t C, Sampling sampling, index_t sy, index_t sx, const F& f) {
  const int64_t B = flow.size(0), H = flow.size(2), W = flow.size(3);
  const auto fl = strided4<const scalar_t, index_t>(flow);
  at::parallel_for(0, B * H, min_rows_per_chunk(W, C), [&](int64_t begin, int64_t end) {
    TileSamples<acc_t, index_t> tile;
    for (int64_t row = begin; row < end; ++row) {
      const int64_t b = row / H, y = row % H;
      for (int64_t x0 = 0; x0 < W; x0 += kTile) {
        tile.fill(fl, b, y, x0, std::min(kTile, W - x0), H, W, sampling, false, sy, sx, sy, sx);
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
void for_each_backward_tile(const Tensor& flow, int64_t C, Sampling sampling, index_t sy, index_t sx, Tensor& grad,
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
          tile.fill(fl, b, y, x0, std::min(kTile, W - x0), H, W, sampling, true, sy, sx, gsy, gsx);
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

V2V_CPU_NAMESPACE_END
