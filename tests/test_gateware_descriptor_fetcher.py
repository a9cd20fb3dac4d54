"""DescriptorFetcher and ReadArbiter in the Amaranth simulator: lists built by the compiler are
fetched, decoded and checked as the list model does it (convhw.compiler.list_model), with
prefetching, stalls, bus errors and aborts."""

import dataclasses
import functools
import random

import numpy as np
import pytest
from amaranth.sim import Simulator

from convhw.compiler.image import Layer, build
from convhw.config import EngineConfig
from convhw.descriptor import JOB_DESCRIPTOR
from convhw.gateware.descriptor_fetcher import DescriptorFetcher
from convhw.gateware.read_arbiter import ReadArbiter
from convhw.registers import ErrorCode
from convhw.sim_memory import stream_get, stream_put
from convhw.spec import ConvSpec

from .test_gateware_input_loader import memory_slave

SMALL = EngineConfig.preset("small")


def network(config=SMALL, seed=1):
    """A two-layer list (several jobs each) in a memory image; descriptors after the list's end
    are garbage that must not be used."""
    rng = np.random.default_rng(seed)
    specs = [ConvSpec(2, 4, 8, 3, padding=1), ConvSpec(2, 8, 4, 3, stride=2, padding=1)]
    x = rng.integers(-128, 128, (1, 4, 14, 14))
    layers = [Layer(s, rng.integers(-128, 128, s.weight_shape), None,
                    (np.ones(s.out_channels, int), np.full(s.out_channels, 8, int)))
              for s in specs]
    image = build(config, x, layers)
    count = sum(len(r.descriptors) for r in image.records)
    end = image.list_address + count * JOB_DESCRIPTOR.size
    image.memory.write(end, rng.integers(0, 256, 4 * JOB_DESCRIPTOR.size, dtype=np.uint8))
    return image, count


def expected_entries(image, count, config):
    """(fields, index, code) of what the fetcher must hand on: the list model's checks 1-3."""
    out = []
    for index in range(count):
        address = image.list_address + index * JOB_DESCRIPTOR.size
        try:
            raw = image.memory.read(address, JOB_DESCRIPTOR.size)
        except Exception:
            out.append((None, index, ErrorCode.READ_ERROR))
            break
        words = raw.view("<u4")
        fields = JOB_DESCRIPTOR.decode(words)
        code = ErrorCode.NONE
        if fields["MAGIC"] != 0xCD or JOB_DESCRIPTOR.reserved_bits_set(words):
            code = ErrorCode.BAD_DESCRIPTOR
        elif _too_wide(fields, config):
            code = ErrorCode.FIELD_TOO_WIDE
        out.append((fields, index, code))
        if code or fields["LAST"]:
            break
    return out


def _too_wide(fields, config):
    from convhw.job_format import AXIS_FIELDS
    for axis in "ZYX":
        for field in AXIS_FIELDS:
            if fields[f"{axis}_{field.name.upper()}"] >> field.width_for(config):
                return True
    return fields["FIR_TAPS"] >> config.param_width or fields["OUT_CHANNELS"] > config.cols


def run_fetch(config, memory, list_address, *, latency=6, pause=0.0, consumer_pause=0.0,
              seed=0, limit=20000, abort_after=None, depth=2):
    dut = DescriptorFetcher(config, depth=depth)
    got, log = [], []
    rng = random.Random(seed)
    state = {}

    async def bench(ctx):
        ctx.set(dut.list_addr, list_address)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        cycles = 0
        while True:
            if abort_after is not None and len(got) == abort_after:
                ctx.set(dut.abort, 1)
                await ctx.tick()
                ctx.set(dut.abort, 0)
                for _ in range(limit):
                    if not ctx.get(dut.busy):
                        break
                    assert not ctx.get(dut.jobs.valid), "a job offered after abort"
                    await ctx.tick()
                state["idle_after_abort"] = not ctx.get(dut.busy)
                return
            if consumer_pause and rng.random() < consumer_pause:
                await ctx.tick()
                cycles += 1
                continue
            ctx.set(dut.jobs.ready, 1)
            _, _, valid, entry = await ctx.tick().sample(dut.jobs.valid, dut.jobs.payload)
            ctx.set(dut.jobs.ready, 0)
            cycles += 1
            if valid:
                fields = {name.upper(): int(getattr(entry.descriptor, name))
                          for name, _ in entry.descriptor.shape()}
                got.append((fields, int(entry.index), ErrorCode(int(entry.code))))
                if entry.code or fields["LAST"]:
                    break
            assert cycles < limit, f"the fetcher hung (seed {seed})"
        # Beats of prefetched descriptors drain; then it is idle and offers nothing more.
        for _ in range(200):
            await ctx.tick()
        assert not ctx.get(dut.busy) and not ctx.get(dut.jobs.valid)
        state["cycles"] = cycles

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(functools.partial(memory_slave, dut=dut.memory, memory=memory,
                                      latency=latency, pause_cmd=pause, pause_data=pause,
                                      seed=seed, log=log))
    sim.add_testbench(bench)
    sim.run()
    return got, log, state


def check(got, expected, seed):
    assert len(got) == len(expected), f"seed {seed}: {len(got)} entries, {len(expected)} expected"
    for (fields, index, code), (want, want_index, want_code) in zip(got, expected):
        assert (index, code) == (want_index, want_code), f"seed {seed}: entry {index}"
        if want is not None and code != ErrorCode.READ_ERROR:
            assert fields == want, f"seed {seed}: entry {index} decoded differently"


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("width", [64, 32, 128])
def test_fetches_the_list_in_order(seed, width):
    config = dataclasses.replace(SMALL, memory_width=width)
    image, count = network(config, seed)
    got, log, state = run_fetch(config, image.memory, image.list_address, pause=0.3 * (seed > 0),
                                consumer_pause=0.5 * (seed == 2), seed=seed)
    check(got, expected_entries(image, count, config), seed)
    assert all(beats == 1024 // width for _, _, beats in log)
    # Prefetch: the next descriptor is asked for before the previous one was handed on, but
    # never more than two past the end.
    assert count <= len(log) <= count + 2


def test_prefetch_hides_latency():
    # With a long latency and a consumer that takes each job at once, descriptors arrive
    # back to back: about a fetch per (beats) cycles after the first latency, not a latency each.
    image, count = network()
    got, log, state = run_fetch(SMALL, image.memory, image.list_address, latency=40, depth=4)
    assert len(got) == count
    starts = [cycle for cycle, _, _ in log]
    assert starts[3] - starts[0] < 40            # four requests out before the first answer


@pytest.mark.parametrize("corrupt, code", [
    (dict(MAGIC=0x00), ErrorCode.BAD_DESCRIPTOR),
    (dict(OUT_CHANNELS=5), ErrorCode.FIELD_TOO_WIDE),
    (dict(Y_OUT_LEN=1 << 12), ErrorCode.FIELD_TOO_WIDE),     # beyond 8-bit coordinates
    (dict(X_STRIDE=16), ErrorCode.FIELD_TOO_WIDE),           # beyond 4-bit parameters
    ("reserved", ErrorCode.BAD_DESCRIPTOR),
    ("bus error", ErrorCode.READ_ERROR),
])
def test_stops_at_the_first_bad_descriptor(corrupt, code):
    config = dataclasses.replace(SMALL, coord_width=8, param_width=4)
    image, count = network(config)
    index = 3
    address = image.list_address + index * JOB_DESCRIPTOR.size
    if corrupt == "reserved":
        image.memory.data[address + 4 * 30 + 3] = 0x40
    elif corrupt == "bus error":
        image.memory.errors = [(address + 40, address + 48)]
    else:
        words = image.memory.data[address:address + 128].view("<u4").copy()
        values = JOB_DESCRIPTOR.decode(words) | corrupt
        image.memory.write(address, JOB_DESCRIPTOR.encode(values).view(np.uint8))
    got, _, _ = run_fetch(config, image.memory, image.list_address, pause=0.2, seed=7)
    check(got, expected_entries(image, count, config), 7)
    assert (len(got), got[-1][2]) == (index + 1, code)


def test_misaligned_list_address():
    image, count = network()
    got, log, _ = run_fetch(SMALL, image.memory, image.list_address + 8)
    assert [(i, c) for _, i, c in got] == [(0, ErrorCode.MISALIGNED)] and not log


@pytest.mark.parametrize("after", [0, 2])
def test_abort_drains_and_restarts(after):
    image, count = network()
    _, log, state = run_fetch(SMALL, image.memory, image.list_address, latency=20,
                              abort_after=after, depth=4)
    assert state["idle_after_abort"]
    # A new list runs normally afterwards (a fresh simulation of the same engine state is
    # what the engine's flush gives; here: the fetcher itself, started again).
    got, _, _ = run_fetch(SMALL, image.memory, image.list_address)
    check(got, expected_entries(image, count, SMALL), 0)


# -- the read arbiter -----------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(3))
def test_arbiter_routes_beats_to_their_clients(seed):
    rng = random.Random(seed)
    clients, beat = 3, 8
    dut = ReadArbiter(clients, 64, depth=4)
    from convhw.compiler.list_model import Memory
    memory = Memory(1 << 16)
    memory.write(0, np.random.default_rng(seed).integers(0, 256, 1 << 16, dtype=np.uint8))
    # Legal commands: beat-aligned, none crossing a 4 KiB boundary.
    commands = [[(rng.randrange(0, 4096) * 8, rng.randint(1, 6)) for _ in range(12)]
                for _ in range(clients)]
    commands = [[(addr, min(beats, (4096 - addr % 4096) // beat)) for addr, beats in c]
                for c in commands]
    log, finished = [], []
    in_flight = {"max": 0}

    def client_issue(i):
        async def bench(ctx):
            for addr, beats in commands[i]:
                if rng.random() < 0.3:
                    await ctx.tick()
                await stream_put(ctx, dut.clients[i].read_cmd, {"addr": addr, "len": beats - 1})
        return bench

    def client_collect(i):
        async def bench(ctx):
            for addr, beats in commands[i]:
                for b in range(beats):
                    if rng.random() < 0.3:
                        await ctx.tick()
                    raw = memory.read(addr + b * beat, beat)
                    got = await stream_get(ctx, dut.clients[i].read_data)
                    assert (got.data, got.last) == (int.from_bytes(raw.tobytes(), "little"),
                                                    b == beats - 1), f"seed {seed}: client {i}"
            finished.append(i)
        return bench

    async def watch(ctx):
        # Commands granted minus commands whose last beat came back: at most `depth`.
        outstanding = 0
        while True:
            _, _, cmd_v, cmd_r, data_v, data_r, data = await ctx.tick().sample(
                dut.port.read_cmd.valid, dut.port.read_cmd.ready, dut.port.read_data.valid,
                dut.port.read_data.ready, dut.port.read_data.payload)
            outstanding += (cmd_v and cmd_r) - (data_v and data_r and data.last)
            in_flight["max"] = max(in_flight["max"], outstanding)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(functools.partial(memory_slave, dut=dut.port, memory=memory, latency=12,
                                      pause_cmd=0.2, pause_data=0.2, seed=seed, log=log))
    for i in range(clients):
        sim.add_testbench(client_issue(i))
        sim.add_testbench(client_collect(i))
    sim.add_testbench(watch, background=True)
    sim.run()
    assert sorted(finished) == list(range(clients)), f"seed {seed}: clients {finished} finished"
    assert len(log) == sum(len(c) for c in commands)
    # The tag queue bounds the commands in flight, and a latency of 12 fills it.
    assert in_flight["max"] == 4
    # Round robin: while all three clients wait, grants rotate.
    owners = [next(i for i in range(clients) if (addr, beats) in commands[i])
              for _, addr, beats in log[:6]]
    assert len(set(owners[:3])) == 3, owners
