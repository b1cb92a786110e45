"""Calls every op, forward and backward, on every GPU backend at small sizes with hostile flows (NaN, ±Inf,
huge), in two layouts and under deterministic mode too: the program benchmarks/gpu_report.py runs under
`compute-sanitizer --tool memcheck`. Run it with PYTORCH_NO_CUDA_MEMORY_CACHING=1, so that every tensor is
its own allocation and an out-of-bounds access cannot land silently in a neighbour inside a cached block.

    PYTORCH_NO_CUDA_MEMORY_CACHING=1 compute-sanitizer --tool memcheck python3 benchmarks/gpu_sanitize_driver.py

Exits 1 if a call raised an unexpected error (a refusal under deterministic mode is reported, not an error).
`--device cpu` runs the same calls on the CPU kernels (how the tests check this script without a GPU).
"""

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

import vid2vid_fast as v2v
from vid2vid_fast.ops.spec import ALL_SAMPLINGS

OPS = {"flow_warp": v2v.flow_warp, "warp_blend": v2v.warp_blend, "masked_warp_l1": v2v.masked_warp_l1}
SHAPES = ((2, 3, 17, 23), (1, 2, 1, 9), (1, 3, 7, 1))
# Flow values that have broken warping kernels: not numbers, infinities, and finite values whose pixel
# index does not fit an int32 (or a float's integer range).
HOSTILE = (float("nan"), float("inf"), float("-inf"), 1e30, -1e30, 3e38, -2.5e9, 1e6)


def hostile_flow(b, h, w, dtype, gen):
    flow = torch.randn(b, 2, h, w, generator=gen) * 3
    pick = torch.randint(0, len(HOSTILE) + 2, (b, 2, h, w), generator=gen)  # about 1 in 5 stays ordinary
    values = torch.tensor(HOSTILE)
    hostile = pick < len(HOSTILE)
    flow[hostile] = values[pick[hostile]]
    return flow.to(dtype=dtype)


def inputs_for(op, shape, dtype, layout, device, gen):
    b, c, h, w = shape

    def rand(channels):
        return torch.randn(b, channels, h, w, generator=gen).to(device=device, dtype=dtype)

    tensors = [rand(c), hostile_flow(b, h, w, dtype, gen).to(device)]
    if op == "warp_blend":
        tensors += [rand(c), torch.rand(b, 1, h, w, generator=gen).to(device=device, dtype=dtype)]
    elif op == "masked_warp_l1":
        tensors += [rand(c), (torch.rand(b, 1, h, w, generator=gen) < 0.7).to(device=device, dtype=dtype)]
    if layout == "channels_last":
        tensors = [t.contiguous(memory_format=torch.channels_last) for t in tensors]
    return [t.requires_grad_(True) for t in tensors]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    device = parser.parse_args().device
    candidates = ("cuda", "triton") if device == "cuda" else ("cpu",)
    backends = [b for b in candidates if b in v2v.available_backends(device)]
    if not backends:
        sys.exit(f"error: none of the backends {candidates} is available (vid2vid_fast.available_backends("
                 f"{device!r}) = {v2v.available_backends(device)})")
    gen = torch.Generator().manual_seed(0)
    calls, errors, refused = 0, 0, set()
    for deterministic in (False, True):
        torch.use_deterministic_algorithms(deterministic)
        for backend in backends:
            for op, fn in OPS.items():
                for dtype in (torch.float32, torch.bfloat16):
                    for sampling in ALL_SAMPLINGS:
                        for shape in SHAPES:
                            for layout in ("contiguous", "channels_last") if shape == SHAPES[0] else ("contiguous",):
                                inputs = inputs_for(op, shape, dtype, layout, device, gen)
                                try:
                                    out = fn(*inputs, **sampling.keywords(), backend=backend)
                                    grads = torch.autograd.grad(out, inputs, torch.randn_like(out))
                                    if device == "cuda":
                                        torch.cuda.synchronize()
                                    assert all(g.shape == t.shape for g, t in zip(grads, inputs))
                                except RuntimeError as e:
                                    if deterministic and "deterministic" in str(e):
                                        refused.add(f"{backend} {op}")
                                        continue
                                    errors += 1
                                    print(f"error: {backend} {op} {dtype} {sampling} {shape} {layout} "
                                          f"deterministic={deterministic}: {e}", flush=True)
                                calls += 1
    torch.use_deterministic_algorithms(False)
    if refused:
        print(f"refused under deterministic mode: {', '.join(sorted(refused))}")
    print(f"driver: {calls} forward+backward calls on {', '.join(backends)}, {errors} unexpected errors")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
