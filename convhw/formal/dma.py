"""Address bounds of the engine's memory masters (the DMA) and of its buffer writes.

:class:`LoaderHarness` is :class:`~convhw.gateware.input_loader.InputLoader` in its block form
(``windowed=False``: the weight and column-parameter loads) with every command field free, a
memory that answers free data and free errors at any pace but only for beats it was asked
for, and free back-pressure on every channel. The command's region is the bytes
``[addr, addr + words * word_bytes)``, as whole beats: ``R`` beats from ``addr`` rounded down
to a beat. Properties, for every command (one at a time: the next is offered after the
previous one's ``done``):

* read commands are **contiguous, in order and inside the region**: the first starts at the
  region's first beat, each next one where the last ended, and the beats commanded never
  exceed ``R``; none crosses a 4 KiB boundary; none is issued without a command;
* buffer writes go **to the words the command names, in order**: the ``i``-th write of a
  command is word ``base + i`` (modulo the buffer), never more than ``words`` of them, none
  without a command;
* ``done`` comes **only when all is done**: ``words`` words written, exactly ``R`` beats
  commanded and every beat received, and its ``error`` is set exactly when a beat of the
  command came back with an error.

The splitter and the gearbox checked here are the window loader's too
(``InputLoader(windowed=True)`` differs only in its walker, which emits one range per pixel or
row instead of one per command).

:class:`OutputWriterHarness` is :class:`~convhw.gateware.output_writer.OutputWriter` with
every command field free (bank, tile, pitches, address, channels, modes), free accumulator
data and a memory that answers write commands, in order, with free errors. Its region is the
tile's bounding box in memory: from ``addr + out_start . pitches`` to the last entry's last
byte, ``(len - 1) . pitches + out_channels * element bytes`` further on. Properties:

* every **write command** is a legal burst (beat-aligned, no 4 KiB crossing) whose beats
  overlap the region, and every **strobed byte** of every beat lies inside the region (no
  byte outside it is ever written);
* the **accumulator reads** stay in the command's bank and below the tile's entry count;
* ``done`` comes with ``error`` set exactly when a response of the command was an error, and
  after the last beat of the command.

The window loader (``InputLoader(windowed=True)``) differs from the block loader only in its
walker, :class:`~convhw.gateware.window_walker.WindowWalker`, which :class:`WalkerHarness`
checks alone, its command free (segments from 0..3, at most 2 long, at most 2 words a pixel;
pitches and address below ``2**addr_width``), its output's back-pressure free, in two halves:

* ``part="products"``: while it walks, its multiplier's results (read through probes) are the
  command's ``start * pitch`` per axis and segment, ``in_chunks * word_bytes`` and that times
  each x segment's length;
* ``part="walk"``, with the multiplier's result cut free (a ``cutpoint``, so that the query
  has no multiplier in it): the ranges are exactly those of an independent reference walk
  (z, then y, then x, empty segments skipped, a whole x segment a range when the pixels are
  contiguous), each at ``addr + sum over the axes of (the walker's start product for the
  pixel's segment + its step in the segment * pitch)``, modulo ``2**addr_width``, one pixel's
  or one segment's bytes long; one range per pixel (per x segment), the last one marked, an
  empty command one marker; the command's first buffer word on every range; no command taken
  while ranges are owed.

Together: every range is a pixel of the window the descriptor names, at the address of the
channels-last layout. Both in bounded model checking from reset (the queues and counters
between the stages have far more states than an induction could tie to the ports).
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cat, Cover, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In

from ..config import EngineConfig
from ..gateware.input_loader import BufferFormat, InputLoader
from ..gateware.memory_port import BOUNDARY, MemoryPortSignature
from ..gateware.output_writer import OutputWriter
from ..gateware.window_walker import WindowWalker
from .common import no_reset, probe_members

__all__ = ["LoaderHarness", "OutputWriterHarness", "WalkerHarness"]


class LoaderHarness(wiring.Component):
    """The block loader for ``buffer`` (``"weights"`` or ``"params"``) of ``config``, on a
    memory of ``addr_width`` address bits."""

    def __init__(self, config: EngineConfig, *, buffer: str = "weights", addr_width: int = 13,
                 queue_depth: int = 2, max_outstanding: int = 64, short: int = 0) -> None:
        # `short`: the region taken as that many beats shorter than it is, a false property
        # (for the tests: the runner must find the counterexample).
        if buffer == "weights":
            fmt = BufferFormat.for_weights(config)
        elif buffer == "params":
            fmt = BufferFormat.for_params(config, slots=2)
        else:
            raise ValueError(f"buffer must be 'weights' or 'params', not {buffer!r}")
        self.dut = InputLoader(config, addr_width, buffer=fmt, windowed=False,
                               queue_depth=queue_depth)
        self.map_memories = True
        self._max_outstanding = max_outstanding
        self._short = short
        super().__init__({
            "command": In(stream.Signature(self.dut.command_layout)),
            "read_cmd_ready": In(1),
            "read_data": In(stream.Signature(self.dut.read_data.payload.shape())),
            "done_ready": In(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        no_reset(m)
        m.submodules.dut = dut = self.dut
        config = dut.config
        aw = dut.addr_width
        beat = config.beat_bytes
        beat_log2 = beat.bit_length() - 1
        word = dut.word_bytes
        buffer_width = len(dut.buffer.addr)
        region_width = aw + 1

        wiring.connect(m, wiring.flipped(self.command), dut.command)
        wiring.connect(m, wiring.flipped(self.read_data), dut.read_data)
        m.d.comb += [dut.read_cmd.ready.eq(self.read_cmd_ready),
                     dut.done.ready.eq(self.done_ready)]

        taken = self.command.valid & self.command.ready
        cmd = self.command.payload
        read = dut.read_cmd.valid & dut.read_cmd.ready
        beat_in = self.read_data.valid & self.read_data.ready
        done = dut.done.valid & dut.done.ready

        # -- what the command asked for -------------------------------------------------------
        pending = Signal()           # a command taken, its done not yet
        words = Signal.like(cmd.words)
        base = Signal(buffer_width)
        region_beats = Signal(region_width)
        next_addr = Signal(aw)       # where the next read command must start
        commanded = Signal(region_width)
        written = Signal.like(cmd.words)
        outstanding = Signal(range(self._max_outstanding + 257))
        error_seen = Signal()

        with m.If(taken):
            m.d.sync += [
                pending.eq(1), words.eq(cmd.words), base.eq(cmd.base),
                region_beats.eq(Mux(cmd.words == 0, 0,
                                    (cmd.addr[:beat_log2] + cmd.words * word + (beat - 1))
                                    >> beat_log2)),
                next_addr.eq(cmd.addr[beat_log2:aw] << beat_log2),
                commanded.eq(0), written.eq(0), error_seen.eq(0),
            ]
        m.d.comb += Assume(~self.command.valid | ~pending)   # one command at a time
        with m.If(done):
            m.d.sync += pending.eq(0)

        # -- the memory: beats only for commands, in any pace --------------------------------
        length = dut.read_cmd.payload.len + 1
        m.d.sync += outstanding.eq(outstanding + (read * length) - beat_in)
        m.d.comb += Assume(~self.read_data.valid | (outstanding != 0))
        # (a bounded number of beats in flight keeps the counter's width honest)
        m.d.comb += Assume(~dut.read_cmd.valid | ~self.read_cmd_ready
                           | (outstanding + length <= self._max_outstanding + 256))
        with m.If(beat_in & self.read_data.payload.error):
            m.d.sync += error_seen.eq(1)

        # -- read commands ---------------------------------------------------------------------
        addr = dut.read_cmd.payload.addr
        with m.If(dut.read_cmd.valid):
            m.d.comb += [
                Assert(pending),
                Assert(addr[:beat_log2] == 0),
                Assert(addr == next_addr),
                Assert(commanded + length + self._short <= region_beats),
                Assert(addr[:BOUNDARY.bit_length() - 1] + length * beat <= BOUNDARY),
            ]
        with m.If(read):
            m.d.sync += [next_addr.eq(next_addr + length * beat),
                         commanded.eq(commanded + length)]

        # -- buffer writes ---------------------------------------------------------------------
        with m.If(dut.buffer.en):
            m.d.comb += [Assert(pending), Assert(written < words),
                         Assert(dut.buffer.addr == (base + written)[:buffer_width])]
            m.d.sync += written.eq(written + 1)

        # -- done ------------------------------------------------------------------------------
        with m.If(dut.done.valid):
            m.d.comb += [Assert(pending), Assert(written == words),
                         Assert(commanded == region_beats), Assert(outstanding == 0),
                         Assert(dut.done.payload.error == error_seen)]

        # Not vacuous: a command of several bursts (a 4 KiB page crossed) done, with an error.
        bursts = Signal(4)
        with m.If(taken):
            m.d.sync += bursts.eq(0)
        with m.Elif(read & (bursts != 15)):
            m.d.sync += bursts.eq(bursts + 1)
        m.d.comb += [Cover(done & (bursts >= 2) & dut.done.payload.error),
                     Cover(done & (words == 0)),
                     Cover(done & (words > 1))]
        return m


class OutputWriterHarness(wiring.Component):
    """The output writer of ``config`` on a memory of ``addr_width`` address bits, one command
    at a time, its accumulator data free (see the module documentation)."""

    def __init__(self, config: EngineConfig, *, addr_width: int = 13, acc_read_latency: int = 1,
                 max_len: tuple[int, int, int] = (2, 2, 4), max_start: int = 1,
                 short: int = 0) -> None:
        self.dut = OutputWriter(config, addr_width, acc_read_latency)
        self.map_memories = True
        self._max_len = max_len
        self._max_start = max_start
        self._short = short
        port = MemoryPortSignature(config.memory_width, addr_width)
        super().__init__({
            "command": In(stream.Signature(self.dut.command_layout)),
            "acc_data": In(self.dut.acc_data.shape()),
            "write_cmd_ready": In(1),
            "write_data_ready": In(1),
            "write_resp": In(stream.Signature(port.write_resp_layout)),
            "done_ready": In(1),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        no_reset(m)
        m.submodules.dut = dut = self.dut
        config = dut.config
        aw = dut.addr_width
        beat = config.beat_bytes
        beat_log2 = beat.bit_length() - 1
        wide = aw + 10

        wiring.connect(m, wiring.flipped(self.command), dut.command)
        wiring.connect(m, wiring.flipped(self.write_resp), dut.write_resp)
        m.d.comb += [dut.acc_data.eq(self.acc_data),
                     dut.write_cmd.ready.eq(self.write_cmd_ready),
                     dut.write_data.ready.eq(self.write_data_ready),
                     dut.done.ready.eq(self.done_ready)]
        cmd = self.command.payload
        taken = self.command.valid & self.command.ready
        done = dut.done.valid & dut.done.ready

        # -- the command's region: the tile's bounding box --------------------------------------
        # Pitches below 2**addr_width (a larger one only wraps around the address space) and a
        # tile that fits a bank: the writer's preconditions.
        m.d.comb += [Assume(~self.command.valid | (cmd[p] < 2 ** aw))
                     for p in ("pixel_pitch", "row_pitch", "plane_pitch")]
        # The tile: at most `max_len` entries per axis (z, y, x) from `out_start` at most
        # `max_start`, so that the bounding box's products are small ones (the solver does
        # not get through the writer's shift-and-add against a full multiplier); every
        # pitch, the address, the channels and the modes stay free.
        for axis, most in zip(("z", "y", "x"), self._max_len):
            m.d.comb += Assume(~self.command.valid | (cmd[axis].out_len <= most)
                               & (cmd[axis].out_start <= self._max_start))
        len_bits = [max(1, (most - 1).bit_length()) for most in self._max_len]
        start_bits = max(1, self._max_start.bit_length())

        def product(axis, pitch, of_len):
            field = (cmd[axis].out_len - 1) if of_len else cmd[axis].out_start
            bits = len_bits["zyx".index(axis)] if of_len else start_bits
            return field[:bits] * cmd[pitch]

        channels = Mux(cmd.out_channels > config.cols, config.cols, cmd.out_channels)
        entry = Mux(cmd.requantize, channels * config.input_bytes, channels * config.raw_bytes)
        pending = Signal()
        base = Signal(aw)
        extent = Signal(wide)        # bytes from base to the last entry's end
        writes = Signal()            # the command writes something
        pitches = {"z": "plane_pitch", "y": "row_pitch", "x": "pixel_pitch"}
        with m.If(taken):
            m.d.sync += [
                pending.eq(1),
                base.eq(cmd.addr + sum(product(a, pitches[a], False) for a in "zyx")),
                extent.eq(sum(product(a, pitches[a], True) for a in "zyx") + entry),
                writes.eq((cmd.z.out_len != 0) & (cmd.y.out_len != 0) & (cmd.x.out_len != 0)
                          & (cmd.out_channels != 0)),
            ]
        m.d.comb += Assume(~self.command.valid | ~pending)   # one command at a time
        with m.If(done):
            m.d.sync += pending.eq(0)

        # -- the memory: write commands queued (two), beats addressed from them -----------------
        wcmd = dut.write_cmd.payload
        q_valid = Signal(2)
        q_addr = [Signal(aw, name=f"q_addr{i}") for i in range(2)]
        q_len = [Signal(8, name=f"q_len{i}") for i in range(2)]
        cur_addr = Signal(aw)
        cur_left = Signal(9)         # beats of the current command still to come
        have = cur_left != 0
        beat_addr = Mux(have, cur_addr, q_addr[0])
        beat_last = Mux(have, cur_left == 1, q_len[0] == 0)
        cmd_in = dut.write_cmd.valid & dut.write_cmd.ready
        beat_in = dut.write_data.valid & dut.write_data.ready
        m.d.comb += [Assume(~self.write_cmd_ready | ~q_valid[1]),
                     Assume(~self.write_data_ready | have | q_valid[0])]
        pop = beat_in & ~have
        # The queue: entry 0 is the oldest.
        with m.If(pop):
            m.d.sync += [q_valid.eq(q_valid >> 1), q_addr[0].eq(q_addr[1]),
                         q_len[0].eq(q_len[1])]
            with m.If(cmd_in):
                with m.If(q_valid[1]):
                    m.d.sync += [q_addr[1].eq(wcmd.addr), q_len[1].eq(wcmd.len)]
                with m.Else():
                    m.d.sync += [q_valid.eq(1), q_addr[0].eq(wcmd.addr), q_len[0].eq(wcmd.len)]
                with m.If(q_valid[1]):
                    m.d.sync += q_valid.eq(0b11)
        with m.Elif(cmd_in):
            with m.If(q_valid[0]):
                m.d.sync += [q_valid.eq(0b11), q_addr[1].eq(wcmd.addr), q_len[1].eq(wcmd.len)]
            with m.Else():
                m.d.sync += [q_valid.eq(0b01), q_addr[0].eq(wcmd.addr), q_len[0].eq(wcmd.len)]
        with m.If(beat_in):
            with m.If(have):
                m.d.sync += [cur_addr.eq(cur_addr + beat), cur_left.eq(cur_left - 1)]
            with m.Else():
                m.d.sync += [cur_addr.eq(q_addr[0] + beat), cur_left.eq(q_len[0])]
        # Responses: one per command whose beats are all in, in order.
        owed = Signal(4)
        resp_in = self.write_resp.valid & self.write_resp.ready
        m.d.sync += owed.eq(owed + (beat_in & beat_last) - resp_in)
        m.d.comb += Assume(~self.write_resp.valid | (owed != 0))
        error_seen = Signal()
        with m.If(taken):
            m.d.sync += error_seen.eq(0)
        with m.Elif(resp_in & self.write_resp.payload.error):
            m.d.sync += error_seen.eq(1)

        # -- properties ----------------------------------------------------------------------
        page_bits = BOUNDARY.bit_length() - 1
        with m.If(dut.write_cmd.valid):
            m.d.comb += [Assert(pending & writes), Assert(wcmd.addr[:beat_log2] == 0),
                         Assert(wcmd.addr[:page_bits] + (wcmd.len + 1) * beat <= BOUNDARY)]
        with m.If(dut.write_data.valid):
            m.d.comb += Assert(pending & writes)
        with m.If(beat_in):
            m.d.comb += Assert(dut.write_data.payload.last == beat_last)
            for lane in range(beat):
                offset = Signal(aw, name=f"offset{lane}")
                m.d.comb += offset.eq(beat_addr + lane - base)
                with m.If(dut.write_data.payload.strb[lane] & (extent < 2 ** aw)):
                    m.d.comb += Assert(offset + self._short < extent)
        with m.If(dut.done.valid):
            m.d.comb += [Assert(pending), Assert(~have & ~q_valid[0] & (owed == 0)),
                         Assert(dut.done.payload.error == error_seen)]
        m.d.comb += [Cover(done & writes & (extent > beat)),
                     Cover(beat_in & (beat_addr[:page_bits] == 0) & (cur_left == 0)
                           & (beat_addr != base))]
        return m


class WalkerHarness(wiring.Component):
    """The window loader's walker (:class:`~convhw.gateware.window_walker.WindowWalker`) of
    the input buffer of ``config`` on a memory of ``addr_width`` address bits, one command at a
    time, with free back-pressure (see the module documentation).

    ``part`` is one half of the proof: ``"products"`` asserts that the walker's products (its
    multiplier's results, read through probes) are the command's ``start * pitch``,
    ``in_chunks * word_bytes`` and ``run * x length`` while it walks; ``"walk"`` cuts the
    multiplier's result free and asserts that the ranges are the reference walk's in terms of
    those products, whatever they are. Split, no query has to relate a multiplier's bits to
    additions of its results. ``short``: the first range (the products half: every start
    product) expected that many bytes further on, a false property (for the tests).
    """

    PARTS = ("products", "walk")

    def __init__(self, config: EngineConfig, *, part: str = "walk", addr_width: int = 13,
                 max_start: int = 3, max_chunks: int = 2, short: int = 0) -> None:
        if part not in self.PARTS:
            raise ValueError(f"part must be one of {self.PARTS}, not {part!r}")
        fmt = BufferFormat.for_input(config)
        self.dut = WindowWalker(config, addr_width, fmt)
        self._part = part
        self._max_start = max_start
        self._max_chunks = max_chunks
        self._short = short
        size_width = len(self.dut.ranges.payload.size)
        probes = {f"probe_offset_{axis}{s}": (f"dut.offset_{axis}{s}", addr_width)
                  for axis in "zyx" for s in (0, 1)}
        probes["probe_run"] = ("dut.run", size_width)
        probes.update({f"probe_seg_bytes{s}": (f"dut.seg_bytes{s}", size_width) for s in (0, 1)})
        if part == "walk":
            # The walk's partial sums, for the lemmas that keep each cycle's query local.
            probes.update({f"probe_{name}": (f"dut.{name}", addr_width)
                           for name in ("plane", "row", "row_first")})
        self.probes = {port: path for port, (path, _) in probes.items()}
        # The ranges' half assumes the products: the multiplier's result is cut free.
        self.cutpoints = ["dut.product"] if part == "walk" else []
        super().__init__({
            "command": In(stream.Signature(self.dut.command_layout)),
            "ranges_ready": In(1),
            **probe_members(probes),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        no_reset(m)
        m.submodules.dut = dut = self.dut
        fmt = dut.buffer
        aw = dut.addr_width
        word = fmt.word_bytes

        wiring.connect(m, wiring.flipped(self.command), dut.command)
        m.d.comb += dut.ranges.ready.eq(self.ranges_ready)
        cmd = self.command.payload
        taken = self.command.valid & self.command.ready
        out = dut.ranges.payload
        given = dut.ranges.valid & dut.ranges.ready

        # -- what the command may hold ----------------------------------------------------------
        # Pitches and the address below 2**addr_width (the walker's addresses wrap there);
        # segments from at most `max_start`, at most `max_chunks` words a pixel: the products
        # half's multiplications are then small ones. Segments at most 2 long: the reference
        # walk's step in a segment is one bit (the walker's counters are checked at every
        # length in simulation).
        free = [cmd.addr < 2 ** aw, cmd.in_chunks <= self._max_chunks]
        for axis, pitch in (("z", "plane_pitch"), ("y", "row_pitch"), ("x", "pixel_pitch")):
            free.append(cmd[pitch] < 2 ** aw)
            for s in (0, 1):
                free += [cmd[axis][f"seg{s}_start"] <= self._max_start,
                         cmd[axis][f"seg{s}_len"] <= 2]
        for term in free:
            m.d.comb += Assume(~self.command.valid | term)

        # The command as taken.
        held = Signal.like(cmd)
        with m.If(taken):
            m.d.sync += held.eq(cmd)
        pitches = {"z": held.plane_pitch[:aw], "y": held.row_pitch[:aw],
                   "x": held.pixel_pitch[:aw]}
        lens = {axis: [held[axis].seg0_len, held[axis].seg1_len] for axis in "zyx"}
        empty = Signal()
        m.d.comb += empty.eq((held.in_chunks == 0)
                             | Cat(*(~lens[axis][0].any() & ~lens[axis][1].any()
                                     for axis in "zyx")).any())
        offsets = {(axis, s): getattr(self, f"probe_offset_{axis}{s}")
                   for axis in "zyx" for s in (0, 1)}
        run = self.probe_run
        seg_bytes = [self.probe_seg_bytes0, self.probe_seg_bytes1]

        if self._part == "products":
            # While the walker walks (after its multiply phase: the first range is offered
            # after the last product is written, and none is written after it), its products
            # are the command's.
            start_bits = max(1, self._max_start.bit_length())
            chunk_bits = max(1, self._max_chunks.bit_length())
            want_run = held.in_chunks[:chunk_bits] * word
            facts = [run == want_run]
            facts += [seg_bytes[s] == Mux(lens["x"][s] == 2, want_run << 1,
                                          Mux(lens["x"][s] == 1, want_run, 0)) for s in (0, 1)]
            facts += [offsets[axis, s]
                      == (held[axis][f"seg{s}_start"][:start_bits] * pitches[axis]
                          + self._short)[:aw]
                      for axis in "zyx" for s in (0, 1)]
            with m.If(dut.ranges.valid & ~dut.ranges.payload.empty):
                m.d.comb += [Assert(fact) for fact in facts]
            # (Not vacuous: the walk half's covers reach ranges under the same assumptions.)
            return m

        # -- the ranges, whatever the products -------------------------------------------------
        contiguous = held.pixel_pitch == run
        counts = {axis: lens[axis][0] + lens[axis][1] for axis in "zyx"}
        x_segments = (lens["x"][0] != 0) + (lens["x"][1] != 0)
        want = Signal(range(4 ** 3 + 1))
        m.d.comb += want.eq(counts["z"] * counts["y"] * Mux(contiguous, x_segments, counts["x"]))

        pending = Signal()           # a command taken, its last range not yet given
        given_count = Signal.like(want)
        with m.If(taken):
            m.d.sync += [pending.eq(1), given_count.eq(0)]
        with m.If(given):
            m.d.sync += given_count.eq(given_count + 1)
            with m.If(out.last):
                m.d.sync += pending.eq(0)

        # -- the reference walk -------------------------------------------------------------------
        # The pixel the next range must be: per axis its segment and the step within it (0 or
        # 1: segments are at most 2 long), in z, y, x order, empty segments skipped; with
        # contiguous pixels, x moves a segment at a time. Its address is the sum of each axis's
        # segment start product plus one pitch for step 1, modulo 2**addr_width.
        seg = {axis: Signal(name=f"ref_seg_{axis}") for axis in "zyx"}
        at = {axis: Signal(name=f"ref_at_{axis}") for axis in "zyx"}

        def first_seg(axis, source):
            return source[axis].seg0_len == 0

        def moves(axis):
            """(whether the axis can still move, its next segment and step) within a window."""
            last_in_seg = at[axis] | (Mux(seg[axis], lens[axis][1], lens[axis][0]) == 1)
            if axis == "x":
                last_in_seg = last_in_seg | contiguous
            in_seg = ~last_in_seg
            to_seg1 = last_in_seg & ~seg[axis] & (lens[axis][1] != 0)
            return in_seg | to_seg1, in_seg

        with m.If(taken):
            for axis in "zyx":
                m.d.sync += [seg[axis].eq(first_seg(axis, cmd)), at[axis].eq(0)]
        with m.Elif(given):
            carry = 1
            for axis in "xyz":
                can, in_seg = moves(axis)
                with m.If(carry & can):
                    m.d.sync += [seg[axis].eq(Mux(in_seg, seg[axis], 1)),
                                 at[axis].eq(in_seg)]
                with m.Elif(carry):
                    m.d.sync += [seg[axis].eq(first_seg(axis, held)), at[axis].eq(0)]
                carry = carry & ~can
        # The walker's products stand for start * pitch here: the other half proves them so.
        partial = {}
        expected_addr = held.addr[:aw]
        for axis in "zyx":
            expected_addr = (expected_addr + Mux(seg[axis], offsets[axis, 1], offsets[axis, 0])
                             + Mux(at[axis], pitches[axis], 0))[:aw]
            partial[axis] = expected_addr
        row_first = (partial["y"] + Mux(lens["x"][0] == 0, offsets["x", 1],
                                        offsets["x", 0]))[:aw]
        expected_addr = (expected_addr + self._short)[:aw]
        expected_size = Mux(contiguous, Mux(seg["x"], seg_bytes[1], seg_bytes[0]), run)

        # -- properties ------------------------------------------------------------------------
        first_word = (Mux(held.bank, fmt.depth // 2, 0) + held.base)[:len(out.start)]
        # No command taken while ranges of the last one are owed; none given without one.
        m.d.comb += Assert(~(self.command.ready & pending))
        with m.If(dut.ranges.valid):
            m.d.comb += [Assert(pending), Assert(out.empty == empty),
                         Assert(out.start == first_word),
                         Assert(out.first == (given_count == 0))]
            with m.If(empty):
                m.d.comb += Assert(out.last)
            with m.Else():
                # (Lemmas: the walker's plane, row and row start are the reference's partial
                # sums. Each holds in every cycle with a range, so that the next cycle's
                # address follows from this one's by one addition.)
                m.d.comb += [Assert(self.probe_plane == partial["z"]),
                             Assert(self.probe_row == partial["y"]),
                             Assert(self.probe_row_first == row_first)]
                m.d.comb += [Assert(out.addr == expected_addr), Assert(out.size == expected_size),
                             # one range per pixel, or per x segment when contiguous
                             Assert(given_count < want),
                             Assert(out.last == (given_count + 1 == want))]
        m.d.comb += [Cover(given & out.last & ~empty & (want > 4)),
                     Cover(given & seg["z"] & at["y"] & at["x"] & ~contiguous)]
        return m
