"""The weight loader: puts each pass's weights into the idle bank of the array."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import timing
from ..config import EngineConfig
from .pass_sequencer import PassDescriptor

__all__ = ["BankedPass", "WeightLoader"]


def BankedPass(config: EngineConfig) -> data.StructLayout:
    """A pass descriptor with the weight bank its weights were loaded into."""
    return data.StructLayout({"desc": PassDescriptor(config), "bank": unsigned(1)})


class WeightLoader(wiring.Component):
    """Puts each pass's ``rows`` weight words into the array's idle bank and passes the pass
    descriptor on (with its bank) to the streamer: after the load, or (a dense pass with the
    deep pipeline) before it.

    The descriptor is not copied: the sequencer holds it on ``passes_in`` until the streamer
    takes it from ``passes_out``, and both handshakes complete in that same cycle. (A copy would
    be as wide as the descriptor, and would only let the sequencer look at candidates that are
    not passes while the weights load.)

    Banks alternate from pass to pass, starting with bank 0 at ``start`` (with ``keep_banks``,
    from where the last job left them, whose last passes may still be in the array). A bank
    is reloaded
    only when the array is done with it: after the last word of the pass that used it entered
    the array (``pass_end`` with ``pass_end_bank``, in the cycle that word is at the array's
    input), the bank stays closed for the cycle after and :attr:`guard` more. Row ``r`` is
    then written ``r + 2`` cycles after the load begins (``r + 3`` with the deep pipeline), so
    never earlier than the array allows: its last PE, in column ``cols - 1``, is done with the
    bank ``s + r + cols - 1`` cycles after the last word that used it entered (``s`` the
    array's input stages). Since the rows are written in order, a row at a time, the guard
    depends on the columns only (:func:`convhw.timing.weight_guard`).

    Timing of one load begun in cycle ``a``: weight word ``weights + r`` (the descriptor's
    first weight word) is read in cycle ``a + 1 + r`` and written into row ``r`` in cycle
    ``a + 2 + r`` (``a + 3 + r`` with ``config.deep_pipeline``, which registers the word).
    Without the deep pipeline every pass is loaded first (the load begins once ``passes_in``
    is valid, the loader idle and the next bank free) and offered from ``a + rows + 1``; the
    next load begins once the descriptor has been taken and the rows are written. With the
    deep pipeline so is a FIR pass (every row takes its first word at once), but a dense pass
    is taken first: it is offered as soon as it is valid, at least
    :func:`convhw.timing.weight_take_spacing` cycles after the previous take, and its load
    begins in the cycle after the take or once the loader and the bank are free, which that
    spacing puts within :func:`convhw.timing.weight_take_lead` cycles, in time for the pass's
    first word at every row. The taken pass's first weight word and bank wait in a register
    (the sequencer moves on at the take), and a dense load may begin in the cycle its
    predecessor reads its last row.
    """

    def __init__(self, config: EngineConfig, *, keep_banks: bool = False):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        self._config = config
        self._keep_banks = bool(keep_banks)
        addr = config.address_width(config.weight_depth)
        super().__init__({
            "start": In(1),
            "passes_in": In(stream.Signature(PassDescriptor(config))),
            "passes_out": Out(stream.Signature(BankedPass(config))),
            # the values passes_out.ready (from the taker) and passes_in.ready will have in
            # the next cycle
            "passes_out_ready_next": In(1),
            "passes_in_ready_next": Out(1),
            "pass_end": In(1),
            "pass_end_bank": In(1),
            # the running job's FIR_TAPS (0: dense mode); stable while it runs
            "fir_taps": In(unsigned(config.param_width)),
            # weight buffer read port (one cycle of latency)
            "mem_addr": Out(unsigned(addr)),
            "mem_data": In(unsigned(config.bus_words_per_weight_word * 32)),
            # array weight write port
            "w_we": Out(1),
            "w_row": Out(range(config.rows)),
            "w_bank": Out(1),
            "w_data": Out(unsigned(config.weight_word_width)),
            "busy": Out(1),
        })

    @property
    def config(self) -> EngineConfig:
        return self._config

    @staticmethod
    def guard_for(config: EngineConfig) -> int:
        """Cycles a bank stays closed after the cycle following its ``pass_end``
        (:func:`convhw.timing.weight_guard`)."""
        return timing.weight_guard(config)

    @property
    def guard(self) -> int:
        return self.guard_for(self._config)

    def elaborate(self, platform) -> Module:
        if timing.weight_take_spacing(self._config):
            return self._elaborate_taken_first()
        return self._elaborate_loaded_first()

    def _banks(self, m: Module, begin_bank_set):
        """The two banks' state: ``inflight[b]`` while a pass using bank ``b`` is on its way
        into the array (set by ``begin_bank_set``, a list of (condition, bank) pairs; cleared
        at its ``pass_end``), then ``guard`` cycles of timer; ``free[b]`` when neither."""
        inflight = Signal(2)
        timers = [Signal(range(self.guard + 1), name=f"timer{b}") for b in range(2)]
        free = Signal(2)
        for b in range(2):
            m.d.comb += free[b].eq(~inflight[b] & (timers[b] == 0))
            with m.If(self.pass_end & (self.pass_end_bank == b)):
                m.d.sync += timers[b].eq(self.guard)
            with m.Elif(timers[b] != 0):
                m.d.sync += timers[b].eq(timers[b] - 1)
            setting = 0
            for condition, bank in begin_bank_set:
                setting = setting | condition & (bank == b)
            with m.If(setting):
                m.d.sync += inflight[b].eq(1)
            with m.Elif(self.pass_end & (self.pass_end_bank == b)):
                m.d.sync += inflight[b].eq(0)
        return inflight, timers, free

    def _reset_banks(self, m: Module, next_bank, inflight, timers) -> None:
        if not self._keep_banks:
            m.d.sync += [next_bank.eq(0), inflight.eq(0)]
            for b in range(2):
                m.d.sync += timers[b].eq(0)

    def _elaborate_taken_first(self) -> Module:
        # Deep pipeline (timing.weight_take_spacing). A dense pass is offered first and loaded
        # after: the streamer takes it at least `spacing` cycles after the previous take, which
        # guarantees that the loader and the pass's bank are free within `weight_take_lead`
        # cycles, and the load begins as soon as they are, in time for the pass's first word
        # (in the cycle after the take at the earliest, `rows` cycles after the previous
        # load's).
        # A FIR pass is loaded first and offered once its rows are written (weight_offer).
        m = Module()
        config = self._config
        rows = config.rows
        spacing = timing.weight_take_spacing(config)
        fir = self.fir_taps != 0

        taken = self.passes_out.valid & self.passes_out.ready
        next_bank = Signal()         # the bank of the next pass
        bank = Signal()              # the bank being loaded
        loading = Signal()
        row = Signal(range(rows + 1))
        first_word = Signal.like(self.passes_in.payload.weights)
        # a dense pass taken and not yet loading: its first weight word and bank
        pending = Signal()
        pending_word = Signal.like(first_word)
        pending_bank = Signal()
        # cycles since the last take, saturating at `spacing`; a dense pass is offered at it
        since_take = Signal(range(spacing + 1), init=spacing)
        offering_fir = Signal()      # a loaded FIR pass is offered

        begin_dense = Signal()
        begin_fir = Signal()
        inflight, timers, free = self._banks(m, [(begin_dense, pending_bank),
                                                 (begin_fir, next_bank)])

        offering_dense = Signal()
        m.d.comb += offering_dense.eq(since_take == spacing)
        m.d.sync += since_take.eq(Mux(taken, 1, Mux(since_take == spacing, spacing,
                                                   since_take + 1)))
        m.d.comb += [
            self.passes_out.valid.eq(Mux(fir, offering_fir, offering_dense)
                                     & self.passes_in.valid),
            self.passes_out.payload.desc.eq(self.passes_in.payload),
            self.passes_out.payload.bank.eq(Mux(fir, bank, next_bank)),
            self.passes_in.ready.eq(taken),
        ]
        offering_fir_next = Signal()
        m.d.comb += [
            offering_fir_next.eq(offering_fir & ~taken),
            self.passes_in_ready_next.eq(
                Mux(fir, offering_fir_next, ~taken & (since_take >= spacing - 1))
                & self.passes_out_ready_next),
        ]
        m.d.sync += offering_fir.eq(offering_fir_next)

        # A dense load may begin in the cycle its predecessor reads its last row: loads
        # follow each other without a gap, `rows` cycles each.
        last_row = Signal()
        m.d.comb += last_row.eq(loading & (row == rows - 1))
        m.d.comb += [
            begin_dense.eq(~self.start & ~fir & pending & (~loading | last_row)
                           & free.bit_select(pending_bank, 1)),
            begin_fir.eq(~self.start & fir & self.passes_in.valid & ~loading & ~offering_fir
                         & free.bit_select(next_bank, 1)),
        ]
        with m.If(taken & ~fir):
            m.d.sync += [pending.eq(1), pending_word.eq(self.passes_in.payload.weights),
                         pending_bank.eq(next_bank), next_bank.eq(~next_bank)]
        with m.Elif(begin_dense):
            m.d.sync += pending.eq(0)
        with m.If(self.start):
            m.d.comb += offering_fir_next.eq(0)
            m.d.sync += [loading.eq(0), pending.eq(0)]
            self._reset_banks(m, next_bank, inflight, timers)
        with m.Elif(begin_dense | begin_fir):
            m.d.sync += [loading.eq(1), row.eq(0)]
            with m.If(begin_dense):
                m.d.sync += [bank.eq(pending_bank), first_word.eq(pending_word)]
            with m.Else():
                m.d.sync += [bank.eq(next_bank), next_bank.eq(~next_bank),
                             first_word.eq(self.passes_in.payload.weights)]
        with m.Elif(loading):
            m.d.sync += row.eq(row + 1)
            with m.If(last_row):
                with m.If(fir):
                    m.d.comb += offering_fir_next.eq(1)
                m.d.sync += loading.eq(0)
        m.d.comb += self.mem_addr.eq(first_word + row)
        # A read issued in one cycle returns in the next; the word is registered before it
        # fans out to a row of PEs (the block RAM's slow output and the wires across the
        # array are two paths), and written a cycle later. In FIR mode the rows from FIR_TAPS
        # on hold no tap: they are written with zeros (the register's synchronous reset), so
        # that whatever the descriptor's weight words hold there, those rows add nothing. The
        # bank rides with the row: the next load may begin while this one's last rows are
        # still being written.
        read_pending, read_row, read_bank = Signal(), Signal.like(row), Signal()
        m.d.sync += [read_pending.eq(loading & ~self.start), read_row.eq(row),
                     read_bank.eq(bank)]
        data = self.mem_data[:config.weight_word_width]
        registered = Signal.like(data)
        with m.If(fir & (read_row >= self.fir_taps)):
            m.d.sync += registered.eq(0)
        with m.Else():
            m.d.sync += registered.eq(data)
        write_pending, write_row, write_bank = Signal(), Signal.like(row), Signal()
        m.d.sync += [write_pending.eq(read_pending & ~self.start), write_row.eq(read_row),
                     write_bank.eq(read_bank)]
        m.d.comb += self.busy.eq(loading | pending | offering_fir | read_pending
                                 | write_pending)
        with m.If(write_pending):
            m.d.comb += [self.w_we.eq(1), self.w_row.eq(write_row), self.w_bank.eq(write_bank),
                         self.w_data.eq(registered)]
        return m

    def _elaborate_loaded_first(self) -> Module:
        # Without the deep pipeline: every pass is loaded, then offered (weight_offer).
        m = Module()
        config = self._config
        rows = config.rows
        assert not config.deep_pipeline and timing.weight_offer(config, fir=False) == rows + 1

        next_bank = Signal()
        bank = Signal()              # the bank of the pass being loaded or offered
        offering = Signal()
        loading = Signal()
        row = Signal(range(rows + 1))
        write_row = Signal(range(rows + 1))
        write_pending = Signal()
        taken = self.passes_out.valid & self.passes_out.ready
        inflight, timers, free = self._banks(m, [(taken, bank)])

        m.d.comb += [
            self.passes_out.valid.eq(offering & self.passes_in.valid),
            self.passes_out.payload.desc.eq(self.passes_in.payload),
            self.passes_out.payload.bank.eq(bank),
            self.passes_in.ready.eq(offering & self.passes_out.ready),
            self.busy.eq(loading | offering | write_pending | self.w_we),
        ]
        # `offering` from its next value, which (with the taker's next readiness) makes the
        # next value of passes_in.ready, which the sequencer registers its stepping enable from.
        offering_next = Signal()
        m.d.comb += [
            offering_next.eq(offering & ~taken),
            self.passes_in_ready_next.eq(offering_next & self.passes_out_ready_next),
        ]
        m.d.sync += offering.eq(offering_next)

        begin = (self.passes_in.valid & ~loading & ~offering
                 & free.bit_select(next_bank, 1))
        with m.If(self.start):
            m.d.comb += offering_next.eq(0)
            m.d.sync += loading.eq(0)
            self._reset_banks(m, next_bank, inflight, timers)
        with m.Elif(begin):
            m.d.sync += [
                bank.eq(next_bank),
                next_bank.eq(~next_bank),
                loading.eq(1),
                row.eq(0),
            ]
        with m.Elif(loading):
            m.d.sync += row.eq(row + 1)
            with m.If(row == rows - 1):
                m.d.comb += offering_next.eq(1)
                m.d.sync += loading.eq(0)
        # The address is read from whether or not a load is on: only the data read while
        # loading is used, and the address then does not wait for the start and begin logic.
        m.d.comb += self.mem_addr.eq(self.passes_in.payload.weights + row)
        # A read issued in one cycle returns in the next: write it into the array then. In
        # FIR mode the rows from FIR_TAPS on hold no tap: they are written with zeros, so that
        # whatever the descriptor's weight words hold there, those rows add nothing.
        m.d.sync += [write_pending.eq(loading & ~self.start), write_row.eq(row)]
        data = self.mem_data[:config.weight_word_width]
        unused = Signal()
        m.d.comb += unused.eq((self.fir_taps != 0) & (write_row >= self.fir_taps))
        with m.If(write_pending):
            m.d.comb += [self.w_we.eq(1), self.w_row.eq(write_row), self.w_bank.eq(bank),
                         self.w_data.eq(Mux(unused, 0, data))]
        return m
