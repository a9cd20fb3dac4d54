"""The compiler and the NumPy job model: tiles, windows, address streams, accumulation.

The job model runs the exact address streams the engine's address generator emits
(``convhw.compiler.passes``); these tests prove those streams compute every layer bit-exactly,
whatever the tiling, before any gateware is involved.
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from convhw import golden
from convhw.compiler import compile_layer, passes, run_model
from convhw.compiler.lower import ListBuilder
from convhw.config import EngineConfig
from convhw.spec import ConvSpec

# Buffers small enough that most layers need several tiles, windows and input-channel runs.
TINY = [EngineConfig(rows=3, cols=5, input_depth=64, weight_depth=96, acc_depth=16),
        EngineConfig(rows=4, cols=2, input_depth=40, weight_depth=128, acc_depth=24),
        EngineConfig.preset("small")]


@st.composite
def layer_cases(draw, configs=tuple(TINY), max_dilation=3, max_padding=3, max_size=9):
    """(spec, input shape, one of ``configs``, seed): every op, padding mode and group
    structure, small sizes."""
    dims = draw(st.integers(1, 3))
    transposed = draw(st.booleans())
    if draw(st.booleans()):                                  # depthwise, maybe a multiplier
        groups = in_channels = draw(st.integers(1, 5))
        out_channels = in_channels * draw(st.integers(1, 2))
    else:
        groups = draw(st.sampled_from([1, 1, 2, 3]))
        in_channels = groups * draw(st.integers(1, 3))
        out_channels = groups * draw(st.integers(1, 3))
    ints = lambda lo, hi: st.tuples(*[st.integers(lo, hi)] * dims)  # noqa: E731
    kernel, stride = draw(ints(1, 3)), draw(ints(1, 3))
    dilation = draw(ints(1, max_dilation))
    padding = draw(ints(0, max_padding))
    mode = "zeros" if transposed else draw(st.sampled_from(
        ["zeros", "circular", "reflect", "replicate"]))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation)
                           ) if transposed else 0
    spec = ConvSpec(dims, in_channels, out_channels, kernel, stride, padding, dilation, groups,
                    draw(st.booleans()), mode, output_padding, transposed)
    shape = (draw(st.integers(1, 2)), in_channels, *draw(ints(1, max_size)))
    return spec, shape, draw(st.sampled_from(configs)), draw(st.integers(0, 2**32 - 1))


@settings(max_examples=300, deadline=None)
@given(layer_cases(), st.booleans())
def test_model_matches_golden(case, skip_borders):
    spec, shape, config, seed = case
    try:
        spec.output_shape(shape)
        config.check_layer(spec)
        legal = True
    except ValueError:
        legal = False
    # A layer the engine refuses is no case (not a pass): hypothesis draws another.
    assume(legal)
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, shape)
    w = rng.integers(-128, 128, spec.weight_shape)
    b = rng.integers(-1000, 1000, spec.out_channels) if spec.bias else None
    got, _ = run_model(spec, x, w, b, config, skip_borders=skip_borders)
    expected = golden.convolution(spec, x, w, b)
    assert np.array_equal(got, expected), f"seed {seed}: first mismatch at " \
                                          f"{np.argwhere(got != expected)[0]}"


def test_circular_tile_reads_wrapped_rows():
    # A 1-D circular layer too long for one tile: the first tile's window holds the last input
    # elements (wrapped) as a second segment, not the whole signal.
    spec = ConvSpec(1, 3, 2, 3, padding=1, padding_mode="circular")
    config = EngineConfig(rows=4, cols=2, input_depth=20, weight_depth=64, acc_depth=16)
    steps = compile_layer(spec, (1, 3, 40), config)
    first = steps[0].job.axes[2]
    assert (first.seg0_start, first.seg0_len) == (0, 17)         # outputs 0..15 read 0..16 ...
    assert (first.seg1_start, first.seg1_len) == (39, 1)         # ... and 39 (wrapped)
    last = steps[-1].job.axes[2]
    assert (last.seg0_start, last.seg1_start + last.seg1_len) == (0, 40)
    rng = np.random.default_rng(5)
    x, w = rng.integers(-128, 128, (1, 3, 40)), rng.integers(-128, 128, (2, 3, 3))
    assert np.array_equal(run_model(spec, x, w, None, config)[0],
                          golden.convolution(spec, x, w))


def test_input_channel_runs_accumulate():
    # 3x3 kernel, 40 input channels: the weight buffer holds 2 chunks, so each output tile
    # takes several jobs; all but the first accumulate, only the last is read out.
    spec = ConvSpec(2, 40, 4, 3, padding=1, bias=False)
    config = EngineConfig(rows=8, cols=4, input_depth=1024, weight_depth=144, acc_depth=64)
    steps = compile_layer(spec, (1, 40, 6, 6), config)
    assert [s.job.accumulate for s in steps] == [False, True, True]
    assert [s.read_out for s in steps] == [False, False, True]
    assert [s.job.in_chunks for s in steps] == [2, 2, 1]


def test_transposed_passes_skip_inserted_zeros():
    # ConvTranspose1d k4 s2 p1 on 8 inputs -> 16 outputs. Output o takes x[i] * w[k] with
    # o = 2i - 1 + k: even outputs only taps 1 and 3, odd outputs only taps 0 and 2, so each
    # phase runs two passes and no pass multiplies an inserted zero.
    spec = ConvSpec(1, 4, 4, 4, stride=2, padding=1, transposed=True, bias=False)
    config = EngineConfig(rows=4, cols=4, input_depth=64, weight_depth=64, acc_depth=64)
    (step,) = compile_layer(spec, (1, 4, 8), config)
    streamed = [(p.tap, p.init, p.cycles) for p in passes(step.job)]
    # tap 3 on even outputs would read x[-1] at o = 0: skipped (7 cycles). Tap 0 on odd outputs
    # would read x[8] at o = 15, but it initialises the phase, so it streams all 8 (one zero).
    assert streamed == [(1, True, 8), (3, False, 7), (0, True, 8), (2, False, 8)]
    useful = spec.useful_macs((1, 4, 8)) // (4 * 4)
    assert useful == 30 and sum(c for _, _, c in streamed) == useful + 1


def test_skip_borders_streams_only_real_taps():
    spec = ConvSpec(2, 4, 4, 3, padding=1, bias=False)
    config = EngineConfig.preset("small")
    (step,) = compile_layer(spec, (1, 4, 6, 6), config)
    cycles = [p.cycles for p in passes(step.job)]
    # the first pass initialises all 36 outputs; tap (0, 0) then reads 5x5 real pixels, etc.
    assert cycles[0] == 36
    assert sum(cycles[1:]) == spec.useful_macs((1, 4, 6, 6)) // 16 - 25


@pytest.mark.parametrize("name, kwargs, message", [
    # (a forward kernel that large is cut into runs of taps, EngineConfig.kernel_split)
    ("weight", dict(kernel_size=(9, 9), transposed=True),
     r"^ConvTranspose2d kernel \(9, 9\) needs 324 weight words per input chunk; this engine's "
     r"weight buffer holds 256$"),
    ("acc", dict(kernel_size=1, in_channels=20000), r"^Conv2d sums up to 20000 products per "
                                                    r"output"),
])
def test_layers_the_engine_cannot_hold(name, kwargs, message):
    config = EngineConfig(rows=4, cols=4, input_width=8, weight_width=8, acc_width=28,
                          weight_depth=256)
    args = dict(dims=2, in_channels=4, out_channels=4, kernel_size=3) | kwargs
    with pytest.raises(ValueError, match=message):
        config.check_layer(ConvSpec(**args))


def test_lower_once_then_add_the_layer():
    # ListBuilder.lower chooses how a layer runs (what add_layer would), so that a caller can
    # place its images first; add_layer refuses a choice made for another layer or point.
    config = EngineConfig()
    spec = ConvSpec(2, 16, 16, 3, padding=1)
    shape = (1, 16, 20, 20)
    builder = ListBuilder(config)
    lowering = builder.lower(spec, shape, requantize=True)
    addresses = dict(input_addr=0x1000, output_addr=0x9000, weight_addr=0x20000,
                     params_addr=0x30000)
    record = builder.add_layer(spec, shape, requantize=True, lowering=lowering, **addresses)
    plain = ListBuilder(config).add_layer(spec, shape, requantize=True, **addresses)
    assert (record.weight_bytes, record.params_bytes) == (lowering.weight_bytes,
                                                          lowering.params_bytes)
    assert record.descriptors == plain.descriptors
    with pytest.raises(ValueError, match="^lowering was made for another layer"):
        builder.add_layer(spec, shape, requantize=True, lowering=lowering, **addresses)
    with pytest.raises(ValueError, match="^lowering was made for another layer"):
        ListBuilder(config).add_layer(spec, shape, requantize=False, lowering=lowering,
                                      **addresses)


def test_tiling_and_steps_from_it_are_the_compilers():
    # ListBuilder ranks each distinct Tiling once: compile_layer from a tile_layer result is
    # compile_layer from the same parameters, and limits that change nothing give equal
    # tilings (a window limit above the largest window; a chunk limit above the layer's).
    from convhw.compiler.program import tile_layer
    config = EngineConfig()
    spec = ConvSpec(2, 20, 12, 3, padding=1, stride=2)
    shape = (2, 20, 30, 30)
    for limit, chunk_limit in ((None, None), (64, None), (None, 1)):
        tiling = tile_layer(spec, shape, config, limit, chunk_limit=chunk_limit)
        assert compile_layer(spec, shape, config, tiling=tiling) == compile_layer(
            spec, shape, config, window_limit=limit, chunk_limit=chunk_limit)
    plain = tile_layer(spec, shape, config)
    assert tile_layer(spec, shape, config, chunk_limit=64) == plain
    assert tile_layer(spec, shape, config, 1 << 20) == plain
    assert tile_layer(spec, shape, config, 64) != plain


def test_a_job_hash_is_kept_but_not_pickled():
    # Jobs key the compiler's tables, so their hash is computed once; a string's hash differs
    # between processes (a sweep's workers), so the stored one must not travel with a job.
    import pickle
    step = compile_layer(ConvSpec(2, 8, 8, 3, padding=1), (1, 8, 6, 6), EngineConfig())[0]
    job = step.job
    table = {job: "cycles"}
    copy = pickle.loads(pickle.dumps(job))
    assert "_hash" in job.__dict__ and "_hash" not in copy.__dict__
    assert copy == job and table[copy] == "cycles"
    assert step.block_key == (step.oc_start, step.ic_start, job.in_chunks, step.tap_start)
