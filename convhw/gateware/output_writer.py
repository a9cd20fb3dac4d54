"""``OutputWriter``: the drain. It writes one tile from an accumulator bank through the output
pipeline to memory, as :func:`convhw.compiler.list_model.write_results` does.

A command names the bank, the tile (start and length per axis), the output tensor (address and
pitches), the columns written and their parameters. The tile's entries are read from the bank in
raster order (z, y, x; x fastest), one entry address per cycle; each entry goes through the
:class:`~convhw.gateware.output_pipeline.OutputPipeline` as ``cols / lanes`` groups (those that
hold one of the ``out_channels`` columns), and its results are written at ``addr +
(out_start_z + z) * plane_pitch + (out_start_y + y) * row_pitch + (out_start_x + x) *
pixel_pitch``: ``out_channels`` little-endian elements of ``config.input_bytes`` bytes
(requantised) or ``config.raw_bytes`` bytes (raw), with byte strobes. Addresses need only be
element-aligned; an entry may span two beats.

Parts, each working on its own copy of a command, so that consecutive commands overlap:

* **setup**: takes a command and computes, by shift-and-add over ``coord_width + 2`` cycles (no
  multiplier), the tile's base address ``addr + out_start . pitches`` and the bytes of a row
  run ``x_len * entry bytes``; holds the result until the reader and the walker have both
  taken it.
* **reader**: presents entry addresses to the accumulator's read port as long as a small FIFO
  (``acc_read_latency + 2`` entries, the credit of the reads in flight) has room, and feeds
  the pipeline group by group with each group's column parameters. It takes the next command
  in the cycle of a command's last read; the parameters wait (one command deep) until the
  previous command's last entry has gone into the pipeline.
* **walker**: walks the tile's addresses by adders and produces *runs*: one per row when the
  pixels are contiguous in memory (``pixel_pitch`` equal to an entry's bytes), else one per
  entry; each run is a byte range, given as its first beat address, its offset in that beat and
  its number of beats.
* **command issuer**: cuts each run into write commands that cross no 4 KiB boundary and have at
  most 256 beats: a run's first command in one cycle (the walker precomputes it), each further
  one in four.
* **packer**: lays the results out as bytes (a register stage), places them (in pieces of at
  most a beat) at the run's offset and emits strobed beats, ``last`` where the issuer's
  commands end.
* **responder**: counts the write responses of each command (the issuer tells it how many
  bursts a command had) and sends ``done``, with ``error`` if any response was an error. Every
  response is consumed.

One entry per cycle when an entry's results fit a beat and the memory takes a beat per cycle;
otherwise the slower of the pipeline's groups (``cols / lanes`` per entry at most) and the
beats (one per cycle). With nothing stalled, a command's first write command leaves
``coord_width + 10`` cycles after the command's transfer, its first beat ``coord_width +
acc_read_latency + 14``, and consecutive commands' beats follow each other without a gap.

A tile must fit a bank (``z_len * y_len * x_len <= acc_depth / 2``); a tile with a zero
length or ``out_channels`` 0 writes nothing and is done at once; ``out_channels`` above
``cols`` is taken as ``cols``.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO, SyncFIFOBuffered
from amaranth.lib.wiring import In, Out
from amaranth.utils import bits_for

from .. import timing
from ..config import EngineConfig
from .memory_port import BOUNDARY, MAX_BEATS, MemoryPortSignature, check_addr_width
from .output_pipeline import MULT_WIDTH, SHIFT_WIDTH, OutputPipeline, check_lanes
from .skid_buffer import SkidBuffer

__all__ = ["OutputWriter", "column_layout", "command_layout"]

AXES = ("z", "y", "x")


def column_layout(float_output: bool = False) -> data.StructLayout:
    """One column's parameters: ``bias`` (32 bits, two's complement: the low ``acc_width`` bits
    if ``acc_width`` is below 32, else sign-extended),
    ``mult`` (signed 16 bits), ``shift`` (6 bits); with ``float_output`` also ``f32_bias`` and
    ``f32_mult`` (float32 bit patterns)."""
    fields = {"bias": unsigned(32), "mult": signed(MULT_WIDTH), "shift": unsigned(SHIFT_WIDTH)}
    if float_output:
        fields.update({"f32_bias": unsigned(32), "f32_mult": unsigned(32)})
    return data.StructLayout(fields)


def command_layout(config: EngineConfig, addr_width: int = 32) -> data.StructLayout:
    """The layout of an :class:`OutputWriter` command for ``config``.

    ``addr`` (``addr_width`` bits: OUTPUT_ADDR), ``pixel_pitch``, ``row_pitch``,
    ``plane_pitch`` (32 bits each), ``z``, ``y``, ``x`` (each ``out_start`` and ``out_len``,
    ``coord_width`` bits), ``out_channels`` (columns written, 1..cols), ``requantize``
    (8-bit results), ``relu``, ``bank`` (1 bit each) and ``columns`` (``cols`` records of
    :func:`column_layout`); with ``config.float_output`` also ``float`` (the float32 output
    processing, with ``requantize`` set) and ``output_zero`` (8 bits).
    """
    if not isinstance(config, EngineConfig):
        raise TypeError(f"config must be an EngineConfig, not {config!r}")
    check_addr_width(addr_width)
    cw = config.coord_width
    axis = data.StructLayout({"out_start": unsigned(cw), "out_len": unsigned(cw)})
    floats = {"float": 1, "output_zero": unsigned(8)} if config.float_output else {}
    return data.StructLayout({**floats,
        "addr": unsigned(addr_width),
        "pixel_pitch": unsigned(32),
        "row_pitch": unsigned(32),
        "plane_pitch": unsigned(32),
        "z": axis,
        "y": axis,
        "x": axis,
        "out_channels": unsigned(bits_for(config.cols)),
        "requantize": 1,
        "relu": 1,
        "bank": 1,
        "columns": data.ArrayLayout(column_layout(config.float_output), config.cols),
    })


class OutputWriter(wiring.Component):
    """Drains a tile from an accumulator bank through the output pipeline to memory.

    Parameters
    ----------
    config : EngineConfig
    addr_width : int
        Bits of a memory byte address, 12 to 64.
    acc_read_latency : int
        Cycles from ``acc_addr`` to its ``acc_data``: 1 or 2.
    lanes : int or None
        The pipeline's values per cycle, a divisor of ``config.cols`` (default ``cols``: one
        accumulator entry per cycle).

    Attributes
    ----------
    command : In(stream.Signature(command_layout))
        One tile to write (see :func:`command_layout`).
    acc_addr : Out(unsigned(log2(acc_depth)))
        The accumulator entry read; bank ``b`` is entries ``[b * acc_depth / 2, (b + 1) *
        acc_depth / 2)``, the tile's entries in raster order from the bank's first.
    acc_data : In(cols * acc_width)
        The entry, ``acc_read_latency`` cycles after its address; column ``c`` at bits
        ``[c * acc_width, (c + 1) * acc_width)``.
    write_cmd, write_data, write_resp
        The write half of a :class:`~convhw.gateware.memory_port.MemoryPortSignature`
        ``(config.memory_width, addr_width)`` port, seen from the issuer.
    done : Out(stream.Signature(StructLayout({"error": 1})))
        One transfer per command, after every write response of the command has come back;
        ``error`` if one of them was an error.
    """

    def __init__(self, config: EngineConfig, addr_width: int = 32, acc_read_latency: int = 2,
                 lanes: int | None = None) -> None:
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        check_addr_width(addr_width)
        if not isinstance(acc_read_latency, int) or isinstance(acc_read_latency, bool):
            raise TypeError(f"acc_read_latency must be an integer, not {acc_read_latency!r}")
        if acc_read_latency not in (1, 2):
            raise ValueError(f"acc_read_latency must be 1 or 2, not {acc_read_latency!r}")
        lanes = check_lanes(config, lanes)
        self._config = config
        self._addr_width = addr_width
        self._acc_read_latency = acc_read_latency
        self._lanes = lanes
        port = MemoryPortSignature(config.memory_width, addr_width)
        self._port = port
        super().__init__({
            "command": In(stream.Signature(self.command_layout)),
            "acc_addr": Out(unsigned(EngineConfig.address_width(config.acc_depth))),
            "acc_data": In(unsigned(config.acc_word_width)),
            "write_cmd": Out(stream.Signature(port.cmd_layout)),
            "write_data": Out(stream.Signature(port.write_data_layout)),
            "write_resp": In(stream.Signature(port.write_resp_layout)),
            "done": Out(stream.Signature(data.StructLayout({"error": 1}))),
        })

    @property
    def config(self) -> EngineConfig:
        return self._config

    @property
    def addr_width(self) -> int:
        return self._addr_width

    @property
    def acc_read_latency(self) -> int:
        return self._acc_read_latency

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def command_layout(self) -> data.StructLayout:
        return command_layout(self._config, self._addr_width)

    @property
    def read_fifo_depth(self) -> int:
        """Entries of the FIFO between the accumulator's read port and the pipeline (the reads
        in flight are counted against it)."""
        return self._acc_read_latency + 2

    # -- the parts -------------------------------------------------------------------------------

    def elaborate(self, platform) -> Module:
        m = Module()
        config = self._config
        cols, lanes, groups = config.cols, self._lanes, config.cols // self._lanes
        aw, cw = config.acc_width, config.coord_width
        ib, rb = config.input_bytes, config.raw_bytes
        beat = config.beat_bytes
        lb = beat.bit_length() - 1
        page_beats = BOUNDARY // beat
        addr_width = self._addr_width
        entry_w = bits_for(cols * rb)                 # bytes of an entry's results
        run_w = cw + entry_w                          # bytes of a run
        beats_w = run_w + 1                           # beats of a run
        bursts_w = EngineConfig.address_width(config.acc_depth) + entry_w + 2
        layout = self.command_layout

        # -- setup -------------------------------------------------------------------------------
        c = Signal(layout)                            # the command being prepared
        oc = Signal(range(cols + 1))
        entry_bytes = Signal(entry_w)
        offsets = [Signal(addr_width, name=f"setup_{a}_offset") for a in AXES]   # start * pitch
        run_bytes = Signal(run_w)                     # x_len * entry_bytes
        shifts = {name: Signal(cw, name=f"setup_{name}")
                  for name in ("zs", "ys", "xs", "xl")}
        count = Signal(range(cw + 1))
        base = Signal(addr_width)
        contiguous = Signal()
        empty = Signal()
        # taken by the reader's issue side, its parameter queue, the walker
        taken_i, taken_p, taken_w = Signal(), Signal(), Signal()
        take_i, take_p, take_w = Signal(), Signal(), Signal()

        payload = self.command.payload
        oc_in = Mux(payload.out_channels > cols, cols, payload.out_channels)
        with m.FSM(name="setup") as setup:
            with m.State("IDLE"):
                m.d.comb += self.command.ready.eq(1)
                # The registers take the payload in every idle cycle, whether or not it is
                # valid (nothing reads them before HOLD): the enable of these ~700 flip-flops
                # is then the state alone, not the producer's valid, which was the end of the
                # list engine's critical path on the ECP5 (the controller's failure index ->
                # drain decision -> here, 9 levels).
                m.d.sync += [
                    c.eq(payload), oc.eq(oc_in),
                    entry_bytes.eq(Mux(payload.requantize, oc_in * ib, oc_in * rb)),
                    *(o.eq(0) for o in offsets), run_bytes.eq(0), count.eq(cw),
                    shifts["zs"].eq(payload.z.out_start),
                    shifts["ys"].eq(payload.y.out_start),
                    shifts["xs"].eq(payload.x.out_start),
                    shifts["xl"].eq(payload.x.out_len),
                ]
                with m.If(self.command.valid):
                    m.next = "CALC"
            with m.State("CALC"):
                # Horner, most significant bit first: offset = 2 offset + bit * pitch
                m.d.sync += [
                    offsets[0].eq((offsets[0] << 1) + Mux(shifts["zs"][-1], c.plane_pitch, 0)),
                    offsets[1].eq((offsets[1] << 1) + Mux(shifts["ys"][-1], c.row_pitch, 0)),
                    offsets[2].eq((offsets[2] << 1) + Mux(shifts["xs"][-1], c.pixel_pitch, 0)),
                    run_bytes.eq((run_bytes << 1) + Mux(shifts["xl"][-1], entry_bytes, 0)),
                    count.eq(count - 1),
                ]
                m.d.sync += [s.eq(s << 1) for s in shifts.values()]
                with m.If(count == 1):
                    m.next = "SUM"
            with m.State("SUM"):
                m.d.sync += [offsets[0].eq(offsets[0] + offsets[1]),
                             offsets[2].eq(offsets[2] + c.addr)]
                m.next = "FINAL"
            with m.State("FINAL"):
                m.d.sync += [
                    base.eq(offsets[0] + offsets[2]),
                    contiguous.eq(c.pixel_pitch == entry_bytes),
                    empty.eq((oc == 0) | (c.z.out_len == 0) | (c.y.out_len == 0)
                             | (c.x.out_len == 0)),
                    taken_i.eq(0), taken_p.eq(0), taken_w.eq(0),
                ]
                m.next = "HOLD"
            with m.State("HOLD"):
                m.d.sync += [taken_i.eq(taken_i | take_i), taken_p.eq(taken_p | take_p),
                             taken_w.eq(taken_w | take_w)]
                with m.If((taken_i | take_i) & (taken_p | take_p) & (taken_w | take_w)):
                    m.next = "IDLE"
        prepared = setup.ongoing("HOLD")

        # -- reader: accumulator reads, the read FIFO, the pipeline's input --------------------
        # the pipeline's side band: the group's result bytes, whether it ends a run, the mode
        user = data.StructLayout({"bytes": unsigned(bits_for(lanes * rb)), "single": 1,
                                  "run_end": 1, "requantize": 1})
        m.submodules.pipeline = pipeline = OutputPipeline(config, lanes, user_width=user.size)
        depth = self.read_fifo_depth
        tag = data.StructLayout({"run_end": 1, "job_last": 1})
        m.submodules.read_fifo = read_fifo = SyncFIFO(
            width=config.acc_word_width + tag.size, depth=depth)
        # The issue side reads a command's entries; the feed side sends them through the pipeline
        # with the command's parameters. The parameters wait in ``next`` until the feed side has
        # sent the previous command's last entry, so that a command's reads can follow the
        # previous one's at once.
        floats = {"float": 1, "output_zero": unsigned(8)} if config.float_output else {}
        params_layout = data.StructLayout({
            **floats, "requantize": 1, "relu": 1, "oc": unsigned(bits_for(cols)),
            "columns": data.ArrayLayout(column_layout(config.float_output), cols)})
        r_issuing = Signal()            # entries left to read
        r_contiguous = Signal()
        r_len = Signal(data.ArrayLayout(unsigned(cw), 3))
        r_pos = Signal(data.ArrayLayout(unsigned(cw), 3))      # z, y, x of the next read
        r_addr = Signal.like(self.acc_addr)
        credit = Signal(range(depth + 1))
        half = config.acc_depth // 2
        next_params, cur_params = Signal(params_layout), Signal(params_layout)
        next_full, cur_full = Signal(), Signal()

        issue = Signal()
        pop = Signal()
        m.d.comb += [issue.eq(r_issuing & (credit < depth)), self.acc_addr.eq(r_addr)]
        m.d.sync += credit.eq(credit + issue - pop)
        last_x = r_pos[2] == r_len[2]           # r_len: the lengths - 1
        last_y = r_pos[1] == r_len[1]
        last_z = r_pos[0] == r_len[0]
        issue_tag = Signal(tag)
        m.d.comb += [issue_tag.run_end.eq(~r_contiguous | last_x),
                     issue_tag.job_last.eq(last_x & last_y & last_z)]
        with m.If(issue):
            m.d.sync += r_addr.eq(r_addr + 1)
            with m.If(last_x):
                m.d.sync += r_pos[2].eq(0)
                with m.If(last_y):
                    m.d.sync += [r_pos[1].eq(0), r_pos[0].eq(r_pos[0] + 1)]
                    with m.If(last_z):
                        m.d.sync += r_issuing.eq(0)
                with m.Else():
                    m.d.sync += r_pos[1].eq(r_pos[1] + 1)
            with m.Else():
                m.d.sync += r_pos[2].eq(r_pos[2] + 1)
        issue_last = issue & last_x & last_y & last_z
        # (after the issue logic: a command taken in the cycle of the last read wins)
        # The parameters go into the queue as soon as it has room, whatever the issue side does.
        m.d.comb += [take_i.eq(prepared & ~taken_i & (~r_issuing | issue_last)),
                     take_p.eq(prepared & ~taken_p & ~next_full)]
        with m.If(take_i & ~empty):
            m.d.sync += [r_issuing.eq(1), r_contiguous.eq(contiguous), r_pos.eq(0),
                         r_addr.eq(c.bank * half)]
            for k, axis in enumerate(AXES):
                m.d.sync += r_len[k].eq(c[axis].out_len - 1)
        with m.If(take_p & ~empty):
            m.d.sync += [next_full.eq(1), next_params.requantize.eq(c.requantize),
                         next_params.relu.eq(c.relu), next_params.oc.eq(oc),
                         next_params.columns.eq(c.columns)]
            if config.float_output:
                m.d.sync += [next_params.float.eq(c.float),
                             next_params.output_zero.eq(c.output_zero)]

        # the reads in flight: a delay line as long as the read latency
        in_flight = [Signal(1 + tag.size, name=f"in_flight{k}")
                     for k in range(self._acc_read_latency)]
        m.d.sync += in_flight[0].eq(Cat(issue, issue_tag))
        for k in range(1, len(in_flight)):
            m.d.sync += in_flight[k].eq(in_flight[k - 1])
        m.d.comb += [read_fifo.w_en.eq(in_flight[-1][0]),
                     read_fifo.w_data.eq(Cat(self.acc_data, in_flight[-1][1:]))]

        head_acc = read_fifo.r_data[:config.acc_word_width]
        head_tag = tag(read_fifo.r_data[config.acc_word_width:])
        group = Signal(range(groups))
        remaining = Signal(range(cols + 1))         # columns of the entry not yet fed
        r_cmd = cur_params
        remaining_now = Mux(group == 0, r_cmd.oc, remaining)
        last_group = remaining_now <= lanes
        feed = pipeline.i
        m.d.comb += [feed.valid.eq(read_fifo.r_rdy & cur_full),
                     feed.payload.requantize.eq(r_cmd.requantize),
                     feed.payload.relu.eq(r_cmd.relu)]
        if config.float_output:
            m.d.comb += [feed.payload.float.eq(r_cmd.float),
                         feed.payload.output_zero.eq(r_cmd.output_zero)]
        feed_user = user(feed.payload.user)
        count = Mux(last_group, remaining_now, lanes)
        group_size = Mux(r_cmd.requantize, count * ib, count * rb)
        m.d.comb += [feed_user.bytes.eq(group_size), feed_user.single.eq(group_size <= beat),
                     feed_user.run_end.eq(last_group & head_tag.run_end),
                     feed_user.requantize.eq(r_cmd.requantize)]
        for lane in range(lanes):
            columns = [g * lanes + lane for g in range(groups)]
            values = Array(head_acc[k * aw:(k + 1) * aw].as_signed() for k in columns)
            params = Array(r_cmd.columns[k] for k in columns)
            param = params[group]
            bias = param.bias[:min(aw, 32)].as_signed()     # wrapped, or sign-extended
            m.d.comb += [feed.payload.data[lane].eq(values[group]),
                         feed.payload.bias[lane].eq(bias),
                         feed.payload.mult[lane].eq(param.mult),
                         feed.payload.shift[lane].eq(param.shift)]
            if config.float_output:
                m.d.comb += [feed.payload.f32_bias[lane].eq(param.f32_bias),
                             feed.payload.f32_mult[lane].eq(param.f32_mult)]
        with m.If(feed.valid & feed.ready):
            with m.If(last_group):
                m.d.comb += [read_fifo.r_en.eq(1), pop.eq(1)]
                m.d.sync += group.eq(0)
                with m.If(head_tag.job_last):
                    m.d.sync += cur_full.eq(0)
            with m.Else():
                m.d.sync += [group.eq(group + 1), remaining.eq(remaining_now - lanes)]
        job_fed = feed.valid & feed.ready & last_group & head_tag.job_last
        with m.If(next_full & (~cur_full | job_fed)):
            m.d.sync += [cur_params.eq(next_params), cur_full.eq(1), next_full.eq(0)]

        # -- walker: the runs of the tile --------------------------------------------------------
        # Three stages: the run's start and size; its beats and the beats to its page's end; the
        # first burst's limit and whether the run is one burst (into the FIFOs). It walks on
        # when both FIFOs have room for what the stages may hold.
        limit_w = bits_for(MAX_BEATS)
        run_c = data.StructLayout({
            "first": unsigned(addr_width), "beats": unsigned(beats_w),
            "to_page": unsigned(bits_for(page_beats)), "limit": unsigned(limit_w),
            "single": 1, "empty": 1, "job_last": 1})
        run_d = data.StructLayout({"offset": unsigned(lb), "page_beat": unsigned(12 - lb),
                                   "beats": unsigned(beats_w), "empty": 1})
        runs_depth = timing.WRITER_RUNS
        m.submodules.runs_c = runs_c = SyncFIFOBuffered(width=run_c.size, depth=runs_depth)
        m.submodules.runs_d = runs_d = SyncFIFOBuffered(width=run_d.size, depth=runs_depth)
        w_active = Signal()
        w_empty = Signal()
        w_contiguous = Signal()
        w_len = Signal(data.ArrayLayout(unsigned(cw), 3))
        w_pos = Signal(data.ArrayLayout(unsigned(cw), 3))
        w_pitch = Signal(data.ArrayLayout(unsigned(32), 3))
        w_entry = Signal(entry_w)
        w_run = Signal(run_w)
        plane_addr, row_addr, pixel_addr = (Signal(addr_width, name=f"w_{n}_addr")
                                            for n in ("plane", "row", "pixel"))
        m.d.comb += take_w.eq(prepared & ~taken_w & ~w_active)
        with m.If(take_w):
            m.d.sync += [
                w_active.eq(1), w_empty.eq(empty), w_contiguous.eq(contiguous),
                w_pos.eq(0), w_entry.eq(entry_bytes), w_run.eq(run_bytes),
                plane_addr.eq(base), row_addr.eq(base), pixel_addr.eq(base),
                w_pitch[0].eq(c.plane_pitch), w_pitch[1].eq(c.row_pitch),
                w_pitch[2].eq(c.pixel_pitch),
            ]
            for k, axis in enumerate(AXES):
                m.d.sync += w_len[k].eq(c[axis].out_len - 1)
        w_last_x = w_contiguous | (w_pos[2] == w_len[2])      # w_len: the lengths - 1
        w_last_y = w_pos[1] == w_len[1]
        w_last_z = w_pos[0] == w_len[0]
        job_last = w_empty | (w_last_x & w_last_y & w_last_z)
        v1, v2 = Signal(), Signal()
        # Room, from the levels a cycle ago: since then at most one more record went in, two
        # are in the stages and one leaves the walker now.
        room = Signal()
        m.d.sync += room.eq((runs_c.level <= runs_depth - 5) & (runs_d.level <= runs_depth - 5))
        emit_run = w_active & room
        # stage 1
        s1_start = Signal(addr_width)
        s1_size = Signal(run_w)
        s1_empty, s1_last = Signal(), Signal()
        m.d.sync += [v1.eq(emit_run), s1_start.eq(Mux(w_contiguous, row_addr, pixel_addr)),
                     s1_size.eq(Mux(w_contiguous, w_run, w_entry)), s1_empty.eq(w_empty),
                     s1_last.eq(job_last)]
        # stage 2
        s2_start = Signal(addr_width)
        s2_beats = Signal(beats_w)
        s2_to_page = Signal(range(page_beats + 1))
        s2_empty, s2_last = Signal(), Signal()
        m.d.sync += [v2.eq(v1), s2_start.eq(s1_start), s2_empty.eq(s1_empty),
                     s2_last.eq(s1_last),
                     s2_beats.eq(Mux(s1_empty, 0, (s1_start[:lb] + s1_size + beat - 1) >> lb)),
                     s2_to_page.eq(page_beats - s1_start[lb:12])]
        # stage 3: into the FIFOs
        rec_c, rec_d = Signal(run_c), Signal(run_d)
        first_limit = Mux(s2_to_page < MAX_BEATS, s2_to_page, MAX_BEATS)
        m.d.comb += [
            rec_c.first.eq(Cat(Const(0, lb), s2_start[lb:])), rec_c.beats.eq(s2_beats),
            rec_c.to_page.eq(s2_to_page), rec_c.limit.eq(first_limit),
            rec_c.single.eq(s2_beats <= first_limit), rec_c.empty.eq(s2_empty),
            rec_c.job_last.eq(s2_last),
            rec_d.offset.eq(s2_start[:lb]), rec_d.page_beat.eq(s2_start[lb:12]),
            rec_d.beats.eq(s2_beats), rec_d.empty.eq(s2_empty),
            runs_c.w_data.eq(rec_c), runs_d.w_data.eq(rec_d),
            runs_c.w_en.eq(v2), runs_d.w_en.eq(v2),
        ]
        with m.If(emit_run):
            with m.If(job_last):
                m.d.sync += w_active.eq(0)
            with m.If(w_last_x):
                m.d.sync += w_pos[2].eq(0)
                with m.If(w_last_y):
                    next_plane = plane_addr + w_pitch[0]
                    m.d.sync += [w_pos[1].eq(0), w_pos[0].eq(w_pos[0] + 1),
                                 plane_addr.eq(next_plane), row_addr.eq(next_plane),
                                 pixel_addr.eq(next_plane)]
                with m.Else():
                    next_row = row_addr + w_pitch[1]
                    m.d.sync += [w_pos[1].eq(w_pos[1] + 1), row_addr.eq(next_row),
                                 pixel_addr.eq(next_row)]
            with m.Else():
                m.d.sync += [w_pos[2].eq(w_pos[2] + 1), pixel_addr.eq(pixel_addr + w_pitch[2])]

        # -- command issuer: runs -> bursts (4 KiB, 256 beats) -----------------------------------
        # A run's first burst comes from the walker's precomputed record, one per cycle. A run
        # that needs more bursts takes three more cycles per burst (advance, limit, check): its
        # bursts are long but perhaps the last.
        m.submodules.jobs = jobs = SyncFIFOBuffered(width=bursts_w, depth=timing.WRITER_JOBS)
        cur = Signal(run_c)             # the run's next burst: from `first`, `limit` beats...
        have = Signal()
        i_bursts = Signal(bursts_w)
        cmd_free = ~self.write_cmd.valid | self.write_cmd.ready
        with m.If(self.write_cmd.ready):
            m.d.sync += self.write_cmd.valid.eq(0)
        m.d.comb += jobs.w_data.eq(i_bursts + ~cur.empty)
        load = Signal()
        with m.FSM(name="issuer"):
            with m.State("EMIT"):
                # `single`: the run's last burst, `beats` long; else `limit` beats
                step = have & cmd_free & (~(cur.single & cur.job_last) | jobs.w_rdy)
                with m.If(step):
                    with m.If(~cur.empty):
                        m.d.sync += [
                            self.write_cmd.valid.eq(1),
                            self.write_cmd.payload.addr.eq(cur.first),
                            self.write_cmd.payload.len.eq(
                                Mux(cur.single, cur.beats[:limit_w], cur.limit) - 1),
                            i_bursts.eq(i_bursts + 1)]
                    with m.If(cur.single):
                        with m.If(cur.job_last):
                            m.d.comb += jobs.w_en.eq(1)
                            m.d.sync += i_bursts.eq(0)
                        m.d.comb += load.eq(1)
                    with m.Else():
                        m.next = "ADVANCE"
                with m.Elif(~have):
                    m.d.comb += load.eq(1)
            with m.State("ADVANCE"):
                m.d.sync += [cur.first.eq(cur.first + (cur.limit << lb)),
                             cur.beats.eq(cur.beats - cur.limit),
                             cur.to_page.eq(Mux(cur.to_page == cur.limit, page_beats,
                                                cur.to_page - cur.limit))]
                m.next = "LIMIT"
            with m.State("LIMIT"):
                m.d.sync += cur.limit.eq(Mux(cur.to_page < MAX_BEATS, cur.to_page, MAX_BEATS))
                m.next = "CHECK"
            with m.State("CHECK"):
                m.d.sync += cur.single.eq(cur.beats <= cur.limit)
                m.next = "EMIT"
        m.d.comb += runs_c.r_en.eq(load)
        with m.If(load):
            m.d.sync += [have.eq(runs_c.r_rdy), cur.eq(runs_c.r_data)]

        # -- packer: results -> strobed beats ----------------------------------------------------
        # first a register stage that lays the group's results out as bytes
        results = pipeline.o
        results_user = user(results.payload.user)
        quantised = Cat(results.payload.data[k][:8 * ib] for k in range(lanes))
        raw = Cat(results.payload.data[k][:8 * rb] for k in range(lanes))
        formatted = data.StructLayout({"bytes": unsigned(8 * lanes * rb), "user": user})
        m.submodules.format = format_ = SkidBuffer(formatted)
        m.d.comb += [format_.i.valid.eq(results.valid), results.ready.eq(format_.i.ready),
                     format_.i.payload.bytes.eq(Mux(results_user.requantize, quantised, raw)),
                     format_.i.payload.user.eq(results_user)]
        out = format_.o
        out_user = out.payload.user
        group_bytes = out.payload.bytes
        pieces = -(-(lanes * rb) // beat)
        chunks = Array(group_bytes.shift_right(8 * beat * p)[:8 * beat] for p in range(pieces))
        piece = Signal(range(max(pieces, 2)))
        p_left = Signal(range(lanes * rb + 1))             # bytes of the group from the next piece
        p_last = Signal()                                   # ... and whether they fit a beat
        first_piece = piece == 0
        piece_left = Mux(first_piece, out_user.bytes, p_left)
        last_piece = Mux(first_piece, out_user.single, p_last)
        run_end = last_piece & out_user.run_end

        p_run = Signal()                    # inside a run (its record taken)
        p_flush = Signal()                  # the run's last beat still to send
        p_offset = Signal(lb)
        p_buf = Signal(8 * beat)
        p_strb = Signal(beat)
        p_page_beat = Signal(12 - lb)
        p_burst_beat = Signal(8)
        p_beats = Signal(beats_w)           # beats of the run still to send
        head_d = run_d(runs_d.r_data)
        offset_now = Mux(p_run, p_offset, head_d.offset)
        strb_now = Mux(p_run, p_strb, 0)
        page_beat_now = Mux(p_run, p_page_beat, head_d.page_beat)
        burst_beat_now = Mux(p_run, p_burst_beat, 0)
        beats_now = Mux(p_run, p_beats, head_d.beats)

        # the piece's bytes at the offset; the bytes already in the beat kept (the piece's bytes
        # beyond its size land where no strobe is set yet, and a later piece replaces them)
        # the piece's bytes: a beat, or the group's rest (a compare per bit, no adder)
        mask = Signal(beat)
        m.d.comb += mask.eq(Cat(~last_piece | (piece_left[:lb + 1] > k) for k in range(beat)))
        shifted = Signal(16 * beat)
        m.d.comb += shifted.eq(chunks[piece] << (offset_now * 8))
        merged = Signal(16 * beat)
        merged_strb = Signal(2 * beat)
        m.d.comb += [merged.eq(Cat(Mux(strb_now[k], p_buf.word_select(k, 8),
                                       shifted.word_select(k, 8)) for k in range(beat))),
                     merged[8 * beat:].eq(shifted[8 * beat:]),
                     merged_strb.eq(strb_now | (mask << offset_now))]
        total = Signal(lb + 1)
        m.d.comb += total.eq(offset_now + piece_left[:lb + 1])    # used when it is the last piece
        full = ~last_piece | total[lb]
        emit = full | run_end
        beat_last = ((beats_now == 1) | (page_beat_now == page_beats - 1)
                     | (burst_beat_now == MAX_BEATS - 1))
        wd = self.write_data
        data_free = ~wd.valid | wd.ready
        with m.If(wd.ready):
            m.d.sync += wd.valid.eq(0)

        skip = ~p_run & ~p_flush & runs_d.r_rdy & head_d.empty     # an empty job
        accept = data_free & ~p_flush & out.valid & (p_run | (runs_d.r_rdy & ~head_d.empty))
        m.d.comb += [runs_d.r_en.eq(skip | (accept & ~p_run)), out.ready.eq(accept & last_piece)]
        with m.If(accept):
            m.d.sync += [piece.eq(Mux(last_piece, 0, piece + 1)), p_left.eq(piece_left - beat),
                         p_last.eq(piece_left <= 2 * beat)]
            # (the payload is loaded whether or not the beat is complete: the register is free)
            m.d.sync += [wd.payload.data.eq(merged[:8 * beat]),
                         wd.payload.strb.eq(merged_strb[:beat]), wd.payload.last.eq(beat_last)]
            with m.If(emit):
                m.d.sync += [wd.valid.eq(1),
                             p_page_beat.eq(page_beat_now + 1),
                             p_burst_beat.eq(Mux(beat_last, 0, burst_beat_now + 1)),
                             p_beats.eq(beats_now - 1)]
            with m.Else():
                m.d.sync += [p_page_beat.eq(page_beat_now), p_burst_beat.eq(burst_beat_now),
                             p_beats.eq(beats_now)]
            with m.If(full):
                m.d.sync += [p_buf.eq(merged[8 * beat:]), p_strb.eq(merged_strb[beat:])]
            with m.Else():
                m.d.sync += [p_buf.eq(merged[:8 * beat]), p_strb.eq(merged_strb[:beat])]
            m.d.sync += p_offset.eq(Mux(last_piece, total[:lb], offset_now))
            with m.If(run_end):
                with m.If(total > beat):
                    m.d.sync += [p_flush.eq(1), p_run.eq(1)]
                with m.Else():
                    m.d.sync += p_run.eq(0)
            with m.Else():
                m.d.sync += p_run.eq(1)
        with m.If(p_flush & data_free):
            m.d.sync += [wd.valid.eq(1), wd.payload.data.eq(p_buf),
                         wd.payload.strb.eq(p_strb), wd.payload.last.eq(beat_last),
                         p_flush.eq(0), p_run.eq(0)]

        # -- responder: write responses -> done --------------------------------------------------
        responses = Signal(bursts_w)
        error = Signal()
        pending = Signal()
        complete = jobs.r_rdy & (responses == jobs.r_data)
        m.d.comb += self.write_resp.ready.eq(~pending & ~complete)
        with m.If(self.write_resp.valid & self.write_resp.ready):
            m.d.sync += [responses.eq(responses + 1),
                         error.eq(error | self.write_resp.payload.error)]
        with m.If(self.done.ready):
            m.d.sync += self.done.valid.eq(0)
        with m.If(complete & ~pending):
            m.d.comb += jobs.r_en.eq(1)
            m.d.sync += [self.done.valid.eq(1), self.done.payload.error.eq(error),
                         responses.eq(0), error.eq(0), pending.eq(1)]
        with m.If(self.done.valid & self.done.ready):
            m.d.sync += pending.eq(0)
        return m
