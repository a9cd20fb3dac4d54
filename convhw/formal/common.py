"""Building blocks of the harnesses.

Amaranth 0.5 has no ``Past``, ``Rose`` or ``AnyConst`` in its public API: a harness keeps the
history it needs in registers of its own, and its free inputs are its top-level ``In``
members, which the solver may set freely in every cycle (stronger than ``AnyConst``).
"""

from __future__ import annotations

from amaranth.hdl import Assume, Fragment, Module, ResetSignal, Shape, Signal
from amaranth.lib.wiring import In

__all__ = ["Obligation", "fsm_encoding", "no_reset", "probe_members"]


def no_reset(m: Module) -> None:
    """The run starts from the flip-flops' initial values (their reset values) and is never
    reset again: the harness's history registers and the component's state stay in step."""
    m.d.comb += Assume(~ResetSignal())


def probe_members(probes: dict[str, tuple[str, object]]) -> dict:
    """Signature members for ``probes``: ``{port: (path, shape)}``, ``path`` the component's
    own signal by its name in the flattened design (``"dut.step"``).

    k-induction starts from any state that satisfies the assertions, and a state the component
    can never reach, but whose ports look like a reachable one's (a counter past its range, an
    FSM in an unused encoding), stalls it at any depth. Invariants on the component's own state
    exclude such states; Amaranth 0.5 has no public way to name a signal inside another
    component, so the harness takes each as an input port, ``probe_<name>``, and the runner's
    yosys script connects that port to the named wire and makes it internal (runner.write_sby).
    A probe is never free: it is the component's signal or the script fails.
    """
    return {port: In(Shape.cast(shape)) for port, (_, shape) in probes.items()}


def fsm_encoding(component, name: str = "fsm") -> dict[str, int]:
    """The state encoding of the FSM ``name`` of ``component`` (``{"IDLE": 0, ...}``), as its
    elaboration chose it: the values its ``<name>_state`` signal takes."""
    fsm = Fragment.get(component, None).generated[name]
    return dict(fsm.encoding)


class Obligation:
    """Something owed since a trigger: raised in the cycle after ``trigger``, with ``age`` 1
    there and one more in every cycle after, until ``discharge`` (seen while raised) ends it.

    A trigger while an obligation is raised and not discharged in that cycle keeps the older
    one (its age), so that a bound counts from the first trigger; with ``restart`` it starts
    the count again. ``age`` saturates at
    ``limit + 1``: one past the largest age an assertion may allow.

    Attributes
    ----------
    raised : Signal
    age : Signal(range(limit + 2))
    ends : Signal
        ``raised & discharge``: the obligation ends in this cycle.
    """

    def __init__(self, m: Module, name: str, *, trigger, discharge, limit: int,
                 restart: bool = False):
        self.raised = Signal(name=f"{name}_raised")
        self.age = Signal(range(limit + 2), name=f"{name}_age")
        self.ends = Signal(name=f"{name}_ends")
        m.d.comb += self.ends.eq(self.raised & discharge)
        with m.If(self.ends):
            m.d.sync += self.raised.eq(0)
        with m.Elif(self.raised & (self.age <= limit)):
            m.d.sync += self.age.eq(self.age + 1)
        with m.If(trigger if restart else trigger & (~self.raised | self.ends)):
            m.d.sync += [self.raised.eq(1), self.age.eq(1)]
