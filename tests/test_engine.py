# amaranth: UnusedElaboratable=no
"""The whole engine in the Amaranth simulator: random layers of all six ops through the
Wishbone bus, bit-exact against the golden model, every job's CYCLES equal to the compiler's
cycle model; illegal configurations, abort and reset."""

import dataclasses

import numpy as np
import pytest
from amaranth.hdl import ClockDomain, Elaboratable, Module
from amaranth.sim import Simulator

from convhw import golden
from convhw.compiler import compile_layer
from convhw.compiler.cycles import job_cycles
from convhw.config import EngineConfig
from convhw.driver.amaranth_sim import run_layer, run_steps
from convhw.driver.program import register_writes
from convhw.gateware.engine import Engine
from convhw.registers import ErrorCode
from convhw.sim_helpers import wb_read, wb_write
from convhw.spec import ConvSpec

from .helpers import random_layer, tiered

SMALL = EngineConfig.preset("small")
# Tiny buffers so that layers tile, split input channels and use two-segment windows.
TINY = EngineConfig(rows=4, cols=4, input_depth=64, weight_depth=144, acc_depth=16)
# 8-bit coordinates, 4-bit kernel, stride and dilation, no border skipping.
UP5K = EngineConfig.preset("up5k")


def check_layer(spec, shape, config, seed, **kwargs):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, shape)
    w = rng.integers(-128, 128, spec.weight_shape)
    b = rng.integers(-1000, 1000, spec.out_channels) if spec.bias else None
    got, steps, records = run_layer(spec, x, w, b, config, **kwargs)
    expected = golden.convolution(spec, x, w, b)
    mismatch = np.argwhere(got != expected)
    assert not mismatch.size, f"seed {seed}, {spec}, input {shape}: first mismatch at " \
                              f"{tuple(mismatch[0])}: {got[tuple(mismatch[0])]} != " \
                              f"{expected[tuple(mismatch[0])]}"
    model = [job_cycles(step.job) for step in steps]
    assert [r.cycles for r in records] == model, f"seed {seed}, {spec}: cycles"
    return steps


#: The most cycles (by the model) and jobs a random layer of the Amaranth simulator's tests
#: may take; a larger one is drawn again. The simulator runs the whole engine at some hundred
#: cycles a second, and one 32-job, 14,752-cycle ConvTranspose3d was half the slow tier's
#: wall time on two cores. Larger random layers run on Verilator
#: (tests/test_verilator_transport.py).
MAX_CYCLES, MAX_JOBS = 6000, 12


def random_case(seed, config):
    rng = np.random.default_rng(seed)
    while True:
        spec, shape = random_layer(rng, max_size=7, config=config)
        steps = compile_layer(spec, shape, config)
        if (len(steps) <= MAX_JOBS
                and sum(job_cycles(step.job) for step in steps) <= MAX_CYCLES):
            return spec, shape


# 64 seeded random layers: 40 on the small preset, 24 on tiny buffers (multi-tile); make test
# runs one of each, make check (CI) 13 and 8 more (CI's half hour), pytest -m exhaustive the
# rest.
@pytest.mark.parametrize("seed", tiered(range(40), fast=1, slow=13))
def test_random_layer_small(seed):
    spec, shape = random_case(seed, SMALL)
    check_layer(spec, shape, SMALL, seed)


@pytest.mark.parametrize("seed", tiered(range(100, 124), fast=1, slow=8))
def test_random_layer_tiled(seed):
    spec, shape = random_case(seed, TINY)
    steps = check_layer(spec, shape, TINY, seed)
    assert len(steps) >= 1


@pytest.mark.parametrize("seed", tiered(range(200, 212), fast=1))
def test_random_layer_up5k(seed):
    spec, shape = random_case(seed, UP5K)
    check_layer(spec, shape, UP5K, seed)


def test_pes_multiplying_in_logic_give_the_same_sums_and_cycles():
    # EngineConfig.dsp_pes: PEs 5..15 of the 4x4 array multiply in logic (shift and add), not
    # with the behavioural multiply the DSP blocks are made from; results and CYCLES equal.
    config = dataclasses.replace(SMALL, dsp_pes=5)
    spec, shape = random_case(7, config)
    check_layer(spec, shape, config, seed=7)
    check_layer(ConvSpec(2, 4, 4, 3, padding=1), (1, 4, 5, 5), config, seed=8)


@pytest.mark.parametrize("spec, shape", tiered([
    # 255 inputs and outputs, kernel 15: the coordinate and parameter registers at their widest
    (ConvSpec(1, 2, 3, 15, padding=7, padding_mode="reflect"), (1, 2, 255)),
    (ConvSpec(1, 3, 2, 15, padding=14, dilation=2), (1, 3, 100)),
    # 17 inputs to 255 outputs in 15 phases
    (ConvSpec(1, 2, 2, 15, stride=15, transposed=True), (1, 2, 17)),
    (ConvSpec(2, 2, 2, (3, 15), stride=(15, 1), dilation=(15, 1), padding=(14, 7),
              padding_mode="circular"), (1, 2, 31, 9)),
], fast=0, several=True))
def test_up5k_geometry_limits(spec, shape):
    check_layer(spec, shape, UP5K, seed=13)


@pytest.mark.parametrize("spec, shape", tiered([
    (ConvSpec(2, 4, 4, 3, padding=2, dilation=2, padding_mode="reflect"), (1, 4, 7, 9)),
    # (circular tiles in make test: tests/test_compiler.py, on the compiler's model)
    (ConvSpec(2, 6, 5, 3, padding=1, padding_mode="circular"), (1, 6, 9, 7)),
    (ConvSpec(1, 3, 3, 5, padding=4, padding_mode="replicate"), (2, 3, 23)),
    (ConvSpec(3, 4, 4, 3, padding=1, groups=4, padding_mode="circular"), (1, 4, 3, 4, 5)),
    (ConvSpec(2, 4, 2, 4, stride=2, padding=1, transposed=True), (1, 4, 5, 6)),
    (ConvSpec(1, 2, 4, 3, stride=3, output_padding=2, groups=2, transposed=True), (1, 2, 6)),
], fast=1, several=True))
def test_tiles_in_every_padding_mode(spec, shape):
    # Tiles whose circular, reflected or replicated sources lie outside the tile.
    steps = check_layer(spec, shape, TINY, seed=7)
    assert len({tuple(a.out_start for a in s.job.axes) for s in steps}) > 1


# One lane and one column: weight loads take two cycles, so passes of one to three outputs
# follow each other closely and an accumulator entry is added to again while its previous sum
# is still in the deep pipeline's read-add-write (forwarding distances 1, 2 and 3).
NARROW_ARRAY = EngineConfig(rows=1, cols=1, input_depth=256, weight_depth=256, acc_depth=16)


@pytest.mark.parametrize("config", tiered([NARROW_ARRAY,
                                           EngineConfig(rows=2, cols=1, input_depth=256,
                                                        weight_depth=256, acc_depth=16),
                                           EngineConfig(rows=1, cols=1, input_depth=256,
                                                        weight_depth=256, acc_depth=16,
                                                        deep_pipeline=False)], fast=1),
                         ids=["1x1", "2x1", "1x1-shallow"])
@pytest.mark.parametrize("spec, shape", [
    (ConvSpec(1, 3, 2, 3), (1, 3, 3)),                 # one output: the same entry each pass
    (ConvSpec(1, 3, 2, 3), (1, 3, 4)),                 # two outputs
    (ConvSpec(1, 3, 2, 3), (1, 3, 5)),                 # three outputs
    (ConvSpec(1, 2, 2, 2, padding=1), (1, 2, 2)),      # border passes of different lengths
    # a pass ends on the entry the next one starts with, right after it (distance 1)
    (ConvSpec(1, 3, 2, 2, stride=2, padding=3, dilation=3), (2, 3, 2)),
    (ConvSpec(2, 2, 1, 2), (1, 2, 3, 2)),
    (ConvSpec(1, 2, 2, 3, stride=2, transposed=True), (1, 2, 1)),
    (ConvSpec(1, 2, 2, 3, groups=2, padding=1), (1, 2, 2)),
])
def test_accumulator_back_to_back(config, spec, shape):
    check_layer(spec, shape, config, seed=5)


def test_buffers_over_the_bus():
    spec = ConvSpec(2, 5, 3, 3, stride=2, padding=1, groups=1)
    check_layer(spec, (1, 5, 7, 6), SMALL, seed=3, direct_buffers=False)


def test_skip_borders_off_same_result_more_cycles():
    spec = ConvSpec(2, 4, 4, 3, padding=1)
    with_skip = check_layer(spec, (1, 4, 6, 6), SMALL, seed=4)
    without = check_layer(spec, (1, 4, 6, 6), SMALL, seed=4, skip_borders=False)
    assert job_cycles(without[0].job) > job_cycles(with_skip[0].job)


# -- control: errors, abort, reset ------------------------------------------------------------

class WithReset(Elaboratable):
    """The engine in a sync domain whose reset a testbench can drive."""

    def __init__(self, dut):
        self.dut = dut
        self.domain = ClockDomain("sync")

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = self.domain
        m.submodules.engine = self.dut
        return m


def simulate(testbench, config=SMALL):
    dut = Engine(config)
    top = WithReset(dut)
    dut.reset = top.domain.rst
    sim = Simulator(top)
    sim.add_clock(1e-8)
    async def bench(ctx):
        await testbench(ctx, dut)

    sim.add_testbench(bench)
    sim.run()


async def program(ctx, dut, job, **changes):
    regmap = dut.register_map
    for address, value in register_writes(regmap, job):
        await wb_write(ctx, dut.wb, address, value)
    for name, value in changes.items():
        await wb_write(ctx, dut.wb, regmap[name].address, value)


async def start_and_wait(ctx, dut, limit=100_000):
    regmap = dut.register_map
    await wb_write(ctx, dut.wb, regmap["CTRL"].address, 1)
    for _ in range(limit):
        status = await wb_read(ctx, dut.wb, regmap["STATUS"].address)
        if not status & 1:
            return status, await wb_read(ctx, dut.wb, regmap["ERROR"].address)
    raise AssertionError("engine hangs")


def a_job(config=SMALL):
    spec = ConvSpec(2, 4, 4, 3, padding=1)
    return spec, compile_layer(spec, (1, 4, 8, 8), config)[0]


# Two codes in `make test` (the list engine's tests take each code there), every case in the
# slow tier.
@pytest.mark.parametrize("changes, code", tiered([
    ({"Y_KERNEL": 0}, ErrorCode.BAD_GEOMETRY),
    ({"Y_OUT_LEN": 200}, ErrorCode.TILE_TOO_LARGE),
    ({"X_SEG0_LEN": 300}, ErrorCode.WINDOW_TOO_LARGE),
    ({"Z_KERNEL": 60}, ErrorCode.WEIGHTS_TOO_LARGE),
    ({"JOB_MODE": 1 | 1 << 1}, ErrorCode.BAD_PADDING),          # transposed, circular
    ({"X_STRIDE": 0}, ErrorCode.BAD_GEOMETRY),
    ({"IN_CHUNKS": 0}, ErrorCode.BAD_GEOMETRY),
    ({"IN_CHUNKS": 40}, ErrorCode.WINDOW_TOO_LARGE),
    ({"JOB_MODE": 2 << 1, "Y_PAD_LO": 8}, ErrorCode.BAD_PADDING),  # reflect, pad >= size
    ({"JOB_MODE": 1 << 1, "X_PAD_LO": 9}, ErrorCode.BAD_PADDING),  # circular, pad > size
], fast=2, several=True))
def test_illegal_configuration_sets_error_and_returns_to_idle(changes, code):
    _, step = a_job()

    async def testbench(ctx, dut):
        await program(ctx, dut, step.job, **changes)
        status, error = await start_and_wait(ctx, dut)
        assert error == code, ErrorCode(error)
        assert status == 0b110                    # done, error, not busy
        # still usable: a legal job afterwards runs to completion without error
        await program(ctx, dut, step.job)
        status, error = await start_and_wait(ctx, dut)
        assert (status, error) == (0b010, 0)
        cycles = await wb_read(ctx, dut.wb, dut.register_map["CYCLES"].address)
        assert cycles == job_cycles(step.job)

    simulate(testbench)


def test_up5k_refuses_a_source_past_its_coordinates():
    # Issue 11's defect C on the up5k preset, which once left the check out: X OUT_START 200,
    # STRIDE 2 puts the last output's sources at 2 * (200 + OUT_LEN - 1) and beyond, past the
    # 8-bit coordinates, where they wrap (the test fails with source_range_check="off").
    _, step = a_job(UP5K)

    async def testbench(ctx, dut):
        await program(ctx, dut, step.job, X_OUT_START=200, X_STRIDE=2)
        status, error = await start_and_wait(ctx, dut)
        assert (status, error) == (0b110, ErrorCode.SOURCE_RANGE), ErrorCode(error)
        await program(ctx, dut, step.job)
        status, error = await start_and_wait(ctx, dut)
        assert (status, error) == (0b010, 0)

    simulate(testbench, UP5K)


def test_abort_mid_job():
    _, step = a_job()

    async def testbench(ctx, dut):
        regmap = dut.register_map
        await program(ctx, dut, step.job)
        await wb_write(ctx, dut.wb, regmap["CTRL"].address, 1)
        for _ in range(40):
            await ctx.tick()
        assert await wb_read(ctx, dut.wb, regmap["STATUS"].address) & 1
        await wb_write(ctx, dut.wb, regmap["CTRL"].address, 2)     # ABORT
        status = await wb_read(ctx, dut.wb, regmap["STATUS"].address)
        assert status == 0b110
        assert await wb_read(ctx, dut.wb, regmap["ERROR"].address) == ErrorCode.ABORTED
        status, error = await start_and_wait(ctx, dut)
        assert (status, error) == (0b010, 0)
        assert await wb_read(ctx, dut.wb, regmap["CYCLES"].address) == job_cycles(step.job)

    simulate(testbench)


def test_reset_mid_job_leaves_engine_idle_and_usable():
    spec, step = a_job()
    rng = np.random.default_rng(9)
    x = rng.integers(-128, 128, (1, 4, 8, 8))
    w = rng.integers(-128, 128, spec.weight_shape)

    async def testbench(ctx, dut):
        regmap = dut.register_map
        await program(ctx, dut, step.job)
        await wb_write(ctx, dut.wb, regmap["CTRL"].address, 1)
        for _ in range(100):
            await ctx.tick()
        ctx.set(dut.reset, 1)
        await ctx.tick()
        ctx.set(dut.reset, 0)
        assert await wb_read(ctx, dut.wb, regmap["STATUS"].address) == 0
        out = np.zeros((1, 4, 8, 8), dtype=np.int64)
        records = []
        await run_steps(ctx, dut, spec, [step], x, w, None, out=out, records=records)
        assert np.array_equal(out, golden.convolution(spec, x, w))
        assert records[0].cycles == job_cycles(step.job)

    simulate(testbench)


@pytest.mark.parametrize("spec, shape, config", tiered([
    (ConvSpec(2, 4, 8, 3, padding=2, groups=4, dilation=(2, 1)), (1, 4, 7, 6), SMALL),
    # joined rows (compiler.job.fir_joined): same padding, asymmetric, a 3-D one plane deep
    (ConvSpec(2, 8, 8, 3, padding=1, groups=8), (1, 8, 5, 4), SMALL),
    (ConvSpec(2, 4, 4, (3, 4), padding=((1, 1), (2, 1)), groups=4), (1, 4, 6, 3), SMALL),
    # polyphase: x strides (timing.fir_takes_stride), 2 and 3 phases, 2 and 3 taps, x tiles
    (ConvSpec(2, 8, 8, 3, stride=2, padding=1, groups=8), (1, 8, 9, 12), SMALL),
    (ConvSpec(1, 4, 8, 5, stride=2, padding=((1, 3),), groups=4), (1, 4, 17), SMALL),
    (ConvSpec(1, 4, 4, 3, stride=2, padding=1, groups=4), (1, 4, 45), TINY),
    # rows that share their padding words (timing.fir_shares_padding), in y tiles
    (ConvSpec(2, 4, 4, (2, 3), padding=(1, 2), groups=4), (1, 4, 6, 5), TINY),
    (ConvSpec(2, 8, 8, 3, padding=1, groups=8), (1, 8, 9, 11), SMALL),
    (ConvSpec(1, 4, 4, 4, padding="same", groups=4, padding_mode="reflect"), (2, 4, 13), TINY),
    # (the rest: pytest -m exhaustive)
    (ConvSpec(2, 6, 6, (2, 3), stride=(2, 1), padding=1, groups=6, padding_mode="circular"),
     (1, 6, 8, 9), TINY),
    (ConvSpec(3, 4, 4, 3, padding=1, groups=4, padding_mode="replicate"), (1, 4, 3, 4, 5),
     TINY),
    # x tiles (padding at one end only: none shared)
    (ConvSpec(1, 4, 4, 3, padding=2, groups=4), (1, 4, 30), TINY),
    (ConvSpec(1, 4, 4, 3, padding=5, groups=4), (1, 4, 9), SMALL),
    (ConvSpec(2, 4, 4, (2, 4), stride=(1, 3), padding=1, groups=4), (1, 4, 3, 31), SMALL),
    (ConvSpec(3, 4, 4, (1, 2, 3), padding=((0, 0), (1, 0), (0, 2)), groups=4), (1, 4, 1, 4, 5),
     SMALL),
], fast=1, slow=8, several=True))
def test_depthwise_fir_mode(spec, shape, config):
    steps = check_layer(spec, shape, config, seed=11)
    kernel, stride = spec.kernel_size[-1], spec.stride[-1]
    assert all(step.job.fir_taps == -(-kernel // stride) for step in steps)
    dense = compile_layer(spec, shape, config, fir=False)
    assert sum(job_cycles(s.job) for s in steps) < sum(job_cycles(s.job) for s in dense)


@pytest.mark.parametrize("relu", tiered([True, False], fast=1))
def test_requantised_output(relu):
    # The output stage on the engine's read path: per-channel multiplier and shift, rounding
    # half up, saturation to int8, optional ReLU; golden.requantize is the same rule.
    spec = ConvSpec(2, 6, 6, 3, padding=1, groups=2)
    rng = np.random.default_rng(21)
    x = rng.integers(-128, 128, (1, 6, 6, 5))
    w = rng.integers(-128, 128, spec.weight_shape)
    b = rng.integers(-5000, 5000, 6)
    multipliers = rng.integers(-2**15, 2**15, 6)
    shifts = rng.integers(8, 24, 6)
    got, _, _ = run_layer(spec, x, w, b, SMALL, requantize=(multipliers, shifts), relu=relu)
    expected = golden.requantize(golden.convolution(spec, x, w, b),
                                 multipliers.reshape(-1, 1, 1), shifts.reshape(-1, 1, 1),
                                 bits=8, relu=relu)
    assert np.array_equal(got, expected)
    assert got.min() >= (0 if relu else -128) and got.max() <= 127
    assert len(np.unique(got)) > 10           # not everything saturated or zero


# -- the accumulator's last write and DONE ----------------------------------------------------

@pytest.mark.parametrize("config, spec, shape", [
    (SMALL, ConvSpec(2, 4, 4, 3, padding=1), (1, 4, 6, 6)),
    (SMALL, ConvSpec(2, 8, 8, 3, padding=1, groups=8), (1, 8, 5, 7)),              # FIR mode
    (SMALL, ConvSpec(1, 2, 2, 3, stride=2, transposed=True), (1, 2, 4)),
    # tiles (the slow tier's)
    pytest.param(TINY, ConvSpec(2, 6, 5, 3, padding=1, padding_mode="circular"), (1, 6, 9, 7),
                 marks=pytest.mark.slow),
    (NARROW_ARRAY, ConvSpec(1, 3, 2, 3), (1, 3, 4)),                  # the shortest drain
    (dataclasses.replace(NARROW_ARRAY, deep_pipeline=False), ConvSpec(1, 3, 2, 3), (1, 3, 4)),
    (UP5K, ConvSpec(2, 2, 2, 3, padding=1, padding_mode="reflect"), (1, 2, 5, 6)),
], ids=["small", "small-fir", "small-transposed", "tiny-tiled", "1x1", "1x1-shallow",
        "up5k-shallow"])
def test_last_accumulator_write_before_done(config, spec, shape):
    # The controller's drain must outlast the accumulator's pipeline: once STATUS shows DONE
    # the host may read the results, so no write may happen at or after that cycle. DONE is
    # high from the first cycle `busy` is low after a job.
    rng = np.random.default_rng(17)
    x = rng.integers(-128, 128, shape)
    w = rng.integers(-128, 128, spec.weight_shape)
    steps = compile_layer(spec, shape, config)
    dut = Engine(config)
    jobs = []               # per job: [first busy cycle, DONE cycle, last write cycle]
    idle_writes = []

    async def monitor(ctx):
        cycle, was_busy = 0, False
        async for _, _, writing, busy in ctx.tick().sample(dut.accumulator.writing, dut.busy):
            if busy and not was_busy:
                jobs.append([cycle, None, None])
            elif was_busy and not busy:
                jobs[-1][1] = cycle
            if writing:
                if busy:
                    jobs[-1][2] = cycle
                else:
                    idle_writes.append(cycle)
            cycle, was_busy = cycle + 1, busy

    out = np.zeros(spec.output_shape(shape), dtype=np.int64)

    async def host(ctx):
        await run_steps(ctx, dut, spec, steps, x, w, None, out=out)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(monitor)
    sim.add_testbench(host)
    sim.run()
    assert np.array_equal(out, golden.convolution(spec, x, w))
    assert len(jobs) == len(steps) and not idle_writes, (jobs, idle_writes)
    for start, done, last_write in jobs:
        assert last_write is not None and start < last_write < done, (start, done, last_write)

