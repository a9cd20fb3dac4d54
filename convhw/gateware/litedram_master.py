"""``LiteDramMaster``: the memory port on a LiteDRAM native user port (the ULX3S's SDRAM).

LiteDRAM's native port (``user_port_native_<n>_*`` of a generated core; its ``LiteDRAMNativePort``)
has three streams: ``cmd`` (``we``, ``addr``: a word address of ``data_width`` bits),
``wdata`` (``data``, ``we``: one bit per byte) and ``rdata`` (``data``). It takes one command
per word, serves them in order per port, asks for each write's data with ``wdata.ready`` when it
needs it (after the command), and returns read data in command order; it has no error response.

Datasheet
---------
* One port command at a time, whole: after a cycle of set-up its beats become native commands,
  one per cycle at most (reads and writes alternate between commands when both wait). A read
  beat is issued only while the read buffer (``read_buffer`` entries) has room for its answer,
  since LiteDRAM's read data cannot be stalled: ``rdata.ready`` is always high.
* A write beat's command is issued in the cycle its data is taken from the port; the data waits
  in a FIFO (``read_buffer`` entries too) until LiteDRAM asks for it. The write response comes
  once the command's last beat's data has been taken by LiteDRAM: a later read of the same word
  is then served after it (LiteDRAM keeps a port's commands to one bank in order).
* Beats at or above ``memory_bytes`` are not sent (LiteDRAM would wrap them onto the chip's
  other words): a read beat there comes back with ``error`` in its place among the others, a
  write beat there is dropped and its command's response has ``error``. Nothing is lost and
  nothing wraps.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, fifo, wiring
from amaranth.lib.wiring import In, Out

from .memory_port import MemoryPortSignature
from .skid_buffer import SkidBuffer

__all__ = ["LiteDramMaster", "LiteDramNativeSignature"]


class LiteDramNativeSignature(wiring.Signature):
    """LiteDRAM's native user port, seen from the user, with LiteDRAM's member names (a
    generated core's ``user_port_native_0_<member>``).

    Members
    -------
    cmd_valid, cmd_we : Out(1)
    cmd_addr : Out(addr_width)
        Word address (``data_width`` bits per word).
    cmd_ready : In(1)
    wdata_valid : Out(1)
    wdata_data : Out(data_width)
    wdata_we : Out(data_width // 8)
    wdata_ready : In(1)
    rdata_valid : In(1)
    rdata_data : In(data_width)
    rdata_ready : Out(1)
    """

    def __init__(self, data_width: int, addr_width: int) -> None:
        self._data_width, self._addr_width = data_width, addr_width
        super().__init__({
            "cmd_valid": Out(1), "cmd_we": Out(1), "cmd_addr": Out(addr_width),
            "cmd_ready": In(1),
            "wdata_valid": Out(1), "wdata_data": Out(data_width),
            "wdata_we": Out(data_width // 8), "wdata_ready": In(1),
            "rdata_valid": In(1), "rdata_data": In(data_width), "rdata_ready": Out(1),
        })

    def __eq__(self, other: object) -> bool:
        return (type(other) is type(self) and other._data_width == self._data_width
                and other._addr_width == self._addr_width)

    def __repr__(self) -> str:
        return f"LiteDramNativeSignature({self._data_width}, {self._addr_width})"


class LiteDramMaster(wiring.Component):
    """The memory port on LiteDRAM's native port; see the module documentation.

    Parameters
    ----------
    data_width : int
        Bits per beat and per native word (the port's ``data_width`` at generation).
    memory_bytes : int
        The SDRAM's size: a power of two, at least one word.
    addr_width : int
        Bits of the memory port's byte addresses.
    read_buffer : int
        Read answers and write data held at once (2 to 256).

    Members
    -------
    port : In(MemoryPortSignature(data_width, addr_width))
    native : Out(LiteDramNativeSignature(data_width, log2(memory_bytes / beat bytes)))
    """

    def __init__(self, data_width: int = 64, memory_bytes: int = 32 << 20, *,
                 addr_width: int = 32, read_buffer: int = 16) -> None:
        port = MemoryPortSignature(data_width, addr_width)
        words = memory_bytes // port.beat_bytes if isinstance(memory_bytes, int) else 0
        if (not isinstance(memory_bytes, int) or isinstance(memory_bytes, bool) or words < 1
                or memory_bytes & (memory_bytes - 1) or memory_bytes > 1 << addr_width):
            raise ValueError(f"memory_bytes must be a power of two of at least one "
                             f"{data_width}-bit word and at most 2**addr_width, not "
                             f"{memory_bytes!r}")
        if (not isinstance(read_buffer, int) or isinstance(read_buffer, bool)
                or not 2 <= read_buffer <= 256):
            raise ValueError(f"read_buffer must be an integer from 2 to 256, not "
                             f"{read_buffer!r}")
        self._port = port
        self._words = words
        self._read_buffer = read_buffer
        super().__init__({
            "port": In(port),
            "native": Out(LiteDramNativeSignature(data_width, max(1, (words - 1).bit_length()))),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        port, native = self.port, self.native
        sig = self._port
        shift = (sig.beat_bytes - 1).bit_length()
        word_width = sig.addr_width - shift
        depth = self._read_buffer

        # -- the command being issued ----------------------------------------------------------
        busy = Signal()
        writing = Signal()
        word = Signal(word_width)            # the next beat's word address
        left = Signal(9)                     # beats of the command still to issue
        in_range = Signal(9)                 # of those, how many lie in the memory
        prefer_write = Signal()              # the kind not served last goes first

        cmd = port.read_cmd.payload
        wcmd = port.write_cmd.payload

        def in_memory(first, beats):
            # Beats of a command at word `first` that lie below the memory's end (a prefix).
            room = Signal(word_width + 1)
            m.d.comb += room.eq(Mux(first >= self._words, 0, self._words - first))
            return Mux(room < beats, room, beats)

        take_read = Signal()
        take_write = Signal()
        with m.If(~busy):
            m.d.comb += [
                take_write.eq(port.write_cmd.valid & (prefer_write | ~port.read_cmd.valid)),
                take_read.eq(port.read_cmd.valid & ~take_write),
            ]
        m.d.comb += [port.read_cmd.ready.eq(take_read), port.write_cmd.ready.eq(take_write)]
        # A command is taken into registers; in its first cycle (`setup`) the beats that lie
        # in the memory are counted from them, and none is issued. (Counted in the cycle the
        # command is taken, the arbitration, the address multiplexer and the subtraction made
        # one path: the ULX3S's critical path with the SDRAM, 18 ns.)
        setup = Signal()
        with m.If(take_read | take_write):
            first = Mux(take_write, wcmd.addr, cmd.addr)[shift:]
            beats = Mux(take_write, wcmd.len, cmd.len) + 1
            m.d.sync += [busy.eq(1), setup.eq(1), writing.eq(take_write), word.eq(first),
                         left.eq(beats), prefer_write.eq(~take_write)]
        with m.If(setup):
            m.d.sync += [in_range.eq(in_memory(word, left)), setup.eq(0)]

        beat_in_range = in_range != 0
        last_beat = left == 1
        issued = Signal()                    # a beat of the command leaves in this cycle
        with m.If(issued):
            m.d.sync += [word.eq(word + 1), left.eq(left - 1),
                         in_range.eq(Mux(beat_in_range, in_range - 1, 0))]
            with m.If(last_beat):
                m.d.sync += busy.eq(0)

        m.d.comb += [native.cmd_addr.eq(word), native.cmd_we.eq(writing)]

        # -- reads: a tag per beat (last, error) and the answers, both in beat order ------------
        tag_layout = data.StructLayout({"last": 1, "error": 1})
        m.submodules.tags = tags = fifo.SyncFIFOBuffered(width=tag_layout.size, depth=depth)
        m.submodules.answers = answers = fifo.SyncFIFOBuffered(width=sig.data_width,
                                                               depth=depth)
        reading = busy & ~writing & ~setup
        with m.If(reading & tags.w_rdy):
            # In range: the beat leaves when LiteDRAM takes its command; else at once.
            m.d.comb += [native.cmd_valid.eq(beat_in_range),
                         issued.eq(~beat_in_range | native.cmd_ready)]
        tag_in = data.View(tag_layout, tags.w_data)
        m.d.comb += [tags.w_en.eq(reading & issued), tag_in.last.eq(last_beat),
                     tag_in.error.eq(~beat_in_range)]
        # LiteDRAM's read data cannot wait: every in-range beat in flight has a tag, and the
        # answers FIFO is as deep as the tags', so it always has room.
        m.d.comb += [native.rdata_ready.eq(1), answers.w_en.eq(native.rdata_valid),
                     answers.w_data.eq(native.rdata_data)]
        tag_out = data.View(tag_layout, tags.r_data)
        # The answers leave through a register stage: without it the FIFOs' `r_rdy` ran through
        # the engine's read arbiter and back as `ready` to their `r_en` in one cycle (the ULX3S
        # SDRAM build's critical path, 17.8 ns against 16.7). The stage holds two beats that
        # have left the FIFOs, so it takes nothing from the answers' room.
        m.submodules.read_stage = stage = SkidBuffer(port.read_data.payload.shape())
        out = stage.i
        m.d.comb += [
            out.valid.eq(tags.r_rdy & (tag_out.error | answers.r_rdy)),
            out.payload.data.eq(Mux(tag_out.error, 0, answers.r_data)),
            out.payload.last.eq(tag_out.last),
            out.payload.error.eq(tag_out.error),
            tags.r_en.eq(out.valid & out.ready),
            answers.r_en.eq(out.valid & out.ready & ~tag_out.error),
        ]
        wiring.connect(m, stage.o, wiring.flipped(port.read_data))

        # -- writes: a command with each beat's data; the data waits for LiteDRAM's request ------
        wdata_layout = data.StructLayout({"data": sig.data_width, "strb": sig.beat_bytes,
                                          "last": 1})
        m.submodules.wdata = wdata = fifo.SyncFIFOBuffered(width=wdata_layout.size, depth=depth)
        command_error = Signal()             # a beat of the current write command was dropped
        has_data = Signal()                  # a beat of it went to LiteDRAM
        with m.If(take_write):
            m.d.sync += [command_error.eq(0), has_data.eq(0)]
        beat = port.write_data
        with m.If(busy & writing & ~setup & beat.valid & wdata.w_rdy):
            m.d.comb += [native.cmd_valid.eq(beat_in_range),
                         issued.eq(~beat_in_range | native.cmd_ready)]
        m.d.comb += beat.ready.eq(busy & writing & issued)
        w_in = data.View(wdata_layout, wdata.w_data)
        m.d.comb += [wdata.w_en.eq(busy & writing & issued & beat_in_range),
                     w_in.data.eq(beat.payload.data), w_in.strb.eq(beat.payload.strb),
                     # the command's last beat that goes to LiteDRAM (in range: a prefix)
                     w_in.last.eq(in_range == 1)]
        with m.If(busy & writing & issued):
            with m.If(beat_in_range):
                m.d.sync += has_data.eq(1)
            with m.Else():
                m.d.sync += command_error.eq(1)
        w_out = data.View(wdata_layout, wdata.r_data)
        m.d.comb += [native.wdata_valid.eq(wdata.r_rdy), native.wdata_data.eq(w_out.data),
                     native.wdata_we.eq(w_out.strb),
                     wdata.r_en.eq(native.wdata_ready)]

        # Responses, one per command in order: (error, waits for its last data to be taken).
        resp_layout = data.StructLayout({"error": 1, "has_data": 1})
        m.submodules.responses = responses = fifo.SyncFIFOBuffered(width=resp_layout.size,
                                                                   depth=depth)
        r_in = data.View(resp_layout, responses.w_data)
        ended = busy & writing & issued & last_beat
        m.d.comb += [responses.w_en.eq(ended),
                     r_in.error.eq(command_error | ~beat_in_range),
                     r_in.has_data.eq(has_data | beat_in_range)]
        # Commands whose last data LiteDRAM has taken and that are not yet answered.
        drained = Signal(range(depth + 2))
        drained_now = native.wdata_ready & wdata.r_rdy & w_out.last
        r_out = data.View(resp_layout, responses.r_data)
        resp = port.write_resp
        answer = resp.valid & resp.ready
        m.d.comb += [resp.valid.eq(responses.r_rdy & (~r_out.has_data | (drained != 0))),
                     resp.payload.error.eq(r_out.error),
                     responses.r_en.eq(answer)]
        m.d.sync += drained.eq(drained + drained_now - (answer & r_out.has_data))
        # A write command waits while the response FIFO is full.
        with m.If(~responses.w_rdy):
            m.d.comb += take_write.eq(0)
        return m
