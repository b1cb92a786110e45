"""The Triton backend (backend="triton"): kernels.py (the kernels), launch.py (allocation and launches),
registration.py (the torch.library ops vid2vid_fast_triton::*).

Importing this package does not import triton; the kernels are compiled on first use. CPU tensors run
under Triton's interpreter when TRITON_INTERPRET=1 is set before the first import (for tests).
"""
