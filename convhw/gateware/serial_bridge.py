"""``SerialBridge``: the Wishbone master behind the serial protocol.

The bridge executes the framed requests of :mod:`convhw.serial_protocol` (read that module's
documentation for the frames) on a Wishbone B4 classic bus. It sits between a UART receiver
and transmitter, byte streams in and out, so that it is independent of the line rate and can be
tested byte by byte.

State machine
-------------
::

    HUNT -> HEADER -> [PAYLOAD] -> CRC -> CHECK -> [BUS] -> REPLY_HEADER -> [REPLY_PAYLOAD]
      ^                                                                     -> REPLY_CRC -+
      +---------------------------------------------------------------------------------+

* ``HUNT`` discards bytes until the request sync byte, so garbage between frames (line noise, a
  host that gave up half-way through a frame) is skipped.
* ``HEADER`` takes cmd, tag, count-1 and the 4 address bytes. What follows is decided from the
  header alone: a WRITE of at most ``max_burst`` words has
  ``4 * count`` payload bytes, every other request (including an unknown command and a too
  long WRITE, which are refused anyway) has none. The parser thus always knows where the frame
  ends and stays in step with a host that sends only well-formed frames.
* ``PAYLOAD`` assembles a WRITE's words (little-endian) into the burst buffer, a
  :class:`~amaranth.lib.memory.Memory` of ``max_burst`` words: nothing of a WRITE reaches the
  bus before the whole frame has been checked.
* ``CRC`` takes the 2 CRC bytes. Every byte after the sync byte, the CRC bytes included, goes
  through :func:`~convhw.gateware.crc16.crc16_next` in the cycle it arrives; a good frame
  leaves 0 in the CRC register.
* ``CHECK`` (one cycle) decides, in this order: a CRC that is not 0 is ``BAD_CRC``; an unknown
  command, then (READ and WRITE only) an address not a multiple of 4, then a count above
  ``max_burst``, is ``BAD_REQUEST`` with the :class:`~convhw.serial_protocol.Reject` reason;
  INFO is answered at once (its address and count are ignored); a WRITE whose tag is that of
  the last WRITE carried out is answered with that write's stored status and detail and **not**
  carried out again (the host resends a write whose response it lost); anything else goes to
  the bus.
* ``BUS`` performs ``count`` classic accesses at consecutive word addresses, ``sel = 0b1111``.
  ``CYC``/``STB`` stay high from the first access to the last: the next address (and, for a
  WRITE, the next buffer word) is presented in the cycle after an ACK, so the bridge adds no
  cycle between words and a burst takes ``count * (1 + wait states)`` cycles; with the
  engine's :class:`~convhw.gateware.wishbone.WishboneSlave` that is 2 cycles per register word
  (2 + latency for a window word). READ data goes into the buffer. The first ``ERR`` stops the
  burst with ``BUS_ERROR`` and the word's index as detail; an access that gets neither ACK nor
  ERR within ``bus_timeout`` cycles is abandoned (``CYC`` dropped) with ``BUS_TIMEOUT``. A word
  address beyond the bus's ``addr_width`` bits (byte address ``>> 2 >= 2**addr_width``) is
  treated as unmapped: ``BUS_ERROR`` at that word without a bus access, never wrapped around
  to a low address. When a WRITE has gone to the bus its tag, status and detail are kept for
  the duplicate check. Every bus output comes from a flip-flop (``CYC``/``STB`` are decided a
  cycle ahead, from the next word address's carry), so that the bridge's state machine is not
  in the address decoder's paths.
* ``REPLY_*`` send the response: sync, tag, status, detail, words, the payload (the buffer for
  a successful READ, :func:`~convhw.serial_protocol.info_words` for INFO) least significant
  byte first, and the CRC of everything after the sync byte, high byte first. The CRC register
  of the request is reused: it is not needed once ``CHECK`` has passed.

Frame timeout. Inside a frame (``HEADER`` to ``CRC``), if no byte arrives for
:func:`~convhw.serial_protocol.frame_timeout_bytes` byte times (``10 * divisor`` cycles each),
the frame is dropped and answered with ``FRAME_TIMEOUT`` (the tag if it had arrived, else 0),
so that a host that lost bytes gets an answer instead of waiting forever and the parser is back
in ``HUNT``. One down-counter times both this and the bus timeout: they never run together.

Received bytes outside ``HUNT`` to ``CRC``. ``rx.ready`` is always high. Without a receive FIFO
(``rx_fifo=0``) the bytes that arrive while the bridge executes a request or sends its response
are dropped: the host must wait for each response before it sends the next request, and
dropping stray bytes, rather than holding them back, keeps stale bytes from being parsed as the
start of the next frame. With one (``rx_fifo`` bytes, reported by INFO) every byte goes into it
and the parser takes them from it in ``HUNT`` to ``CRC`` only: a host may send the next
requests while one executes and its response goes out (pipelining), as long as what it has sent
beyond the request being parsed fits the FIFO. A byte arriving at a full FIFO is dropped (the
frame it belongs to then fails its CRC or times out, as on a noisy line).

Timing. ``CHECK`` follows the last CRC byte by one cycle; the response's first byte is offered
two cycles after ``CHECK`` (INFO, refusals) or after the last bus access. Each response byte
is offered from a register, which loads it in the cycle before: two idle cycles follow every
byte (the buffer's synchronous read port takes one to follow the byte counter, the register
the other), and the transmitter, which takes the next byte in the last cycle of the previous
one's stop bit, sends them back to back; the UART needs ``10 * divisor`` cycles per byte
anyway.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from ..config import BUS_DATA_WIDTH
from ..serial_protocol import (
    INFO_WORDS,
    LARGEST_BURST,
    MAX_BURST,
    REQUEST_SYNC,
    RESPONSE_SYNC,
    Command,
    Reject,
    Status,
    frame_timeout_bytes,
    info_words,
)
from .crc16 import CRC16_INIT, crc16_next
from .uart_rx import MIN_DIVISOR
from .wishbone import WishboneSignature

__all__ = ["MAX_ADDR_WIDTH", "SerialBridge"]

#: A 32-bit byte address holds a word address of at most this many bits.
MAX_ADDR_WIDTH = 30
#: Request header bytes after the sync byte: cmd, tag, count-1, address (4).
_HEADER_BYTES = 7
#: Response header bytes: sync, tag, status, detail, words.
_REPLY_HEADER_BYTES = 5


def _check_int(name: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in the range {low}..{high}, not {value}")
    return value


class SerialBridge(wiring.Component):
    """Wishbone B4 classic master executing serial-protocol requests; see the module
    documentation.

    Parameters
    ----------
    addr_width : int
        Word-address width of the bus, 1..30.
    clock_hz : int
        The clock frequency, reported by INFO; 1..2**32 - 1.
    divisor : int
        The UART's clock cycles per bit (at least 4), reported by INFO; it also sets the frame
        timeout, ``frame_timeout_bytes() * 10 * divisor`` cycles.
    bus_timeout : int
        Cycles an access may wait for ACK or ERR before it is abandoned, 1..2**20.
    max_burst : int
        The most words of a READ or WRITE (the burst buffer's depth, reported by INFO),
        :data:`~convhw.serial_protocol.MAX_BURST` to
        :data:`~convhw.serial_protocol.LARGEST_BURST`.
    rx_fifo : int
        Bytes of the receive FIFO (reported by INFO): 0 (none: requests one at a time) or a
        power of two from 16 to 1024.

    Attributes
    ----------
    rx : In(stream.Signature(8))
        Bytes from the host (from the UART receiver). Always ready.
    tx : Out(stream.Signature(8))
        Response bytes (to the UART transmitter).
    bus : Out(WishboneSignature(addr_width))
        The Wishbone master port.
    active : Out(1)
        Inside a frame, executing it or sending its response: not hunting for a sync byte.

    Raises
    ------
    TypeError
        If an argument is not an integer.
    ValueError
        If an argument is outside its range.
    """

    def __init__(self, addr_width: int, *, clock_hz: int, divisor: int,
                 bus_timeout: int = 1024, max_burst: int = MAX_BURST,
                 rx_fifo: int = 0) -> None:
        self._addr_width = _check_int("addr_width", addr_width, 1, MAX_ADDR_WIDTH)
        self._rx_fifo = _check_int("rx_fifo", rx_fifo, 0, 1024)
        if rx_fifo and (rx_fifo < 16 or rx_fifo & (rx_fifo - 1)):
            raise ValueError(f"rx_fifo must be 0 or a power of two from 16 to 1024, not "
                             f"{rx_fifo}")
        self._max_burst = _check_int("max_burst", max_burst, MAX_BURST, LARGEST_BURST)
        self._clock_hz = _check_int("clock_hz", clock_hz, 1, 2**32 - 1)
        self._divisor = _check_int("divisor", divisor, MIN_DIVISOR, 2**32 - 1)
        self._bus_timeout = _check_int("bus_timeout", bus_timeout, 1, 2**20)
        super().__init__({
            "rx": In(stream.Signature(8)),
            "tx": Out(stream.Signature(8)),
            "bus": Out(WishboneSignature(addr_width)),
            "active": Out(1),
        })

    @property
    def addr_width(self) -> int:
        return self._addr_width

    @property
    def clock_hz(self) -> int:
        return self._clock_hz

    @property
    def divisor(self) -> int:
        return self._divisor

    @property
    def max_burst(self) -> int:
        return self._max_burst

    @property
    def rx_fifo(self) -> int:
        return self._rx_fifo

    @property
    def bus_timeout(self) -> int:
        return self._bus_timeout

    @property
    def frame_timeout(self) -> int:
        """Clock cycles without a byte after which a partly received frame is dropped."""
        return frame_timeout_bytes() * 10 * self._divisor

    def elaborate(self, platform) -> Module:
        m = Module()
        rx, tx, bus = self.rx, self.tx, self.bus

        max_burst = self._max_burst
        # INFO's words are constants stored past the burst words, which no access writes: the
        # response reads them through the same port as a READ's, instead of a multiplexer of
        # its own (128 bits of constants: some 40 logic cells on an iCE40).
        info = info_words(self._clock_hz, self._divisor, max_burst, self._rx_fifo)
        m.submodules.buffer = buffer = Memory(shape=BUS_DATA_WIDTH, depth=max_burst + INFO_WORDS,
                                              init=[0] * max_burst + list(info))
        rd = buffer.read_port()
        wr = buffer.write_port()

        # -- request fields and state --------------------------------------------------------
        command = Signal(8)
        tag = Signal(8)
        count_m1 = Signal(8)
        # The address as far as the bus can use it (byte offset and word address), and whether
        # any bit above that was set: such an address is unmapped whatever its low bits.
        aw = self._addr_width
        address = Signal(2 + aw)
        address_high = Signal()
        crc = Signal(16, init=CRC16_INIT)
        index = Signal(range(4 * max_burst))       # byte within the current field group
        assemble = Signal(24)                      # a payload word's first three bytes
        word = Signal(range(max_burst))            # bus access within the burst
        # One bit above the bus's word address: set for an address past the bus's space, and
        # by the carry of a burst running off its top (which then stops: it never wraps).
        word_address = Signal(aw + 1)
        timer = Signal(range(max(self.frame_timeout, self._bus_timeout)))

        status = Signal(Status)
        detail = Signal(8)
        words = Signal(range(max_burst + 1))       # payload words of the response
        # The response byte is offered from a register, loaded every cycle with the byte at
        # the current state and index (`next_byte`), so that the transmitter's ready reaches
        # only counters, not the multiplexer of the bytes. `hold` keeps `valid` low while it
        # loads: for the two cycles after a byte went out (the buffer's read port takes one to
        # follow the index) and for the first cycle of a response.
        next_byte = Signal(8)
        out_byte = Signal(8)
        hold = Signal(range(3))

        last_write_valid = Signal()
        last_write_tag = Signal(8)
        last_write_status = Signal(Status)
        last_write_detail = Signal(8)

        is_write = command == Command.WRITE
        known = (command == Command.INFO) | (command == Command.READ) | is_write
        # The bus's control signals come straight from flip-flops, so that the path into the
        # address decoder and the slaves starts at a register, not at the state machine: `cyc`
        # is high in BUS while the word address is in range, `we` holds the command's kind.
        cyc = Signal()
        we = Signal()

        # The bytes the parser sees: straight from `rx` (dropped outside HUNT..CRC), or from
        # the receive FIFO, which the parser reads only in HUNT..CRC.
        byte = stream.Signature(8).flip().create()
        if self._rx_fifo:
            m.submodules.rx_fifo = rx_fifo = fifo.SyncFIFOBuffered(width=8, depth=self._rx_fifo)
            m.d.comb += [rx_fifo.w_data.eq(rx.payload), rx_fifo.w_en.eq(rx.valid),
                         byte.valid.eq(rx_fifo.r_rdy), byte.payload.eq(rx_fifo.r_data),
                         rx_fifo.r_en.eq(byte.ready)]
        else:
            m.d.comb += [byte.valid.eq(rx.valid), byte.payload.eq(rx.payload)]
        m.d.comb += [
            rx.ready.eq(1),
            bus.adr.eq(word_address[:aw]),
            bus.cyc.eq(cyc),
            bus.stb.eq(cyc),
            bus.we.eq(we),
            bus.sel.eq(0b1111),
            bus.dat_w.eq(rd.data),
            rd.addr.eq(word),
        ]
        m.d.sync += out_byte.eq(next_byte)
        m.d.comb += tx.payload.eq(out_byte)
        with m.If(tx.valid & tx.ready):
            m.d.sync += hold.eq(2)
        with m.Elif(hold != 0):
            m.d.sync += hold.eq(hold - 1)
        # One CRC step serves the request's bytes and the response's: they never meet, and
        # each step is some 35 logic cells of exclusive-ors.
        crc_byte = Signal(8)
        crc_step = crc16_next(crc, crc_byte)

        def reply(m, *, next_status=None, next_detail=0):
            """Go on to the response; optionally set its status and detail now."""
            if next_status is not None:
                m.d.sync += [status.eq(next_status), detail.eq(next_detail)]
            m.d.sync += [index.eq(0), crc.eq(CRC16_INIT), hold.eq(1)]
            m.next = "REPLY_HEADER"

        def frame_byte(m):
            """Every byte inside a frame goes into the CRC and restarts the frame timeout;
            silence for too long drops the frame."""
            m.d.comb += crc_byte.eq(byte.payload)
            with m.If(byte.valid):
                m.d.sync += [crc.eq(crc_step), timer.eq(self.frame_timeout - 1)]
            with m.Elif(timer == 0):
                m.d.sync += words.eq(0)
                reply(m, next_status=Status.FRAME_TIMEOUT)
            with m.Else():
                m.d.sync += timer.eq(timer - 1)

        def finish_bus(m, next_status, next_detail=0):
            m.d.sync += cyc.eq(0)
            reply(m, next_status=next_status, next_detail=next_detail)
            with m.If(is_write):
                m.d.sync += [last_write_valid.eq(1), last_write_tag.eq(tag),
                             last_write_status.eq(next_status),
                             last_write_detail.eq(next_detail)]

        with m.FSM() as fsm:
            with m.State("HUNT"):
                with m.If(byte.valid & (byte.payload == REQUEST_SYNC)):
                    m.d.sync += [crc.eq(CRC16_INIT), tag.eq(0), index.eq(0), word.eq(0),
                                 address_high.eq(0), timer.eq(self.frame_timeout - 1)]
                    m.next = "HEADER"

            with m.State("HEADER"):
                frame_byte(m)
                with m.If(byte.valid):
                    m.d.sync += index.eq(index + 1)
                    with m.Switch(index):
                        with m.Case(0):
                            m.d.sync += command.eq(byte.payload)
                        with m.Case(1):
                            m.d.sync += tag.eq(byte.payload)
                        with m.Case(2):
                            m.d.sync += count_m1.eq(byte.payload)
                        for k in range(4):
                            with m.Case(3 + k):
                                low = max(0, min(8, len(address) - 8 * k))
                                if low:
                                    m.d.sync += address[8 * k:8 * k + low].eq(
                                        byte.payload[:low])
                                if low < 8:
                                    m.d.sync += address_high.eq(
                                        address_high | byte.payload[low:].any())
                    with m.If(index == _HEADER_BYTES - 1):
                        m.d.sync += index.eq(0)
                        with m.If(is_write & (count_m1 < max_burst)):
                            m.next = "PAYLOAD"
                        with m.Else():
                            m.next = "CRC"

            with m.State("PAYLOAD"):
                frame_byte(m)
                with m.If(byte.valid):
                    m.d.sync += [assemble.eq(Cat(assemble[8:], byte.payload)),
                                 index.eq(index + 1)]
                    m.d.comb += [wr.addr.eq(index[2:]), wr.data.eq(Cat(assemble, byte.payload)),
                                 wr.en.eq(index[:2] == 3)]
                    # count_m1 < max_burst here: the last byte is 4 * count_m1 + 3.
                    with m.If(index == Cat(Const(3, 2), count_m1[:len(index) - 2])):
                        m.d.sync += index.eq(0)
                        m.next = "CRC"

            with m.State("CRC"):
                frame_byte(m)
                with m.If(byte.valid):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == 1):
                        m.next = "CHECK"

            with m.State("CHECK"):
                m.d.sync += words.eq(0)
                with m.If(crc != 0):
                    reply(m, next_status=Status.BAD_CRC)
                with m.Elif(~known):
                    reply(m, next_status=Status.BAD_REQUEST, next_detail=Reject.UNKNOWN_COMMAND)
                with m.Elif(command == Command.INFO):
                    m.d.sync += words.eq(INFO_WORDS)
                    reply(m, next_status=Status.OK)
                with m.Elif(address[:2] != 0):
                    reply(m, next_status=Status.BAD_REQUEST,
                          next_detail=Reject.MISALIGNED_ADDRESS)
                with m.Elif(count_m1 >= max_burst):
                    reply(m, next_status=Status.BAD_REQUEST, next_detail=Reject.BURST_TOO_LONG)
                with m.Elif(is_write & last_write_valid & (tag == last_write_tag)):
                    reply(m, next_status=last_write_status, next_detail=last_write_detail)
                with m.Else():
                    m.d.sync += [word_address.eq(Cat(address[2:], address_high)),
                                 cyc.eq(~address_high), we.eq(is_write),
                                 timer.eq(self._bus_timeout - 1)]
                    m.next = "BUS"

            with m.State("BUS"):
                next_address = word_address + 1
                with m.If(~cyc):
                    finish_bus(m, Status.BUS_ERROR, word)
                with m.Elif(bus.err):
                    finish_bus(m, Status.BUS_ERROR, word)
                with m.Elif(bus.ack):
                    m.d.comb += [wr.addr.eq(word), wr.data.eq(bus.dat_r),
                                 wr.en.eq(~is_write)]
                    with m.If(word == count_m1):
                        with m.If(~is_write):
                            m.d.sync += words.eq(count_m1 + 1)
                        finish_bus(m, Status.OK)
                    with m.Else():
                        # The next access is presented in the next cycle, with its data.
                        m.d.comb += rd.addr.eq(word + 1)
                        m.d.sync += [word.eq(word + 1), word_address.eq(next_address),
                                     cyc.eq(~next_address[aw]),
                                     timer.eq(self._bus_timeout - 1)]
                with m.Elif(timer == 0):
                    finish_bus(m, Status.BUS_TIMEOUT, word)
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)

            with m.State("REPLY_HEADER"):
                m.d.comb += tx.valid.eq(hold == 0)
                with m.Switch(index):
                    with m.Case(0):
                        m.d.comb += next_byte.eq(RESPONSE_SYNC)
                    with m.Case(1):
                        m.d.comb += next_byte.eq(tag)
                    with m.Case(2):
                        m.d.comb += next_byte.eq(status)
                    with m.Case(3):
                        m.d.comb += next_byte.eq(detail)
                    with m.Case(4):
                        m.d.comb += next_byte.eq(words)
                m.d.comb += crc_byte.eq(tx.payload)
                with m.If(tx.valid & tx.ready):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index != 0):
                        m.d.sync += crc.eq(crc_step)
                    with m.If(index == _REPLY_HEADER_BYTES - 1):
                        m.d.sync += index.eq(0)
                        with m.If(words != 0):
                            m.next = "REPLY_PAYLOAD"
                        with m.Else():
                            m.next = "REPLY_CRC"

            with m.State("REPLY_PAYLOAD"):
                m.d.comb += [
                    rd.addr.eq(Mux(command == Command.INFO, max_burst + index[2:], index[2:])),
                    tx.valid.eq(hold == 0),
                    next_byte.eq(rd.data.word_select(index[:2], 8)),
                    crc_byte.eq(tx.payload),
                ]
                with m.If(tx.valid & tx.ready):
                    m.d.sync += [index.eq(index + 1), crc.eq(crc_step)]
                    with m.If((index[:2] == 3) & (index[2:] == words - 1)):
                        m.d.sync += index.eq(0)
                        m.next = "REPLY_CRC"

            with m.State("REPLY_CRC"):
                m.d.comb += [tx.valid.eq(hold == 0),
                             next_byte.eq(crc.word_select(~index[0], 8))]
                with m.If(tx.valid & tx.ready):
                    m.d.sync += index.eq(index + 1)
                    with m.If(index == 1):
                        m.next = "HUNT"

        m.d.comb += [
            self.active.eq(~fsm.ongoing("HUNT")),
            byte.ready.eq(fsm.ongoing("HUNT") | fsm.ongoing("HEADER") | fsm.ongoing("PAYLOAD")
                          | fsm.ongoing("CRC")),
        ]
        return m
