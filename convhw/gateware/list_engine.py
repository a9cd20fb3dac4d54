"""``ListEngine``: the engine that feeds itself, running descriptor lists from memory.

Blocks (docs/memory.md)::

    control slave (AXI4-Lite | Wishbone) -> RegisterFile: LIST_ADDR, CTRL, STATUS, ERROR, ...
                                                 |
    DescriptorFetcher -> JobChecker -> ListController --> input / weight / params loads
          |                                  |       --> ComputeCore (banked buffers)
          |                                  |       --> OutputWriter (drain)
    ReadArbiter (fetcher, 3 InputLoaders) ---+--> memory master (AXI4 | Wishbone pipelined)
                                OutputWriter writes -^

The column parameters of the jobs in flight live in a small memory, one slot per job
(:attr:`ListController.slots`): the compute stage reads the FIR lanes of its job's slot, the
drain the bias, multiplier and shift of its own.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import data, fifo, memory, wiring
from amaranth.lib.wiring import In, Out

from .. import timing
from ..config import EngineConfig
from ..descriptor import column_params
from ..job_format import AXES, AXIS_FIELDS
from ..registers import list_register_map
from .accumulator import Accumulator
from .axi4 import Axi4LiteSignature, Axi4Master, Axi4Signature
from .axi4_lite_slave import Axi4LiteSlave
from .compute_core import ComputeCore
from .descriptor_fetcher import DescriptorFetcher
from .input_loader import BufferFormat, InputLoader
from .job_checker import JobChecker
from .list_controller import ListController
from .memory_port import MemoryPortSignature
from .output_writer import OutputWriter
from .read_arbiter import ReadArbiter
from .register_file import RegisterFile
from .wishbone import WishboneSignature, WishboneSlave
from .wishbone_master import WishboneMaster, WishbonePipelinedSignature

__all__ = ["ListEngine"]

ADDR_WIDTH = 32


class ListEngine(wiring.Component):
    """See the module documentation.

    Parameters
    ----------
    config : EngineConfig
        ``config.bus`` chooses the ports: ``"axi4"``: ``ctrl`` is AXI4-Lite and ``mem`` AXI4;
        ``"wishbone"``: ``ctrl`` is Wishbone B4 classic and ``mem`` Wishbone B4 pipelined.
    slots : int
        Jobs in flight at most.
    memory_port : bool
        ``mem`` is the engine's memory port itself
        (:class:`~convhw.gateware.memory_port.MemoryPortSignature`, ``memory_width`` bits, 32-bit
        byte addresses) instead of a bus: a system attaches its own master (the ULX3S's SDRAM:
        :class:`~convhw.gateware.litedram_master.LiteDramMaster`). The control port is still
        ``config.bus``'s. The list cycle model's bus timing is then not the master's.

    Attributes
    ----------
    ctrl : In(control bus)
    mem : Out(memory bus, or the memory port)
    irq : Out(1)
    busy : Out(1)
    """

    def __init__(self, config: EngineConfig, *, slots: int = timing.LIST_SLOTS,
                 memory_port: bool = False):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        self._config = config
        self._slots = slots
        self._memory_port = bool(memory_port)
        self._map = list_register_map(config)
        if config.bus == "axi4":
            ctrl = Axi4LiteSignature(32, max(12, self._map.address_width))
            mem = Axi4Signature(config.memory_width, ADDR_WIDTH)
        else:
            ctrl = WishboneSignature(self._map.bus_address_width)
            mem = WishbonePipelinedSignature(config.memory_width, ADDR_WIDTH)
        if self._memory_port:
            mem = MemoryPortSignature(config.memory_width, ADDR_WIDTH)
        super().__init__({"ctrl": In(ctrl), "mem": Out(mem), "irq": Out(1), "busy": Out(1)})
        self.core = ComputeCore(config, banked=True)

    @property
    def config(self) -> EngineConfig:
        return self._config

    @property
    def register_map(self):
        return self._map

    def elaborate(self, platform) -> Module:
        m = Module()
        config, slots = self._config, self._slots
        cols = config.cols

        # -- control port and registers ------------------------------------------------------
        m.submodules.regfile = regfile = RegisterFile(self._map)
        if config.bus == "axi4":
            m.submodules.ctrl = slave = Axi4LiteSlave(self._map, unlocked=("CTRL", "IRQ_CLEAR"))
            wiring.connect(m, wiring.flipped(self.ctrl), slave.axi)
        else:
            m.submodules.ctrl = slave = WishboneSlave(self._map, unlocked=("CTRL", "IRQ_CLEAR"))
            wiring.connect(m, wiring.flipped(self.ctrl), slave.wb)
        wiring.connect(m, slave.registers, regfile.bus)
        regs = regfile.regs

        # -- the list's front: fetch, check, schedule -----------------------------------------
        m.submodules.fetcher = fetcher = DescriptorFetcher(config, ADDR_WIDTH)
        m.submodules.checker = checker = JobChecker(config)
        m.submodules.controller = controller = ListController(config, slots=slots)
        wiring.connect(m, fetcher.jobs, checker.entries)
        wiring.connect(m, checker.checked, controller.jobs)
        m.d.comb += [
            controller.start.eq(regs.ctrl.start),
            controller.abort.eq(regs.ctrl.abort),
            controller.irq_clear.eq(regs.irq_clear.clear),
            fetcher.start.eq(controller.fetch_start),
            fetcher.abort.eq(controller.fetch_abort),
            fetcher.list_addr.eq(regs.list_addr.value),
            # (The checker's `busy`: an entry it took from the fetcher's queue before the list
            # ended is dropped before the engine is idle, not offered to the next list.)
            controller.fetch_busy.eq(fetcher.busy | checker.entries.valid | checker.busy),
            regs.status.busy.eq(controller.busy),
            regs.status.done.eq(controller.done),
            regs.status.error.eq(controller.error),
            regs.status.irq.eq(controller.irq),
            regs.error.code.eq(controller.code),
            regs.error.job.eq(controller.error_job),
            regs.cycles.count.eq(controller.cycles),
            regs.busy_cycles.count.eq(controller.busy_cycles),
            self.irq.eq(controller.irq & regs.irq_enable.enable),
            self.busy.eq(controller.busy),
        ]
        # Register writes while a list runs are refused (the bus answers an error), never
        # applied to it: only CTRL (ABORT) and IRQ_CLEAR are open.
        m.d.comb += slave.locked.eq(controller.busy)

        # -- loads: three loaders and the fetcher on one read port ------------------------------
        m.submodules.arbiter = arbiter = ReadArbiter(4, config.memory_width, ADDR_WIDTH,
                                                     depth=timing.ARBITER_DEPTH)
        loaders = {
            "input": InputLoader(config, ADDR_WIDTH),
            "weight": InputLoader(config, ADDR_WIDTH, windowed=False,
                                  buffer=BufferFormat.for_weights(config)),
            "params": InputLoader(config, ADDR_WIDTH, queue_depth=timing.PARAMS_QUEUE,
                                  windowed=False,
                                  buffer=BufferFormat.for_params(config, slots)),
        }
        wiring.connect(m, fetcher.memory, arbiter.clients[0])
        for i, (name, loader) in enumerate(loaders.items()):
            m.submodules[f"{name}_loader"] = loader
            wiring.connect(m, loader.read_cmd, arbiter.clients[i + 1].read_cmd)
            wiring.connect(m, arbiter.clients[i + 1].read_data, loader.read_data)
            # A loader's `done` waits in a queue until its job is at the compute stage: were
            # it to wait in the loader, the loader would stop taking read beats, and the beats
            # of an older job's load behind them on the shared read channel would never come
            # (the older job waits for them: a deadlock). A loader has at most `slots`
            # commands not yet acknowledged.
            queue = fifo.SyncFIFOBuffered(width=1, depth=slots + 1)
            m.submodules[f"{name}_done_queue"] = queue
            done = getattr(controller, f"{name}_done")
            m.d.comb += [
                queue.w_data.eq(loader.done.payload.error),
                queue.w_en.eq(loader.done.valid),
                loader.done.ready.eq(queue.w_rdy),
                done.valid.eq(queue.r_rdy),
                done.payload.error.eq(queue.r_data),
                queue.r_en.eq(done.ready),
            ]
        # The input window.
        job = controller.input_load.payload
        d = job.descriptor
        cmd = loaders["input"].command
        m.d.comb += [
            cmd.valid.eq(controller.input_load.valid),
            controller.input_load.ready.eq(cmd.ready),
            cmd.payload.addr.eq(d.input_addr),
            cmd.payload.pixel_pitch.eq(d.input_pixel_pitch),
            cmd.payload.row_pitch.eq(d.input_row_pitch),
            cmd.payload.plane_pitch.eq(d.input_plane_pitch),
            cmd.payload.in_chunks.eq(d.in_chunks),
            cmd.payload.bank.eq(d.input_bank),
            cmd.payload.base.eq(0),
        ]
        for axis in AXES:
            for name in ("seg0_start", "seg0_len", "seg1_start", "seg1_len"):
                m.d.comb += getattr(cmd.payload, axis.lower())[name].eq(
                    getattr(d, f"{axis.lower()}_{name}"))
        # The weights: WEIGHT_WORDS words from WEIGHT_ADDR to WEIGHT_BASE, one block.
        job = controller.weight_load.payload
        cmd = loaders["weight"].command
        m.d.comb += [
            cmd.valid.eq(controller.weight_load.valid),
            controller.weight_load.ready.eq(cmd.ready),
            cmd.payload.addr.eq(job.descriptor.weight_addr),
            cmd.payload.words.eq(job.descriptor.weight_words),
            cmd.payload.base.eq(job.descriptor.weight_base),
        ]
        # The column parameters: `cols` records into the job's slot.
        job = controller.params_load.payload
        cmd = loaders["params"].command
        m.d.comb += [
            cmd.valid.eq(controller.params_load.valid),
            controller.params_load.ready.eq(cmd.ready),
            cmd.payload.addr.eq(job.descriptor.params_addr),
            cmd.payload.words.eq(cols),
            cmd.payload.base.eq(job.slot * cols),
        ]

        # -- buffers ---------------------------------------------------------------------------
        m.submodules.core = core = self.core
        for name, port in (("input", core.input_write), ("weight", core.weight_write)):
            buffer = loaders[name].buffer
            m.d.comb += [port.addr.eq(buffer.addr), port.data.eq(buffer.data),
                         port.en.eq(buffer.en)]
        # Column parameters: a slot is one word of `cols` records; the loader writes a record.
        fmt = column_params(config)
        params = memory.Memory(shape=data.ArrayLayout(8 * fmt.size, cols), depth=slots, init=[])
        m.submodules.params = params
        p_write = params.write_port(granularity=1)
        p_buffer = loaders["params"].buffer
        m.d.comb += [
            p_write.addr.eq(p_buffer.addr // cols),
            p_write.data.eq(p_buffer.data.replicate(cols)),
            p_write.en.eq(p_buffer.en << (p_buffer.addr % cols)),
        ]
        compute_params = params.read_port(domain="comb")
        drain_params = params.read_port(domain="comb")

        def field(word, name):
            f = fmt[name]
            return word[32 * f.word + f.offset:32 * f.word + f.offset + f.width]

        # -- compute ---------------------------------------------------------------------------
        c_job = controller.compute.payload
        cd = c_job.descriptor
        m.d.comb += compute_params.addr.eq(c_job.slot)
        structure = core.job
        for d_index, axis in enumerate(AXES):
            for f in AXIS_FIELDS:
                m.d.comb += structure.axes[d_index][f.name].eq(
                    getattr(cd, f"{axis.lower()}_{f.name}"))
        m.d.comb += [
            structure.transposed.eq(cd.transposed),
            structure.padding_mode.eq(cd.padding_mode),
            structure.accumulate.eq(cd.accumulate),
            structure.skip_borders.eq(cd.skip_borders),
            structure.in_chunks.eq(cd.in_chunks),
            structure.fir_taps.eq(cd.fir_taps),
            # (the fetcher refused a zero point beyond input_width bits, or any without the
            # activation offset, which the datapath then does not read)
            structure.input_zero.eq(cd.input_zero if config.activation_offset else 0),
            core.input_bank.eq(cd.input_bank),
            core.weight_base.eq(cd.weight_base),
            core.acc_bank.eq(cd.acc_bank),
        ]
        for c in range(cols):
            m.d.comb += structure.lanes[c].eq(field(compute_params.data[c], "LANE"))
        # A job runs from its start until the core is idle again (busy rises the cycle after
        # start); compute_done reports it. The core is idle once the job's pipeline is: its
        # last sums still reach the accumulator behind the next job (`core.ready` says when
        # that may start, `core.acc_busy` when its bank may be drained).
        computing = Signal()
        started = Signal()
        m.d.comb += [
            controller.compute.ready.eq(~computing & core.ready),
            core.start.eq(controller.compute.valid & ~computing & core.ready),
            core.abort.eq(controller.compute_flush),
        ]
        m.d.comb += controller.core_busy.eq(core.busy)
        with m.If(core.start):
            m.d.sync += [computing.eq(1), started.eq(0)]
        with m.Elif(computing & core.busy):
            m.d.sync += started.eq(1)
        done_now = computing & started & ~core.busy
        m.d.comb += [
            controller.compute_done.valid.eq(done_now),
            controller.compute_done.payload.error.eq(core.error),
        ]
        with m.If(done_now & controller.compute_done.ready | controller.compute_flush):
            m.d.sync += [computing.eq(0), started.eq(0)]

        # -- drain -----------------------------------------------------------------------------
        m.submodules.writer = writer = OutputWriter(
            config, ADDR_WIDTH, acc_read_latency=Accumulator.host_read_latency_for(config))
        d_job = controller.drain.payload
        dd = d_job.descriptor
        w_cmd = writer.command
        # A bank is drained once the last sums of its job are in (`core.acc_busy`; no job
        # starts on a bank with a drain pending, so the bank stays quiet once it is).
        quiet = ~core.acc_busy.bit_select(dd.acc_bank, 1)
        m.d.comb += [
            drain_params.addr.eq(d_job.slot),
            w_cmd.valid.eq(controller.drain.valid & quiet),
            controller.drain.ready.eq(w_cmd.ready & quiet),
            w_cmd.payload.addr.eq(dd.output_addr),
            w_cmd.payload.pixel_pitch.eq(dd.output_pixel_pitch),
            w_cmd.payload.row_pitch.eq(dd.output_row_pitch),
            w_cmd.payload.plane_pitch.eq(dd.output_plane_pitch),
            w_cmd.payload.out_channels.eq(dd.out_channels),
            # (FLOAT_REQUANTIZE's results are 8-bit too; the fetcher refused it on an engine
            # without float_output)
            w_cmd.payload.requantize.eq(dd.requantize | dd.float_requantize),
            w_cmd.payload.relu.eq(dd.relu),
            w_cmd.payload.bank.eq(dd.acc_bank),
        ]
        for axis in AXES:
            for name in ("out_start", "out_len"):
                m.d.comb += getattr(w_cmd.payload, axis.lower())[name].eq(
                    getattr(dd, f"{axis.lower()}_{name}"))
        for c in range(cols):
            word = drain_params.data[c]
            column = w_cmd.payload.columns[c]
            m.d.comb += [column.bias.eq(field(word, "BIAS")), column.mult.eq(field(word, "MULT")),
                         column.shift.eq(field(word, "SHIFT"))]
            if config.float_output:
                m.d.comb += [column.f32_bias.eq(field(word, "F32_BIAS")),
                             column.f32_mult.eq(field(word, "F32_MULT"))]
        if config.float_output:
            m.d.comb += [w_cmd.payload.float.eq(dd.float_requantize),
                         w_cmd.payload.output_zero.eq(dd.output_zero)]
        top = config.address_width(config.acc_depth) - 1
        m.d.comb += [
            core.acc_read.addr.eq(writer.acc_addr[:top]),
            core.acc_read_bank.eq(writer.acc_addr[top]),
            writer.acc_data.eq(core.acc_read.data),
        ]
        wiring.connect(m, writer.done, controller.drain_done)

        # -- the memory master -----------------------------------------------------------------
        if self._memory_port:
            port = wiring.flipped(self.mem)
        elif config.bus == "axi4":
            m.submodules.master = master = Axi4Master(config.memory_width, ADDR_WIDTH)
            wiring.connect(m, master.axi, wiring.flipped(self.mem))
            port = master.port
        else:
            m.submodules.master = master = WishboneMaster(config.memory_width, ADDR_WIDTH)
            wiring.connect(m, master.bus, wiring.flipped(self.mem))
            port = master.port
        wiring.connect(m, arbiter.port.read_cmd, port.read_cmd)
        wiring.connect(m, port.read_data, arbiter.port.read_data)
        wiring.connect(m, writer.write_cmd, port.write_cmd)
        wiring.connect(m, writer.write_data, port.write_data)
        wiring.connect(m, port.write_resp, writer.write_resp)
        return m
