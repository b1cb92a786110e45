// The CUDA kernels and their host code (csrc/cuda/warp_kernels_cuda.cu), compiled by the host compiler against
// the emulation shim (shim.h) and registered for CPU tensors. Built with -Dvid2vid_fast=vid2vid_fast_cuda_emulated
// (tests/build_checks/cuda_emulated.py), which renames the op namespace and the C++ namespace together.
#define V2V_CUDA_EMULATION
#include "../cuda/warp_kernels_cuda.cu"
