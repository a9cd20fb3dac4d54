"""``SkidBuffer``: a register stage for an :mod:`amaranth.lib.stream` stream that keeps full
throughput and registers both directions.

The output's ``valid`` and ``payload`` come from flip-flops, and so does the input's ``ready``:
no combinational path crosses the buffer in either direction (from ``i.valid``/``i.payload``
to the output, or from ``o.ready`` to ``i.ready``). It holds up to two transfers: the output
register and a "skid" register that catches the transfer accepted in the cycle in which the
output stalled. Latency one cycle; one transfer per cycle while the output is ready.
"""

from __future__ import annotations

from amaranth.hdl import Module, Shape, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

__all__ = ["SkidBuffer"]


class SkidBuffer(wiring.Component):
    """A two-entry, fully registered stream buffer.

    Parameters
    ----------
    shape : shape-castable
        The payload's shape (a :class:`~amaranth.lib.data.Layout` works).

    Attributes
    ----------
    i : In(stream.Signature(shape))
    o : Out(stream.Signature(shape))
    """

    def __init__(self, shape) -> None:
        if not isinstance(shape, data.Layout):
            try:
                Shape.cast(shape)
            except TypeError:
                raise TypeError(f"shape must be a shape-castable object, not {shape!r}") from None
        self._shape = shape
        super().__init__({
            "i": In(stream.Signature(shape)),
            "o": Out(stream.Signature(shape)),
        })

    @property
    def shape(self):
        return self._shape

    def elaborate(self, platform):
        m = Module()
        skid_valid = Signal()
        skid = Signal(self._shape)
        m.d.comb += self.i.ready.eq(~skid_valid)
        with m.If(~self.o.valid | self.o.ready):
            # The output register is free (or empties at this edge): refill it, from the skid
            # register first (the input is not ready then).
            with m.If(skid_valid):
                m.d.sync += [self.o.valid.eq(1), self.o.payload.eq(skid), skid_valid.eq(0)]
            with m.Else():
                m.d.sync += self.o.valid.eq(self.i.valid)
                with m.If(self.i.valid):
                    m.d.sync += self.o.payload.eq(self.i.payload)
        with m.Elif(self.i.valid & ~skid_valid):
            m.d.sync += [skid.eq(self.i.payload), skid_valid.eq(1)]
        return m
