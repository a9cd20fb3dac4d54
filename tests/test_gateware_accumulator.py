# amaranth: UnusedElaboratable=no
"""The accumulator's read-add-write against a Python model, in both forms: random streams of
sums, many of them to the entry a sum 1, 2 or 3 cycles earlier went to (the hazards the deep
form's forwarding covers), with init, idle cycles and sums that are not written; the write
cycles; the host's reads."""

import dataclasses
import random

import pytest
from amaranth.sim import Simulator

from convhw.config import EngineConfig
from convhw.gateware.accumulator import Accumulator

DEEP = EngineConfig(rows=1, cols=2, input_depth=64, weight_depth=64, acc_depth=16)
SHALLOW = dataclasses.replace(DEEP, deep_pipeline=False)
WIDTH = DEEP.acc_width


@dataclasses.dataclass(frozen=True)
class Sum:
    addr: int
    init: bool
    valid: bool              # entry.valid: the sum is to be written
    sum_valid: bool
    values: tuple[int, ...]


def random_stream(seed, config, length):
    """Sums, one per cycle; about half of them go to the entry of the sum 1, 2 or 3 cycles
    earlier."""
    rng = random.Random(seed)
    stream = []
    for t in range(length):
        valid = rng.random() < 0.85
        distance = rng.choice((1, 2, 3))
        if rng.random() < 0.5 and t >= distance:
            addr = stream[t - distance].addr
        else:
            addr = rng.randrange(config.acc_depth)
        stream.append(Sum(
            addr=addr, init=rng.random() < 0.15, valid=valid,
            # a sum without a valid entry is never written, whatever sum_valid says
            sum_valid=valid or rng.random() < 0.5,
            values=tuple(rng.randrange(-(1 << (WIDTH - 1)), 1 << (WIDTH - 1))
                         for _ in range(config.cols))))
    return stream


def hazards(stream):
    """How many written sums go to the entry a written sum ``d`` cycles earlier went to."""
    written = [s.valid and s.sum_valid for s in stream]
    return {d: sum(written[t] and written[t - d] and stream[t].addr == stream[t - d].addr
                   for t in range(d, len(stream))) for d in (1, 2, 3)}


def model(config, stream):
    """The entries after the stream, and the arrival index of each written sum."""
    entries = [[0] * config.cols for _ in range(config.acc_depth)]
    writes = []
    for t, s in enumerate(stream):
        if s.valid and s.sum_valid:
            old = entries[s.addr]
            entries[s.addr] = [(v if s.init else o + v) % (1 << WIDTH)
                               for o, v in zip(old, s.values)]
            writes.append(t)
    return entries, writes


def simulate(config, stream):
    """Drive the stream (each entry ``lead`` cycles before its sum), then read every entry
    through the host port. Returns the entries and the cycle of every write."""
    dut = Accumulator(config)
    lead = Accumulator.lead_for(config)
    entries, writes = [], []

    async def testbench(ctx):
        ctx.set(dut.busy, 1)
        for cycle in range(len(stream) + lead + Accumulator.latency_for(config) + 1):
            s = stream[cycle] if cycle < len(stream) else None
            ctx.set(dut.entry, {"addr": s.addr if s else 0, "init": s.init if s else 0,
                                "valid": s.valid if s else 0})
            arriving = cycle - lead
            if 0 <= arriving < len(stream):
                ctx.set(dut.sum, list(stream[arriving].values))
                ctx.set(dut.sum_valid, stream[arriving].sum_valid)
            else:
                ctx.set(dut.sum_valid, 0)
            if ctx.get(dut.writing):
                writes.append(cycle)
            await ctx.tick()
        ctx.set(dut.busy, 0)
        for addr in range(config.acc_depth):
            ctx.set(dut.host_addr, addr)
            for _ in range(Accumulator.host_read_latency_for(config)):
                await ctx.tick()
            entries.append([v % (1 << WIDTH) for v in ctx.get(dut.host_data)])

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return entries, writes


@pytest.mark.parametrize("config", [DEEP, SHALLOW], ids=["deep", "shallow"])
@pytest.mark.parametrize("seed", range(4))
def test_sim_random_stream(config, seed):
    stream = random_stream(seed, config, 300)
    counts = hazards(stream)
    assert all(n >= 20 for n in counts.values()), counts     # the hazards are exercised
    expected, arrivals = model(config, stream)
    entries, writes = simulate(config, stream)
    lead, latency = Accumulator.lead_for(config), Accumulator.latency_for(config)
    assert writes == [t + lead + latency - 1 for t in arrivals], f"seed {seed}: write cycles"
    assert entries == expected, f"seed {seed}"


@pytest.mark.parametrize("config", [DEEP, SHALLOW], ids=["deep", "shallow"])
@pytest.mark.parametrize("distance", [1, 2, 3, 4])
def test_sim_same_entry(config, distance):
    # Sums of 1, 10, 100, ... to entry 5, `distance` cycles apart, the first one an init:
    # every one must see every earlier one.
    stream = []
    for i in range(6):
        stream.append(Sum(5, i == 0, True, True, (10 ** i, -(10 ** i))))
        stream += [Sum(5, False, False, False, (7, 7))] * (distance - 1)
    entries, _ = simulate(config, stream)
    assert entries[5] == [111111, (-111111) % (1 << WIDTH)]
    assert entries[:5] + entries[6:] == [[0, 0]] * 15


def test_latencies():
    assert (Accumulator.lead_for(DEEP), Accumulator.latency_for(DEEP)) == (2, 2)
    assert (Accumulator.lead_for(SHALLOW), Accumulator.latency_for(SHALLOW)) == (1, 1)


def test_init_wrong_config():
    with pytest.raises(TypeError, match=r"^config must be an EngineConfig, not 'small'$"):
        Accumulator("small")
