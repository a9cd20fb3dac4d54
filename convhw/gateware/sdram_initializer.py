"""``SdramInitializer``: an SDRAM controller's initialisation, replayed from a table after reset.

A board with LiteDRAM and no CPU (the ULX3S, :mod:`convhw.boards.litedram`) has nothing that
initialises the chip: LiteDRAM leaves it to software, which writes its DFII registers (CKE,
precharge all, mode register, refreshes, mode register) and then hands the chip to the
controller. This component is that software as a table of register writes, each with the
cycles to wait after it, played once out of reset on a Wishbone B4 classic master port (the
core's ``wb_ctrl``): the board initialises itself, with waits counted in cycles rather than
guessed by a host over a serial link.

Protocol: one write per bus cycle (``CYC`` low for a cycle between writes), all four bytes;
``done`` rises in the cycle after the last write's wait and stays high. A write answered with
``ERR``, or not answered within ``timeout`` cycles, stops the table: ``error`` rises and stays
high, ``done`` stays low, and the bus is left idle (it never hangs).
"""

from __future__ import annotations

from collections.abc import Sequence

from amaranth.hdl import Module, Signal
from amaranth.lib import data, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import Out

from .wishbone import WishboneSignature

__all__ = ["SdramInitializer"]


class SdramInitializer(wiring.Component):
    """Plays ``writes`` once after reset on ``bus``.

    Parameters
    ----------
    writes : sequence of (byte address, value, cycles to wait after)
        The table, in order; byte addresses are multiples of 4 below ``2**(addr_width + 2)``,
        values below ``2**32``, waits below ``2**wait_width``.
    addr_width : int
        The bus's word-address width (LiteDRAM's ``wb_ctrl``: 30).
    timeout : int
        Cycles a write may go unanswered before ``error``.

    Members
    -------
    bus : Out(WishboneSignature(addr_width))
    done : Out(1)
    error : Out(1)
    """

    def __init__(self, writes: Sequence[tuple[int, int, int]], *, addr_width: int = 30,
                 timeout: int = 256) -> None:
        writes = [tuple(w) for w in writes]
        if not writes:
            raise ValueError("writes must hold at least one register write")
        longest = max(wait for _, _, wait in writes)
        self._wait_width = max(1, longest.bit_length())
        for address, value, wait in writes:
            if (not all(isinstance(v, int) for v in (address, value, wait))
                    or address % 4 or not 0 <= address < 1 << (addr_width + 2)
                    or not 0 <= value < 1 << 32 or wait < 0):
                raise ValueError(f"each write must be (byte address: a multiple of 4 below "
                                 f"{1 << (addr_width + 2)}, value below 2**32, wait >= 0), "
                                 f"not {(address, value, wait)!r}")
        if not isinstance(timeout, int) or timeout < 1:
            raise ValueError(f"timeout must be a positive integer, not {timeout!r}")
        self._writes = writes
        self._addr_width = addr_width
        self._timeout = timeout
        super().__init__({
            "bus": Out(WishboneSignature(addr_width)),
            "done": Out(1),
            "error": Out(1),
        })

    @property
    def writes(self) -> list[tuple[int, int, int]]:
        return list(self._writes)

    def elaborate(self, platform) -> Module:
        m = Module()
        entry = data.StructLayout({"adr": self._addr_width, "value": 32,
                                   "wait": self._wait_width})
        m.submodules.table = table = Memory(
            shape=entry, depth=len(self._writes),
            init=[{"adr": a >> 2, "value": v, "wait": w} for a, v, w in self._writes])
        read = table.read_port(domain="comb")
        index = Signal(range(len(self._writes)))
        m.d.comb += read.addr.eq(index)
        step = read.data
        wait = Signal(self._wait_width)
        patience = Signal(range(self._timeout + 1))
        last = index == len(self._writes) - 1
        bus = self.bus

        m.d.comb += [bus.adr.eq(step.adr), bus.dat_w.eq(step.value), bus.sel.eq(0b1111),
                     bus.we.eq(1)]
        with m.FSM():
            with m.State("WRITE"):
                m.d.comb += [bus.cyc.eq(1), bus.stb.eq(1)]
                m.d.sync += patience.eq(patience + 1)
                with m.If(bus.err | ~bus.ack & (patience == self._timeout - 1)):
                    m.next = "FAILED"
                with m.Elif(bus.ack):
                    m.d.sync += [wait.eq(step.wait), patience.eq(0)]
                    m.next = "WAIT"
            with m.State("WAIT"):
                # (At least one cycle here: CYC drops between two writes.)
                with m.If(wait == 0):
                    with m.If(last):
                        m.next = "DONE"
                    with m.Else():
                        m.d.sync += index.eq(index + 1)
                        m.next = "WRITE"
                with m.Else():
                    m.d.sync += wait.eq(wait - 1)
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
            with m.State("FAILED"):
                m.d.comb += self.error.eq(1)
        return m
