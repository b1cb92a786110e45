"""Run by tests/test_build.py in a fresh interpreter: loads vid2vid_fast with VID2VID_FAST_LIBRARY pointing at
a separately built library and checks that its CPU kernels (and CUDA kernels, when asked) are the ones in use
and agree with the reference.

    VID2VID_FAST_LIBRARY=/path/_C.so python check_library.py /path/_C.so [--with-cuda]
"""

import argparse

import torch

import vid2vid_fast as v2v
from vid2vid_fast.ops import backends


def inputs(device):
    """float64 inputs of every op, with flows of a few pixels and some far outside the image."""
    torch.manual_seed(0)
    b, c, h, w = 2, 3, 5, 7
    flow = torch.randn(b, 2, h, w, dtype=torch.float64) * 3
    flow[:, :, 0, :3] = 20.0
    images = [torch.randn(b, c, h, w, dtype=torch.float64) for _ in range(3)]
    weight = torch.rand(b, 1, h, w, dtype=torch.float64)
    mask = (torch.rand(b, 1, h, w) < 0.7).to(torch.float64)
    return {
        name: [t.to(device) for t in tensors]
        for name, tensors in {
            "flow_warp": [images[0], flow],
            "warp_blend": [images[0], flow, images[1], weight],
            "masked_warp_l1": [images[0], flow, images[2], mask],
        }.items()
    }


OPS = {"flow_warp": v2v.flow_warp, "warp_blend": v2v.warp_blend, "masked_warp_l1": v2v.masked_warp_l1}


def output_and_grads(fn, tensors, padding_mode, backend):
    leaves = [t.clone().requires_grad_(True) for t in tensors]
    out = fn(*leaves, padding_mode, backend=backend)
    grads = torch.autograd.grad(out, leaves, torch.ones_like(out))
    return [out.detach(), *grads]


def compare(device, backend):
    for name, tensors in inputs(device).items():
        for padding_mode in ("border", "zeros"):
            got = output_and_grads(OPS[name], tensors, padding_mode, backend)
            want = output_and_grads(OPS[name], tensors, padding_mode, "reference")
            for i, (g, r) in enumerate(zip(got, want)):
                assert torch.allclose(g, r, rtol=1e-9, atol=1e-9), (
                    f"{name} {padding_mode} {backend}: {'output' if i == 0 else f'gradient {i - 1}'} differs "
                    f"from the reference by {(g - r).abs().max().item():.3g}"
                )
        print(f"{name}: backend={backend!r} matches the reference")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("library")
    parser.add_argument("--with-cuda", action="store_true", help="the library must have CUDA kernels too")
    args = parser.parse_args()

    assert backends.EXTENSION_LOADED, backends.EXTENSION_SOURCE
    assert args.library in backends.EXTENSION_SOURCE, backends.EXTENSION_SOURCE
    expected_devices = {"cpu", "cuda"} if args.with_cuda else {"cpu"}
    assert backends.EXTENSION_DEVICES == expected_devices, backends.EXTENSION_DEVICES
    print(f"loaded {backends.EXTENSION_SOURCE} with kernels for {sorted(backends.EXTENSION_DEVICES)}")
    compare("cpu", "cpu")
    if args.with_cuda and torch.cuda.is_available():
        compare("cuda", "cuda")


if __name__ == "__main__":
    main()
