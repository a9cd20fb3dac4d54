# amaranth: UnusedElaboratable=no
# (Components built only to inspect their signature, or whose constructor raises, are never
# elaborated; without this, Amaranth warns about them when they are collected.)
"""The Wishbone slave and the register file in simulation: register read-back, constants,
write-1-pulse fields, error answers, window decoding with random target latency, back-to-back and
aborted accesses, random traffic against a Python model; and conversion to Verilog."""

import random
import re

import pytest
from amaranth.back import verilog
from amaranth.hdl import Elaboratable, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from convhw.config import EngineConfig
from convhw.gateware.register_file import RegisterBusSignature, RegisterFile
from convhw.gateware.wishbone import WindowSignature, WishboneSignature, WishboneSlave
from convhw.registers import engine_register_map
from convhw.regmap import Field, Register, RegisterMap, Window
from convhw.sim_helpers import BusError, BusTimeout, RandomIdle, wb_read, wb_transaction, wb_write

from .helpers import exactly

# Non-power-of-two window sizes, so that the unmapped tail of a window's span is exercised:
# INPUT 20 words at 0x1000 (span 32), WEIGHT 16 at 0x1080, OUTPUT 32 at 0x1100; end 0x1180.
TINY = EngineConfig(rows=3, cols=2, input_depth=20, weight_depth=16, acc_depth=16)


def pattern(tag, offset):
    """What a test target's memory holds initially: names the window and the offset."""
    return 0xA5000000 | tag << 16 | offset


class Target(wiring.Component):
    """A window target: a memory answering each request after a latency from a seeded list.

    ``violation`` latches a strobe that arrives while a request is outstanding; ``requests``,
    ``last_addr`` and ``last_we`` tell what reached the target.
    """

    MAX_DEPTH = 64  # larger windows fold onto this many words; last_addr still is exact

    def __init__(self, window, *, tag, latencies):
        self.window = window
        self.tag = tag
        depth = min(window.words, self.MAX_DEPTH)
        self.memory = Memory(shape=32, depth=depth,
                             init=[pattern(tag, offset) for offset in range(depth)])
        self.latencies = Memory(shape=2, depth=len(latencies), init=latencies)
        super().__init__({
            "port": In(WindowSignature(window.offset_width)),
            "requests": Out(16),
            "last_addr": Out(window.offset_width),
            "last_we": Out(1),
            "violation": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.memory = self.memory
        m.submodules.latencies = self.latencies
        read = self.memory.read_port(domain="comb")
        write = self.memory.write_port()
        latency = self.latencies.read_port(domain="comb")
        port = self.port

        busy = Signal()
        left = Signal(2)
        held_addr = Signal.like(port.addr)
        held_we = Signal()
        held_data = Signal(32)
        fire = Signal()
        strobe = port.r_stb | port.w_stb
        addr = Mux(busy, held_addr, port.addr)
        we = Mux(busy, held_we, port.w_stb)
        m.d.comb += [
            latency.addr.eq(self.requests),
            read.addr.eq(addr),
            write.addr.eq(addr),
            write.data.eq(Mux(busy, held_data, port.w_data)),
            write.en.eq(fire & we),
            port.ack.eq(fire),
            # Garbage outside the ack cycle: a slave sampling r_data late reads this.
            port.r_data.eq(Mux(fire, read.data, 0xDEADBEEF)),
        ]
        with m.If(strobe):
            m.d.sync += [self.requests.eq(self.requests + 1), self.last_addr.eq(port.addr),
                         self.last_we.eq(port.w_stb)]
            with m.If(busy | (port.r_stb & port.w_stb)):
                m.d.sync += self.violation.eq(1)
        with m.If(~busy & strobe):
            with m.If(latency.data == 0):
                m.d.comb += fire.eq(1)
            with m.Else():
                m.d.sync += [busy.eq(1), left.eq(latency.data - 1), held_addr.eq(port.addr),
                             held_we.eq(port.w_stb), held_data.eq(port.w_data)]
        with m.Elif(busy):
            with m.If(left == 0):
                m.d.comb += fire.eq(1)
                m.d.sync += busy.eq(0)
            with m.Else():
                m.d.sync += left.eq(left - 1)
        return m


class Harness(Elaboratable):
    """Slave + register file + one Target per window."""

    def __init__(self, register_map, *, seed=0, latencies=None, registered_decode=False):
        rng = random.Random(seed)
        self.map = register_map
        self.rf = RegisterFile(register_map)
        self.slave = WishboneSlave(register_map, registered_decode=registered_decode)
        self.wb = self.slave.wb
        self.targets = {}
        for tag, window in enumerate(register_map.windows):
            lats = latencies or [rng.randrange(4) for _ in range(64)]
            self.targets[window.name] = Target(window, tag=tag, latencies=lats)

    def elaborate(self, platform):
        m = Module()
        m.submodules.rf = self.rf
        m.submodules.slave = self.slave
        wiring.connect(m, self.slave.registers, self.rf.bus)
        for name, target in self.targets.items():
            m.submodules[f"target_{name.lower()}"] = target
            wiring.connect(m, getattr(self.slave.windows, name.lower()), target.port)
        return m


def simulate(harness, testbench, *, monitors=()):
    sim = Simulator(harness)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    for monitor in monitors:
        sim.add_testbench(monitor, background=True)
    sim.run()


async def no_violations(ctx, harness):
    for name, target in harness.targets.items():
        assert ctx.get(target.violation) == 0, f"window {name} was strobed while busy"


def small_map():
    """A small map with every kind of field and window."""
    return RegisterMap([
        Register("MAGIC", 0x00, [Field("VALUE", 32, 0, "ro", "constant", 0x12345678)], "ro"),
        Register("SCRATCH", 0x04, [Field("VALUE", 32, 0, "rw", "scratch", 0xCAFEF00D)], "rw"),
        Register("MIXED", 0x08, [
            Field("LOW", 4, 0, "rw", "rw low", 5),
            Field("HW", 8, 8, "ro", "driven by the testbench"),
            Field("GO", 1, 16, "w1p", "pulse"),
            Field("HIGH", 3, 29, "rw", "rw high", 2),
        ], "mixed"),
        Register("STAT", 0x10, [Field("VALUE", 16, 0, "ro", "driven by the testbench")], "ro"),
    ], [
        Window("MEM", 0x80, 20, "rw window, 20 of 32 words mapped", "rw"),
        Window("ROM", 0x100, 8, "ro window", "ro"),
        Window("ONE", 0x120, 1, "a single word", "rw"),
    ], register_space=0x40)


# -- signatures and construction ----------------------------------------------------------------


def test_signatures():
    assert WishboneSignature(16) == WishboneSignature(16)
    assert WishboneSignature(16) != WishboneSignature(15)
    assert repr(WindowSignature(5)) == "WindowSignature(5)"
    assert set(WishboneSignature(4).members) == {
        "cyc", "stb", "we", "adr", "dat_w", "sel", "dat_r", "ack", "err"}
    assert set(WindowSignature(4).members) == {"addr", "r_stb", "w_stb", "w_data", "r_data",
                                               "ack"}
    regmap = engine_register_map()
    slave = WishboneSlave(regmap)
    assert slave.signature.members["wb"] == In(WishboneSignature(16))
    assert slave.signature.members["registers"] == Out(RegisterBusSignature(10))
    assert [(name, member.signature.addr_width) for name, member
            in slave.signature.members["windows"].signature.members.items()] == [
        ("input", 14), ("weight", 12), ("output", 14)]
    rf = RegisterFile(regmap)
    assert rf.regs.ctrl.start.shape().width == 1
    assert rf.signature.members["regs"].signature.members["status"].signature.members[
        "busy"].flow == In
    with pytest.raises(TypeError, match=exactly("register_map must be a RegisterMap, not 3")):
        WishboneSlave(3)
    with pytest.raises(TypeError, match=exactly("register_map must be a RegisterMap, not 'x'")):
        RegisterFile("x")
    with pytest.raises(TypeError, match=exactly("addr_width must be a positive integer, not 0")):
        WindowSignature(0)


@pytest.mark.parametrize("config", ["small", "default"])
def test_verilog(config):
    regmap = engine_register_map(config)
    text = verilog.convert(WishboneSlave(regmap), name="convhw_wb")
    assert "module convhw_wb(" in text
    for port in ("wb__cyc", "wb__ack", "wb__err", "registers__w_stb", "windows__output__r_stb"):
        assert port in text
    assert f"input [{regmap.bus_address_width - 1}:0] wb__adr;" in text
    text = verilog.convert(RegisterFile(regmap), name="convhw_regs")
    assert "regs__ctrl__start" in text and "regs__hwcfg0__rows" in text


class Top(wiring.Component):
    """Slave and register file with only the bus outside, windows answering at once."""

    def __init__(self, regmap):
        self.map = regmap
        super().__init__({"wb": In(WishboneSignature(regmap.bus_address_width))})

    def elaborate(self, platform):
        m = Module()
        m.submodules.rf = rf = RegisterFile(self.map)
        m.submodules.slave = slave = WishboneSlave(self.map)
        wiring.connect(m, slave.registers, rf.bus)
        wiring.connect(m, wiring.flipped(self.wb), slave.wb)
        for window in self.map.windows:
            port = getattr(slave.windows, window.name.lower())
            m.d.comb += port.ack.eq(port.r_stb | port.w_stb)
        return m


def test_verilog_constants_need_no_wiring():
    """Undriven ro ports (ID, HWCFG*) become their reset constants in the netlist."""
    regmap = engine_register_map("small")
    text = verilog.convert(Top(regmap), name="top")

    def constant(port, width, value):
        # Yosys prints constants in decimal or hex depending on the value.
        return re.search(rf"assign {port} = {width}'(d0*{value}|h0*{value:x});", text)

    assert constant("regs__id__value", 32, 0x43564857)
    assert constant("regs__hwcfg3__acc_depth", 21, regmap.config.acc_depth)


def test_verilog_without_windows():
    regmap = RegisterMap([Register("A", 0, [Field("X", 8, 0, "rw", "")], "")],
                         register_space=0x10)
    assert "module top(" in verilog.convert(WishboneSlave(regmap), name="top")


# -- registers ------------------------------------------------------------------------------------


def test_engine_constants_and_status():
    regmap = engine_register_map(TINY)
    harness = Harness(regmap)
    status = harness.rf.regs

    async def testbench(ctx):
        for register in regmap.registers:
            if register.name in ("ID", "VERSION") or register.name.startswith("HWCFG"):
                assert await wb_read(ctx, harness.wb, register.address) == register.reset
        assert await wb_read(ctx, harness.wb, 0x000) == 0x43564857
        hwcfg0 = await wb_read(ctx, harness.wb, 0x008)
        assert [hwcfg0 & 0xFF, hwcfg0 >> 8 & 0xFF, hwcfg0 >> 16 & 0x1F, hwcfg0 >> 21 & 0x1F,
                hwcfg0 >> 26] == [3, 2, 8, 8, 32]
        assert [await wb_read(ctx, harness.wb, a) for a in (0x00C, 0x010, 0x014)] == [20, 16, 16]
        assert await wb_read(ctx, harness.wb, 0x024) == 0
        ctx.set(status.status.busy, 1)
        ctx.set(status.status.error, 1)
        ctx.set(status.error.code, 0x5A)
        ctx.set(status.cycles.count, 0xFEDCBA98)
        assert await wb_read(ctx, harness.wb, 0x024) == 0b101
        assert await wb_read(ctx, harness.wb, 0x028) == 0x5A
        assert await wb_read(ctx, harness.wb, 0x02C) == 0xFEDCBA98
        assert await wb_read(ctx, harness.wb, 0x020) == 0  # CTRL: w1p reads as 0

    simulate(harness, testbench)


def test_rw_fields_and_mixed_register():
    regmap = small_map()
    harness = Harness(regmap)
    regs = harness.rf.regs

    async def testbench(ctx):
        bus = harness.wb
        assert await wb_read(ctx, bus, 0x04) == 0xCAFEF00D  # reset value
        assert ctx.get(regs.scratch.value) == 0xCAFEF00D
        await wb_write(ctx, bus, 0x04, 0x01234567)
        assert ctx.get(regs.scratch.value) == 0x01234567  # the hardware sees it
        assert await wb_read(ctx, bus, 0x04) == 0x01234567
        # MIXED resets to LOW=5, HIGH=2; HW reads what the hardware drives; GO reads 0.
        ctx.set(regs.mixed.hw, 0xC3)
        assert await wb_read(ctx, bus, 0x08) == 2 << 29 | 0xC3 << 8 | 5
        await wb_write(ctx, bus, 0x08, 0xFFFFFFFF)
        assert (ctx.get(regs.mixed.low), ctx.get(regs.mixed.high)) == (0xF, 7)
        assert await wb_read(ctx, bus, 0x08) == 7 << 29 | 0xC3 << 8 | 0xF
        await wb_write(ctx, bus, 0x08, 0)
        assert await wb_read(ctx, bus, 0x08) == 0xC3 << 8
        assert await wb_read(ctx, bus, 0x00) == 0x12345678
        ctx.set(regs.stat.value, 0xBEEF)
        assert await wb_read(ctx, bus, 0x10) == 0xBEEF

    simulate(harness, testbench)


def test_w1p_pulses_one_cycle():
    regmap = engine_register_map(TINY)
    harness = Harness(regmap)
    rf = harness.rf
    trace = []  # per cycle: (register-file write strobe, write data, START, ABORT)

    async def monitor(ctx):
        async for _, _, *values in ctx.tick().sample(rf.bus.w_stb, rf.bus.w_data,
                                                      rf.regs.ctrl.start, rf.regs.ctrl.abort):
            trace.append(tuple(values))

    async def testbench(ctx):
        for data in (0b01, 0b10, 0b11, 0b00, 0b01):
            await wb_write(ctx, harness.wb, 0x020, data)
        await wb_write(ctx, harness.wb, 0x020, 0b01)  # back-to-back with the previous one
        for _ in range(3):
            await ctx.tick()

    simulate(harness, testbench, monitors=[monitor])
    writes = [i for i, (w_stb, *_) in enumerate(trace) if w_stb]
    assert [trace[i][1] for i in writes] == [0b01, 0b10, 0b11, 0b00, 0b01, 0b01]
    # Each pulse is high exactly in the cycle after a write with its bit set, and never else.
    starts = [i for i, (_, _, start, _) in enumerate(trace) if start]
    aborts = [i for i, (_, _, _, abort) in enumerate(trace) if abort]
    assert starts == [i + 1 for i in writes if trace[i][1] & 1]
    assert aborts == [i + 1 for i in writes if trace[i][1] & 2]
    assert writes[-1] - writes[-2] == 2  # back-to-back accesses: one every two cycles


@pytest.mark.parametrize("registered", [False, True], ids=["decode", "registered-decode"])
def test_back_to_back(registered):
    """Accesses with no idle cycle in between (CYC and STB stay high across each answering edge
    while the address changes) are each answered exactly once, in order."""
    harness = Harness(small_map(), seed=4, registered_decode=registered)
    trace = []  # per cycle: (cyc, ack, err)

    async def monitor(ctx):
        async for _, _, *values in ctx.tick().sample(harness.wb.cyc, harness.wb.ack,
                                                      harness.wb.err):
            trace.append(tuple(values))

    async def testbench(ctx):
        bus = harness.wb
        await ctx.tick()
        await wb_write(ctx, bus, 0x04, 0x11)
        await wb_write(ctx, bus, 0x80, 0x22)
        await wb_write(ctx, bus, 0x84, 0x33)
        assert not (await wb_transaction(ctx, bus, 0x100, write=0))[0]  # ERR, ro window
        await wb_write(ctx, bus, 0x120, 0x44)
        values = [await wb_read(ctx, bus, a) for a in (0x80, 0x04, 0x84, 0x120, 0x100, 0x04)]
        assert values == [0x22, 0x11, 0x33, 0x44, pattern(1, 0), 0x11]
        await ctx.tick()

    simulate(harness, testbench, monitors=[monitor])
    busy = [i for i, (cyc, _, _) in enumerate(trace) if cyc]
    assert busy == list(range(busy[0], busy[-1] + 1))  # one unbroken bus cycle
    assert sum(ack for _, ack, _ in trace) == 10
    assert sum(err for _, _, err in trace) == 1


@pytest.mark.parametrize("registered", [False, True], ids=["decode", "registered-decode"])
def test_cycle_counts(registered):
    """Registers and zero-latency windows answer in 2 cycles; a latency-L window in 2 + L; with
    the registered decode one cycle more each."""
    for latency in (0, 3):
        harness = Harness(small_map(), latencies=[latency] * 64, registered_decode=registered)
        answered = []

        async def monitor(ctx, harness=harness, answered=answered):
            async for _, _, ack in ctx.tick().sample(harness.wb.ack):
                answered.append(ack)

        async def testbench(ctx, harness=harness):
            await wb_read(ctx, harness.wb, 0x04)
            await wb_read(ctx, harness.wb, 0x80)
            await wb_write(ctx, harness.wb, 0x84, 1)

        simulate(harness, testbench, monitors=[monitor])
        acks = [i for i, ack in enumerate(answered) if ack]
        more = int(registered)                       # cycles more per access
        assert acks == [1 + more, 3 + latency + 2 * more, 5 + 2 * latency + 3 * more], latency


# -- errors ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("registered", [False, True], ids=["decode", "registered-decode"])
def test_errors(registered):
    regmap = engine_register_map(TINY)
    assert regmap.size == 0x1180
    harness = Harness(regmap, seed=1, registered_decode=registered)
    targets = harness.targets

    async def testbench(ctx):
        bus = harness.wb
        before = {name: ctx.get(t.requests) for name, t in targets.items()}
        for address in (0x018, 0x01C, 0x030, 0x0FC, 0x198, 0xFFC,  # register space holes
                        0x1000 + 4 * 20, 0x1000 + 4 * 31,  # INPUT span past its 20 words
                        0x1180, 0x1FFC):  # past the last window
            with pytest.raises(BusError, match=exactly(f"read of {address:#x} answered with ERR")):
                await wb_read(ctx, bus, address)
            with pytest.raises(BusError):
                await wb_write(ctx, bus, address, 1)
        for address in (0x000, 0x008, 0x024, 0x02C, 0x1100, 0x117C):  # ro registers and OUTPUT
            with pytest.raises(BusError):
                await wb_write(ctx, bus, address, 0xFFFFFFFF)
        for sel in (0b0000, 0b0001, 0b0111, 0b1110):
            for address in (0x020, 0x1000, 0x1100):
                with pytest.raises(BusError):
                    await wb_write(ctx, bus, address, 1, sel=sel)
                with pytest.raises(BusError):
                    await wb_read(ctx, bus, address, sel=sel)
        # None of the refused accesses reached a window, none changed a register.
        assert {name: ctx.get(t.requests) for name, t in targets.items()} == before
        assert await wb_read(ctx, bus, 0x000) == 0x43564857
        assert await wb_read(ctx, bus, 0x1100) == pattern(2, 0)
        assert await wb_read(ctx, bus, 0x1000 + 4 * 19) == pattern(0, 19)  # last mapped word
        await no_violations(ctx, harness)

    simulate(harness, testbench)


def test_register_file_refuses_nothing_itself():
    """Driven directly, the register file ignores writes to ro bits and reads holes as 0."""
    rf = RegisterFile(small_map())

    async def testbench(ctx):
        async def access(addr, *, write=None):
            ctx.set(rf.bus.addr, addr)
            ctx.set(rf.bus.w_stb, write is not None)
            ctx.set(rf.bus.r_stb, write is None)
            ctx.set(rf.bus.w_data, write or 0)
            await ctx.tick()
            ctx.set(rf.bus.w_stb, 0)
            ctx.set(rf.bus.r_stb, 0)
            return ctx.get(rf.bus.r_data)

        assert await access(0) == 0x12345678
        await access(0, write=0)
        assert await access(0) == 0x12345678
        assert await access(3) == 0  # 0x0C: no register
        await access(1, write=0x11)
        assert await access(3) == 0
        assert await access(1) == 0x11
        await ctx.tick()
        assert ctx.get(rf.bus.r_data) == 0x11  # held until the next read

    sim = Simulator(rf)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


# -- windows --------------------------------------------------------------------------------------


@pytest.mark.parametrize("registered", [False, True], ids=["decode", "registered-decode"])
def test_windows_decode_and_offsets(registered):
    regmap = engine_register_map(TINY)
    harness = Harness(regmap, seed=2, registered_decode=registered)

    async def testbench(ctx):
        bus = harness.wb
        for tag, window in enumerate(regmap.windows):
            target = harness.targets[window.name]
            for offset in (0, 1, window.words // 2, window.words - 1):
                address = window.address + 4 * offset
                assert await wb_read(ctx, bus, address) == pattern(tag, offset)
                assert (ctx.get(target.last_addr), ctx.get(target.last_we)) == (offset, 0)
                if window.access == "rw":
                    value = 0x5000_0000 | tag << 12 | offset
                    await wb_write(ctx, bus, address, value)
                    assert (ctx.get(target.last_addr), ctx.get(target.last_we)) == (offset, 1)
                    assert ctx.get(target.memory.data[offset]) == value
                    assert await wb_read(ctx, bus, address) == value
        # The other windows' memories are untouched where they were not written.
        assert ctx.get(harness.targets["OUTPUT"].memory.data[5]) == pattern(2, 5)
        await no_violations(ctx, harness)

    simulate(harness, testbench)


@pytest.mark.parametrize("config", ["default", "small"])
def test_windows_of_presets(config):
    regmap = engine_register_map(config)
    harness = Harness(regmap, seed=3)

    async def testbench(ctx):
        for window in regmap.windows:
            target = harness.targets[window.name]
            for offset in (0, window.words - 1):
                await wb_transaction(ctx, harness.wb, window.address + 4 * offset,
                                     write=7 if window.access == "rw" else None)
                assert ctx.get(target.last_addr) == offset
            await wb_read(ctx, harness.wb, window.address)
            assert ctx.get(target.requests) == 3
        assert await wb_read(ctx, harness.wb, 0x008) == regmap["HWCFG0"].reset

    simulate(harness, testbench)


# -- aborted accesses -----------------------------------------------------------------------------


@pytest.mark.parametrize("registered", [False, True], ids=["decode", "registered-decode"])
def test_cyc_dropped_mid_access(registered):
    regmap = small_map()
    harness = Harness(regmap, latencies=[3] * 64, registered_decode=registered)
    mem = harness.targets["MEM"]

    async def start(ctx, address, *, write=None):
        bus = harness.wb
        ctx.set(bus.adr, address >> 2)
        ctx.set(bus.we, write is not None)
        ctx.set(bus.dat_w, write or 0)
        ctx.set(bus.sel, 0b1111)
        ctx.set(bus.cyc, 1)
        ctx.set(bus.stb, 1)

    async def drop(ctx, cycles):
        for _ in range(cycles):
            await ctx.tick()
        ctx.set(harness.wb.cyc, 0)
        ctx.set(harness.wb.stb, 0)

    async def quiet(ctx, cycles):
        for _ in range(cycles):
            assert not ctx.get(harness.wb.ack) and not ctx.get(harness.wb.err)
            await ctx.tick()

    async def testbench(ctx):
        bus = harness.wb
        # A window read abandoned after one cycle, with the target still busy: no answer, and
        # the next access (started at once) gets its own data, not the stale word.
        await start(ctx, 0x80 + 4 * 3)
        await drop(ctx, 1)
        await quiet(ctx, 1)
        assert await wb_read(ctx, bus, 0x80 + 4 * 7) == pattern(0, 7)
        # The same with a register access, started in the first cycle with CYC low (a master
        # cannot abort faster: without a low cycle, the slave sees one access), while the
        # target is still busy.
        await start(ctx, 0x80 + 4 * 4)
        await drop(ctx, 2)
        await ctx.tick()
        assert await wb_read(ctx, bus, 0x04) == 0xCAFEF00D
        # Dropped in the answering cycle: nothing answers, the master sees no ACK.
        await start(ctx, 0x04)
        await drop(ctx, 1)
        await quiet(ctx, 5)
        # Error answers are abandoned the same way.
        await start(ctx, 0x30)
        await drop(ctx, 1)
        await quiet(ctx, 2)
        # STB dropped with CYC held, then a new access in the same bus cycle.
        await start(ctx, 0x80 + 4 * 5, write=0x77)
        await ctx.tick()
        ctx.set(bus.stb, 0)
        await quiet(ctx, 1)
        ctx.set(bus.cyc, 0)
        assert await wb_read(ctx, bus, 0x80 + 4 * 6) == pattern(0, 6)
        # An abandoned write may take effect; whatever it did, the bus is consistent.
        assert await wb_read(ctx, bus, 0x80 + 4 * 5) == ctx.get(mem.memory.data[5])
        # And a normal access still gets exactly one answer.
        await wb_write(ctx, bus, 0x80, 0x42)
        assert await wb_read(ctx, bus, 0x80) == 0x42
        await quiet(ctx, 3)
        await no_violations(ctx, harness)

    simulate(harness, testbench)


def test_timeout_helper():
    """The helper gives up on a slave that never answers (the bus is not even connected)."""
    bus = wiring.Signature.flip(WishboneSignature(4)).create()
    m = Module()
    m.d.sync += Signal().eq(bus.cyc)  # gives the simulation a sync domain

    async def testbench(ctx):
        with pytest.raises(BusTimeout, match=exactly("no answer to the access at 0x8 in 5 cycles")):
            await wb_read(ctx, bus, 8, timeout=5)
        assert ctx.get(bus.cyc) == 0
        with pytest.raises(ValueError, match=exactly("address must be a multiple of 4, not 0x6")):
            await wb_read(ctx, bus, 6)

    sim = Simulator(m)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()


# -- random traffic against a model ---------------------------------------------------------------


@pytest.mark.parametrize("registered", [False, True], ids=["decode", "registered-decode"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_traffic(seed, registered):
    regmap = small_map()
    harness = Harness(regmap, seed=seed, registered_decode=registered)
    rng = random.Random(seed)
    idle = RandomIdle(seed, max_cycles=2)
    model = {
        0x04: 0xCAFEF00D,
        0x08: 2 << 29 | 5,  # the rw bits of MIXED
        **{0x80 + 4 * i: pattern(0, i) for i in range(20)},
        **{0x100 + 4 * i: pattern(1, i) for i in range(8)},
        0x120: pattern(2, 0),
    }
    rw_mask = {0x04: 0xFFFFFFFF, 0x08: 0b111 << 29 | 0xF}
    hw = rng.randrange(256)
    stat = rng.randrange(1 << 16)
    writable = [0x04, 0x08, 0x120, *range(0x80, 0x80 + 80, 4)]
    readable = [0x00, 0x10, *model]
    refused = [0x0C, 0x14, 0x3C, 0x40, 0x7C, 0x80 + 4 * 20, 0xFC, 0x124, 0x1FC]
    counts = {"read": 0, "write": 0, "err": 0}

    def expected(address):
        if address == 0x00:
            return 0x12345678
        if address == 0x10:
            return stat
        if address == 0x08:
            return model[0x08] | hw << 8
        return model[address]

    async def testbench(ctx):
        bus = harness.wb
        ctx.set(harness.rf.regs.mixed.hw, hw)
        ctx.set(harness.rf.regs.stat.value, stat)
        for _ in range(300):
            await idle.wait(ctx)
            kind = rng.choices(["read", "write", "err"], weights=[5, 4, 1])[0]
            if kind == "read":
                address = rng.choice(readable)
                assert await wb_read(ctx, bus, address) == expected(address), hex(address)
            elif kind == "write":
                address = rng.choice(writable)
                value = rng.getrandbits(32)
                await wb_write(ctx, bus, address, value)
                mask = rw_mask.get(address, 0xFFFFFFFF)
                model[address] = value & mask
            else:
                choice = rng.randrange(3)
                if choice == 0:
                    ack, _ = await wb_transaction(ctx, bus, rng.choice(refused),
                                                  write=rng.choice([None, 1]))
                elif choice == 1:
                    ack, _ = await wb_transaction(ctx, bus, rng.choice([0x00, 0x10, 0x104]),
                                                  write=0)
                else:
                    ack, _ = await wb_transaction(ctx, bus, rng.choice(readable),
                                                  sel=rng.randrange(15))
                assert not ack
            counts[kind] += 1
        for address in readable:
            assert await wb_read(ctx, bus, address) == expected(address), hex(address)
        await no_violations(ctx, harness)

    simulate(harness, testbench)
    assert min(counts.values()) > 5
