"""The systolic array: ``rows x cols`` processing elements, weight-stationary, partial sums
flowing down the columns, in dense or depthwise (FIR) lane mode."""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from .. import timing
from ..config import EngineConfig
from .pe import ProcessingElement

__all__ = ["SystolicArray"]


class SystolicArray(wiring.Component):
    """A weight-stationary systolic array that takes one input word per cycle.

    PE(r, c) holds two weights (banks 0 and 1) and adds its product to the partial sum coming
    down column ``c``; the bottom row's sums are the outputs, one per column.

    Dataflow (word ``x(τ)`` presented in cycle ``τ``, lane ``i`` is ``x_i(τ)``):

    0. *Input stage.* With ``config.deep_pipeline`` the word is registered once on entry
       (``s = 1`` stage, :func:`convhw.timing.array_input_stages`; else ``s = 0``), so that
       every PE takes its operand from a register; all that follows happens ``s`` cycles later.
    1. *Skew.* In dense mode lane ``r`` (with its copy of the bank bit) is delayed by ``r``
       cycles; in depthwise mode no lane is delayed.
    2. *Column delay.* Column ``c`` sees the skewed word ``c`` cycles later, through one register
       chain shared by the column's rows.
    3. *Operands.* Dense: PE(r, c) multiplies lane ``r``. Depthwise: every PE of column ``c``
       multiplies lane ``lane_select[c]``. Each operand is multiplied with the weight of the bank
       its lane carries.
    4. *De-skew.* Column ``c``'s bottom sum is delayed by ``cols - 1 - c`` cycles so that all
       columns of one word leave together, :attr:`latency` cycles after the word entered.

    Results, with ``W[b][r][c]`` the weight of bank ``b`` in PE(r, c) and every sum taken modulo
    ``2**acc_width`` (two's complement)::

        dense:      out_psum[c](τ + latency) = sum_r x_r(τ) * W[bank(τ)][r][c]
        depthwise:  out_psum[c](τ + latency) = sum_r x_s(τ + r) * W[bank(τ + r)][r][c],
                                               s = lane_select[c]

    Depthwise mode is a systolic FIR filter over consecutive words: row ``r`` holds tap ``r``
    and multiplies word ``τ + r``. ``out_valid`` follows ``in_valid`` with the dense timing, so
    in depthwise mode it only says that word ``τ``, the oldest of its window, was valid: the
    output for ``τ`` is a complete window only if words ``τ + 1 .. τ + rows - 1`` were real too.
    A stream of ``n`` words (say one row of pixels) gives ``n - rows + 1`` complete windows; the
    outputs of its last ``rows - 1`` words run into whatever follows and are for the surrounding
    engine to discard.

    A word with ``in_valid`` low is a bubble: it flows through the array like any other word
    but its output has ``out_valid`` low. In dense mode words are independent, so a bubble does
    not disturb its neighbours; in depthwise mode it is still a sample in the windows of the
    ``rows - 1`` words before it.

    Weights. ``w_we`` high in cycle ``t`` writes ``w_data`` (column ``c`` in bits
    ``[c*weight_width, (c+1)*weight_width)``) into bank ``w_bank`` of every PE of row ``w_row``;
    operands taken from cycle ``t + 1`` on are multiplied with it. PE(r, c) takes dense word
    ``τ`` (and its weight) in cycle ``τ + s + r + c`` and depthwise word ``τ`` in cycle
    ``τ + s + c``. So a bank may be written up to the cycle before the first word that uses it
    reaches row 0 (``τ_first + s - 1``), and again from the cycle in which the last word that
    used it is taken for the last time: ``τ_last + s + rows + cols - 2`` (dense) or
    ``τ_last + s + cols - 1`` (depthwise) for the whole bank, and row ``r`` of it (dense) from
    ``τ_last + s + r + cols - 1``: the weight loader writes the rows in order, one a cycle, so
    only the columns' delay keeps it waiting (:func:`convhw.timing.weight_guard`). Loading one
    bank while the other streams lets consecutive passes follow each other without a bubble.

    Parameters
    ----------
    config : EngineConfig
        Engine parameters; ``rows``, ``cols`` and the widths are used.

    Attributes
    ----------
    in_valid : In(1)
        The word in ``in_word`` is real data.
    in_word : In(rows * operand_width)
        One input word: ``rows`` signed lanes of ``config.operand_width`` bits (``input_width``,
        or ``input_width + 1`` with ``activation_offset``: the input less its zero point), lane
        ``i`` in bits ``[i*operand_width, (i+1)*operand_width)``.
    in_bank : In(1)
        The weight bank the word is multiplied with.
    in_word_row, in_sum_row : In(1)
        Depthwise mode, with :func:`convhw.timing.fir_shares_padding` (only then present,
        :meth:`tagged_for`): the row tags of the
        word and of the output whose sum begins with it (joined rows,
        :func:`convhw.compiler.job.fir_joined`). PE(r, c) multiplies word ``τ + r`` into the
        sum that began with word ``τ`` only if the word's row tag equals the sum's; else it
        adds 0. Equal tags everywhere: the plain FIR. Not used in dense mode.
    depthwise : In(1)
        Lane mode: dense (0) or depthwise (1). Static during a job: the words already in the
        array when it changes give meaningless results.
    lane_select : In(data.ArrayLayout(range(rows), cols))
        Depthwise mode: the lane multiplied by column ``c``. Values ``>= rows`` are not allowed.
    w_we : In(1)
        Weight write enable.
    w_row : In(range(rows))
        The array row written.
    w_bank : In(1)
        The bank written.
    w_data : In(cols * weight_width)
        The row's weights, column ``c`` in bits ``[c*weight_width, (c+1)*weight_width)``.
    out_valid : Out(1)
        ``in_valid`` of the word whose results are in ``out_psum``.
    out_psum : Out(data.ArrayLayout(signed(acc_width), cols))
        The sums of one word, one per column.

    Raises
    ------
    TypeError
        If ``config`` is not an :class:`EngineConfig`.
    """

    def __init__(self, config: EngineConfig) -> None:
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        self._config = config
        tags = {"in_word_row": In(1), "in_sum_row": In(1)} if self.tagged_for(config) else {}
        super().__init__({
            "in_valid": In(1),
            "in_word": In(config.rows * config.operand_width),
            "in_bank": In(1),
            **tags,
            "depthwise": In(1),
            "lane_select": In(data.ArrayLayout(range(config.rows), config.cols)),
            "w_we": In(1),
            "w_row": In(range(config.rows)),
            "w_bank": In(1),
            "w_data": In(config.weight_word_width),
            "out_valid": Out(1),
            "out_psum": Out(data.ArrayLayout(signed(config.acc_width), config.cols)),
        })

    @property
    def config(self) -> EngineConfig:
        """The engine parameters this array was built for."""
        return self._config

    @property
    def latency(self) -> int:
        """Cycles from a word at the input to its results at the output: ``rows + cols + 2``
        with ``config.deep_pipeline``, else ``rows + cols``.

        Dense word ``τ`` reaches PE(r, c) in cycle ``τ + s + r + c`` (``s`` input stages),
        whose sum is registered ``p`` times (operands with the deep pipeline, product, sum; see
        :meth:`ProcessingElement.latency_for`), so the bottom row has column ``c``'s result in
        cycle ``τ + s + rows + c + p - 1``; the de-skew adds ``cols - 1 - c``.
        """
        return self.latency_for(self._config)

    @staticmethod
    def tagged_for(config: EngineConfig) -> bool:
        """Whether an array built for ``config`` takes row tags (``in_word_row``,
        ``in_sum_row``): with :func:`convhw.timing.fir_shares_padding`."""
        return timing.fir_shares_padding(config) and timing.array_input_stages(config) >= 1

    @staticmethod
    def latency_for(config: EngineConfig) -> int:
        """:attr:`latency` of an array built for ``config``
        (:func:`convhw.timing.array_latency`)."""
        return timing.array_latency(config)

    def elaborate(self, platform) -> Module:
        config = self._config
        rows, cols = config.rows, config.cols
        m = Module()

        # A lane carries its own copy of the bank bit, because in dense mode the lanes of one
        # word reach their PEs in different cycles and a bank switch must follow each lane.
        width = config.operand_width
        lane_layout = data.StructLayout({"data": signed(width), "bank": unsigned(1)})
        word_layout = data.ArrayLayout(lane_layout, rows)

        # -- input stage and skew ----------------------------------------------------------------
        # With the deep pipeline every lane is registered once on entry
        # (:func:`convhw.timing.array_input_stages`), so that no PE's operand comes from the
        # logic in front of the array or from a lane multiplexer: the depthwise lane of column 0
        # is picked from the entering word into a register, like every other column's.
        input_stages = timing.array_input_stages(config)
        lanes = Signal(word_layout, name="in_lanes")
        dense = []      # column 0's dense operands: lane r after the input stage and the skew
        skewed = Signal(word_layout)
        for r in range(rows):
            m.d.comb += [
                lanes[r].data.eq(self.in_word[r * width:(r + 1) * width].as_signed()),
                lanes[r].bank.eq(self.in_bank),
            ]
            entered = lanes[r]
            for _ in range(input_stages):
                nxt = Signal(lane_layout, name=f"entered{r}")
                m.d.sync += nxt.eq(entered)
                entered = nxt
            delayed = entered
            for stage in range(r):
                nxt = Signal(lane_layout, name=f"skew{r}_{stage}")
                m.d.sync += nxt.eq(delayed)
                delayed = nxt
            dense.append(delayed)
            # Depthwise mode bypasses the skew: the FIR wants every row of a column to see the
            # same word, and the chain of partial sums supplies the one-word offset per row.
            m.d.comb += skewed[r].eq(Mux(self.depthwise, entered, delayed))

        # -- column delay ----------------------------------------------------------------------
        column_words = [skewed]
        for c in range(1, cols):
            word = Signal(word_layout, name=f"col{c}_word")
            m.d.sync += word.eq(column_words[-1])
            column_words.append(word)

        # -- row tags (depthwise, joined rows) ---------------------------------------------------
        # Column c has word τ's tags s + c cycles after they enter; PE(r, c) compares the tag
        # of the word at its column now with the sum tag of the word r cycles older, into a
        # register a cycle ahead (from the chains one stage behind), so that its operand's
        # multiplexer takes one more input, not a comparison.
        tagged = self.tagged_for(config)
        if tagged:
            word_chain = [self.in_word_row]
            for k in range(input_stages + cols - 1):
                nxt = Signal(name=f"word_row_d{k + 1}")
                m.d.sync += nxt.eq(word_chain[-1])
                word_chain.append(nxt)
            sum_chain = [self.in_sum_row]
            for k in range(input_stages + cols + rows - 2):
                nxt = Signal(name=f"sum_row_d{k + 1}")
                m.d.sync += nxt.eq(sum_chain[-1])
                sum_chain.append(nxt)

        # -- PEs -------------------------------------------------------------------------------
        bottom = []
        for c in range(cols):
            word = column_words[c]
            # One lane multiplexer per column, shared by all of the column's rows, picking from
            # the word a stage before the column's into a register: the same lane of the same
            # word, with the multiplexer off the path into the PEs' DSP blocks (the lane
            # selection into a PE's multiplier was the list engine's critical path on the ECP5;
            # `lane_select` only changes between jobs). Column 0 picks from the entering word,
            # so without an input stage its multiplexer stays on that path.
            picked = Signal(lane_layout, name=f"col{c}_picked")
            if c > 0:
                m.d.sync += picked.eq(column_words[c - 1][self.lane_select[c]])
            elif input_stages:
                m.d.sync += picked.eq(lanes[self.lane_select[c]])
            else:
                m.d.comb += picked.eq(word[self.lane_select[c]])
            psum = None
            for r in range(rows):
                # PEs past config.dsp_pes (row by row) multiply in logic.
                index = r * cols + c
                pe = ProcessingElement(config, in_logic=config.dsp_pes is not None
                                       and index >= config.dsp_pes)
                m.submodules[f"pe_{r}_{c}"] = pe
                operand = lane_layout(Mux(self.depthwise, picked, word[r] if c else dense[r]))
                a = operand.data
                if tagged:
                    other_row = Signal(name=f"other_row_{r}_{c}")
                    m.d.sync += other_row.eq(word_chain[input_stages + c - 1]
                                             ^ sum_chain[input_stages + c + r - 1])
                    a = Mux(self.depthwise & other_row, 0, operand.data)
                m.d.comb += [
                    pe.a.eq(a),
                    pe.bank.eq(operand.bank),
                    pe.w_we.eq(self.w_we & (self.w_row == r)),
                    pe.w_bank.eq(self.w_bank),
                    pe.w_data.eq(self.w_data[c * config.weight_width:
                                             (c + 1) * config.weight_width].as_signed()),
                    pe.psum_in.eq(0 if psum is None else psum),
                ]
                psum = pe.psum_out
            bottom.append(psum)

        # -- de-skew ---------------------------------------------------------------------------
        for c in range(cols):
            value = bottom[c]
            for stage in range(cols - 1 - c):
                nxt = Signal(signed(config.acc_width), name=f"deskew{c}_{stage}")
                m.d.sync += nxt.eq(value)
                value = nxt
            m.d.comb += self.out_psum[c].eq(value)

        # The valid bit needs no lanes or columns: one shift register as long as the latency.
        valid = Signal(self.latency)
        m.d.sync += valid.eq(Cat(self.in_valid, valid[:-1]))
        m.d.comb += self.out_valid.eq(valid[-1])
        return m
