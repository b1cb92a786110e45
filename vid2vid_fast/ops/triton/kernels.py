"""Triton kernels for flow_warp, warp_blend and masked_warp_l1, forward and backward.

The arithmetic mirrors csrc/warp_math.h (the CPU and CUDA kernels), so every backend samples alike: the
ops' definition (README, "What the ops compute": grid_sample on the (size - 1)-normalised grid), with the
sampling options as constexprs: PADDING (BORDER, ZEROS, REFLECTION), NEAREST (else bilinear) and
ALIGN_CORNERS.

Each program owns BLOCK_P output pixels (flattened over B, H, W) and walks the channels in tiles of
BLOCK_C: the sample (corner indices and weights) is computed once per pixel, by the prologue every op
kernel starts with, and reused for every channel. Any strides work (channels_last, a batch stride of 0,
a flow whose channel stride is 1): a tile is [pixels, channels], so whichever of the two is contiguous in
memory is the coalesced one. A tensor with one channel that broadcasts over the image's channels (weight,
a B x 1 mask) has channel stride 0.

A sample is a tuple (ok, x axis, y axis); an axis is (i0, i1, w0, w1, d0, d1): two corner indices, their
weights and the derivatives of the weights by the pixel position. Nearest sampling puts weight 1 on i0
(i1 = i0 with weight 0), so it reads and scatters one corner only, and its derivatives are 0. (Unpacked one
level at a time: triton 3.6, the GPU machines' version, rejects nested assignment targets.)

Image gradients are scattered: with float atomics into an fp32 (fp64) buffer, or, in deterministic
mode, as four per-corner contributions with their target pixel ("keys") that gather_sum_kernel then
adds in a fixed order. Every other gradient is gathered per pixel and needs no atomics.

Sizes equal to 1 are specialised into constants by the JIT (and so are strides of 1), so integer
arguments are turned into floats with tl.cast, never `.to(...)`: tests/ops/test_triton_aot.py compiles
every variant for sm_80 and sm_90 to keep it that way.
"""

import os

import triton
import triton.language as tl

# The PADDING constexpr: launch.py maps padding_mode to it with PADDING_CODES.
BORDER = tl.constexpr(0)
ZEROS = tl.constexpr(1)
REFLECTION = tl.constexpr(2)
PADDING_CODES = {"border": BORDER.value, "zeros": ZEROS.value, "reflection": REFLECTION.value}

if os.environ.get("TRITON_INTERPRET", "0") == "1":

    @triton.jit
    def _fmod(a, b):
        """The interpreter has no libdevice; its float remainder is numpy's fmod, exact as well."""
        return a % b

else:
    from triton.language.extra import libdevice

    @triton.jit
    def _fmod(a, b):
        """Exact, as std::fmod (the % operator compiles to a - b * trunc(a / b), which is wrong once the
        quotient is large)."""
        return libdevice.fmod(a, b)


@triton.jit
def _pixel_block(n_pixels, H, W, BLOCK_P: tl.constexpr, INT64: tl.constexpr):
    """The output pixels of this program: flat index, in-range mask, and (b, y, x)."""
    pid = tl.program_id(0)
    if INT64:
        offs = pid.to(tl.int64) * BLOCK_P + tl.arange(0, BLOCK_P).to(tl.int64)
    else:
        offs = pid * BLOCK_P + tl.arange(0, BLOCK_P)
    live = offs < n_pixels
    x = offs % W
    rest = offs // W
    y = rest % H
    b = rest // H
    return offs, live, b, y, x


@triton.jit
def _coordinate(pos, size, ALIGN_CORNERS: tl.constexpr):
    """grid_sample's unnormalised coordinate u of pixel position pos along an axis of `size` pixels, and
    du/dpos: u = pos with align_corners (or size 1: the identity), else pos * size / (size - 1) - 0.5,
    multiplied first so that a u on a half-integer (a tie of nearest) is exact."""
    if ALIGN_CORNERS:
        return pos, 1.0
    else:
        size_f = tl.cast(size, pos.dtype)
        gaps = tl.maximum(size_f - 1.0, 1.0)  # size 1: u = pos * 1 / 1 - 0, the identity
        return pos * size_f / gaps - 0.5 * (size_f - gaps), size_f / gaps


@triton.jit
def _reduce_flow_for_reflection(d, size):
    """A flow component (finite) reduced into [0, period]: the reflection repeats every 2 * (size - 1) pixels of
    position, for both align_corners values. fmod is exact, so a huge flow loses nothing before the position
    is formed, as in the reference. (Size 1: any period; the clip in _axis makes u 0.)"""
    period = tl.maximum(2.0 * tl.cast(size - 1, d.dtype), 1.0)
    r = _fmod(d, period)
    return tl.where(r < 0.0, r + period, r)


@triton.jit
def _reflect(u, low, span):
    """u (at least low) reflected into [low, low + span] (span > 0), and the sign of d(reflected)/du."""
    r = _fmod(u - low, 2.0 * span)
    back = r > span
    return tl.where(back, 2.0 * span - r, r) + low, tl.where(back, -1.0, 1.0)


@triton.jit
def _round_half_even(i0, t):
    """The nearest integer to i0 + t (t in [0, 1)), ties to even: rint / std::nearbyint."""
    return i0 + ((t > 0.5) | ((t == 0.5) & ((i0 & 1) == 1))).to(tl.int32)


@triton.jit
def _axis(u, du, size, PADDING: tl.constexpr, NEAREST: tl.constexpr, ALIGN_CORNERS: tl.constexpr):
    """One axis of a sample at coordinate u with du = du/dpos: (i0, i1, w0, w1, d0, d1), both indices inside
    the image whatever u is. (u is NaN for no valid pixel, and ±Inf only under BORDER and ZEROS.)"""
    last = tl.cast(size - 1, u.dtype)
    if PADDING == REFLECTION:
        if ALIGN_CORNERS:
            # Size 1 has span 0: any positive span does, as the clip below makes u 0 with derivative 0 (the
            # contract's rule); 1 keeps fmod away from a zero divisor.
            u, sign = _reflect(u, 0.0, tl.maximum(last, 1.0))
        else:
            u, sign = _reflect(u, -0.5, last + 1.0)
        du = du * sign
    if PADDING == ZEROS:
        # More than one pixel outside touches nothing, so clamping to [-2, size + 1] changes nothing but
        # keeps the float-to-int conversion defined for huge or infinite positions (and for NaN, which
        # fails both comparisons: no u whatever reaches memory out of bounds).
        p = tl.where(u >= -2.0, tl.where(u <= last + 2.0, u, last + 2.0), -2.0)
        i0 = p.to(tl.int32)
        i0 = i0 - (i0.to(p.dtype) > p).to(tl.int32)  # floor
        f0 = i0.to(p.dtype)
        t = p - f0
        if NEAREST:
            i = _round_half_even(i0, t)
            w0 = tl.where((i >= 0) & (i <= size - 1), 1.0, 0.0)
            i0 = tl.minimum(tl.maximum(i, 0), size - 1)
            i1 = i0
        else:
            in0 = tl.where((f0 >= 0.0) & (f0 <= last), 1.0, 0.0)
            in1 = tl.where((f0 >= -1.0) & (f0 <= last - 1.0), 1.0, 0.0)
            i1 = tl.minimum(tl.maximum(i0 + 1, 0), size - 1)
            i0 = tl.minimum(tl.maximum(i0, 0), size - 1)
            w0 = in0 * (1.0 - t)
            w1 = in1 * t
            d0 = -in0 * du
            d1 = in1 * du
    else:
        # Border (and reflection's final clip): clip the position (comparisons, so that ±Inf clips too, and
        # NaN, failing both, becomes 0); no derivative where clipped.
        p = tl.where(u >= 0.0, tl.where(u <= last, u, last), 0.0)
        i0 = p.to(tl.int32)  # p >= 0: truncation is floor
        t = p - i0.to(p.dtype)
        if NEAREST:
            i0 = _round_half_even(i0, t)  # at most size - 1, as p is
            i1 = i0
            w0 = tl.full(t.shape, 1.0, t.dtype)
        else:
            gate = tl.where((u > 0.0) & (u < last), du, 0.0)
            i1 = tl.minimum(i0 + 1, size - 1)
            w0 = 1.0 - t
            w1 = t
            d0 = -gate
            d1 = gate
    if NEAREST:
        # Weight on i0 only; no derivative.
        w1 = tl.zeros_like(t)
        d0 = w1
        d1 = w1
    return i0, i1, w0, w1, d0, d1


@triton.jit
def _sample(flow, b, y, x, live, flow_sn, flow_sc, flow_sy, flow_sx, H, W,
            PADDING: tl.constexpr, NEAREST: tl.constexpr, ALIGN_CORNERS: tl.constexpr, ACC: tl.constexpr):
    """The sample of each pixel displaced by its flow: (ok, x axis, y axis). ok is False where a flow
    component is NaN, or ±Inf under REFLECTION (reflecting an infinite position is undefined): such a pixel
    samples at offset 0 (so its indices stay valid) and its result is discarded."""
    f = flow + b * flow_sn + y * flow_sy + x * flow_sx
    dx = tl.load(f, mask=live, other=0.0).to(ACC)
    dy = tl.load(f + flow_sc, mask=live, other=0.0).to(ACC)
    if PADDING == REFLECTION:
        ok = (tl.abs(dx) < float("inf")) & (tl.abs(dy) < float("inf"))
        dx = _reduce_flow_for_reflection(tl.where(ok, dx, 0.0), W)
        dy = _reduce_flow_for_reflection(tl.where(ok, dy, 0.0), H)
    else:
        ok = (dx == dx) & (dy == dy)
    ux, dux = _coordinate(x.to(ACC) + tl.where(ok, dx, 0.0), W, ALIGN_CORNERS)
    uy, duy = _coordinate(y.to(ACC) + tl.where(ok, dy, 0.0), H, ALIGN_CORNERS)
    x0, x1, wx0, wx1, ex0, ex1 = _axis(ux, dux, W, PADDING, NEAREST, ALIGN_CORNERS)
    y0, y1, wy0, wy1, ey0, ey1 = _axis(uy, duy, H, PADDING, NEAREST, ALIGN_CORNERS)
    ix = (x0.to(b.dtype), x1.to(b.dtype), wx0, wx1, ex0, ex1)
    iy = (y0.to(b.dtype), y1.to(b.dtype), wy0, wy1, ey0, ey1)
    return ok, ix, iy


@triton.jit
def _corner_offsets(b, sn, sy, sx, sample):
    """Offsets of the four corners (o{row}{column}) in a tensor of strides (sn, ., sy, sx)."""
    _, x_axis, y_axis = sample
    x0, x1, _, _, _, _ = x_axis
    y0, y1, _, _, _, _ = y_axis
    r0 = b * sn + y0 * sy
    r1 = b * sn + y1 * sy
    c0 = x0 * sx
    c1 = x1 * sx
    return r0 + c0, r0 + c1, r1 + c0, r1 + c1


@triton.jit
def _prologue(flow, n_pixels, H, W, flow_sn, flow_sc, flow_sy, flow_sx, img_sn, img_sy, img_sx,
              PADDING: tl.constexpr, NEAREST: tl.constexpr, ALIGN_CORNERS: tl.constexpr, ACC: tl.constexpr,
              INT64: tl.constexpr, BLOCK_P: tl.constexpr):
    """The start of every op kernel: this program's pixels (offs, live, b, y, x), their samples, and the
    offsets of the sampled corners in the image of strides (img_sn, ., img_sy, img_sx)."""
    offs, live, b, y, x = _pixel_block(n_pixels, H, W, BLOCK_P, INT64)
    sample = _sample(flow, b, y, x, live, flow_sn, flow_sc, flow_sy, flow_sx, H, W, PADDING, NEAREST,
                     ALIGN_CORNERS, ACC)
    return offs, live, b, y, x, sample, _corner_offsets(b, img_sn, img_sy, img_sx, sample)


@triton.jit
def _read_sample(ptr, corners, co, m2, sample, NEAREST: tl.constexpr, ACC: tl.constexpr):
    """The sampled value of channels co (NaN where the sample is not ok) and its derivatives by the x and y
    positions; a kernel that needs only some of them leaves the rest to the compiler to drop."""
    ok, x_axis, y_axis = sample
    _, _, wx0, wx1, ex0, ex1 = x_axis
    _, _, wy0, wy1, ey0, ey1 = y_axis
    o00, o01, o10, o11 = corners
    if NEAREST:
        # Weight 1 or, outside the image with zeros padding, 0: then nothing is read.
        inside = m2 & ((wx0 * wy0) > 0.0)[:, None]
        v = tl.load(ptr + o00[:, None] + co[None, :], mask=inside, other=0.0).to(ACC)
        zero = tl.zeros_like(v)
        return tl.where(ok[:, None], v, float("nan")), zero, zero
    v00 = tl.load(ptr + o00[:, None] + co[None, :], mask=m2, other=0.0).to(ACC)
    v01 = tl.load(ptr + o01[:, None] + co[None, :], mask=m2, other=0.0).to(ACC)
    v10 = tl.load(ptr + o10[:, None] + co[None, :], mask=m2, other=0.0).to(ACC)
    v11 = tl.load(ptr + o11[:, None] + co[None, :], mask=m2, other=0.0).to(ACC)
    top = wx0[:, None] * v00 + wx1[:, None] * v01
    bottom = wx0[:, None] * v10 + wx1[:, None] * v11
    value = tl.where(ok[:, None], wy0[:, None] * top + wy1[:, None] * bottom, float("nan"))
    d_x = wy0[:, None] * (ex0[:, None] * v00 + ex1[:, None] * v01) + wy1[:, None] * (
        ex0[:, None] * v10 + ex1[:, None] * v11
    )
    d_y = ey0[:, None] * top + ey1[:, None] * bottom
    return value, d_x, d_y


@triton.jit
def _channels(c0, C, BLOCK_C: tl.constexpr, INT64: tl.constexpr):
    ch = c0 + tl.arange(0, BLOCK_C)
    cmask = ch < C
    if INT64:
        ch = ch.to(tl.int64)
    return ch, cmask


@triton.jit
def _write_keys(keys, n_pixels, offs, live, b, H, W, sample):
    """Deterministic mode: the flat image pixel each of the four corner contributions goes to."""
    _, x_axis, y_axis = sample
    x0, x1, _, _, _, _ = x_axis
    y0, y1, _, _, _, _ = y_axis
    row0 = (b * H + y0) * W
    row1 = (b * H + y1) * W
    k1 = keys + n_pixels
    k2 = k1 + n_pixels
    k3 = k2 + n_pixels
    tl.store(keys + offs, row0 + x0, mask=live)
    tl.store(k1 + offs, row0 + x1, mask=live)
    tl.store(k2 + offs, row1 + x0, mask=live)
    tl.store(k3 + offs, row1 + x1, mask=live)


@triton.jit
def _scatter(acc, acc_sc, corners, contrib, contrib_stride, offs, C, ch, g, sample, m2,
             NEAREST: tl.constexpr, DETERMINISTIC: tl.constexpr):
    """Sends gradient g [pixels, channels] to the four corners: atomics into acc, or (deterministic)
    per-corner contributions into contrib, laid out (4, pixels, C), for gather_sum_kernel."""
    ok, x_axis, y_axis = sample
    _, _, wx0, wx1, _, _ = x_axis
    _, _, wy0, wy1, _, _ = y_axis
    o00, o01, o10, o11 = corners
    g0 = g * wy0[:, None]
    g1 = g * wy1[:, None]
    keep = ok[:, None] & m2
    if DETERMINISTIC:
        at = contrib + offs[:, None] * C + ch[None, :]
        at1 = at + contrib_stride
        at2 = at1 + contrib_stride
        at3 = at2 + contrib_stride
        tl.store(at, tl.where(keep, g0 * wx0[:, None], 0.0), mask=m2)
        tl.store(at1, tl.where(keep, g0 * wx1[:, None], 0.0), mask=m2)
        tl.store(at2, tl.where(keep, g1 * wx0[:, None], 0.0), mask=m2)
        tl.store(at3, tl.where(keep, g1 * wx1[:, None], 0.0), mask=m2)
    else:
        co = (ch * acc_sc)[None, :]
        if NEAREST:  # one corner, of weight 1, or 0 outside the image with zeros padding: then no atomic
            keep = keep & ((wx0 * wy0) > 0.0)[:, None]
        tl.atomic_add(acc + o00[:, None] + co, g0 * wx0[:, None], mask=keep, sem="relaxed")
        if not NEAREST:  # the other three corners have weight 0
            tl.atomic_add(acc + o01[:, None] + co, g0 * wx1[:, None], mask=keep, sem="relaxed")
            tl.atomic_add(acc + o10[:, None] + co, g1 * wx0[:, None], mask=keep, sem="relaxed")
            tl.atomic_add(acc + o11[:, None] + co, g1 * wx1[:, None], mask=keep, sem="relaxed")


@triton.jit
def _store_flow_grad(grad_flow, b, y, x, sn, sc, sy, sx, gx, gy, live):
    """Writes the flow gradient (gx, gy) of each pixel, summed over channels."""
    at = grad_flow + b * sn + y * sy + x * sx
    tl.store(at, gx.to(grad_flow.dtype.element_ty), mask=live)
    tl.store(at + sc, gy.to(grad_flow.dtype.element_ty), mask=live)


# ------------------------------------------------------------------------------------------------ flow_warp


@triton.jit
def flow_warp_forward_kernel(
    img, flow, out,
    n_pixels, C, H, W,
    img_sn, img_sc, img_sy, img_sx,
    flow_sn, flow_sc, flow_sy, flow_sx,
    out_sn, out_sc, out_sy, out_sx,
    PADDING: tl.constexpr, NEAREST: tl.constexpr, ALIGN_CORNERS: tl.constexpr,
    ACC: tl.constexpr, INT64: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    offs, live, b, y, x, sample, corners = _prologue(
        flow, n_pixels, H, W, flow_sn, flow_sc, flow_sy, flow_sx, img_sn, img_sy, img_sx,
        PADDING, NEAREST, ALIGN_CORNERS, ACC, INT64, BLOCK_P,
    )  # fmt: skip
    o_out = b * out_sn + y * out_sy + x * out_sx
    for c0 in range(0, C, BLOCK_C):
        ch, cmask = _channels(c0, C, BLOCK_C, INT64)
        m2 = live[:, None] & cmask[None, :]
        value, _, _ = _read_sample(img, corners, ch * img_sc, m2, sample, NEAREST, ACC)
        tl.store(out + o_out[:, None] + (ch * out_sc)[None, :], value.to(out.dtype.element_ty), mask=m2)


@triton.jit
def flow_warp_backward_kernel(
    grad_out, img, flow, grad_img, grad_flow, keys, contrib,
    n_pixels, C, H, W, contrib_stride,
    grad_out_sn, grad_out_sc, grad_out_sy, grad_out_sx,
    img_sn, img_sc, img_sy, img_sx,
    flow_sn, flow_sc, flow_sy, flow_sx,
    grad_img_sn, grad_img_sc, grad_img_sy, grad_img_sx,
    grad_flow_sn, grad_flow_sc, grad_flow_sy, grad_flow_sx,
    NEED_IMG: tl.constexpr, NEED_FLOW: tl.constexpr, DETERMINISTIC: tl.constexpr,
    PADDING: tl.constexpr, NEAREST: tl.constexpr, ALIGN_CORNERS: tl.constexpr,
    ACC: tl.constexpr, INT64: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    offs, live, b, y, x, sample, corners = _prologue(
        flow, n_pixels, H, W, flow_sn, flow_sc, flow_sy, flow_sx, img_sn, img_sy, img_sx,
        PADDING, NEAREST, ALIGN_CORNERS, ACC, INT64, BLOCK_P,
    )  # fmt: skip
    grad_corners = _corner_offsets(b, grad_img_sn, grad_img_sy, grad_img_sx, sample)
    if NEED_IMG and DETERMINISTIC:
        _write_keys(keys, n_pixels, offs, live, b, H, W, sample)
    o_go = b * grad_out_sn + y * grad_out_sy + x * grad_out_sx
    gx = tl.zeros([BLOCK_P], dtype=ACC)
    gy = tl.zeros([BLOCK_P], dtype=ACC)
    for c0 in range(0, C, BLOCK_C):
        ch, cmask = _channels(c0, C, BLOCK_C, INT64)
        m2 = live[:, None] & cmask[None, :]
        g = tl.load(grad_out + o_go[:, None] + (ch * grad_out_sc)[None, :], mask=m2, other=0.0).to(ACC)
        if NEED_IMG:
            _scatter(grad_img, grad_img_sc, grad_corners, contrib, contrib_stride, offs, C, ch, g, sample, m2,
                     NEAREST, DETERMINISTIC)
        if NEED_FLOW and not NEAREST:  # nearest sampling has no flow gradient
            _, d_x, d_y = _read_sample(img, corners, ch * img_sc, m2, sample, NEAREST, ACC)
            keep = sample[0][:, None] & m2
            gx += tl.sum(tl.where(keep, g * d_x, 0.0), axis=1)
            gy += tl.sum(tl.where(keep, g * d_y, 0.0), axis=1)
    if NEED_FLOW:
        _store_flow_grad(grad_flow, b, y, x, grad_flow_sn, grad_flow_sc, grad_flow_sy, grad_flow_sx, gx, gy, live)


# ----------------------------------------------------------------------------------------------- warp_blend


@triton.jit
def warp_blend_forward_kernel(
    prev, flow, raw, weight, out,
    n_pixels, C, H, W,
    prev_sn, prev_sc, prev_sy, prev_sx,
    flow_sn, flow_sc, flow_sy, flow_sx,
    raw_sn, raw_sc, raw_sy, raw_sx,
    weight_sn, weight_sc, weight_sy, weight_sx,
    out_sn, out_sc, out_sy, out_sx,
    PADDING: tl.constexpr, NEAREST: tl.constexpr, ALIGN_CORNERS: tl.constexpr,
    ACC: tl.constexpr, INT64: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    offs, live, b, y, x, sample, corners = _prologue(
        flow, n_pixels, H, W, flow_sn, flow_sc, flow_sy, flow_sx, prev_sn, prev_sy, prev_sx,
        PADDING, NEAREST, ALIGN_CORNERS, ACC, INT64, BLOCK_P,
    )  # fmt: skip
    w = tl.load(weight + b * weight_sn + y * weight_sy + x * weight_sx, mask=live, other=0.0).to(ACC)[:, None]
    o_raw = b * raw_sn + y * raw_sy + x * raw_sx
    o_out = b * out_sn + y * out_sy + x * out_sx
    for c0 in range(0, C, BLOCK_C):
        ch, cmask = _channels(c0, C, BLOCK_C, INT64)
        m2 = live[:, None] & cmask[None, :]
        warped, _, _ = _read_sample(prev, corners, ch * prev_sc, m2, sample, NEAREST, ACC)
        r = tl.load(raw + o_raw[:, None] + (ch * raw_sc)[None, :], mask=m2, other=0.0).to(ACC)
        value = r * w + warped * (1.0 - w)
        tl.store(out + o_out[:, None] + (ch * out_sc)[None, :], value.to(out.dtype.element_ty), mask=m2)


@triton.jit
def warp_blend_backward_kernel(
    grad_out, prev, flow, raw, weight, grad_prev, grad_flow, grad_raw, grad_weight, keys, contrib,
    n_pixels, C, H, W, contrib_stride,
    grad_out_sn, grad_out_sc, grad_out_sy, grad_out_sx,
    prev_sn, prev_sc, prev_sy, prev_sx,
    flow_sn, flow_sc, flow_sy, flow_sx,
    raw_sn, raw_sc, raw_sy, raw_sx,
    weight_sn, weight_sc, weight_sy, weight_sx,
    grad_prev_sn, grad_prev_sc, grad_prev_sy, grad_prev_sx,
    grad_flow_sn, grad_flow_sc, grad_flow_sy, grad_flow_sx,
    grad_raw_sn, grad_raw_sc, grad_raw_sy, grad_raw_sx,
    grad_weight_sn, grad_weight_sc, grad_weight_sy, grad_weight_sx,
    NEED_PREV: tl.constexpr, NEED_FLOW: tl.constexpr, NEED_RAW: tl.constexpr, NEED_WEIGHT: tl.constexpr,
    DETERMINISTIC: tl.constexpr,
    PADDING: tl.constexpr, NEAREST: tl.constexpr, ALIGN_CORNERS: tl.constexpr,
    ACC: tl.constexpr, INT64: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """All four gradients in one pass over the pixels."""
    offs, live, b, y, x, sample, corners = _prologue(
        flow, n_pixels, H, W, flow_sn, flow_sc, flow_sy, flow_sx, prev_sn, prev_sy, prev_sx,
        PADDING, NEAREST, ALIGN_CORNERS, ACC, INT64, BLOCK_P,
    )  # fmt: skip
    grad_corners = _corner_offsets(b, grad_prev_sn, grad_prev_sy, grad_prev_sx, sample)
    if NEED_PREV and DETERMINISTIC:
        _write_keys(keys, n_pixels, offs, live, b, H, W, sample)
    w = tl.load(weight + b * weight_sn + y * weight_sy + x * weight_sx, mask=live, other=0.0).to(ACC)[:, None]
    o_go = b * grad_out_sn + y * grad_out_sy + x * grad_out_sx
    o_raw = b * raw_sn + y * raw_sy + x * raw_sx
    o_gr = b * grad_raw_sn + y * grad_raw_sy + x * grad_raw_sx
    gx = tl.zeros([BLOCK_P], dtype=ACC)
    gy = tl.zeros([BLOCK_P], dtype=ACC)
    gw = tl.zeros([BLOCK_P], dtype=ACC)
    for c0 in range(0, C, BLOCK_C):
        ch, cmask = _channels(c0, C, BLOCK_C, INT64)
        m2 = live[:, None] & cmask[None, :]
        g = tl.load(grad_out + o_go[:, None] + (ch * grad_out_sc)[None, :], mask=m2, other=0.0).to(ACC)
        if NEED_RAW:
            tl.store(grad_raw + o_gr[:, None] + (ch * grad_raw_sc)[None, :], (g * w).to(grad_raw.dtype.element_ty),
                     mask=m2)
        g_prev = g * (1.0 - w)
        if NEED_PREV:
            _scatter(grad_prev, grad_prev_sc, grad_corners, contrib, contrib_stride, offs, C, ch, g_prev, sample, m2,
                     NEAREST, DETERMINISTIC)
        if NEED_FLOW or NEED_WEIGHT:
            warped, d_x, d_y = _read_sample(prev, corners, ch * prev_sc, m2, sample, NEAREST, ACC)
            keep = sample[0][:, None] & m2
            gx += tl.sum(tl.where(keep, g_prev * d_x, 0.0), axis=1)
            gy += tl.sum(tl.where(keep, g_prev * d_y, 0.0), axis=1)
            r = tl.load(raw + o_raw[:, None] + (ch * raw_sc)[None, :], mask=m2, other=0.0).to(ACC)
            gw += tl.sum(tl.where(m2, g * (r - warped), 0.0), axis=1)
    if NEED_FLOW:
        _store_flow_grad(grad_flow, b, y, x, grad_flow_sn, grad_flow_sc, grad_flow_sy, grad_flow_sx, gx, gy, live)
    if NEED_WEIGHT:
        tl.store(grad_weight + b * grad_weight_sn + y * grad_weight_sy + x * grad_weight_sx,
                 gw.to(grad_weight.dtype.element_ty), mask=live)


# ------------------------------------------------------------------------------------------- masked_warp_l1


@triton.jit
def masked_warp_l1_forward_kernel(
    src, flow, target, mask, partials,
    n_pixels, C, H, W,
    src_sn, src_sc, src_sy, src_sx,
    flow_sn, flow_sc, flow_sy, flow_sx,
    target_sn, target_sc, target_sy, target_sx,
    mask_sn, mask_sc, mask_sy, mask_sx,
    PADDING: tl.constexpr, NEAREST: tl.constexpr, ALIGN_CORNERS: tl.constexpr,
    ACC: tl.constexpr, INT64: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """Each program sums |warped * m - t * m| over its tile into partials[program]: no atomics, so the
    loss is reproducible; the host adds the partials."""
    offs, live, b, y, x, sample, corners = _prologue(
        flow, n_pixels, H, W, flow_sn, flow_sc, flow_sy, flow_sx, src_sn, src_sy, src_sx,
        PADDING, NEAREST, ALIGN_CORNERS, ACC, INT64, BLOCK_P,
    )  # fmt: skip
    o_t = b * target_sn + y * target_sy + x * target_sx
    o_m = b * mask_sn + y * mask_sy + x * mask_sx
    total = tl.zeros([BLOCK_P, BLOCK_C], dtype=ACC)
    for c0 in range(0, C, BLOCK_C):
        ch, cmask = _channels(c0, C, BLOCK_C, INT64)
        m2 = live[:, None] & cmask[None, :]
        warped, _, _ = _read_sample(src, corners, ch * src_sc, m2, sample, NEAREST, ACC)
        m = tl.load(mask + o_m[:, None] + (ch * mask_sc)[None, :], mask=m2, other=0.0).to(ACC)
        t = tl.load(target + o_t[:, None] + (ch * target_sc)[None, :], mask=m2, other=0.0).to(ACC)
        total += tl.where(m2, tl.abs(warped * m - t * m), 0.0)
    tl.store(partials + tl.program_id(0), tl.sum(tl.sum(total, axis=1), axis=0))


@triton.jit
def masked_warp_l1_backward_kernel(
    scale, src, flow, target, mask, grad_src, grad_flow, grad_target, grad_mask, keys, contrib,
    n_pixels, C, H, W, contrib_stride,
    src_sn, src_sc, src_sy, src_sx,
    flow_sn, flow_sc, flow_sy, flow_sx,
    target_sn, target_sc, target_sy, target_sx,
    mask_sn, mask_sc, mask_sy, mask_sx,
    grad_src_sn, grad_src_sc, grad_src_sy, grad_src_sx,
    grad_flow_sn, grad_flow_sc, grad_flow_sy, grad_flow_sx,
    grad_target_sn, grad_target_sc, grad_target_sy, grad_target_sx,
    grad_mask_sn, grad_mask_sc, grad_mask_sy, grad_mask_sx,
    NEED_SRC: tl.constexpr, NEED_FLOW: tl.constexpr, NEED_TARGET: tl.constexpr, NEED_MASK: tl.constexpr,
    MASK_PER_CHANNEL: tl.constexpr, DETERMINISTIC: tl.constexpr,
    PADDING: tl.constexpr, NEAREST: tl.constexpr, ALIGN_CORNERS: tl.constexpr,
    ACC: tl.constexpr, INT64: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """scale points at d(loss)/d(sum) = grad_loss / numel, computed on the device (no host sync)."""
    offs, live, b, y, x, sample, corners = _prologue(
        flow, n_pixels, H, W, flow_sn, flow_sc, flow_sy, flow_sx, src_sn, src_sy, src_sx,
        PADDING, NEAREST, ALIGN_CORNERS, ACC, INT64, BLOCK_P,
    )  # fmt: skip
    grad_corners = _corner_offsets(b, grad_src_sn, grad_src_sy, grad_src_sx, sample)
    if NEED_SRC and DETERMINISTIC:
        _write_keys(keys, n_pixels, offs, live, b, H, W, sample)
    s = tl.load(scale).to(ACC)
    o_t = b * target_sn + y * target_sy + x * target_sx
    o_m = b * mask_sn + y * mask_sy + x * mask_sx
    o_gt = b * grad_target_sn + y * grad_target_sy + x * grad_target_sx
    o_gm = b * grad_mask_sn + y * grad_mask_sy + x * grad_mask_sx
    gx = tl.zeros([BLOCK_P], dtype=ACC)
    gy = tl.zeros([BLOCK_P], dtype=ACC)
    gm_sum = tl.zeros([BLOCK_P], dtype=ACC)
    for c0 in range(0, C, BLOCK_C):
        ch, cmask = _channels(c0, C, BLOCK_C, INT64)
        m2 = live[:, None] & cmask[None, :]
        keep = sample[0][:, None] & m2
        warped, d_x, d_y = _read_sample(src, corners, ch * src_sc, m2, sample, NEAREST, ACC)
        m = tl.load(mask + o_m[:, None] + (ch * mask_sc)[None, :], mask=m2, other=0.0).to(ACC)
        t = tl.load(target + o_t[:, None] + (ch * target_sc)[None, :], mask=m2, other=0.0).to(ACC)
        d = warped * m - t * m
        # torch.sign semantics (NaN -> 0), so the gradient matches autograd through abs().
        sg = (tl.where(d > 0.0, 1.0, 0.0) - tl.where(d < 0.0, 1.0, 0.0)) * s
        if NEED_TARGET:
            tl.store(grad_target + o_gt[:, None] + (ch * grad_target_sc)[None, :],
                     (-sg * m).to(grad_target.dtype.element_ty), mask=m2)
        if NEED_MASK:
            v = sg * (warped - t)
            if MASK_PER_CHANNEL:
                tl.store(grad_mask + o_gm[:, None] + (ch * grad_mask_sc)[None, :], v.to(grad_mask.dtype.element_ty),
                         mask=m2)
            else:
                gm_sum += tl.sum(tl.where(m2, v, 0.0), axis=1)
        if NEED_SRC:
            _scatter(grad_src, grad_src_sc, grad_corners, contrib, contrib_stride, offs, C, ch, sg * m, sample, m2,
                     NEAREST, DETERMINISTIC)
        if NEED_FLOW:
            gx += tl.sum(tl.where(keep, sg * m * d_x, 0.0), axis=1)
            gy += tl.sum(tl.where(keep, sg * m * d_y, 0.0), axis=1)
    if NEED_FLOW:
        _store_flow_grad(grad_flow, b, y, x, grad_flow_sn, grad_flow_sc, grad_flow_sy, grad_flow_sx, gx, gy, live)
    if NEED_MASK and not MASK_PER_CHANNEL:
        tl.store(grad_mask + o_gm, gm_sum.to(grad_mask.dtype.element_ty), mask=live)


# ---------------------------------------------------------------------------- deterministic image gradient


@triton.jit
def gather_sum_kernel(
    acc, order, starts, ends, contrib,
    n_pixels, C, H, W,
    acc_sn, acc_sc, acc_sy, acc_sx,
    INT64: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """Deterministic mode, second step: image pixel q is the sum of the contributions order[starts[q]:ends[q]]
    (the entries whose key is q, in a stable sort of the keys), added in that fixed order."""
    offs, live, b, y, x = _pixel_block(n_pixels, H, W, BLOCK_P, INT64)
    first = tl.load(starts + offs, mask=live, other=0)
    end = tl.load(ends + offs, mask=live, other=0)
    longest = tl.max(end - first, axis=0)
    o_acc = b * acc_sn + y * acc_sy + x * acc_sx
    for c0 in range(0, C, BLOCK_C):
        ch, cmask = _channels(c0, C, BLOCK_C, INT64)
        m2 = live[:, None] & cmask[None, :]
        total = tl.zeros([BLOCK_P, BLOCK_C], dtype=acc.dtype.element_ty)
        for j in range(0, longest):
            here = live & (first + j < end)
            entry = tl.load(order + first + j, mask=here, other=0)
            total += tl.load(contrib + entry[:, None] * C + ch[None, :], mask=here[:, None] & m2, other=0.0)
        tl.store(acc + o_acc[:, None] + (ch * acc_sc)[None, :], total, mask=m2)
