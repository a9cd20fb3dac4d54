"""Layers longer than the registers' coordinates (convhw.compiler.job.frame): every job of such
a layer runs in a frame of its own; the frame keeps the computation pass for pass, the
compiler's model of the engine equals the golden model, and the engines run such layers."""

import dataclasses
import math

import numpy as np
import pytest

import convhw
from convhw import golden
from convhw.compiler import compile_layer, frame, passes, run_model
from convhw.compiler.cycles import job_cycles
from convhw.config import EngineConfig
from convhw.spec import ConvSpec
from convhw.testing import random_layer

from .helpers import VERILATED_LIST_CONFIG, exactly

#: Coordinates below 64: a layer of a few hundred elements is "long", and runs fast.
SHORT = EngineConfig(rows=2, cols=2, input_depth=128, weight_depth=128, acc_depth=32,
                     coord_width=6, param_width=4)
LIMIT = 1 << SHORT.coord_width


def _long_layer(rng, **kwargs):
    """A random layer some dimension of which reaches past the coordinates."""
    while True:
        spec, shape = random_layer(rng, config=SHORT, max_size={1: 300, 2: 80, 3: 40},
                                   **kwargs)
        if spec.padding_mode == "circular":
            continue
        out = spec.output_size(shape[-spec.dims:])
        if max(*shape[-spec.dims:], *out) >= LIMIT and math.prod(out) < 20_000:
            return spec, shape


@pytest.mark.parametrize("seed", range(12))
def test_frame_keeps_every_pass_and_cycle(seed):
    rng = np.random.default_rng(seed)
    spec, shape = _long_layer(rng)
    steps = compile_layer(spec, shape, SHORT, skip_borders=bool(rng.integers(2)))
    framed_any = False
    jobs = list(dict.fromkeys(step.job for step in steps))
    # (at most 300 of them, the framed ones first: a pass list is slow to expand)
    jobs.sort(key=lambda job: frame(job).job == job)
    for job in jobs[:300]:
        f = frame(job)
        for axis in f.job.axes:
            values = dataclasses.astuple(axis)
            assert max(values) < LIMIT, f"seed {seed}: {spec} {shape}: {axis}"
            if not job.transposed:
                assert (axis.out_start + axis.out_len - 1) * axis.stride < LIMIT
        framed_any |= f.job != job
        ours, theirs = list(passes(job)), list(passes(f.job))
        assert len(ours) == len(theirs), f"seed {seed}"
        for a, b in zip(ours, theirs):
            assert (a.tap, a.chunk, a.init) == (b.tap, b.chunk, b.init), f"seed {seed}"
            assert np.array_equal(a.in_addr, b.in_addr), f"seed {seed}: {spec} {shape}"
            assert np.array_equal(a.acc_addr, b.acc_addr), f"seed {seed}: {spec} {shape}"
            assert (a.write is None) == (b.write is None)
            assert a.write is None or np.array_equal(a.write, b.write)
        assert job_cycles(job) == job_cycles(f.job), f"seed {seed}"
    assert framed_any, f"seed {seed}: no job needed a frame: {spec} {shape}"


@pytest.mark.parametrize("seed", range(16))
def test_long_layers_on_the_engine_model_equal_golden(seed):
    """run_model executes every job as its registers hold it (framed)."""
    rng = np.random.default_rng(100 + seed)
    spec, shape = _long_layer(rng)
    x = rng.integers(-128, 128, shape)
    w = rng.integers(-128, 128, spec.weight_shape)
    b = rng.integers(-1000, 1000, spec.out_channels)
    got, _ = run_model(spec, x, w, b, SHORT)
    assert np.array_equal(got, golden.convolution(spec, x, w, b)), f"seed {seed}: {spec} {shape}"


def test_depthwise_lane_mode_and_reflect_on_long_rows():
    rng = np.random.default_rng(7)
    # (an x kernel of at most the array's two rows: the lane mode's)
    for spec in (ConvSpec(2, 2, 2, (3, 2), padding=2, groups=2, padding_mode="reflect"),
                 ConvSpec(2, 2, 2, (3, 2), padding=1, groups=2, padding_mode="replicate"),
                 ConvSpec(1, 2, 2, 2, padding=1, groups=2)):
        shape = (1, 2, 200) if spec.dims == 1 else (1, 2, 3, 200)
        steps = compile_layer(spec, shape, SHORT)
        assert any(step.job.fir_taps for step in steps), spec   # the lane mode ran
        x = rng.integers(-128, 128, shape)
        w = rng.integers(-128, 128, spec.weight_shape)
        got, _ = run_model(spec, x, w, None, SHORT)
        assert np.array_equal(got, golden.convolution(spec, x, w)), spec


def test_circular_padding_longer_than_the_coordinates_is_refused():
    spec = ConvSpec(1, 2, 2, 3, padding=1, padding_mode="circular")
    with pytest.raises(ValueError, match=exactly(
            "input size must be below 64 in every spatial dimension with circular padding for "
            "this engine (coord_width 6), not (64,)")):
        SHORT.check_layer(spec, (1, 2, 64))
    SHORT.check_layer(spec, (1, 2, 63))
    SHORT.check_layer(ConvSpec(1, 2, 2, 3, padding=1), (1, 2, 64000))


def test_five_seconds_of_audio_on_the_list_engine():
    """The wav2vec2 feature encoder's first layer on 5 s of 16 kHz audio (80,000 samples, past
    the 65,536 of the default coordinates), fewer channels: Verilator's list engine, exact."""
    rng = np.random.default_rng(3)
    device = convhw.Device("verilator", VERILATED_LIST_CONFIG)
    spec = ConvSpec(1, 1, 4, 10, stride=5)
    x = rng.integers(-128, 128, (1, 1, 80_000))
    w = rng.integers(-128, 128, spec.weight_shape)
    y, info = device.run(spec, x, w)
    assert y.shape == (1, 4, 15_999)
    assert np.array_equal(y, golden.convolution(spec, x, w))
    assert info.cycles > 0


def test_a_long_row_on_the_host_fed_engine():
    """The host-fed engine's registers hold the framed jobs (convhw.driver.program): 70,000
    samples on the small preset's Verilog, exact."""
    from convhw.driver.driver import Driver
    from convhw.driver.verilator_transport import VerilatorTransport
    small = EngineConfig.preset("small")
    rng = np.random.default_rng(5)
    spec = ConvSpec(1, 2, 4, 3, padding=2, dilation=2, padding_mode="reflect")
    x = rng.integers(-128, 128, (1, 2, 70_000))
    w = rng.integers(-128, 128, spec.weight_shape)
    with VerilatorTransport(small) as transport:
        result = Driver(transport, small).run(spec, x, w)
    assert np.array_equal(result.output, golden.convolution(spec, x, w))


@pytest.mark.slow
def test_long_layers_on_the_up5k_engine():
    """The up5k preset's 8-bit coordinates: layers of a few hundred elements are long there
    (Verilator, the host-fed engine the iCEBreaker carries)."""
    device = convhw.Device("verilator", "up5k")
    rng = np.random.default_rng(11)
    try:
        for spec, shape in ((ConvSpec(1, 2, 2, 5, stride=2, padding=3), (1, 2, 700)),
                            (ConvSpec(1, 2, 2, 4, stride=3, padding=1, transposed=True),
                             (1, 2, 300)),
                            (ConvSpec(2, 2, 2, 3, padding=1, padding_mode="replicate"),
                             (1, 2, 5, 400))):
            x = rng.integers(-128, 128, shape)
            w = rng.integers(-128, 128, spec.weight_shape)
            y, _ = device.run(spec, x, w)
            assert np.array_equal(y, golden.convolution(spec, x, w)), spec
    finally:
        device.close()


# -- kernels cut into runs of taps (EngineConfig.kernel_split) --------------------------------

#: A weight buffer of 32 words: 2 rows x 16 taps per input chunk at most.
NARROW = dataclasses.replace(SHORT, coord_width=16, param_width=8, weight_depth=32,
                             input_depth=1024)


def test_kernel_split_rule():
    assert NARROW.kernel_split(ConvSpec(2, 2, 2, 4)) is None              # 16 taps fit
    assert NARROW.kernel_split(ConvSpec(2, 2, 2, 5)) == (0, 3)            # 3 rows of 5 taps
    assert NARROW.kernel_split(ConvSpec(3, 2, 2, (3, 3, 3))) == (0, 1)    # a 3x3 plane each
    assert NARROW.kernel_split(ConvSpec(3, 2, 2, (3, 5, 5))) == (1, 3)    # z taps, y runs
    assert NARROW.kernel_split(ConvSpec(2, 2, 2, (2, 17))) == (1, 16)     # x runs of 16
    with pytest.raises(ValueError, match=exactly(
            "ConvTranspose2d kernel (5, 5) needs 50 weight words per input chunk; this "
            "engine's weight buffer holds 32")):
        NARROW.check_layer(ConvSpec(2, 2, 2, 5, transposed=True))


@pytest.mark.parametrize("seed", range(10))
def test_cut_kernels_on_the_engine_model_equal_golden(seed):
    rng = np.random.default_rng(300 + seed)
    dims = int(rng.integers(1, 4))
    while True:           # more than 16 taps: the 32-word buffer holds 2 rows x 16
        kernel = tuple(int(k) for k in rng.integers(1, 7 if dims > 1 else 30, dims))
        if 16 < math.prod(kernel) <= 60:
            break
    mode = str(rng.choice(["zeros", "reflect", "replicate", "circular"]))
    spec = ConvSpec(dims, int(rng.integers(1, 5)), int(rng.integers(1, 4)), kernel,
                    stride=tuple(int(s) for s in rng.integers(1, 3, dims)),
                    padding=tuple(int(k) // 2 for k in kernel),
                    dilation=tuple(int(d) for d in rng.integers(1, 2 if dims == 3 else 3, dims)),
                    padding_mode=mode)
    shape = (1, spec.in_channels, *(int(s) + 2 * k for s, k in zip(
        rng.integers(4, 9 if dims == 3 else 14, dims), kernel)))
    x = rng.integers(-128, 128, shape)
    w = rng.integers(-128, 128, spec.weight_shape)
    b = rng.integers(-100, 100, spec.out_channels)
    got, steps = run_model(spec, x, w, b, NARROW)
    assert any(any(step.tap_start) for step in steps), f"seed {seed}"
    assert np.array_equal(got, golden.convolution(spec, x, w, b)), f"seed {seed}: {spec} {shape}"


def test_r3d_stem_on_the_list_engine():
    """R3D-18's stem (3x7x7: 147 taps, 1,176 weight words per input chunk on the 8x8 array, more
    than a bank of its weight buffer) runs as three runs of a 7x7 plane: Verilator's list
    engine (the tests' 4x4 one: 588 words, bank of 128), a smaller clip, exact."""
    rng = np.random.default_rng(9)
    device = convhw.Device("verilator", VERILATED_LIST_CONFIG)
    spec = ConvSpec(3, 3, 4, (3, 7, 7), stride=(1, 2, 2), padding=(1, 3, 3), bias=False)
    x = rng.integers(-128, 128, (1, 3, 4, 20, 20))
    w = rng.integers(-128, 128, spec.weight_shape)
    y, _ = device.run(spec, x, w)
    assert np.array_equal(y, golden.convolution(spec, x, w))
