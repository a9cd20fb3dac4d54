"""``Engine``: the convolution engine behind one Wishbone slave.

Data path of one job (see docs/engine.md)::

    registers -> JobController -> PassSequencer -> WeightLoader -> Streamer
                                                       |              | input-buffer address
                                                  weight buffer   input buffer (1 cycle)
                                                       |              |
                                                       +----> SystolicArray (rows + cols)
                                                                      |
                                          accumulator: read (transparent), add or init, write

The host reaches the registers and three windows through the Wishbone slave: INPUT and WEIGHT
(buffer words split into 32-bit bus words, least significant first) and OUTPUT (each
accumulator value through the :class:`OutputStage`). Buffers may only be accessed while the
engine is idle: while it is busy, host writes are dropped and host reads return 0.
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, ResetInserter, Signal, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from ..config import BUS_DATA_WIDTH, EngineConfig
from ..registers import AXIS_FIELDS, engine_register_map
from .address_generator import Streamer
from .control import JobController
from .output_stage import OutputStage
from .pass_sequencer import JobRegisters, PassSequencer
from .register_file import RegisterFile
from .systolic_array import SystolicArray
from .weight_loader import WeightLoader
from .wishbone import WishboneSignature, WishboneSlave

__all__ = ["Engine"]

AXES = "ZYX"


class Engine(wiring.Component):
    """The whole engine for ``config``: one Wishbone B4 classic slave port, ``wb``.

    Timing constants of a job, for the compiler's cycle model, are properties of the engine
    (:attr:`timing`).
    """

    def __init__(self, config: EngineConfig):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        self._config = config
        self._map = engine_register_map(config)
        super().__init__({
            "wb": In(WishboneSignature(self._map.bus_address_width)),
            # STATUS.BUSY as a pin, for a board's LED and for a simulation harness that idles
            # while the engine does.
            "busy": Out(1),
        })
        # The buffers are made here so that a simulation can load them directly.
        self.input_buffer = memory.Memory(
            shape=unsigned(self._buffer_width(config.input_word_width,
                                              config.bus_words_per_input_word)),
            depth=config.input_depth, init=[])
        self.weight_buffer = memory.Memory(
            shape=unsigned(self._buffer_width(config.weight_word_width,
                                              config.bus_words_per_weight_word)),
            depth=config.weight_depth, init=[])
        self.accumulator = memory.Memory(
            shape=data.ArrayLayout(unsigned(config.acc_width), config.cols),
            depth=config.acc_depth, init=[])

    @property
    def config(self) -> EngineConfig:
        return self._config

    @staticmethod
    def _buffer_width(word_width: int, parts: int) -> int:
        """Bits of a buffer word in memory: a word of one bus word keeps only its own bits
        (no block RAM spent on the unused high bits); a wider one whole bus words, so that the
        bus writes each with a granularity of 32 bits."""
        return word_width if parts == 1 else parts * BUS_DATA_WIDTH

    @property
    def register_map(self):
        return self._map

    @staticmethod
    def timing_for(config: EngineConfig) -> dict:
        """The constants of :func:`convhw.compiler.cycles.job_cycles` for an engine."""
        return {
            "check": JobController.CHECK_CYCLES,
            # The sequencer's set-up: a fixed part and one per dimension, which depends on
            # whether its stride is 1.
            "setup": PassSequencer.setup_latency_for(config, ()),
            "setup_unit_stride": (PassSequencer.setup_latency_for(config, (1,))
                                  - PassSequencer.setup_latency_for(config, ())),
            "setup_stride": (PassSequencer.setup_latency_for(config, (2,))
                             - PassSequencer.setup_latency_for(config, ())),
            "rows": config.rows,
            "guard": WeightLoader.guard_for(config),
            "streamer_latency": Streamer.LATENCY,
            # input-buffer read (1) + array + accumulator read-modify-write (1)
            "drain": 1 + config.rows + config.cols + 1,
        }

    @property
    def timing(self) -> dict:
        return self.timing_for(self._config)

    def elaborate(self, platform) -> Module:
        m = Module()
        config = self._config
        regmap = self._map
        cols = config.cols

        m.submodules.bus = bus = WishboneSlave(regmap)
        m.submodules.regfile = regfile = RegisterFile(regmap)
        wiring.connect(m, bus.registers, regfile.bus)
        wiring.connect(m, wiring.flipped(self.wb), bus.wb)
        regs = regfile.regs

        # -- job registers -> one struct, shared by the controller and the address generator --
        job = Signal(JobRegisters(config))
        for d, axis in enumerate(AXES):
            for name, _, _ in AXIS_FIELDS:
                value = getattr(regs, f"{axis.lower()}_{name.lower()}").value
                m.d.comb += getattr(job.axes[d], name.lower()).eq(value)
        m.d.comb += [
            job.transposed.eq(regs.job_mode.transposed),
            job.padding_mode.eq(regs.job_mode.padding_mode),
            job.accumulate.eq(regs.job_mode.accumulate),
            job.skip_borders.eq(regs.job_mode.skip_borders),
            job.in_chunks.eq(regs.in_chunks.value),
            job.fir_taps.eq(regs.fir_taps.value),
        ]

        timing = self.timing
        m.submodules.control = control = JobController(config, drain_cycles=timing["drain"])
        flush = control.flush
        m.submodules.sequencer = sequencer = ResetInserter(flush)(PassSequencer(config))
        m.submodules.loader = loader = ResetInserter(flush)(WeightLoader(config))
        m.submodules.streamer = streamer = ResetInserter(flush)(Streamer(config))
        m.submodules.array = array = SystolicArray(config)
        m.submodules.output_stage = output_stage = OutputStage(config)

        m.d.comb += [
            control.job.eq(job),
            control.start.eq(regs.ctrl.start),
            control.abort.eq(regs.ctrl.abort),
            regs.status.busy.eq(control.busy),
            regs.status.done.eq(control.done),
            regs.status.error.eq(control.error),
            regs.error.code.eq(control.code),
            regs.cycles.count.eq(control.cycles),
            sequencer.job.eq(job),
            sequencer.start.eq(control.job_start),
            loader.start.eq(control.job_start),
            loader.in_chunks.eq(job.in_chunks),
            streamer.job.eq(job),
        ]
        wiring.connect(m, sequencer.passes, loader.passes_in)
        m.d.comb += [
            streamer.passes.valid.eq(loader.passes_out.valid),
            streamer.passes.payload.eq(loader.passes_out.payload),
            loader.passes_out.ready.eq(streamer.passes.ready),
        ]
        sequencer_done = Signal()
        with m.If(control.job_start | flush):
            m.d.sync += sequencer_done.eq(0)
        with m.Elif(sequencer.done):
            m.d.sync += sequencer_done.eq(1)
        m.d.comb += [
            control.pipeline_idle.eq(sequencer_done & ~loader.busy & ~streamer.busy
                                     & ~sequencer.passes.valid),
            control.window_miss.eq(streamer.error),
        ]

        # -- buffers -----------------------------------------------------------------------
        in_parts = config.bus_words_per_input_word
        w_parts = config.bus_words_per_weight_word
        m.submodules.input_buffer = input_buffer = self.input_buffer
        m.submodules.weight_buffer = weight_buffer = self.weight_buffer
        m.submodules.accumulator = accumulator = self.accumulator
        in_write = input_buffer.write_port(granularity=BUS_DATA_WIDTH if in_parts > 1 else None)
        in_read = input_buffer.read_port()
        w_write = weight_buffer.write_port(granularity=BUS_DATA_WIDTH if w_parts > 1 else None)
        w_read = weight_buffer.read_port()
        acc_write = accumulator.write_port()
        acc_read = accumulator.read_port(transparent_for=(acc_write,))

        busy = control.busy
        m.d.comb += self.busy.eq(busy)
        windows = bus.windows
        self._buffer_window(m, windows.input, in_write, in_read, in_parts, busy)
        self._buffer_window(m, windows.weight, w_write, w_read, w_parts, busy)

        # -- address generator -> input buffer -> array --------------------------------------
        with m.If(busy):
            m.d.comb += [in_read.addr.eq(streamer.in_addr), w_read.addr.eq(loader.mem_addr)]
        m.d.comb += [
            loader.mem_data.eq(w_read.data),
            array.w_we.eq(loader.w_we),
            array.w_row.eq(loader.w_row),
            array.w_bank.eq(loader.w_bank),
            array.w_data.eq(loader.w_data),
            array.depthwise.eq(job.fir_taps != 0),
        ]
        for c in range(cols):
            m.d.comb += array.lane_select[c].eq(getattr(regs, f"lane{c}").value)
        # One cycle for the input-buffer read: delay the streamer's side signals to match.
        valid1, zero1, bank1, last1 = Signal(), Signal(), Signal(), Signal()
        acc_addr1, init1, write1 = Signal.like(streamer.acc_addr), Signal(), Signal()
        m.d.sync += [
            valid1.eq(streamer.out_valid & busy), zero1.eq(streamer.zero),
            write1.eq(streamer.write),
            bank1.eq(streamer.bank), last1.eq(streamer.pass_last),
            acc_addr1.eq(streamer.acc_addr), init1.eq(streamer.init),
        ]
        m.d.comb += [
            array.in_valid.eq(valid1),
            array.in_word.eq(Mux(zero1, 0, in_read.data[:config.input_word_width])),
            array.in_bank.eq(bank1),
            loader.pass_end.eq(valid1 & last1),
            loader.pass_end_bank.eq(bank1),
        ]

        # -- accumulator: read one cycle before the sums arrive, then add (or init) and write --
        latency = array.latency
        acc_tags = [(Signal.like(acc_addr1, name=f"acc_addr_d{i}"),
                     Signal(name=f"init_d{i}"), Signal(name=f"valid_d{i}"))
                    for i in range(latency)]
        # Only sums that are outputs are written (FIR mode streams extra words per row).
        previous = (acc_addr1, init1, valid1 & write1)
        for tag in acc_tags:
            m.d.sync += [t.eq(p) for t, p in zip(tag, previous)]
            previous = tag
        read_addr, _, _ = acc_tags[latency - 2] if latency >= 2 else (acc_addr1, init1, valid1)
        write_addr, write_init, write_valid = acc_tags[latency - 1]
        host_acc_addr = Signal.like(acc_read.addr)
        m.d.comb += acc_read.addr.eq(Mux(busy, read_addr, host_acc_addr))
        m.d.comb += [
            acc_write.addr.eq(write_addr),
            acc_write.en.eq(write_valid & array.out_valid),
        ]
        for c in range(cols):
            total = Mux(write_init, array.out_psum[c], acc_read.data[c].as_signed()
                        + array.out_psum[c])
            m.d.comb += acc_write.data[c].eq(total[:config.acc_width])

        # -- OUTPUT window: accumulator entry -> output stage -> bus --------------------------
        port = windows.output
        stride = config.output_stride
        col_bits = (stride - 1).bit_length()
        column = Signal(range(stride))
        read_pending = Signal()
        m.d.comb += host_acc_addr.eq(port.addr >> col_bits)
        with m.If(port.r_stb):
            m.d.sync += [column.eq(port.addr[:col_bits] if col_bits else 0),
                         read_pending.eq(1)]
        with m.Else():
            m.d.sync += read_pending.eq(0)
        biases = Array(getattr(regs, f"bias{c}").value for c in range(cols))
        multipliers = Array(getattr(regs, f"mult{c}").value for c in range(cols))
        shifts = Array(getattr(regs, f"shift{c}").value for c in range(cols))
        values = Array(acc_read.data[c] for c in range(cols))
        in_range = column < cols
        m.d.comb += [
            output_stage.valid.eq(read_pending),
            output_stage.acc.eq(Mux(in_range & ~busy, values[column], 0)),
            output_stage.bias.eq(Mux(in_range & ~busy, biases[column], 0)),
            output_stage.multiplier.eq(multipliers[column]),
            output_stage.shift.eq(shifts[column]),
            output_stage.requantize.eq(regs.out_mode.requantize),
            output_stage.relu.eq(regs.out_mode.relu),
            port.ack.eq(output_stage.result_valid),
            port.r_data.eq(output_stage.result),
        ]
        return m

    @staticmethod
    def _buffer_window(m, port, write, read, parts, busy):
        """A buffer behind a window: bus word ``a`` is part ``a % parts`` of buffer word
        ``a // parts`` (``parts`` is a power of two). Writes complete at once; reads one cycle
        later."""
        part_bits = (parts - 1).bit_length()
        word = port.addr >> part_bits
        part = port.addr[:part_bits] if part_bits else 0
        m.d.comb += [
            write.addr.eq(word),
            write.data.eq(port.w_data.replicate(parts)),
            write.en.eq(Mux(port.w_stb & ~busy, 1 << part, 0)),
        ]
        with m.If(~busy):
            m.d.comb += read.addr.eq(word)
        read_part = Signal(range(parts))
        read_pending = Signal()
        m.d.sync += [read_pending.eq(port.r_stb), read_part.eq(part)]
        m.d.comb += [
            port.ack.eq(port.w_stb | read_pending),
            port.r_data.eq(Mux(busy, 0, read.data.word_select(read_part, BUS_DATA_WIDTH)
                               if parts > 1 else read.data)),
        ]
