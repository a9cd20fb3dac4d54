"""The input loader: fetches a job's input window from memory into one bank of the input buffer.

It does exactly what :func:`convhw.compiler.list_model.gather_window` does. A window is the
product of two segments per axis (``seg0`` then ``seg1``; an empty one is skipped); its pixels
are visited z, then y, then x, and each pixel's ``in_chunks`` buffer words (``rows`` elements
each) are read from ``addr + z*plane_pitch + y*row_pitch + x*pixel_pitch``. When
``pixel_pitch`` equals a pixel's run of bytes, a whole x segment is one contiguous range. The
words are written into the bank named by the command from its first word on, in that order.

Structure (four stages, each decoupled from the next by a queue, so that several reads are in
flight and the memory's latency is hidden behind the data of earlier ranges):

1. **Walker.** Takes a command, computes the nine products it needs with one pipelined
   multiplier, one product per cycle (``in_chunks`` times the word's bytes; each axis's two
   segment starts times its pitch; the run of bytes of each x segment), then walks the window
   with adders only and emits one *range* per cycle: one per pixel, or one per x segment when
   the pixels are contiguous. Moving to the next row of a y segment costs no cycle; to a y
   segment's start one, to a plane's two; a command's start (products and first addresses)
   16. A range goes to both queues below; a command without words emits one empty marker to
   the data queue only, so that it still gets its ``done``.
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
from .memory_port import BOUNDARY, MAX_BEATS, MemoryPortSignature, check_addr_width
from .multiplier import Multiplier

__all__ = ["BlockLoadCommand", "BufferFormat", "BufferWriteSignature", "InputLoadCommand",
           "InputLoader", "WindowSegments"]

#: Register stages of the walker's multiplier (operands, partial products, sum).
MULTIPLIER_STAGES = timing.LOADER_MULTIPLIER_STAGES


def WindowSegments(config: EngineConfig) -> data.StructLayout:
    """One axis of a window: two segments of input coordinates (``seg1_len`` 0: none)."""
    cw = config.coord_width
    return data.StructLayout({"seg0_start": unsigned(cw), "seg0_len": unsigned(cw),
                              "seg1_start": unsigned(cw), "seg1_len": unsigned(cw)})


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
        """``slots`` jobs' column parameters: a word per column record (8 bytes)."""
        return cls(1, 64, 8, slots * config.cols)

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
    """One window load: the descriptor's ``INPUT_ADDR``, the three input pitches, ``IN_CHUNKS``,
    each axis's window segments, and the input bank to fill."""
    return data.StructLayout({
        "addr": unsigned(32),
        "pixel_pitch": unsigned(32),
        "row_pitch": unsigned(32),
        "plane_pitch": unsigned(32),
        "in_chunks": range((fmt or BufferFormat.for_input(config)).depth // 2 + 1),
        "z": WindowSegments(config),
        "y": WindowSegments(config),
        "x": WindowSegments(config),
        "bank": unsigned(1),
        # The first word written: the bank's first plus `base`.
        "base": unsigned((fmt or BufferFormat.for_input(config)).address_width),
    })


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
        half = self._format.depth // 2
        cw = config.coord_width
        chunks_width = _bits(half)
        # A range's bytes: (2**cw - 1) pixels of (2**chunks_width - 1) words of `word` bytes.
        size_width = cw + chunks_width + _bits(word)

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
            self._walker(m, range_queue, run_queue, ranges, runs, size_width)
        else:
            self._block_walker(m, range_queue, run_queue, ranges, runs)
        self._splitter(m, range_queue, ranges, size_width)
        self._gearbox(m, run_queue, runs, size_width)
        return m

    def _walker(self, m, range_queue, run_queue, ranges, runs, size_width) -> None:
        config = self._config
        aw = self._addr_width
        beat = config.beat_bytes
        word = self.word_bytes
        cw = config.coord_width

        cmd = Signal(self.command_layout)
        base = Signal(aw)                            # INPUT_ADDR, zero-extended or cut
        m.d.comb += base.eq(cmd.addr)
        # The buffer word the command's first word goes to: its bank's first, plus `base`.
        first_word = Signal(self._format.address_width)
        half = self._format.depth // 2
        m.d.sync += first_word.eq(Mux(cmd.bank, half, 0) + cmd.base)

        # -- the products, one multiplier ---------------------------------------------------------
        b_width = max(cw, _bits(word))
        run = Signal(size_width)                     # in_chunks * word: a pixel's bytes
        offsets = {(axis, seg): Signal(aw, name=f"offset_{axis}{seg}")
                   for axis in "zyx" for seg in (0, 1)}
        seg_bytes = [Signal(size_width, name=f"seg_bytes{seg}") for seg in (0, 1)]
        pitch = {"z": cmd.plane_pitch, "y": cmd.row_pitch, "x": cmd.pixel_pitch}
        products = [(cmd.in_chunks, Const(word, b_width), run)]
        for axis in "zyx":
            for seg in (0, 1):
                products.append((pitch[axis], getattr(cmd, axis)[f"seg{seg}_start"],
                                 offsets[axis, seg]))
        # `run` is written MULTIPLIER_STAGES cycles after step 0: long before these read it.
        assert len(products) > MULTIPLIER_STAGES
        for seg in (0, 1):
            products.append((run, cmd.x[f"seg{seg}_len"], seg_bytes[seg]))
        assert len(products) == timing.LOADER_PRODUCTS    # the cycle model counts them

        step = Signal(range(len(products) + 1), init=len(products))
        op_a = Signal(32)
        op_b = Signal(b_width)
        product = Signal(32 + b_width)
        tags = [Signal(range(len(products) + 1), name=f"tag{i}", init=len(products))
                for i in range(MULTIPLIER_STAGES)]
        with m.Switch(step):
            for index, (a, b, _) in enumerate(products):
                with m.Case(index):
                    m.d.comb += [op_a.eq(a), op_b.eq(b)]
        # The two 16 x b_width halves of the 32-bit operand, each a Multiplier whose operand
        # and product registers are a pipeline stage each: on the ECP5 they are the DSP block's
        # own (registers in the fabric made the product's trip through the block the list
        # engine's critical path, 13.2 ns of which 8.8 routing). Operands are unsigned: a zero
        # above each makes it a non-negative signed one.
        partials = []
        for name, half in (("lo", op_a[:16]), ("hi", op_a[16:])):
            multiplier = Multiplier(17, b_width + 1)
            m.submodules[f"multiplier_{name}"] = multiplier
            m.d.comb += [multiplier.a.eq(Cat(half, Const(0, 1))),
                         multiplier.b.eq(Cat(op_b, Const(0, 1)))]
            partials.append(multiplier.p[:16 + b_width])
        partial_lo, partial_hi = partials
        m.d.sync += [
            tags[0].eq(step),
            tags[1].eq(tags[0]),
            product.eq(partial_lo + (partial_hi << 16)),
            tags[2].eq(tags[1]),
        ]
        with m.Switch(tags[2]):
            for index, (_, _, target) in enumerate(products):
                with m.Case(index):
                    m.d.sync += target.eq(product)

        # -- the walk -----------------------------------------------------------------------------
        # Every decision of the walk is taken on flags held in registers (set while the
        # products are computed, or with the counter they describe), so that the control in
        # front of the address adders is a LUT or two deep.
        lens = {axis: [getattr(cmd, axis)[f"seg{s}_len"] for s in (0, 1)] for axis in "zyx"}
        skip0 = {axis: Signal(name=f"skip0_{axis}") for axis in "zyx"}     # seg0 is empty
        none1 = {axis: Signal(name=f"none1_{axis}") for axis in "zyx"}     # seg1 is empty
        single = {(axis, s): Signal(name=f"single_{axis}{s}")              # a 1-long segment
                  for axis in "zyx" for s in (0, 1)}
        empty = Signal()
        contiguous = Signal()
        seg = {axis: Signal(name=f"seg_{axis}") for axis in "zyx"}
        left = {axis: Signal(cw, name=f"left_{axis}") for axis in "zyx"}
        one = {axis: Signal(name=f"one_{axis}") for axis in "zyx"}         # left == 1
        plane, row, pixel = Signal(aw), Signal(aw), Signal(aw)
        row_first = Signal(aw)                      # the row's first pixel
        first = Signal()

        def enter(axis, s):
            """Statements that start segment ``s`` (a value) of ``axis``."""
            return [seg[axis].eq(s),
                    left[axis].eq(Mux(s, lens[axis][1], lens[axis][0])),
                    one[axis].eq(Mux(s, single[axis, 1], single[axis, 0]))]

        def step_down(axis):
            return [left[axis].eq(left[axis] - 1), one[axis].eq(left[axis] == 2)]

        def last_seg(axis):
            return seg[axis] | none1[axis]

        seg_end = contiguous | one["x"]
        row_end = seg_end & last_seg("x")
        plane_end = row_end & one["y"] & last_seg("y")
        window_end = plane_end & one["z"] & last_seg("z")

        r_range = data.View(ranges, range_queue.w_data)
        r_run = data.View(runs, run_queue.w_data)
        offset = pixel[:beat.bit_length() - 1]
        m.d.comb += [
            r_range.addr.eq(pixel),
            r_range.size.eq(Mux(contiguous, Mux(seg["x"], seg_bytes[1], seg_bytes[0]), run)),
            r_run.need.eq(offset + word),
            r_run.q.eq(offset + (word - 1)),
            r_run.size.eq(r_range.size),
            r_run.first.eq(first),
            r_run.last.eq(window_end),
            r_run.start.eq(first_word),
        ]

        with m.FSM(name="walker"):
            with m.State("IDLE"):
                m.d.comb += self.command.ready.eq(1)
                with m.If(self.command.valid):
                    m.d.sync += [cmd.eq(self.command.payload), step.eq(0)]
                    m.next = "MULTIPLY"
            with m.State("MULTIPLY"):
                with m.If(step != len(products)):
                    m.d.sync += step.eq(step + 1)
                for axis in "zyx":
                    m.d.sync += [skip0[axis].eq(lens[axis][0] == 0),
                                 none1[axis].eq(lens[axis][1] == 0)]
                    m.d.sync += [single[axis, s].eq(lens[axis][s] == 1) for s in (0, 1)]
                m.d.sync += empty.eq((cmd.in_chunks == 0)
                                     | (lens["z"][0] == 0) & (lens["z"][1] == 0)
                                     | (lens["y"][0] == 0) & (lens["y"][1] == 0)
                                     | (lens["x"][0] == 0) & (lens["x"][1] == 0))
                with m.If(tags[2] == len(products) - 1):
                    m.next = "START"
            with m.State("START"):
                m.d.sync += [contiguous.eq(cmd.pixel_pitch == run), first.eq(1)]
                m.d.sync += enter("z", skip0["z"])
                m.d.sync += plane.eq(base + Mux(skip0["z"], offsets["z", 1], offsets["z", 0]))
                m.next = "PLANE"
                with m.If(empty):
                    m.next = "MARKER"
            with m.State("PLANE"):
                m.d.sync += enter("y", skip0["y"])
                m.d.sync += row.eq(plane + Mux(skip0["y"], offsets["y", 1], offsets["y", 0]))
                m.next = "ROW"
            with m.State("ROW"):
                m.d.sync += enter("x", skip0["x"])
                row_start = row + Mux(skip0["x"], offsets["x", 1], offsets["x", 0])
                m.d.sync += [pixel.eq(row_start), row_first.eq(row_start)]
                m.next = "RANGE"
            with m.State("RANGE"):
                push = range_queue.w_rdy & run_queue.w_rdy
                m.d.comb += [range_queue.w_en.eq(push), run_queue.w_en.eq(push)]
                with m.If(push):
                    m.d.sync += first.eq(0)
                    with m.If(~seg_end):
                        m.d.sync += step_down("x")
                        m.d.sync += pixel.eq(pixel + cmd.pixel_pitch)
                    with m.Elif(~row_end):
                        m.d.sync += enter("x", 1)
                        m.d.sync += pixel.eq(row + offsets["x", 1])
                    with m.Elif(~one["y"]):
                        # The next row of the segment, without a cycle in ROW.
                        m.d.sync += step_down("y") + enter("x", skip0["x"])
                        m.d.sync += [row.eq(row + cmd.row_pitch),
                                     row_first.eq(row_first + cmd.row_pitch),
                                     pixel.eq(row_first + cmd.row_pitch)]
                    with m.Elif(~last_seg("y")):
                        m.d.sync += enter("y", 1)
                        m.d.sync += row.eq(plane + offsets["y", 1])
                        m.next = "ROW"
                    with m.Elif(~one["z"]):
                        m.d.sync += step_down("z")
                        m.d.sync += plane.eq(plane + cmd.plane_pitch)
                        m.next = "PLANE"
                    with m.Elif(~last_seg("z")):
                        m.d.sync += enter("z", 1)
                        m.d.sync += plane.eq(base + offsets["z", 1])
                        m.next = "PLANE"
                    with m.Else():
                        m.next = "IDLE"
            with m.State("MARKER"):
                m.d.comb += [r_run.first.eq(1), r_run.last.eq(1), r_run.empty.eq(1),
                             run_queue.w_en.eq(run_queue.w_rdy)]
                with m.If(run_queue.w_rdy):
                    m.next = "IDLE"

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
