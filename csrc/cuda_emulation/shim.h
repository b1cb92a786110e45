// What the CUDA kernels (csrc/cuda/*.cu) use of CUDA, for the host compiler: the emulation build compiles the
// same .cu sources as C++ with V2V_CUDA_EMULATION defined, and runs each launch on the CPU through
// cuda_emulation::run_grid (emulation.cpp), which runs every thread of every block, in a shuffled order.
// Included by csrc/cuda/platform.cuh only; see README "The CUDA kernels on the CPU".
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include <cstdint>
#include <functional>
#include <limits>

// Everything is host code. __shared__ memory is a per-OS-thread static: the threads of a block run as fibers
// of one OS thread, one block at a time, so they all see the same array, as a block's threads do on a GPU.
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static thread_local

struct dim3 {
  unsigned int x = 1, y = 1, z = 1;
};

namespace cuda_emulation {

// The coordinates of the thread that runs now.
struct ThreadCoordinates {
  dim3 thread_idx, block_idx, block_dim, grid_dim;
};
extern thread_local ThreadCoordinates current;

// Runs thread_body once per (block, thread) of a grid of `blocks` x `threads`, blocks and threads in a shuffled
// order; __syncthreads() switches to the block's next thread.
void run_grid(int64_t blocks, int64_t threads, const std::function<void()>& thread_body);
void sync_threads();
bool force_64bit_offsets();

}  // namespace cuda_emulation

#define threadIdx (::cuda_emulation::current.thread_idx)
#define blockIdx (::cuda_emulation::current.block_idx)
#define blockDim (::cuda_emulation::current.block_dim)
#define gridDim (::cuda_emulation::current.grid_dim)

inline void __syncthreads() { ::cuda_emulation::sync_threads(); }

// Fibers are never interrupted between two instructions, so a plain read-modify-write is atomic here.
template <typename T>
T atomicAdd(T* address, T value) {
  const T old = *address;
  *address = old + value;
  return old;
}

#define V2V_CUDA_DISPATCH_KEY CPU

namespace vid2vid_fast {

// The launch helper of platform.cuh, emulated: CPU tensors, the same launch configuration checks as CUDA's.
template <typename... Params, typename... Args>
void launch_kernel(void (*kernel)(Params...), const at::Tensor& on, int64_t blocks, int threads, const Args&... args) {
  TORCH_CHECK(on.device().is_cpu(), "the emulated CUDA kernels run on CPU tensors, got a tensor on ", on.device());
  TORCH_CHECK(blocks >= 1 && blocks <= std::numeric_limits<int32_t>::max() && threads >= 1 && threads <= 1024,
              "invalid launch configuration: ", blocks, " blocks of ", threads, " threads");
  ::cuda_emulation::run_grid(blocks, threads, [&] { kernel(args...); });
}

inline bool force_64bit_offsets() { return ::cuda_emulation::force_64bit_offsets(); }

}  // namespace vid2vid_fast
