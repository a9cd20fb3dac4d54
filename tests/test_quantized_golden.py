"""The golden model of torch's quantised convolutions against torch's own quantised CPU kernels.

Every case builds a torch quantised module from integer tensors drawn at random (seeded; the
seed is in the test id), runs it on torch's engine, and compares the uint8 results element by
element with :func:`convhw.quantized_golden.quantized_convolution`: the count that differs must
be 0 (no tolerance).
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from pathlib import Path

import numpy as np
import pytest

from convhw import quantized_golden as qg
from convhw.spec import ConvSpec

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch

# (op, dims, in, out, kernel, stride, padding, dilation, groups, input spatial size)
LAYERS = [
    ("conv", 2, 16, 32, 3, 1, 1, 1, 1, (10, 9)),
    ("conv", 2, 8, 12, 3, 2, 2, 2, 2, (11, 12)),
    ("conv", 2, 8, 8, 3, 1, 1, 1, 8, (9, 9)),              # depthwise
    ("conv", 1, 12, 16, 5, 1, 2, 1, 1, (40,)),
    ("conv", 3, 4, 8, 3, 1, 1, 1, 1, (5, 6, 6)),
    ("transposed", 2, 8, 6, 4, 2, 1, 1, 1, (6, 7)),
    ("transposed", 1, 8, 4, 3, 2, 0, 1, 2, (9,)),
]

_MODULES = {
    ("conv", 1): "Conv1d", ("conv", 2): "Conv2d", ("conv", 3): "Conv3d",
    ("transposed", 1): "ConvTranspose1d", ("transposed", 2): "ConvTranspose2d",
    ("transposed", 3): "ConvTranspose3d",
}
_RELU = {1: "ConvReLU1d", 2: "ConvReLU2d", 3: "ConvReLU3d"}


def _quantized_case(layer, *, per_channel, bias, relu, engine, activation_max, seed):
    """(torch's uint8 result, the golden model's) for one layer and quantisation."""
    op, dims, cin, cout, k, stride, padding, dilation, groups, size = layer
    rng = np.random.default_rng(seed)
    transposed = op == "transposed"
    spec = ConvSpec(dims=dims, in_channels=cin, out_channels=cout, kernel_size=k,
                    stride=stride, padding=padding, dilation=dilation, groups=groups,
                    transposed=transposed)
    x_zero, x_scale = int(rng.integers(0, 20)), float(rng.uniform(0.01, 0.1))
    out_zero, out_scale = int(rng.integers(20, 100)), float(rng.uniform(0.05, 0.5))
    xq = rng.integers(0, activation_max + 1, (2, cin, *size))
    wq = rng.integers(-127, 128, spec.weight_shape)
    b = rng.normal(0, 2, cout).astype(np.float32) if bias else None
    with warnings.catch_warnings():
        # torch 2.13 marks its quantised tensor factories deprecated; they are still the way
        # its quantised modules take weights.
        warnings.simplefilter("ignore", UserWarning)
        torch.backends.quantized.engine = engine
        x = torch.quantize_per_tensor(torch.tensor((xq - x_zero) * x_scale, dtype=torch.float32),
                                      x_scale, x_zero, torch.quint8)
        if per_channel:
            scales = rng.uniform(0.002, 0.02, cout)
            w = torch.quantize_per_channel(
                torch.tensor(wq * scales.reshape(-1, *(1,) * (dims + 1)), dtype=torch.float32),
                torch.tensor(scales), torch.zeros(cout, dtype=torch.long), 0, torch.qint8)
            w_scales = w.q_per_channel_scales().numpy()
        else:
            w = torch.quantize_per_tensor(torch.tensor(wq * 0.01, dtype=torch.float32), 0.01, 0,
                                          torch.qint8)
            w_scales = np.full(cout, w.q_scale())
        assert (x.int_repr().numpy() == xq).all() and (w.int_repr().numpy() == wq).all()
        name = _RELU[dims] if relu else _MODULES[op, dims]
        family = torch.ao.nn.intrinsic.quantized if relu else torch.ao.nn.quantized
        kwargs = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
        module = getattr(family, name)(cin, cout, k, **kwargs)
        module.set_weight_bias(w, None if b is None else torch.tensor(b))
        module.scale, module.zero_point = out_scale, out_zero
        want = module(x).int_repr().numpy()
    arithmetic = qg.QuantizedArithmetic(
        input_scale=x.q_scale(), input_zero_point=x_zero, weight_scales=w_scales,
        weight_zero_points=0, output_scale=out_scale, output_zero_point=out_zero, bias=b,
        relu=relu, kernel="qnnpack" if engine == "qnnpack" else "fbgemm")
    got = qg.quantized_convolution(spec, xq, wq, arithmetic)
    return want, got


def _cases():
    seed = 0
    for layer in LAYERS:
        for per_channel in (False, True):
            if per_channel and layer[0] == "transposed":
                continue        # (torch's quantised transposed convs take per-tensor weights)
            for bias in (False, True):
                relu = bias and layer[0] == "conv"
                seed += 1
                ident = (f"{layer[0]}{layer[1]}d-{layer[2]}x{layer[3]}-k{layer[4]}s{layer[5]}"
                         f"g{layer[8]}-{'pc' if per_channel else 'pt'}-{'b' if bias else 'nb'}"
                         f"{'-relu' if relu else ''}-seed{seed}")
                yield pytest.param(layer, per_channel, bias, relu, seed, id=ident)


@pytest.mark.parametrize("engine", ["x86", "fbgemm", "qnnpack"])
@pytest.mark.parametrize("layer, per_channel, bias, relu, seed", list(_cases()))
def test_bit_identical_to_torch(engine, layer, per_channel, bias, relu, seed):
    if engine == "qnnpack" and layer[1] == 3:
        pytest.skip("torch's qnnpack has no 3-D quantised convolution")
    if engine == "x86" and layer[0] == "transposed":
        pytest.skip("torch 2.13's x86 engine runs quantised transposed convolutions on oneDNN, "
                    "whose results are not the exact sum's (up to 255 apart, measured); "
                    "compared on fbgemm")
    # 7-bit activations: torch's default x86 configuration (reduce_range), on which every CPU's
    # kernels sum exactly.
    want, got = _quantized_case(layer, per_channel=per_channel, bias=bias, relu=relu,
                                engine=engine, activation_max=127, seed=seed)
    differ = int((want != got).sum())
    assert differ == 0, f"{differ} of {want.size} elements differ (seed {seed})"


def test_full_range_activations_on_fbgemm_kernels_that_sum_exactly():
    # With activations over 0..255 torch's AVX2 kernels saturate pairs of products at 16 bits;
    # its AVX512-VNNI kernels do not. The golden model is the exact sum: where this CPU's
    # kernels are exact it is torch's result to the bit.
    flags = Path("/proc/cpuinfo").read_text() if os.path.exists("/proc/cpuinfo") else ""
    if "avx512_vnni" not in flags:
        pytest.skip("this CPU's fbgemm kernels saturate 16-bit pairs (no AVX512-VNNI)")
    want, got = _quantized_case(LAYERS[0], per_channel=True, bias=True, relu=False,
                                engine="x86", activation_max=255, seed=99)
    assert int((want != got).sum()) == 0


def test_the_two_arithmetics_differ_and_each_matches_its_kernel():
    # The bias rounded to an int32 first (qnnpack) or added in float32 (fbgemm): both models
    # are needed; find a case where they differ and check each against its kernel.
    for seed in range(200, 230):
        want_q, got_q = _quantized_case(LAYERS[0], per_channel=False, bias=True, relu=False,
                                        engine="qnnpack", activation_max=255, seed=seed)
        want_f, got_f = _quantized_case(LAYERS[0], per_channel=False, bias=True, relu=False,
                                        engine="x86", activation_max=127, seed=seed)
        assert (want_q == got_q).all() and (want_f == got_f).all()
        _, as_fbgemm = _quantized_case(LAYERS[0], per_channel=False, bias=True, relu=False,
                                       engine="x86", activation_max=255, seed=seed)
        if (as_fbgemm != got_q).any():
            return
    pytest.fail("fbgemm's and qnnpack's arithmetics never differed")


def test_requantize_rounds_half_to_even_and_clamps():
    arithmetic = qg.QuantizedArithmetic(input_scale=1.0, input_zero_point=0, weight_scales=[1.0],
                                        weight_zero_points=[0], output_scale=2.0,
                                        output_zero_point=10)
    acc = np.array([[1, 3, 5, -1, -3, 1000, -1000]]).T.reshape(1, 1, 7)
    # 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -0.5 -> 0, -1.5 -> -2; then + 10 and clamped to 0..255
    assert qg.requantize(acc, arithmetic).tolist() == [[[10, 12, 12, 10, 8, 255, 0]]]
    relu = dataclasses.replace(arithmetic, relu=True)
    assert qg.requantize(acc, relu).tolist() == [[[10, 12, 12, 10, 10, 255, 10]]]


@pytest.mark.parametrize("changes, message", [
    (dict(kernel="avx"), "kernel must be one of"),
    (dict(input_scale=0.0), "input_scale must be a positive"),
    (dict(output_zero_point=256), "output_zero_point must be in 0..255"),
    (dict(weight_scales=[1.0, 2.0], weight_zero_points=[0, 0, 0]), "one value per output"),
    (dict(bias=[1.0, 2.0]), "bias must have one value per output channel"),
    (dict(weight_zero_points=[200]), "weight_zero_points must be in -128..127"),
])
def test_bad_parameters_are_refused_by_name(changes, message):
    base = dict(input_scale=0.1, input_zero_point=0, weight_scales=[0.1],
                weight_zero_points=[0], output_scale=0.2, output_zero_point=0)
    with pytest.raises(ValueError, match=message):
        qg.QuantizedArithmetic(**{**base, **changes})


def test_out_of_range_operands_are_refused():
    spec = ConvSpec(dims=1, in_channels=1, out_channels=1, kernel_size=1)
    arithmetic = qg.QuantizedArithmetic(input_scale=1.0, input_zero_point=0, weight_scales=[1.0],
                                        weight_zero_points=[0], output_scale=1.0,
                                        output_zero_point=0)
    with pytest.raises(ValueError, match="quint8"):
        qg.quantized_convolution(spec, np.full((1, 1, 2), 256), np.ones((1, 1, 1), int),
                                 arithmetic)
    with pytest.raises(ValueError, match="qint8"):
        qg.quantized_convolution(spec, np.ones((1, 1, 2), int), np.full((1, 1, 1), -129),
                                 arithmetic)
    with pytest.raises(ValueError, match="int32 range"):
        qg.requantize(np.full((1, 1, 1), 2 ** 31), arithmetic)
