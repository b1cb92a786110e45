"""Host side of the Triton kernels: allocation, launch parameters, the deterministic image-gradient path.

Every launch goes through a `Launch` (kernel, grid, keyword arguments), built by a `plan_*` function (all
through _plan, which passes each tensor with its strides under the kernel's parameter names) and then run;
tests/ops/test_triton_aot.py compiles the plans' exact argument sets ahead of time for sm_80 and sm_90, so
the variants the launchers really use are the ones CI compiles. Each op entry point checks its sampling
options once (sampling_constexprs) and hands the kernels' constexprs to its plans.

Outputs take an input's layout with empty_like's rules, as the C++ kernels and the fake implementations
do. Image gradients are accumulated in float32 (float64 for float64 inputs) and cast at the end.
"""

import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from ..checks import check_like, check_op_inputs
from ..spec import FLOW_WARP, MASKED_WARP_L1, WARP_BLEND, Sampling
from . import kernels

_INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"

# Above this, element offsets (plus a block of padding lanes) may not fit int32: kernels use int64.
_INT32_LIMIT = 2**31 - 2**16

_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64)
_ACC = {torch.float64: tl.float64}
_ACC_TORCH = {torch.float64: torch.float64}


@dataclass
class Launch:
    kernel: object
    grid: tuple
    args: dict

    def run(self):
        self.kernel[self.grid](**self.args)


def _check(spec, tensors, grad_out=None):
    """The ops' checks again (ops/spec.py's op `spec`), for callers of torch.ops.vid2vid_fast_triton.* that skip
    the public functions: a wrong shape here would be an out-of-bounds access on the GPU. The ops take equal
    batches: the public functions expand a batch of 1 before they call an op."""
    check_op_inputs(spec, tensors)
    img, img_name = tensors[0], spec.inputs[0].name
    for t, spec_input in zip(tensors[1:], spec.inputs[1:]):
        if t.shape[0] != img.shape[0]:
            raise ValueError(f"{spec_input.name} has batch {t.shape[0]} but {img_name} has {img.shape[0]}: the ops "
                             f"take equal batches (the public functions broadcast a batch of 1)")
    if img.dtype not in _DTYPES:
        raise TypeError(f"the triton backend supports {', '.join(map(str, _DTYPES))}, got {img_name} of {img.dtype}")
    if grad_out is not None and spec.output_like is None:
        if grad_out.numel() != 1 or grad_out.device != img.device:
            raise ValueError(f"grad_out of {spec.name} must be a scalar on {img.device}, got shape "
                             f"{tuple(grad_out.shape)} on {grad_out.device}")
    elif grad_out is not None:
        check_like(grad_out, "grad_out", tensors[spec.output_like], spec.inputs[spec.output_like].name)
    if img.device.type == "cuda" or (img.device.type == "cpu" and _INTERPRETED):
        return
    raise RuntimeError(
        f"the triton backend needs CUDA tensors (or TRITON_INTERPRET=1 set before import for CPU tensors), "
        f"got tensors on {img.device}"
    )


def sampling_constexprs(padding_mode, mode, align_corners):
    """An op's sampling arguments, checked once per call, as the kernels' constexprs."""
    options = Sampling(padding_mode, mode, align_corners)
    return dict(PADDING=kernels.PADDING_CODES[options.padding_mode], NEAREST=options.mode == "nearest",
                ALIGN_CORNERS=options.align_corners)


def _max_offset(t):
    return sum((size - 1) * abs(stride) for size, stride in zip(t.shape, t.stride()) if size > 0)


def _blocks(n_pixels, C):
    """(BLOCK_P, BLOCK_C): channel tiles up to 16 wide, about 1024 elements a tile on a GPU. The interpreter
    pays per program, not per element, so there one program covers as many pixels as it can."""
    block_c = min(triton.next_power_of_2(max(C, 1)), 16)
    if _INTERPRETED:
        return min(triton.next_power_of_2(max(n_pixels, 1)), 4096), block_c
    return max(1024 // block_c, 64), block_c


def _plan(kernel, like, images, **args):
    """The launch of `kernel` over the pixels of `like` (B, C, H, W). images: name -> a (B, C or 1, H, W)
    tensor, passed with its strides as name_sn, name_sc, name_sy, name_sx (channel stride 0 for a single
    channel, which broadcasts); args: the other arguments. None stands for a buffer the kernel must not
    touch (its NEED_* is off): an empty tensor, never a view of an input, so that a missing guard cannot
    overwrite the caller's tensor. Offsets are 64-bit when some tensor's offsets, or the pixel count, may
    not fit int32."""
    B, C, H, W = like.shape
    n_pixels = B * H * W
    block_p, block_c = _blocks(n_pixels, C)
    nothing = _unrequested(like)
    tensors = [t for t in (*images.values(), *args.values()) if isinstance(t, torch.Tensor)]
    int64 = n_pixels >= _INT32_LIMIT or max([0, *map(_max_offset, tensors)]) >= _INT32_LIMIT
    kernel_args = dict(n_pixels=n_pixels, C=C, H=H, W=W, INT64=int64, BLOCK_P=block_p, BLOCK_C=block_c)
    kernel_args.update((name, nothing if value is None else value) for name, value in args.items())
    for name, t in images.items():
        sn, sc, sy, sx = (0, 0, 0, 0) if t is None else t.stride()
        kernel_args.update({name: nothing if t is None else t, f"{name}_sn": sn,
                            f"{name}_sc": 0 if t is None or t.shape[1] == 1 else sc, f"{name}_sy": sy,
                            f"{name}_sx": sx})
    return Launch(kernel, (triton.cdiv(n_pixels, block_p),), kernel_args)


def _op_plan(kernel, like, sampling, images, **args):
    """The launch of an op kernel: _plan's, with the sampling constexprs and the accumulation type."""
    return _plan(kernel, like, images, **sampling, ACC=_ACC.get(like.dtype, tl.float32), **args)


def _acc_dtype(t):
    return _ACC_TORCH.get(t.dtype, torch.float32)


def _pixels(t):
    B, _, H, W = t.shape
    return B * H * W


class _ImageGrad:
    """The gradient of a warped image: an accumulation buffer laid out like the image, and in deterministic
    mode the per-corner contributions and their keys, summed in a fixed order by finish()."""

    def __init__(self, like, needed, deterministic):
        self.like = like
        self.needed = needed
        self.deterministic = needed and deterministic
        n, C = _pixels(like), like.shape[1]
        self.acc = torch.zeros_like(like, dtype=_acc_dtype(like)) if needed else None
        if self.deterministic:
            self.keys = torch.empty(4 * n, dtype=torch.int64, device=like.device)
            self.contrib = torch.empty(4 * n * C, dtype=self.acc.dtype, device=like.device)
        else:
            self.keys = self.contrib = None

    def args(self):
        """The kernel arguments of the deterministic path (None where unused)."""
        return dict(keys=self.keys, contrib=self.contrib, contrib_stride=_pixels(self.like) * self.like.shape[1],
                    DETERMINISTIC=self.deterministic)

    def plan_gather(self):
        """Deterministic mode: sorts the keys (stably, so equal keys keep the order of the outputs that sent
        them) and plans the kernel that adds each pixel's contributions in that order."""
        n = _pixels(self.like)
        sorted_keys, order = torch.sort(self.keys, stable=True)
        pixels = torch.arange(n, dtype=torch.int64, device=self.like.device)
        starts = torch.searchsorted(sorted_keys, pixels)
        ends = torch.searchsorted(sorted_keys, pixels, right=True)
        return _plan(kernels.gather_sum_kernel, self.like, dict(acc=self.acc), order=order, starts=starts,
                     ends=ends, contrib=self.contrib)

    def finish(self):
        if not self.needed:
            return _unrequested(self.like)
        if self.deterministic and self.like.numel() > 0:
            self.plan_gather().run()
        return self.acc if self.acc.dtype == self.like.dtype else self.acc.to(self.like.dtype)


def _unrequested(like):
    """An unrequested gradient, returned as an empty tensor; also the stand-in for unused kernel buffers."""
    return like.new_empty((0,))


def _backward(plan, head, tensors, output_mask, deterministic, sampling):
    """An op's gradients, by one launch of plan(head, *tensors, image gradient, *other gradients, sampling): the
    image's (tensors[0]) an _ImageGrad, the others fresh tensors like their inputs (never an input's memory,
    which may be expanded); an empty tensor for each gradient output_mask does not request."""
    image_grad = _ImageGrad(tensors[0], output_mask[0], deterministic)
    others = [torch.empty_like(t) if needed else None for t, needed in zip(tensors[1:], output_mask[1:])]
    requested = [g for g in others if g is not None]
    if tensors[0].numel() > 0 and (image_grad.needed or requested):
        plan(head, *tensors, image_grad, *others, sampling).run()
    else:
        for g in requested:
            g.zero_()
    return (image_grad.finish(), *(_unrequested(t) if g is None else g for g, t in zip(others, tensors[1:])))


# ---------------------------------------------------------------------------------------------- flow_warp


def plan_flow_warp_forward(img, flow, out, sampling):
    return _op_plan(kernels.flow_warp_forward_kernel, img, sampling, dict(img=img, flow=flow, out=out))


def flow_warp(img, flow, padding_mode, mode, align_corners):
    options = sampling_constexprs(padding_mode, mode, align_corners)
    _check(FLOW_WARP, (img, flow))
    out = torch.empty_like(img)
    if out.numel() > 0:
        plan_flow_warp_forward(img, flow, out, options).run()
    return out


def plan_flow_warp_backward(grad_out, img, flow, grad_img, grad_flow, sampling):
    """grad_img is an _ImageGrad; grad_flow a tensor like flow, or None."""
    images = dict(grad_out=grad_out, img=img, flow=flow, grad_img=grad_img.acc, grad_flow=grad_flow)
    return _op_plan(kernels.flow_warp_backward_kernel, img, sampling, images, **grad_img.args(),
                    NEED_IMG=grad_img.needed, NEED_FLOW=grad_flow is not None)


def flow_warp_backward(grad_out, img, flow, padding_mode, mode, align_corners, output_mask, deterministic):
    options = sampling_constexprs(padding_mode, mode, align_corners)
    _check(FLOW_WARP, (img, flow), grad_out)
    return _backward(plan_flow_warp_backward, grad_out, (img, flow), output_mask, deterministic, options)


# --------------------------------------------------------------------------------------------- warp_blend


def plan_warp_blend_forward(prev, flow, raw, weight, out, sampling):
    images = dict(prev=prev, flow=flow, raw=raw, weight=weight, out=out)
    return _op_plan(kernels.warp_blend_forward_kernel, prev, sampling, images)


def warp_blend(prev, flow, raw, weight, padding_mode, mode, align_corners):
    options = sampling_constexprs(padding_mode, mode, align_corners)
    _check(WARP_BLEND, (prev, flow, raw, weight))
    out = torch.empty_like(raw)
    if out.numel() > 0:
        plan_warp_blend_forward(prev, flow, raw, weight, out, options).run()
    return out


def plan_warp_blend_backward(grad_out, prev, flow, raw, weight, grad_prev, grad_flow, grad_raw, grad_weight,
                             sampling):
    images = dict(grad_out=grad_out, prev=prev, flow=flow, raw=raw, weight=weight, grad_prev=grad_prev.acc,
                  grad_flow=grad_flow, grad_raw=grad_raw, grad_weight=grad_weight)
    return _op_plan(kernels.warp_blend_backward_kernel, prev, sampling, images, **grad_prev.args(),
                    NEED_PREV=grad_prev.needed, NEED_FLOW=grad_flow is not None, NEED_RAW=grad_raw is not None,
                    NEED_WEIGHT=grad_weight is not None)


def warp_blend_backward(grad_out, prev, flow, raw, weight, padding_mode, mode, align_corners, output_mask,
                        deterministic):
    options = sampling_constexprs(padding_mode, mode, align_corners)
    tensors = (prev, flow, raw, weight)
    _check(WARP_BLEND, tensors, grad_out)
    return _backward(plan_warp_blend_backward, grad_out, tensors, output_mask, deterministic, options)


# ----------------------------------------------------------------------------------------- masked_warp_l1


def plan_masked_warp_l1_forward(src, flow, target, mask, partials, sampling):
    images = dict(src=src, flow=flow, target=target, mask=mask)
    return _op_plan(kernels.masked_warp_l1_forward_kernel, src, sampling, images, partials=partials)


def masked_warp_l1_partials(src, n):
    """The buffer of per-program partial sums for n pixels."""
    block_p, _ = _blocks(n, src.shape[1])
    return torch.empty(triton.cdiv(n, block_p), dtype=_acc_dtype(src), device=src.device)


def masked_warp_l1(src, flow, target, mask, padding_mode, mode, align_corners):
    options = sampling_constexprs(padding_mode, mode, align_corners)
    _check(MASKED_WARP_L1, (src, flow, target, mask))
    if src.numel() == 0:
        return torch.full((), float("nan"), dtype=src.dtype, device=src.device)  # the mean of nothing
    partials = masked_warp_l1_partials(src, _pixels(src))
    plan_masked_warp_l1_forward(src, flow, target, mask, partials, options).run()
    return (partials.sum(dtype=torch.float64) / src.numel()).to(src.dtype)


def plan_masked_warp_l1_backward(scale, src, flow, target, mask, grad_src, grad_flow, grad_target, grad_mask,
                                 sampling):
    images = dict(src=src, flow=flow, target=target, mask=mask, grad_src=grad_src.acc, grad_flow=grad_flow,
                  grad_target=grad_target, grad_mask=grad_mask)
    return _op_plan(kernels.masked_warp_l1_backward_kernel, src, sampling, images, scale=scale, **grad_src.args(),
                    NEED_SRC=grad_src.needed, NEED_FLOW=grad_flow is not None, NEED_TARGET=grad_target is not None,
                    NEED_MASK=grad_mask is not None, MASK_PER_CHANNEL=mask.shape[1] != 1 or src.shape[1] == 1)


def masked_warp_l1_backward(grad_out, src, flow, target, mask, padding_mode, mode, align_corners, output_mask,
                            deterministic):
    options = sampling_constexprs(padding_mode, mode, align_corners)
    tensors = (src, flow, target, mask)
    _check(MASKED_WARP_L1, tensors, grad_out)
    # d(mean)/d(element), on the device: no host synchronisation. (An empty src launches nothing.)
    scale = (grad_out.reshape(1).to(_acc_dtype(src)) / max(src.numel(), 1)).contiguous()
    return _backward(plan_masked_warp_l1_backward, scale, tensors, output_mask, deterministic, options)
