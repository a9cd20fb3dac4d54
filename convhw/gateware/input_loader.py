"""The input loader: fetches a job's input window from memory into one bank of the input buffer.

It does exactly what :func:`convhw.compiler.list_model.gather_window` does. A window is the
product of two segments per axis (``seg0`` then ``seg1``; an empty one is skipped); its pixels
are visited z, then y, then x, and each pixel's ``in_chunks`` buffer words (``rows`` elements
each) are read from ``addr + z*plane_pitch + y*row_pitch + x*pixel_pitch``. When
``pixel_pitch`` equals a pixel's run of bytes, a whole x segment is one contiguous range. The
words are written into the bank named by the command from its first word on, in that order.

Structure (four stages, each decoupled from the next by a queue, so that several reads are in
flight and the memory's latency is hidden behind the data of earlier ranges):

1. **Walker** (:class:`~convhw.gateware.window_walker.WindowWalker`, a component of its own).
   Takes a command, computes the nine products it needs with one pipelined multiplier, then
   walks the window with adders only and emits one *range* per cycle: one per pixel, or one
   per x segment when the pixels are contiguous; a command's start costs 16 cycles. A range
   goes to both queues below; a command without words emits one empty marker to the data
   queue only, so that it still gets its ``done``. (The block form has a walker of its own
   here: one range per command, in the cycle after it.)
2. **Splitter.** Cuts each range into legal read commands (:func:`~convhw.gateware.
   memory_port.split_bursts`: whole beats, no 4 KiB crossing, at most 256 beats), one per cycle,
   with its page and length arithmetic kept incremental (the next command's cap in a register)
   so that no long carry lies before its outputs or the queue's read enable.
3. **Gearbox.** Takes the beats of the ranges in order and cuts each range's bytes into buffer
   words: it keeps the last beats received (as many as one word can span) and, for each word,
   knows how many bytes of its range are still missing (``need``) and where its last byte lies
   in the newest beat (``q``). A word is written when ``need <= 0``: it is the ``q``-indexed
   slice of the kept beats, a byte shifter of ``log2(beat bytes)`` mux levels. A beat is taken
   when the current word still needs bytes, also in the cycle that writes a word and in the
   cycle that starts the next range, so a beat per cycle gives a word per cycle when words
   are as large as beats (words smaller than beats take one cycle per word, larger ones one
   cycle per beat).
4. **Done.** After the last word of a command is written, a ``done`` transfer, with ``error``
   set if any beat of the command came back with ``error`` (the beats are still all consumed,
   and their words written, with meaningless data).

All outputs come from flip-flops (``read_cmd``, ``buffer``, ``done``); the ``read_data.ready``
and ``command.ready`` are functions of flip-flops (and, for ``read_data.ready``, of the head of
a queue).

Preconditions (the engine checks them before it starts a load: ``MISALIGNED``,
``WINDOW_TOO_LARGE``): ``addr`` and the pitches are multiples of ``config.input_bytes``, and the
window holds at most ``input_depth // 2`` words; a larger window's writes run past its bank.
Addresses wrap at ``addr_width`` bits.
"""

from __future__ import annotations

import dataclasses

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import timing
from ..config import EngineConfig
from ..descriptor import column_params
from .memory_port import BOUNDARY, MAX_BEATS, MemoryPortSignature, check_addr_width
from .window_walker import WindowCommand, WindowSegments, WindowWalker, range_size_width

__all__ = ["BlockLoadCommand", "BufferFormat", "BufferWriteSignature", "InputLoadCommand",
           "InputLoader", "WindowSegments"]



@dataclasses.dataclass(frozen=True)
class BufferFormat:
    """A buffer a loader fills: ``depth`` words of ``lanes`` elements, each ``element_bytes``
    little-endian bytes in memory and ``lane_width`` bits in the word (lane ``i`` at bits
    ``[i*lane_width, (i+1)*lane_width)``).

    The input buffer (:meth:`for_input`), the weight buffer (:meth:`for_weights`) and the column
    parameters (:meth:`for_params`) are all loaded by :class:`InputLoader`: the weights and the
    parameters by its block form (``windowed=False``), a contiguous block of words.
    """

    lanes: int
    lane_width: int
    element_bytes: int
    depth: int

    @classmethod
    def for_input(cls, config: EngineConfig) -> BufferFormat:
        return cls(config.rows, config.input_width, config.input_bytes, config.input_depth)

    @classmethod
    def for_weights(cls, config: EngineConfig) -> BufferFormat:
        return cls(config.cols, config.weight_width, config.weight_bytes, config.weight_depth)

    @classmethod
    def for_params(cls, config: EngineConfig, slots: int) -> BufferFormat:
        """``slots`` jobs' column parameters: a word per column record
        (:func:`convhw.descriptor.column_params`: 8 bytes, or 16 with ``float_output``)."""
        size = column_params(config).size
        return cls(1, 8 * size, size, slots * config.cols)

    @property
    def word_bytes(self) -> int:
        return self.lanes * self.element_bytes

    @property
    def word_width(self) -> int:
        return self.lanes * self.lane_width

    @property
    def address_width(self) -> int:
        return EngineConfig.address_width(self.depth)


def InputLoadCommand(config: EngineConfig, fmt: BufferFormat | None = None
                     ) -> data.StructLayout:
    """One window load (:func:`~convhw.gateware.window_walker.WindowCommand`) into ``fmt``,
    by default the input buffer of ``config``."""
    return WindowCommand(config, fmt or BufferFormat.for_input(config))


def BlockLoadCommand(fmt: BufferFormat) -> data.StructLayout:
    """One block load (weights, column parameters): ``words`` buffer words, contiguous in
    memory from ``addr``, written from word ``base`` of the buffer on."""
    return data.StructLayout({
        "addr": unsigned(32),
        "words": range(fmt.depth // 2 + 1),
        "base": unsigned(fmt.address_width),
    })


class BufferWriteSignature(wiring.Signature):
    """A write port of a buffer (:class:`BufferFormat`; an :class:`EngineConfig` means its
    input buffer), seen from the writer: ``data`` is written to word ``addr`` in a cycle with
    ``en`` high."""

    def __init__(self, fmt: BufferFormat | EngineConfig) -> None:
        if isinstance(fmt, EngineConfig):
            fmt = BufferFormat.for_input(fmt)
        super().__init__({
            "addr": Out(unsigned(fmt.address_width)),
            "data": Out(unsigned(fmt.word_width)),
            "en": Out(1),
        })


def _bits(value: int) -> int:
    return max(1, value.bit_length())


class InputLoader(wiring.Component):
    """Loads input windows from the memory port into the input buffer (see the module
    documentation).

    Parameters
    ----------
    config : EngineConfig
        Buffer shape, element bytes, coordinate widths and the memory's beat
        (``memory_width``).
    addr_width : int
        Bits of a memory byte address (12 to 64).
    queue_depth : int
        Ranges the walker may run ahead of the gearbox (at least 2): with one range per
        read command, about the read commands that can be in flight. Ranges of one beat keep
        a beat per cycle up to a memory latency of ``queue_depth - 5`` cycles (measured: 11
        at 16, 27 at 32).
    buffer : BufferFormat, optional
        The buffer it fills (default: the input buffer of ``config``).
    windowed : bool
        True: it loads windows (:func:`InputLoadCommand`). False: contiguous blocks
        (:func:`BlockLoadCommand`, the weights and the column parameters): the walker then
        emits a command's one range in the cycle after it takes the command, with neither
        the products nor the window walk (timing: :func:`convhw.timing.
        block_loader_start_cycles`).

    Members
    -------
    command : In(stream.Signature(InputLoadCommand(config)))
    read_cmd : Out(stream.Signature(MemoryPortSignature(memory_width, addr_width).cmd_layout))
    read_data : In(stream.Signature(MemoryPortSignature(...).read_data_layout))
    buffer : Out(BufferWriteSignature(config))
    done : Out(stream.Signature(StructLayout({"error": 1})))

    Timing
    ------
    A command taken in cycle 0, nothing stalled, a memory that answers a read command's
    transfer in cycle ``t`` with its first beat in cycle ``t + L``: the first read command is
    offered in cycle 20; the first word is written (``buffer.en``) in cycle ``22 + L`` when a
    word fits one beat; then, while the memory delivers a beat per cycle, one word per cycle
    when words are beat-sized (also across ranges, contiguous or strided), one word per cycle
    when they are smaller, and one beat per cycle when they are larger; ``done`` is valid from
    the cycle after the last write. The walker takes the next command when it has emitted the
    last range of this one; the next command's 16 start cycles are hidden when the walker is
    that far ahead of the data (ranges of several beats), and show between two commands of
    one-beat ranges, where the walker runs at the pace of the data.
    """

    def __init__(self, config: EngineConfig, addr_width: int = 32, *,
                 queue_depth: int = timing.LOADER_QUEUE,
                 buffer: BufferFormat | None = None, windowed: bool = True) -> None:
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        check_addr_width(addr_width)
        if not isinstance(queue_depth, int) or isinstance(queue_depth, bool):
            raise TypeError(f"queue_depth must be an integer, not {queue_depth!r}")
        if queue_depth < 2:
            raise ValueError(f"queue_depth must be at least 2, not {queue_depth!r}")
        if buffer is not None and not isinstance(buffer, BufferFormat):
            raise TypeError(f"buffer must be a BufferFormat or None, not {buffer!r}")
        self._config = config
        self._format = buffer or BufferFormat.for_input(config)
        self._addr_width = addr_width
        self._queue_depth = queue_depth
        self._windowed = bool(windowed)
        port = MemoryPortSignature(config.memory_width, addr_width)
        super().__init__({
            "command": In(stream.Signature(self.command_layout)),
            "read_cmd": Out(stream.Signature(port.cmd_layout)),
            "read_data": In(stream.Signature(port.read_data_layout)),
            "buffer": Out(BufferWriteSignature(self._format)),
            "done": Out(stream.Signature(data.StructLayout({"error": 1}))),
        })

    @property
    def config(self) -> EngineConfig:
        return self._config

    @property
    def addr_width(self) -> int:
        return self._addr_width

    @property
    def queue_depth(self) -> int:
        return self._queue_depth

    @property
    def windowed(self) -> bool:
        return self._windowed

    @property
    def command_layout(self) -> data.StructLayout:
        """:func:`InputLoadCommand` of the loader's config, or its :func:`BlockLoadCommand`."""
        if not self._windowed:
            return BlockLoadCommand(self._format)
        return InputLoadCommand(self._config, self._format)

    @property
    def word_bytes(self) -> int:
        """Bytes of one buffer word in memory (``rows * input_bytes`` for the input buffer)."""
        return self._format.word_bytes

    @property
    def window_beats(self) -> int:
        """Beats the gearbox keeps: as many as one word's bytes can span."""
        return -(-(self.word_bytes - 1) // self._config.beat_bytes) + 1

    # -- elaboration ------------------------------------------------------------------------------

    def elaborate(self, platform) -> Module:
        m = Module()
        config = self._config
        aw = self._addr_width
        beat = config.beat_bytes
        beat_log2 = beat.bit_length() - 1
        word = self.word_bytes
        size_width = range_size_width(config, self._format)

        ranges = data.StructLayout({"addr": unsigned(aw), "size": unsigned(size_width)})
        runs = data.StructLayout({
            "need": unsigned(_bits(beat - 1 + word)),   # (addr % beat) + word
            "q": unsigned(beat_log2),                   # (addr % beat + word - 1) % beat
            "size": unsigned(size_width),
            "first": unsigned(1), "last": unsigned(1),
            "start": unsigned(self._format.address_width), "empty": unsigned(1),
        })
        m.submodules.range_queue = range_queue = fifo.SyncFIFOBuffered(
            width=ranges.size, depth=timing.RANGE_QUEUE)
        m.submodules.run_queue = run_queue = fifo.SyncFIFOBuffered(
            width=runs.size, depth=self._queue_depth)

        if self._windowed:
            self._walker(m, range_queue, run_queue, ranges, runs)
        else:
            self._block_walker(m, range_queue, run_queue, ranges, runs)
        self._splitter(m, range_queue, ranges, size_width)
        self._gearbox(m, run_queue, runs, size_width)
        return m

    def _walker(self, m, range_queue, run_queue, ranges, runs) -> None:
        """The window walker's ranges into both queues (a marker into the run queue only)."""
        word = self.word_bytes
        beat = self._config.beat_bytes
        m.submodules.walker = walker = WindowWalker(self._config, self._addr_width,
                                                    self._format)
        wiring.connect(m, wiring.flipped(self.command), walker.command)
        out = walker.ranges
        r_range = data.View(ranges, range_queue.w_data)
        r_run = data.View(runs, run_queue.w_data)
        offset = out.payload.addr[:beat.bit_length() - 1]
        m.d.comb += [
            r_range.addr.eq(out.payload.addr),
            r_range.size.eq(out.payload.size),
            r_run.need.eq(offset + word),
            r_run.q.eq(offset + (word - 1)),
            r_run.size.eq(out.payload.size),
            r_run.first.eq(out.payload.first),
            r_run.last.eq(out.payload.last),
            r_run.start.eq(out.payload.start),
            r_run.empty.eq(out.payload.empty),
            out.ready.eq(run_queue.w_rdy & (range_queue.w_rdy | out.payload.empty)),
            range_queue.w_en.eq(out.valid & out.ready & ~out.payload.empty),
            run_queue.w_en.eq(out.valid & out.ready),
        ]

    def _block_walker(self, m, range_queue, run_queue, ranges, runs) -> None:
        """A block is one range: its size is the word count times a constant, registered with
        the command, and the range goes out in the next cycle."""
        beat = self._config.beat_bytes
        word = self.word_bytes
        cmd = Signal(self.command_layout)
        r_range = data.View(ranges, range_queue.w_data)
        r_run = data.View(runs, run_queue.w_data)
        size = Signal.like(r_range.size)
        offset = cmd.addr[:beat.bit_length() - 1]
        m.d.comb += [
            r_range.addr.eq(cmd.addr),
            r_range.size.eq(size),
            r_run.need.eq(offset + word),
            r_run.q.eq(offset + (word - 1)),
            r_run.size.eq(size),
            r_run.start.eq(cmd.base),
        ]
        # `first` and `last` are set in the states that write the run queue, not as constants:
        # bits of a signal that otherwise comes from processes, driven by a constant alone,
        # become an `always @*` block that reads nothing in Yosys's Verilog, which Verilator and
        # Icarus never run (the bits stay 0; checked by tests/test_rtl.py).
        marked = [r_run.first.eq(1), r_run.last.eq(1)]
        with m.FSM(name="walker"):
            with m.State("IDLE"):
                m.d.comb += self.command.ready.eq(1)
                with m.If(self.command.valid):
                    m.d.sync += [cmd.eq(self.command.payload),
                                 size.eq(self.command.payload.words * word)]
                    with m.If(self.command.payload.words == 0):
                        m.next = "MARKER"
                    with m.Else():
                        m.next = "RANGE"
            with m.State("RANGE"):
                push = range_queue.w_rdy & run_queue.w_rdy
                m.d.comb += [range_queue.w_en.eq(push), run_queue.w_en.eq(push), *marked]
                with m.If(push):
                    m.next = "IDLE"
            with m.State("MARKER"):
                m.d.comb += [r_run.empty.eq(1), run_queue.w_en.eq(run_queue.w_rdy), *marked]
                with m.If(run_queue.w_rdy):
                    m.next = "IDLE"

    def _splitter(self, m, range_queue, ranges, size_width) -> None:
        aw = self._addr_width
        beat = self._config.beat_bytes
        beat_log2 = beat.bit_length() - 1
        page_beats = BOUNDARY // beat
        page_log2 = page_beats.bit_length() - 1
        most = min(MAX_BEATS, page_beats)

        head = data.View(ranges, range_queue.r_data)
        page = Signal(aw - beat_log2 - page_log2)    # the current beat address, split at 4 KiB
        in_page = Signal(page_log2)
        page_left = Signal(range(page_beats + 1))   # beats from the current one to the page end
        left = Signal(size_width - beat_log2 + 1)   # beats of the range not yet commanded
        busy = Signal()

        # The next command: `cap` beats (to the page end or the 256-beat limit, kept in a
        # register), or the range's last `left` beats if no more. `last` compares only the
        # low bits of `left` with `cap`, the high bits with zero: no long carry before the
        # queue's read enable.
        cap = Signal(range(most + 1))
        last = Signal()
        cap_bits = most.bit_length()
        if len(left) > cap_bits:
            m.d.comb += last.eq((left[cap_bits:] == 0) & (left[:cap_bits] <= cap))
        else:
            m.d.comb += last.eq(left <= cap)

        def cap_of(beats):
            return Mux(beats >= most, most, beats)

        free = ~self.read_cmd.valid | self.read_cmd.ready
        advance = busy & free
        with m.If(self.read_cmd.ready):
            m.d.sync += self.read_cmd.valid.eq(0)
        with m.If(advance):
            m.d.sync += [
                self.read_cmd.valid.eq(1),
                self.read_cmd.payload.addr.eq(Cat(Const(0, beat_log2), in_page, page)),
                self.read_cmd.payload.len.eq(Mux(last, left, cap) - 1),
                left.eq(left - cap),
            ]
            with m.If(last):
                m.d.sync += busy.eq(0)
            with m.Elif(page_left <= most):
                m.d.sync += [page.eq(page + 1), in_page.eq(0), page_left.eq(page_beats),
                             cap.eq(most)]
            with m.Else():
                m.d.sync += [in_page.eq(in_page + most), page_left.eq(page_left - most),
                             cap.eq(cap_of(page_left - most))]

        load = (~busy | advance & last) & range_queue.r_rdy
        m.d.comb += range_queue.r_en.eq(load)
        with m.If(load):
            start = head.addr[beat_log2:]
            m.d.sync += [
                busy.eq(1),
                in_page.eq(start[:page_log2]),
                page.eq(start[page_log2:]),
                page_left.eq(page_beats - start[:page_log2]),
                cap.eq(cap_of(page_beats - start[:page_log2])),
                left.eq((head.addr[:beat_log2] + head.size + (beat - 1)) >> beat_log2),
            ]

    def _gearbox(self, m, run_queue, runs, size_width) -> None:
        config = self._config
        beat = config.beat_bytes
        beat_log2 = beat.bit_length() - 1
        word = self.word_bytes
        kept = self.window_beats

        head = data.View(runs, run_queue.r_data)
        active = Signal()                       # a range's words are being written
        need = Signal(signed(_bits(beat + word) + 1))
        q = Signal(beat_log2)
        size_left = Signal(size_width)
        one_left = Signal()                     # the range's last word is next
        range_last = Signal()                   # the range is the command's last
        window = Signal(8 * beat * kept)        # the last beats taken, the newest at the top
        word_data = Signal(8 * word)
        word_en = Signal()
        word_addr = Signal.like(self.buffer.addr)
        next_addr = Signal.like(self.buffer.addr)
        cmd_error = Signal()
        end_d1 = Signal()
        error_d1 = Signal()

        # `need`'s comparisons, registered with it: the next value is one of four sums of the
        # registered `need` (a word emitted, a beat taken, both, neither), each compared in
        # parallel, so that no adder or comparison follows the handshake that picks one (this
        # loop, from `done` through `emit`, `accept` and `take` back to `need`, was the list
        # engine's critical path on the ECP5).
        need_le0 = Signal(init=1)               # need <= 0
        need_gt_mword = Signal(init=1)          # need > -word
        can_end = ~end_d1 & ~self.done.valid
        emit = active & need_le0 & (~(one_left & range_last) | can_end)
        emit_last = emit & one_left
        end_emit = emit_last & range_last
        finishing = ~active | emit_last
        load_run = finishing & run_queue.r_rdy & ~head.empty
        load_marker = finishing & run_queue.r_rdy & head.empty & can_end & ~end_emit
        end_event = end_emit | load_marker
        accept = Mux(load_run, 1,
                     active & ~emit_last & Mux(emit, need_gt_mword, ~need_le0))
        take = accept & self.read_data.valid
        m.d.comb += [run_queue.r_en.eq(load_run | load_marker), self.read_data.ready.eq(accept)]

        with m.If(take):
            m.d.sync += window.eq(Cat(window[8 * beat:], self.read_data.payload.data))

        # The word ends at byte q of the newest beat: the bytes [lowest + q, lowest + q + word)
        # of the window, lowest = (kept - 1) * beat + 1 - word. One mux level per bit of q.
        lowest = (kept - 1) * beat + 1 - word
        select = window[8 * lowest:8 * (lowest + beat - 1 + word)]
        for bit in range(beat_log2):
            shift = 8 << bit
            select = Mux(q[bit], select[shift:], select[:len(select) - shift])
        assert len(select) == 8 * word

        m.d.sync += word_en.eq(emit)
        with m.If(emit):
            m.d.sync += [
                word_data.eq(select),
                word_addr.eq(next_addr),
                next_addr.eq(next_addr + 1),
                size_left.eq(size_left - word),
                one_left.eq(size_left == 2 * word),
                q.eq(q + word % beat),
            ]
        def successor(value):
            """``value`` as a signal, with its comparisons."""
            sig = Signal.like(need, name=None)
            m.d.comb += sig.eq(value)
            return sig, sig <= 0, sig > -word
        # indexed by Cat(emit, take) or, for a range being loaded, by take
        following = [successor(need), successor(need + word), successor(need - beat),
                     successor(need + word - beat)]
        loading = [successor(head.need), successor(head.need - beat)]

        def advance(choices, select):
            with m.Switch(select):
                for i, (value, le0, gt_mword) in enumerate(choices):
                    with m.Case(i):
                        m.d.sync += [need.eq(value), need_le0.eq(le0),
                                     need_gt_mword.eq(gt_mword)]

        with m.If(load_run):
            advance(loading, take)
            m.d.sync += [
                active.eq(1),
                q.eq(head.q),
                size_left.eq(head.size),
                one_left.eq(head.size == word),
                range_last.eq(head.last),
            ]
            with m.If(head.first):
                m.d.sync += next_addr.eq(head.start)
        with m.Elif(emit_last):
            m.d.sync += active.eq(0)
        with m.Else():
            advance(following, Cat(emit, take))

        # -- errors and done ----------------------------------------------------------------------
        beat_error = take & self.read_data.payload.error
        m.d.sync += end_d1.eq(end_event)
        with m.If(end_event):
            # This cycle's beat, if any, is the next command's.
            m.d.sync += [error_d1.eq(cmd_error), cmd_error.eq(beat_error)]
        with m.Else():
            m.d.sync += cmd_error.eq(cmd_error | beat_error)
        with m.If(end_d1):
            m.d.sync += [self.done.valid.eq(1), self.done.payload.error.eq(error_d1)]
        with m.Elif(self.done.ready):
            m.d.sync += self.done.valid.eq(0)

        fmt = self._format
        ib, iw = fmt.element_bytes, fmt.lane_width
        m.d.comb += [
            self.buffer.en.eq(word_en),
            self.buffer.addr.eq(word_addr),
            self.buffer.data.eq(Cat(word_data[8 * ib * lane:8 * ib * lane + iw]
                                    for lane in range(fmt.lanes))),
        ]
