"""``ComputeCore``: the engine's datapath for one job at a time, and its buffers.

Data path of one job (see docs/engine.md)::

    job -> JobController -> PassSequencer -> WeightLoader -> Streamer
                                                 |              | input-buffer address
                                            weight buffer   input buffer (2 cycles)
                                                 |              |
                                                 +----> SystolicArray (rows + cols + 2)
                                                                |
                                 Accumulator: read ahead, add or init, write (2 cycles)

(cycle counts of the deep pipeline; all of them are in :mod:`convhw.timing`). With
``config.activation_offset`` each lane of the word read from the input buffer enters the array
as ``x - job.input_zero`` (signed, ``config.operand_width`` bits), 0 where the source is not a
real element, in the same cycle (no stage more).

Two forms, by ``banked``:

* *unbanked* (:class:`~convhw.gateware.engine.Engine`, fed by the host through windows): one
  accumulator of ``acc_depth`` entries; the job's addresses are used as they are; the input
  and weight buffers are single-ported (:class:`~convhw.gateware.single_port_ram.SinglePortRam`,
  the UP5K's SPRAM): the host writes them only while the core is idle;
* *banked* (the engine that runs descriptor lists, docs/memory.md): the input buffer's bank
  ``input_bank`` (its upper half when 1) and the weights from word ``weight_base`` on are the
  job's; the accumulator is two memories of ``acc_depth / 2`` entries, the job sums into bank
  ``acc_bank`` while the other bank's read port is free for the drain (``acc_read``).

The buffers' write ports are the loaders' (or the host's) at all times (unbanked: a write
takes the buffer's one port for its cycle); their read ports are the datapath's while ``busy``
and the host's (``input_read``, ``weight_read``) otherwise.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from amaranth.hdl import Cat, Module, Mux, ResetInserter, Signal, Value, unsigned
from amaranth.lib import data, memory, wiring
from amaranth.lib.wiring import In, Out

from ..config import EngineConfig
from ..timing import input_read_latency, job_timing
from .accumulator import Accumulator, AccumulatorEntry
from .control import JobController
from .family import family_of
from .job_registers import JobRegisters
from .pass_sequencer import PassSequencer
from .single_port_ram import SinglePortRam
from .streamer import Streamer
from .systolic_array import SystolicArray
from .weight_loader import WeightLoader

__all__ = ["BufferReadSignature", "ComputeCore"]


class BufferReadSignature(wiring.Signature):
    """A buffer's read port seen from the reader: ``data`` is word ``addr`` of ``latency``
    cycles before (the core's :meth:`ComputeCore.read_latency`)."""

    def __init__(self, addr_width: int, data_width: int) -> None:
        super().__init__({"addr": Out(addr_width), "data": In(data_width)})


class _ReadPort(NamedTuple):
    """A single-port buffer's read side, shaped like a ``lib.memory`` read port's."""

    addr: Signal
    data: Value


class ComputeCore(wiring.Component):
    """See the module documentation.

    Parameters
    ----------
    config : EngineConfig
    banked : bool
    input_width, weight_width : int, optional
        Bits of a buffer word in memory, if wider than the word (the unbanked engine keeps
        whole 32-bit bus words per buffer word); at least the word's bits.

    Attributes
    ----------
    job : In(JobRegisters(config))
        Held while the job runs.
    start, abort : In(1)
    input_bank : In(1)
    weight_base : In(address_width(weight_depth))
    acc_bank : In(1)
    busy, done, error : Out(1)
    ready : Out(1)
        A ``start`` is taken. Unbanked: while not ``busy``. Banked, a job is done once its
        pipeline is idle (:class:`JobController` ``overlap``): its last sums still reach the
        accumulator for a while (``acc_busy``), and a job may start meanwhile if it sums into
        the other bank and neither job uses the FIR lane mode (which changes how the array
        routes the operands still in it); otherwise ``ready`` waits for those sums.
    acc_busy : Out(2)
        Per accumulator bank: a job sums into it, or its last sums are still on their way. A
        drain of a bank must wait for it to fall.
    code : Out(8)
    cycles : Out(32)
    input_write, weight_write : In(write port: addr, data, en: a bit per part of the word,
        ``input_parts`` and ``weight_parts`` of them)
    input_read, weight_read : In(BufferReadSignature)
        Host reads while idle.
    acc_read : In(BufferReadSignature), acc_read_bank : In(1)
        Unbanked: the host's reads while idle. Banked: reads of bank ``acc_read_bank``, which
        must not be the bank a running job sums into.
    """

    def __init__(self, config: EngineConfig, *, banked: bool, input_width: int | None = None,
                 weight_width: int | None = None, input_parts: int = 1,
                 weight_parts: int = 1) -> None:
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        self._config = config
        self._banked = bool(banked)
        self._input_width = input_width or config.input_word_width
        self._weight_width = weight_width or config.weight_word_width
        in_aw = config.address_width(config.input_depth)
        w_aw = config.address_width(config.weight_depth)
        acc_depth = config.acc_depth // 2 if banked else config.acc_depth
        entries = data.ArrayLayout(unsigned(config.acc_width), config.cols)
        super().__init__({
            "job": In(JobRegisters(config)),
            "start": In(1), "abort": In(1),
            "input_bank": In(1), "weight_base": In(w_aw), "acc_bank": In(1),
            "busy": Out(1), "done": Out(1), "error": Out(1),
            "ready": Out(1), "acc_busy": Out(2),
            "code": Out(8), "cycles": Out(32),
            "input_write": In(self._write_signature(in_aw, self._input_width, input_parts)),
            "weight_write": In(self._write_signature(w_aw, self._weight_width, weight_parts)),
            "input_read": In(BufferReadSignature(in_aw, self._input_width)),
            "weight_read": In(BufferReadSignature(w_aw, self._weight_width)),
            "acc_read": In(BufferReadSignature(config.address_width(acc_depth), entries.size)),
            "acc_read_bank": In(1),
        })
        # The buffers are made here so that a simulation can load them directly. Banked (the
        # list engine), each is read by the job and written by the next job's loads in one
        # cycle: two ports. Unbanked (the host-fed engine), the host writes them only while the
        # core is idle (its window drops writes while busy) and the core reads them only while
        # busy: one port, which the UP5K's SPRAM is (SinglePortRam).
        if self._banked:
            self._input_ram = self._weight_ram = None
            self._input_buffer = memory.Memory(shape=unsigned(self._input_width),
                                               depth=config.input_depth, init=[])
            self._weight_buffer = memory.Memory(shape=unsigned(self._weight_width),
                                                depth=config.weight_depth, init=[])
        else:
            self._input_ram = SinglePortRam(width=self._input_width,
                                            depth=config.input_depth, parts=input_parts)
            self._weight_ram = SinglePortRam(width=self._weight_width,
                                             depth=config.weight_depth, parts=weight_parts)
        bank_config = dataclasses.replace(config, acc_depth=acc_depth)
        self.accumulators = [Accumulator(bank_config) for _ in range(2 if banked else 1)]

    @property
    def input_buffer(self) -> memory.Memory:
        """The input buffer's memory in simulation (loaded directly by a testbench)."""
        return self._input_buffer if self._banked else self._input_ram.memory

    @property
    def weight_buffer(self) -> memory.Memory:
        """The weight buffer's memory in simulation."""
        return self._weight_buffer if self._banked else self._weight_ram.memory

    @staticmethod
    def _write_signature(addr_width: int, width: int, parts: int) -> wiring.Signature:
        """A write port: ``en`` has a bit per part of the word (``parts`` parts of equal
        width), or one bit."""
        return wiring.Signature({"addr": Out(addr_width), "data": Out(width),
                                 "en": Out(parts)})

    @property
    def config(self) -> EngineConfig:
        return self._config

    @property
    def banked(self) -> bool:
        return self._banked

    @staticmethod
    def read_latency(config: EngineConfig) -> int:
        """Cycles of a host read of the input or weight buffer (and of the accumulator):
        the block RAM's, and with the deep pipeline the register of its data."""
        return 2 if config.deep_pipeline else 1

    def elaborate(self, platform) -> Module:
        m = Module()
        config = self._config
        cols = config.cols
        offered = self.job
        busy = Signal()              # the job controller's (assigned below)
        if self._banked:
            # The job's registers, copied when it starts. They come from the list controller's
            # compute queue, across the die: read from there, the streamer's address arithmetic
            # was the list engine's critical path on the ECP5 (13.5 ns, most of it routing).
            # The copy lies with the datapath, and what is offered may move on to the next job
            # while this one's last sums are still on their way. It follows what is offered in
            # every cycle no job runs, not only when one starts: the datapath does not read it
            # then (a job's tail beside it reads none of it). Its enable is the job
            # controller's state, not the start or `ready`, which come from the list
            # controller's queue and the offered job's bank and mode (on the ULX3S the path from
            # the compute queue's read pointer through `ready` to these ~500 flip-flops'
            # enables was 18.3 ns at one placement).
            job = Signal.like(self.job, name="job_copy", reset_less=True)
            input_bank = Signal(name="input_bank_copy", reset_less=True)
            weight_base = Signal.like(self.weight_base, name="weight_base_copy", reset_less=True)
            with m.If(~busy):
                m.d.sync += [job.eq(self.job), input_bank.eq(self.input_bank),
                             weight_base.eq(self.weight_base)]
        else:
            job, input_bank, weight_base = self.job, self.input_bank, self.weight_base

        # Banked, the list engine's job checker has checked every job (against the banks):
        # the controller starts the datapath without checking again.
        m.submodules.control = control = JobController(config,
                                                       drain_cycles=job_timing(config).drain,
                                                       checked=self._banked,
                                                       overlap=self._banked)
        flush = control.flush
        # The sequencer's stepping enable registered from the loader's and the streamer's next
        # readiness, but for an iCE40 (a 12 MHz clock, and no logic cells to spare).
        ready_ahead = family_of(platform) != "ice40"
        m.submodules.sequencer = sequencer = ResetInserter(flush)(
            PassSequencer(config, ready_ahead=ready_ahead))
        # Banked, a job may start while the last one's operands are still in the array: the
        # weight loader then goes on alternating the array's weight banks from where that job
        # left them, and keeps the bank of its last pass closed until the array is done with
        # it.
        m.submodules.loader = loader = ResetInserter(flush)(
            WeightLoader(config, keep_banks=self._banked))
        m.submodules.streamer = streamer = ResetInserter(flush)(Streamer(config))
        m.submodules.array = array = SystolicArray(config)

        m.d.comb += busy.eq(control.busy)
        m.d.comb += [
            control.job.eq(job),
            control.start.eq(self.start & self.ready),
            control.abort.eq(self.abort),
            self.busy.eq(busy),
            self.done.eq(control.done),
            self.error.eq(control.error),
            self.code.eq(control.code),
            self.cycles.eq(control.cycles),
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
            loader.passes_out_ready_next.eq(streamer.ready_next),
        ]
        if ready_ahead:
            m.d.comb += sequencer.ready_next.eq(loader.passes_in_ready_next)
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
        if self._banked:
            m.submodules.input_buffer = input_buffer = self._input_buffer
            m.submodules.weight_buffer = weight_buffer = self._weight_buffer
            in_parts, w_parts = len(self.input_write.en), len(self.weight_write.en)
            in_write = input_buffer.write_port(
                granularity=self._input_width // in_parts if in_parts > 1 else None)
            w_write = weight_buffer.write_port(
                granularity=self._weight_width // w_parts if w_parts > 1 else None)
            in_read = input_buffer.read_port()
            w_read = weight_buffer.read_port()
            for port, source in ((in_write, self.input_write), (w_write, self.weight_write)):
                m.d.comb += [port.addr.eq(source.addr), port.data.eq(source.data),
                             port.en.eq(source.en)]
        else:
            # One port each: a write (the host's, only while idle) takes the cycle's address;
            # otherwise the read's (the job's while busy, the host's while idle).
            m.submodules.input_buffer = input_ram = self._input_ram
            m.submodules.weight_buffer = weight_ram = self._weight_ram
            in_read = _ReadPort(Signal(len(input_ram.addr), name="input_read_addr"),
                                input_ram.r_data)
            w_read = _ReadPort(Signal(len(weight_ram.addr), name="weight_read_addr"),
                               weight_ram.r_data)
            for ram, source, read in ((input_ram, self.input_write, in_read),
                                      (weight_ram, self.weight_write, w_read)):
                m.d.comb += [ram.addr.eq(Mux(source.en.any(), source.addr, read.addr)),
                             ram.w_data.eq(source.data), ram.w_en.eq(source.en)]
        if self._banked:
            # A job's window lies in its bank (checked before it starts): the bank is the
            # address's top bit. Its weights start at weight_base.
            top = config.address_width(config.input_depth) - 1
            in_addr = Cat(streamer.in_addr[:top], input_bank)
            w_addr = loader.mem_addr + weight_base
        else:
            in_addr, w_addr = streamer.in_addr, loader.mem_addr
        with m.If(busy):
            m.d.comb += [in_read.addr.eq(in_addr), w_read.addr.eq(w_addr)]
        with m.Else():
            m.d.comb += [in_read.addr.eq(self.input_read.addr),
                         w_read.addr.eq(self.weight_read.addr)]
        latency = self.read_latency(config)
        for port, target in ((in_read, self.input_read), (w_read, self.weight_read)):
            if latency == 2:
                registered = Signal.like(port.data)
                m.d.sync += registered.eq(port.data)
                m.d.comb += target.data.eq(registered)
            else:
                m.d.comb += target.data.eq(port.data)

        # -- address generator -> input buffer -> array --------------------------------------
        m.d.comb += [
            loader.mem_data.eq(w_read.data),
            loader.fir_taps.eq(job.fir_taps),
            array.w_we.eq(loader.w_we),
            array.w_row.eq(loader.w_row),
            array.w_bank.eq(loader.w_bank),
            array.w_data.eq(loader.w_data),
        ]
        # The lane mode and the lanes, registered when a job may start: they reach every PE's
        # operand multiplexer, and they must stay the job's while its operands are in the
        # array, after the job is done and the next job's registers are offered. While a job
        # runs, `ready` is low; beside a job's tail it is high only if neither job uses the
        # FIR lane mode, and dense operands ignore the lanes. (Loaded on `ready`, not on the
        # start: see the job's copy.)
        depthwise = Signal()
        lanes = Signal.like(offered.lanes)
        with m.If(self.ready):
            m.d.sync += [depthwise.eq(offered.fir_taps != 0), lanes.eq(offered.lanes)]
        m.d.comb += array.depthwise.eq(depthwise)
        for c in range(cols):
            m.d.comb += array.lane_select[c].eq(lanes[c])
        # The input-buffer read takes `input_read_latency` cycles: the block RAM's, then (deep
        # pipeline) a register of its data, so that the RAM's slow output does not reach into
        # the array's multiplexers and multipliers. The streamer's side signals are delayed to
        # match.
        word = Signal(config.input_word_width)
        registered = input_read_latency(config) == 2
        domain = m.d.sync if registered else m.d.comb
        domain += word.eq(in_read.data[:config.input_word_width])
        # With the activation offset the job's zero point travels beside the word's address,
        # so that each word is offset by its own job's: banked, the job's copy follows what is
        # offered once the job's pipeline is idle, and only the margin of a cycle keeps that
        # after the job's last word has passed the subtract (input_width flip-flops per stage
        # instead of that margin).
        names = ("valid", "zero", "write", "bank", "last", "acc_addr", "init", "input_zero")
        side = (streamer.out_valid & busy, streamer.zero, streamer.write, streamer.bank,
                streamer.pass_last, streamer.acc_addr, streamer.init)
        if config.activation_offset:
            side += (job.input_zero,)
        for i in range(input_read_latency(config)):
            delayed = tuple(Signal(Value.cast(v).shape(), name=f"{n}_read{i}")
                            for n, v in zip(names, side))
            m.d.sync += [d.eq(v) for d, v in zip(delayed, side)]
            side = delayed
        valid1, zero1, write1, bank1, last1, acc_addr1, init1 = side[:7]
        # The row tags of joined FIR rows (timing.fir_shares_padding), beside the word.
        tagged = SystolicArray.tagged_for(config)
        if tagged:
            tags = Cat(streamer.word_row, streamer.sum_row)
            for i in range(input_read_latency(config)):
                delayed_tags = Signal(2, name=f"row_tags_read{i}")
                m.d.sync += delayed_tags.eq(tags)
                tags = delayed_tags
            m.d.comb += [array.in_word_row.eq(tags[0]), array.in_sum_row.eq(tags[1])]
        # The array's operands: the word's lanes, or 0 where the source is not a real element
        # (padding, a transposed layer's inserted zeros, a zero pass). With the activation
        # offset each lane is the unsigned element less the zero point, a signed
        # `operand_width`-bit value (the subtract sits before the array's input register, in
        # the same cycle as the multiplexer), and 0 there is the zero point itself.
        if config.activation_offset:
            iw, ow = config.input_width, config.operand_width
            input_zero1 = side[7]
            operands = Cat(*[(word[r * iw:(r + 1) * iw] - input_zero1)[:ow]
                             for r in range(config.rows)])
        else:
            operands = word
        m.d.comb += [
            array.in_valid.eq(valid1),
            array.in_word.eq(Mux(zero1, 0, operands)),
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
        # Banked, an entry travels with its job's bank, taken when the job starts: a job that
        # ends on an error stops with entries still on their way, and the next job in the
        # compute stage (another bank, perhaps one being drained) must not receive them.
        entry_bank = Signal(name="acc_entry_bank")
        if self._banked:
            # What the job that ended leaves behind in the array and the accumulator (the tail
            # of its sums, `control.tail`), and whether the next one may start beside it.
            fir = Signal()
            tail_bank = Signal()
            tail_fir = Signal()
            with m.If(control.start):
                m.d.sync += [entry_bank.eq(self.acc_bank), fir.eq(offered.fir_taps != 0)]
            with m.If(control.release):
                m.d.sync += [tail_bank.eq(entry_bank), tail_fir.eq(fir)]
            tail = control.tail
            m.d.comb += self.ready.eq(~busy & (~tail | ((self.acc_bank != tail_bank)
                                                        & (offered.fir_taps == 0)
                                                        & ~tail_fir)))
            for bank in range(2):
                m.d.comb += self.acc_busy[bank].eq(busy & (self.acc_bank == bank)
                                                   | tail & (tail_bank == bank))
        else:
            m.d.comb += [self.ready.eq(~busy), self.acc_busy.eq(Cat(busy, 0))]
        for i in range(array.latency - Accumulator.lead_for(config)):
            delayed = Signal.like(entry, name=f"acc_entry_d{i}")
            m.d.sync += delayed.eq(entry)
            entry = delayed
            if self._banked:
                delayed_bank = Signal(name=f"acc_entry_bank_d{i}")
                m.d.sync += delayed_bank.eq(entry_bank)
                entry_bank = delayed_bank
        for bank, accumulator in enumerate(self.accumulators):
            m.submodules[f"accumulator{bank}" if self._banked else "accumulator"] = accumulator
            # The running job's bank gives the read port to the read-add-write (the other
            # bank's serves the drain); an entry goes to the bank it travels with.
            its_own = (entry_bank == bank) if self._banked else 1
            m.d.comb += [
                accumulator.entry.addr.eq(entry.addr),
                accumulator.entry.init.eq(entry.init),
                accumulator.entry.valid.eq(entry.valid & its_own),
                accumulator.sum.eq(array.out_psum),
                accumulator.sum_valid.eq(array.out_valid),
                accumulator.busy.eq(self.acc_busy[bank]),
                accumulator.host_addr.eq(self.acc_read.addr),
            ]
        if self._banked:
            # The bank of the data arriving now: the one of the address its latency ago.
            bank = self.acc_read_bank
            for i in range(Accumulator.host_read_latency_for(config)):
                delayed = Signal(name=f"acc_read_bank_d{i}")
                m.d.sync += delayed.eq(bank)
                bank = delayed
            m.d.comb += self.acc_read.data.eq(
                Mux(bank, self.accumulators[1].host_data, self.accumulators[0].host_data))
        else:
            m.d.comb += self.acc_read.data.eq(self.accumulators[0].host_data)
        return m
