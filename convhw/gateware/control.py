"""The job controller: start, done, busy, error code and cycle counter."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .. import timing
from ..config import EngineConfig
from ..job_format import DIMS, PaddingMode
from ..registers import ErrorCode
from ..timing import check_products
from .job_registers import JobRegisters, fir_refused

__all__ = ["ErrorCode", "JobController"]


class JobController(wiring.Component):
    """Checks a job's registers, runs it, and reports.

    On ``start`` (in idle) the controller spends :attr:`check_cycles` cycles checking the
    registers; an illegal configuration ends the job at once with ``error`` and its
    :class:`ErrorCode`, without touching the datapath. A legal one pulses ``job_start`` and runs
    until ``pipeline_idle``; then the last results drain through the array and the accumulator
    for ``drain_cycles`` cycles and the job is done. ``abort``, or a ``window_miss`` reported
    by the address generator, stops the job: ``flush`` is high for one cycle so that the
    datapath returns to idle, and the engine is usable again at once.

    ``cycles`` counts the cycles ``busy`` is high: from the cycle after ``start`` up to and
    including the cycle before ``done`` rises.

    With ``checked`` (the list engine's datapath, whose job checker has checked every job
    before it starts) the controller checks nothing: ``job_start`` follows ``start`` after
    :attr:`check_cycles` cycles (one; two with the deep pipeline) and no job ends with a
    check's error.

    With ``overlap`` (the list engine's datapath) the job is done as soon as the pipeline is
    idle: ``release`` pulses in that cycle, ``done`` rises after it and the controller takes
    the next ``start`` at once, while the last results drain through the array and the
    accumulator for ``drain_cycles`` cycles behind it (``tail`` high). Whoever starts a job
    then must know that the two may meet (:class:`~convhw.gateware.compute_core.ComputeCore`
    starts only a job that sums into the other accumulator bank, neither in the FIR lane mode).
    ``abort`` cuts the tail short.
    """

    def __init__(self, config: EngineConfig, *, drain_cycles: int, checked: bool = False,
                 overlap: bool = False):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        self._config = config
        self._drain_cycles = drain_cycles
        self._checked = bool(checked)
        self._overlap = bool(overlap)
        super().__init__({
            "job": In(JobRegisters(config)),
            "start": In(1),
            "abort": In(1),
            "pipeline_idle": In(1),
            "window_miss": In(1),
            "job_start": Out(1),
            "flush": Out(1),
            "busy": Out(1),
            "done": Out(1),
            "release": Out(1),
            "tail": Out(1),
            "error": Out(1),
            "code": Out(unsigned(8)),
            "cycles": Out(unsigned(32)),
        })

    @staticmethod
    def check_cycles_for(config: EngineConfig, *, checked: bool = False) -> int:
        """Cycles spent checking the registers after ``start``: per factor of
        :func:`convhw.timing.check_products` one (two with the deep pipeline, which registers
        each product before saturating it), and three to compare the last product and decide
        from registers (:func:`convhw.timing.check_cycles`); with ``checked``, one (two)."""
        return timing.check_cycles(config, checked=checked)

    @property
    def check_cycles(self) -> int:
        return self.check_cycles_for(self._config, checked=self._checked)

    @property
    def drain_cycles(self) -> int:
        return self._drain_cycles

    def elaborate(self, platform) -> Module:
        m = Module()
        config = self._config
        check_cycles = self.check_cycles
        step = Signal(range(check_cycles))
        if self._checked:
            code = Signal(unsigned(8))       # nothing to check: 0
        else:
            code = self._check_code(m, step)
        checking = Signal()
        # Whether the decision goes through registers: always after checks (whose comparators
        # would otherwise lead through the error code into the datapath's start in one cycle:
        # the up5k engine's critical path, 53 ns), and with the deep pipeline.
        registered = config.deep_pipeline or not self._checked
        if registered:
            # Decided in the cycle before the last one and acted on from registers: `job_start`
            # fans out to the whole datapath, so it comes straight from a flip-flop.
            decided = Signal(unsigned(8))
            go = Signal()
            m.d.sync += [decided.eq(code),
                         go.eq(checking & (step == check_cycles - 2) & (code == 0)
                               & ~self.abort)]
            m.d.comb += self.job_start.eq(go)
            code = decided
        # An ABORT while the registers are checked ends the job there, before it starts; one in
        # the last cycle of the checks, when the deep pipeline's start has already gone out,
        # is carried into the first cycle of RUN, which flushes the datapath.
        abort_pending = Signal()

        drain = Signal(range(self._drain_cycles + 1))
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start & self.abort):
                    # START with ABORT: a job aborted before it began.
                    m.d.sync += [self.cycles.eq(0), self.done.eq(1), self.error.eq(1),
                                 self.code.eq(ErrorCode.ABORTED)]
                with m.Elif(self.start):
                    m.d.sync += [self.cycles.eq(0), self.done.eq(0), self.error.eq(0),
                                 self.code.eq(0), step.eq(0), abort_pending.eq(0)]
                    m.next = "CHECK"
            with m.State("CHECK"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [self.cycles.eq(self.cycles + 1), step.eq(step + 1)]
                m.d.comb += checking.eq(1)
                started = (step == check_cycles - 1) & (code == 0)
                if registered:
                    started &= go
                with m.If(self.abort & ~started):
                    m.d.sync += [self.code.eq(ErrorCode.ABORTED), self.error.eq(1),
                                 self.done.eq(1)]
                    m.next = "IDLE"
                with m.Elif(step == check_cycles - 1):
                    m.d.sync += abort_pending.eq(self.abort)
                    with m.If(code != 0):
                        m.d.sync += [self.code.eq(code), self.error.eq(1), self.done.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        if not registered:
                            m.d.comb += self.job_start.eq(1)
                        m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += self.cycles.eq(self.cycles + 1)
                aborted = self.abort | abort_pending
                with m.If(aborted | self.window_miss):
                    m.d.comb += self.flush.eq(1)
                    m.d.sync += [self.code.eq(Mux(aborted, ErrorCode.ABORTED,
                                                   ErrorCode.WINDOW_MISS)), self.error.eq(1),
                                 self.done.eq(1), abort_pending.eq(0)]
                    m.next = "IDLE"
                with m.Elif(self.pipeline_idle):
                    m.d.sync += drain.eq(self._drain_cycles)
                    if self._overlap:
                        m.d.comb += self.release.eq(1)
                        m.d.sync += self.done.eq(1)
                        m.next = "IDLE"
                    else:
                        m.next = "DRAIN"
            with m.State("DRAIN"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [self.cycles.eq(self.cycles + 1), drain.eq(drain - 1)]
                with m.If(self.abort):
                    m.d.comb += self.flush.eq(1)
                    m.d.sync += [self.code.eq(ErrorCode.ABORTED), self.error.eq(1),
                                 self.done.eq(1)]
                    m.next = "IDLE"
                with m.Elif(drain <= 1):
                    m.d.sync += self.done.eq(1)
                    m.next = "IDLE"
        if self._overlap:
            # The drain counts down behind whatever runs next. `tail` (drain != 0) comes from a
            # register of its own, loaded with that value's next state: through the compute
            # core's bank-busy flags it gates the output writer's drain command, and from the
            # counter's comparator that was the list engine's critical path on the ECP5
            # (12.6 ns, 10.6 of it routing).
            tail = Signal()
            m.d.comb += self.tail.eq(tail)
            with m.If(self.abort):
                m.d.sync += [drain.eq(0), tail.eq(0)]
            with m.Elif(self.release):
                m.d.sync += tail.eq(self._drain_cycles != 0)
            with m.Elif(drain != 0):
                m.d.sync += [drain.eq(drain - 1), tail.eq(drain != 1)]
        return m

    def _check_code(self, m: Module, step: Signal) -> Signal:
        """The checks of the registers, one factor per cycle (``step``); the error code their
        results give in the last cycles of the checks (0: none)."""
        config = self._config
        job = self.job
        axes = [job.axes[d] for d in range(DIMS)]

        # The products, one factor per cycle on one multiplier. Each saturates at a value above
        # every limit, so that it stays narrow whatever the registers hold.
        products = check_products(config)
        coord_limit = (1 << config.coord_width) - 1
        limits = (config.acc_depth, config.input_depth, config.weight_depth // config.rows,
                  coord_limit, coord_limit, coord_limit)[:len(products)]
        width = max(limits).bit_length() + 1
        factors = []
        for product in products:
            for d, name in product:
                if d is None:
                    factors.append(getattr(job, name))
                elif name == "window":
                    factors.append(axes[d].seg0_len + axes[d].seg1_len)
                elif name == "out_end":
                    factors.append((axes[d].out_start + axes[d].out_len - 1)
                                   [:config.coord_width + 1])
                else:
                    factors.append(getattr(axes[d], name))
        per_factor = timing.check_cycles_per_factor(config)
        # Factor i is used in cycles i*per_factor .. i*per_factor + per_factor - 1 of the
        # checks. It comes from a register, loaded with it in the cycle before (the first one at
        # start), so that the multiplexer of the factors and the window's adder are not in the
        # multiplier's path.
        factor = Signal(max(len(f) for f in factors))
        upcoming = Signal.like(factor)
        with m.Switch(Mux(self.busy, (step + 1) // per_factor, 0)):
            for i, f in enumerate(factors):
                with m.Case(i):
                    m.d.comb += upcoming.eq(f)
        m.d.sync += factor.eq(upcoming)
        value = Signal(width)
        full = Signal(width + len(factor))
        if per_factor == 2:
            # The product is registered in the factor's first cycle and saturated into `value`
            # in its second: the multiplier and the saturation are separate timing paths.
            m.d.sync += full.eq(value * factor)
        else:
            m.d.comb += full.eq(value * factor)
        firsts, position = [], 0                  # the first factor of each product
        for product in products:
            firsts.append(position)
            position += len(product)
        last_cycle = Signal()                     # the factor's last cycle: `value` moves on
        m.d.comb += last_cycle.eq(step % per_factor == per_factor - 1)
        with m.If(last_cycle):
            with m.If(Cat(*[step == i * per_factor + per_factor - 1 for i in firsts]).any()):
                # A product's first factor saturates like the products: wider than `value`,
                # it would otherwise enter it truncated and pass a check it should fail.
                if len(factor) > width:
                    m.d.sync += value.eq(Mux(factor[width:].any(), (1 << width) - 1, factor))
                else:
                    m.d.sync += value.eq(factor)
            with m.Elif(full[width:].any()):
                m.d.sync += value.eq((1 << width) - 1)
            with m.Else():
                m.d.sync += value.eq(full)
        # Product i is complete in the cycle after its last factor's: the next product's first
        # factor's first cycle, or the last cycle of the checks.
        too_large = Signal(len(limits) - 1)
        for i in range(len(limits) - 1):
            with m.If(step == firsts[i + 1] * per_factor):
                m.d.sync += too_large[i].eq(value > limits[i])
        final = Signal(len(limits))
        last_too_large = Signal()
        with m.If(step == position * per_factor):
            m.d.sync += last_too_large.eq(value > limits[-1])
        m.d.comb += final.eq(Cat(too_large, last_too_large))

        zero_field = Signal()
        bad_padding = Signal()
        zero_terms = [job.in_chunks == 0]
        terms = []
        for a in axes:
            zero_terms += [a.in_size == 0, a.kernel == 0, a.stride == 0, a.dilation == 0,
                           a.out_len == 0]
            # Remapping folds a source coordinate back once: circular needs pad <= size,
            # reflect pad < size.
            terms.append(((job.padding_mode == PaddingMode.CIRCULAR) & (a.pad_lo > a.in_size))
                         | ((job.padding_mode == PaddingMode.REFLECT) & (a.pad_lo >= a.in_size)))
        # FIR mode: the array rows hold the x taps, so x itself is a unit kernel, forward;
        # or its stride's phases (a polyphase FIR, timing.fir_takes_stride).
        x = axes[DIMS - 1]
        zero_terms.append(fir_refused(config, fir_taps=job.fir_taps, x_kernel=x.kernel,
                                      x_stride=x.stride, x_dilation=x.dilation,
                                      transposed=job.transposed))
        any_zero = zero_terms[0]
        for term in zero_terms[1:]:
            any_zero = any_zero | term
        # Registered: the decision at the end of the checks then starts from flip-flops, not
        # from the comparators (the start fans out to the whole datapath).
        m.d.sync += zero_field.eq(any_zero)
        m.d.sync += bad_padding.eq((job.transposed & (job.padding_mode != PaddingMode.ZEROS))
                                   | terms[0] | terms[1] | terms[2])

        code = Signal(unsigned(8))
        with m.If(zero_field):
            m.d.comb += code.eq(ErrorCode.BAD_GEOMETRY)
        with m.Elif(bad_padding):
            m.d.comb += code.eq(ErrorCode.BAD_PADDING)
        with m.Elif(final[0]):
            m.d.comb += code.eq(ErrorCode.TILE_TOO_LARGE)
        with m.Elif(final[1]):
            m.d.comb += code.eq(ErrorCode.WINDOW_TOO_LARGE)
        with m.Elif(final[2]):
            m.d.comb += code.eq(ErrorCode.WEIGHTS_TOO_LARGE)
        # (A transposed tile's sources lie below out_end + pad_lo: in range.)
        if config.source_range_check == "products":
            with m.Elif(~job.transposed & final[3:].any()):
                m.d.comb += code.eq(ErrorCode.SOURCE_RANGE)
        elif config.source_range_check == "table":
            with m.Elif(~job.transposed & self._source_range_by_table(m, step, factor)):
                m.d.comb += code.eq(ErrorCode.SOURCE_RANGE)
        return code

    def _source_range_by_table(self, m: Module, step: Signal, factor: Signal) -> Signal:
        """The source-range check without the multiplier: whether some dimension's
        ``(out_start + out_len - 1) * stride`` exceeds ``2**coord_width - 1``, exactly as the
        products decide it. For each stride ``s`` the largest last output in range is
        ``(2**coord_width - 1) // s``, a constant: a table of ``2**param_width`` entries (16 on
        the ``up5k`` preset, a few LUT4 per bit) and one comparison, made for dimension ``d``
        in the checks' step for dimension ``d``'s ``out_len`` factor (which the factor
        register then holds: no multiplexer of its own) and kept in a register, so that it adds
        no cycle and one adder and comparator serve the three dimensions."""
        config = self._config
        cw = config.coord_width
        per_factor = timing.check_cycles_per_factor(config)
        assert list(check_products(config)[0]) == [(d, "out_len") for d in range(DIMS)]
        out_start = Signal(cw)
        stride = Signal(config.param_width)
        with m.Switch(step):
            for d in range(DIMS):
                with m.Case(d * per_factor):
                    axis = self.job.axes[d]
                    m.d.comb += [out_start.eq(axis.out_start), stride.eq(axis.stride)]
        # out_start + out_len - 1 > (2**cw - 1) // s  <=>  out_start + out_len > bound(s),
        # bound(s) = (2**cw - 1) // s + 1 (stride 0 is BAD_GEOMETRY: any bound).
        bound = Signal(cw + 1)
        with m.Switch(stride):
            for s in range(1, 1 << config.param_width):
                with m.Case(s):
                    m.d.comb += bound.eq(((1 << cw) - 1) // s + 1)
            with m.Default():
                m.d.comb += bound.eq((1 << (cw + 1)) - 1)
        beyond = Signal()
        hit = (out_start + factor[:cw]) > bound
        with m.If(step == 0):
            m.d.sync += beyond.eq(hit)
        with m.Elif(Cat(*[step == d * per_factor for d in range(1, DIMS)]).any()):
            m.d.sync += beyond.eq(beyond | hit)
        return beyond
