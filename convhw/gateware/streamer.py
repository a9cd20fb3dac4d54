"""The address generator's per-cycle half: the streamer.

The pass sequencer (:mod:`convhw.gateware.pass_sequencer`) decides *which* passes a job makes;
the :class:`Streamer` turns each of its descriptors into one input-buffer address and one
accumulator address per cycle. Its semantics are :func:`convhw.compiler.job.expand`, element for
element.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import timing
from ..config import EngineConfig
from ..job_format import DIMS, PaddingMode
from .family import family_of
from .job_registers import JobRegisters
from .multiplier import Multiplier
from .pass_sequencer import PassDescriptor

__all__ = ["Streamer", "StreamerInput"]


def StreamerInput(config: EngineConfig) -> data.StructLayout:
    """The payload the streamer takes: a pass descriptor and the weight bank its pass uses."""
    return data.StructLayout({"desc": PassDescriptor(config), "bank": unsigned(1)})


class Streamer(wiring.Component):
    """Streams the elements of pass descriptors: one input and one accumulator address per cycle.

    A pass is a raster over a box of outputs, dimension 2 (x) fastest, then y, then z. Per
    dimension the descriptor gives ``(o_start, count, g_start)``; element ``i`` of the dimension
    has the tile-local output coordinate ``o = o_start + i*E`` and the source coordinate
    ``g = g_start + i*A``, with ``(E, A) = (stride, 1)`` for a transposed job and ``(1, stride)``
    otherwise. Per element and dimension:

    * *real* source: ``0 <= g < in_size`` for zeros padding and for transposed jobs; the other
      padding modes first remap ``g`` into the layer (circular, reflect, replicate) and are
      always real. In a zero pass (``desc.zero``) nothing is real.
    * *local* coordinate: the position of ``g`` in the job's input window, which holds segment 0
      (``seg0_len`` coordinates from ``seg0_start``) followed by segment 1.

    The outputs for the element are then::

        in_addr  = ((lz*Wy + ly)*Wx + lx)*in_chunks + chunk     W = seg0_len + seg1_len
        acc_addr = (oz*Ly + oy)*Lx + ox                         L = out_len
        zero     = some dimension's source is not real (or not in the window)

    both computed in this nested (Horner) form, so that no product of job registers (a pitch)
    is needed: three multiply-adds for the input address and two for the accumulator address,
    each as wide as the address.

    Timing. ``passes.ready`` is high when the streamer is idle and in the cycle in which the
    counters hold the last element of the current pass, so a descriptor that is waiting then
    follows without a bubble. A descriptor taken in cycle ``x`` has its first element on the
    outputs in cycle ``x + 1 + latency`` and its others in the cycles right after; the streamer
    never stalls. With ``config.deep_pipeline``, seven register stages, one step of
    arithmetic each: the counters, the comparison of the sources with the layer (and the
    accumulator address's first multiply-add), the remap, the window look-up (and the
    accumulator address's second), and the input address's three multiply-adds (with, in the
    first, the zero and error flags from the look-up's results), the last of which drives the
    outputs. Without it, three: the counters; comparison, remap and look-up;
    the multiply-adds.

    ``job`` must hold the job's registers from :func:`convhw.timing.streamer_job_setup` cycles
    before the one in which its first descriptor is taken (1, or 6 with the FIR overlap below)
    until ``busy`` is low after its last: the streamer derives window sizes and other job
    constants from it through registers of its own. (In the engine the pass sequencer spends
    more setup cycles on a job before it offers a pass.)

    FIR (depthwise) mode: each row of outputs is followed by ``fir_taps - 1`` more words
    (``write`` low); with :func:`convhw.timing.fir_shares_padding`, every row of a pass but
    its first begins and every row but its last ends early by
    :func:`convhw.compiler.job.fir_rows`: the zero padding a row shares with the next, or,
    rows joined (:func:`convhw.compiler.job.fir_joined`), all of it, with ``word_row`` and
    ``sum_row`` telling the array which products cross a row's end.

    Parameters
    ----------
    config : EngineConfig
        Engine parameters; the coordinate widths and the input and accumulator depths are used.

    Attributes
    ----------
    job : In(JobRegisters(config))
        The job's registers.
    passes : In(stream.Signature(StreamerInput(config)))
        Pass descriptors, each with the weight bank of its pass. Every ``count`` must be at
        least 1; the descriptor's ``weights`` is not used here.
    out_valid : Out(1)
        The other outputs hold an element. They are meaningful only when it is high, except for
        ``pass_last`` and ``error``, which are low when it is low.
    in_addr : Out(address_width(input_depth))
        The element's input-buffer word. Unspecified when ``zero`` is high.
    zero : Out(1)
        The element's operand is zero: its source is padding, an inserted zero of a transposed
        layer or not in the window, or the pass is a zero pass.
    acc_addr : Out(address_width(acc_depth))
        The element's accumulator entry.
    init : Out(1)
        The pass's ``init`` flag: overwrite the accumulator entry instead of adding to it.
    bank : Out(1)
        The pass's weight bank.
    pass_last : Out(1)
        The element is the last of its pass.
    write : Out(1)
        In FIR (depthwise) mode, each row of outputs is followed by ``fir_taps - 1`` more input
        words; ``write`` is low for them (their sums are not outputs), high for every other
        valid element.
    word_row, sum_row : Out(1)
        FIR mode, with :func:`convhw.timing.fir_shares_padding`: the row tag of the element's
        word (the parity of its row in the pass) and of the output its sum makes (the next
        row's past a joined row's outputs); only with it.
    ready_next : Out(1)
        The value ``passes.ready`` will have in the next cycle.
    error : Out(1)
        The element's source is real but lies in neither window segment: the job's window is
        inconsistent with its descriptors (the compiler never makes such a job). ``zero`` is
        high with it.
    busy : Out(1)
        A taken pass still has elements in the counters, in the pipeline or on the outputs.

    Raises
    ------
    TypeError
        If ``config`` is not an :class:`EngineConfig`.
    """

    def __init__(self, config: EngineConfig) -> None:
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        self._config = config
        super().__init__({
            "job": In(JobRegisters(config)),
            "passes": In(stream.Signature(StreamerInput(config))),
            "out_valid": Out(1),
            "in_addr": Out(config.address_width(config.input_depth)),
            "zero": Out(1),
            "acc_addr": Out(config.address_width(config.acc_depth)),
            "init": Out(1),
            "bank": Out(1),
            "pass_last": Out(1),
            "error": Out(1),
            "write": Out(1),
            **({"word_row": Out(1), "sum_row": Out(1)}
               if timing.fir_shares_padding(config) else {}),
            "ready_next": Out(1),
            "busy": Out(1),
        })

    @property
    def config(self) -> EngineConfig:
        return self._config

    @staticmethod
    def latency_for(config: EngineConfig) -> int:
        """Register stages between the counters and the outputs of a streamer built for
        ``config``: 6 with ``deep_pipeline``, else 2 (:func:`convhw.timing.streamer_latency`)."""
        return timing.streamer_latency(config)

    @property
    def latency(self) -> int:
        """Register stages between the counters and the outputs: an element taken from the
        counters in cycle ``t`` is on the outputs in cycle ``t + latency``."""
        return self.latency_for(self._config)

    def elaborate(self, platform) -> Module:
        m = Module()
        config = self._config
        cw, sw = config.coord_width, config.signed_coord_width
        in_aw = config.address_width(config.input_depth)
        acc_aw = config.address_width(config.acc_depth)
        job = self.job
        desc = self.passes.payload.desc

        # -- job constants -------------------------------------------------------------------
        # Sums and choices of the static job registers, through registers of their own so that
        # no per-cycle path goes through an adder of them; the registers themselves are used
        # as they are. Each is ready one cycle after the first descriptor of the job is taken,
        # before the first element needs it.
        transposed = job.transposed
        mode = job.padding_mode
        remap = Signal()                     # non-zero padding: sources are remapped, all real
        circular, reflect, replicate = Signal(), Signal(), Signal()
        m.d.sync += [remap.eq(~transposed & (mode != PaddingMode.ZEROS)),
                     circular.eq(mode == PaddingMode.CIRCULAR),
                     reflect.eq(mode == PaddingMode.REFLECT),
                     replicate.eq(mode == PaddingMode.REPLICATE)]

        # An iCE40: few multipliers and logic cells, a slow clock (see the address's products
        # below).
        few_multipliers = family_of(platform) == "ice40"

        class AxisConstants:
            pass

        consts = []
        for d in range(DIMS):
            r = job.axes[d]
            c = AxisConstants()
            c.o_step = Signal(unsigned(config.param_width), name=f"o_step{d}")
            c.g_step = Signal(unsigned(config.param_width), name=f"g_step{d}")
            # A remapped source is base + g (circular), base - g (reflect) or base (replicate),
            # with one base below the layer (in_size when circular, else 0) and one above it.
            c.above = Signal(signed(cw + 2), name=f"base_above{d}")
            # The window's segment starts are copied too, though no sum is made of them: the
            # look-up in stage 3 compares against them, and from the job registers in the core
            # (routed across the device) that compare was the list engine's critical path on
            # the ECP5 (11.6 ns, seed 2); a copy here is placed beside the comparators. An
            # iCE40 (12 MHz) uses the job's registers: it has no logic cells to spare.
            if few_multipliers:
                c.seg0_start, c.seg1_start = r.seg0_start, r.seg1_start
            else:
                c.seg0_start = Signal(unsigned(cw), name=f"seg0_start{d}")
                c.seg1_start = Signal(unsigned(cw), name=f"seg1_start{d}")
                m.d.sync += [c.seg0_start.eq(r.seg0_start), c.seg1_start.eq(r.seg1_start)]
            c.seg0_end = Signal(unsigned(cw + 1), name=f"seg0_end{d}")
            c.seg1_end = Signal(unsigned(cw + 1), name=f"seg1_end{d}")
            c.seg1_off = Signal(signed(cw + 1), name=f"seg1_off{d}")     # local - g, segment 1
            m.d.sync += [
                c.o_step.eq(Mux(transposed, r.stride, 1)),
                c.g_step.eq(Mux(transposed, 1, r.stride)),
                c.above.eq(Mux(mode == PaddingMode.CIRCULAR, -r.in_size,
                               Mux(mode == PaddingMode.REFLECT, (r.in_size - 1) * 2,
                                   r.in_size - 1))),
                c.seg0_end.eq(r.seg0_start + r.seg0_len),
                c.seg1_end.eq(r.seg1_start + r.seg1_len),
                c.seg1_off.eq(r.seg0_len - r.seg1_start),
            ]
            if d:     # the nested address needs the window sizes of y and x
                c.window = Signal(in_aw, name=f"window{d}")
                m.d.sync += c.window.eq(r.seg0_len + r.seg1_len)
            consts.append(c)
        # The input words of one window row (x window times in_chunks) and in_chunks itself:
        # the address multiplies by in_chunks inside stage 5 (pixel*in_chunks = row*Wx*in_chunks
        # + lx*in_chunks) and not after it, where the multiply and the chunk's add made the
        # list engine's critical path on the ECP5 (11 levels from the job's registers). That
        # costs a multiplier more than (row*Wx + lx)*in_chunks after the stage, which an iCE40
        # UP5K, 8 DSP blocks in all and 4 of them the 2x2 array's, does not have: there
        # (`few_multipliers`, a 12 MHz clock) the address keeps the short form. The cycles are
        # the same. All addresses are below the input depth, so every product is taken modulo
        # 2**in_aw.
        # With the deep pipeline (and multipliers to spare) every product of the addresses is
        # a Multiplier whose product register is the stage's register, and the add that
        # followed the multiply moves into the next stage: on the ECP5 the register is then
        # the DSP block's own, and no path runs into a block and out again to a register in
        # the fabric (where placement put the block far off, that was the list engine's
        # critical path: 12.4 ns, 6.8 of it routing). The same cycles.
        dsp = config.deep_pipeline and not few_multipliers

        def product(a, b, name, width):
            """``a * b`` (unsigned) of the cycle before, modulo ``2**width``."""
            multiplier = Multiplier(len(a) + 1, len(b) + 1, registered_inputs=False)
            m.submodules[f"multiplier_{name}"] = multiplier
            m.d.comb += [multiplier.a.eq(a), multiplier.b.eq(b)]
            return multiplier.p[:width]

        if not few_multipliers:
            chunks = Signal(in_aw)
            row_words = Signal(in_aw)
            m.d.sync += chunks.eq(job.in_chunks)
            if dsp:
                # (a job constant: one cycle more than the fabric's multiply, long before use)
                m.d.comb += row_words.eq(product(consts[2].window, chunks, "row_words", in_aw))
            else:
                m.d.sync += row_words.eq(consts[2].window * chunks)

        # -- stage 0: the counters -----------------------------------------------------------
        # Per dimension a down-counter of the elements left, and the output and source
        # coordinates stepped by adds, and (but for z, which never restarts within a pass)
        # their first values to restart from.
        active = Signal()
        left = [Signal(unsigned(cw + 1), name=f"left{d}") for d in range(DIMS)]
        reload = [None] + [Signal(unsigned(cw + 1), name=f"reload{d}") for d in range(1, DIMS)]
        o = [Signal(unsigned(cw), name=f"o{d}") for d in range(DIMS)]
        o_first = [None] + [Signal(unsigned(cw), name=f"o_first{d}") for d in range(1, DIMS)]
        g = [Signal(signed(sw), name=f"g{d}") for d in range(DIMS)]
        g_first = [None] + [Signal(signed(sw), name=f"g_first{d}") for d in range(1, DIMS)]
        chunk = Signal.like(desc.chunk)
        init = Signal()
        zero_pass = Signal()
        bank = Signal()

        # Whether each counter is at its last element (``left == 0``), from registers updated
        # with the counters: `passes.ready` derives from them, and it reaches through the
        # loader into the sequencer's stepping, so it must not start with three comparators.
        last = [Signal(name=f"last{d}") for d in range(DIMS)]
        reload_last = [None] + [Signal(name=f"reload_last{d}") for d in range(1, DIMS)]
        last_element = Signal()
        m.d.comb += last_element.eq(active & last[0] & last[1] & last[2])

        # Raster: x always moves; a dimension that wraps restarts and carries outward. z never
        # wraps within a pass: its last step is the pass's last element, handled below.
        carry = [Signal(name=f"carry{d}") for d in range(DIMS)]
        m.d.comb += [carry[2].eq(1), carry[1].eq(last[2]), carry[0].eq(last[2] & last[1])]

        # `passes.ready` is ~active | last_element. On the ECP5 it comes from a register of its
        # own, loaded with that value's next state, since it reaches through the loader's
        # handshake into the enable of every register of the pass sequencer's stepping (the
        # list engine's critical path); the same value in every cycle. For an iCE40 (a 12 MHz
        # clock, and hardly a logic cell to spare) the two gates.
        take = Signal()
        ready = Signal(init=1)
        # The value `passes.ready` has in the next cycle (`ready_next`, which lets the pass
        # sequencer register its own stepping enable): set below with the counters.
        ready_next = Signal()
        m.d.comb += [ready_next.eq(1), self.ready_next.eq(ready_next)]
        if few_multipliers:
            m.d.comb += ready.eq(~active | last_element)
        else:
            m.d.sync += ready.eq(ready_next)
        m.d.comb += [
            self.passes.ready.eq(ready),
            take.eq(self.passes.valid & self.passes.ready),
        ]

        # FIR mode: each row of outputs streams fir_taps - 1 more input words (the array's
        # rows are the x taps); their sums are not outputs: `write` is low for them.
        extra = Signal(unsigned(config.param_width))
        m.d.sync += extra.eq(Mux(job.fir_taps == 0, 0, job.fir_taps - 1))
        # The x counter's first value, count - 1 + extra, is one add from the descriptor: of
        # a register holding extra - 1. (From the job's FIR_TAPS, three adds in a row were the
        # list engine's critical path on the ECP5, 11.9 ns.) Both registers hold the job's
        # values long before its first pass: the pass sequencer takes setup cycles first.
        extra_less_one = Signal(signed(config.param_width + 1), init=-1)
        m.d.sync += extra_less_one.eq(Mux(job.fir_taps == 0, -1, job.fir_taps - 2))
        write = Signal()
        share = timing.fir_shares_padding(config)
        if share:
            # The rows of a FIR pass share their x padding (timing.fir_shares_padding): every
            # row but the pass's last streams `overlap` words less, the next row's first
            # (zero) words doing for its last. overlap = min(leading, trailing, extra), the
            # zero words at a row's ends (convhw.compiler.job.fir_overlap), a job constant
            # made one add or compare a cycle: the sequencer's set-up gives it time
            # (timing.streamer_job_setup).
            x = job.axes[DIMS - 1]
            pw = config.param_width
            span_end = Signal(unsigned(cw + 1))      # out_start + out_len
            in_end = Signal(unsigned(cw + 1))        # pad_lo + in_size
            leading = Signal(signed(cw + 1))         # pad_lo - out_start (x stride 1)
            m.d.sync += [span_end.eq(x.out_start + x.out_len), in_end.eq(x.pad_lo + x.in_size),
                         leading.eq(x.pad_lo - x.out_start)]
            row_end = Signal(unsigned(cw + 2))       # out_start + out_len + extra
            in_end_r = Signal(unsigned(cw + 1))
            leading_extra = Signal(unsigned(pw))     # min(max(leading, 0), extra), in two steps
            leading_pos = Signal(unsigned(cw))
            m.d.sync += [row_end.eq(span_end + extra), in_end_r.eq(in_end),
                         leading_pos.eq(Mux(leading[-1], 0, leading[:cw]))]
            trailing = Signal(signed(cw + 3))        # row_end - in_end
            m.d.sync += [trailing.eq(row_end - in_end_r),
                         leading_extra.eq(Mux(leading_pos < extra, leading_pos, extra))]
            trailing_pos = Signal(unsigned(cw + 2))
            leading_r = Signal(unsigned(pw))
            zeros = Signal()                         # zeros padding, FIR mode
            m.d.sync += [trailing_pos.eq(Mux(trailing[-1], 0, trailing[:cw + 2])),
                         leading_r.eq(leading_extra),
                         zeros.eq((mode == PaddingMode.ZEROS) & ~transposed
                                  & (job.fir_taps != 0) & (x.stride == 1))]
            overlap = Signal(unsigned(pw))
            m.d.sync += overlap.eq(Mux(zeros, Mux(trailing_pos < leading_r, trailing_pos,
                                                  leading_r), 0))
            # Rows joined without their padding (convhw.compiler.job.fir_joined): each row
            # the whole input row, one output plane; made in two steps.
            z = job.axes[0]
            whole_rows = Signal()
            joined = Signal()
            m.d.sync += [
                whole_rows.eq((mode == PaddingMode.ZEROS) & ~transposed & (job.fir_taps != 0)
                              & (x.stride == 1) & (x.out_start == 0)
                              & (x.out_len == x.in_size) & (z.out_len == 1)),
                joined.eq(whole_rows & (x.pad_lo <= extra) & (x.in_size >= extra)),
            ]
            pad_lo = x.pad_lo[:pw]                   # (<= extra when joined)
            # Every row of a pass but its first begins `lead` words late, every row but its
            # last ends `cut` words early: (pad_lo, extra - pad_lo) joined, else (0, overlap).
            # The x counter starts at count - 1 + extra less what the row drops (els_*),
            # and the row writes while left >= extra less what it drops at its end and
            # (joined, where every element of a row but the last is some row's output) at
            # its start (threshold_short); the pass's last row: extra.
            lead = Signal(unsigned(pw))
            els_first = Signal(signed(pw + 1), init=-1)
            els_middle = Signal(signed(pw + 1), init=-1)
            els_last = Signal(signed(pw + 1), init=-1)
            # (whether those offsets are 0; set at reset, as the offsets are then -1)
            drop_first, drop_middle, drop_last = (Signal(init=1), Signal(init=1),
                                                  Signal(init=1))
            thr_short = Signal(unsigned(pw))
            m.d.sync += [
                lead.eq(Mux(joined, pad_lo, 0)),
                els_first.eq(Mux(joined, pad_lo - 1, extra_less_one - overlap)),
                els_middle.eq(Mux(joined, -1, extra_less_one - overlap)),
                els_last.eq(Mux(joined, extra_less_one - pad_lo, extra_less_one)),
                drop_first.eq(Mux(joined, pad_lo == 0, extra == overlap)),
                drop_middle.eq(Mux(joined, 1, extra == overlap)),
                drop_last.eq(Mux(joined, extra == pad_lo, extra == 0)),
                thr_short.eq(Mux(joined, 0, extra - overlap)),
            ]
            # Latched with the pass, so that a pass is consistent in itself whatever the job
            # registers do (the formal harness's job may change in the first cycles).
            threshold = Signal(unsigned(pw))
            threshold_short = Signal(unsigned(pw))
            threshold_long = Signal(unsigned(pw))
            reload_long = Signal(unsigned(cw + 1))
            reload_long_last = Signal()
            m.d.comb += write.eq(left[DIMS - 1] >= threshold)
            # The row tags: the word's row (toggled at each row of the pass) and, joined,
            # the row of the output its sum makes, the next one past the row's outputs.
            joined_pass = Signal()
            word_row = Signal()
        else:
            m.d.comb += write.eq(left[DIMS - 1] >= extra)

        singles = []
        with m.If(take):
            m.d.sync += active.eq(1)
            for d in range(DIMS):
                a = desc.axes[d]
                first = a.count + extra_less_one if d == DIMS - 1 else a.count - 1
                # count == 1, without waiting for the adder (every count is at least 1)
                single = ((a.count == 1) & (extra == 0)) if d == DIMS - 1 else a.count == 1
                reload_o, reload_g = a.o_start, a.g_start
                if share and d == DIMS - 1:
                    # the pass's first row drops its end unless it is also its last; the
                    # later rows begin `lead` words late
                    one_row = singles[0] & singles[1]
                    single_first = (a.count == 1) & drop_first
                    m.d.sync += [reload_long.eq(a.count + els_last),
                                 reload_long_last.eq((a.count == 1) & drop_last),
                                 threshold_long.eq(extra), threshold_short.eq(thr_short),
                                 threshold.eq(Mux(one_row, extra, thr_short)),
                                 joined_pass.eq(joined), word_row.eq(0)]
                    reload_first = a.count + els_middle
                    reload_single = (a.count == 1) & drop_middle
                    first = Mux(one_row, first, a.count + els_first)
                    single = Mux(one_row, single, single_first)
                    reload_o, reload_g = a.o_start + lead, a.g_start + lead
                else:
                    reload_first, reload_single = first, single
                singles.append(single)
                m.d.sync += [left[d].eq(first), last[d].eq(single),
                             o[d].eq(a.o_start), g[d].eq(a.g_start)]
                if d:
                    m.d.sync += [reload[d].eq(reload_first), reload_last[d].eq(reload_single),
                                 o_first[d].eq(reload_o), g_first[d].eq(reload_g)]
            m.d.sync += [chunk.eq(desc.chunk), init.eq(desc.init), zero_pass.eq(desc.zero),
                         bank.eq(self.passes.payload.bank)]
            m.d.comb += ready_next.eq(singles[0] & singles[1] & singles[2])
        with m.Elif(last_element):
            m.d.sync += active.eq(0)
        with m.Elif(active):
            next_last = []
            for d in range(DIMS):
                # the value `last[d]` takes: left == 1 when it counts down, the reload's flag
                # when it restarts, else its own
                nl = Signal(name=f"next_last{d}")
                m.d.comb += nl.eq(last[d])
                next_last.append(nl)
                with m.If(carry[d] & ~last[d]):
                    m.d.comb += nl.eq(left[d] == 1)
                    m.d.sync += [left[d].eq(left[d] - 1),
                                 o[d].eq(o[d] + consts[d].o_step),
                                 g[d].eq(g[d] + consts[d].g_step)]
                if d and share and d == DIMS - 1:
                    with m.Elif(carry[d]):
                        # the next row is the pass's last: its whole tail
                        last_row = next_last[0] & next_last[1]
                        m.d.comb += nl.eq(Mux(last_row, reload_long_last, reload_last[d]))
                        m.d.sync += [left[d].eq(Mux(last_row, reload_long, reload[d])),
                                     threshold.eq(Mux(last_row, threshold_long,
                                                      threshold_short)),
                                     word_row.eq(~word_row),
                                     o[d].eq(o_first[d]), g[d].eq(g_first[d])]
                elif d:
                    with m.Elif(carry[d]):
                        m.d.comb += nl.eq(reload_last[d])
                        m.d.sync += [left[d].eq(reload[d]),
                                     o[d].eq(o_first[d]), g[d].eq(g_first[d])]
                m.d.sync += last[d].eq(nl)
            m.d.comb += ready_next.eq(next_last[0] & next_last[1] & next_last[2])

        # -- the pipeline after the counters -------------------------------------------------
        # One step of arithmetic per stage: compare; remap; window look-up; then the input
        # address's three nested multiply-adds one per stage, while the accumulator address
        # takes its two in the first and third stages. The element's other fields ride along.
        # Without the deep pipeline only the look-up stage and the outputs are registers: the
        # other stages pass their fields on as they are.
        valids = []

        def stage(fields, name, deep_only=True):
            """The fields (name -> value) in the next stage: registers, with a valid bit,
            unless the stage exists only in the deep pipeline and the engine has none."""
            if deep_only and not config.deep_pipeline:
                return fields
            regs = {}
            for field, value in fields.items():
                regs[field] = Signal(Value.cast(value).shape(), name=f"{field}_{name}")
                m.d.sync += regs[field].eq(value)
            valids.append(regs["valid"])
            return regs

        # Stage 1: where each source lies (below, inside or above the layer). Nested
        # multiply-adds (here and below) are taken modulo the address width: the addresses of a
        # consistent job fit, so the high bits never matter.
        fields = {"valid": active, "last": last_element, "write": write, "chunk": chunk,
                  "init": init, "bank": bank, "o2": o[2], "zero_pass": zero_pass}
        tags = ()
        if share:
            # past its row's outputs (joined): the next row's output
            past = joined_pass & (o[2] >= job.axes[2].out_len)
            fields["tags"] = Cat(word_row, word_row ^ past)
            tags = ("tags",)
        for d in range(DIMS):
            fields[f"g{d}"] = g[d]
            fields[f"below{d}"] = g[d] < 0
            fields[f"above{d}"] = g[d] >= job.axes[d].in_size
        if dsp:
            acc_row_product = product(o[0], job.axes[1].out_len, "acc_row", acc_aw)
            fields["o1"] = o[1]
        else:
            acc_row = Signal(acc_aw)
            m.d.comb += acc_row.eq(o[0] * job.axes[1].out_len + o[1])
            fields["acc_row"] = acc_row
        s0 = stage(fields, "s0")

        # Stage 2: remap.
        fields = {name: s0[name] for name in ("valid", "last", "write", "chunk", "init", "bank",
                                               "o2", *tags)}
        if dsp:
            acc_row = Signal(acc_aw)
            m.d.comb += acc_row.eq(acc_row_product + s0["o1"])
            fields["acc_row"] = acc_row
        else:
            fields["acc_row"] = s0["acc_row"]
        for d in range(DIMS):
            c, r = consts[d], job.axes[d]
            below, above, gd = s0[f"below{d}"], s0[f"above{d}"], s0[f"g{d}"]
            outside = Signal(name=f"outside{d}")
            m.d.comb += outside.eq(remap & (below | above))
            base = Mux(outside, Mux(below, Mux(circular, r.in_size, 0), c.above), 0)
            gr = Signal(signed(sw), name=f"g_remapped{d}")
            m.d.comb += gr.eq(Mux(outside & reflect, base - gd,
                                  base + Mux(outside & replicate, 0, gd)))
            fields[f"g{d}"] = gr
            fields[f"real{d}"] = ~s0["zero_pass"] & (remap | ~(below | above))
        s1 = stage(fields, "s1")

        # Stage 3: window look-up; the accumulator address. Both local coordinates are made
        # while the segments are compared, then one is chosen.
        fields = {name: s1[name] for name in ("valid", "last", "write", "chunk", "init", "bank",
                                               *tags)}
        for d in range(DIMS):
            c, r, gr = consts[d], job.axes[d], s1[f"g{d}"]
            in0, in1 = Signal(name=f"in_seg0_{d}"), Signal(name=f"in_seg1_{d}")
            m.d.comb += [
                in0.eq((gr >= c.seg0_start) & (gr < c.seg0_end)),
                in1.eq((gr >= c.seg1_start) & (gr < c.seg1_end)),
            ]
            local = Signal(in_aw, name=f"local{d}")
            m.d.comb += local.eq(Mux(in0, gr - c.seg0_start, gr + c.seg1_off))
            fields[f"local{d}"] = local
            fields[f"real{d}"] = s1[f"real{d}"]
            fields[f"miss{d}"] = s1[f"real{d}"] & ~in0 & ~in1
        if dsp:
            acc_product = product(s1["acc_row"], job.axes[2].out_len, "acc", acc_aw)
            fields["o2"] = s1["o2"]
        elif config.deep_pipeline:
            acc = Signal(acc_aw)
            m.d.comb += acc.eq(s1["acc_row"] * job.axes[2].out_len + s1["o2"])
            fields["acc"] = acc
        else:
            # Without the deep pipeline the two multiply-adds in logic are split by this
            # stage's register, the second made after it (where the input address's products,
            # in DSP blocks, take as long): both in one cycle were the up5k engine's critical
            # path on the iCEBreaker (48.0 ns, 14 LUTs deep: 20.8 MHz).
            fields["acc_row"], fields["o2"] = s1["acc_row"], s1["o2"]
        s2 = stage(fields, "s2", deep_only=False)
        if not config.deep_pipeline:
            acc = Signal(acc_aw)
            m.d.comb += acc.eq(s2["acc_row"] * job.axes[2].out_len + s2["o2"])
            s2 = {**s2, "acc": acc}

        # Stages 4 and 5: (lz*Wy + ly)*Wx + lx; and whether the operand is zero (a source
        # that is not real) or missing from the window (an error).
        any_miss = Signal()
        m.d.comb += any_miss.eq(s2["miss0"] | s2["miss1"] | s2["miss2"])
        keep = ("valid", "last", "write", "chunk", "init", "bank", *tags)
        fields = {name: s2[name] for name in keep}
        if dsp:
            acc = Signal(acc_aw)
            m.d.comb += acc.eq(acc_product + s2["o2"])
            fields["acc"] = acc
            # (lz*Wy)*Wx*in_chunks + ly*Wx*in_chunks + lx*in_chunks in the next stage
            row_product = product(s2["local0"], consts[1].window, "row", in_aw)
            fields["local1"] = s2["local1"]
        else:
            fields["acc"] = s2["acc"]
            row = Signal(in_aw)
            m.d.comb += row.eq(s2["local0"] * consts[1].window + s2["local1"])
            fields["row"] = row
        keep += ("acc",)
        s3 = stage({**fields, "local2": s2["local2"],
                    "zero": ~(s2["real0"] & s2["real1"] & s2["real2"]) | any_miss,
                    "error": s2["valid"] & any_miss}, "s3")
        keep += ("zero", "error")
        if dsp:
            s4 = stage({name: s3[name] for name in keep}, "s4")
            words = [product(row_product, row_words, "row_words_z", in_aw),
                     product(s3["local1"], row_words, "row_words_y", in_aw),
                     product(s3["local2"], chunks, "chunks_x", in_aw)]
            in_addr = words[0] + words[1] + words[2] + s4["chunk"]
        elif few_multipliers:
            pixel = Signal(in_aw)
            m.d.comb += pixel.eq(s3["row"] * consts[2].window + s3["local2"])
            s4 = stage({**{name: s3[name] for name in keep}, "pixel": pixel}, "s4")
            in_addr = s4["pixel"] * job.in_chunks + s4["chunk"]
        else:
            pixel_words = Signal(in_aw)      # the pixel's first word: pixel*in_chunks
            m.d.comb += pixel_words.eq(s3["row"] * row_words + s3["local2"] * chunks)
            s4 = stage({**{name: s3[name] for name in keep}, "pixel_words": pixel_words}, "s4")
            in_addr = s4["pixel_words"] + s4["chunk"]

        # The outputs: pixel*in_chunks + chunk.
        m.d.sync += [
            self.out_valid.eq(s4["valid"]),
            self.in_addr.eq(in_addr),
            self.acc_addr.eq(s4["acc"]),
            self.zero.eq(s4["zero"]),
            self.init.eq(s4["init"]),
            self.bank.eq(s4["bank"]),
            self.pass_last.eq(s4["last"]),
            self.error.eq(s4["error"]),
            self.write.eq(s4["valid"] & s4["write"]),
        ]
        if share:
            m.d.sync += [self.word_row.eq(s4["tags"][0]), self.sum_row.eq(s4["tags"][1])]

        m.d.comb += self.busy.eq(active | Cat(*valids).any() | self.out_valid)
        # The stages built above and the output register are the latency the cycle model uses.
        assert len(valids) + 1 == self.latency, (len(valids), self.latency)
        return m
