"""The float32 output stage (``EngineConfig.float_output``, issue 12): torch's quantised output
processing on the list engine. The configuration and its errors; the descriptor's
``FLOAT_REQUANTIZE`` and ``OUTPUT_ZERO`` and the four-word column records; the refusal of both
by an engine without the stage (fetcher and list model agree); whole chains of quantised layers
(quint8 in, quint8 out, each layer reading the previous one's output with its zero point) on the
list engine, bit-exact against :func:`convhw.quantized_golden.quantized_convolution` (fbgemm's and
qnnpack's arithmetic) and the list model, with CYCLES equal to the cycle model's."""

import dataclasses

import numpy as np
import pytest

from convhw import timing
from convhw.compiler.cycles import list_cycles
from convhw.compiler.image import Layer, build, plan, reference
from convhw.compiler.list_model import float_requantize, job_code, run_list
from convhw.config import PRESETS, EngineConfig
from convhw.descriptor import COLUMN_PARAMS, FLOAT_COLUMN_PARAMS, JOB_DESCRIPTOR, column_params
from convhw.memory_model import MemoryModel
from convhw.quantized_golden import QuantizedArithmetic, quantized_convolution
from convhw.registers import ErrorCode
from convhw.spec import ConvSpec

from .helpers import exactly, tiered
from .test_gateware_descriptor_fetcher import run_fetch
from .test_gateware_list_engine import TINY, model, outputs, run_engine

QUANTIZED = EngineConfig.preset("quantized")
# The list engine's test engine with the activation offset and the float32 output stage.
QTINY = dataclasses.replace(TINY, activation_offset=True, float_output=True)


# -- the configuration and the formats ----------------------------------------------------------


def test_the_preset_has_the_stage():
    assert QUANTIZED.float_output and QUANTIZED.activation_offset
    assert not any(config.float_output for name, config in PRESETS.items()
                   if "quantized" not in name)


def test_float_output_must_be_a_bool():
    with pytest.raises(TypeError, match=exactly("float_output must be a bool, not 1")):
        EngineConfig(float_output=1)


@pytest.mark.parametrize("fields", [{"input_width": 12}, {"acc_width": 40}])
def test_float_output_needs_int8_and_int32(fields):
    with pytest.raises(ValueError, match=r"^float_output needs input_width 8 and acc_width at "
                                         r"most 32 \(its results are quint8, its input an "
                                         r"int32\), not input_width"):
        EngineConfig(float_output=True, **fields)


def test_the_constants_are_checked():
    check = QUANTIZED.check_float_requantize
    bias, mult, zero = check(2, [1.5, -2], np.array([0.25, 1e-3]), 7)
    assert bias.dtype == mult.dtype == np.float32 and zero == 7
    with pytest.raises(ValueError, match=exactly(
            "float requantisation multiplier must have one value per output channel (3), "
            "not 2")):
        check(3, [0, 0, 0], [1, 1], 0)
    with pytest.raises(ValueError, match=exactly(
            "float requantisation bias must be finite float32 values (the engine's float32 "
            "unit takes no infinity or NaN)")):
        check(1, [np.inf], [1], 0)
    with pytest.raises(ValueError, match=r"^float requantisation multiplier must be finite"):
        check(1, [0], [1e39], 0)                    # beyond float32: infinity
    with pytest.raises(ValueError, match=exactly(
            "output_zero must be an integer from 0 to 255 (quint8 results), not 256")):
        check(1, [0], [1], 256)
    with pytest.raises(ValueError, match=exactly(
            "float requantisation needs an engine with float_output (the 'quantized' preset)")):
        PRESETS["default"].check_float_requantize(1, [0], [1], 0)


def test_the_formats():
    assert column_params(QUANTIZED) is FLOAT_COLUMN_PARAMS
    assert column_params(PRESETS["default"]) is COLUMN_PARAMS
    assert FLOAT_COLUMN_PARAMS.size == 16 and COLUMN_PARAMS.size == 8
    assert [(f.name, f.word) for f in FLOAT_COLUMN_PARAMS.fields[-2:]] == [
        ("F32_BIAS", 2), ("F32_MULT", 3)]
    flag, zero = JOB_DESCRIPTOR["FLOAT_REQUANTIZE"], JOB_DESCRIPTOR["OUTPUT_ZERO"]
    assert (flag.word, flag.offset, zero.word, zero.offset, zero.width) == (1, 10, 30, 16, 8)
    assert JOB_DESCRIPTOR.reserved_masks[30] == 0xFF000000
    # the cycle model's constants follow the configuration
    constants = timing.list_timing(QUANTIZED)
    assert (constants.params_word, constants.output_stages) == (16, 21)
    assert timing.list_timing(PRESETS["default"]).output_stages == timing.OUTPUT_STAGES


def test_the_model_computes_the_kernels_sequence():
    # float_requantize on bit patterns is quantized_golden.requantize on the constants
    rng = np.random.default_rng(4)
    for kernel in ("fbgemm", "qnnpack"):
        arithmetic = _arithmetic(rng, 5, kernel, relu=kernel == "qnnpack")
        acc = rng.integers(-2 ** 20, 2 ** 20, (40, 5))
        acc[0] = [2 ** 31 - 1, -2 ** 31, 0, -1, 1]
        bias, mult = arithmetic.constants()
        int_bias = bias if kernel == "qnnpack" else np.zeros(5, np.int64)
        f32_bias = np.zeros(5, np.float32) if kernel == "qnnpack" else bias
        got = float_requantize(acc + int_bias, f32_bias.view(np.uint32),
                               mult.view(np.uint32), arithmetic.output_zero_point,
                               arithmetic.relu)
        from convhw.quantized_golden import requantize
        assert np.array_equal(got, requantize(acc, arithmetic)), kernel


# -- an engine without the stage refuses its fields ---------------------------------------------


def _patched_image(config, values, index):
    """A compiled list whose job ``index`` has the descriptor ``values`` changed."""
    rng = np.random.default_rng(5)
    spec = ConvSpec(2, 4, 4, 3, padding=1)
    layer = Layer(spec, rng.integers(-128, 128, spec.weight_shape), requantize=([1] * 4,
                                                                               [0] * 4))
    low, high = config.input_range
    image = build(config, rng.integers(low, high + 1, (1, 4, 9, 9)), [layer])
    address = image.list_address + index * JOB_DESCRIPTOR.size
    words = image.memory.data[address:address + JOB_DESCRIPTOR.size].view("<u4").copy()
    image.memory.write(address, JOB_DESCRIPTOR.encode(
        JOB_DESCRIPTOR.decode(words) | values).view(np.uint8))
    return image


@pytest.mark.parametrize("config, values, code", [
    (TINY, {"FLOAT_REQUANTIZE": 1}, ErrorCode.FIELD_TOO_WIDE),
    (TINY, {"OUTPUT_ZERO": 128}, ErrorCode.FIELD_TOO_WIDE),
    (QTINY, {"FLOAT_REQUANTIZE": 1, "OUTPUT_ZERO": 255}, ErrorCode.NONE),
], ids=["plain-flag", "plain-zero", "float"])
def test_the_fetcher_refuses_the_fields_as_the_model_does(config, values, code):
    index = 1
    image = _patched_image(config, values, index)
    got, _, _ = run_fetch(config, image.memory, image.list_address, pause=0.2, seed=index)
    for fields, i, have in got:
        assert have == job_code(config, fields), f"job {i} ({values})"
    assert got[index][2] == code
    expected = run_list(image.memory, image.list_address, config)
    assert (expected.code, expected.failed_job) == ((code, index) if code else (code, None))


# -- chains of quantised layers on the list engine ----------------------------------------------


def _arithmetic(rng, channels, kernel, relu=False, per_channel=True, bias=True):
    """Quantisation parameters as torch's observers give them: scales from the data's ranges,
    symmetric int8 weights (zero point 0), a float bias."""
    scales = rng.uniform(0.002, 0.02, channels if per_channel else 1)
    return QuantizedArithmetic(
        input_scale=float(rng.uniform(0.01, 0.05)), input_zero_point=0,
        weight_scales=np.repeat(scales, channels) if scales.size == 1 else scales,
        weight_zero_points=np.zeros(channels, np.int64),
        output_scale=float(rng.uniform(0.02, 0.2)),
        output_zero_point=int(rng.integers(0, 256)),
        bias=rng.normal(0, 0.5, channels).astype(np.float32) if bias else None,
        relu=relu, kernel=kernel)


def quantized_chain(seed, kernel):
    """A quint8 input and three quantised layers, each reading the previous one's output with
    its zero point: zeros-padded, strided with reflect padding and a fused ReLU, depthwise (the
    FIR lane mode) without bias; per-channel and per-tensor weights."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (1, 4, 7, 6))
    specs = [ConvSpec(2, 4, 5, 3, padding=1),
             ConvSpec(2, 5, 4, 3, stride=2, padding=1, padding_mode="reflect"),
             ConvSpec(2, 4, 4, 3, padding=1, groups=4)]
    layers, arithmetics, zero = [], [], int(rng.integers(0, 256))
    for index, spec in enumerate(specs):
        arithmetic = dataclasses.replace(
            _arithmetic(rng, spec.out_channels, kernel, relu=index == 1,
                        per_channel=index != 1, bias=index != 2), input_zero_point=zero)
        bias, multiplier = arithmetic.constants()
        if kernel == "qnnpack":     # the int32 bias goes into the sum; the float term is +0.0
            int_bias, f32_bias = bias, np.zeros(spec.out_channels, np.float32)
        else:
            int_bias, f32_bias = None, bias
        layers.append(Layer(spec, rng.integers(-127, 128, spec.weight_shape), int_bias,
                            relu=arithmetic.relu, input_zero=zero,
                            float_requantize=(f32_bias, multiplier,
                                              arithmetic.output_zero_point)))
        arithmetics.append(arithmetic)
        zero = arithmetic.output_zero_point
    return x, layers, arithmetics


def check_chain(config, seed, kernel, memory_model):
    x, layers, arithmetics = quantized_chain(seed, kernel)
    placed = plan(config, x, layers)
    descriptors = placed.builder.descriptors()
    assert all(d["FLOAT_REQUANTIZE"] and d["REQUANTIZE"] for d in descriptors)
    assert any(d["FIR_TAPS"] for d in descriptors), "no layer ran in the FIR lane mode"
    # the golden model of torch's kernels, layer by layer
    want, y = [], x
    for layer, arithmetic in zip(layers, arithmetics):
        y = quantized_convolution(layer.spec, y, layer.weight, arithmetic)
        want.append(y)
    assert all(np.array_equal(a, b) for a, b in zip(reference(x, layers), want))
    expected = list_cycles(placed, config, memory_model)
    memory, result = run_engine(config, placed, model=memory_model)
    assert result["status"] & 0b110 == 0b010, f"seed {seed}: {result}"
    assert (result["cycles"], result["busy_cycles"]) == (expected.cycles,
                                                         expected.busy_cycles), f"seed {seed}"
    model_memory, ended = model(config, placed)
    assert ended.ok, f"seed {seed}"
    for index, (got, layer) in enumerate(zip(outputs(memory, placed), layers)):
        name = f"seed {seed}, {kernel}: layer {index} ({layer.spec.op_name})"
        assert np.array_equal(got, want[index]), name
        start, size = placed.output_addresses[index], placed.records[index].output.size
        assert memory.read(start, size) == bytes(model_memory.read(start, size)), name


@pytest.mark.parametrize("kernel", tiered(["fbgemm", "qnnpack"], fast=1))
def test_the_list_engine_runs_a_quantized_chain(kernel):
    check_chain(QTINY, {"fbgemm": 1, "qnnpack": 2}[kernel], kernel, MemoryModel(8, 20))


def test_a_float_tensor_is_told_how_to_quantise():
    # (a float model's convolution on a hardware device: convhw.nn with its float weights)
    with pytest.raises(ValueError, match=exactly(
            "weight must hold integer values for this engine; it holds non-integer values (a "
            "float model runs on the engine once quantised: quantized = convhw.quantize(model, "
            "calibration_data), then convhw.offload(quantized, convhw.Device('verilator', "
            "'quantized')))")):
        PRESETS["default"].check_tensor("weight", [0.25, 1.0], (-128, 127))
