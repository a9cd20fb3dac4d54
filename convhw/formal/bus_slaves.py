"""Properties of the control-port bus slaves, each with the register file behind it as the
engines build it: :class:`~convhw.gateware.axi4_lite_slave.Axi4LiteSlave` (the list engine's
AXI4-Lite port) and :class:`~convhw.gateware.wishbone.WishboneSlave` (the host-fed engine's
port, with its INPUT, WEIGHT and OUTPUT windows, and the list engine's Wishbone port).

The master is free within its protocol, as stated in each harness; ``locked`` (a list or job
running) is free in every cycle. Every bound is in cycles after the cycle in which the access
is first presented.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cat, Cover, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from ..config import EngineConfig
from ..gateware.axi4 import Axi4LiteSignature
from ..gateware.axi4_lite_slave import Axi4LiteSlave
from ..gateware.register_file import RegisterFile
from ..gateware.wishbone import WishboneSignature, WishboneSlave
from ..registers import engine_register_map, list_register_map
from .common import Obligation, fsm_encoding, no_reset, probe_members

__all__ = ["Axi4LiteSlaveHarness", "WishboneSlaveHarness", "axi4_lite_bound",
           "wishbone_bound"]


def axi4_lite_bound(patience: int) -> int:
    """Cycles from the cycle in which a write's second half (or a read's address) is first
    presented to the cycle of its BVALID (RVALID), at most, with a master that takes every
    response within ``patience`` cycles of its VALID. Alone, an access is answered three
    cycles after it is presented (into the slave's register, decoded, answered); presented
    together with an access in the other direction that goes first (the slave alternates), it
    waits three cycles more and the ``patience`` of that access's response."""
    return 6 + patience


def wishbone_bound(window_latency: int, registered_decode: bool = False) -> int:
    """Cycles from the cycle in which an access is first presented to its ACK or ERR, at most,
    with windows that answer a strobe within ``window_latency`` cycles: a register or a refused
    access is answered in the next cycle, a window access in the cycle after the window's
    answer; with the registered decode each a cycle later."""
    return 1 + window_latency + int(registered_decode)


def _hold_while_waiting(m: Module, name: str, valid, ready, payload) -> None:
    """The master's rule for a channel: VALID, once high, stays high with the same payload
    until READY."""
    waiting = Signal(name=f"{name}_waiting")
    held = Signal(len(payload), name=f"{name}_held")
    m.d.sync += [waiting.eq(valid & ~ready), held.eq(payload)]
    with m.If(waiting):
        m.d.comb += Assume(valid & (payload == held))


def _patient(m: Module, name: str, valid, ready, patience: int) -> None:
    """The master takes a response (``ready``) within ``patience`` cycles of its ``valid``,
    and keeps ``ready`` high while there is none. (The slave reads READY only in the state in
    which its VALID is high: what READY does otherwise changes nothing in the slave. Left free
    there, an unreachable state, waiting for READY with VALID low, would stall the induction at
    any depth.)"""
    m.d.comb += Assume(valid | ready)
    stalled = Signal(range(patience + 2), name=f"{name}_stalled")
    with m.If(valid & ~ready):
        m.d.sync += stalled.eq(stalled + 1)
    with m.Else():
        m.d.sync += stalled.eq(0)
    m.d.comb += Assume(~(valid & ~ready & (stalled >= patience)))


def _lock_respected(m: Module, register_map, unlocked, registers, locked) -> None:
    """While ``locked``, the register file is written only at the ``unlocked`` registers."""
    words = [register.address // 4 for register in register_map.registers
             if register.name in unlocked]
    open_word = Cat(*(registers.addr == word for word in words)).any()
    m.d.comb += Assert(~(registers.w_stb & locked) | open_word)


class Axi4LiteSlaveHarness(wiring.Component):
    """The list engine's AXI4-Lite control port and register file, under a master that keeps
    each VALID and its payload until READY (AXI's rule), has at most one write and one read
    outstanding (a new AW or W only after the last write's B, a new AR only after the last R;
    the two halves of a write in any order or together, reads and writes overlapping), and
    takes each response within ``patience`` cycles of its VALID (BREADY and RREADY otherwise
    high).

    Asserts: every write is answered (BVALID) and every read (RVALID) within
    :func:`axi4_lite_bound` cycles; no response without its access; a response, once valid,
    holds with its payload until taken; READY is low only while the slave holds what the
    master gave it; while ``locked`` only CTRL and IRQ_CLEAR are written.
    """

    UNLOCKED = ("CTRL", "IRQ_CLEAR")

    def __init__(self, config: EngineConfig, *, patience: int = 2, bound: int | None = None):
        self._map = list_register_map(config)
        self._patience = patience
        self._bound = axi4_lite_bound(patience) if bound is None else bound
        self.dut = Axi4LiteSlave(self._map, unlocked=self.UNLOCKED)
        self._states = fsm_encoding(self.dut)
        probes = {"probe_state": ("dut.fsm_state", range(len(self._states)))}
        self.probes = {port: path for port, (path, _) in probes.items()}
        super().__init__({
            "axi": In(Axi4LiteSignature(32, max(12, self._map.address_width))),
            "locked": In(1),
            **probe_members(probes),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        no_reset(m)
        m.submodules.dut = dut = self.dut
        m.submodules.regfile = regfile = RegisterFile(self._map)
        wiring.connect(m, wiring.flipped(self.axi), dut.axi)
        wiring.connect(m, dut.registers, regfile.bus)
        m.d.comb += dut.locked.eq(self.locked)
        axi = self.axi

        # -- the master --------------------------------------------------------------------
        _hold_while_waiting(m, "aw", axi.awvalid, axi.awready, Cat(axi.awaddr, axi.awprot))
        _hold_while_waiting(m, "w", axi.wvalid, axi.wready, Cat(axi.wdata, axi.wstrb))
        _hold_while_waiting(m, "ar", axi.arvalid, axi.arready, Cat(axi.araddr, axi.arprot))
        _patient(m, "b", axi.bvalid, axi.bready, self._patience)
        _patient(m, "r", axi.rvalid, axi.rready, self._patience)
        # What of the current write and read the slave has taken; cleared by the response's
        # handshake.
        aw_taken, w_taken, ar_taken = Signal(), Signal(), Signal()
        with m.If(axi.awvalid & axi.awready):
            m.d.sync += aw_taken.eq(1)
        with m.If(axi.wvalid & axi.wready):
            m.d.sync += w_taken.eq(1)
        with m.If(axi.bvalid & axi.bready):
            m.d.sync += [aw_taken.eq(0), w_taken.eq(0)]
        with m.If(axi.arvalid & axi.arready):
            m.d.sync += ar_taken.eq(1)
        with m.If(axi.rvalid & axi.rready):
            m.d.sync += ar_taken.eq(0)
        m.d.comb += Assume(~(axi.awvalid & aw_taken) & ~(axi.wvalid & w_taken)
                           & ~(axi.arvalid & ar_taken))

        # -- the slave ---------------------------------------------------------------------
        # It answers only what was asked, and holds (READY low) only what it was given.
        m.d.comb += [Assert(~axi.bvalid | aw_taken & w_taken), Assert(~axi.rvalid | ar_taken),
                     Assert(axi.awready | aw_taken), Assert(axi.wready | w_taken),
                     Assert(axi.arready | ar_taken)]
        _responses_hold(m, "b", axi.bvalid, axi.bready, axi.bresp)
        _responses_hold(m, "r", axi.rvalid, axi.rready, Cat(axi.rdata, axi.rresp))

        bound = self._bound
        # A write counts from the first cycle in which both halves have been presented.
        write_answered, read_answered = Signal(), Signal()
        with m.If(axi.bvalid):
            m.d.sync += write_answered.eq(1)
        with m.If(axi.bvalid & axi.bready):
            m.d.sync += write_answered.eq(0)
        with m.If(axi.rvalid):
            m.d.sync += read_answered.eq(1)
        with m.If(axi.rvalid & axi.rready):
            m.d.sync += read_answered.eq(0)
        write = Obligation(
            m, "write",
            trigger=(axi.awvalid | aw_taken) & (axi.wvalid | w_taken) & ~axi.bvalid
            & ~write_answered,
            discharge=axi.bvalid, limit=bound)
        read = Obligation(m, "read", trigger=(axi.arvalid | ar_taken) & ~axi.rvalid
                          & ~read_answered, discharge=axi.rvalid, limit=bound)
        m.d.comb += [
            Assert(~write.raised | axi.bvalid | (write.age < bound)),
            Assert(~read.raised | axi.rvalid | (read.age < bound)),
            # Each half is taken in the cycle it is presented (the slave holds nothing else).
            Assert(~write.raised | aw_taken & w_taken), Assert(~read.raised | ar_taken),
        ]
        # Where the slave is with the current write and read, from its ports: half a write is
        # held (its READY low); both halves leave their registers together when the write is
        # served, and its answer is valid in the next cycle; likewise a read's address; an
        # answer stays valid until taken. (These make the induction close.)
        serving_write, serving_read = Signal(), Signal()
        m.d.sync += [
            serving_write.eq(aw_taken & w_taken & axi.awready & ~axi.bvalid),
            serving_read.eq(ar_taken & axi.arready & ~axi.rvalid),
        ]
        m.d.comb += [
            Assert(~(aw_taken & ~w_taken) | ~axi.awready),
            Assert(~(w_taken & ~aw_taken) | ~axi.wready),
            Assert(~(aw_taken & w_taken) | (axi.awready == axi.wready)),
            Assert(~serving_write | axi.bvalid), Assert(~serving_read | axi.rvalid),
            Assert(~write_answered | axi.bvalid), Assert(~read_answered | axi.rvalid),
        ]
        # The slave's FSM (probe): a valid state, the response states exactly while their
        # VALID is high, the serving states only with the access taken and its registers empty.
        state = {name: self.probe_state == value for name, value in self._states.items()}
        m.d.comb += [
            Assert(Cat(*state.values()).any()),
            Assert(axi.bvalid == state["B"]), Assert(axi.rvalid == state["R"]),
            Assert(~state["WRITE"] | aw_taken & w_taken & axi.awready & axi.wready),
            Assert(~state["READ"] | ar_taken & axi.arready),
        ]
        _lock_respected(m, self._map, self.UNLOCKED, dut.registers, self.locked)
        m.d.comb += [Cover(write.ends & (axi.bresp == 0)), Cover(read.ends & (axi.rresp == 0)),
                     Cover(write.ends & (write.age == bound))]
        return m


def _responses_hold(m: Module, name: str, valid, ready, payload) -> None:
    """The slave's rule for a response channel: VALID, once high, stays high with the same
    payload until READY."""
    waiting = Signal(name=f"{name}_response_waiting")
    held = Signal(len(payload), name=f"{name}_response_held")
    m.d.sync += [waiting.eq(valid & ~ready), held.eq(payload)]
    with m.If(waiting):
        m.d.comb += Assert(valid & (payload == held))


class WishboneSlaveHarness(wiring.Component):
    """A Wishbone B4 classic control port and its register file: the host-fed engine's
    (``engine="host"``: its register map, its INPUT, WEIGHT and OUTPUT windows, CTRL open while
    locked) or the list engine's (``engine="list"``: no windows; CTRL and IRQ_CLEAR open).

    The master keeps CYC and STB high, with the same WE, ADR, DAT_W and SEL, until the access
    is answered (ACK or ERR), and may present the next access in the cycle after. Each window
    target keeps the window protocol (:class:`~convhw.gateware.wishbone.WindowSignature`): it
    answers each strobe exactly once, in the strobe's cycle or later, at most
    ``window_latency`` cycles after it, and never answers without a request; its data is free.
    The slave decodes as its engine builds it: registered for the host-fed engine
    (``registered_decode``), in the access's first cycle for the list engine.

    Asserts: every access is answered within :func:`wishbone_bound` cycles, never in the
    cycle it is first presented and never twice (an answer only for an access presented
    earlier and not yet answered), never with both ACK and ERR; a window is strobed again only
    after its answer; while ``locked`` only the open registers are written.
    """

    def __init__(self, config: EngineConfig, *, engine: str = "host", window_latency: int = 3,
                 bound: int | None = None):
        if engine == "host":
            self._map, self._unlocked = engine_register_map(config), ("CTRL",)
        elif engine == "list":
            self._map, self._unlocked = list_register_map(config), ("CTRL", "IRQ_CLEAR")
        else:
            raise ValueError(f"engine must be 'host' or 'list', not {engine!r}")
        self._latency = window_latency
        registered = engine == "host"
        self._bound = wishbone_bound(window_latency, registered) if bound is None else bound
        self.dut = WishboneSlave(self._map, unlocked=self._unlocked,
                                 registered_decode=registered)
        windows = len(self._map.windows)
        members = {"wb": In(WishboneSignature(self._map.bus_address_width)), "locked": In(1)}
        probes = {"probe_ack": ("dut.ack_r", 1), "probe_err": ("dut.err_r", 1)}
        if windows:
            members.update({"window_ack": In(windows), "window_data": In(32)})
            probes.update({"probe_waiting": ("dut.waiting", 1),
                           "probe_aborted": ("dut.aborted", 1),
                           "probe_pending": ("dut.pending", range(windows))})
        self.probes = {port: path for port, (path, _) in probes.items()}
        super().__init__({**members, **probe_members(probes)})

    def elaborate(self, platform) -> Module:
        m = Module()
        no_reset(m)
        m.submodules.dut = dut = self.dut
        m.submodules.regfile = regfile = RegisterFile(self._map)
        wiring.connect(m, wiring.flipped(self.wb), dut.wb)
        wiring.connect(m, dut.registers, regfile.bus)
        m.d.comb += dut.locked.eq(self.locked)
        wb = self.wb
        request = wb.cyc & wb.stb
        answer = wb.ack | wb.err

        # -- the master --------------------------------------------------------------------
        holding = Signal()
        held = Signal(len(Cat(wb.we, wb.adr, wb.dat_w, wb.sel)))
        m.d.sync += [holding.eq(request & ~answer), held.eq(Cat(wb.we, wb.adr, wb.dat_w, wb.sel))]
        with m.If(holding):
            m.d.comb += Assume(request & (Cat(wb.we, wb.adr, wb.dat_w, wb.sel) == held))

        # -- the window targets ------------------------------------------------------------
        # (The slave's own state, from the probes: an answer registered only for a held
        # access, and a window request outstanding exactly while the slave waits for it.)
        m.d.comb += [Assert(~(self.probe_ack & self.probe_err)),
                     Assert(~(self.probe_ack | self.probe_err) | request)]
        for i, window in enumerate(self._map.windows):
            port = getattr(dut.windows, window.name.lower())
            ack = self.window_ack[i]
            m.d.comb += [port.ack.eq(ack), port.r_data.eq(self.window_data)]
            strobe = port.r_stb | port.w_stb
            outstanding = Signal(name=f"{window.name.lower()}_outstanding")
            with m.If(strobe & ~ack):
                m.d.sync += outstanding.eq(1)
            with m.Elif(ack):
                m.d.sync += outstanding.eq(0)
            wait = Obligation(m, f"{window.name.lower()}_target", trigger=strobe & ~ack,
                              discharge=ack, limit=self._latency)
            m.d.comb += [
                Assume(~ack | strobe | outstanding),
                Assume(~wait.raised | ack | (wait.age < self._latency)),
                # The slave's side of the window protocol: one request at a time.
                Assert(~(strobe & outstanding)),
                Assert(~(port.r_stb & port.w_stb)),
                Assert(outstanding == (self.probe_waiting & (self.probe_pending == i))),
            ]
        if self._map.windows:
            m.d.comb += [Assert(self.probe_pending < len(self._map.windows)),
                         Assert(~self.probe_waiting | request & ~self.probe_aborted)]

        # -- the slave ---------------------------------------------------------------------
        bound = self._bound
        access = Obligation(m, "access", trigger=request & ~answer, discharge=answer,
                            limit=bound)
        m.d.comb += [
            Assert(~access.raised | answer | (access.age < bound)),
            Assert(~answer | access.raised),
            Assert(~(wb.ack & wb.err)),
        ]
        _lock_respected(m, self._map, self._unlocked, dut.registers, self.locked)
        m.d.comb += [Cover(access.ends & wb.ack), Cover(access.ends & wb.err),
                     Cover(access.ends & (access.age == bound))]
        return m
