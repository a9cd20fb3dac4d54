"""The pass sequencer: the first half of the address generator.

It walks a job's passes (output phase, kernel tap, input chunk) and hands each non-empty one to
the streamer as a descriptor: per dimension, the first output, the number of outputs and the
first source coordinate. Its semantics are :func:`convhw.compiler.job.passes`; the arithmetic is
incremental so that no pass needs a division:

* at job start, per dimension, five divisions by the stride (on :class:`Divider` s, in
  parallel): ``pad_lo``, ``pad_lo + in_size - 1``, ``dilation``, ``out_start + pad_lo`` and
  ``out_len``;
* forward layers: tap ``k`` reads real input for outputs
  ``o in [ceil((pad_lo - k*d) / s), floor((pad_lo + in_size - 1 - k*d) / s)]``; both bounds are
  kept as quotient and remainder and stepped by ``d = dq*s + dr`` from one tap to the next;
* transposed layers: output phase ``phi`` (outputs ``out_start + phi + s*m``) takes tap ``k``
  exactly when ``n = out_start + phi + pad_lo - k*d`` is a multiple of ``s``, and then reads
  input ``n/s + m``; ``n`` is kept as quotient and remainder, stepped by ``+1`` per phase and
  ``-d`` per tap.

One candidate pass is looked at per cycle; a valid, non-empty one is offered on ``passes`` and
the sequencer moves on when it is taken.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..config import EngineConfig
from .divider import Divider

__all__ = ["AxisRegisters", "PassDescriptor", "PassSequencer"]

DIMS = 3


def AxisRegisters(config: EngineConfig) -> data.StructLayout:
    """The job registers of one spatial dimension (see :class:`convhw.compiler.job.Axis`)."""
    cw, pw = config.coord_width, config.param_width
    return data.StructLayout({
        "in_size": unsigned(cw), "kernel": unsigned(pw), "stride": unsigned(pw),
        "dilation": unsigned(pw), "pad_lo": unsigned(cw), "out_start": unsigned(cw),
        "out_len": unsigned(cw), "seg0_start": unsigned(cw), "seg0_len": unsigned(cw),
        "seg1_start": unsigned(cw), "seg1_len": unsigned(cw),
    })


def JobRegisters(config: EngineConfig) -> data.StructLayout:
    """Everything the address generator reads from the register file for one job."""
    return data.StructLayout({
        "axes": data.ArrayLayout(AxisRegisters(config), DIMS),
        "transposed": unsigned(1),
        "padding_mode": unsigned(2),     # convhw.compiler.job.PADDING_CODES
        "accumulate": unsigned(1),
        "skip_borders": unsigned(1),
        "in_chunks": unsigned(config.address_width(config.input_depth) + 1),
        # Depthwise (FIR) lane mode: the array's rows hold this many x taps; 0: dense mode.
        "fir_taps": unsigned(config.param_width),
    })


def PassDescriptor(config: EngineConfig) -> data.StructLayout:
    cw = config.coord_width
    return data.StructLayout({
        "axes": data.ArrayLayout(data.StructLayout({
            "o_start": unsigned(cw),                        # first output, tile-local
            "count": unsigned(cw + 1),                      # outputs in this dimension
            "g_start": signed(config.signed_coord_width),   # source coordinate of the first
        }), DIMS),
        "tap": unsigned(config.address_width(config.weight_depth) + 1),
        "chunk": unsigned(config.address_width(config.input_depth) + 1),
        "init": unsigned(1),      # overwrite the accumulator instead of adding
        "zero": unsigned(1),      # every operand is zero (a phase no tap reaches)
    })


class PassSequencer(wiring.Component):
    """Walks the passes of a job and offers the non-empty ones as :func:`PassDescriptor` s.

    ``start`` (one cycle, with ``job`` holding the job's registers until ``done``) begins a job;
    after the set-up divisions, one candidate pass is evaluated per cycle; ``done`` pulses once
    the last descriptor has been taken. A job always has at least one pass.
    """

    def __init__(self, config: EngineConfig):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        self._config = config
        super().__init__({
            "job": In(JobRegisters(config)),
            "start": In(1),
            "passes": Out(stream.Signature(PassDescriptor(config))),
            "done": Out(1),
        })

    @property
    def config(self) -> EngineConfig:
        return self._config

    @staticmethod
    def setup_latency_for(config: EngineConfig) -> int:
        """Cycles from ``start`` to the first candidate: the divisions, plus one cycle to load
        their results."""
        return Divider.latency_for(config.signed_coord_width) + 1

    @property
    def setup_latency(self) -> int:
        return self.setup_latency_for(self._config)

    def elaborate(self, platform) -> Module:
        m = Module()
        config = self._config
        sw = config.signed_coord_width
        job = self.job
        out = self.passes.payload

        # -- per-dimension state -------------------------------------------------------------
        class Axis:
            pass

        axes = []
        for d in range(DIMS):
            r = job.axes[d]
            a = Axis()
            a.r = r
            a.dividers = [Divider(sw) for _ in range(5)]
            for i, divider in enumerate(a.dividers):
                m.submodules[f"div{d}_{i}"] = divider
                m.d.comb += [divider.start.eq(self.start), divider.divisor.eq(r.stride)]
            m.d.comb += [
                a.dividers[0].dividend.eq(r.pad_lo),
                a.dividers[1].dividend.eq(r.pad_lo + r.in_size - 1),
                a.dividers[2].dividend.eq(r.dilation),
                a.dividers[3].dividend.eq(r.out_start + r.pad_lo),
                a.dividers[4].dividend.eq(r.out_len),
            ]
            # job constants
            a.qa0, a.ra0 = Signal(signed(sw)), Signal(signed(sw))
            a.qb0, a.rb0 = Signal(signed(sw)), Signal(signed(sw))
            a.dq, a.dr = Signal(signed(sw)), Signal(signed(sw))
            a.c00, a.rem00 = Signal(signed(sw)), Signal(signed(sw))
            a.q5, a.r5 = Signal(signed(sw)), Signal(signed(sw))
            a.s0 = Signal(signed(sw))                 # out_start * stride
            a.phases = Signal(unsigned(config.param_width))
            # stepped state
            a.k = Signal(unsigned(config.param_width))
            a.kd = Signal(signed(sw))
            a.qa, a.ra, a.qb, a.rb = (Signal(signed(sw)) for _ in range(4))
            a.phase = Signal(unsigned(config.param_width))
            a.c_ph, a.rem_ph = Signal(signed(sw)), Signal(signed(sw))
            a.c, a.rem = Signal(signed(sw)), Signal(signed(sw))
            a.m_count = Signal(signed(sw))
            axes.append(a)

        setup_done = axes[0].dividers[0].done
        running = Signal()
        chunk = Signal.like(out.chunk)
        tap = Signal.like(out.tap)
        emitted_in_phase = Signal()

        # -- candidate evaluation (combinational) --------------------------------------------
        tap_valid = Signal()
        empty = Signal()
        last_chunk = Signal()
        last_tap = Signal()
        last_phase = Signal()
        m.d.comb += last_chunk.eq(chunk == job.in_chunks - 1)
        last_tap_terms, last_phase_terms = [], []
        init = Signal()
        m.d.comb += init.eq(~emitted_in_phase & ~job.accumulate)
        skip = Signal()
        m.d.comb += skip.eq(~init & job.skip_borders &
                            (job.transposed | (job.padding_mode == 0)))
        # In FIR mode the array's rows cover the x taps: every output of a row is streamed.
        skip_x = Signal()
        m.d.comb += skip_x.eq(skip & (job.fir_taps == 0))
        for d, a in enumerate(axes):
            r = a.r
            skip_d = skip_x if d == DIMS - 1 else skip
            o_end = Signal(signed(sw))
            m.d.comb += o_end.eq(r.out_start + r.out_len - 1)
            # forward
            f_lo, f_hi = Signal(signed(sw)), Signal(signed(sw))
            m.d.comb += [
                f_lo.eq(Mux(a.qa > r.out_start, a.qa, r.out_start)),
                f_hi.eq(Mux(a.qb < o_end, a.qb, o_end)),
            ]
            f_g_full = Signal(signed(sw))
            m.d.comb += f_g_full.eq(a.s0 - r.pad_lo + a.kd)
            # transposed
            t_lo, t_hi = Signal(signed(sw)), Signal(signed(sw))
            m.d.comb += [
                t_lo.eq(Mux(a.c < 0, -a.c, 0)),
                t_hi.eq(Mux(a.m_count - 1 < r.in_size - 1 - a.c, a.m_count - 1,
                            r.in_size - 1 - a.c)),
            ]
            o_start, count, g_start = out.axes[d].o_start, out.axes[d].count, out.axes[d].g_start
            with m.If(job.transposed):
                with m.If(skip):
                    m.d.comb += [
                        o_start.eq(a.phase + t_lo * r.stride),
                        count.eq(t_hi - t_lo + 1),
                        g_start.eq(a.c + t_lo),
                    ]
                with m.Else():
                    m.d.comb += [o_start.eq(a.phase), count.eq(a.m_count), g_start.eq(a.c)]
            with m.Else():
                with m.If(skip_d):
                    m.d.comb += [
                        o_start.eq(f_lo - r.out_start),
                        count.eq(f_hi - f_lo + 1),
                        g_start.eq(Mux(a.qa > r.out_start, a.ra, f_g_full)),
                    ]
                with m.Else():
                    m.d.comb += [o_start.eq(0), count.eq(r.out_len), g_start.eq(f_g_full)]
            last_tap_terms.append(a.k == r.kernel - 1)
            last_phase_terms.append(a.phase == a.phases - 1)
        # A pass is empty when, skipping borders, some dimension has no output with real input.
        t_empty = [Signal(name=f"t_empty{d}") for d in range(DIMS)]
        for d, a in enumerate(axes):
            r = a.r
            t_lo = Mux(a.c < 0, -a.c, 0)
            t_hi = Mux(a.m_count - 1 < r.in_size - 1 - a.c, a.m_count - 1, r.in_size - 1 - a.c)
            m.d.comb += t_empty[d].eq(skip & (t_hi < t_lo))
        f_empty = [Signal(name=f"f_empty{d}") for d in range(DIMS)]
        for d, a in enumerate(axes):
            r = a.r
            o_end = r.out_start + r.out_len - 1
            f_lo = Mux(a.qa > r.out_start, a.qa, r.out_start)
            f_hi = Mux(a.qb < o_end, a.qb, o_end)
            m.d.comb += f_empty[d].eq((skip_x if d == DIMS - 1 else skip) & (f_hi < f_lo))
        m.d.comb += [
            tap_valid.eq(~job.transposed | (axes[0].rem == 0) & (axes[1].rem == 0)
                         & (axes[2].rem == 0)),
            empty.eq(Mux(job.transposed, t_empty[0] | t_empty[1] | t_empty[2],
                         f_empty[0] | f_empty[1] | f_empty[2])),
            last_tap.eq(last_tap_terms[0] & last_tap_terms[1] & last_tap_terms[2]),
            last_phase.eq(last_phase_terms[0] & last_phase_terms[1] & last_phase_terms[2]),
        ]
        end_of_phase = Signal()
        m.d.comb += end_of_phase.eq(last_chunk & last_tap)
        real_pass = Signal()
        zero_pass = Signal()
        m.d.comb += [
            real_pass.eq(tap_valid & ~empty),
            # A phase no tap reaches still needs its accumulators cleared.
            zero_pass.eq(~real_pass & end_of_phase & ~emitted_in_phase & ~job.accumulate),
        ]
        m.d.comb += [
            self.passes.valid.eq(running & (real_pass | zero_pass)),
            out.tap.eq(tap),
            out.chunk.eq(chunk),
            out.init.eq(init),
            out.zero.eq(zero_pass),
        ]
        with m.If(zero_pass):
            # Operands are all zero: tap, chunk and sources are moot; fixed values keep the
            # descriptor stream canonical.
            m.d.comb += [out.tap.eq(0), out.chunk.eq(0)]
            for d, a in enumerate(axes):
                m.d.comb += out.axes[d].g_start.eq(0)
                with m.If(job.transposed):
                    m.d.comb += [out.axes[d].o_start.eq(a.phase),
                                 out.axes[d].count.eq(a.m_count)]
                with m.Else():
                    m.d.comb += [out.axes[d].o_start.eq(0),
                                 out.axes[d].count.eq(a.r.out_len)]

        advance = Signal()
        m.d.comb += advance.eq(running & (~self.passes.valid | self.passes.ready))

        # -- stepping ------------------------------------------------------------------------
        def tap_reset(a):
            return [a.k.eq(0), a.kd.eq(0), a.qa.eq(a.qa0), a.ra.eq(a.ra0), a.qb.eq(a.qb0),
                    a.rb.eq(a.rb0), a.c.eq(a.c_ph), a.rem.eq(a.rem_ph)]

        def tap_step(m, a):
            r = a.r
            m.d.sync += [a.k.eq(a.k + 1), a.kd.eq(a.kd + r.dilation)]
            ra = a.ra + a.dr
            with m.If(ra >= r.stride):
                m.d.sync += [a.ra.eq(ra - r.stride), a.qa.eq(a.qa - a.dq - 1)]
            with m.Else():
                m.d.sync += [a.ra.eq(ra), a.qa.eq(a.qa - a.dq)]
            rb = a.rb - a.dr
            with m.If(rb < 0):
                m.d.sync += [a.rb.eq(rb + r.stride), a.qb.eq(a.qb - a.dq - 1)]
            with m.Else():
                m.d.sync += [a.rb.eq(rb), a.qb.eq(a.qb - a.dq)]
            rem = a.rem - a.dr
            with m.If(rem < 0):
                m.d.sync += [a.rem.eq(rem + r.stride), a.c.eq(a.c - a.dq - 1)]
            with m.Else():
                m.d.sync += [a.rem.eq(rem), a.c.eq(a.c - a.dq)]

        def phase_reset(a):
            return [a.phase.eq(0), a.c_ph.eq(a.c00), a.rem_ph.eq(a.rem00), a.k.eq(0),
                    a.c.eq(a.c00), a.rem.eq(a.rem00),
                    a.m_count.eq(a.q5 + (a.r5 > 0))]

        def phase_step(m, a):
            nxt = a.rem_ph + 1
            with m.If(nxt == a.r.stride):
                m.d.sync += [a.rem_ph.eq(0), a.c_ph.eq(a.c_ph + 1), a.rem.eq(0),
                             a.c.eq(a.c_ph + 1)]
            with m.Else():
                m.d.sync += [a.rem_ph.eq(nxt), a.rem.eq(nxt), a.c.eq(a.c_ph)]
            m.d.sync += [a.phase.eq(a.phase + 1), a.k.eq(0),
                         a.m_count.eq(a.q5 + (a.r5 > a.phase + 1))]

        m.d.sync += self.done.eq(0)
        with m.If(self.start):
            m.d.sync += running.eq(0)
        with m.Elif(setup_done):
            for a in axes:
                r = a.r
                q0, r0 = a.dividers[0].quotient, a.dividers[0].remainder
                m.d.sync += [
                    a.qa0.eq(Mux(r0 == 0, q0, q0 + 1)),
                    a.ra0.eq(Mux(r0 == 0, 0, r.stride - r0)),
                    a.qb0.eq(a.dividers[1].quotient), a.rb0.eq(a.dividers[1].remainder),
                    a.dq.eq(a.dividers[2].quotient), a.dr.eq(a.dividers[2].remainder),
                    a.c00.eq(a.dividers[3].quotient), a.rem00.eq(a.dividers[3].remainder),
                    a.q5.eq(a.dividers[4].quotient), a.r5.eq(a.dividers[4].remainder),
                    a.s0.eq(r.out_start * r.stride),
                    a.phases.eq(Mux(job.transposed,
                                    Mux(r.stride < r.out_len, r.stride, r.out_len), 1)),
                    # first candidate: phase 0, tap 0
                    a.k.eq(0), a.kd.eq(0), a.phase.eq(0),
                    a.qa.eq(Mux(r0 == 0, q0, q0 + 1)),
                    a.ra.eq(Mux(r0 == 0, 0, r.stride - r0)),
                    a.qb.eq(a.dividers[1].quotient), a.rb.eq(a.dividers[1].remainder),
                    a.c_ph.eq(a.dividers[3].quotient), a.rem_ph.eq(a.dividers[3].remainder),
                    a.c.eq(a.dividers[3].quotient), a.rem.eq(a.dividers[3].remainder),
                    a.m_count.eq(a.dividers[4].quotient + (a.dividers[4].remainder > 0)),
                ]
            m.d.sync += [running.eq(1), chunk.eq(0), tap.eq(0), emitted_in_phase.eq(0)]
        with m.Elif(advance):
            with m.If(self.passes.valid):
                m.d.sync += emitted_in_phase.eq(1)
            with m.If(~last_chunk):
                m.d.sync += chunk.eq(chunk + 1)
            with m.Else():
                m.d.sync += [chunk.eq(0), tap.eq(tap + 1)]
                # raster over taps: x fastest
                with m.If(~last_tap_terms[2]):
                    tap_step(m, axes[2])
                with m.Elif(~last_tap_terms[1]):
                    m.d.sync += tap_reset(axes[2])
                    tap_step(m, axes[1])
                with m.Elif(~last_tap_terms[0]):
                    m.d.sync += tap_reset(axes[2]) + tap_reset(axes[1])
                    tap_step(m, axes[0])
                with m.Else():
                    # next phase
                    m.d.sync += [tap.eq(0), emitted_in_phase.eq(0)]
                    with m.If(last_phase):
                        m.d.sync += [running.eq(0), self.done.eq(1)]
                    with m.Elif(axes[2].phase != axes[2].phases - 1):
                        for a in axes[:2]:
                            m.d.sync += tap_reset(a)
                        phase_step(m, axes[2])
                    with m.Elif(axes[1].phase != axes[1].phases - 1):
                        m.d.sync += phase_reset(axes[2]) + tap_reset(axes[0])
                        phase_step(m, axes[1])
                    with m.Else():
                        m.d.sync += phase_reset(axes[2]) + phase_reset(axes[1])
                        phase_step(m, axes[0])
        return m
