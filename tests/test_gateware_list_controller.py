"""ListController in the Amaranth simulator, with stand-in stages of random latency: the order
of every load, compute and drain is checked against docs/memory.md's bank table on the trace,
and errors and aborts end lists as documented."""

import random

import pytest
from amaranth.sim import Simulator

from convhw.compiler.lower import ListBuilder
from convhw.config import EngineConfig
from convhw.gateware.list_controller import ListController
from convhw.registers import ErrorCode
from convhw.spec import ConvSpec

from .helpers import tiered

CONFIG = EngineConfig.preset("small")
HALF_W = CONFIG.weight_depth // 2
STAGES = ("input", "weight", "params", "compute", "drain")


def random_list(rng, count):
    jobs = []
    for i in range(count):
        accumulate = bool(i) and rng.random() < 0.3
        jobs.append(dict(
            LOAD_INPUT=int(rng.random() < 0.6), INPUT_BANK=rng.randrange(2),
            LOAD_WEIGHTS=int(rng.random() < 0.5), WEIGHT_BASE=rng.choice([0, 8, HALF_W]),
            ACC_BANK=jobs[-1]["ACC_BANK"] if accumulate else rng.randrange(2),
            ACCUMULATE=int(accumulate), WRITE_OUTPUT=int(rng.random() < 0.6),
            IRQ=int(rng.random() < 0.1), LAST=int(i == count - 1), MAGIC=0xCD))
    return jobs


def compiled_list():
    builder = ListBuilder(CONFIG)
    for spec, shape in ((ConvSpec(2, 8, 8, 3, padding=1), (1, 8, 20, 20)),
                        (ConvSpec(2, 8, 4, 3, stride=2, padding=1), (1, 8, 20, 20))):
        builder.add_layer(spec, shape, input_addr=0, output_addr=0, weight_addr=0,
                          params_addr=0, requantize=True)
    return builder.descriptors()


def simulate(jobs, *, seed, fail=None, abort_at=None, entry_code=None, slots=4, limit=20000,
             stubborn=False):
    """Run ``jobs`` (descriptor field dicts) through the controller. ``fail``: (stage, job)
    whose done reports an error; ``entry_code``: (job, code) the fetcher hands on instead of
    the job; ``abort_at``: cycle of an abort; ``stubborn``: an entry offered stays offered
    (and the fetcher busy) until it is taken, also after ``fetch_abort``, as a stage in front
    of the controller does. Returns the trace and the final registers."""
    dut = ListController(CONFIG, slots=slots)
    rng = random.Random(seed)
    trace = []              # (cycle, stage, event, index)
    state = {"cycle": 0, "fetch_abort": False, "flushes": 0}
    result = {}

    # Every process counts the clock edges it has seen: the cycle of a transfer is the count
    # before the edge that completes it.
    async def fetcher(ctx):
        cycle = 0
        ctx.set(dut.fetch_busy, 1)
        for index, fields in enumerate(jobs):
            while rng.random() < 0.3:
                await ctx.tick()
                cycle += 1
                if state["fetch_abort"]:
                    break
            if state["fetch_abort"]:
                break
            code = 0
            if entry_code and entry_code[0] == index:
                code = entry_code[1]
            ctx.set(dut.jobs.payload, {"descriptor": {k.lower(): v for k, v in fields.items()},
                                       "index": index, "code": code})
            ctx.set(dut.jobs.valid, 1)
            while True:
                _, _, ready, aborted = await ctx.tick().sample(dut.jobs.ready, dut.fetch_abort)
                cycle += 1
                state["fetch_abort"] |= bool(aborted)
                if ready or (state["fetch_abort"] and not stubborn):
                    break
            ctx.set(dut.jobs.valid, 0)
            if ready:
                trace.append((cycle - 1, "fetch", "taken", index))
            if code or fields.get("LAST") or state["fetch_abort"]:
                break
        # Prefetched descriptors still arrive for a few cycles.
        for _ in range(rng.randrange(1, 8)):
            await ctx.tick()
        ctx.set(dut.fetch_busy, 0)

    async def watch_abort(ctx):
        while True:
            _, _, aborted = await ctx.tick().sample(dut.fetch_abort)
            if aborted:
                state["fetch_abort"] = True

    def stage(name, command, done):
        async def process(ctx):
            cycle = 0
            busy_until = None
            current = None
            while True:
                ctx.set(command.ready, current is None and rng.random() < 0.7)
                if current is not None and cycle >= busy_until:
                    ctx.set(done.valid, 1)
                    ctx.set(done.payload, {"error": fail == (name, current)})
                else:
                    ctx.set(done.valid, 0)
                sampled = await ctx.tick().sample(command.valid, command.ready,
                                                  command.payload, done.ready, dut.compute_flush)
                _, _, c_valid, c_ready, payload, d_ready, flush = sampled
                if current is not None and cycle >= busy_until and d_ready:
                    trace.append((cycle, name, "done", current))
                    current = None
                if name == "compute" and flush and current is not None:
                    trace.append((cycle, name, "flushed", current))
                    state["flushes"] += 1
                    current = None
                if c_valid and c_ready:
                    current = int(payload.index)
                    busy_until = cycle + 1 + rng.randrange(0, 30)
                    trace.append((cycle, name, "start", current))
                cycle += 1
        return process

    async def bench(ctx):
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        for cycle in range(1, limit):
            if abort_at is not None and cycle == abort_at:
                ctx.set(dut.abort, 1)
                await ctx.tick()
                ctx.set(dut.abort, 0)
                trace.append((cycle, "host", "abort", -1))
            if not ctx.get(dut.busy):
                break
            await ctx.tick()
        else:
            raise AssertionError(f"the list did not end (seed {seed})")
        result.update(done=ctx.get(dut.done), error=ctx.get(dut.error),
                      code=ctx.get(dut.code), error_job=ctx.get(dut.error_job),
                      cycles=ctx.get(dut.cycles), irq=ctx.get(dut.irq))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(watch_abort)
    for name in STAGES:
        command = getattr(dut, "drain" if name == "drain" else
                          "compute" if name == "compute" else f"{name}_load")
        done = getattr(dut, f"{name}_done")
        sim.add_process(stage(name, command, done))
    sim.add_testbench(fetcher, background=True)
    sim.add_testbench(bench)
    sim.run()
    return trace, result


def events(trace, stage, event):
    return {index: cycle for cycle, s, e, index in trace if s == stage and e == event}


def check_order(jobs, trace, seed, slots=4):
    """docs/memory.md's table on the trace."""
    what = f"(seed {seed})"
    starts = {s: events(trace, s, "start") for s in STAGES}
    dones = {s: events(trace, s, "done") for s in STAGES}
    taken = events(trace, "fetch", "taken")
    for s in STAGES:                            # each stage takes its jobs in order
        order = sorted(starts[s], key=starts[s].get)
        assert order == sorted(order), f"{s} out of order {order} {what}"
    for k, cycle in starts["compute"].items():
        job = jobs[k]
        for load, flag in (("input", "LOAD_INPUT"), ("weight", "LOAD_WEIGHTS"),
                           ("params", None)):
            if flag is None or job[flag]:
                assert dones[load][k] < cycle, f"job {k} computed before its {load} {what}"
        if not job["ACCUMULATE"]:
            for j in range(k):
                if jobs[j]["WRITE_OUTPUT"] and jobs[j]["ACC_BANK"] == job["ACC_BANK"] \
                        and j in starts["drain"]:
                    assert dones["drain"][j] < cycle, \
                        f"job {k} started a tile in bank {job['ACC_BANK']} before job " \
                        f"{j}'s drain ended {what}"
    for k, cycle in starts["input"].items():
        for j in range(k):
            if jobs[j]["INPUT_BANK"] == jobs[k]["INPUT_BANK"] and j in dones["compute"]:
                assert dones["compute"][j] < cycle, \
                    f"job {k} loaded input bank {jobs[k]['INPUT_BANK']} while job {j} read " \
                    f"it {what}"
    for k, cycle in starts["weight"].items():
        bank = jobs[k]["WEIGHT_BASE"] >= HALF_W
        for j in range(k):
            if (jobs[j]["WEIGHT_BASE"] >= HALF_W) == bank and j in dones["compute"]:
                assert dones["compute"][j] < cycle, f"job {k} overwrote weights of {j} {what}"
    drains = sorted(starts["drain"].items(), key=lambda kv: kv[1])
    for (a, _), (b, start_b) in zip(drains, drains[1:]):
        assert dones["drain"][a] < start_b, f"drains {a} and {b} overlap {what}"
    for k, cycle in starts["drain"].items():
        assert dones["compute"][k] < cycle, f"job {k} drained before computing {what}"
    # Jobs in flight: taken and not finished.
    finish = {k: dones["drain"].get(k, dones["compute"].get(k)) for k in taken}
    for t in taken.values():
        alive = sum(1 for j, tj in taken.items()
                    if tj <= t and (finish.get(j) is None or finish[j] >= t))
        assert alive <= slots, f"{alive} jobs in flight at cycle {t} {what}"


@pytest.mark.parametrize("seed", tiered(range(8), fast=2))
def test_random_lists_respect_the_bank_order(seed):
    rng = random.Random(seed)
    jobs = random_list(rng, rng.randint(1, 24))
    trace, result = simulate(jobs, seed=seed)
    check_order(jobs, trace, seed)
    assert (result["done"], result["error"], result["code"]) == (1, 0, 0)
    assert len(events(trace, "compute", "done")) == len(jobs)
    assert len(events(trace, "drain", "done")) == sum(j["WRITE_OUTPUT"] for j in jobs)
    assert result["irq"] == 1 and result["cycles"] > 0


def test_a_compiled_list_runs_in_order():
    jobs = compiled_list()
    assert len(jobs) > 6
    trace, result = simulate(jobs, seed=99, slots=4)
    check_order(jobs, trace, 99)
    assert (result["done"], result["error"]) == (1, 0)


@pytest.mark.parametrize("stage, code", [("input", ErrorCode.READ_ERROR),
                                         ("weight", ErrorCode.READ_ERROR),
                                         ("params", ErrorCode.READ_ERROR),
                                         ("compute", ErrorCode.WINDOW_MISS),
                                         ("drain", ErrorCode.WRITE_ERROR)])
@pytest.mark.parametrize("seed", tiered(range(3), fast=1))
def test_a_failing_job_ends_the_list(stage, code, seed):
    rng = random.Random(seed)
    jobs = random_list(rng, 16)
    for j in jobs:                      # every job loads everything and is drained
        j.update(LOAD_INPUT=1, LOAD_WEIGHTS=1, WRITE_OUTPUT=1)
    failing = rng.randrange(2, 12)
    trace, result = simulate(jobs, seed=seed, fail=(stage, failing))
    check_order(jobs, trace, seed)
    assert (result["done"], result["error"], result["code"], result["error_job"]) == \
        (1, 1, code, failing)
    drained = events(trace, "drain", "done")
    computed = events(trace, "compute", "done")
    # Every earlier job finished, with its results written; no later job wrote any.
    assert all(k in drained for k in range(failing)), f"seed {seed}"
    assert not [k for k in drained if k > failing], f"seed {seed}"
    if stage != "drain":
        assert not [k for k in computed if k > failing], f"seed {seed}"


@pytest.mark.parametrize("code", [ErrorCode.BAD_DESCRIPTOR, ErrorCode.READ_ERROR])
def test_a_bad_descriptor_ends_the_list(code):
    rng = random.Random(5)
    jobs = random_list(rng, 10)
    trace, result = simulate(jobs, seed=5, entry_code=(6, code))
    assert (result["error"], result["code"], result["error_job"]) == (1, code, 6)
    # The failing entry is consumed; no stage sees it or anything after it.
    assert max(events(trace, "fetch", "taken")) == 6
    assert not [t for t in trace if t[1] in STAGES and t[3] >= 6]


@pytest.mark.parametrize("seed", tiered(range(6), fast=2))
def test_abort_in_any_state(seed):
    rng = random.Random(seed)
    jobs = random_list(rng, 20)
    abort_at = rng.randrange(2, 300)
    trace, result = simulate(jobs, seed=seed, abort_at=abort_at)
    check_order(jobs, trace, seed)
    if result["code"] != ErrorCode.NONE:      # the list may have ended before the abort
        assert result["code"] == ErrorCode.ABORTED
        # Nothing computes or drains after the abort, and no job is taken: only the loads of
        # a job taken before it may still be handed out (they answer, then are dropped).
        taken = events(trace, "fetch", "taken")
        late = [t for t in trace if t[2] == "start" and t[0] > abort_at
                and (t[1] in ("compute", "drain") or taken[t[3]] > abort_at)]
        assert max(taken.values()) <= abort_at
        assert not late, f"seed {seed}: {late[:3]}"
    # A list after it runs normally.
    trace, result = simulate(jobs, seed=seed + 100)
    assert (result["done"], result["error"]) == (1, 0)


@pytest.mark.parametrize("stage", ["compute", "drain"])
def test_an_entry_still_offered_after_a_failure_is_dropped(stage):
    # A stage in front of the controller (the job checker) may hold an entry when a job fails;
    # the controller must take it off its hands, or the engine stays busy for ever.
    rng = random.Random(9)
    jobs = random_list(rng, 12)
    for j in jobs:
        j.update(WRITE_OUTPUT=1)
    trace, result = simulate(jobs, seed=9, fail=(stage, 3), stubborn=True)
    assert (result["done"], result["error"], result["error_job"]) == (1, 1, 3)
