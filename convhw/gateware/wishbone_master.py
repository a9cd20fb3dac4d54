"""``WishboneMaster``: the memory port
(:class:`~convhw.gateware.memory_port.MemoryPortSignature`) on a Wishbone B4 pipelined bus.

Wishbone datasheet (B4)
-----------------------
* Interface type: MASTER, **pipelined** mode (B4 chapter 5): ``STB`` once per beat, each beat
  accepted in a cycle with ``CYC & STB & ~STALL``, and answered later, in order, by exactly one
  ``ACK`` or ``ERR`` (an answer may come in the cycle the beat is accepted). No ``RTY``, no
  ``LOCK``, no tags other than ``CTI``/``BTE``.
* Signals (:class:`WishbonePipelinedSignature`): ``CYC_O``, ``STB_O``, ``WE_O``, ``ADR_O``,
  ``DAT_O``, ``SEL_O``, ``CTI_O``, ``BTE_O``, ``DAT_I``, ``ACK_I``, ``ERR_I``, ``STALL_I``,
  named ``cyc stb we adr dat_w sel cti bte dat_r ack err stall``.
* Port size ``data_width`` bits, granularity 8 bits (``SEL`` has a bit per byte, from the
  memory port's ``strb``; reads use every byte), little-endian. ``ADR`` is a *word* address:
  the byte address divided by ``data_width // 8``, ``addr_width - log2(data_width // 8)`` bits.
* One bus cycle (``CYC`` held) per command; ``CYC`` is low for at least one cycle between
  commands. Reads and writes are arbitrated fairly: when both wait, the kind not served last
  goes first.
* Burst tags as LiteX uses them: ``CTI`` ``0b010`` (incrementing) on every beat but the last,
  ``0b111`` (end of burst) on the last and on a single beat; ``BTE`` ``0b00`` (linear).
* Pipelined: the next beat's address (and data) is presented as soon as the previous beat is
  accepted, before it is answered: one beat per cycle while ``STALL`` is low.
* Errors: an ``ERR`` answers one beat (counted as an answer like ``ACK``); the master goes on
  with the command's other beats, so the memory port gets every read beat (``error`` on those
  answered with ``ERR``) and one write response (``error`` if any beat got ``ERR``). The cycle
  ends when every beat is answered, so a slave that answers each accepted beat with ``ACK`` or
  ``ERR`` (as B4 requires) never hangs the master.
* Read beats in flight are limited to ``read_buffer`` (the depth of the FIFO that holds read
  answers until the issuer takes them, as the bus cannot be stalled on answers): reads stall
  only when the issuer is slower than the bus.
* Timing: ``CYC``, ``STB``, ``ADR``, ``DAT_O``, ``SEL``, ``WE``, ``CTI`` come from flip-flops;
  ``ACK``/``ERR``/``DAT_I`` go into the read FIFO, ``STALL`` into the beat registers only.
  Write data passes a :class:`~convhw.gateware.skid_buffer.SkidBuffer`, so no combinational
  path runs from a bus input to a memory-port output.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, fifo, wiring
from amaranth.lib.wiring import In, Out

from .memory_port import MemoryPortSignature, check_addr_width, check_data_width
from .skid_buffer import SkidBuffer

__all__ = ["CTI_CLASSIC", "CTI_END", "CTI_INCR", "WishboneMaster", "WishbonePipelinedSignature"]

#: ``CTI`` values: classic cycle, incrementing burst, end of burst.
CTI_CLASSIC, CTI_INCR, CTI_END = 0b000, 0b010, 0b111


class WishbonePipelinedSignature(wiring.Signature):
    """A Wishbone B4 pipelined bus with byte granularity, ``ERR``, ``STALL`` and burst tags,
    seen from the master.

    Parameters
    ----------
    data_width : int
        A power of two from 8 to 512.
    addr_width : int
        Bits of the *byte* address the bus covers, 12 to 64; ``adr`` has
        ``addr_width - log2(data_width // 8)`` bits.

    Members
    -------
    cyc, stb, we : Out(1)
    adr : Out(addr_width - log2(data_width // 8))
        Word address.
    dat_w : Out(data_width)
    sel : Out(data_width // 8)
    cti : Out(3)
    bte : Out(2)
    dat_r : In(data_width)
    ack, err, stall : In(1)
    """

    def __init__(self, data_width: int = 64, addr_width: int = 32) -> None:
        self._data_width = check_data_width(data_width, low=8, high=512)
        self._addr_width = check_addr_width(addr_width)
        super().__init__({
            "cyc": Out(1),
            "stb": Out(1),
            "we": Out(1),
            "adr": Out(self.word_addr_width),
            "dat_w": Out(data_width),
            "sel": Out(data_width // 8),
            "cti": Out(3),
            "bte": Out(2),
            "dat_r": In(data_width),
            "ack": In(1),
            "err": In(1),
            "stall": In(1),
        })

    @property
    def data_width(self) -> int:
        return self._data_width

    @property
    def addr_width(self) -> int:
        return self._addr_width

    @property
    def word_addr_width(self) -> int:
        """Width of ``adr``."""
        return self._addr_width - (self._data_width // 8 - 1).bit_length()

    def __eq__(self, other: object) -> bool:
        return (type(other) is type(self) and other._data_width == self._data_width
                and other._addr_width == self._addr_width)

    def __repr__(self) -> str:
        return f"WishbonePipelinedSignature({self._data_width}, {self._addr_width})"


class WishboneMaster(wiring.Component):
    """The memory port on a Wishbone B4 pipelined bus. See the module documentation for the
    datasheet.

    Parameters
    ----------
    data_width : int
        A power of two from 32 to 512.
    addr_width : int
        12 to 64.
    read_buffer : int
        Depth of the read-answer FIFO, the most read beats in flight (2 to 256). Reads run at one
        beat per cycle when it is at least the slave's read latency plus 4.

    Attributes
    ----------
    port : In(MemoryPortSignature(data_width, addr_width))
        From the issuer.
    bus : Out(WishbonePipelinedSignature(data_width, addr_width))
        To the slave.
    """

    def __init__(self, data_width: int = 64, addr_width: int = 32, *,
                 read_buffer: int = 16) -> None:
        port = MemoryPortSignature(data_width, addr_width)
        bus = WishbonePipelinedSignature(data_width, addr_width)
        if not isinstance(read_buffer, int) or isinstance(read_buffer, bool):
            raise TypeError(f"read_buffer must be an integer, not {read_buffer!r}")
        if not 2 <= read_buffer <= 256:
            raise ValueError(f"read_buffer must be an integer from 2 to 256, "
                             f"not {read_buffer!r}")
        self._data_width = data_width
        self._addr_width = addr_width
        self._read_buffer = read_buffer
        super().__init__({"port": In(port), "bus": Out(bus)})

    @property
    def data_width(self) -> int:
        return self._data_width

    @property
    def addr_width(self) -> int:
        return self._addr_width

    @property
    def read_buffer(self) -> int:
        return self._read_buffer

    def elaborate(self, platform):
        m = Module()
        port, bus = self.port, self.bus
        sig = port.signature
        shift = (sig.beat_bytes - 1).bit_length()
        depth = self._read_buffer

        m.submodules.wdata = wdata = SkidBuffer(sig.write_data_layout)
        wiring.connect(m, wiring.flipped(port.write_data), wdata.i)
        m.submodules.rfifo = rfifo = fifo.SyncFIFOBuffered(
            width=data.Layout.cast(sig.read_data_layout).size, depth=depth)

        busy = Signal()           # a command is under way (CYC)
        we = Signal()
        next_adr = Signal.like(bus.adr)
        to_issue = Signal(9)      # beats not yet presented
        to_answer = Signal(9)     # beats not yet answered
        failed = Signal()         # a beat of this write got ERR
        reserved = Signal(range(depth + 1))  # read beats presented and not yet taken
        served_write = Signal()   # the last command accepted was a write
        resp_valid = Signal()
        resp_error = Signal()

        # -- command arbitration -------------------------------------------------------------
        write_ok = port.write_cmd.valid & ~resp_valid
        pick_write = write_ok & (~port.read_cmd.valid | ~served_write)
        pick_read = port.read_cmd.valid & ~pick_write
        m.d.comb += [
            port.write_cmd.ready.eq(~busy & pick_write),
            port.read_cmd.ready.eq(~busy & pick_read),
        ]
        with m.If(~busy & (pick_write | pick_read)):
            cmd = Mux(pick_write, port.write_cmd.payload.as_value(),
                      port.read_cmd.payload.as_value())
            cmd = sig.cmd_layout(cmd)
            m.d.sync += [
                busy.eq(1),
                bus.cyc.eq(1),
                we.eq(pick_write),
                served_write.eq(pick_write),
                next_adr.eq(cmd.addr[shift:]),
                to_issue.eq(cmd.len + 1),
                to_answer.eq(cmd.len + 1),
                failed.eq(0),
            ]

        # -- beats ---------------------------------------------------------------------------
        advance = ~bus.stb | ~bus.stall      # the beat registers are free at this edge
        more = busy & (to_issue != 0)
        room = reserved < depth
        issue = Signal()
        m.d.comb += [
            issue.eq(more & Mux(we, wdata.o.valid, room)),
            wdata.o.ready.eq(advance & more & we),
        ]
        with m.If(advance):
            m.d.sync += bus.stb.eq(issue)
            with m.If(issue):
                m.d.sync += [
                    bus.adr.eq(next_adr),
                    bus.we.eq(we),
                    bus.dat_w.eq(Mux(we, wdata.o.payload.data, 0)),
                    bus.sel.eq(Mux(we, wdata.o.payload.strb, (1 << sig.beat_bytes) - 1)),
                    bus.cti.eq(Mux(to_issue == 1, CTI_END, CTI_INCR)),
                    next_adr.eq(next_adr + 1),
                    to_issue.eq(to_issue - 1),
                ]
        m.d.comb += bus.bte.eq(0)

        # -- answers ---------------------------------------------------------------------------
        answer = busy & (bus.ack | bus.err)
        entry = Signal(sig.read_data_layout)
        m.d.comb += [
            entry.data.eq(bus.dat_r),
            entry.error.eq(bus.err),
            entry.last.eq(to_answer == 1),
            rfifo.w_data.eq(entry.as_value()),
            rfifo.w_en.eq(answer & ~we),
            port.read_data.payload.eq(rfifo.r_data),
            port.read_data.valid.eq(rfifo.r_rdy),
            rfifo.r_en.eq(port.read_data.ready),
        ]
        issued_read = advance & issue & ~we
        taken = port.read_data.valid & port.read_data.ready
        m.d.sync += reserved.eq(reserved + issued_read - taken)
        with m.If(answer):
            m.d.sync += [to_answer.eq(to_answer - 1), failed.eq(failed | bus.err)]
            with m.If(to_answer == 1):
                m.d.sync += [busy.eq(0), bus.cyc.eq(0)]
                with m.If(we):
                    m.d.sync += [resp_valid.eq(1), resp_error.eq(failed | bus.err)]

        # -- write responses -------------------------------------------------------------------
        m.d.comb += [
            port.write_resp.valid.eq(resp_valid),
            port.write_resp.payload.error.eq(resp_error),
        ]
        # No write runs while a response waits (write_ok), so this never meets the set above.
        with m.If(port.write_resp.valid & port.write_resp.ready):
            m.d.sync += resp_valid.eq(0)
        return m
