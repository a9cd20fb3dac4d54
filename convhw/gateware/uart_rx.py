"""``UARTReceiver``: 8N1 bytes from a raw serial input pin.

The serial bridge needs bytes from the host's UART and nothing more: no parity, one stop bit,
least significant bit first, a fixed rate set at build time as ``divisor`` clock cycles per
bit. The design is the classic mid-bit sampler:

* The pin is asynchronous to the clock, so it first passes two flip-flops
  (:class:`~amaranth.lib.cdc.FFSynchronizer`); everything after works on the synchronised
  ``line``, which idles high.
* A falling edge of ``line`` (high in the previous cycle, low now) in the idle state may be a
  start bit. Half a bit later the line is checked again: if it is high by then, the low pulse
  was a glitch shorter than half a bit and the receiver goes back to waiting for an edge.
* Each data bit and then the stop bit is sampled once, a whole bit time after the previous
  sample, i.e. in the middle of the bit. Sampling at the middle leaves half a bit of margin
  for the accumulated rate error over the ten bits of a frame (a 2 % error drifts by a fifth
  of a bit).
* A stop bit that samples low is a framing error (noise, a wrong rate, a break): the byte is
  dropped and ``framing_error`` pulses. Because a new start needs a falling edge, a line held
  low (a break) produces one framing error, not a stream of zero bytes.

The receiver goes back to the idle state at the middle of the stop bit, half a bit before the
next start bit can begin, so back-to-back bytes are received.

Output. A received byte waits in a one-byte holding register with ``data.valid`` high until the
consumer takes it (``data.ready``), as the stream rules require. A UART cannot be paused, so
when the next byte completes while the previous one is still waiting, the new byte is dropped
and ``overrun`` pulses; a consumer that keeps ``ready`` high (as the serial bridge does) never
loses a byte.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.cdc import FFSynchronizer
from amaranth.lib.wiring import In, Out

__all__ = ["MIN_DIVISOR", "UARTReceiver", "check_divisor"]

#: The fewest clock cycles per bit: the start bit is re-checked half a bit (``divisor // 2``
#: cycles, at least 2) after its edge.
MIN_DIVISOR = 4


def check_divisor(divisor: object) -> int:
    """``divisor`` if it is a valid UART divisor (an integer >= :data:`MIN_DIVISOR`).

    Raises
    ------
    TypeError
        If ``divisor`` is not an integer.
    ValueError
        If ``divisor`` is below :data:`MIN_DIVISOR`.
    """
    if not isinstance(divisor, int) or isinstance(divisor, bool):
        raise TypeError(f"divisor must be an integer, not {divisor!r}")
    if divisor < MIN_DIVISOR:
        raise ValueError(f"divisor must be at least {MIN_DIVISOR} clock cycles per bit, "
                         f"not {divisor}")
    return divisor


class UARTReceiver(wiring.Component):
    """8N1 UART receiver; see the module documentation.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit, at least 4.

    Attributes
    ----------
    rx : In(1)
        The serial input pin (idle high), asynchronous to the clock.
    data : Out(stream.Signature(8))
        Received bytes.
    overrun : Out(1)
        One-cycle pulse: a byte completed while the previous one was still waiting; the new
        byte was dropped.
    framing_error : Out(1)
        One-cycle pulse: a stop bit sampled low; the byte was dropped.

    Raises
    ------
    TypeError, ValueError
        If ``divisor`` is not an integer of at least 4.
    """

    def __init__(self, divisor: int) -> None:
        self._divisor = check_divisor(divisor)
        super().__init__({
            "rx": In(1, init=1),
            "data": Out(stream.Signature(8)),
            "overrun": Out(1),
            "framing_error": Out(1),
        })

    @property
    def divisor(self) -> int:
        return self._divisor

    def elaborate(self, platform) -> Module:
        m = Module()
        divisor = self._divisor

        line = Signal(init=1)
        m.submodules.synchronizer = FFSynchronizer(self.rx, line, init=1)
        previous = Signal(init=1)
        m.d.sync += previous.eq(line)

        timer = Signal(range(divisor))   # cycles to the next sample, minus one
        bit = Signal(range(8))           # data bit being received
        shift = Signal(8)                # data bits, entering at the top: LSB first on the wire

        m.d.sync += [self.overrun.eq(0), self.framing_error.eq(0)]
        with m.If(self.data.ready):
            m.d.sync += self.data.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(previous & ~line):
                    m.d.sync += timer.eq(divisor // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Elif(line):
                    m.next = "IDLE"       # high again at mid-bit: a glitch
                with m.Else():
                    m.d.sync += [timer.eq(divisor - 1), bit.eq(0)]
                    m.next = "DATA"
            with m.State("DATA"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    m.d.sync += [shift.eq(Cat(shift[1:], line)), bit.eq(bit + 1),
                                 timer.eq(divisor - 1)]
                    with m.If(bit == 7):
                        m.next = "STOP"
            with m.State("STOP"):
                with m.If(timer != 0):
                    m.d.sync += timer.eq(timer - 1)
                with m.Else():
                    with m.If(~line):
                        m.d.sync += self.framing_error.eq(1)
                    with m.Elif(~self.data.valid | self.data.ready):
                        m.d.sync += [self.data.payload.eq(shift), self.data.valid.eq(1)]
                    with m.Else():
                        m.d.sync += self.overrun.eq(1)
                    m.next = "IDLE"
        return m
