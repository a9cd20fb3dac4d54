"""The simulation slaves of :mod:`convhw.sim_memory` following a :class:`MemoryModel`: the
bandwidth credit (reads first, shared by reads and writes), the latency, seeded stalls; a raw
AXI4 or Wishbone master is played by the testbench and every transfer traced."""

import functools

import pytest
from amaranth.hdl import ClockDomain, Module
from amaranth.sim import Simulator

from convhw.gateware.axi4 import Axi4Signature
from convhw.gateware.wishbone_master import WishbonePipelinedSignature
from convhw.memory_model import MemoryModel, Stalls
from convhw.sim_memory import SparseMemory, axi4_slave, wishbone_slave


def axi_traffic(model, *, reads=(), writes=(), cycles=120):
    """Play an AXI4 master on a 64-bit bus that issues the read bursts ``reads`` and the write
    bursts ``writes`` (beats each) at once, always ready for data and responses and always
    offering write data; return the slave's trace."""
    axi = Axi4Signature(64, 32).create()
    m = Module()
    m.domains.sync = ClockDomain()
    trace = []

    async def master(ctx):
        ctx.set(axi.rready, 1)
        ctx.set(axi.bready, 1)
        addr = 0x1000
        # AR and AW: one burst per cycle on each while any are left.
        ar, aw = list(reads), list(writes)
        beats = [(b, i == b - 1) for b in writes for i in range(b)]
        while ar or aw or beats:
            if ar:
                ctx.set(axi.arvalid, 1)
                ctx.set(axi.araddr, addr)
                ctx.set(axi.arlen, ar[0] - 1)
                ctx.set(axi.arsize, 3)
                ctx.set(axi.arburst, 1)
            else:
                ctx.set(axi.arvalid, 0)
            if aw:
                ctx.set(axi.awvalid, 1)
                ctx.set(axi.awaddr, 0x8000 + addr)
                ctx.set(axi.awlen, aw[0] - 1)
                ctx.set(axi.awsize, 3)
                ctx.set(axi.awburst, 1)
            else:
                ctx.set(axi.awvalid, 0)
            if beats:
                ctx.set(axi.wvalid, 1)
                ctx.set(axi.wdata, len(beats))
                ctx.set(axi.wstrb, 0xFF)
                ctx.set(axi.wlast, beats[0][1])
            else:
                ctx.set(axi.wvalid, 0)
            _, _, arready, awready, wready = await ctx.tick().sample(
                axi.arready, axi.awready, axi.wready)
            if ar and arready:
                ar.pop(0)
                addr += 0x100
            if aw and awready:
                aw.pop(0)
            if beats and wready:
                beats.pop(0)
        ctx.set(axi.arvalid, 0)
        ctx.set(axi.awvalid, 0)
        ctx.set(axi.wvalid, 0)
        await ctx.tick().repeat(cycles)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_process(functools.partial(axi4_slave, axi=axi, memory=SparseMemory(), model=model,
                                      trace=trace))
    sim.add_testbench(master)
    sim.run()
    return trace


def cycles_of(trace, channel):
    return [cycle for cycle, ch, _ in trace if ch == channel]


def test_sim_axi4_read_beats_follow_the_bandwidth():
    # 2 bytes per cycle on an 8-byte bus: a beat every 4 cycles; the first after the latency.
    trace = axi_traffic(MemoryModel(bytes_per_cycle=2, latency=5), reads=[4])
    (ar,) = cycles_of(trace, "ar")
    r = cycles_of(trace, "r")
    assert r == [ar + 5, ar + 9, ar + 13, ar + 17]


def test_sim_axi4_full_bandwidth_read_beats_back_to_back():
    trace = axi_traffic(MemoryModel(bytes_per_cycle=8, latency=3), reads=[4, 2])
    ar = cycles_of(trace, "ar")
    assert ar == [ar[0], ar[0] + 1]
    assert cycles_of(trace, "r") == list(range(ar[0] + 3, ar[0] + 9))


@pytest.mark.parametrize("rate, together", [(8, False), (16, True), (64, True)])
def test_sim_axi4_reads_and_writes_share_the_credit(rate, together):
    # At 8 B/cycle a read and a write beat never move in the same cycle, and reads come
    # first; at 16 B/cycle (two beats' worth) they do.
    trace = axi_traffic(MemoryModel(bytes_per_cycle=rate, latency=2), reads=[8, 8],
                        writes=[8, 8])
    r, w = cycles_of(trace, "r"), cycles_of(trace, "w")
    assert len(r) == len(w) == 16
    both = set(r) & set(w)
    if together:
        assert both
        assert r == list(range(r[0], r[0] + 16))
        assert w == list(range(w[0], w[0] + 16))
    else:
        assert not both
        assert r == list(range(r[0], r[0] + 16))     # reads first: never held back by writes
    # In the long run: at most `rate` bytes per cycle, reads and writes together.
    moved = sorted(r + w)
    cap = max(8, rate)
    for start in range(len(moved)):
        for end in range(start, len(moved)):
            span = moved[end] - moved[start] + 1
            assert 8 * (end - start + 1) <= cap + rate * (span - 1), (start, end)


def test_sim_axi4_write_response_after_the_latency():
    trace = axi_traffic(MemoryModel(bytes_per_cycle=8, latency=7), writes=[3])
    w, (b,) = cycles_of(trace, "w"), cycles_of(trace, "b")
    assert b == w[-1] + 7


def test_sim_axi4_stalls_are_seeded():
    model = MemoryModel(bytes_per_cycle=8, latency=2, stalls=Stalls(0.3, seed=5))
    first = axi_traffic(model, reads=[8], writes=[8], cycles=200)
    again = axi_traffic(model, reads=[8], writes=[8], cycles=200)
    calm = axi_traffic(MemoryModel(bytes_per_cycle=8, latency=2), reads=[8], writes=[8],
                       cycles=200)
    assert first == again
    assert len(cycles_of(first, "r")) == len(cycles_of(first, "w")) == 8
    assert cycles_of(first, "b")[0] > cycles_of(calm, "b")[0]


@pytest.mark.parametrize("slave", [axi4_slave, wishbone_slave])
def test_model_wrong(slave):
    process = slave(None, None, SparseMemory(), model=3)
    with pytest.raises(TypeError, match=r"^model must be a MemoryModel or None, not 3$"):
        process.send(None)
    process.close()


def test_sim_wishbone_beats_follow_the_bandwidth():
    bus = WishbonePipelinedSignature(64, 32).create()
    m = Module()
    m.domains.sync = ClockDomain()
    trace = []

    async def master(ctx):
        ctx.set(bus.cyc, 1)
        ctx.set(bus.stb, 1)
        ctx.set(bus.cti, 0b010)
        for word in range(6):
            ctx.set(bus.adr, 0x100 + word)
            if word == 5:
                ctx.set(bus.cti, 0b111)
            while True:
                _, _, stall = await ctx.tick().sample(bus.stall)
                if not stall:
                    break
        ctx.set(bus.stb, 0)
        await ctx.tick().repeat(40)

    sim = Simulator(m)
    sim.add_clock(1e-8)
    sim.add_process(functools.partial(wishbone_slave, bus=bus, memory=SparseMemory(),
                                      model=MemoryModel(bytes_per_cycle=4, latency=3),
                                      trace=trace))
    sim.add_testbench(master)
    sim.run()
    beats = cycles_of(trace, "beat")
    acks = cycles_of(trace, "ack")
    # 4 B/cycle on an 8-byte bus: a beat every other cycle, answered 3 cycles later.
    assert [b - beats[0] for b in beats] == [0, 2, 4, 6, 8, 10]
    assert acks == [b + 3 for b in beats]
