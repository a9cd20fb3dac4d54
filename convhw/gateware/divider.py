"""A small sequential divider for the pass sequencer's job set-up."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .. import timing

__all__ = ["Divider"]


class Divider(wiring.Component):
    """Division of an unsigned dividend by a positive divisor, one quotient bit per cycle.

    The pass sequencer needs a handful of divisions by a layer's stride once per job (where a
    kernel tap's valid outputs begin and end, which output phase a tap reaches); everything per
    pass and per cycle is then incremental. Every such dividend is a non-negative sum of
    coordinates and the divisor is a stride, so the divider is unsigned and its remainder is
    only as wide as the divisor. A restoring divider is small and its latency is fixed, so one
    of them can do all of a job's divisions one after another and the job's cycle count stays
    a closed formula.

    ``start`` latches ``dividend`` and ``divisor``; :meth:`latency_for` cycles later ``done`` is
    high for one cycle with ``quotient = dividend // divisor`` and
    ``remainder = dividend % divisor``. A divisor of 1 (the most common stride) takes one cycle;
    with ``shifts``, so does any power of two (2 is the next most common): the quotient is the
    dividend shifted, the remainder its low bits.
    The outputs hold until the cycle after the next ``start``, so ``start`` may be raised again
    in the ``done`` cycle. A zero divisor gives an unspecified result (the caller refuses such a
    job before it starts).

    Parameters
    ----------
    width : int
        Width of the dividend and of the quotient.
    divisor_width : int
        Width of the divisor and of the remainder.
    shifts : bool
        Divide by a power of two in one cycle (a shifter of ``divisor_width`` levels more).
    """

    def __init__(self, width: int, divisor_width: int, *, shifts: bool = False):
        for name, value in (("width", width), ("divisor_width", divisor_width)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an integer, not {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value!r}")
        self._width = width
        self._divisor_width = divisor_width
        self._shifts = bool(shifts)
        super().__init__({
            "start": In(1),
            "dividend": In(unsigned(width)),
            "divisor": In(unsigned(divisor_width)),
            "done": Out(1),
            "quotient": Out(unsigned(width)),
            "remainder": Out(unsigned(divisor_width)),
        })

    @property
    def width(self) -> int:
        return self._width

    @property
    def divisor_width(self) -> int:
        return self._divisor_width

    @staticmethod
    def latency_for(width: int, divisor: int, shifts: bool = False) -> int:
        """Cycles from the ``start`` cycle to the ``done`` cycle: one to latch the operands, and
        unless the divisor is 1 (or with ``shifts`` a power of two) one per quotient bit
        (:func:`convhw.timing.divider_latency`)."""
        return timing.divider_latency(width, divisor, shifts)

    def latency(self, divisor: int) -> int:
        return self.latency_for(self._width, divisor, self._shifts)

    def elaborate(self, platform) -> Module:
        m = Module()
        width, dw = self._width, self._divisor_width
        # The dividend shifts out at the top while the quotient bits shift in at the bottom;
        # the running remainder stays below the divisor, so it needs the divisor's width only.
        shift = Signal(width)
        partial = Signal(dw)
        divisor = Signal(dw)
        count = Signal(range(width + 1))
        trial = Signal(dw + 2)
        m.d.comb += [
            trial.eq((partial << 1 | shift[width - 1]) - divisor),
            self.quotient.eq(shift),
            self.remainder.eq(partial),
        ]
        # Divided by 1, the latched operands are the result already; with `shifts`, divided by
        # 2**k they are after a shift by k.
        if self._shifts:
            unit = Signal()
            quotient = Signal(width)
            low = Signal(dw)
            m.d.comb += unit.eq((self.divisor & (self.divisor - 1)) == 0)
            with m.Switch(self.divisor):
                for k in range(dw):
                    with m.Case(1 << k):
                        m.d.comb += quotient.eq(self.dividend >> k)
            m.d.comb += low.eq(self.dividend & (self.divisor - 1))
            dividend, first = Mux(unit, quotient, self.dividend), Mux(unit, low, 0)
        else:
            unit = self.divisor == 1
            dividend, first = self.dividend, 0
        m.d.sync += self.done.eq(Mux(self.start, unit, count == 1))
        with m.If(self.start):
            m.d.sync += [shift.eq(dividend), partial.eq(first), divisor.eq(self.divisor),
                         count.eq(Mux(unit, 0, width))]
        with m.Elif(count != 0):
            with m.If(trial[dw + 1]):             # negative: the divisor does not go in
                m.d.sync += [partial.eq(partial << 1 | shift[width - 1]), shift.eq(shift << 1)]
            with m.Else():
                m.d.sync += [partial.eq(trial[:dw]), shift.eq(shift << 1 | 1)]
            m.d.sync += count.eq(count - 1)
        return m
