"""``UARTTransmitter``: 8N1 bytes onto a serial output pin.

The counterpart of :class:`~convhw.gateware.uart_rx.UARTReceiver` for the serial bridge's
responses: no parity, one stop bit, least significant bit first, ``divisor`` clock cycles per
bit.

A byte is taken from the ``data`` stream only when the line is free: while idle, or in the last
cycle of the previous byte's stop bit, so that its start bit follows the stop bit without a gap
and back-to-back bytes leave at the full rate of one byte per ``10 * divisor`` cycles. There is
no other buffer: the stream holds the next byte until then. The byte and the stop bit go into a
shift register and the start bit straight onto the pin; the pin is a flip-flop (no decoding
glitches reach the line) that idles high. Every bit lasts exactly ``divisor`` cycles.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .uart_rx import check_divisor

__all__ = ["UARTTransmitter"]


class UARTTransmitter(wiring.Component):
    """8N1 UART transmitter; see the module documentation.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 4 (the receiver's limit; the transmitter itself would
        work with any positive divisor, but a link needs both ends).

    Attributes
    ----------
    data : In(stream.Signature(8))
        Bytes to send; taken while idle or in the last cycle of a stop bit.
    tx : Out(1)
        The serial output pin, registered, idle high.
    busy : Out(1)
        A byte is being sent: high from its start bit to the end of its stop bit, and without
        a break through back-to-back bytes.

    Raises
    ------
    TypeError, ValueError
        If ``divisor`` is not an integer of at least 4.
    """

    def __init__(self, divisor: int) -> None:
        self._divisor = check_divisor(divisor)
        super().__init__({
            "data": In(stream.Signature(8)),
            "tx": Out(1, init=1),
            "busy": Out(1),
        })

    @property
    def divisor(self) -> int:
        return self._divisor

    @property
    def byte_cycles(self) -> int:
        """Clock cycles per byte: start bit, 8 data bits and the stop bit."""
        return 10 * self._divisor

    def elaborate(self, platform) -> Module:
        m = Module()
        divisor = self._divisor

        timer = Signal(range(divisor))   # cycles left of the current bit, minus one
        left = Signal(range(10))         # bits still to send after the current one
        shift = Signal(9)                # data bits then the stop bit, next bit at the bottom

        ending = Signal()                # the last cycle of the stop bit
        m.d.comb += [
            ending.eq(self.busy & (timer == 0) & (left == 0)),
            self.data.ready.eq(~self.busy | ending),
        ]
        with m.If(self.data.valid & self.data.ready):
            m.d.sync += [
                self.tx.eq(0),
                shift.eq(Cat(self.data.payload, 1)),
                left.eq(9),
                timer.eq(divisor - 1),
                self.busy.eq(1),
            ]
        with m.Elif(self.busy):
            with m.If(timer != 0):
                m.d.sync += timer.eq(timer - 1)
            with m.Elif(left != 0):
                m.d.sync += [self.tx.eq(shift[0]), shift.eq(shift >> 1), left.eq(left - 1),
                             timer.eq(divisor - 1)]
            with m.Else():
                m.d.sync += self.busy.eq(0)
        return m
