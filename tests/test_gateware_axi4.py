# amaranth: UnusedElaboratable=no
# (Components built only to inspect their signature, or whose constructor raises, are never
# elaborated.)
"""The AXI4 signatures and ``Axi4Master`` in simulation: random reads and writes with random
strobes under random pauses on every channel of the port and of the bus, checked in order and
byte for byte against a shadow memory; error responses; outstanding reads; exact cycle counts;
the skid buffer; signature validation; the Verilog port names."""

import functools
import random
import re

import pytest
from amaranth.back import verilog
from amaranth.hdl import Shape
from amaranth.lib.wiring import In
from amaranth.sim import Simulator

from convhw.gateware.axi4 import Axi4LiteSignature, Axi4Master, Axi4Signature
from convhw.gateware.memory_port import MemoryPortSignature
from convhw.gateware.skid_buffer import SkidBuffer
from convhw.sim_memory import SparseMemory, axi4_slave, stream_get, stream_put

from .helpers import exactly
from .memory_port_traffic import (
    READ_ARENA,
    WRITE_ARENA,
    Traffic,
    check_no_combinational_path,
    measure,
    run_traffic,
)

AXI4_NAMES = ("awid awaddr awlen awsize awburst awlock awcache awprot awvalid awready "
              "wdata wstrb wlast wvalid wready bid bresp bvalid bready "
              "arid araddr arlen arsize arburst arlock arcache arprot arvalid arready "
              "rid rdata rresp rlast rvalid rready").split()


def slave_for(dut, memory, **kwargs):
    return functools.partial(axi4_slave, axi=dut.axi, memory=memory, **kwargs)


# -- signatures -----------------------------------------------------------------------------------


def test_axi4_signature_members():
    sig = Axi4Signature(64, 40, 4)
    assert list(sig.members) == AXI4_NAMES
    assert (sig.data_width, sig.addr_width, sig.id_width) == (64, 40, 4)
    widths = {name: Shape.cast(sig.members[name].shape).width for name in AXI4_NAMES}
    assert widths["awaddr"] == widths["araddr"] == 40
    assert widths["wdata"] == widths["rdata"] == 64 and widths["wstrb"] == 8
    assert widths["awid"] == widths["rid"] == 4 and widths["arlen"] == 8
    inputs = {name for name in AXI4_NAMES if sig.members[name].flow == In}
    assert inputs == {"awready", "wready", "bid", "bresp", "bvalid", "arready",
                      "rid", "rdata", "rresp", "rlast", "rvalid"}
    assert sig == Axi4Signature(64, 40, 4) and sig != Axi4Signature(64, 40, 1)
    assert repr(sig) == "Axi4Signature(64, 40, 4)"


def test_axi4_lite_signature_members():
    sig = Axi4LiteSignature()
    assert list(sig.members) == [name for name in AXI4_NAMES
                                 if not re.match(r"(aw|ar|b|r|w)(id|len|size|burst|lock|cache|"
                                                 r"last)$", name)]
    assert Shape.cast(sig.members["wstrb"].shape).width == 4
    assert repr(Axi4LiteSignature(64, 16)) == "Axi4LiteSignature(64, 16)"


@pytest.mark.parametrize(("args", "error", "message"), [
    ((48,), ValueError, "data_width must be a power of two from 8 to 1024, not 48"),
    ((2048,), ValueError, "data_width must be a power of two from 8 to 1024, not 2048"),
    (("64",), TypeError, "data_width must be an integer, not '64'"),
    ((64, 8), ValueError, "addr_width must be an integer from 12 to 64, not 8"),
    ((64, 32, 0), ValueError, "id_width must be an integer from 1 to 32, not 0"),
    ((64, 32, True), TypeError, "id_width must be an integer, not True"),
])
def test_axi4_signature_wrong(args, error, message):
    with pytest.raises(error, match=exactly(message)):
        Axi4Signature(*args)


def test_axi4_lite_signature_wrong():
    with pytest.raises(ValueError, match=exactly("data_width must be 32 or 64, not 128")):
        Axi4LiteSignature(128)
    with pytest.raises(TypeError, match=exactly("data_width must be an integer, not 32.0")):
        Axi4LiteSignature(32.0)


def test_init():
    dut = Axi4Master(128, 36)
    assert dut.signature.members["port"].signature == MemoryPortSignature(128, 36).flip()
    assert dut.signature.members["axi"].signature == Axi4Signature(128, 36, 1)
    assert (dut.data_width, dut.addr_width) == (128, 36)


@pytest.mark.parametrize(("args", "error", "message"), [
    ((16,), ValueError, "data_width must be a power of two from 32 to 512, not 16"),
    ((1024,), ValueError, "data_width must be a power of two from 32 to 512, not 1024"),
    ((96,), ValueError, "data_width must be a power of two from 32 to 512, not 96"),
    ((None,), TypeError, "data_width must be an integer, not None"),
    ((64, 65), ValueError, "addr_width must be an integer from 12 to 64, not 65"),
])
def test_init_wrong(args, error, message):
    with pytest.raises(error, match=exactly(message)):
        Axi4Master(*args)


def test_verilog_port_names():
    """Flat AXI names after the port's name, as cocotbext-axi's ``from_prefix(dut, "axi_")``
    expects."""
    text = verilog.convert(Axi4Master(64), name="axi4_master", emit_src=False)
    ports = set(re.findall(r"^\s*(?:input|output)\s+(?:\[\d+:0\]\s*)?(\w+);", text, re.M))
    assert {f"axi__{name}" for name in AXI4_NAMES} <= ports
    assert {"port__read_cmd__payload", "port__write_resp__valid"} <= ports


# -- the skid buffer ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2])
def test_skid_buffer_random(seed):
    """Every transfer comes out once, in order, under random pauses on both sides; the input
    is ready whenever the skid register is empty, whatever the output does."""
    rng = random.Random(seed)
    dut = SkidBuffer(16)
    values = [rng.getrandbits(16) for _ in range(300)]
    got = []

    async def producer(ctx):
        for value in values:
            while rng.random() < 0.3:
                await ctx.tick()
            await stream_put(ctx, dut.i, value)

    async def consumer(ctx):
        while len(got) < len(values):
            while rng.random() < 0.4:
                await ctx.tick()
            got.append(await stream_get(ctx, dut.o))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    assert got == values, f"seed {seed}"


def test_skid_buffer_wrong_shape():
    with pytest.raises(TypeError, match=exactly("shape must be a shape-castable object, "
                                                "not 'x'")):
        SkidBuffer("x")


# -- random traffic -------------------------------------------------------------------------------


@pytest.mark.parametrize(("seed", "data_width"),
                         [(1, 32), (2, 64), (3, 128), (6, 512)])
def test_sim_random_traffic(seed, data_width):
    rng = random.Random(seed)
    dut = Axi4Master(data_width)
    memory = SparseMemory()
    traffic = Traffic(seed, data_width, reads=25, writes=25)
    pause = {ch: rng.choice([0.0, 0.2, 0.5]) for ch in ("ar", "aw", "w", "r", "b")}
    slave = slave_for(dut, memory, latency=rng.randint(1, 6), pause=pause, seed=seed)
    run_traffic(dut, slave, traffic, memory, pause=rng.choice([0.0, 0.3, 0.6]), seed=seed)


@pytest.mark.parametrize("seed", [4, 5])
def test_sim_error_responses(seed):
    """SLVERR on some beats of reads and writes reaches read_data.error (those beats only) and
    write_resp.error (the commands with a failed beat), every beat still arrives, nothing
    hangs, and failed beats are not written."""
    errors = [(READ_ARENA[0] + 0x100, READ_ARENA[0] + 0x400),
              (WRITE_ARENA[0] + 0x200, WRITE_ARENA[0] + 0x900)]
    dut = Axi4Master(64)
    memory = SparseMemory()
    traffic = Traffic(seed, 64, reads=30, writes=30, errors=errors)
    assert any(traffic.write_errors) and not all(traffic.write_errors)
    assert any(data is None for data, _ in traffic.read_beats)
    slave = slave_for(dut, memory, latency=2, pause=0.3, errors=errors, seed=seed)
    run_traffic(dut, slave, traffic, memory, pause=0.3, seed=seed)


# -- structure: outstanding reads, cycle counts ---------------------------------------------------


def test_sim_outstanding_reads():
    """With a read latency of 10, two read commands issued back to back are both on AR before
    the first R beat."""
    dut = Axi4Master(64)
    trace = []
    slave = slave_for(dut, SparseMemory(), latency=10, trace=trace)
    beats = []

    async def bench(ctx):
        for addr in (0x1000, 0x2000):
            await stream_put(ctx, dut.port.read_cmd, {"addr": addr, "len": 3})
        for _ in range(8):
            beats.append(await stream_get(ctx, dut.port.read_data))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(slave)
    sim.add_testbench(bench)
    sim.run()
    ar = [cycle for cycle, ch, _ in trace if ch == "ar"]
    r = [cycle for cycle, ch, _ in trace if ch == "r"]
    assert len(ar) == 2 and ar[1] == ar[0] + 1 and ar[1] < r[0]
    assert [b.last for b in beats] == [0, 0, 0, 1] * 2


@pytest.mark.parametrize("latency", [1, 4, 12])
@pytest.mark.parametrize("beats", [1, 2, 100])
def test_sim_cycle_counts(beats, latency):
    """On an idle bus that never pauses, a command presented in cycle 0 with ``beats`` beats
    and a slave of read latency (and write response latency) ``L`` ends in cycle
    ``beats + L + 1``: one cycle through the command's skid buffer, L in the slave, one through
    the response's skid buffer; read beats come one per cycle."""
    for kind in ("read", "write"):
        dut = Axi4Master(64)
        cycles = measure(dut, slave_for(dut, SparseMemory(), latency=latency), kind=kind,
                         addr=0x3000, beats=beats, data_width=64)
        assert cycles[-1] == beats + latency + 1, (kind, cycles[:3])
        if kind == "read":
            assert cycles == list(range(latency + 2, latency + 2 + beats))


def test_sim_constant_fields():
    """INCR bursts of full-width beats, ID 0, cache 0b0011, prot 0, lock 0."""
    dut = Axi4Master(128)
    seen = []

    async def bench(ctx):
        await stream_put(ctx, dut.port.read_cmd, {"addr": 0x40, "len": 5})
        await stream_put(ctx, dut.port.write_cmd, {"addr": 0x80, "len": 0})
        ctx.set(dut.axi.arready, 1)
        ctx.set(dut.axi.awready, 1)
        for _ in range(3):
            axi = dut.axi
            if ctx.get(axi.arvalid):
                seen.append(("ar", ctx.get(axi.araddr), ctx.get(axi.arlen), ctx.get(axi.arsize),
                             ctx.get(axi.arburst), ctx.get(axi.arcache), ctx.get(axi.arprot),
                             ctx.get(axi.arlock), ctx.get(axi.arid)))
            if ctx.get(axi.awvalid):
                seen.append(("aw", ctx.get(axi.awaddr), ctx.get(axi.awlen), ctx.get(axi.awsize),
                             ctx.get(axi.awburst), ctx.get(axi.awcache), ctx.get(axi.awprot),
                             ctx.get(axi.awlock), ctx.get(axi.awid)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert ("ar", 0x40, 5, 4, 0b01, 0b0011, 0, 0, 0) in seen
    assert ("aw", 0x80, 0, 4, 0b01, 0b0011, 0, 0, 0) in seen


@pytest.mark.parametrize("seed", [1, 2])
def test_sim_no_combinational_path(seed):
    """Every output on either side comes from a flip-flop as far as the other side's inputs are
    concerned (the ECP5 clock target: no path through the adapter)."""
    check_no_combinational_path(Axi4Master(64), "axi", seed)
