"""Triton kernels for flow_warp, warp_blend and masked_warp_l1, forward and backward.

The arithmetic mirrors csrc/warp_math.h (the CPU and CUDA kernels), so every backend samples alike.

Each program owns BLOCK_P output pixels (flattened over B, H, W) and walks the channels in tiles of
BLOCK_C: the bilinear sample (corner indices and weights) is computed once per pixel and reused for
every channel. Any strides work (channels_last included): a tile is [pixels, channels], so whichever
of the two is contiguous in memory is the coalesced one. A tensor with one channel that broadcasts
over the image's channels (weight, a B x 1 mask) has channel stride 0.

Image gradients are scattered: with float atomics into an fp32 (fp64) buffer, or, in deterministic
mode, as four per-corner contributions with their target pixel ("keys") that gather_sum_kernel then
adds in a fixed order. Every other gradient is gathered per pixel and needs no atomics.

Sizes equal to 1 are specialised into constants by the JIT (and so are strides of 1), so no integer
argument is ever used as a tensor (`.to(...)`) here: tests/ops/test_triton_aot.py compiles every
variant for sm_80 and sm_90 to keep it that way.
"""

import triton
import triton.language as tl


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
def _axis(pos, size, ZEROS: tl.constexpr):
    """One axis of a bilinear sample at position pos (never NaN) in [0, size - 1]: the two corner indices
    (always inside the image), their weights and the derivatives of the weights by the position."""
    last = (size - 1) * 1.0  # a float whether size is a runtime value or the constant 1
    if ZEROS:
        # More than one pixel outside touches nothing, so clamping to [-2, size + 1] changes nothing but
        # keeps the float-to-int conversion defined for huge or infinite positions.
        p = tl.where(pos < -2.0, -2.0, tl.where(pos > last + 2.0, last + 2.0, pos))
        i0 = p.to(tl.int32)
        i0 = i0 - (i0.to(p.dtype) > p).to(tl.int32)  # floor
        f0 = i0.to(p.dtype)
        t = p - f0
        in0 = tl.where((f0 >= 0.0) & (f0 <= last), 1.0, 0.0)
        in1 = tl.where((f0 >= -1.0) & (f0 <= last - 1.0), 1.0, 0.0)
        i1 = tl.minimum(tl.maximum(i0 + 1, 0), size - 1)
        i0 = tl.minimum(tl.maximum(i0, 0), size - 1)
        w0 = in0 * (1.0 - t)
        w1 = in1 * t
        d0 = -in0
        d1 = in1
    else:
        # Border: clip the position (comparisons, so that ±Inf clips too); no derivative where clipped.
        gate = tl.where((pos > 0.0) & (pos < last), 1.0, 0.0)
        p = tl.where(pos > last, last, tl.where(pos < 0.0, 0.0, pos))
        i0 = p.to(tl.int32)  # p >= 0: truncation is floor
        t = p - i0.to(p.dtype)
        i1 = tl.minimum(i0 + 1, size - 1)
        w0 = 1.0 - t
        w1 = t
        d0 = -gate
        d1 = gate
    return i0, i1, w0, w1, d0, d1


@triton.jit
def _sample(flow, b, y, x, live, flow_sn, flow_sc, flow_sy, flow_sx, H, W, ZEROS: tl.constexpr, ACC: tl.constexpr):
    """The bilinear sample of each pixel displaced by its flow. ok is False where a flow component is NaN:
    such a pixel samples at offset 0 (so its indices stay valid) and its result is discarded."""
    f = flow + b * flow_sn + y * flow_sy + x * flow_sx
    dx = tl.load(f, mask=live, other=0.0).to(ACC)
    dy = tl.load(f + flow_sc, mask=live, other=0.0).to(ACC)
    ok = (dx == dx) & (dy == dy)
    px = x.to(ACC) + tl.where(ok, dx, 0.0)
    py = y.to(ACC) + tl.where(ok, dy, 0.0)
    x0, x1, wx0, wx1, ex0, ex1 = _axis(px, W, ZEROS)
    y0, y1, wy0, wy1, ey0, ey1 = _axis(py, H, ZEROS)
    return ok, x0.to(b.dtype), x1.to(b.dtype), y0.to(b.dtype), y1.to(b.dtype), wx0, wx1, ex0, ex1, wy0, wy1, ey0, ey1


@triton.jit
def _corner_offsets(b, sn, sy, sx, x0, x1, y0, y1):
    """Offsets of the four corners (o{row}{column}) in a tensor of strides (sn, ., sy, sx)."""
    r0 = b * sn + y0 * sy
    r1 = b * sn + y1 * sy
    c0 = x0 * sx
    c1 = x1 * sx
    return r0 + c0, r0 + c1, r1 + c0, r1 + c1


@triton.jit
def _read_sample(ptr, o00, o01, o10, o11, co, m2, ok, wx0, wx1, ex0, ex1, wy0, wy1, ey0, ey1, ACC: tl.constexpr):
    """The sampled value of channels co (NaN where the flow is not ok) and its derivatives by the x and y
    positions; a kernel that needs only some of them leaves the rest to the compiler to drop."""
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
def _write_keys(keys, n_pixels, offs, live, b, H, W, x0, x1, y0, y1):
    """Deterministic mode: the flat image pixel each of the four corner contributions goes to."""
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
def _scatter(acc, acc_sc, o00, o01, o10, o11, contrib, contrib_stride, offs, C, ch, g, ok, m2,
             wx0, wx1, wy0, wy1, DETERMINISTIC: tl.constexpr):
    """Sends gradient g [pixels, channels] to the four corners: atomics into acc, or (deterministic)
    per-corner contributions into contrib, laid out (4, pixels, C), for gather_sum_kernel."""
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
        tl.atomic_add(acc + o00[:, None] + co, g0 * wx0[:, None], mask=keep, sem="relaxed")
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
    ZEROS: tl.constexpr, ACC: tl.constexpr, INT64: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    offs, live, b, y, x = _pixel_block(n_pixels, H, W, BLOCK_P, INT64)
    ok, x0, x1, y0, y1, wx0, wx1, ex0, ex1, wy0, wy1, ey0, ey1 = _sample(
        flow, b, y, x, live, flow_sn, flow_sc, flow_sy, flow_sx, H, W, ZEROS, ACC
    )
    o00, o01, o10, o11 = _corner_offsets(b, img_sn, img_sy, img_sx, x0, x1, y0, y1)
    o_out = b * out_sn + y * out_sy + x * out_sx
    for c0 in range(0, C, BLOCK_C):
        ch, cmask = _channels(c0, C, BLOCK_C, INT64)
        m2 = live[:, None] & cmask[None, :]
        value, _, _ = _read_sample(img, o00, o01, o10, o11, ch * img_sc, m2, ok,
                                   wx0, wx1, ex0, ex1, wy0, wy1, ey0, ey1, ACC)
        tl.store(out + o_out[:, None] + (ch * out_sc)[None, :], value.to(out.dtype.element_ty), mask=m2)


@triton.jit
def flow_warp_backward_kernel(
    grad_out, img, flow, grad_img, grad_flow, keys, contrib,
    n_pixels, C, H, W, contrib_stride,
    go_sn, go_sc, go_sy, go_sx,
    img_sn, img_sc, img_sy, img_sx,
    flow_sn, flow_sc, flow_sy, flow_sx,
    gi_sn, gi_sc, gi_sy, gi_sx,
    gf_sn, gf_sc, gf_sy, gf_sx,
    NEED_IMG: tl.constexpr, NEED_FLOW: tl.constexpr, DETERMINISTIC: tl.constexpr,
    ZEROS: tl.constexpr, ACC: tl.constexpr, INT64: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    offs, live, b, y, x = _pixel_block(n_pixels, H, W, BLOCK_P, INT64)
    ok, x0, x1, y0, y1, wx0, wx1, ex0, ex1, wy0, wy1, ey0, ey1 = _sample(
        flow, b, y, x, live, flow_sn, flow_sc, flow_sy, flow_sx, H, W, ZEROS, ACC
    )
    o00, o01, o10, o11 = _corner_offsets(b, img_sn, img_sy, img_sx, x0, x1, y0, y1)
    g00, g01, g10, g11 = _corner_offsets(b, gi_sn, gi_sy, gi_sx, x0, x1, y0, y1)
    if NEED_IMG and DETERMINISTIC:
        _write_keys(keys, n_pixels, offs, live, b, H, W, x0, x1, y0, y1)
    o_go = b * go_sn + y * go_sy + x * go_sx
    gx = tl.zeros([BLOCK_P], dtype=ACC)
    gy = tl.zeros([BLOCK_P], dtype=ACC)
    for c0 in range(0, C, BLOCK_C):
        ch, cmask = _channels(c0, C, BLOCK_C, INT64)
        m2 = live[:, None] & cmask[None, :]
        g = tl.load(grad_out + o_go[:, None] + (ch * go_sc)[None, :], mask=m2, other=0.0).to(ACC)
        if NEED_IMG:
            _scatter(grad_img, gi_sc, g00, g01, g10, g11, contrib, contrib_stride, offs, C, ch, g, ok, m2,
                     wx0, wx1, wy0, wy1, DETERMINISTIC)
        if NEED_FLOW:
            _, d_x, d_y = _read_sample(img, o00, o01, o10, o11, ch * img_sc, m2, ok,
                                       wx0, wx1, ex0, ex1, wy0, wy1, ey0, ey1, ACC)
            keep = ok[:, None] & m2
            gx += tl.sum(tl.where(keep, g * d_x, 0.0), axis=1)
            gy += tl.sum(tl.where(keep, g * d_y, 0.0), axis=1)
    if NEED_FLOW:
        _store_flow_grad(grad_flow, b, y, x, gf_sn, gf_sc, gf_sy, gf_sx, gx, gy, live)


# ----------------------------------------------------------------------------------------------- warp_blend


@triton.jit
def warp_blend_forward_kernel(
    prev, flow, raw, weight, out,
    n_pixels, C, H, W,
    prev_sn, prev_sc, prev_sy, prev_sx,
    flow_sn, flow_sc, flow_sy, flow_sx,
    raw_sn, raw_sc, raw_sy, raw_sx,
    w_sn, w_sy, w_sx,
    out_sn, out_sc, out_sy, out_sx,
    ZEROS: tl.constexpr, ACC: tl.constexpr, INT64: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    offs, live, b, y, x = _pixel_block(n_pixels, H, W, BLOCK_P, INT64)
    ok, x0, x1, y0, y1, wx0, wx1, ex0, ex1, wy0, wy1, ey0, ey1 = _sample(
        flow, b, y, x, live, flow_sn, flow_sc, flow_sy, flow_sx, H, W, ZEROS, ACC
    )
    o00, o01, o10, o11 = _corner_offsets(b, prev_sn, prev_sy, prev_sx, x0, x1, y0, y1)
    w = tl.load(weight + b * w_sn + y * w_sy + x * w_sx, mask=live, other=0.0).to(ACC)[:, None]
    o_raw = b * raw_sn + y * raw_sy + x * raw_sx
    o_out = b * out_sn + y * out_sy + x * out_sx
    for c0 in range(0, C, BLOCK_C):
        ch, cmask = _channels(c0, C, BLOCK_C, INT64)
        m2 = live[:, None] & cmask[None, :]
        warped, _, _ = _read_sample(prev, o00, o01, o10, o11, ch * prev_sc, m2, ok,
                                    wx0, wx1, ex0, ex1, wy0, wy1, ey0, ey1, ACC)
        r = tl.load(raw + o_raw[:, None] + (ch * raw_sc)[None, :], mask=m2, other=0.0).to(ACC)
        value = r * w + warped * (1.0 - w)
        tl.store(out + o_out[:, None] + (ch * out_sc)[None, :], value.to(out.dtype.element_ty), mask=m2)


@triton.jit
def warp_blend_backward_kernel(
    grad_out, prev, flow, raw, weight, grad_prev, grad_flow, grad_raw, grad_weight, keys, contrib,
    n_pixels, C, H, W, contrib_stride,
    go_sn, go_sc, go_sy, go_sx,
    prev_sn, prev_sc, prev_sy, prev_sx,
    flow_sn, flow_sc, flow_sy, flow_sx,
    raw_sn, raw_sc, raw_sy, raw_sx,
    w_sn, w_sy, w_sx,
    gp_sn, gp_sc, gp_sy, gp_sx,
    gf_sn, gf_sc, gf_sy, gf_sx,
    gr_sn, gr_sc, gr_sy, gr_sx,
    gw_sn, gw_sy, gw_sx,
    NEED_PREV: tl.constexpr, NEED_FLOW: tl.constexpr, NEED_RAW: tl.constexpr, NEED_WEIGHT: tl.constexpr,
    DETERMINISTIC: tl.constexpr,
    ZEROS: tl.constexpr, ACC: tl.constexpr, INT64: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """All four gradients in one pass over the pixels."""
    offs, live, b, y, x = _pixel_block(n_pixels, H, W, BLOCK_P, INT64)
    ok, x0, x1, y0, y1, wx0, wx1, ex0, ex1, wy0, wy1, ey0, ey1 = _sample(
        flow, b, y, x, live, flow_sn, flow_sc, flow_sy, flow_sx, H, W, ZEROS, ACC
    )
    o00, o01, o10, o11 = _corner_offsets(b, prev_sn, prev_sy, prev_sx, x0, x1, y0, y1)
    g00, g01, g10, g11 = _corner_offsets(b, gp_sn, gp_sy, gp_sx, x0, x1, y0, y1)
    if NEED_PREV and DETERMINISTIC:
        _write_keys(keys, n_pixels, offs, live, b, H, W, x0, x1, y0, y1)
    w = tl.load(weight + b * w_sn + y * w_sy + x * w_sx, mask=live, other=0.0).to(ACC)[:, None]
    o_go = b * go_sn + y * go_sy + x * go_sx
    o_raw = b * raw_sn + y * raw_sy + x * raw_sx
    o_gr = b * gr_sn + y * gr_sy + x * gr_sx
    gx = tl.zeros([BLOCK_P], dtype=ACC)
    gy = tl.zeros([BLOCK_P], dtype=ACC)
    gw = tl.zeros([BLOCK_P], dtype=ACC)
    for c0 in range(0, C, BLOCK_C):
        ch, cmask = _channels(c0, C, BLOCK_C, INT64)
        m2 = live[:, None] & cmask[None, :]
        g = tl.load(grad_out + o_go[:, None] + (ch * go_sc)[None, :], mask=m2, other=0.0).to(ACC)
        if NEED_RAW:
            tl.store(grad_raw + o_gr[:, None] + (ch * gr_sc)[None, :], (g * w).to(grad_raw.dtype.element_ty), mask=m2)
        g_prev = g * (1.0 - w)
        if NEED_PREV:
            _scatter(grad_prev, gp_sc, g00, g01, g10, g11, contrib, contrib_stride, offs, C, ch, g_prev, ok, m2,
                     wx0, wx1, wy0, wy1, DETERMINISTIC)
        if NEED_FLOW or NEED_WEIGHT:
            warped, d_x, d_y = _read_sample(prev, o00, o01, o10, o11, ch * prev_sc, m2, ok,
                                            wx0, wx1, ex0, ex1, wy0, wy1, ey0, ey1, ACC)
            keep = ok[:, None] & m2
            gx += tl.sum(tl.where(keep, g_prev * d_x, 0.0), axis=1)
            gy += tl.sum(tl.where(keep, g_prev * d_y, 0.0), axis=1)
            r = tl.load(raw + o_raw[:, None] + (ch * raw_sc)[None, :], mask=m2, other=0.0).to(ACC)
            gw += tl.sum(tl.where(m2, g * (r - warped), 0.0), axis=1)
    if NEED_FLOW:
        _store_flow_grad(grad_flow, b, y, x, gf_sn, gf_sc, gf_sy, gf_sx, gx, gy, live)
    if NEED_WEIGHT:
        tl.store(grad_weight + b * gw_sn + y * gw_sy + x * gw_sx, gw.to(grad_weight.dtype.element_ty), mask=live)


# ------------------------------------------------------------------------------------------- masked_warp_l1


@triton.jit
def masked_warp_l1_forward_kernel(
    src, flow, target, mask, partials,
    n_pixels, C, H, W,
    src_sn, src_sc, src_sy, src_sx,
    flow_sn, flow_sc, flow_sy, flow_sx,
    t_sn, t_sc, t_sy, t_sx,
    m_sn, m_sc, m_sy, m_sx,
    ZEROS: tl.constexpr, ACC: tl.constexpr, INT64: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """Each program sums |warped * m - t * m| over its tile into partials[program]: no atomics, so the
    loss is reproducible; the host adds the partials."""
    offs, live, b, y, x = _pixel_block(n_pixels, H, W, BLOCK_P, INT64)
    ok, x0, x1, y0, y1, wx0, wx1, ex0, ex1, wy0, wy1, ey0, ey1 = _sample(
        flow, b, y, x, live, flow_sn, flow_sc, flow_sy, flow_sx, H, W, ZEROS, ACC
    )
    o00, o01, o10, o11 = _corner_offsets(b, src_sn, src_sy, src_sx, x0, x1, y0, y1)
    o_t = b * t_sn + y * t_sy + x * t_sx
    o_m = b * m_sn + y * m_sy + x * m_sx
    total = tl.zeros([BLOCK_P, BLOCK_C], dtype=ACC)
    for c0 in range(0, C, BLOCK_C):
        ch, cmask = _channels(c0, C, BLOCK_C, INT64)
        m2 = live[:, None] & cmask[None, :]
        warped, _, _ = _read_sample(src, o00, o01, o10, o11, ch * src_sc, m2, ok,
                                    wx0, wx1, ex0, ex1, wy0, wy1, ey0, ey1, ACC)
        m = tl.load(mask + o_m[:, None] + (ch * m_sc)[None, :], mask=m2, other=0.0).to(ACC)
        t = tl.load(target + o_t[:, None] + (ch * t_sc)[None, :], mask=m2, other=0.0).to(ACC)
        total += tl.where(m2, tl.abs(warped * m - t * m), 0.0)
    tl.store(partials + tl.program_id(0), tl.sum(tl.sum(total, axis=1), axis=0))


@triton.jit
def masked_warp_l1_backward_kernel(
    scale, src, flow, target, mask, grad_src, grad_flow, grad_target, grad_mask, keys, contrib,
    n_pixels, C, H, W, contrib_stride,
    src_sn, src_sc, src_sy, src_sx,
    flow_sn, flow_sc, flow_sy, flow_sx,
    t_sn, t_sc, t_sy, t_sx,
    m_sn, m_sc, m_sy, m_sx,
    gs_sn, gs_sc, gs_sy, gs_sx,
    gf_sn, gf_sc, gf_sy, gf_sx,
    gt_sn, gt_sc, gt_sy, gt_sx,
    gm_sn, gm_sc, gm_sy, gm_sx,
    NEED_SRC: tl.constexpr, NEED_FLOW: tl.constexpr, NEED_TARGET: tl.constexpr, NEED_MASK: tl.constexpr,
    MASK_PER_CHANNEL: tl.constexpr, DETERMINISTIC: tl.constexpr,
    ZEROS: tl.constexpr, ACC: tl.constexpr, INT64: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """scale points at d(loss)/d(sum) = grad_loss / numel, computed on the device (no host sync)."""
    offs, live, b, y, x = _pixel_block(n_pixels, H, W, BLOCK_P, INT64)
    ok, x0, x1, y0, y1, wx0, wx1, ex0, ex1, wy0, wy1, ey0, ey1 = _sample(
        flow, b, y, x, live, flow_sn, flow_sc, flow_sy, flow_sx, H, W, ZEROS, ACC
    )
    o00, o01, o10, o11 = _corner_offsets(b, src_sn, src_sy, src_sx, x0, x1, y0, y1)
    g00, g01, g10, g11 = _corner_offsets(b, gs_sn, gs_sy, gs_sx, x0, x1, y0, y1)
    if NEED_SRC and DETERMINISTIC:
        _write_keys(keys, n_pixels, offs, live, b, H, W, x0, x1, y0, y1)
    s = tl.load(scale).to(ACC)
    o_t = b * t_sn + y * t_sy + x * t_sx
    o_m = b * m_sn + y * m_sy + x * m_sx
    o_gt = b * gt_sn + y * gt_sy + x * gt_sx
    o_gm = b * gm_sn + y * gm_sy + x * gm_sx
    gx = tl.zeros([BLOCK_P], dtype=ACC)
    gy = tl.zeros([BLOCK_P], dtype=ACC)
    gm_sum = tl.zeros([BLOCK_P], dtype=ACC)
    for c0 in range(0, C, BLOCK_C):
        ch, cmask = _channels(c0, C, BLOCK_C, INT64)
        m2 = live[:, None] & cmask[None, :]
        keep = ok[:, None] & m2
        warped, d_x, d_y = _read_sample(src, o00, o01, o10, o11, ch * src_sc, m2, ok,
                                        wx0, wx1, ex0, ex1, wy0, wy1, ey0, ey1, ACC)
        m = tl.load(mask + o_m[:, None] + (ch * m_sc)[None, :], mask=m2, other=0.0).to(ACC)
        t = tl.load(target + o_t[:, None] + (ch * t_sc)[None, :], mask=m2, other=0.0).to(ACC)
        d = warped * m - t * m
        # torch.sign semantics (NaN -> 0), so the gradient matches autograd through abs().
        sg = (tl.where(d > 0.0, 1.0, 0.0) - tl.where(d < 0.0, 1.0, 0.0)) * s
        if NEED_TARGET:
            tl.store(grad_target + o_gt[:, None] + (ch * gt_sc)[None, :], (-sg * m).to(grad_target.dtype.element_ty),
                     mask=m2)
        if NEED_MASK:
            v = sg * (warped - t)
            if MASK_PER_CHANNEL:
                tl.store(grad_mask + o_gm[:, None] + (ch * gm_sc)[None, :], v.to(grad_mask.dtype.element_ty), mask=m2)
            else:
                gm_sum += tl.sum(tl.where(m2, v, 0.0), axis=1)
        if NEED_SRC:
            _scatter(grad_src, gs_sc, g00, g01, g10, g11, contrib, contrib_stride, offs, C, ch, sg * m, ok, m2,
                     wx0, wx1, wy0, wy1, DETERMINISTIC)
        if NEED_FLOW:
            gx += tl.sum(tl.where(keep, sg * m * d_x, 0.0), axis=1)
            gy += tl.sum(tl.where(keep, sg * m * d_y, 0.0), axis=1)
    if NEED_FLOW:
        _store_flow_grad(grad_flow, b, y, x, gf_sn, gf_sc, gf_sy, gf_sx, gx, gy, live)
    if NEED_MASK and not MASK_PER_CHANNEL:
        tl.store(grad_mask + o_gm, gm_sum.to(grad_mask.dtype.element_ty), mask=live)


# ---------------------------------------------------------------------------- deterministic image gradient


@triton.jit
def gather_sum_kernel(
    acc, order, starts, ends, contrib,
    n_pixels, C, H, W,
    a_sn, a_sc, a_sy, a_sx,
    INT64: tl.constexpr, BLOCK_P: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """Deterministic mode, second step: image pixel q is the sum of the contributions order[starts[q]:ends[q]]
    (the entries whose key is q, in a stable sort of the keys), added in that fixed order."""
    offs, live, b, y, x = _pixel_block(n_pixels, H, W, BLOCK_P, INT64)
    first = tl.load(starts + offs, mask=live, other=0)
    end = tl.load(ends + offs, mask=live, other=0)
    longest = tl.max(end - first, axis=0)
    o_acc = b * a_sn + y * a_sy + x * a_sx
    for c0 in range(0, C, BLOCK_C):
        ch, cmask = _channels(c0, C, BLOCK_C, INT64)
        m2 = live[:, None] & cmask[None, :]
        total = tl.zeros([BLOCK_P, BLOCK_C], dtype=acc.dtype.element_ty)
        for j in range(0, longest):
            here = live & (first + j < end)
            entry = tl.load(order + first + j, mask=here, other=0)
            total += tl.load(contrib + entry[:, None] * C + ch[None, :], mask=here[:, None] & m2, other=0.0)
        tl.store(acc + o_acc[:, None] + (ch * a_sc)[None, :], total, mask=m2)
