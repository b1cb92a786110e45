"""Every Triton kernel compiled ahead of time for sm_80 and sm_90, no GPU needed: the interpreter accepts
code that the GPU compiler rejects (an integer argument equal to 1 becomes a constant, DESIGN.md §6).

The argument sets are the launchers' own (the plan_* functions of launch.py), built on meta tensors, and
each is turned into the signature the JIT would specialise it to: integers equal to 1 become constants,
integers past int32 become i64, multiples of 16 get a divisibility hint.
"""

import pytest
import torch

from vid2vid_fast.ops.backends import TRITON_IMPORTABLE, TRITON_INTERPRETED
from vid2vid_fast.ops.spec import ALL_SAMPLINGS

pytestmark = [
    pytest.mark.skipif(not TRITON_IMPORTABLE, reason="triton is not installed"),
    pytest.mark.skipif(TRITON_INTERPRETED, reason="under TRITON_INTERPRET=1 the kernels are not compilable"),
]

ARCHS = [80, 90]
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
POINTER_TYPES = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16", torch.float64: "fp64",
                 torch.int64: "i64", torch.int32: "i32"}


def jit_signature(kernel, args):
    """(signature, constexprs, attrs) for triton.compiler.ASTSource, as the JIT specialises `args`."""
    signature, constexprs, attrs = {}, {}, {}
    for i, param in enumerate(kernel.params):
        value = args[param.name]
        if param.is_constexpr or (type(value) is int and value == 1):
            signature[param.name] = "constexpr"
            constexprs[param.name] = value
        elif isinstance(value, torch.Tensor):
            signature[param.name] = "*" + POINTER_TYPES[value.dtype]
            attrs[(i,)] = [["tt.divisibility", 16]]
        elif type(value) is bool:
            signature[param.name] = "i1"
        elif type(value) is int:
            signature[param.name] = "i32" if -(2**31) <= value < 2**31 else "i64"
            if value % 16 == 0:
                attrs[(i,)] = [["tt.divisibility", 16]]
        else:
            raise TypeError(f"{kernel.fn.__name__}: unexpected argument {param.name}={value!r}")
    return signature, constexprs, attrs


def meta(shape, dtype, layout="contiguous", int64=False):
    if int64:
        b, c, h, w = shape  # a batch stride past int32: the kernels must switch to 64-bit offsets
        return torch.empty_strided(shape, (2**31 + 16, h * w, w, 1), dtype=dtype, device="meta")
    t = torch.empty(shape, dtype=dtype, device="meta")
    return t.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else t


def plans(dtype, shape, layout="contiguous", sampling=("border", "bilinear", True), deterministic=False,
          masks=(True,) * 4, int64=False, mask_channels=1):
    """Every launch the three ops make, forward and backward, for one configuration. sampling: the ops'
    (padding_mode, mode, align_corners)."""
    from vid2vid_fast.ops.triton import launch

    b, c, h, w = shape
    options = launch.sampling_constexprs(*sampling)

    def image():
        return meta(shape, dtype, layout, int64)

    def plane(channels):
        return meta((b, channels, h, w), dtype, layout)

    def grad(needed, like):
        return torch.empty_like(like) if needed else None

    img, flow, other, weight = image(), plane(2), image(), plane(1)
    mask = plane(mask_channels)
    out = torch.empty_like(img)
    grad_out = torch.empty_like(img)
    n = b * h * w
    image_grad = launch._ImageGrad(img, masks[0], deterministic)
    result = [
        launch.plan_flow_warp_forward(img, flow, out, options),
        launch.plan_flow_warp_backward(grad_out, img, flow, image_grad, grad(masks[1], flow), options),
        launch.plan_warp_blend_forward(img, flow, other, weight, out, options),
        launch.plan_warp_blend_backward(grad_out, img, flow, other, weight, image_grad, grad(masks[1], flow),
                                        grad(masks[2], other), grad(masks[3], weight), options),
        launch.plan_masked_warp_l1_forward(img, flow, other, mask, launch.masked_warp_l1_partials(img, n), options),
        launch.plan_masked_warp_l1_backward(torch.empty(1, dtype=torch.float32, device="meta"), img, flow, other,
                                            mask, image_grad, grad(masks[1], flow), grad(masks[2], other),
                                            grad(masks[3], mask), options),
    ]
    if image_grad.deterministic:
        result.append(image_grad.plan_gather())
    return result


# Dtypes, layouts, sizes of 1, 64-bit offsets and the gradient subsets, on both architectures, each with
# another sampling variant (test_every_sampling_variant_compiles covers all of them, on one architecture).
CONFIGS = [
    pytest.param(dtype, dict(shape=(2, 3, 5, 7), sampling=ALL_SAMPLINGS[3 * i + 1].op_args()), id=f"{str(dtype)[6:]}")
    for i, dtype in enumerate(DTYPES)
] + [
    pytest.param(torch.float16, dict(shape=(2, 3, 1, 6), layout="channels_last", deterministic=True,
                                     sampling=("reflection", "bilinear", True), masks=(True, False, True, False)),
                 id="H1-deterministic"),
    pytest.param(torch.bfloat16, dict(shape=(2, 1, 4, 1), int64=True, masks=(False, True, False, True),
                                      sampling=("reflection", "nearest", False), mask_channels=1), id="W1-C1-int64"),
    pytest.param(torch.float32, dict(shape=(2, 17, 3, 5), sampling=("zeros", "bilinear", False), deterministic=True,
                                     masks=(True, True, False, True), mask_channels=17),
                 id="per-channel-mask-deterministic"),
]


def compile_plans(arch, dtype, **config):
    import triton
    from triton.backends.compiler import GPUTarget

    for plan in plans(dtype, **config):
        signature, constexprs, attrs = jit_signature(plan.kernel, plan.args)
        source = triton.compiler.ASTSource(fn=plan.kernel, signature=signature, constexprs=constexprs, attrs=attrs)
        compiled = triton.compile(source, target=GPUTarget("cuda", arch, 32))
        assert compiled.asm["cubin"], plan.kernel.fn.__name__


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("dtype, config", CONFIGS)
def test_kernels_compile_for_gpu(dtype, config, arch):
    compile_plans(arch, dtype, **config)


@pytest.mark.parametrize("sampling", ALL_SAMPLINGS, ids=str)
def test_every_sampling_variant_compiles(sampling):
    """The sampling code is elementwise arithmetic that does not depend on the architecture: one suffices
    (CONFIGS spreads the variants over both)."""
    compile_plans(90, torch.float32, shape=(2, 3, 5, 7), sampling=sampling.op_args())


def test_signature_follows_jit_specialisation():
    """The signatures above are what the JIT compiles: sizes and strides of 1 are constants, and a tensor
    past int32 makes the launcher pick 64-bit offsets."""
    plan = plans(torch.float32, (2, 1, 4, 1), int64=True)[0]
    signature, constexprs, _ = jit_signature(plan.kernel, plan.args)
    assert constexprs["W"] == 1 and constexprs["C"] == 1 and constexprs["INT64"] is True
    assert signature["img_sn"] == "i64" and signature["H"] == "i32"
