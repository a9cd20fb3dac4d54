"""``Axi4LiteSlave``: the engine's control port as AXI4-Lite, onto the same register file as the
Wishbone slave (:class:`~convhw.gateware.register_file.RegisterFile` through
:class:`~convhw.gateware.register_file.RegisterBusSignature`).

AXI4-Lite, 32-bit data, byte addresses (``register_map.address_width`` bits; the upper address
bits of a wider master are its interconnect's to decode). One access at a time: a write needs
its address (AW) and its data (W), which may come in either order or together; a read its
address (AR). When both a write and a read are waiting they are served alternately. Answers:

* ``OKAY`` (0) for a mapped register;
* ``SLVERR`` (2) for an address that holds no register (windows are not served here), a write
  with ``WSTRB`` other than ``0b1111``, a write to a register of ``ro`` fields only, and, while
  ``locked`` is high (a list is running), a write to any register not named in ``unlocked``:
  the job's configuration can never change under it.

Timing: the address and data channels' ``ready`` are registered; a write is answered on B two
cycles after both its halves arrived, a read on R two cycles after AR. ``BVALID``/``RVALID`` hold
until taken (``BREADY``/``RREADY``).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..registers import RegisterMap
from .axi4 import Axi4LiteSignature
from .register_file import RegisterBusSignature

__all__ = ["Axi4LiteSlave"]

OKAY, SLVERR = 0b00, 0b10


class Axi4LiteSlave(wiring.Component):
    """See the module documentation.

    Parameters
    ----------
    register_map : RegisterMap
    unlocked : iterable of str
        Registers the host may write while ``locked`` (e.g. ``CTRL``, for ABORT).

    Attributes
    ----------
    axi : In(Axi4LiteSignature(32, register_map.address_width))
    registers : Out(RegisterBusSignature(register_map.register_address_width))
    locked : In(1)
    """

    def __init__(self, register_map: RegisterMap, *, unlocked=("CTRL",)) -> None:
        if not isinstance(register_map, RegisterMap):
            raise TypeError(f"register_map must be a RegisterMap, not {register_map!r}")
        unlocked = tuple(unlocked)
        for name in unlocked:
            if name not in register_map:
                raise ValueError(f"unlocked must name registers of the map, not {name!r}")
        self._map = register_map
        self._unlocked = unlocked
        super().__init__({
            "axi": In(Axi4LiteSignature(32, max(12, register_map.address_width))),
            "registers": Out(RegisterBusSignature(register_map.register_address_width)),
            "locked": In(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        axi, regmap = self.axi, self._map
        word_bits = regmap.register_address_width

        aw_full, w_full = Signal(), Signal()
        aw_addr = Signal(len(axi.awaddr))
        w_data, w_strb = Signal(32), Signal(4)
        ar_full = Signal()
        ar_addr = Signal(len(axi.araddr))

        # The address and data registers take a transfer whenever they are empty.
        m.d.comb += [axi.awready.eq(~aw_full), axi.wready.eq(~w_full),
                     axi.arready.eq(~ar_full)]
        with m.If(axi.awvalid & axi.awready):
            m.d.sync += [aw_full.eq(1), aw_addr.eq(axi.awaddr)]
        with m.If(axi.wvalid & axi.wready):
            m.d.sync += [w_full.eq(1), w_data.eq(axi.wdata), w_strb.eq(axi.wstrb)]
        with m.If(axi.arvalid & axi.arready):
            m.d.sync += [ar_full.eq(1), ar_addr.eq(axi.araddr)]

        def decode(address):
            """(known, writable, unlocked) of the register at byte ``address``."""
            known, writable, free = Signal(), Signal(), Signal()
            in_space = (address >> (word_bits + 2)) == 0
            with m.Switch(address[2:2 + word_bits]):
                for register in regmap.registers:
                    with m.Case(register.address // 4):
                        m.d.comb += [known.eq(in_space & (address[:2] == 0)),
                                     writable.eq(int(register.writable)),
                                     free.eq(int(register.name in self._unlocked))]
            return known, writable, free

        w_known, w_writable, w_free = decode(aw_addr)
        r_known, _, _ = decode(ar_addr)
        prefer_read = Signal()       # alternate when both wait
        m.d.comb += self.registers.w_data.eq(w_data)

        with m.FSM():
            with m.State("IDLE"):
                write_ready = aw_full & w_full
                with m.If(write_ready & (~ar_full | ~prefer_read)):
                    ok = w_known & w_writable & (w_strb == 0b1111) & (~self.locked | w_free)
                    m.d.comb += [self.registers.addr.eq(aw_addr[2:2 + word_bits]),
                                 self.registers.w_stb.eq(ok)]
                    m.d.sync += [axi.bresp.eq(OKAY), prefer_read.eq(1),
                                 aw_full.eq(0), w_full.eq(0)]
                    with m.If(~ok):
                        m.d.sync += axi.bresp.eq(SLVERR)
                    m.next = "WRITE"
                with m.Elif(ar_full):
                    m.d.comb += [self.registers.addr.eq(ar_addr[2:2 + word_bits]),
                                 self.registers.r_stb.eq(r_known)]
                    m.d.sync += [axi.rresp.eq(OKAY), prefer_read.eq(0), ar_full.eq(0)]
                    with m.If(~r_known):
                        m.d.sync += axi.rresp.eq(SLVERR)
                    m.next = "READ"
            with m.State("WRITE"):
                m.d.sync += axi.bvalid.eq(1)
                m.next = "B"
            with m.State("B"):
                with m.If(axi.bready):
                    m.d.sync += axi.bvalid.eq(0)
                    m.next = "IDLE"
            with m.State("READ"):
                # The register file answers a cycle after r_stb.
                m.d.sync += [axi.rvalid.eq(1),
                             axi.rdata.eq(self.registers.r_data)]
                with m.If(axi.rresp != OKAY):
                    m.d.sync += axi.rdata.eq(0)
                m.next = "R"
            with m.State("R"):
                with m.If(axi.rready):
                    m.d.sync += axi.rvalid.eq(0)
                    m.next = "IDLE"
        return m
