"""The pass sequencer: the first half of the address generator.

It walks a job's passes (output phase, kernel tap, input chunk) and hands each non-empty one to
the streamer as a descriptor: per dimension, the first output, the number of outputs and the
first source coordinate. Its semantics are :func:`convhw.compiler.job.passes`; the arithmetic is
incremental so that no pass needs a division or a multiplication.

Per dimension a pass streams outputs ``m = 0 .. N-1`` (tile-local outputs ``m`` for a forward
layer, ``phase + m*stride`` for a transposed one) whose source coordinate steps by ``A``
(``stride`` forward, 1 transposed). The sequencer keeps the range ``[L, H)`` of ``m`` whose
source is a real input element:

* forward, tap ``k``: ``L = ceil((pad_lo - k*d) / s) - out_start`` and
  ``H = floor((pad_lo + in_size - 1 - k*d) / s) - out_start + 1``, kept with their remainders
  and stepped by ``d = dq*s + dr`` from one tap to the next;
* transposed, phase ``phi``, tap ``k``: ``n = out_start + phi + pad_lo - k*d = c*s + rem``;
  the tap reaches the phase exactly when ``rem == 0``, and then ``L = -c``, ``H = in_size - c``.
  ``n`` steps by ``-d`` per tap and by ``+1`` per phase.

A border-skipping pass streams ``m`` in ``[max(L, 0), min(H, N))``; a whole pass all of
``[0, N)``. An engine without border skipping (``EngineConfig.border_skipping``) streams whole
passes only: of this arithmetic it keeps ``c`` and ``rem``, which tell which taps reach a
transposed phase.

At job start one :class:`Divider` does the job's nine divisions by the strides one after
another, three per dimension (forward: ``pad_lo``, ``pad_lo + in_size - 1``, ``dilation``;
transposed: ``out_start + pad_lo``, ``out_len``, ``dilation``), each in one cycle when the
stride is 1 (with the deep pipeline, any power of two: :func:`convhw.timing.divider_shifts`),
while a shift-and-add computes each dimension's ``out_start * stride``. Then one candidate pass
is looked at per cycle; a valid, non-empty one is offered on ``passes``, and the sequencer
moves on when it is taken. The evaluation of a candidate is pipelined and ``passes`` comes from
registers (see :meth:`PassSequencer.pipeline_for`), so that the loader's and the streamer's
handshakes start from flip-flops; the pipeline stalls as a whole, so it only delays the
candidate stream by a constant.

A descriptor names the pass's weights by their first word, ``(tap*in_chunks + chunk)*rows``,
counted up by ``rows`` per candidate (by ``in_chunks*rows`` past a tap that does not reach a
transposed phase, which is one candidate: :func:`convhw.timing.skips_unreached_taps`) so that
the loader needs no multiplier.
"""

from __future__ import annotations

from types import SimpleNamespace

from amaranth.hdl import Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import timing
from ..config import EngineConfig
from ..job_format import DIMS, PaddingMode
from ..timing import DIVISIONS
from .divider import Divider
from .family import family_of
from .job_registers import JobRegisters

__all__ = ["PassDescriptor", "PassSequencer"]


def PassDescriptor(config: EngineConfig) -> data.StructLayout:
    cw = config.coord_width
    return data.StructLayout({
        "axes": data.ArrayLayout(data.StructLayout({
            "o_start": unsigned(cw),                        # first output, tile-local
            "count": unsigned(cw + 1),                      # outputs in this dimension
            "g_start": signed(config.signed_coord_width),   # source coordinate of the first
        }), DIMS),
        "weights": unsigned(config.address_width(config.weight_depth)),  # first weight word
        "chunk": unsigned(config.address_width(config.input_depth) + 1),
        "init": unsigned(1),      # overwrite the accumulator instead of adding
        "zero": unsigned(1),      # every operand is zero (a phase no tap reaches)
    })


class PassSequencer(wiring.Component):
    """Walks the passes of a job and offers the non-empty ones as :func:`PassDescriptor` s.

    ``start`` (one cycle, with ``job`` holding the job's registers until ``done``) begins a job;
    after the set-up divisions, one candidate pass is evaluated per cycle; ``done`` pulses once
    the last descriptor has been taken. A job always has at least one pass.

    With ``ready_ahead`` the taker also gives ``ready_next``, the value ``passes.ready`` will
    have in the next cycle, and the enable of the pipeline and the stepping (``~passes.valid |
    passes.ready``) comes from a register loaded with its next value: the same value in every
    cycle, but the taker's handshake no longer runs into the enables of hundreds of registers
    (on the ECP5 that was the list engine's critical path).
    """

    def __init__(self, config: EngineConfig, *, ready_ahead: bool = False):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        self._config = config
        self._ready_ahead = bool(ready_ahead)
        super().__init__({
            "job": In(JobRegisters(config)),
            "start": In(1),
            "passes": Out(stream.Signature(PassDescriptor(config))),
            "done": Out(1),
            **({"ready_next": In(1)} if ready_ahead else {}),
        })

    @property
    def config(self) -> EngineConfig:
        return self._config

    @staticmethod
    def pipeline_for(config: EngineConfig) -> int:
        """Register stages from the stepped candidate to ``passes``: the evaluation's (with
        ``config.deep_pipeline``: two with border skipping, one without) and the output
        register (:func:`convhw.timing.sequencer_pipeline`)."""
        return timing.sequencer_pipeline(config)

    @staticmethod
    def setup_latency_for(config: EngineConfig, strides) -> int:
        """Cycles from ``start`` to the first candidate's decision on ``passes`` for a job with
        ``strides`` (z, y, x) (:func:`convhw.timing.sequencer_setup`)."""
        return timing.sequencer_setup(config, strides)

    def setup_latency(self, strides) -> int:
        return self.setup_latency_for(self._config, strides)

    def elaborate(self, platform) -> Module:
        m = Module()
        config = self._config
        cw, pw, sw = config.coord_width, config.param_width, config.signed_coord_width
        skipping = config.border_skipping
        job = self.job
        out = self.passes.payload
        transposed = job.transposed

        # -- per-dimension state -------------------------------------------------------------
        class Axis:
            pass

        axes = []
        for d in range(DIMS):
            a = Axis()
            a.r = job.axes[d]
            # job constants, from the set-up
            a.x0 = Signal(signed(sw), name=f"x0_{d}")     # forward: out_start*s - pad_lo;
            #                                                transposed: -(out_start + pad_lo)
            a.l00 = Signal(signed(sw), name=f"l00_{d}")   # L of phase 0, tap 0
            a.rb00 = Signal(unsigned(pw), name=f"rb00_{d}")  # remainder of H (forward) or of
            #                                                  n (transposed), phase 0, tap 0
            # per tap, L and H move by `step` plus a carry: forward down by dq (+1), so
            # step = ~dq = -dq - 1 and the carry is inverted; transposed up by dq (+1)
            a.step = Signal(signed(pw + 1), name=f"step{d}")
            a.dr = Signal(unsigned(pw), name=f"dr{d}")
            a.rest = Signal(unsigned(pw), name=f"stride_less_dr{d}")     # stride - dr
            a.step1 = Signal(signed(pw + 2), name=f"step_plus_one{d}")   # step + 1
            a.q5 = Signal(unsigned(cw), name=f"q5_{d}")    # outputs of a whole pass, but for
            a.r5 = Signal(unsigned(pw), name=f"r5_{d}")    # transposed phases below r5: one more
            # stepped state
            a.k = Signal(unsigned(pw), name=f"k{d}")
            a.kd = Signal(unsigned(2 * pw), name=f"kd{d}")
            a.lo = Signal(signed(sw), name=f"l{d}")
            a.rb = Signal(unsigned(pw), name=f"rb{d}")
            a.rb_zero = Signal(name=f"rb_zero{d}")             # rb == 0, kept beside it
            a.phase = Signal(unsigned(pw), name=f"phase{d}")
            a.rb_ph = Signal(unsigned(pw), name=f"rb_ph{d}")   # rb of tap 0 of this phase
            a.wrapped = Signal(name=f"wrapped{d}")             # n // s of this phase is one
            #                                                    more than of phase 0
            if skipping:
                a.h00 = Signal(signed(sw), name=f"h00_{d}")      # H of phase 0, tap 0
                a.ra0 = Signal(unsigned(pw), name=f"ra0_{d}")    # forward: remainder of L
                a.hi = Signal(signed(sw), name=f"h{d}")
                a.ra = Signal(unsigned(pw), name=f"ra{d}")
            axes.append(a)

        running = Signal()
        chunk = Signal.like(out.chunk)
        weights = Signal.like(out.weights)     # the first weight word of (tap, chunk)
        emitted_in_phase = Signal()

        # -- set-up: nine divisions on one divider, one dimension after the other -------------
        # (Without border skipping a forward job needs none of them, only x0.)
        m.submodules.divider = divider = Divider(cw + 1, pw,
                                                 shifts=timing.divider_shifts(config))
        # (axis, which) is the division to issue next, (res_axis, res_which) the one the
        # divider works on: the next division is issued in the cycle the last one is done,
        # with operands straight from the job's registers.
        axis = Signal(range(DIMS))
        which = Signal(range(DIVISIONS))
        res_axis = Signal(range(DIMS))
        res_which = Signal(range(DIVISIONS))
        issue = Signal()            # start the division (axis, which) in this cycle
        # The two dimensions' parameters through explicit multiplexers: indexing the job's
        # axes with a signal shifts the whole axes array per field read, which the hardware
        # folds into the same multiplexer but Verilator computes word by word in every cycle
        # (24 shifts of the 456-bit axes array per cycle).
        axis_layout = job.axes.shape().elem_shape
        cur, res = Signal(axis_layout), Signal(axis_layout)
        for selected, index in ((cur, axis), (res, res_axis)):
            with m.Switch(index):
                for d in range(DIMS):
                    with m.Case(d):
                        m.d.comb += selected.eq(job.axes[d])
        with m.Switch(which):
            with m.Case(0):
                m.d.comb += divider.dividend.eq(
                    Mux(transposed, cur.out_start + cur.pad_lo, cur.pad_lo)
                    if skipping else cur.out_start + cur.pad_lo)
            with m.Case(1):
                m.d.comb += divider.dividend.eq(
                    Mux(transposed, cur.out_len, cur.pad_lo + cur.in_size - 1)
                    if skipping else cur.out_len)
            with m.Default():
                m.d.comb += divider.dividend.eq(cur.dilation)
        m.d.comb += [divider.divisor.eq(cur.stride), divider.start.eq(issue)]
        # out_start * stride, by shift and add while the dimension's divisions run.
        product = Signal(signed(sw))
        multiplicand = Signal(unsigned(sw))          # taken modulo 2**sw, like the product
        multiplier = Signal(unsigned(pw))
        with m.If(issue & (which == 0)):
            m.d.sync += [
                product.eq(-cur.pad_lo - Mux(transposed, cur.out_start, 0)),
                multiplicand.eq(cur.out_start),
                multiplier.eq(Mux(transposed, 0, cur.stride)),
            ]
        with m.Elif(multiplier != 0):
            # (Once the multiplier is used up the product holds: the registers rest between
            # set-ups rather than shift on.)
            with m.If(multiplier[0]):
                m.d.sync += product.eq(product + multiplicand)
            m.d.sync += [multiplicand.eq(multiplicand << 1), multiplier.eq(multiplier >> 1)]

        q, r = divider.quotient, divider.remainder
        setup_done = Signal()
        m.d.comb += [
            setup_done.eq(divider.done & (res_axis == DIMS - 1)
                          & (res_which == DIVISIONS - 1)),
            issue.eq(self.start | divider.done & ~setup_done),
        ]
        # After the last division the pointer is back at the first, for the next job.
        with m.If(issue):
            last = which == DIVISIONS - 1
            m.d.sync += [which.eq(Mux(last, 0, which + 1)),
                         axis.eq(Mux(last, Mux(axis == DIMS - 1, 0, axis + 1), axis)),
                         res_axis.eq(axis), res_which.eq(which)]
        # The results, computed once for whichever dimension the divider is working on.
        # Without border skipping only the transposed ones matter.
        forward = ~transposed if skipping else 0
        l_first = Signal(signed(sw))
        m.d.comb += l_first.eq(Mux(forward, q + (r != 0) - res.out_start, -q))
        if skipping:
            h_first = Signal(signed(sw))
            m.d.comb += h_first.eq(Mux(forward, q - res.out_start + 1, res.in_size - q))
        for d, a in enumerate(axes):
            with m.If(divider.done & (res_axis == d)):
                with m.Switch(res_which):
                    with m.Case(0):
                        m.d.sync += [a.l00.eq(l_first), a.rb00.eq(r)]
                        if skipping:
                            m.d.sync += [a.h00.eq(h_first),
                                         a.ra0.eq(Mux(forward & (r != 0), res.stride - r, 0))]
                    with m.Case(1):
                        # forward: n = out_len for every pass
                        m.d.sync += [a.q5.eq(Mux(transposed, q, res.out_len)),
                                     a.r5.eq(Mux(transposed, r, 0))]
                        if skipping:
                            with m.If(~transposed):
                                m.d.sync += [a.h00.eq(h_first), a.rb00.eq(r)]
                    with m.Default():
                        m.d.sync += [a.step.eq(Mux(forward, ~q[:pw + 1], q)), a.dr.eq(r),
                                     a.x0.eq(product)]
                        if config.deep_pipeline:
                            m.d.sync += [a.rest.eq(res.stride - r),
                                         a.step1.eq(Mux(forward, -q, q + 1))]

        # -- the candidate pipeline ----------------------------------------------------------
        # The stepped state (below) holds one candidate per cycle. Its evaluation takes
        # register stages with the deep pipeline (E1: the bounds of each dimension; E2, with
        # border skipping: the spans; without it, E1 and E2 are wires) and the decision whether
        # and what to emit is registered into `passes`, so that no path runs from the stepped
        # state through the evaluation into the loader. All stages move together (`move`): they
        # stand still only while `passes` holds a pass that is not taken. So every candidate
        # reaches `passes` exactly `pipeline_for(config)` cycles after the stepped state held
        # it, as if the sequencer evaluated it there, and the cycle model only shifts by that
        # much.
        move = Signal()
        if self._ready_ahead:
            # passes.valid's next value (see the decision below): 0 at start, the decision
            # when the stages move, else as it is
            valid_next = Signal()
            registered_move = Signal(init=1)
            m.d.sync += registered_move.eq(~valid_next | self.ready_next)
            m.d.comb += move.eq(registered_move)
        else:
            m.d.comb += move.eq(~self.passes.valid | self.passes.ready)

        def pipe(value, name, shape=None):
            """A register of the pipeline, loaded with ``value`` whenever the stages move; or,
            without the deep pipeline, where the evaluation has no register stages, ``value``
            itself."""
            reg = Signal(shape if shape is not None else Value.cast(value).shape(), name=name)
            if not config.deep_pipeline:
                m.d.comb += reg.eq(value)
                return reg
            with m.If(move):
                m.d.sync += reg.eq(value)
            return reg

        # Flags of the stepped candidate. They compare with job constants less one, which (like
        # L and H of phase 0 less one below) come from registers of their own, so that the
        # stepping decision needs no adder: the job registers are static long before the first
        # step.
        def less_one(value, name):
            reg = Signal(Value.cast(value).shape(), name=name)
            m.d.sync += reg.eq(value - 1)
            return reg

        # Whether the chunk, a dimension's tap and its phase are the last: flags kept beside
        # the counters (set from the counter's next value where the counter changes), not
        # comparisons of the counters, which would start the stepping's every-cycle loop below
        # (the compute core's critical path on the ECP5: kernel_m1 -> the tap comparison -> the
        # raster's choice -> a remainder register). For an iCE40 (`compact`: a 12 MHz clock,
        # and the UP5K's logic cells all but used up by the up5k engine) the comparisons,
        # which take fewer cells. The same values in every cycle.
        compact = family_of(platform) == "ice40"
        in_chunks_m1 = less_one(job.in_chunks, "in_chunks_m1")
        last_chunk = Signal()
        for d, a in enumerate(axes):
            a.kernel_m1 = less_one(a.r.kernel, f"kernel_m1_{d}")
            a.stride_m1 = less_one(a.r.stride, f"stride_m1_{d}")
            a.out_len_m1 = less_one(a.r.out_len, f"out_len_m1_{d}")
            a.last_tap = Signal(name=f"last_tap{d}")
            a.last_phase = Signal(name=f"last_phase{d}")
            if compact:
                m.d.comb += [
                    a.last_tap.eq(a.k == a.kernel_m1),
                    a.last_phase.eq(~transposed | (a.phase == a.stride_m1)
                                    | (a.phase == a.out_len_m1)),
                ]
            a.l00_m1 = less_one(a.l00, f"l00_m1_{d}")
            if skipping:
                a.h00_m1 = less_one(a.h00, f"h00_m1_{d}")
        if compact:
            m.d.comb += last_chunk.eq(chunk == in_chunks_m1)
        last_tap = Signal()
        last_phase = Signal()
        m.d.comb += [
            last_tap.eq(axes[0].last_tap & axes[1].last_tap & axes[2].last_tap),
            last_phase.eq(axes[0].last_phase & axes[1].last_phase & axes[2].last_phase),
        ]
        # Whether the stepped tap reaches the stepped phase (always, forward). With
        # `timing.skips_unreached_taps` a tap that does not is one candidate, not one per
        # chunk: its chunks end at once and the weight word skips the tap's block.
        # (The flags kept beside the remainders are for the stepping's every-cycle loop; the
        # up5k preset compares the remainders, in fewer logic cells.)
        skip_taps = timing.skips_unreached_taps(config)
        reaches = Signal()
        m.d.comb += reaches.eq(~transposed | (axes[0].rb_zero & axes[1].rb_zero
                                              & axes[2].rb_zero if skip_taps else
                                              (axes[0].rb == 0) & (axes[1].rb == 0)
                                              & (axes[2].rb == 0)))
        chunk_end = Signal()
        m.d.comb += chunk_end.eq(last_chunk | ~reaches if skip_taps else last_chunk)
        tap_words = Signal.like(weights)              # a tap's weight block: in_chunks * rows
        if skip_taps:
            m.d.sync += tap_words.eq(job.in_chunks * config.rows)
        end_of_phase = chunk_end & last_tap

        # E1: per dimension the outputs of a whole pass `n`, the first source x0 + k*d and,
        # with border skipping, max(L, 0).
        stage = SimpleNamespace()
        stage.valid = pipe(running, "valid_e1")
        valids = [stage.valid] if config.deep_pipeline else []
        stage.tap_valid = pipe(reaches, "tap_valid_e1")
        stage.end_of_phase = pipe(end_of_phase, "end_of_phase_e1")
        stage.last = pipe(end_of_phase & last_phase, "last_e1")
        stage.weights = pipe(weights, "weights_e1")
        stage.chunk = pipe(chunk, "chunk_e1")
        for d, a in enumerate(axes):
            a.n = pipe(a.q5 + (a.r5 > a.phase), f"n{d}_e1", unsigned(cw))
            a.phase_e = pipe(a.phase, f"phase{d}_e1")
            a.x0kd = pipe(a.x0 + a.kd, f"x0kd{d}_e1", signed(sw))
            a.lo_e = pipe(a.lo, f"l{d}_e1")
            if skipping:
                a.hi_e = pipe(a.hi, f"h{d}_e1")
                a.ra_e = pipe(a.ra, f"ra{d}_e1")
                a.positive = pipe(a.lo > 0, f"positive{d}_e1")                  # L > 0
                a.first = pipe(Mux(a.lo > 0, a.lo, 0), f"first{d}_e1", signed(sw))
        if skipping:
            # E2: the span min(H, n) - max(L, 0) of each dimension, and whether it is empty.
            e1, stage = stage, SimpleNamespace()
            for name in ("valid", "tap_valid", "end_of_phase", "last", "weights", "chunk"):
                setattr(stage, name, pipe(getattr(e1, name), f"{name}_e2"))
            if config.deep_pipeline:
                valids.append(stage.valid)
            for d, a in enumerate(axes):
                a.span = pipe(Mux(a.hi_e < a.n, a.hi_e, a.n) - a.first, f"span{d}_e2",
                              signed(sw + 1))
                a.nonpositive = pipe((a.hi_e <= a.first) | (a.n <= a.first),
                                     f"nonpositive{d}_e2")
                a.n = pipe(a.n, f"n{d}_e2")
                a.phase_e = pipe(a.phase_e, f"phase{d}_e2")
                a.x0kd = pipe(a.x0kd, f"x0kd{d}_e2")
                a.lo_e = pipe(a.lo_e, f"l{d}_e2")
                a.ra_e = pipe(a.ra_e, f"ra{d}_e2")
                a.positive = pipe(a.positive, f"positive{d}_e2")

        # The decision, registered into `passes`.
        init = Signal()
        m.d.comb += init.eq(~emitted_in_phase & ~job.accumulate)
        skip = Signal()
        if skipping:
            m.d.comb += skip.eq(~init & job.skip_borders
                                & (transposed | (job.padding_mode == PaddingMode.ZEROS)))
        # In FIR mode the array's rows cover the x taps: every output of a row is streamed.
        skip_x = Signal()
        m.d.comb += skip_x.eq(skip & (job.fir_taps == 0))
        empty = Signal()
        m.d.comb += empty.eq(0 if not skipping else
                             (skip & (axes[0].nonpositive | axes[1].nonpositive))
                             | (skip_x & axes[2].nonpositive))
        real_pass = Signal()
        zero_pass = Signal()
        emit = Signal()
        m.d.comb += [
            real_pass.eq(stage.tap_valid & ~empty),
            # A phase no tap reaches still needs its accumulators cleared.
            zero_pass.eq(~real_pass & stage.end_of_phase & init),
            emit.eq(stage.valid & (real_pass | zero_pass)),
        ]
        last_out = Signal()          # `passes` holds the job's last candidate
        if self._ready_ahead:
            m.d.comb += valid_next.eq(Mux(self.start, 0, Mux(move, emit, self.passes.valid)))
        with m.If(move):
            m.d.sync += [
                self.passes.valid.eq(emit),
                last_out.eq(stage.valid & stage.last),
                # Operands of a zero pass are all zero: weights, chunk and sources are moot;
                # fixed values keep the descriptor stream canonical.
                out.weights.eq(Mux(zero_pass, 0, stage.weights)),
                out.chunk.eq(Mux(zero_pass, 0, stage.chunk)),
                out.init.eq(init),
                out.zero.eq(zero_pass),
            ]
            with m.If(stage.valid):
                m.d.sync += emitted_in_phase.eq(~stage.end_of_phase & (emitted_in_phase | emit))
            for d, a in enumerate(axes):
                o_start, count, g_start = (out.axes[d].o_start, out.axes[d].count,
                                           out.axes[d].g_start)
                # whole pass: outputs m = 0 .. n-1, from the source x0 + k*d (forward) or
                # c = -L (transposed)
                m.d.sync += [
                    o_start.eq(Mux(transposed, a.phase_e, 0)),
                    count.eq(a.n),
                    g_start.eq(Mux(zero_pass, 0, Mux(transposed, -a.lo_e, a.x0kd))),
                ]
                if skipping:
                    with m.If((skip_x if d == DIMS - 1 else skip) & ~zero_pass):
                        m.d.sync += count.eq(a.span)
                        with m.If(a.positive):
                            # forward: outputs m = o; transposed: o = phase + m*s, and at m = L
                            # (the tap reaches the phase) that is k*d - pad_lo - out_start. The
                            # source there is the remainder ra (forward) or 0 (transposed).
                            m.d.sync += [o_start.eq(Mux(transposed, a.x0kd, a.lo_e)),
                                         g_start.eq(Mux(transposed, 0, a.ra_e))]
        m.d.sync += self.done.eq(move & last_out)

        advance = Signal()
        m.d.comb += advance.eq(running & move)

        # -- stepping ------------------------------------------------------------------------
        # Per dimension one of: step to the next tap, back to tap 0 of the phase, to the next
        # phase (transposed only), or back to phase 0; the raster below picks them.
        for d, a in enumerate(axes):
            r_ = a.r
            a.tap_step = Signal(name=f"tap_step{d}")
            a.tap_reset = Signal(name=f"tap_reset{d}")
            a.phase_step = Signal(name=f"phase_step{d}")
            a.phase_reset = Signal(name=f"phase_reset{d}")
            # n steps up by one per phase; when its remainder wraps, c does (once at most).
            nxt = a.rb_ph + 1
            wrap = nxt == r_.stride
            wrapped = Signal(name=f"wrapped_next{d}")
            rb_ph = Signal.like(a.rb_ph, name=f"rb_ph_next{d}")
            m.d.comb += [
                wrapped.eq(~a.phase_reset & (a.wrapped | a.phase_step & wrap)),
                rb_ph.eq(Mux(a.phase_reset, a.rb00,
                             Mux(a.phase_step, Mux(wrap, 0, nxt), a.rb_ph))),
            ]
            phase = Mux(a.phase_reset, 0, a.phase + 1)
            with m.If(a.phase_step | a.phase_reset):
                m.d.sync += [a.phase.eq(phase), a.wrapped.eq(wrapped), a.rb_ph.eq(rb_ph)]
                if not compact:
                    m.d.sync += a.last_phase.eq(~transposed | (phase == a.stride_m1)
                                                | (phase == a.out_len_m1))
            with m.If(a.tap_reset | a.phase_step | a.phase_reset):
                m.d.sync += [a.k.eq(0), a.kd.eq(0), a.lo.eq(Mux(wrapped, a.l00_m1, a.l00)),
                             a.rb.eq(rb_ph)]
                if skip_taps:
                    m.d.sync += a.rb_zero.eq(rb_ph == 0)
                if not compact:
                    m.d.sync += a.last_tap.eq(a.kernel_m1 == 0)
                if skipping:
                    m.d.sync += [a.hi.eq(Mux(wrapped, a.h00_m1, a.h00)), a.ra.eq(a.ra0)]
            with m.Elif(a.tap_step):
                m.d.sync += [a.k.eq(a.k + 1), a.kd.eq(a.kd + r_.dilation)]
                if not compact:
                    m.d.sync += a.last_tap.eq(a.k + 1 == a.kernel_m1)
                # H's (or n's) remainder steps down by dr, L's (forward) up, modulo the stride;
                # L and H step by `step`, plus one on a borrow or carry.
                if config.deep_pipeline:
                    # The tests of the remainders compare with registers (dr, stride - dr),
                    # and both sums for L and H are made and then chosen, so that no adder
                    # waits for another: the stepping is in the sequencer's every-cycle loop.
                    # (stride - dr and step + 1 come from the set-up, with dr and step.)
                    borrow = a.rb < a.dr
                    # (rb + stride - dr >= 1 on a borrow: zero only as rb - dr with rb == dr)
                    m.d.sync += a.rb.eq(Mux(borrow, a.rb + a.rest, a.rb - a.dr))
                    if skip_taps:
                        m.d.sync += a.rb_zero.eq(~borrow & (a.rb == a.dr))
                    lo0, lo1 = a.lo + a.step, a.lo + a.step1
                    if skipping:
                        carry = a.ra >= a.rest
                        hi0, hi1 = a.hi + a.step, a.hi + a.step1
                        m.d.sync += [a.ra.eq(Mux(carry, a.ra - a.rest, a.ra + a.dr)),
                                     a.lo.eq(Mux(Mux(forward, ~carry, borrow), lo1, lo0)),
                                     a.hi.eq(Mux(Mux(forward, ~borrow, borrow), hi1, hi0))]
                    else:
                        m.d.sync += a.lo.eq(Mux(borrow, lo1, lo0))
                else:
                    rb = a.rb - a.dr
                    borrow = rb < 0
                    m.d.sync += a.rb.eq(Mux(borrow, rb + r_.stride, rb))
                    if skip_taps:
                        m.d.sync += a.rb_zero.eq(~borrow & (a.rb == a.dr))
                    if skipping:
                        ra = a.ra + a.dr
                        carry = ra >= r_.stride
                        m.d.sync += [a.ra.eq(Mux(carry, ra - r_.stride, ra)),
                                     a.lo.eq(a.lo + a.step + Mux(forward, ~carry, borrow)),
                                     a.hi.eq(a.hi + a.step + Mux(forward, ~borrow, borrow))]
                    else:
                        m.d.sync += a.lo.eq(a.lo + a.step + borrow)

        def step(a):
            return a.tap_step.eq(1)

        def reset(*dims):
            return [axes[d].tap_reset.eq(1) for d in dims]

        with m.If(setup_done):
            m.d.comb += [a.phase_reset.eq(1) for a in axes]
            m.d.sync += [running.eq(1), chunk.eq(0), weights.eq(0)]
            if not compact:
                m.d.sync += last_chunk.eq(in_chunks_m1 == 0)
        with m.Elif(advance):
            # The weights of (tap, chunk) start at word (tap*in_chunks + chunk)*rows, and
            # chunks step fastest.
            m.d.sync += weights.eq(weights + (Mux(reaches, config.rows, tap_words)
                                              if skip_taps else config.rows))
            with m.If(~chunk_end):
                m.d.sync += chunk.eq(chunk + 1)
                if not compact:
                    m.d.sync += last_chunk.eq(chunk + 1 == in_chunks_m1)
            with m.Else():
                m.d.sync += chunk.eq(0)
                if not compact:
                    m.d.sync += last_chunk.eq(in_chunks_m1 == 0)
                # raster over taps: x fastest
                with m.If(~axes[2].last_tap):
                    m.d.comb += step(axes[2])
                with m.Elif(~axes[1].last_tap):
                    m.d.comb += [step(axes[1]), *reset(2)]
                with m.Elif(~axes[0].last_tap):
                    m.d.comb += [step(axes[0]), *reset(1, 2)]
                with m.Else():
                    # next phase
                    m.d.sync += weights.eq(0)
                    with m.If(last_phase):
                        m.d.sync += running.eq(0)
                    with m.Elif(~axes[2].last_phase):
                        m.d.comb += [axes[2].phase_step.eq(1), *reset(0, 1)]
                    with m.Elif(~axes[1].last_phase):
                        m.d.comb += [axes[1].phase_step.eq(1), axes[2].phase_reset.eq(1),
                                     *reset(0)]
                    with m.Else():
                        m.d.comb += [axes[0].phase_step.eq(1), axes[1].phase_reset.eq(1),
                                     axes[2].phase_reset.eq(1)]
        # The evaluation's stages and the output register are the pipeline the cycle model
        # uses.
        assert len(valids) + 1 == self.pipeline_for(config), (len(valids), config)
        with m.If(self.start):
            # Empty the pipeline (after an aborted job it may hold candidates).
            m.d.sync += [running.eq(0), *[v.eq(0) for v in valids], self.passes.valid.eq(0),
                         last_out.eq(0), emitted_in_phase.eq(0)]
        return m
