"""Properties of :class:`~convhw.gateware.control.JobController`, the job controller of the
host-fed engine (and, ``checked`` and ``overlap``, of the list engine's datapath).

Everything the controller reads is free in every cycle: every job register (so whatever the
registers hold, and even registers that change while a job runs), ``start``, ``abort``,
``pipeline_idle`` and ``window_miss`` (the datapath may report anything at any time). The only
assumption is that the run starts from reset and is not reset again.

Every harness, whatever its groups, also asserts what the controller is busy with: the checks
after an accepted START, the datapath it started, or the drain; that no result (DONE, ERROR,
CODE) shows while busy; and, through probes of its own state (FSM state, check step, drain
count, carried ABORT; see :func:`~convhw.formal.common.probe_members`), that this state is
where the ports say it is. These invariants let the induction close at k = 4.

Property groups (the ``groups`` argument), with ``cc`` the controller's ``check_cycles``, ``D``
its ``drain_cycles``:

``abort``
    ABORT while busy: busy is low at most ``abort_bound`` cycles later (2: one to leave the
    state, one more when the ABORT comes in the last cycle of the checks, where the datapath has
    been started and is flushed in the next), and the job has ended with DONE, ERROR and
    ``ABORTED``. START with ABORT while idle: the job ends at once, ``ABORTED``. A datapath that
    was started is never left running: the controller stays busy until the datapath has
    reported ``pipeline_idle`` or has been flushed. With ``overlap``, ABORT ends the tail (the
    drain behind the next job) in the next cycle.
``start``
    START while idle: the datapath starts (``job_start``) exactly ``cc`` cycles later, or the
    controller is idle again within ``cc + 1`` cycles with DONE, ERROR and a code that is not 0
    (``ABORTED`` with ``checked``, whose controller checks nothing). ``job_start`` never pulses
    otherwise.
``run``
    While the started datapath runs: ``window_miss`` (the datapath's error) or ABORT flushes it
    in that cycle and the controller is idle in the next with DONE, ERROR and ``WINDOW_MISS``
    (``ABORTED`` when an ABORT came with it or in the last cycle of the checks);
    ``pipeline_idle`` ends the job after exactly ``max(D, 1)`` cycles of drain (none with
    ``overlap``: DONE in the next cycle, ``release`` in this one, ``tail`` for at most ``D``
    cycles) with DONE and no error, unless an ABORT comes during the drain (then ``ABORTED``).
"""

from __future__ import annotations

from amaranth.hdl import Assert, Cover, Module, Mux, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In

from ..config import EngineConfig
from ..gateware.control import JobController
from ..registers import ErrorCode
from ..timing import job_timing
from .common import Obligation, fsm_encoding, no_reset, probe_members

__all__ = ["ABORT_BOUND", "GROUPS", "JobControllerHarness"]

GROUPS = ("abort", "start", "run")
#: Cycles from an ABORT while busy to the cycle in which busy is low at the latest.
ABORT_BOUND = 2


class JobControllerHarness(wiring.Component):
    """The controller with free inputs and the assertions of ``groups`` (see the module)."""

    def __init__(self, config: EngineConfig, *, checked: bool = False, overlap: bool = False,
                 groups=GROUPS, abort_bound: int = ABORT_BOUND):
        self._config = config
        self._groups = tuple(groups)
        for group in self._groups:
            if group not in GROUPS:
                raise ValueError(f"groups must be some of {GROUPS}, not {group!r}")
        self._abort_bound = abort_bound
        self._checked, self._overlap = checked, overlap
        # As ComputeCore makes it.
        self.dut = JobController(config, drain_cycles=job_timing(config).drain,
                                 checked=checked, overlap=overlap)
        self._states = fsm_encoding(self.dut)
        cc, drain = self.dut.check_cycles, self.dut.drain_cycles
        probes = {"probe_state": ("dut.fsm_state", range(len(self._states))),
                  "probe_drain": ("dut.drain", range(drain + 1)),
                  "probe_abort_pending": ("dut.abort_pending", 1)}
        if cc > 1:
            probes["probe_step"] = ("dut.step", range(cc))
        self.probes = {port: path for port, (path, _) in probes.items()}
        # Every input of the controller is an input of the harness, free in every cycle.
        self._inputs = [name for name, member in self.dut.signature.members.items()
                        if member.flow == In]
        super().__init__({
            **{name: In(self.dut.signature.members[name].shape) for name in self._inputs},
            **probe_members(probes),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        no_reset(m)
        m.submodules.dut = dut = self.dut
        m.d.comb += [getattr(dut, name).eq(getattr(self, name)) for name in self._inputs]
        busy, abort = dut.busy, self.abort
        ended = dut.done & dut.error
        cc, drain = self.dut.check_cycles, self.dut.drain_cycles

        # -- what the controller is busy with, as the harness sees it from its ports ----------
        # The checks: from an accepted START until the datapath starts or the controller is
        # idle again.
        accepted = self.start & ~busy & ~abort
        checking = Obligation(m, "checks", trigger=accepted, discharge=dut.job_start | ~busy,
                              limit=cc)
        # The started datapath: from the cycle after `job_start` until it reports
        # `pipeline_idle` (the controller then drains) or is flushed. `pipeline_idle` before
        # that (in the checks) means nothing to the controller.
        datapath = Signal()
        with m.If(dut.job_start):
            m.d.sync += datapath.eq(1)
        with m.Elif(datapath & (dut.flush | self.pipeline_idle)):
            m.d.sync += datapath.eq(0)
        # An ABORT in the cycle of `job_start` is carried into the datapath's first cycle.
        carried = Signal()
        m.d.sync += carried.eq(dut.job_start & abort)
        stopping = datapath & (self.window_miss | abort | carried)
        finishing = datapath & self.pipeline_idle & ~stopping
        # The drain after the datapath is idle (none with `overlap`: the job is done at once).
        drain_busy = max(drain, 1)
        draining = Obligation(m, "drain", trigger=0 if self._overlap else finishing,
                              discharge=~busy, limit=drain_busy)
        # Busy only for one of these, never idle while the started datapath may still run,
        # and the controller's own state where they say it is (the probes): the invariants
        # that let the induction close in a few cycles.
        m.d.comb += [Assert(~busy | checking.raised | datapath | draining.raised),
                     Assert(~datapath | busy & ~dut.job_start & ~checking.raised)]
        state = {name: self.probe_state == value for name, value in self._states.items()}
        step = self.probe_step if cc > 1 else 0
        m.d.comb += [
            Assert(busy == ~state["IDLE"]),
            # No result shows while a job runs (START clears them).
            Assert(~busy | ~dut.done & ~dut.error & (dut.code == 0)),
            Assert(~state["CHECK"] | checking.raised & (checking.age == step + 1)),
            Assert(~(checking.raised & busy) | state["CHECK"]),
            Assert(datapath == state["RUN"]),
            Assert(self.probe_abort_pending == carried),
        ]
        if self._overlap:
            m.d.comb += Assert(~state["DRAIN"])
        else:
            m.d.comb += [
                Assert(state["DRAIN"] == (draining.raised & busy)),
                Assert(~state["DRAIN"] | (self.probe_drain == drain + 1 - draining.age)),
            ]

        if "abort" in self._groups:
            bound = self._abort_bound
            aborted = Obligation(m, "abort", trigger=abort & busy, discharge=~busy,
                                 limit=bound)
            m.d.comb += Assert(~aborted.raised | ~busy | (aborted.age < bound))
            with m.If(aborted.ends):
                m.d.comb += Assert(ended & (dut.code == ErrorCode.ABORTED))
            start_aborted = Signal()
            m.d.sync += start_aborted.eq(self.start & abort & ~busy)
            with m.If(start_aborted):
                m.d.comb += Assert(~busy & ended & (dut.code == ErrorCode.ABORTED))
            if self._overlap:
                abort_r = Signal()
                m.d.sync += abort_r.eq(abort)
                m.d.comb += Assert(~abort_r | ~dut.tail)
            m.d.comb += Cover(aborted.ends)

        if "start" in self._groups:
            m.d.comb += [
                Assert(~dut.job_start | (checking.raised & (checking.age == cc))),
                Assert(~checking.raised | ~busy | (checking.age <= cc)),
            ]
            with m.If(checking.ends & ~busy):
                if self._checked:
                    m.d.comb += Assert(ended & (dut.code == ErrorCode.ABORTED))
                else:
                    m.d.comb += Assert(ended & (dut.code != 0)
                                       & (dut.code != ErrorCode.WINDOW_MISS))
            m.d.comb += [Cover(dut.job_start), Cover(checking.ends & ~busy & ~abort)]

        if "run" in self._groups:
            # The datapath's error or an ABORT: flushed now, idle next.
            m.d.comb += [Assert(~stopping | dut.flush), Assert(~dut.flush | busy)]
            stopped, stop_aborted = Signal(), Signal()
            m.d.sync += [stopped.eq(stopping), stop_aborted.eq(datapath & (abort | carried))]
            with m.If(stopped):
                m.d.comb += Assert(~busy & ended & (dut.code == Mux(
                    stop_aborted, ErrorCode.ABORTED, ErrorCode.WINDOW_MISS)))
            m.d.comb += Cover(stopped & ~stop_aborted)
            # The datapath idle: the drain.
            if self._overlap:
                m.d.comb += Assert(dut.release == finishing)
                finished = Signal()
                m.d.sync += finished.eq(finishing)
                with m.If(finished):
                    m.d.comb += Assert(~busy & dut.done & ~dut.error & (dut.code == 0))
                # (Each job's release starts the tail again.)
                tail = Obligation(m, "tail", trigger=finishing, discharge=~dut.tail,
                                  limit=drain, restart=True)
                m.d.comb += [Assert(~tail.raised | ~dut.tail | (tail.age <= drain)),
                             Assert(dut.tail == tail.raised & (self.probe_drain != 0)),
                             Assert(~dut.tail | (self.probe_drain == drain + 1 - tail.age))]
                m.d.comb += Cover(tail.ends & (tail.age == drain + 1))
            else:
                m.d.comb += Assert(~dut.release & ~dut.tail)
                drain_aborted = Signal()
                with m.If(finishing):
                    m.d.sync += drain_aborted.eq(0)
                with m.Elif(draining.raised & abort):
                    m.d.sync += drain_aborted.eq(1)
                m.d.comb += [Assert(~draining.raised | ~busy | (draining.age <= drain_busy)),
                             Assert(~(drain_aborted & draining.raised & busy))]
                with m.If(draining.ends):
                    with m.If(drain_aborted):
                        m.d.comb += Assert(ended & (dut.code == ErrorCode.ABORTED))
                    with m.Else():
                        m.d.comb += Assert((draining.age == drain_busy + 1) & dut.done
                                           & ~dut.error & (dut.code == 0))
                m.d.comb += Cover(draining.ends & ~drain_aborted)
        return m
