"""Run by tests/test_build.py under AddressSanitizer: builds the CPU kernels with -fsanitize=address, loads them
through VID2VID_FAST_LIBRARY and runs every op forward and backward on hostile inputs. Any out-of-bounds
access aborts the process with an AddressSanitizer report on stderr. With --cuda-emulated it does the same
for the CUDA kernels emulated on the CPU (cuda_emulated.py), through their own op namespace.

    LD_PRELOAD=$(g++ -print-file-name=libasan.so) ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
        python asan_ops.py BUILD_DIR [--csrc DIR] [--cuda-emulated]

The interpreter is not instrumented, so the ASan runtime must be preloaded; the compiler processes that the
build starts are not given LD_PRELOAD.
"""

import argparse
import itertools
import os
from pathlib import Path

import cuda_emulated
import torch
from torch.utils import cpp_extension

CSRC = Path(__file__).resolve().parents[2] / "csrc"
# -fopenmp as in setup.py: without it at::parallel_for runs on one thread, and the multi-chunk paths go untested.
ASAN_CFLAGS = ["-O1", "-g", "-fsanitize=address", "-fno-omit-frame-pointer", "-fno-trapping-math", "-fopenmp"]
ASAN_LDFLAGS = ["-fsanitize=address", "-fopenmp"]

DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
# H = 1, W = 1, a single pixel, odd sizes, more channels than the kernels' inner vector width, and two
# shapes large enough that the kernels split their rows into several chunks (one per thread).
SHAPES = ((1, 1, 1, 1), (2, 3, 1, 7), (2, 3, 6, 1), (1, 2, 5, 9), (2, 3, 7, 8), (1, 17, 3, 5), (2, 3, 67, 129),
          (1, 40, 33, 31))
# The emulated CUDA kernels: a launch of several blocks (1023 pixels, 4 blocks) is enough; each thread costs
# fiber switches, and 68 blocks of (2, 3, 67, 129) under AddressSanitizer would add minutes.
EMULATED_SHAPES = SHAPES[:6] + SHAPES[7:]
EMPTY_SHAPES = ((0, 3, 4, 5), (2, 0, 4, 5), (2, 3, 0, 5), (2, 3, 4, 0))
LAYOUTS = ("contiguous", "channels_last", "strided")
FLOWS = ("ordinary", "hostile", "far", "integer")
HOSTILE_VALUES = (float("nan"), float("inf"), float("-inf"), 1e30, -1e30, 6e4, -6e4)
# The ops' sampling arguments (padding_mode, mode, align_corners), every combination.
SAMPLINGS = tuple(itertools.product(("border", "zeros", "reflection"), ("bilinear", "nearest"), (True, False)))


def build(build_dir, csrc):
    os.environ.pop("LD_PRELOAD", None)  # for the compiler processes; this process already has the runtime
    sources = sorted(str(p) for p in [*csrc.glob("*.cpp"), *csrc.glob("cpu/*.cpp")])
    return cpp_extension.load(
        name="vid2vid_fast_asan",
        sources=sources,
        extra_cflags=ASAN_CFLAGS,
        extra_ldflags=ASAN_LDFLAGS,
        is_python_module=False,
        build_directory=str(build_dir),
    )


def as_layout(t, layout):
    """t (a float64 tensor) as a leaf that needs a gradient, and the view of it to pass to an op."""
    if layout == "strided":
        b, c, h, w = t.shape
        base = torch.zeros(b, c + 1, h, 2 * w, dtype=t.dtype)
        base[:, 1:, :, ::2] = t
        base.requires_grad_(True)
        return base, base[:, 1:, :, ::2]
    if layout == "channels_last":
        t = t.contiguous(memory_format=torch.channels_last)
    t = t.detach().requires_grad_(True)
    return t, t


def make_flow(kind, b, h, w):
    flow = torch.randn(b, 2, h, w, dtype=torch.float64) * 3
    if kind == "hostile":
        values = torch.tensor(HOSTILE_VALUES, dtype=torch.float64)
        picks = values[torch.randint(len(values), flow.shape)]
        flow = torch.where(torch.rand(flow.shape) < 0.6, picks, flow)
    elif kind == "far":  # every sample position outside the image, on all sides
        sign = torch.where(torch.rand(flow.shape) < 0.5, -1.0, 1.0).to(torch.float64)
        flow = sign * (max(h, w) + 1 + torch.rand(flow.shape, dtype=torch.float64) * 10)
    elif kind == "integer":  # positions exactly on pixel centres, the edges and just outside them
        flow = torch.randint(-max(h, w) - 1, max(h, w) + 2, flow.shape).to(torch.float64)
    return flow


def op_inputs(op, shape, flow_kind, per_channel_mask):
    b, c, h, w = shape
    flow = make_flow(flow_kind, b, h, w)
    image = torch.randn(shape, dtype=torch.float64)
    other = torch.randn(shape, dtype=torch.float64)
    if op == "flow_warp":
        return [image, flow]
    if op == "warp_blend":
        return [image, flow, other, torch.rand(b, 1, h, w, dtype=torch.float64)]
    mask = (torch.rand(b, c if per_channel_mask else 1, h, w) < 0.7).to(torch.float64)
    return [image, flow, other, mask]


def run(fn, tensors, dtype, layout, sampling):
    leaves, views = zip(*(as_layout(t.to(dtype), layout) for t in tensors))
    out = fn(*views, *sampling)
    if out.dim() == 0:  # masked_warp_l1's loss
        out.backward()
    else:
        out.backward(as_layout(torch.randn(out.shape, dtype=torch.float64).to(dtype), layout)[1].detach())
    for leaf in leaves:
        assert leaf.grad is not None and leaf.grad.shape == leaf.shape


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir", type=Path)
    parser.add_argument("--csrc", type=Path, default=CSRC, help="the sources to build (default: this checkout's)")
    parser.add_argument("--cuda-emulated", action="store_true", help="the CUDA kernels, emulated on the CPU")
    args = parser.parse_args()

    names = ("flow_warp", "warp_blend", "masked_warp_l1")
    if args.cuda_emulated:
        os.environ.pop("LD_PRELOAD", None)  # for the compiler processes, as in build()
        os.environ["VID2VID_FAST_NO_EXTENSION"] = "1"  # only the emulated ops run
        library = cuda_emulated.build(args.build_dir, args.csrc, ASAN_CFLAGS, ASAN_LDFLAGS,
                                      name="vid2vid_fast_cuda_emulated_asan")
        ops = cuda_emulated.load(library)
        functions = {name: getattr(ops, name) for name in names}
    else:
        library = build(args.build_dir, args.csrc)
        os.environ["VID2VID_FAST_LIBRARY"] = library
        import vid2vid_fast  # noqa: F401  (loads the library)
        from vid2vid_fast.ops import backends

        assert backends.EXTENSION_SOURCE.endswith(library), backends.EXTENSION_SOURCE
        functions = {name: getattr(torch.ops.vid2vid_fast, name) for name in names}
    # (op, per-channel mask): masked_warp_l1 runs with a 1-channel and with a C-channel mask.
    variants = [("flow_warp", False), ("warp_blend", False), ("masked_warp_l1", False), ("masked_warp_l1", True)]
    torch.set_num_threads(4)  # several chunks per op even on a machine with fewer cores
    torch.manual_seed(0)
    count = 0
    shapes = EMULATED_SHAPES if args.cuda_emulated else SHAPES
    # Each input set runs twice per dtype and layout, with the sampling options in turn (shifted from one input
    # set to the next, so that every combination meets every dtype, layout, shape and flow kind).
    for block, ((op, per_channel_mask), shape, flow_kind) in enumerate(itertools.product(variants, shapes, FLOWS)):
        tensors = op_inputs(op, shape, flow_kind, per_channel_mask)
        for k, (dtype, layout, _) in enumerate(itertools.product(DTYPES, LAYOUTS, range(2))):
            run(functions[op], tensors, dtype, layout, SAMPLINGS[(block + k) % len(SAMPLINGS)])
            count += 1
    for (op, per_channel_mask), shape, sampling in itertools.product(variants, EMPTY_SHAPES, SAMPLINGS[::5]):
        tensors = op_inputs(op, shape, "ordinary", per_channel_mask)
        run(functions[op], tensors, torch.float32, "contiguous", sampling)
        count += 1
    print(f"ok: {count} forward and backward runs under AddressSanitizer")


if __name__ == "__main__":
    main()
