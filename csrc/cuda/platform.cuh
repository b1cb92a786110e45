// What the CUDA kernels need from the CUDA runtime, in one place: the kernel launch, the device guard and
// stream, and the dispatch key the ops are registered under. Built by nvcc this is the real runtime; built by
// the host compiler with V2V_CUDA_EMULATION defined (csrc/cuda_emulation/), the same kernels run on the CPU.
#pragma once

#ifdef V2V_CUDA_EMULATION
#include "../cuda_emulation/shim.h"
#else
#include <ATen/core/Tensor.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#define V2V_CUDA_DISPATCH_KEY CUDA

namespace vid2vid_fast {

// Launches kernel on `blocks` blocks of `threads` threads, on the device of `on` and the current stream.
template <typename... Params, typename... Args>
void launch_kernel(void (*kernel)(Params...), const at::Tensor& on, int64_t blocks, int threads, const Args&... args) {
  const c10::cuda::CUDAGuard guard(on.device());
  kernel<<<blocks, threads, 0, c10::cuda::getCurrentCUDAStream()>>>(args...);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// The emulation's test hook that sends small tensors down the 64-bit offset path; never on a GPU.
inline bool force_64bit_offsets() { return false; }

}  // namespace vid2vid_fast
#endif
