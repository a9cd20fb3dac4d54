"""A small sequential divider for the address generator's job set-up."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

__all__ = ["Divider"]


class Divider(wiring.Component):
    """Floor division of a signed dividend by a positive divisor, one quotient bit per cycle.

    The address generator needs a handful of divisions by a layer's stride once per job (where
    a kernel tap's valid outputs begin and end, which output phase a tap reaches); everything
    per pass and per cycle is then incremental. A restoring divider is small and its latency is
    fixed, so the job's cycle count stays a closed formula.

    ``start`` latches ``dividend`` and ``divisor``; :attr:`latency` cycles later ``done`` is high
    for one cycle with ``quotient = floor(dividend / divisor)`` and
    ``remainder = dividend - quotient * divisor`` (so ``0 <= remainder < divisor``). The outputs
    hold until the next ``start``. A zero divisor gives an unspecified result (the caller
    refuses such a job before it starts).

    Parameters
    ----------
    width : int
        Width of the signed dividend and quotient; the divisor is ``width - 1`` bits unsigned.
    """

    def __init__(self, width: int):
        if not isinstance(width, int) or isinstance(width, bool):
            raise TypeError(f"width must be an integer, not {width!r}")
        if width < 2:
            raise ValueError(f"width must be at least 2, not {width!r}")
        self._width = width
        super().__init__({
            "start": In(1),
            "dividend": In(signed(width)),
            "divisor": In(unsigned(width - 1)),
            "done": Out(1),
            "quotient": Out(signed(width)),
            "remainder": Out(unsigned(width - 1)),
        })

    @property
    def width(self) -> int:
        return self._width

    @staticmethod
    def latency_for(width: int) -> int:
        """Cycles from the ``start`` cycle to the ``done`` cycle: one to latch, one per quotient
        bit, one to fix up the sign."""
        return width + 2

    @property
    def latency(self) -> int:
        return self.latency_for(self._width)

    def elaborate(self, platform) -> Module:
        m = Module()
        width = self._width
        # Divide |dividend| as unsigned, most significant bit first, then fix up the sign so
        # that the quotient rounds towards minus infinity.
        negative = Signal()
        magnitude = Signal(width)
        divisor = Signal(width - 1)
        partial = Signal(width)            # running remainder
        quotient = Signal(width)
        count = Signal(range(width + 1))
        busy = Signal()

        bit = Signal()
        trial = Signal(width + 1)
        m.d.comb += [
            bit.eq(magnitude.bit_select((count - 1).as_unsigned()[:len(count)], 1)),
            trial.eq(((partial << 1) | bit) - divisor),
        ]

        m.d.sync += self.done.eq(0)
        with m.If(self.start):
            m.d.sync += [
                negative.eq(self.dividend < 0),
                magnitude.eq(Mux(self.dividend < 0, -self.dividend, self.dividend)[:width]),
                divisor.eq(self.divisor),
                partial.eq(0),
                quotient.eq(0),
                count.eq(width),
                busy.eq(1),
            ]
        with m.Elif(busy & (count != 0)):
            with m.If(~trial[width]):
                m.d.sync += [partial.eq(trial[:width]), quotient.eq((quotient << 1) | 1)]
            with m.Else():
                m.d.sync += [partial.eq((partial << 1) | bit), quotient.eq(quotient << 1)]
            m.d.sync += count.eq(count - 1)
        with m.Elif(busy):
            # |n| = q*s + r, so n < 0 is -(q + 1)*s + (s - r) when r != 0, else -q*s.
            with m.If(negative & (partial != 0)):
                m.d.sync += [self.quotient.eq(-quotient - 1),
                             self.remainder.eq(divisor - partial)]
            with m.Elif(negative):
                m.d.sync += [self.quotient.eq(-quotient), self.remainder.eq(0)]
            with m.Else():
                m.d.sync += [self.quotient.eq(quotient), self.remainder.eq(partial)]
            m.d.sync += [busy.eq(0), self.done.eq(1)]
        return m
