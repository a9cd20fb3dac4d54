"""``Engine``: the convolution engine behind one Wishbone slave, fed by the host.

The job's datapath and buffers are a :class:`~convhw.gateware.compute_core.ComputeCore`
(unbanked); the registers program it, and the host fills and reads its buffers through windows.

The host reaches the registers and three windows through the Wishbone slave: INPUT and WEIGHT
(buffer words split into 32-bit bus words, least significant first) and OUTPUT (each
accumulator value through the :class:`OutputStage`). Buffers may only be accessed while the
engine is idle: while it is busy, host writes are dropped and host reads return 0.
"""

from __future__ import annotations

from amaranth.hdl import Array, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..config import BUS_DATA_WIDTH, EngineConfig
from ..job_format import job_fields
from ..registers import engine_register_map, job_field_register
from ..timing import JobTiming, input_read_latency, job_timing
from .compute_core import ComputeCore
from .job_registers import job_member
from .output_stage import OutputStage
from .register_file import RegisterFile
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
        # The datapath is made here so that a simulation can reach its buffers and accumulator
        # directly (load the buffers, watch the accumulator's writes). The buffers keep whole
        # bus words, written with a granularity of one.
        in_parts = config.bus_words_per_input_word
        w_parts = config.bus_words_per_weight_word
        self.core = ComputeCore(
            config, banked=False,
            input_width=self._buffer_width(config.input_word_width, in_parts),
            weight_width=self._buffer_width(config.weight_word_width, w_parts),
            input_parts=in_parts, weight_parts=w_parts)
        self.accumulator = self.core.accumulators[0]

    # Properties, not attributes: the buffers' behavioural memories exist only once asked for
    # (an iCE40 build has SPRAM instead and would warn of memories it never used).
    @property
    def input_buffer(self):
        """The input buffer's memory in simulation (loaded directly by a testbench)."""
        return self.core.input_buffer

    @property
    def weight_buffer(self):
        """The weight buffer's memory in simulation."""
        return self.core.weight_buffer

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

        # While a job runs its registers are the job: a write to any but CTRL (for ABORT) is
        # refused with ERR, never applied to the running job. The address is decoded a cycle
        # before the access is taken (a cycle more per access, which the host's UART or bus
        # hides): on the UP5K the decode into the register file's write enables in one cycle
        # was the iCEBreaker's critical path.
        m.submodules.bus = bus = WishboneSlave(regmap, unlocked=("CTRL",),
                                               registered_decode=True)
        m.submodules.regfile = regfile = RegisterFile(regmap)
        wiring.connect(m, bus.registers, regfile.bus)
        wiring.connect(m, wiring.flipped(self.wb), bus.wb)
        regs = regfile.regs

        # -- job registers -> the core's job struct --------------------------------------------
        # Every job field from the register that holds it, as the definition lists them.
        m.submodules.core = core = self.core
        for path, _ in job_fields(config):
            register, field = job_field_register(path)
            value = getattr(getattr(regs, register.lower()), field.lower())
            m.d.comb += job_member(core.job, path).eq(value)
        busy = core.busy
        m.d.comb += [
            bus.locked.eq(busy),
            core.start.eq(regs.ctrl.start),
            core.abort.eq(regs.ctrl.abort),
            regs.status.busy.eq(busy),
            regs.status.done.eq(core.done),
            regs.status.error.eq(core.error),
            regs.error.code.eq(core.code),
            regs.cycles.count.eq(core.cycles),
            self.busy.eq(busy),
        ]

        # -- INPUT and WEIGHT windows: the core's buffers while it is idle -----------------------
        windows = bus.windows
        deep = config.deep_pipeline
        in_parts = config.bus_words_per_input_word
        w_parts = config.bus_words_per_weight_word
        self._buffer_window(m, windows.input, core.input_write, core.input_read, in_parts,
                            busy, deep)
        self._buffer_window(m, windows.weight, core.weight_write, core.weight_read, w_parts,
                            busy, deep)

        # -- OUTPUT window: accumulator entry -> output stage -> bus --------------------------
        m.submodules.output_stage = output_stage = OutputStage(config)
        port = windows.output
        stride = config.output_stride
        col_bits = (stride - 1).bit_length()
        column = Signal(range(stride))
        read_pending = Signal()
        m.d.comb += core.acc_read.addr.eq(port.addr >> col_bits)
        acc_data = data.View(data.ArrayLayout(unsigned(config.acc_width), cols),
                             core.acc_read.data)
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
        later, or two when ``registered`` (the deep pipeline: the core registers the block
        RAM's output before the bus's read multiplexer)."""
        part_bits = (parts - 1).bit_length()
        word = port.addr >> part_bits
        part = port.addr[:part_bits] if part_bits else 0
        m.d.comb += [
            write.addr.eq(word),
            write.data.eq(port.w_data.replicate(parts)),
            write.en.eq(Mux(port.w_stb & ~busy, (1 << part) if parts > 1 else 1, 0)),
            read.addr.eq(word),
        ]
        read_part = Signal(range(parts))
        pending = Signal()
        m.d.sync += pending.eq(port.r_stb)
        with m.If(port.r_stb):
            m.d.sync += read_part.eq(part)
        if registered:
            late = Signal()
            late_part = Signal.like(read_part)
            m.d.sync += [late.eq(pending), late_part.eq(read_part)]
            pending, read_part = late, late_part
        data = read.data
        m.d.comb += [
            port.ack.eq(port.w_stb | pending),
            port.r_data.eq(Mux(busy, 0, data.word_select(read_part, BUS_DATA_WIDTH)
                               if parts > 1 else data)),
        ]
