"""The address generator's streamer (top ``streamer``, generated from
convhw.gateware.streamer.Streamer) against the compiler's model of it.

Jobs of seeded random layers (all ops, padding modes, tiled windows with two segments, FIR
jobs) are fed descriptor by descriptor (:func:`convhw.compiler.job.descriptors`), with random
or patterned gaps before each (a valid inserter: the streamer has no downstream backpressure,
it never stalls). Every emitted element is compared with :func:`convhw.compiler.job.expand`,
and the pass timing with the documented one: a descriptor taken in cycle ``x`` has its first
element on the outputs in cycle ``x + 1 + latency``, the others right after; a waiting
descriptor is taken with the previous pass's last element (no bubble); ``busy`` is high exactly
while a taken pass has elements in flight.
"""

from __future__ import annotations

import dataclasses

import cocotb
import numpy as np

from convhw import timing
from convhw.compiler import compile_layer
from convhw.compiler.job import descriptors, expand
from convhw.gateware.job_registers import JobRegisters
from convhw.gateware.streamer import Streamer, StreamerInput
from convhw.job_format import job_values

from gen_component import bench_config
from layers import random_layer
from tb import REGRESSION_SEED, TB, Inserter, seed_for

CONFIG_NAME, CONFIG = bench_config("tiny")
LATENCY = Streamer.latency_for(CONFIG)   # as documented
OUTPUTS = ["passes__ready", "out_valid", "in_addr", "zero", "acc_addr", "init", "bank",
           "pass_last", "error", "busy"]


def job_registers(job) -> int:
    """The ``job`` port's value for a compiler job (:func:`convhw.job_format.job_values`)."""
    return JobRegisters(CONFIG).const(job_values(job)).as_bits()


def descriptor_payload(desc, bank: int) -> int:
    return StreamerInput(CONFIG).const({
        "desc": {"axes": [{"o_start": o, "count": n, "g_start": g} for o, n, g in desc.axes],
                 "chunk": desc.chunk, "init": int(desc.init), "zero": int(desc.zero)},
        "bank": bank,
    }).as_bits()


def random_jobs(seed: int, count: int):
    """``count`` jobs of random layers (any of the layer indices, so any op and padding mode),
    at most three per layer, in their order in the layer, one of them accumulating if the
    layer has such jobs."""
    rng = np.random.default_rng(seed)
    jobs = []
    while len(jobs) < count:
        layer = random_layer(seed, int(rng.integers(1 << 16)), CONFIG)
        steps = compile_layer(layer.spec, layer.shape, CONFIG, skip_borders=layer.skip_borders)
        picked = list(rng.choice(len(steps), min(3, len(steps)), replace=False))
        runs = [i for i, step in enumerate(steps) if step.job.accumulate]
        if runs and not set(runs) & set(picked):
            picked[-1] = runs[0]          # jobs that add to the accumulator are the rarer
        picked = sorted(set(picked))
        jobs += [steps[i].job for i in picked]
    return jobs[:count]


@dataclasses.dataclass
class Offer:
    job: int
    desc: object
    bank: int
    presented: int
    taken: int = -1


async def run(dut, test: str, jobs, gaps: Inserter) -> None:
    tb = TB(dut, seed=seed_for(test), context=f"  test: {test}, streamer of {CONFIG}")
    await tb.start(inputs={"passes__valid": 0, "passes__payload": 0, "job": 0})
    has_write = hasattr(dut, "write")
    outputs = OUTPUTS + (["write"] if has_write else [])
    cycle = 0
    trace = []                 # per cycle: the outputs
    offers = []

    async def step() -> dict[str, int]:
        nonlocal cycle
        values = {name: tb.ctx.get(getattr(dut, name)) for name in outputs}
        trace.append(values)
        await tb.ctx.tick()
        cycle += 1
        return values

    for number, job in enumerate(jobs):
        # The previous job has left the streamer: its registers may change now,
        # streamer_job_setup cycles before its first pass is offered (the Streamer's contract).
        dut.job.value = job_registers(job)
        for _ in range(timing.streamer_job_setup(CONFIG)):
            await step()
        for desc in descriptors(job):
            for _ in range(gaps.count(12)):
                await step()
            offer = Offer(number, desc, tb.rng.randrange(2), cycle)
            dut.passes__valid.value = 1
            dut.passes__payload.value = descriptor_payload(desc, offer.bank)
            while True:
                offer.taken = cycle
                if (await step())["passes__ready"]:
                    break
            offers.append(offer)
            dut.passes__valid.value = 0
        while (await step())["busy"]:
            pass
    for _ in range(LATENCY + 3):
        await step()
    check(tb, jobs, offers, trace, has_write)
    tb.log.info("%d jobs, %d passes, %d elements in %d cycles", len(jobs), len(offers),
                sum(t["out_valid"] for t in trace), cycle)


def check(tb: TB, jobs, offers, trace, has_write: bool) -> None:
    elements = [(t, values) for t, values in enumerate(trace) if values["out_valid"]]
    for t, values in enumerate(trace):
        if not values["out_valid"]:
            assert not values["pass_last"] and not values["error"], \
                f"cycle {t}: pass_last or error without out_valid\n{tb.context}"
    passes, current = [], []
    for element in elements:
        current.append(element)
        if element[1]["pass_last"]:
            passes.append(current)
            current = []
    assert not current, f"elements after the last pass_last\n{tb.context}"
    assert len(passes) == len(offers), \
        f"{len(passes)} passes emitted for {len(offers)} descriptors\n{tb.context}"
    in_flight = [0] * len(trace)
    previous_last = None
    back_to_back = 0
    for number, (offer, got) in enumerate(zip(offers, passes)):
        job = jobs[offer.job]
        want = expand(job, offer.desc)
        where = (f"job {offer.job}, pass {number}: {offer.desc}\n  {job}\n"
                 f"  SEED={REGRESSION_SEED}\n{tb.context}")
        cycles = [t for t, _ in got]
        first = offer.taken + 1 + LATENCY
        assert cycles == list(range(first, first + want.cycles)), \
            f"elements in cycles {cycles[:3]}..{cycles[-1]} ({len(cycles)}), expected " \
            f"{want.cycles} from cycle {first}: {where}"
        if previous_last is not None and offer.presented <= previous_last - LATENCY:
            # It waited for the pass before it: taken with that pass's last element.
            assert offer.taken == previous_last - LATENCY, f"late take: {where}"
            back_to_back += 1
        else:
            assert offer.taken == offer.presented, f"not taken when offered: {where}"
        previous_last = cycles[-1]
        for t in range(offer.taken + 1, cycles[-1] + 1):
            in_flight[t] = 1
        write = want.write if want.write is not None else np.ones(want.cycles, dtype=bool)
        for i, (_, v) in enumerate(got):
            zero = bool(want.in_addr[i] < 0)
            assert v["zero"] == zero, f"element {i}: zero {v['zero']}: {where}"
            if not zero:
                assert v["in_addr"] == want.in_addr[i], \
                    f"element {i}: in_addr {v['in_addr']}, expected {want.in_addr[i]}: {where}"
            if write[i]:
                assert v["acc_addr"] == want.acc_addr[i], \
                    f"element {i}: acc_addr {v['acc_addr']}, expected {want.acc_addr[i]}: " \
                    f"{where}"
            if has_write:
                assert v["write"] == write[i], f"element {i}: write {v['write']}: {where}"
            assert (v["init"], v["bank"]) == (offer.desc.init, offer.bank), \
                f"element {i}: init/bank {(v['init'], v['bank'])}: {where}"
            assert v["pass_last"] == (i == want.cycles - 1), f"element {i}: pass_last: {where}"
            assert not v["error"], f"element {i}: error: {where}"
    busy = [t["busy"] for t in trace]
    assert busy == in_flight, \
        f"busy differs from the passes in flight first in cycle " \
        f"{next(t for t, (a, b) in enumerate(zip(busy, in_flight)) if a != b)}\n{tb.context}"
    tb.log.info("%d of %d passes were taken back to back", back_to_back, len(offers))


@cocotb.test()
@cocotb.parametrize(run_index=range(4))
async def test_random_jobs(dut, run_index: int) -> None:
    """30 random jobs; half the descriptors offered at once (they wait for the previous
    pass), the others after up to 12 idle cycles."""
    test = f"test_random_jobs/run_index={run_index}"
    seed = seed_for(test)
    await run(dut, test, random_jobs(seed, 30), Inserter(seed=seed, probability=0.5))


@cocotb.test()
@cocotb.parametrize(pattern=[(0,), (1, 0), (1, 1, 1, 0)])
async def test_gap_patterns(dut, pattern) -> None:
    """Descriptors offered after gaps from a fixed pattern, including none at all (every pass
    back to back)."""
    test = f"test_gap_patterns/pattern={pattern}"
    await run(dut, test, random_jobs(seed_for(test), 15), Inserter(pattern))


@cocotb.test()
async def test_jobs_cover_the_features(dut) -> None:
    """The random jobs of this bench exercise what the streamer must handle."""
    seen = set()
    for run_index in range(4):
        for job in random_jobs(seed_for(f"test_random_jobs/run_index={run_index}"), 30):
            seen.add(job.padding_mode)
            seen.add("transposed" if job.transposed else "forward")
            if any(a.seg1_len for a in job.axes):
                seen.add("two segments")
            if job.accumulate:
                seen.add("accumulate")
            if not job.skip_borders:
                seen.add("whole borders")
            if getattr(job, "fir_taps", 0):
                seen.add("FIR")
            for desc in descriptors(job):
                seen.add("zero pass" if desc.zero else "pass")
    dut._log.info("features: %s", ", ".join(sorted(seen)))
    missing = {"zeros", "circular", "reflect", "replicate", "transposed", "two segments",
               "accumulate", "whole borders"} - seen
    assert not missing, f"SEED={REGRESSION_SEED}: the random jobs miss {sorted(missing)}"


