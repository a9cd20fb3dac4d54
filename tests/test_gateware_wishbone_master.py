# amaranth: UnusedElaboratable=no
# (Components built only to inspect their signature, or whose constructor raises, are never
# elaborated.)
"""``WishboneMaster`` and its signature in simulation: random reads and writes with random
strobes under random stalls, answer delays and issuer pauses, checked in order and byte for
byte against a shadow memory, with every bus cycle checked against its command (one cycle per
command, burst tags, consecutive addresses); ERR answers; pipelining; fair arbitration; exact
cycle counts; signature validation."""

import functools
import random

import pytest
from amaranth.hdl import Shape
from amaranth.lib.wiring import In
from amaranth.sim import Simulator

from convhw.gateware.memory_port import MemoryPortSignature
from convhw.gateware.wishbone_master import WishboneMaster, WishbonePipelinedSignature
from convhw.sim_memory import SparseMemory, stream_get, stream_put, wishbone_slave

from .helpers import exactly
from .memory_port_traffic import (
    READ_ARENA,
    WRITE_ARENA,
    Traffic,
    check_no_combinational_path,
    measure,
    run_traffic,
)


def slave_for(dut, memory, **kwargs):
    return functools.partial(wishbone_slave, bus=dut.bus, memory=memory, **kwargs)


def bus_cycles(trace):
    """The bus cycles of a slave trace: per cycle, its beats ``(adr, we, sel, cti)`` and its
    number of answers."""
    cycles = []
    for _, event, detail in trace:
        if event == "cyc" and detail:
            cycles.append({"beats": [], "answers": 0})
        elif event == "beat":
            cycles[-1]["beats"].append(detail)
        elif event in ("ack", "err"):
            cycles[-1]["answers"] += 1
    return cycles


def check_bus_cycles(trace, traffic, beat_bytes):
    """One bus cycle per command, reads and writes each in command order: the command's
    beats at consecutive word addresses, CTI 0b010 but 0b111 on the last, every beat
    answered, SEL the write strobes (all ones for reads)."""
    reads, writes = iter(traffic.reads), iter(traffic.writes)
    # The read-back phase of run_traffic adds read cycles after these.
    count = len(traffic.reads) + len(traffic.writes)
    for index, cycle in enumerate(bus_cycles(trace)[:count]):
        beats = cycle["beats"]
        we = beats[0][1]
        cmd = next(writes if we else reads)
        assert [b[0] for b in beats] == [cmd.addr // beat_bytes + i for i in range(cmd.beats)], \
            f"bus cycle {index}"
        assert all(b[1] == we for b in beats)
        assert [b[3] for b in beats] == [0b010] * (cmd.beats - 1) + [0b111]
        assert [b[2] for b in beats] == (cmd.strb if we else [(1 << beat_bytes) - 1] * cmd.beats)
        assert cycle["answers"] == cmd.beats
    assert next(writes, None) is None and next(reads, None) is None


# -- signature ------------------------------------------------------------------------------------


def test_signature_members():
    sig = WishbonePipelinedSignature(64, 32)
    assert list(sig.members) == ["cyc", "stb", "we", "adr", "dat_w", "sel", "cti", "bte",
                                 "dat_r", "ack", "err", "stall"]
    widths = {name: Shape.cast(m.shape).width for name, m in sig.members.items()}
    assert widths == {"cyc": 1, "stb": 1, "we": 1, "adr": 29, "dat_w": 64, "sel": 8, "cti": 3,
                      "bte": 2, "dat_r": 64, "ack": 1, "err": 1, "stall": 1}
    assert {name for name, m in sig.members.items() if m.flow == In} == \
        {"dat_r", "ack", "err", "stall"}
    assert sig.word_addr_width == 29 and WishbonePipelinedSignature(512, 40).word_addr_width == 34
    assert sig == WishbonePipelinedSignature() and sig != WishbonePipelinedSignature(32)
    assert repr(sig) == "WishbonePipelinedSignature(64, 32)"


@pytest.mark.parametrize(("args", "error", "message"), [
    ((24,), ValueError, "data_width must be a power of two from 8 to 512, not 24"),
    ((1024,), ValueError, "data_width must be a power of two from 8 to 512, not 1024"),
    ((64, 11), ValueError, "addr_width must be an integer from 12 to 64, not 11"),
    ((64, "32"), TypeError, "addr_width must be an integer, not '32'"),
])
def test_signature_wrong(args, error, message):
    with pytest.raises(error, match=exactly(message)):
        WishbonePipelinedSignature(*args)


def test_init():
    dut = WishboneMaster(32, 24, read_buffer=4)
    assert dut.signature.members["port"].signature == MemoryPortSignature(32, 24).flip()
    assert dut.signature.members["bus"].signature == WishbonePipelinedSignature(32, 24)
    assert (dut.data_width, dut.addr_width, dut.read_buffer) == (32, 24, 4)


@pytest.mark.parametrize(("args", "kwargs", "error", "message"), [
    ((8,), {}, ValueError, "data_width must be a power of two from 32 to 512, not 8"),
    ((64, 70), {}, ValueError, "addr_width must be an integer from 12 to 64, not 70"),
    ((), {"read_buffer": 1}, ValueError, "read_buffer must be an integer from 2 to 256, not 1"),
    ((), {"read_buffer": 4.0}, TypeError, "read_buffer must be an integer, not 4.0"),
])
def test_init_wrong(args, kwargs, error, message):
    with pytest.raises(error, match=exactly(message)):
        WishboneMaster(*args, **kwargs)


# -- random traffic -------------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "data_width"),
                         [(1, 32), (2, 64), (3, 128), (6, 512)])
def test_sim_random_traffic(seed, data_width):
    rng = random.Random(seed)
    dut = WishboneMaster(data_width, read_buffer=rng.choice([2, 5, 16]))
    memory = SparseMemory()
    traffic = Traffic(seed, data_width, reads=25, writes=25)
    trace = []
    pause = {"stall": rng.choice([0.0, 0.2, 0.5]), "ack": rng.choice([0.0, 0.2, 0.5])}
    slave = slave_for(dut, memory, latency=rng.randint(1, 6), pause=pause, seed=seed,
                      trace=trace)
    run_traffic(dut, slave, traffic, memory, pause=rng.choice([0.0, 0.3, 0.6]), seed=seed)
    check_bus_cycles(trace, traffic, data_width // 8)


@pytest.mark.parametrize("seed", [4, 5])
def test_sim_error_responses(seed):
    """ERR on some beats of reads and writes reaches read_data.error (those beats only) and
    write_resp.error (the commands with a failed beat); every beat is still issued and
    answered, nothing hangs, failed beats are not written."""
    errors = [(READ_ARENA[0] + 0x100, READ_ARENA[0] + 0x400),
              (WRITE_ARENA[0] + 0x200, WRITE_ARENA[0] + 0x900)]
    dut = WishboneMaster(64, read_buffer=4)
    memory = SparseMemory()
    traffic = Traffic(seed, 64, reads=30, writes=30, errors=errors)
    assert any(traffic.write_errors) and not all(traffic.write_errors)
    assert any(data is None for data, _ in traffic.read_beats)
    trace = []
    slave = slave_for(dut, memory, latency=2, pause=0.3, errors=errors, seed=seed, trace=trace)
    run_traffic(dut, slave, traffic, memory, pause=0.3, seed=seed)
    check_bus_cycles(trace, traffic, 8)
    assert any(event == "err" for _, event, _ in trace)


# -- structure: pipelining, arbitration, cycle counts ---------------------------------------------


@pytest.mark.parametrize("latency", [1, 6])
def test_sim_pipelined(latency):
    """Beats go out one per cycle without waiting for answers: with latency L, the first
    answer comes when L beats have been presented."""
    dut = WishboneMaster(64)
    trace = []
    slave = slave_for(dut, SparseMemory(), latency=latency, trace=trace)
    measure(dut, slave, kind="read", addr=0x2000, beats=12, data_width=64)
    beats = [cycle for cycle, event, _ in trace if event == "beat"]
    acks = [cycle for cycle, event, _ in trace if event == "ack"]
    assert beats == list(range(beats[0], beats[0] + 12))
    assert acks == [cycle + latency for cycle in beats]


def test_sim_fair_arbitration():
    """With reads and writes both waiting, the master alternates between them; CYC drops for
    exactly one cycle between commands."""
    dut = WishboneMaster(32)
    trace = []
    slave = slave_for(dut, SparseMemory(), latency=1, trace=trace)

    async def reads(ctx):
        ctx.set(dut.port.read_data.ready, 1)
        for i in range(4):
            await stream_put(ctx, dut.port.read_cmd, {"addr": 0x100 * i, "len": 1})

    async def writes(ctx):
        ctx.set(dut.port.write_resp.ready, 1)
        for i in range(4):
            await stream_put(ctx, dut.port.write_cmd, {"addr": 0x1000 + 0x100 * i, "len": 1})

    async def write_data(ctx):
        for i in range(8):
            await stream_put(ctx, dut.port.write_data, {"data": i, "strb": 0xF, "last": i % 2})
        for _ in range(30):
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(slave)
    for bench in (reads, writes, write_data):
        sim.add_testbench(bench)
    sim.run()
    kinds = [cycle["beats"][0][1] for cycle in bus_cycles(trace)]
    assert kinds == [0, 1] * 4 or kinds == [1, 0] * 4
    edges = [(cycle, up) for cycle, event, up in trace if event == "cyc"]
    gaps = [b[0] - a[0] for a, b in zip(edges, edges[1:]) if not a[1]]
    assert gaps == [1] * 7


@pytest.mark.parametrize("latency", [1, 4, 12])
@pytest.mark.parametrize("beats", [1, 2, 100])
def test_sim_cycle_counts(beats, latency):
    """On an idle bus that never stalls, a command presented in cycle 0 with ``beats`` beats
    (and a write's data from cycle 0 on) and a slave of answer latency L: a read's first beat
    goes out with CYC in cycle 1, its last beat reaches the port in cycle ``beats + L + 2``
    (read beats one per cycle, as the default 16-entry read buffer covers L + 4); a write's
    first beat goes out in cycle 2 (its data passes a skid buffer), its response reaches the
    port in cycle ``beats + L + 2``."""
    for kind, end in (("read", beats + latency + 2), ("write", beats + latency + 2)):
        dut = WishboneMaster(64)
        cycles = measure(dut, slave_for(dut, SparseMemory(), latency=latency), kind=kind,
                         addr=0x3000, beats=beats, data_width=64)
        assert cycles[-1] == end, (kind, cycles[:3])
        if kind == "read":
            assert cycles == list(range(end - beats + 1, end + 1))


def test_sim_small_read_buffer_throttles():
    """A read buffer shorter than the round trip limits beats in flight (never overflows): with
    2 entries and latency 4, a 32-beat read still delivers every beat, in order."""
    dut = WishboneMaster(64, read_buffer=2)
    memory = SparseMemory()
    got = []

    async def bench(ctx):
        await stream_put(ctx, dut.port.read_cmd, {"addr": 0x800, "len": 31})
        for _ in range(32):
            got.append(await stream_get(ctx, dut.port.read_data))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(slave_for(dut, memory, latency=4))
    sim.add_testbench(bench)
    sim.run()
    assert [b.data for b in got] == [memory.read_word(0x800 + 8 * i, 8) for i in range(32)]
    assert [b.last for b in got] == [0] * 31 + [1]


@pytest.mark.parametrize("seed", [1, 2])
def test_sim_no_combinational_path(seed):
    """Every output on either side comes from a flip-flop as far as the other side's inputs are
    concerned (the ECP5 clock target: no path through the adapter)."""
    check_no_combinational_path(WishboneMaster(64), "bus", seed)
