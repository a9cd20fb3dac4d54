"""``JobChecker``: the checks of a job descriptor that come after the fetcher's and before any
load, so that a list reports errors in docs/memory.md's order.

It passes the fetcher's entries on, one at a time; an entry without a code gets the first of
these that fails (:func:`convhw.compiler.list_model.job_code` is the same in NumPy):

* ``BAD_GEOMETRY``: a size, kernel, stride, dilation, tile length or ``IN_CHUNKS`` of 0;
  ``FIR_TAPS`` set for a job that cannot use the FIR mode (more taps than rows; an x
  dilation other than 1; an x kernel or stride other than 1, or with
  :func:`convhw.timing.fir_takes_stride` an x kernel above the x stride; transposed);
  ``WRITE_OUTPUT`` with ``OUT_CHANNELS`` 0;
* ``BAD_PADDING``: a padding mode other than zeros for a transposed job; circular padding
  beyond the input; reflect padding at or beyond it;
* ``TILE_TOO_LARGE``: the tile's outputs beyond an accumulator bank (``acc_depth / 2``);
* ``WINDOW_TOO_LARGE``: the window's words (times ``IN_CHUNKS``) beyond an input bank;
* ``WEIGHTS_TOO_LARGE``: the job's weights (``taps x IN_CHUNKS x rows`` words from
  ``WEIGHT_BASE``), or a weight load's ``WEIGHT_WORDS``, beyond the buffer or across the middle
  of the weight buffer (a bank);
* ``SOURCE_RANGE``: a forward tile whose last output times the stride is ``2**coord_width``
  or more in some dimension (its source coordinates would wrap in the address generator);
* ``MISALIGNED``: an input, weight or output address or pitch not a multiple of its element's
  bytes, ``PARAMS_ADDR`` not a multiple of 4.

The products are made one factor at a time on one saturating multiplier (its operands and
its product registered: on an ECP5 the DSP block's own registers), so the checker costs a few
multipliers' worth of logic and about two cycles per factor per job; it works ahead of the job
being computed.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import timing
from ..config import EngineConfig
from ..job_format import PaddingMode
from ..registers import ErrorCode
from .descriptor_fetcher import descriptor_layout
from .job_registers import fir_refused
from .multiplier import Multiplier

__all__ = ["JobChecker"]

_INDEX_BITS = 16


class JobChecker(wiring.Component):
    """See the module documentation.

    Attributes
    ----------
    entries : In(stream)
        The fetcher's entries (``descriptor``, ``index``, ``code``).
    checked : Out(stream)
        The same entries, ``code`` set by the checks when it was 0.
    busy : Out(1)
        An entry has been taken and not yet handed on: the list engine is not idle before the
        checker is (an entry it holds would otherwise reach the next list as its first job).
    """

    def __init__(self, config: EngineConfig):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        self._config = config
        entry = data.StructLayout({"descriptor": descriptor_layout(), "index": _INDEX_BITS,
                                   "code": 8})
        super().__init__({"entries": In(stream.Signature(entry)),
                          "checked": Out(stream.Signature(entry)),
                          "busy": Out(1)})

    def elaborate(self, platform) -> Module:
        m = Module()
        config = self._config
        half_acc, half_in = config.acc_depth // 2, config.input_depth // 2
        half_w = config.weight_depth // 2

        entry = Signal.like(self.entries.payload)
        d = entry.descriptor
        # The products and their limits; every product saturates just above the largest limit.
        windows = [d.z_seg0_len + d.z_seg1_len, d.y_seg0_len + d.y_seg1_len,
                   d.x_seg0_len + d.x_seg1_len]
        # A forward tile's last output times the stride, per dimension (timing.CHECK_PRODUCTS).
        cw = config.coord_width
        out_ends = [(d.z_out_start + d.z_out_len - 1)[:cw + 1],
                    (d.y_out_start + d.y_out_len - 1)[:cw + 1],
                    (d.x_out_start + d.x_out_len - 1)[:cw + 1]]
        factors = [d.z_out_len, d.y_out_len, d.x_out_len,
                   *windows, d.in_chunks,
                   d.z_kernel, d.y_kernel, d.x_kernel, d.in_chunks, config.rows,
                   out_ends[0], d.z_stride, out_ends[1], d.y_stride, out_ends[2], d.x_stride]
        firsts = (0, 3, 7, 12, 14, 16)       # the first factor of each product
        # the cycle model counts them (convhw.timing.checker_cycles)
        assert (len(factors), len(firsts)) == (timing.CHECKER_FACTORS, timing.CHECKER_PRODUCTS)
        coord_limit = (1 << cw) - 1
        width = max(half_acc, half_in, config.weight_depth, coord_limit).bit_length() + 1
        cap = (1 << width) - 1

        step = Signal(range(len(factors) + 2))
        factor = Signal(17)
        value = Signal(width)
        products = [Signal(width, name=f"product{i}") for i in range(len(firsts))]
        # `factor` and `value` are registers; the multiplier's operand registers load the same
        # next values (`factor_next`, `value_next`), so that its product is value * factor of
        # the cycle before, as a product register behind them would be, while on an ECP5 the
        # operand and product registers are the DSP block's own (a fabric register on each
        # side of the block made this multiply the list engine's critical path, 11.6 ns).
        factor_next, value_next = Signal.like(factor), Signal.like(value)
        m.d.comb += [factor_next.eq(factor), value_next.eq(value)]
        m.d.sync += [factor.eq(factor_next), value.eq(value_next)]
        with m.Switch(step):
            for i, f in enumerate(factors):
                with m.Case(i):
                    m.d.comb += factor_next.eq(f)
        m.submodules.multiplier = multiplier = Multiplier(width + 1, len(factor) + 1)
        m.d.comb += [multiplier.a.eq(Cat(value_next, Const(0, 1))),
                     multiplier.b.eq(Cat(factor_next, Const(0, 1)))]
        product = multiplier.p[:width + len(factor)]
        saturated = Mux(product[width:].any(), cap, product[:width])

        # The checks' flags (below): the products' registered in FLAGS, from the products and
        # from the room left in the weight bank for the weights (settled long before).
        tile_bad, window_bad, weights_bad, range_bad = Signal(), Signal(), Signal(), Signal()
        weight_room = Signal(range(half_w + 1))
        weights_early_bad = Signal()
        code = Signal(8)             # the decision, from the registers below
        code_r = Signal(8)           # ... registered in CODE, offered in DECIDE
        with m.FSM() as fsm:
            with m.State("IDLE"):
                m.d.comb += self.entries.ready.eq(1)
                with m.If(self.entries.valid):
                    m.d.sync += [entry.eq(self.entries.payload), step.eq(0)]
                    m.next = "LOAD"
            with m.State("LOAD"):            # the first factor is being registered
                m.d.sync += step.eq(step + 1)
                m.next = "MULTIPLY"
            with m.State("MULTIPLY"):
                # In this state `factor` holds factor `step - 1`; `value` the product so far.
                index = step - 1
                first = Cat(*[index == f for f in firsts]).any()
                with m.If(first):
                    # Saturated like every product (a first factor of 2**width or more must
                    # not wrap to a small one).
                    m.d.comb += value_next.eq(Mux(factor[width:].any(), cap, factor[:width]))
                    m.next = "NEXT"
                with m.Else():
                    m.next = "PRODUCT"
            with m.State("PRODUCT"):         # value * factor is registered now
                m.d.comb += value_next.eq(saturated)
                m.next = "NEXT"
            with m.State("NEXT"):
                # Store a completed product: the one whose last factor was `step - 1`.
                for i, end in enumerate(firsts[1:] + (len(factors),)):
                    with m.If(step == end):
                        m.d.sync += products[i].eq(value)
                with m.If(step == len(factors)):
                    m.next = "FLAGS"
                with m.Else():
                    m.d.sync += step.eq(step + 1)
                    m.next = "MULTIPLY"
            with m.State("FLAGS"):       # the products' comparisons are registered
                m.d.sync += [tile_bad.eq(products[0] > half_acc),
                             window_bad.eq(products[1] > half_in),
                             weights_bad.eq(weights_early_bad | (products[2] > weight_room)),
                             range_bad.eq(~d.transposed
                                          & Cat(*[p > coord_limit for p in products[3:]]).any())]
                m.next = "CODE"
            with m.State("CODE"):
                # The decision is registered before it is offered: its comparisons would
                # otherwise run on into the list controller's in the same cycle.
                m.d.sync += code_r.eq(code)
                m.next = "DECIDE"
            with m.State("DECIDE"):
                m.d.comb += self.checked.valid.eq(1)
                with m.If(self.checked.ready):
                    m.next = "IDLE"

        # -- the decision ------------------------------------------------------------------
        # Every check is a flag in a register, so that the decision is one priority choice
        # over registers. The flags of the descriptor's fields alone settle while the products
        # are made (they take two cycles; the products many more); those of the products are
        # registered in FLAGS. One chain of adders and comparisons per cycle at most: three
        # in a row (a bank's base, plus the weights, against the bank) were the checker's
        # critical path on the ECP5.
        axes = [(d.z_in_size, d.z_kernel, d.z_stride, d.z_dilation, d.z_out_len, d.z_pad_lo),
                (d.y_in_size, d.y_kernel, d.y_stride, d.y_dilation, d.y_out_len, d.y_pad_lo),
                (d.x_in_size, d.x_kernel, d.x_stride, d.x_dilation, d.x_out_len, d.x_pad_lo)]
        zero = [d.in_chunks == 0, d.write_output & (d.out_channels == 0)]
        for size, kernel, stride, dilation, out_len, _ in axes:
            zero += [size == 0, kernel == 0, stride == 0, dilation == 0, out_len == 0]
        # (a polyphase FIR, timing.fir_takes_stride: an x kernel of the stride's phases)
        zero.append(fir_refused(config, fir_taps=d.fir_taps, x_kernel=d.x_kernel,
                                x_stride=d.x_stride, x_dilation=d.x_dilation,
                                transposed=d.transposed))
        padding = [d.transposed & (d.padding_mode != PaddingMode.ZEROS)]
        for size, _, _, _, _, pad in axes:
            padding += [(d.padding_mode == PaddingMode.CIRCULAR) & (pad > size),
                        (d.padding_mode == PaddingMode.REFLECT) & (pad >= size)]
        out_unit = Mux(d.requantize | d.float_requantize, config.input_bytes, config.raw_bytes)
        misaligned = []
        for name, unit in (("input_addr", config.input_bytes),
                           ("input_pixel_pitch", config.input_bytes),
                           ("input_row_pitch", config.input_bytes),
                           ("input_plane_pitch", config.input_bytes),
                           ("weight_addr", config.weight_bytes), ("params_addr", 4)):
            if unit > 1:
                misaligned.append(getattr(d, name)[:unit.bit_length() - 1] != 0)
        for name in ("output_addr", "output_pixel_pitch", "output_row_pitch",
                     "output_plane_pitch"):
            misaligned.append((getattr(d, name) & (out_unit - 1)) != 0)
        zero_bad, padding_bad, misaligned_bad = Signal(), Signal(), Signal()
        # The flags follow the entry from LOAD to CODE, where the decision is registered;
        # nothing reads them in IDLE or in DECIDE (where a checked entry usually waits for the
        # list controller): held there, they cost a simulator nothing between jobs.
        deciding = Signal()
        m.d.comb += deciding.eq(~fsm.ongoing("IDLE") & ~fsm.ongoing("DECIDE"))
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        with m.If(deciding):
            m.d.sync += [zero_bad.eq(Cat(*zero).any()), padding_bad.eq(Cat(*padding).any()),
                         misaligned_bad.eq(Cat(*misaligned).any())]
        # The weights: the room left in the base's bank (meaningless past the buffer's end,
        # which fails on its own).
        base_in_bank = Signal(range(config.weight_depth))
        base_beyond = Signal()
        with m.If(deciding):
            m.d.sync += [base_in_bank.eq(Mux(d.weight_base >= half_w, d.weight_base - half_w,
                                             d.weight_base)),
                         base_beyond.eq(d.weight_base >= config.weight_depth)]
            m.d.sync += [weight_room.eq(half_w - base_in_bank),
                         weights_early_bad.eq(base_beyond
                                              | (d.load_weights & (d.weight_words != 0)
                                                 & (d.weight_words > weight_room)))]
        with m.If(entry.code != 0):
            m.d.comb += code.eq(entry.code)
        with m.Elif(zero_bad):
            m.d.comb += code.eq(ErrorCode.BAD_GEOMETRY)
        with m.Elif(padding_bad):
            m.d.comb += code.eq(ErrorCode.BAD_PADDING)
        with m.Elif(tile_bad):
            m.d.comb += code.eq(ErrorCode.TILE_TOO_LARGE)
        with m.Elif(window_bad):
            m.d.comb += code.eq(ErrorCode.WINDOW_TOO_LARGE)
        with m.Elif(weights_bad):
            m.d.comb += code.eq(ErrorCode.WEIGHTS_TOO_LARGE)
        with m.Elif(range_bad):
            m.d.comb += code.eq(ErrorCode.SOURCE_RANGE)
        with m.Elif(misaligned_bad):
            m.d.comb += code.eq(ErrorCode.MISALIGNED)
        m.d.comb += [self.checked.payload.eq(entry), self.checked.payload.code.eq(code_r)]
        return m
