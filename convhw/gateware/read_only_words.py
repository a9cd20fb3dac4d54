"""``ReadOnlyWords``: a few constant 32-bit words on a Wishbone B4 classic bus.

What a top tells its host beyond the engine's own registers (the serial list top: where its
device memory is and how large). A read of word ``i < len(values)`` is answered with ``ACK`` and
``values[i]``; a write, a read of a word beyond them, or a ``SEL`` other than ``0b1111`` with
``ERR``. The answer comes in the cycle after the access is presented, gated with
``CYC & STB``, as :class:`~convhw.gateware.wishbone.WishboneSlave` answers.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from ..config import BUS_DATA_WIDTH
from .wishbone import WishboneSignature

__all__ = ["ReadOnlyWords"]


class ReadOnlyWords(wiring.Component):
    """See the module documentation.

    Parameters
    ----------
    values : tuple of int
        The words, each 0..2**32 - 1, at word addresses 0, 1, ...
    addr_width : int
        Word-address width of the port; at least enough for ``values``.

    Attributes
    ----------
    bus : In(WishboneSignature(addr_width))
    """

    def __init__(self, values, addr_width: int) -> None:
        values = tuple(values)
        if not values or not all(isinstance(v, int) and not isinstance(v, bool)
                                 and 0 <= v < 1 << BUS_DATA_WIDTH for v in values):
            raise ValueError(f"values must be one or more 32-bit unsigned integers, not "
                             f"{values!r}")
        if not isinstance(addr_width, int) or isinstance(addr_width, bool) or addr_width < 1:
            raise TypeError(f"addr_width must be a positive integer, not {addr_width!r}")
        if len(values) > 1 << addr_width:
            raise ValueError(f"{len(values)} words need more than {addr_width} address bits")
        self._values = values
        super().__init__({"bus": In(WishboneSignature(addr_width))})

    @property
    def values(self) -> tuple[int, ...]:
        return self._values

    def elaborate(self, platform) -> Module:
        m = Module()
        bus = self.bus
        request = bus.cyc & bus.stb
        ack = Signal()
        err = Signal()
        data = Signal(BUS_DATA_WIDTH)
        m.d.sync += [ack.eq(0), err.eq(0)]
        with m.If(request & ~ack & ~err):
            readable = ~bus.we & (bus.sel == (1 << BUS_DATA_WIDTH // 8) - 1)
            with m.Switch(bus.adr):
                for index, value in enumerate(self._values):
                    with m.Case(index):
                        m.d.sync += [ack.eq(readable), err.eq(~readable), data.eq(value)]
                with m.Default():
                    m.d.sync += err.eq(1)
        m.d.comb += [bus.ack.eq(ack & request), bus.err.eq(err & request), bus.dat_r.eq(data)]
        return m
