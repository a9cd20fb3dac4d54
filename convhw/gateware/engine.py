"""``Engine``: the convolution engine behind one Wishbone slave.

Data path of one job (see docs/engine.md)::

    registers -> JobController -> PassSequencer -> WeightLoader -> Streamer
                                                       |              | input-buffer address
                                                  weight buffer   input buffer (2 cycles)
                                                       |              |
                                                       +----> SystolicArray (rows + cols + 1)
                                                                      |
                                       Accumulator: read ahead, add or init, write (2 cycles)

(cycle counts of the deep pipeline; all of them are in :mod:`convhw.timing`).

The host reaches the registers and three windows through the Wishbone slave: INPUT and WEIGHT
(buffer words split into 32-bit bus words, least significant first) and OUTPUT (each
accumulator value through the :class:`OutputStage`). Buffers may only be accessed while the
engine is idle: while it is busy, host writes are dropped and host reads return 0.
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, ResetInserter, Signal, Value, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from ..config import BUS_DATA_WIDTH, EngineConfig
from ..job_format import job_fields
from ..registers import engine_register_map, job_field_register
from ..timing import JobTiming, input_read_latency, job_timing
from .accumulator import Accumulator, AccumulatorEntry
from .control import JobController
from .job_registers import JobRegisters, job_member
from .output_stage import OutputStage
from .pass_sequencer import PassSequencer
from .register_file import RegisterFile
from .streamer import Streamer
from .systolic_array import SystolicArray
from .weight_loader import WeightLoader
from .wishbone import WishboneSignature, WishboneSlave

__all__ = ["Engine"]


class Engine(wiring.Component):
    """The whole engine for ``config``: one Wishbone B4 classic slave port, ``wb``.

    Its latencies, and the constants of the compiler's cycle model (:attr:`timing`), are those
    of :mod:`convhw.timing`.
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
        # The buffers and the accumulator are made here so that a simulation can reach them
        # directly (load the buffers, watch the accumulator's writes).
        self.input_buffer = memory.Memory(
            shape=unsigned(self._buffer_width(config.input_word_width,
                                              config.bus_words_per_input_word)),
            depth=config.input_depth, init=[])
        self.weight_buffer = memory.Memory(
            shape=unsigned(self._buffer_width(config.weight_word_width,
                                              config.bus_words_per_weight_word)),
            depth=config.weight_depth, init=[])
        self.accumulator = Accumulator(config)

    @staticmethod
    def input_read_for(config: EngineConfig) -> int:
        """Cycles from the streamer's outputs to the word at the array's input: the block
        RAM's, and with the deep pipeline a register of its data
        (:func:`convhw.timing.input_read_latency`)."""
        return input_read_latency(config)

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

    @property
    def timing(self) -> JobTiming:
        """The constants of the cycle model for this engine (:func:`convhw.timing.job_timing`)."""
        return job_timing(self._config)

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
        # Every job field from the register that holds it, as the definition lists them.
        job = Signal(JobRegisters(config))
        for path, _ in job_fields(config):
            register, field = job_field_register(path)
            value = getattr(getattr(regs, register.lower()), field.lower())
            m.d.comb += job_member(job, path).eq(value)

        m.submodules.control = control = JobController(config, drain_cycles=self.timing.drain)
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

        busy = control.busy
        m.d.comb += self.busy.eq(busy)
        windows = bus.windows
        deep = config.deep_pipeline
        self._buffer_window(m, windows.input, in_write, in_read, in_parts, busy, deep)
        self._buffer_window(m, windows.weight, w_write, w_read, w_parts, busy, deep)

        # -- address generator -> input buffer -> array --------------------------------------
        with m.If(busy):
            m.d.comb += [in_read.addr.eq(streamer.in_addr), w_read.addr.eq(loader.mem_addr)]
        m.d.comb += [
            loader.mem_data.eq(w_read.data),
            array.w_we.eq(loader.w_we),
            array.w_row.eq(loader.w_row),
            array.w_bank.eq(loader.w_bank),
            array.w_data.eq(loader.w_data),
        ]
        # The lane mode, through a register: it reaches every PE's operand multiplexer.
        depthwise = Signal()
        m.d.sync += depthwise.eq(job.fir_taps != 0)
        m.d.comb += array.depthwise.eq(depthwise)
        for c in range(cols):
            m.d.comb += array.lane_select[c].eq(job.lanes[c])
        # The input-buffer read takes `input_read_for` cycles: the block RAM's, then (deep
        # pipeline) a register of its data, so that the RAM's slow output does not reach into
        # the array's multiplexers and multipliers. The streamer's side signals are delayed to
        # match.
        word = Signal(config.input_word_width)
        registered = self.input_read_for(config) == 2
        domain = m.d.sync if registered else m.d.comb
        domain += word.eq(in_read.data[:config.input_word_width])
        side = (streamer.out_valid & busy, streamer.zero, streamer.write, streamer.bank,
                streamer.pass_last, streamer.acc_addr, streamer.init)
        for i in range(self.input_read_for(config)):
            delayed = tuple(Signal(Value.cast(v).shape(), name=f"{n}_read{i}")
                            for n, v in zip(("valid", "zero", "write", "bank", "last",
                                             "acc_addr", "init"), side))
            m.d.sync += [d.eq(v) for d, v in zip(delayed, side)]
            side = delayed
        valid1, zero1, write1, bank1, last1, acc_addr1, init1 = side
        m.d.comb += [
            array.in_valid.eq(valid1),
            array.in_word.eq(Mux(zero1, 0, word)),
            array.in_bank.eq(bank1),
            loader.pass_end.eq(valid1 & last1),
            loader.pass_end_bank.eq(bank1),
        ]

        # -- accumulator: the sums' entries travel beside the array, to reach the accumulator
        # `lead_for` cycles before the sums; only sums that are outputs are written (FIR mode
        # streams extra words per row).
        entry = Signal(AccumulatorEntry(config), name="acc_entry")
        m.d.comb += [entry.addr.eq(acc_addr1), entry.init.eq(init1),
                     entry.valid.eq(valid1 & write1)]
        for i in range(array.latency - Accumulator.lead_for(config)):
            delayed = Signal.like(entry, name=f"acc_entry_d{i}")
            m.d.sync += delayed.eq(entry)
            entry = delayed
        host_acc_addr = Signal.like(accumulator.host_addr)
        m.d.comb += [
            accumulator.entry.eq(entry),
            accumulator.sum.eq(array.out_psum),
            accumulator.sum_valid.eq(array.out_valid),
            accumulator.busy.eq(busy),
            accumulator.host_addr.eq(host_acc_addr),
        ]
        acc_data = accumulator.host_data

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
        values = Array(acc_data[c] for c in range(cols))
        in_range = column < cols
        acc_value = Mux(in_range & ~busy, values[column], 0)
        bias_value = Mux(in_range & ~busy, biases[column], 0)
        if config.deep_pipeline:
            # The entry comes a cycle late, from the accumulator's read register, and the
            # column's value is registered before the output stage adds the bias: the block
            # RAM's slow output, the column multiplexer and the adder are three paths.
            entry_read, selected = Signal(), Signal()
            acc_selected = Signal.like(output_stage.acc)
            bias_selected = Signal.like(output_stage.bias)
            m.d.sync += [entry_read.eq(read_pending), selected.eq(entry_read),
                         acc_selected.eq(acc_value), bias_selected.eq(bias_value)]
            read_pending, acc_value, bias_value = selected, acc_selected, bias_selected
        m.d.comb += [
            output_stage.valid.eq(read_pending),
            output_stage.acc.eq(acc_value),
            output_stage.bias.eq(bias_value),
            output_stage.multiplier.eq(multipliers[column]),
            output_stage.shift.eq(shifts[column]),
            output_stage.requantize.eq(regs.out_mode.requantize),
            output_stage.relu.eq(regs.out_mode.relu),
            port.ack.eq(output_stage.result_valid),
            port.r_data.eq(output_stage.result),
        ]
        return m

    @staticmethod
    def _buffer_window(m, port, write, read, parts, busy, registered):
        """A buffer behind a window: bus word ``a`` is part ``a % parts`` of buffer word
        ``a // parts`` (``parts`` is a power of two). Writes complete at once; reads one cycle
        later, or two when ``registered`` (the deep pipeline: the block RAM's output is
        registered before the bus's read multiplexer)."""
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
        m.d.sync += read_pending.eq(port.r_stb)
        with m.If(port.r_stb):
            m.d.sync += read_part.eq(part)
        data = read.data
        if registered:
            data = Signal.like(read.data)
            pending = Signal()
            m.d.sync += [data.eq(read.data), pending.eq(read_pending)]
            read_pending = pending
        m.d.comb += [
            port.ack.eq(port.w_stb | read_pending),
            port.r_data.eq(Mux(busy, 0, data.word_select(read_part, BUS_DATA_WIDTH)
                               if parts > 1 else data)),
        ]
