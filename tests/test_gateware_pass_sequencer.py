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
