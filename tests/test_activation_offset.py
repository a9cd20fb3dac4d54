"""The activation offset (``EngineConfig.activation_offset``, issue 12): torch's quantised
activations on the engine. Inputs are unsigned, each job carries a zero point (``INPUT_ZERO``)
and the array multiplies ``x - zero`` (padding and inserted zeros: 0). The config's widths,
ranges and errors; the zero point's register, descriptor slot and the refusal of one the engine
cannot hold (the fetcher and the list model give the same code); the PE and the array with
their one-bit-wider operands; the list engine running every kind of layer bit-exact against
``golden.convolution(spec, x - zero, w, b)`` and the list model, with CYCLES equal to the
cycle model's; the host-fed engine; seeded random layers on the models."""

import dataclasses

import numpy as np
import pytest

from convhw import golden
from convhw.compiler import compile_layer, run_model
from convhw.compiler.cycles import list_cycles
from convhw.compiler.image import Layer, build, plan, reference
from convhw.compiler.list_model import job_code, run_list
from convhw.config import PRESETS, EngineConfig
from convhw.descriptor import JOB_DESCRIPTOR
from convhw.driver.amaranth_sim import run_layer
from convhw.driver.program import register_writes
from convhw.memory_model import MemoryModel
from convhw.registers import ErrorCode, engine_register_map
from convhw.spec import ConvSpec
from convhw.testing import random_layer

from . import test_gateware_array as array_tests
from . import test_gateware_pe as pe_tests
from .helpers import exactly
from .test_gateware_descriptor_fetcher import run_fetch
from .test_gateware_list_engine import TINY, model, outputs, run_engine

QUANTIZED = EngineConfig.preset("quantized")
# The list engine's test engine (small buffers: several tiles, windows and weight loads).
QTINY = dataclasses.replace(TINY, activation_offset=True)


# -- the configuration --------------------------------------------------------------------------


def test_the_preset_is_the_default_engine_with_the_offset():
    assert QUANTIZED == dataclasses.replace(PRESETS["default"], activation_offset=True,
                                            float_output=True)
    assert not any(config.activation_offset for name, config in PRESETS.items()
                   if "quantized" not in name)
    assert QUANTIZED.describe().startswith("8x8 array, (uint8 - zero) x int8 -> int32")


def test_activation_offset_must_be_a_bool():
    with pytest.raises(TypeError, match=exactly("activation_offset must be a bool, not 1")):
        EngineConfig(activation_offset=1)


def test_widths_and_ranges():
    default = PRESETS["default"]
    assert (default.operand_width, default.product_width) == (8, 16)
    assert (default.input_range, default.zero_range, default.result_range) == (
        (-128, 127), (0, 0), (-128, 127))
    assert (default.operand_limit, default.worst_product) == (128, 128 * 128)
    # x - zero of two uint8 values: a signed 9-bit operand, whose worst magnitude is 255
    assert (QUANTIZED.operand_width, QUANTIZED.product_width) == (9, 17)
    assert (QUANTIZED.input_range, QUANTIZED.zero_range, QUANTIZED.result_range) == (
        (0, 255), (0, 255), (-128, 127))
    assert (QUANTIZED.operand_limit, QUANTIZED.worst_product) == (255, 255 * 128)
    assert QUANTIZED.max_terms == (2**31 - 1) // (255 * 128) < default.max_terms
    narrow = EngineConfig(input_width=4, weight_width=4, acc_width=10, activation_offset=True)
    assert (narrow.input_range, narrow.operand_width, narrow.max_terms) == ((0, 15), 5, 4)


def test_the_accumulator_holds_the_wider_product():
    EngineConfig(acc_width=17)
    with pytest.raises(ValueError, match=exactly(
            "acc_width must be an integer from 18 to 48, not 17")):
        EngineConfig(acc_width=17, activation_offset=True)


@pytest.mark.parametrize("config, zero, error, message", [
    (PRESETS["default"], 1, ValueError,
     "input_zero must be 0 for an engine without activation_offset, not 1"),
    (QUANTIZED, 256, ValueError,
     "input_zero must be an integer from 0 to 255 for this engine (uint8 inputs), not 256"),
    (QUANTIZED, -1, ValueError,
     "input_zero must be an integer from 0 to 255 for this engine (uint8 inputs), not -1"),
    (QUANTIZED, 1.0, TypeError, "input_zero must be an integer, not 1.0"),
    (QUANTIZED, True, TypeError, "input_zero must be an integer, not True"),
])
def test_zero_points_the_engine_cannot_hold(config, zero, error, message):
    with pytest.raises(error, match=exactly(message)):
        config.check_input_zero(zero)
    spec = ConvSpec(2, 2, 2, 3)
    with pytest.raises(error, match=exactly(message)):
        compile_layer(spec, (1, 2, 4, 4), config, input_zero=zero)
    x = np.zeros((1, 2, 4, 4), np.int64)
    with pytest.raises(error, match=exactly(message)):
        config.check_operands(spec, x, np.zeros(spec.weight_shape), None, zero)


def test_inputs_are_unsigned_with_the_offset():
    spec = ConvSpec(1, 2, 1, 3)
    w = np.zeros(spec.weight_shape)
    x = np.array([[[0, 255, 7, 9]] * 2])
    got, _, _ = QUANTIZED.check_operands(spec, x, w, None, 255)
    assert np.array_equal(got, x)
    with pytest.raises(ValueError, match=exactly(
            "input must lie in [0, 255] for this engine, not [-1, 255]")):
        QUANTIZED.check_operands(spec, x - (x == 0), w, None)
    with pytest.raises(ValueError, match=exactly(
            "input must lie in [-128, 127] for this engine, not [0, 255]")):
        PRESETS["default"].check_operands(spec, x, w, None)


def test_overflow_checks_use_the_widest_difference():
    # 6 products of at most 255 * 128 = 32640: the bias keeps 195840 clear of each end
    spec = ConvSpec(1, 2, 1, 3)
    x, w = np.zeros((1, 2, 4)), np.zeros(spec.weight_shape)
    low, high = QUANTIZED.acc_range
    QUANTIZED.check_operands(spec, x, w, [high - 6 * 32640])
    with pytest.raises(ValueError, match=exactly(
            f"bias must lie in [{low + 6 * 32640}, {high - 6 * 32640}] for this engine, not "
            f"[{high - 6 * 32640 + 1}, {high - 6 * 32640 + 1}] (the int32 accumulator starts "
            f"from the bias and must hold it plus 6 worst-case (uint8 - zero) x int8 products, "
            f"195840 at most, without overflow)")):
        QUANTIZED.check_operands(spec, x, w, [high - 6 * 32640 + 1])
    # an 18-bit accumulator holds 4 such products (131071 // 32640), 5 int8 x int8 ones
    config = EngineConfig(acc_width=18, activation_offset=True)
    assert (config.max_terms, dataclasses.replace(config, activation_offset=False).max_terms) \
        == (4, 7)
    config.check_layer(ConvSpec(1, 4, 1, 1))
    with pytest.raises(ValueError, match=exactly(
            "Conv1d sums up to 5 products per output (in_channels/groups x kernel taps); a "
            "18-bit accumulator holds at most 4 worst-case (uint8 - zero) x int8 products")):
        config.check_layer(ConvSpec(1, 5, 1, 1))


# -- the zero point's places: job, register, descriptor -----------------------------------------


def test_the_zero_point_is_a_job_register():
    spec = ConvSpec(2, 4, 4, 3, padding=1)
    (step,) = compile_layer(spec, (1, 4, 5, 5), QUANTIZED, input_zero=131)
    assert step.job.input_zero == 131
    regmap = engine_register_map(QUANTIZED)
    register = regmap["INPUT_ZERO"]
    assert (register.address, register.field("VALUE").bits, register.field("VALUE").access) \
        == (0x194, "[7:0]", "rw")
    assert dict(register_writes(regmap, step.job))[0x194] == 131
    # without the offset the register is read-only (always 0) and not written
    plain = engine_register_map("default")
    assert plain["INPUT_ZERO"].field("VALUE").access == "ro"
    (step,) = compile_layer(spec, (1, 4, 5, 5), PRESETS["default"])
    assert 0x194 not in dict(register_writes(plain, step.job))


def test_the_zero_point_is_a_descriptor_field():
    field = JOB_DESCRIPTOR["INPUT_ZERO"]
    # its own word (the widest engine's input_width: 16 bits); the rest of it is reserved
    assert (field.word, field.offset, field.width) == (30, 0, 16)
    assert JOB_DESCRIPTOR.reserved_masks[30] == 0xFF000000     # (OUTPUT_ZERO: [23:16])
    rng = np.random.default_rng(3)
    spec = ConvSpec(2, 4, 4, 3, padding=1)
    layer = Layer(spec, rng.integers(-128, 128, spec.weight_shape), input_zero=77)
    placed = plan(QTINY, rng.integers(0, 256, (1, 4, 9, 9)), [layer])
    descriptors = placed.builder.descriptors()
    assert len(descriptors) > 1 and all(d["INPUT_ZERO"] == 77 for d in descriptors)
    assert placed.records[0].input_zero == 77


# -- a zero point the engine cannot hold: the fetcher and the list model agree ------------------


def _patched_image(config, zero, index):
    """A compiled list whose job ``index`` has ``INPUT_ZERO`` = ``zero``."""
    rng = np.random.default_rng(5)
    spec = ConvSpec(2, 4, 4, 3, padding=1)
    layer = Layer(spec, rng.integers(-128, 128, spec.weight_shape))
    low, high = config.input_range
    image = build(config, rng.integers(low, high + 1, (1, 4, 9, 9)), [layer])
    address = image.list_address + index * JOB_DESCRIPTOR.size
    words = image.memory.data[address:address + JOB_DESCRIPTOR.size].view("<u4").copy()
    values = JOB_DESCRIPTOR.decode(words) | {"INPUT_ZERO": zero}
    image.memory.write(address, JOB_DESCRIPTOR.encode(values).view(np.uint8))
    return image


@pytest.mark.parametrize("config, zero, code", [
    (TINY, 1, ErrorCode.FIELD_TOO_WIDE),                 # no offset: only 0
    (TINY, 0x8000, ErrorCode.FIELD_TOO_WIDE),
    (QTINY, 255, ErrorCode.NONE),
    (QTINY, 256, ErrorCode.FIELD_TOO_WIDE),              # beyond input_width bits
    (dataclasses.replace(QTINY, input_width=12), 0xFFF, ErrorCode.NONE),
    (dataclasses.replace(QTINY, input_width=12), 0x1000,
     ErrorCode.FIELD_TOO_WIDE),
], ids=["plain-1", "plain-0x8000", "uint8-255", "uint8-256", "uint12-4095", "uint12-4096"])
def test_the_fetcher_refuses_a_zero_point_as_the_model_does(config, zero, code):
    index = 2
    image = _patched_image(config, zero, index)
    got, _, _ = run_fetch(config, image.memory, image.list_address, pause=0.2, seed=zero)
    for fields, i, have in got:
        assert have == job_code(config, fields), f"job {i} (zero point {zero})"
    assert got[index][2] == code
    expected = run_list(image.memory, image.list_address, config)
    assert (expected.code, expected.failed_job) == ((code, index) if code else (code, None))


def test_an_engine_without_the_offset_stops_the_list_at_a_zero_point():
    config, index = TINY, 1
    image = _patched_image(config, 3, index)
    placed = image.plan
    address = placed.list_address + index * JOB_DESCRIPTOR.size + 4 * 30
    patch = [(address, bytes([3, 0]))]
    _, result = run_engine(config, placed, pause=0.0,
                           patch=lambda memory: memory.write(*patch[0]))
    _, expected = model(config, placed, patch=patch)
    assert (expected.code, expected.failed_job) == (ErrorCode.FIELD_TOO_WIDE, index)
    assert result["status"] & 0b110 == 0b110
    assert result["error"] == (index << 16) | ErrorCode.FIELD_TOO_WIDE


# -- the PE and the array: signed operand_width-bit operands ------------------------------------


def test_pe_multiplies_nine_bit_operands():
    seed = 120
    rng = np.random.default_rng(seed)
    config = QUANTIZED
    extremes = [-255, 255, -256 + 1, 0, -1, 1, 254]
    cycles = [pe_tests.load(0, -128), pe_tests.load(1, 127)]
    for _ in range(120):
        a = int(rng.choice(extremes)) if rng.random() < 0.4 else int(rng.integers(-255, 256))
        inputs = {"a": a, "bank": int(rng.integers(2)),
                  "psum_in": int(rng.integers(-2**31, 2**31))}
        if rng.random() < 0.2:
            inputs.update(pe_tests.load(int(rng.integers(2)), int(rng.choice([-128, 127, 5]))))
        cycles.append(inputs)
    got = pe_tests.run(config, cycles)
    assert got == pe_tests.model(config, cycles), f"seed {seed}"


@pytest.mark.parametrize("depthwise", [0, 1], ids=["dense", "depthwise"])
def test_array_takes_nine_bit_lanes(depthwise):
    config = EngineConfig(rows=4, cols=3, activation_offset=True)
    seed = 130 + depthwise
    rng = np.random.default_rng(seed)
    n = 40
    weights = array_tests.random_weights(rng, config, 2)
    words = rng.integers(-255, 256, (n, config.rows))
    corners = rng.random(words.shape) < 0.3
    words[corners] = rng.choice([-255, 255], size=int(corners.sum()))
    banks = rng.integers(2, size=n)
    lanes = [2, 0, 3]
    cycles = [*array_tests.load_cycles(0, weights[0]), *array_tests.load_cycles(1, weights[1])]
    start = len(cycles)
    cycles += array_tests.stream_cycles(words, banks)
    latency, _, psums = array_tests.simulate(config, cycles, depthwise=depthwise,
                                             lane_select=lanes)
    got = psums[start + latency:start + latency + n]
    if depthwise:
        expected = array_tests.depthwise_model(config, words, weights[banks], np.array(lanes))
        got = got[:len(expected)]
    else:
        expected = array_tests.dense_model(config, words, weights[banks])
    array_tests.check(got, expected, seed, "nine-bit lanes")


# -- whole layers on the engines ----------------------------------------------------------------


def offset_layers(seed):
    """A uint8 input with 0 and 255 in it, and one layer of every kind read from it, each with
    its own zero point (0, 128, 255 and random ones): zeros padding, reflect, replicate and
    circular padding, transposed, depthwise (the FIR lane mode), strided and dilated."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, (1, 4, 6, 7))
    x[0, :, 0, :3] = [0, 255, 0]
    specs = [ConvSpec(2, 4, 5, 3, padding=1),
             ConvSpec(2, 4, 4, 3, padding=2, padding_mode="reflect"),
             ConvSpec(2, 4, 4, 3, padding=1, padding_mode="replicate"),
             ConvSpec(2, 4, 4, 3, padding=(1, 2), padding_mode="circular"),
             # (output_padding: outputs with no real source, zero operands in its first pass)
             ConvSpec(2, 4, 6, 3, stride=2, padding=1, output_padding=1, transposed=True),
             ConvSpec(2, 4, 4, 3, padding=1, groups=4),
             ConvSpec(2, 4, 6, 3, stride=(2, 1), dilation=2, padding=2)]
    zeros = [0, 128, 255, int(rng.integers(1, 255)), 255, int(rng.integers(1, 255)), 128]
    layers = [Layer(s, rng.integers(-128, 128, s.weight_shape),
                    rng.integers(-300, 300, s.out_channels), input_zero=z)
              for s, z in zip(specs, zeros)]
    return x, layers


def check_list_engine(config, seed, memory_model, kinds=None):
    """``kinds``: the indices of the layers of :func:`offset_layers` to run (all if None)."""
    x, layers = offset_layers(seed)
    if kinds is not None:
        layers = [layers[i] for i in kinds]
    placed = plan(config, x, layers, chain=False)
    descriptors = placed.builder.descriptors()
    assert {d["INPUT_ZERO"] for d in descriptors} == {layer.input_zero for layer in layers}
    assert any(d["FIR_TAPS"] for d in descriptors), "no layer ran in the FIR lane mode"
    expected = list_cycles(placed, config, memory_model)
    memory, result = run_engine(config, placed, model=memory_model)
    assert result["status"] & 0b110 == 0b010, f"seed {seed}: {result}"
    assert (result["cycles"], result["busy_cycles"]) == (expected.cycles,
                                                         expected.busy_cycles), f"seed {seed}"
    want = reference(x, layers, chain=False)
    model_memory, ended = model(config, placed)
    assert ended.ok, f"seed {seed}"
    for index, (got, layer) in enumerate(zip(outputs(memory, placed), layers)):
        name = f"seed {seed}: layer {index} ({layer.spec.op_name}, zero {layer.input_zero})"
        # golden: the convolution of x - zero, zeros padding of it being padding x with zero
        golden_y = golden.convolution(layer.spec, x - layer.input_zero, layer.weight,
                                      layer.bias)
        assert np.array_equal(want[index], golden_y)
        assert np.array_equal(got, golden_y), name
        start, size = placed.output_addresses[index], placed.records[index].output.size
        assert memory.read(start, size) == bytes(model_memory.read(start, size)), name


def test_the_list_engine_offsets_every_kind_of_layer():
    # make test: zeros and replicate padding, transposed and depthwise (zero points 0, 255,
    # 255 and a random one); the slow tier runs all seven kinds on two more seeds.
    check_list_engine(QTINY, 1, MemoryModel(8, 20), kinds=(0, 2, 4, 5))


@pytest.mark.slow
@pytest.mark.parametrize("bus, seed", [("wishbone", 2), ("axi4", 3)])
def test_the_list_engine_offsets_every_kind_of_layer_more(bus, seed):
    check_list_engine(dataclasses.replace(QTINY, bus=bus), seed, MemoryModel(2, 5))


def test_the_host_fed_engine_offsets_a_layer():
    seed = 9
    rng = np.random.default_rng(seed)
    spec = ConvSpec(2, 4, 4, 3, padding=1)
    x = rng.integers(0, 256, (1, 4, 5, 6))
    w, b = rng.integers(-128, 128, spec.weight_shape), rng.integers(-300, 300, 4)
    out, steps, records = run_layer(spec, x, w, b, QTINY, input_zero=201)
    assert np.array_equal(out, golden.convolution(spec, x - 201, w, b)), f"seed {seed}"


@pytest.mark.parametrize("seed", range(2))
def test_random_layers_on_the_models(seed):
    # Seeded random layers of the six ops and every padding mode, random uint8 inputs and zero
    # points: the job model (run_model) and the list model (run_list) against the golden model.
    rng = np.random.default_rng(1000 + seed)
    config = QTINY
    for case in range(12):
        spec, shape = random_layer(rng, config=config, max_size=6)
        x = rng.integers(0, 256, shape)
        zero = int(rng.choice([0, 255, int(rng.integers(256))]))
        weight = rng.integers(-128, 128, spec.weight_shape)
        bias = rng.integers(-1000, 1000, spec.out_channels) if spec.bias else None
        want = golden.convolution(spec, x - zero, weight, bias)
        name = f"seed {seed}, case {case}: {spec} on {shape}, zero {zero}"
        got, _ = run_model(spec, x, weight, bias, config, input_zero=zero)
        assert np.array_equal(got, want), name
        image = build(config, x, [Layer(spec, weight, bias, input_zero=zero)],
                      memory_size=1 << 20)
        assert run_list(image.memory, image.list_address, config).ok, name
        assert np.array_equal(image.output(), want), name
