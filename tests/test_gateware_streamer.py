# amaranth: UnusedElaboratable=no
"""The streamer against the compiler's job model (:func:`convhw.compiler.job.expand`), in the
Amaranth simulator: every element of every pass of random jobs (all padding modes, transposed
layers, two-segment windows of tiled circular layers, zero passes), descriptors offered with
random gaps and back to back, pass timing and ``busy``, a window that misses a source, and
Verilog conversion.

(The first line silences Amaranth's "created but never used" warning for the streamers that the
constructor tests build and never elaborate.)"""

import collections
import dataclasses
import random
import re

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from convhw import timing
from convhw.compiler.job import (
    Axis,
    Descriptor,
    Job,
    descriptors,
    expand,
    fir_joined,
    fir_overlap,
    fir_rows,
)
from convhw.compiler.program import compile_layer
from convhw.config import EngineConfig
from convhw.gateware.streamer import Streamer
from convhw.generate import TargetFamily
from convhw.spec import ConvSpec
from convhw.testing import random_layer

from .family import ForFamily
from .helpers import exactly, random_jobs
from .test_gateware_pass_sequencer import job_registers

# Buffers this small make the compiler tile most layers, so that circular layers get windows of
# two segments and jobs start mid-layer.
TILED = EngineConfig(rows=4, cols=4, input_depth=64, weight_depth=512, acc_depth=16)
SMALL = EngineConfig.preset("small")
# The same without the deep pipeline: two register stages after the counters instead of six.
SHALLOW = dataclasses.replace(TILED, deep_pipeline=False)

# (config, seed, jobs): every case is one simulation of its jobs one after the other.
CASES = ([(TILED, seed, 40) for seed in (1, 2, 3, 4, 5, 6)]
         + [(SMALL, seed, 20) for seed in (7, 8, 9)]
         + [(SHALLOW, seed, 30) for seed in (10, 11)])
NAMES = {id(TILED): "tiled", id(SMALL): "small", id(SHALLOW): "shallow"}


def payload(desc, bank):
    return {
        "desc": {
            "axes": [{"o_start": o, "count": n, "g_start": g} for o, n, g in desc.axes],
            "chunk": desc.chunk, "init": int(desc.init), "zero": int(desc.zero),
        },
        "bank": bank,
    }


@dataclasses.dataclass
class Offer:
    """One descriptor as the testbench offered it."""

    job: int
    desc: Descriptor
    bank: int
    presented: int = -1       # cycle in which valid went high
    taken: int = -1           # cycle in which valid and ready were both high


def random_gap(rng):
    """Idle cycles before a descriptor: none half of the time (so that it waits for the pass
    before it), else up to a few passes' worth."""
    return 0 if rng.random() < 0.5 else rng.randint(1, 12)


def simulate(config, jobs, seed, gap=random_gap, descs=descriptors, family=None):
    """Run ``jobs`` through a streamer, each descriptor in ``descs(job)`` offered after
    ``gap(rng)`` idle cycles; a job's registers are set once the job before it has left the
    streamer, in the cycle in which its first descriptor may be offered. ``family`` elaborates
    the streamer for that FPGA family. Returns the streamer, the offers, the emitted elements as
    ``(cycle, fields)`` and ``busy`` per cycle."""
    dut = Streamer(config)
    rng = random.Random(seed)
    offers, elements, busy = [], [], []
    cycle = 0

    async def step(ctx):
        nonlocal cycle
        busy.append(ctx.get(dut.busy))
        if ctx.get(dut.out_valid):
            elements.append((cycle, {name: ctx.get(getattr(dut, name)) for name in (
                "in_addr", "zero", "acc_addr", "init", "bank", "pass_last", "error", "write",
                *(("word_row", "sum_row") if timing.fir_shares_padding(config) else ()))}))
        else:
            assert not ctx.get(dut.pass_last) and not ctx.get(dut.error)
        ready = ctx.get(dut.passes.ready)
        await ctx.tick()
        cycle += 1
        return ready

    async def testbench(ctx):
        for index, job in enumerate(jobs):
            # The previous job has left the streamer: its registers may change,
            # streamer_job_setup cycles before its first pass is offered (Streamer's contract).
            ctx.set(dut.job, job_registers(job))
            for _ in range(timing.streamer_job_setup(config)):
                await step(ctx)
            for desc in descs(job):
                offer = Offer(index, desc, rng.randrange(2))
                for _ in range(gap(rng)):
                    await step(ctx)
                ctx.set(dut.passes.valid, 1)
                ctx.set(dut.passes.payload, payload(desc, offer.bank))
                offer.presented = cycle
                while True:
                    taken_in = cycle
                    if await step(ctx):
                        break
                offer.taken = taken_in
                offers.append(offer)
                ctx.set(dut.passes.valid, 0)
            while ctx.get(dut.busy):
                await step(ctx)
        for _ in range(dut.latency + 2):
            await step(ctx)

    sim = Simulator(dut if family is None else ForFamily(dut, family))
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return dut, offers, elements, busy


def split_passes(elements):
    """Emitted elements grouped into passes by ``pass_last``."""
    passes, current = [], []
    for element in elements:
        current.append(element)
        if element[1]["pass_last"]:
            passes.append(current)
            current = []
    assert not current, "elements after the last pass_last"
    return passes


def check_run(jobs, seed, dut, offers, elements, busy):
    """Every element against :func:`expand`, and the pass timing; returns how many pass
    boundaries were back to back."""
    latency = dut.latency
    emitted = split_passes(elements)
    assert len(emitted) == len(offers), f"seed {seed}: {len(emitted)} passes emitted"
    back_to_back = 0
    previous_last = None
    in_flight = [False] * len(busy)
    for number, (offer, got) in enumerate(zip(offers, emitted)):
        job = jobs[offer.job]
        where = f"seed {seed}, job {offer.job}, pass {number}: {offer.desc}, {job}"
        want = expand(job, offer.desc)
        cycles = [c for c, _ in got]
        # No stall within a pass, and the first element `latency` cycles after the counters.
        assert cycles == list(range(offer.taken + 1 + latency, offer.taken + 1 + latency
                                    + want.cycles)), where
        # The descriptor is taken as soon as it is offered, or with the previous pass's last
        # element if it was waiting for it: then the passes follow without a bubble.
        if previous_last is not None and offer.presented <= previous_last - latency:
            assert offer.taken == previous_last - latency, where
            assert cycles[0] == previous_last + 1, where
            back_to_back += 1
        else:
            assert offer.taken == offer.presented, where
        previous_last = cycles[-1]
        for cycle in range(offer.taken + 1, cycles[-1] + 1):
            in_flight[cycle] = True
        for i, (_, fields) in enumerate(got):
            expected_zero = want.in_addr[i] < 0
            assert fields["zero"] == expected_zero, f"{where}, element {i}"
            if not expected_zero:
                assert fields["in_addr"] == want.in_addr[i], f"{where}, element {i}"
            write = True if want.write is None else bool(want.write[i])
            assert fields["write"] == write, f"{where}, element {i}"
            if write:       # FIR mode: the extra words of a row have no accumulator entry
                assert fields["acc_addr"] == want.acc_addr[i], f"{where}, element {i}"
            if want.word_row is not None and timing.fir_shares_padding(job.config):
                assert (fields["word_row"], fields["sum_row"]) == (
                    want.word_row[i], want.sum_row[i]), f"{where}, element {i}: row tags"
            assert (fields["init"], fields["bank"]) == (offer.desc.init, offer.bank), where
            assert fields["pass_last"] == (i == want.cycles - 1), f"{where}, element {i}"
            assert not fields["error"], f"{where}, element {i}"
    assert busy == in_flight, f"seed {seed}: busy"
    return back_to_back


def reads_segment1(job):
    """Whether some element of the job reads a coordinate held in window segment 1."""
    windows = [axis.window for axis in job.axes]
    for desc in descriptors(job):
        for address in expand(job, desc).in_addr:
            if address < 0:
                continue
            pixel = address // job.in_chunks
            local = (pixel // (windows[1] * windows[2]), pixel // windows[2] % windows[1],
                     pixel % windows[2])
            if any(lc >= axis.seg0_len for lc, axis in zip(local, job.axes)):
                return True
    return False


def test_cases_cover_the_features():
    # The random jobs below are only worth as much as what they exercise (rows of FIR
    # passes that share padding words: FIR_CASES).
    seen = collections.Counter()
    for config, seed, count in CASES:
        for job in random_jobs(seed, config, count):
            seen[job.padding_mode] += 1
            seen["transposed"] += job.transposed
            seen["segment 1"] += reads_segment1(job)
            seen["accumulate"] += job.accumulate
            seen["whole borders"] += not job.skip_borders
            seen["FIR"] += bool(job.fir_taps)
            for desc in descriptors(job):
                seen["zero pass"] += desc.zero
                seen["padding element"] += bool((expand(job, desc).in_addr < 0).any()
                                                and not desc.zero)
    print(dict(seen))
    for feature in ("zeros", "circular", "reflect", "replicate", "transposed", "segment 1",
                    "accumulate", "whole borders", "zero pass", "padding element", "FIR"):
        assert seen[feature] > 0, feature
    assert sum(count for _, _, count in CASES) >= 100


def fir_jobs(seed: int, config, count: int):
    """``count`` jobs of random depthwise layers in the FIR mode with zeros padding, asymmetric
    too, so that the rows of many passes share their padding words (fir_overlap), some in
    tiles that begin or end mid-layer; and polyphase ones (x strides)."""
    rng = np.random.default_rng(seed)
    jobs = []
    while len(jobs) < count:
        if rng.random() < 0.5:
            spec, shape = random_layer(rng, op=(int(rng.integers(1, 4)), False),
                                       padding_mode="zeros", grouping="depthwise",
                                       unit_x=True, asymmetric=True, config=config)
        else:
            # polyphase: an x stride of 2 or 3 and a longer kernel
            stride = int(rng.integers(2, 4))
            kernel = int(rng.integers(stride + 1, 2 * stride + 2))
            dims = int(rng.integers(1, 3))
            channels = int(rng.integers(1, config.rows + 3))
            spec = ConvSpec(dims, channels, channels, (2,) * (dims - 1) + (kernel,),
                            stride=(1,) * (dims - 1) + (stride,), groups=channels,
                            padding=tuple((int(rng.integers(0, 4)), int(rng.integers(0, 4)))
                                          for _ in range(dims)))
            shape = (1, channels) + tuple(int(v) for v in rng.integers(kernel, 20, dims))
        steps = compile_layer(spec, shape, config, skip_borders=bool(rng.integers(4)))
        jobs.extend(step.job for step in steps[:3] if step.job.fir_taps)
    return jobs[:count]


def test_fir_cases_share_padding():
    # (and join their rows: fir_joined)
    # The FIR jobs below are worth what they exercise: rows that share words, of every
    # overlap the kernels allow, and rows that cannot (no padding at one end).
    jobs = [job for config, seed, count in FIR_CASES for job in fir_jobs(seed, config, count)]
    overlaps = collections.Counter(fir_overlap(job) for job in jobs if not fir_joined(job))
    strides = collections.Counter(job.axes[2].stride for job in jobs)
    joined = collections.Counter(fir_rows(job) for job in jobs if fir_joined(job))
    print(dict(overlaps), dict(strides), dict(joined))
    assert overlaps[0] and overlaps[1] and overlaps[2]
    assert len(joined) >= 3
    assert strides[1] and strides[2] and strides[3]


#: (config, seed, jobs) of FIR jobs with zeros padding
FIR_CASES = [(TILED, 30, 40), (SMALL, 31, 30), (TILED, 32, 40), (SHALLOW, 33, 20)]


@pytest.mark.parametrize("config, seed, count", [
    pytest.param(*case, marks=() if i < 2 else pytest.mark.slow)
    for i, case in enumerate(FIR_CASES)], ids=lambda v: getattr(v, "rows", v))
def test_fir_jobs_match_model(config, seed, count):
    jobs = fir_jobs(seed, config, count)
    dut, offers, elements, busy = simulate(config, jobs, seed)
    check_run(jobs, seed, dut, offers, elements, busy)


#: The seeds of CASES that `make test` runs (one or two per configuration); the slow tier runs
#: them all.
FAST_SEEDS = {1, 2, 7, 10}


@pytest.mark.parametrize("config, seed, count", [
    pytest.param(*case, marks=() if case[1] in FAST_SEEDS else pytest.mark.slow)
    for case in CASES], ids=[f"{NAMES[id(c)]}-{s}" for c, s, _ in CASES])
def test_random_jobs_match_model(config, seed, count):
    jobs = random_jobs(seed, config, count)
    dut, offers, elements, busy = simulate(config, jobs, seed)
    back_to_back = check_run(jobs, seed, dut, offers, elements, busy)
    assert back_to_back > 0, f"seed {seed}: no back-to-back passes"


@pytest.mark.parametrize("config, seed", [(TILED, 12), (SMALL, 13), (SHALLOW, 14)],
                         ids=["tiled", "small", "shallow"])
def test_ice40_address_form_matches_model(config, seed):
    # For an iCE40 the input address is (row*Wx + lx)*in_chunks + chunk after the last stage
    # (one multiplier fewer than elsewhere): the same elements in the same cycles.
    jobs = random_jobs(seed, config, 20)
    dut, offers, elements, busy = simulate(config, jobs, seed, family="ice40")
    check_run(jobs, seed, dut, offers, elements, busy)


def test_ice40_form_has_fewer_multipliers():
    def multiplies(family):
        text = verilog.convert(Streamer(EngineConfig.preset("default")), emit_src=False,
                               platform=family and TargetFamily(family))
        # Products of two signals (the reflect padding's doubling is a constant factor).
        return len(re.findall(r"^\s*assign .* = [^*;]* \* [^'*;]*;$", text, re.MULTILINE))
    # The deep pipeline's form: the row's product distributed over Wy's and Wx's terms (one
    # more multiplier), every product registered by itself
    assert multiplies(None) == 7
    assert multiplies("ice40") == 5
    # ... and on the ECP5 each of them is a DSP block with its product register
    text = verilog.convert(Streamer(EngineConfig.preset("default")), emit_src=False,
                           platform=TargetFamily("ecp5"))
    assert len(re.findall(r"^\s*MULT18X18D ", text, re.MULTILINE)) == 7


@pytest.mark.parametrize("config, latency", [(TILED, 6), (SHALLOW, 2)], ids=["deep", "shallow"])
def test_back_to_back_and_latency(config, latency):
    # Every descriptor waiting: within a job, each pass follows the one before it without a
    # bubble...
    seed = 20
    jobs = random_jobs(seed, config, 10)
    dut, offers, elements, busy = simulate(config, jobs, seed, gap=lambda rng: 0)
    check_run(jobs, seed, dut, offers, elements, busy)
    for first, second in zip(offers, offers[1:]):
        if first.job == second.job:
            assert second.taken == first.taken + len(expand(jobs[first.job], first.desc).acc_addr)
    # ...and from idle, the first element follows the taking cycle by 1 + latency.
    assert dut.latency == Streamer.latency_for(config) == latency
    assert elements[0][0] == offers[0].taken + 1 + dut.latency


def test_job_registers_apply_from_the_taking_cycle():
    # A job's registers may change in the very cycle its first descriptor is taken: the
    # constants derived from them (window pitches two products deep) must be ready for its
    # first element, here one whose source is at window position (1, 1, 1).
    def axis(in_size, window, out_len):
        return Axis(in_size=in_size, kernel=1, stride=1, dilation=1, pad_lo=0, out_start=0,
                    out_len=out_len, seg0_start=0, seg0_len=window)

    first = Job(TILED, (axis(1, 1, 1), axis(1, 1, 1), axis(8, 8, 8)), False, "zeros",
                in_chunks=1, accumulate=False)
    second = Job(TILED, (axis(3, 3, 2), axis(2, 2, 2), axis(3, 3, 2)), False, "zeros",
                 in_chunks=2, accumulate=False)
    passes = {
        first: [Descriptor(((0, 1, 0), (0, 1, 0), (0, 8, 0)), 0, 0, True, False)],
        second: [Descriptor(((0, 2, 1), (0, 2, 1), (0, 2, 1)), 0, 1, True, False),
                 Descriptor(((1, 1, 2), (0, 2, 0), (1, 1, 0)), 0, 0, False, False)],
    }
    seed = 21
    jobs = [first, second, first]
    dut, offers, elements, busy = simulate(TILED, jobs, seed, gap=lambda rng: 0,
                                           descs=passes.__getitem__)
    check_run(jobs, seed, dut, offers, elements, busy)
    assert len(elements) == 8 + 8 + 2 + 8
    assert elements[8][1]["in_addr"] == ((1 * 2 + 1) * 3 + 1) * 2 + 1


def test_window_miss_is_an_error():
    # A 1-D forward layer whose window holds only coordinates 2..4 and 7..8 of 12, and a pass
    # that reads all 12: the elements whose source is outside both segments are errors (and
    # zero operands).
    axis = Axis(in_size=12, kernel=1, stride=1, dilation=1, pad_lo=0, out_start=0, out_len=12,
                seg0_start=2, seg0_len=3, seg1_start=7, seg1_len=2)
    unit = Axis(in_size=1, kernel=1, stride=1, dilation=1, pad_lo=0, out_start=0, out_len=1,
                seg0_start=0, seg0_len=1)
    job = Job(TILED, (unit, unit, axis), False, "zeros", in_chunks=2, accumulate=False)
    desc = Descriptor(axes=((0, 1, 0), (0, 1, 0), (0, 12, 0)), tap=0, chunk=1, init=True,
                      zero=False)
    with pytest.raises(ValueError):
        expand(job, desc)

    dut = Streamer(TILED)
    got = []

    async def testbench(ctx):
        ctx.set(dut.job, job_registers(job))
        ctx.set(dut.passes.valid, 1)
        ctx.set(dut.passes.payload, payload(desc, 0))
        await ctx.tick()
        ctx.set(dut.passes.valid, 0)
        for _ in range(12 + dut.latency + 2):
            if ctx.get(dut.out_valid):
                got.append((ctx.get(dut.error), ctx.get(dut.zero), ctx.get(dut.in_addr)))
            else:
                assert not ctx.get(dut.error)
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    missing = {0, 1, 5, 6, 9, 10, 11}
    assert [(e, z) for e, z, _ in got] == [(int(g in missing),) * 2 for g in range(12)]
    # Segment 1 follows segment 0 in the buffer: source 7 is window position 3.
    assert [a for e, _, a in got if not e] == [1, 3, 5, 7, 9]


def test_converts_to_verilog():
    text = verilog.convert(Streamer(EngineConfig.preset("default")))
    assert "module top" in text


@pytest.mark.parametrize("config", ["default", None, 8])
def test_init_wrong_config(config):
    with pytest.raises(TypeError, match=exactly(
            f"config must be an EngineConfig, not {config!r}")):
        Streamer(config)


@pytest.mark.parametrize("preset", ["small", "default", "up5k", "quantized"])
def test_sequencer_setup_covers_the_streamers(preset):
    # In the engine the job's registers are set when the pass sequencer starts; the streamer
    # takes the first pass after the sequencer's set-up at the earliest, and needs
    # streamer_job_setup cycles of the registers first (the FIR overlap's six registers).
    config = EngineConfig.preset(preset)
    assert timing.sequencer_setup(config, (1, 1, 1)) >= timing.streamer_job_setup(config)
