"""Properties of :class:`~convhw.gateware.list_controller.ListController`, the list engine's
scheduler.

The controller waits, by design, for what it cannot abandon: a load or a drain in progress (a
bus transaction), the fetcher's in-flight reads. How soon it ends a list after ABORT or an
error therefore depends on how soon its surroundings answer, and the harness models them, each
within ``latency`` cycles (free, within that, in every cycle):

* the descriptor fetcher: entries (``jobs``) whatever they hold (the descriptor fields the
  controller decides by, :data:`DECISION_FIELDS`, the index and the code free, but the code
  never ``ABORTED``, which neither the fetcher nor the job checker gives; the fields the
  controller only passes on are 0) and whenever it likes; ``fetch_busy`` high while an
  entry is offered (as in :class:`~convhw.gateware.list_engine.ListEngine`) and free
  otherwise, but once the fetcher has stopped (``fetch_abort``, or an entry with ``LAST`` or a
  code taken) it is quiet (``fetch_busy`` low, nothing offered) from ``latency`` cycles on
  until the next ``fetch_start``;
* the three loaders, the compute core and the output writer: each takes a command within
  ``latency`` cycles of its ``valid``; each answers (``done``, with a free ``error``) only a
  command it took and has not answered, within ``latency`` cycles, and holds the answer until
  it is taken; a flushed compute is not answered;
* ``start`` as the register file makes it: a pulse, never high in two consecutive cycles;
  ``abort``, ``core_busy``, ``irq_clear`` free.

Properties (``groups``):

``abort``
    ABORT while a list runs: busy is low within ``abort_bound`` cycles, the list ended with
    DONE, ERROR and ``ABORTED``, unless busy is low in the very next cycle (the list had
    finished in the ABORT's cycle, and ends as it would have). START with ABORT: the fetcher
    is not started, and the list ends as for ABORT.
``error``
    A failure (a load's or a drain's ``done`` with ``error``, a compute's with ``error``, an
    entry with a code) and no ABORT after it: busy is low within ``error_bound`` cycles, the
    list ended with DONE, ERROR and a code that is neither 0 nor ``ABORTED``. A list with no
    failure and no ABORT ends (if it ends) with DONE, no ERROR and code 0.

Both in bounded model checking: the controller's queues and counters have many states the
harness cannot tie to its ports, so an induction would need invariants on all of them.
"""

from __future__ import annotations

from amaranth.hdl import Assert, Assume, Cover, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In

from ..config import EngineConfig
from ..gateware.list_controller import ListController
from ..registers import ErrorCode
from .common import Obligation, no_reset

__all__ = ["GROUPS", "ListControllerHarness", "abort_bound", "error_bound"]

GROUPS = ("abort", "error")
_STAGES = ("input", "weight", "params", "compute", "drain")
#: The descriptor fields :class:`ListController` reads (the others it passes on).
DECISION_FIELDS = ("last", "irq", "wait", "load_input", "load_weights", "write_output",
                   "input_bank", "acc_bank", "accumulate", "weight_base")


def abort_bound(slots: int, latency: int) -> int:
    """Cycles from ABORT to busy low, at most: the fetcher's reads (``latency``), and per job
    in flight its loads' answers (``latency``) and one cycle to retire it, the drain in
    progress (``latency``), the failure report's registers, and a few cycles to decide."""
    return (slots + 2) * (latency + 2) + 6


def error_bound(slots: int, latency: int) -> int:
    """Cycles from a failure to busy low, at most: as for ABORT, and every earlier job's
    compute and drain (each taken and answered within ``latency`` cycles)."""
    return (slots + 2) * (3 * latency + 6) + 8


class ListControllerHarness(wiring.Component):
    """The controller in the environment of the module documentation."""

    def __init__(self, config: EngineConfig, *, slots: int = 4, latency: int = 2,
                 groups=GROUPS, abort_cycles: int | None = None,
                 error_cycles: int | None = None):
        self._groups = tuple(groups)
        for group in self._groups:
            if group not in GROUPS:
                raise ValueError(f"groups must be some of {GROUPS}, not {group!r}")
        self._latency = latency
        self._abort_bound = abort_bound(slots, latency) if abort_cycles is None else abort_cycles
        self._error_bound = error_bound(slots, latency) if error_cycles is None else error_cycles
        self.dut = ListController(config, slots=slots)
        self.map_memories = True     # (its queues as flip-flops: see runner.write_sby)
        super().__init__({
            "start": In(1), "abort": In(1), "fetch_busy": In(1), "core_busy": In(1),
            "irq_clear": In(1),
            "jobs": In(stream.Signature(self.dut.jobs.payload.shape())),
            # The commands' READY, the answers' VALID and ERROR.
            "ready": In(len(_STAGES)),
            "done_valid": In(len(_STAGES)),
            "done_error": In(len(_STAGES)),
        })

    @property
    def abort_bound(self) -> int:
        return self._abort_bound

    @property
    def error_bound(self) -> int:
        return self._error_bound

    def elaborate(self, platform) -> Module:
        m = Module()
        no_reset(m)
        m.submodules.dut = dut = self.dut
        latency = self._latency
        m.d.comb += [dut.start.eq(self.start), dut.abort.eq(self.abort),
                     dut.fetch_busy.eq(self.fetch_busy), dut.core_busy.eq(self.core_busy),
                     dut.irq_clear.eq(self.irq_clear)]
        # The descriptor fields the controller decides by are free; the others it only passes
        # on to the stages (addresses, pitches, sizes, ...), and are 0 here: 900 fewer free
        # bits in every cycle and in every queue entry, for the solver.
        entry = dut.jobs.payload
        m.d.comb += [dut.jobs.valid.eq(self.jobs.valid), self.jobs.ready.eq(dut.jobs.ready),
                     entry.index.eq(self.jobs.payload.index),
                     entry.code.eq(self.jobs.payload.code)]
        for name in DECISION_FIELDS:
            m.d.comb += entry.descriptor[name].eq(self.jobs.payload.descriptor[name])
        busy, abort = dut.busy, self.abort
        # START is CTRL.START, a w1p field: a one-cycle pulse per register write, and no two
        # writes in consecutive cycles. (Held high, it would keep a finished list busy: the
        # controller ends a list only in a cycle without START.)
        start_r = Signal()
        m.d.sync += start_r.eq(self.start)
        m.d.comb += Assume(~(self.start & start_r))

        # -- the fetcher -------------------------------------------------------------------
        taken = self.jobs.valid & self.jobs.ready
        head = self.jobs.payload
        fetching = Signal()
        with m.If(dut.fetch_start):
            m.d.sync += fetching.eq(1)
        with m.Elif(dut.fetch_abort | taken & (head.descriptor.last | (head.code != 0))):
            m.d.sync += fetching.eq(0)
        # Stopped, it is quiet (not busy, nothing offered) from `latency` cycles on, until it
        # is started again.
        quiet_in = Signal(range(latency + 1))
        with m.If(fetching | dut.fetch_start):
            m.d.sync += quiet_in.eq(latency)
        with m.Elif(quiet_in != 0):
            m.d.sync += quiet_in.eq(quiet_in - 1)
        m.d.comb += [Assume(~self.jobs.valid | self.fetch_busy),
                     # (The fetcher's and the job checker's codes: never ABORTED.)
                     Assume(head.code != ErrorCode.ABORTED),
                     Assume(fetching | (quiet_in != 0) | ~self.fetch_busy)]

        # -- the stages --------------------------------------------------------------------
        failure = Signal()           # a failure reaches the controller in this cycle
        # (An entry offered after the list stopped taking them is dropped, not taken: the
        # controller takes entries exactly while the harness's `fetching` is high.)
        failures = [taken & fetching & (head.code != 0)]
        for i, name in enumerate(_STAGES):
            command = getattr(dut, "compute" if name == "compute" else
                              "drain" if name == "drain" else f"{name}_load")
            done = getattr(dut, f"{name}_done")
            m.d.comb += [command.ready.eq(self.ready[i]), done.valid.eq(self.done_valid[i]),
                         done.payload.error.eq(self.done_error[i])]
            # Commands taken within `latency` cycles of their VALID.
            waiting = Obligation(m, f"{name}_command", trigger=command.valid & ~command.ready,
                                 discharge=command.ready | ~command.valid, limit=latency)
            m.d.comb += Assume(~waiting.raised | ~command.valid | command.ready
                               | (waiting.age < latency))
            # Answers: only for a command taken and not answered (a flushed compute is never
            # answered), held until taken, given within `latency` cycles.
            owed = Signal(range(dut.slots + 2), name=f"{name}_owed")
            given = command.valid & command.ready
            answered = done.valid & done.ready
            flushed = dut.compute_flush if name == "compute" else 0
            with m.If(flushed):
                m.d.sync += owed.eq(0)
            with m.Else():
                m.d.sync += owed.eq(owed + given - answered)
            m.d.comb += Assume(~done.valid | (owed != 0) & ~flushed)
            held = Signal(name=f"{name}_done_held")
            held_error = Signal(name=f"{name}_done_held_error")
            m.d.sync += [held.eq(done.valid & ~done.ready & ~flushed),
                         held_error.eq(done.payload.error)]
            with m.If(held):
                m.d.comb += Assume(done.valid & (done.payload.error == held_error))
            late = Obligation(m, f"{name}_answer", trigger=(owed != 0) & ~done.valid,
                              discharge=done.valid | (owed == 0), limit=latency)
            m.d.comb += Assume(~late.raised | done.valid | (owed == 0) | flushed
                               | (late.age < latency))
            failures.append(answered & done.payload.error)
        m.d.comb += failure.eq(failures[0] | failures[1] | failures[2] | failures[3]
                               | failures[4] | failures[5])

        ended = dut.done & dut.error
        # What happened since the list started.
        failed_since, aborted_since = Signal(), Signal()
        with m.If(dut.start & ~busy):
            m.d.sync += [failed_since.eq(0), aborted_since.eq(abort)]
        with m.Else():
            with m.If(busy & failure):
                m.d.sync += failed_since.eq(1)
            with m.If(busy & abort):
                m.d.sync += aborted_since.eq(1)
        fell = Signal()              # busy fell in this cycle: the list's first idle cycle
        busy_r = Signal()
        m.d.sync += busy_r.eq(busy)
        m.d.comb += fell.eq(busy_r & ~busy)

        if "abort" in self._groups:
            bound = self._abort_bound
            aborting = Obligation(m, "abort", trigger=abort & (busy | dut.start),
                                  discharge=~busy, limit=bound)
            m.d.comb += Assert(~aborting.raised | ~busy | (aborting.age < bound))
            # Busy low in the very next cycle: the list had finished in the ABORT's cycle (its
            # end does not depend on ABORT), and ends as it would have.
            with m.If(aborting.ends & (aborting.age > 1)):
                m.d.comb += Assert(ended & (dut.code == ErrorCode.ABORTED))
            with m.If(aborting.ends):
                m.d.comb += Assert(dut.done)
            m.d.comb += Assert(~(dut.start & abort & ~busy) | ~dut.fetch_start)
            m.d.comb += [Cover(aborting.ends & (aborting.age > 4)),
                         Cover(fell & ended & (dut.code == ErrorCode.ABORTED)
                               & (dut.error_job == 0))]

        if "error" in self._groups:
            bound = self._error_bound
            failing = Obligation(m, "failure", trigger=busy & failure & ~abort,
                                 discharge=~busy | abort, limit=bound)
            m.d.comb += Assert(~failing.raised | ~busy | abort | (failing.age < bound))
            with m.If(fell & ~aborted_since):
                with m.If(failed_since):
                    m.d.comb += Assert(ended & (dut.code != 0)
                                       & (dut.code != ErrorCode.ABORTED))
                with m.Else():
                    m.d.comb += Assert(dut.done & ~dut.error & (dut.code == 0))
            m.d.comb += [Cover(fell & failed_since & ~aborted_since),
                         Cover(fell & ~failed_since & ~aborted_since)]
        return m

