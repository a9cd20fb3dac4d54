# amaranth: UnusedElaboratable=no
"""The pass sequencer against the compiler's descriptor model, in the Amaranth simulator."""

import dataclasses
import random

import pytest
from amaranth.sim import Simulator

from convhw.compiler.job import descriptors
from convhw.config import EngineConfig
from convhw.gateware.pass_sequencer import PassSequencer
from convhw.job_format import job_values

from .family import ForFamily
from .helpers import random_jobs, tiered

CONFIG = EngineConfig(rows=4, cols=4, input_depth=256, weight_depth=512, acc_depth=64)
# Narrow geometry registers, and whole passes only (no border skipping).
UP5K = EngineConfig.preset("up5k")


def job_registers(job):
    """The register values of a compiler job, as the sequencer's ``job`` port takes them."""
    return job_values(job)


def run_sequencer(jobs, seed, config=CONFIG, family=None, timeline=None, ready_ahead=False):
    """The passes the sequencer emits for each job, with random backpressure. ``family``
    elaborates it for that FPGA family; ``timeline`` (a list) receives ``(job, cycle)`` of
    every pass taken; with ``ready_ahead`` the testbench also gives ``ready_next`` (it draws
    each cycle's readiness a cycle ahead, in both forms)."""
    dut = PassSequencer(config, ready_ahead=ready_ahead)
    rng = random.Random(seed)
    got = []
    upcoming = [rng.random() < 0.7]           # backpressure from the streamer

    async def testbench(ctx):
        for job in jobs:
            ctx.set(dut.job, job_registers(job))
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            emitted = []
            cycles = 0
            while True:
                ready, upcoming[0] = upcoming[0], rng.random() < 0.7
                ctx.set(dut.passes.ready, ready)
                if ready_ahead:
                    ctx.set(dut.ready_next, upcoming[0])
                await ctx.delay(1e-9)
                done = ctx.get(dut.done)
                if ready and ctx.get(dut.passes.valid):
                    if timeline is not None:
                        timeline.append((len(got), cycles))
                    p = ctx.get(dut.passes.payload)
                    emitted.append((
                        tuple((p.axes[d].o_start, p.axes[d].count, p.axes[d].g_start)
                              for d in range(3)),
                        p.weights, p.chunk, bool(p.init), bool(p.zero)))
                await ctx.tick()
                cycles += 1
                if done:
                    break
                assert cycles < 20000, "sequencer hangs"
            got.append(emitted)

    sim = Simulator(dut if family is None else ForFamily(dut, family))
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return got


def expected(job):
    """The model's descriptors; the hardware names a pass's weights by their first word."""
    words = job.config.weight_depth
    return [(d.axes, (d.tap * job.in_chunks + d.chunk) * job.config.rows % words, d.chunk,
             d.init, d.zero) for d in descriptors(job)]


# The evaluation's register stages come with the deep pipeline, whatever the border skipping.
SHALLOW = dataclasses.replace(CONFIG, deep_pipeline=False)
UP5K_DEEP = dataclasses.replace(UP5K, deep_pipeline=True)


@pytest.mark.parametrize("config, seed", tiered(
    [(CONFIG, 1), (UP5K, 4), (SHALLOW, 6), (UP5K_DEEP, 7), (CONFIG, 2), (CONFIG, 3), (UP5K, 5)],
    fast=4, several=True))
def test_descriptors_match_model(config, seed):
    jobs = random_jobs(seed, config, 40)
    got = run_sequencer(jobs, seed, config)
    for index, (job, emitted) in enumerate(zip(jobs, got)):
        want = expected(job)
        assert emitted == want, f"seed {seed}, job {index}: {job}"


@pytest.mark.parametrize("config, seed", [(UP5K, 8), (CONFIG, 9)], ids=["up5k", "tiled"])
def test_ice40_form_emits_the_same_passes_in_the_same_cycles(config, seed):
    # For an iCE40 the last-tap/phase/chunk flags are comparisons of the counters, elsewhere
    # registers kept beside them: the same passes, taken in the same cycles.
    jobs = random_jobs(seed, config, 30)
    timelines = {}
    for family in (None, "ice40"):
        timelines[family] = []
        got = run_sequencer(jobs, seed, config, family, timelines[family])
        for index, (job, emitted) in enumerate(zip(jobs, got)):
            assert emitted == expected(job), f"{family}: seed {seed}, job {index}: {job}"
    assert timelines[None] == timelines["ice40"]
    assert len(timelines[None]) > 30


@pytest.mark.parametrize("config, seed", [(CONFIG, 10), (UP5K_DEEP, 11), (SHALLOW, 12)],
                         ids=["tiled", "up5k-deep", "shallow"])
def test_ready_ahead_form_emits_the_same_passes_in_the_same_cycles(config, seed):
    # The stepping enable registered from the taker's next readiness (the compute core's form
    # but for an iCE40) against the combinational one: the same passes, in the same cycles.
    jobs = random_jobs(seed, config, 30)
    timelines = {}
    for ahead in (False, True):
        timelines[ahead] = []
        got = run_sequencer(jobs, seed, config, timeline=timelines[ahead], ready_ahead=ahead)
        for index, (job, emitted) in enumerate(zip(jobs, got)):
            assert emitted == expected(job), f"ready_ahead {ahead}: seed {seed}, job {index}"
    assert timelines[False] == timelines[True], f"seed {seed}"
    assert len(timelines[False]) > 30


def _transposed_jobs(config, seed, count):
    """Jobs of random transposed layers with several input chunks (strides 2-3, kernels up to
    5): most of their taps do not reach a given phase."""
    from convhw.compiler.program import compile_layer
    from convhw.spec import ConvSpec
    rng = random.Random(seed)
    jobs = []
    while len(jobs) < count:
        dims = rng.choice((1, 2))
        stride = tuple(rng.choice((1, 2, 3)) for _ in range(dims))
        kernel = tuple(rng.randint(1, 5) for _ in range(dims))
        spec = ConvSpec(dims, rng.choice((config.rows + 1, 3 * config.rows)), config.cols,
                        kernel, stride=stride, padding=tuple(rng.randint(0, k - 1) for k in kernel),
                        transposed=True, bias=False)
        shape = (1, spec.in_channels, *(rng.randint(1, 4) for _ in range(dims)))
        try:
            spec.output_shape(shape)
        except ValueError:                  # (padding past the output)
            continue
        steps = compile_layer(spec, shape, config, skip_borders=bool(rng.randint(0, 3)))
        jobs.extend(step.job for step in steps[:2])
    return jobs[:count]


@pytest.mark.parametrize("config, seed", [(CONFIG, 13), (SHALLOW, 14), (UP5K_DEEP, 15)],
                         ids=["tiled", "shallow", "up5k-deep"])
def test_one_candidate_per_cycle_as_the_model_counts(config, seed):
    # Never stalled, the sequencer looks at one candidate per cycle: the pass of the model's
    # candidate i is on `passes` setup + i cycles after start. This pins the candidates the
    # cycle model counts, among them a transposed phase's unreached taps (one candidate each
    # with the deep pipeline, one per input chunk without: timing.skips_unreached_taps).
    from convhw.compiler.job import candidates
    jobs = random_jobs(seed, config, 12) + _transposed_jobs(config, seed, 12)
    dut = PassSequencer(config)
    seen = []

    async def testbench(ctx):
        ctx.set(dut.passes.ready, 1)
        for job in jobs:
            ctx.set(dut.job, job_registers(job))
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            cycles, emitted = 0, []
            while not ctx.get(dut.done):
                cycles += 1
                if ctx.get(dut.passes.valid):
                    emitted.append(cycles)
                await ctx.tick()
                assert cycles < 20000, "sequencer hangs"
            seen.append(emitted)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    skipped = 0
    for index, (job, emitted) in enumerate(zip(jobs, seen)):
        setup = PassSequencer.setup_latency_for(config, [a.stride for a in job.axes])
        want = [setup + i for i, desc in enumerate(candidates(job)) if desc is not None]
        assert emitted == want, f"seed {seed}, job {index}: {job}"
        if job.transposed and job.in_chunks > 1:
            skipped += 1
    assert skipped >= 6
