"""``MemoryModel``: the memory a simulated engine's master port runs against, as plain data.

One definition of a memory of fixed latency and bandwidth, read by everything that models one:
the Python bus slaves of the Amaranth simulator (:mod:`convhw.sim_memory`), the C++ memory of
the Verilator harness, and the list cycle model (:mod:`convhw.compiler.cycles`). Each applies
the rules below cycle for cycle, so a list takes the same number of cycles on the Amaranth
simulator and on Verilator, and the cycle model predicts it.

The rules, for a bus of ``B`` bytes per beat (``EngineConfig.memory_width / 8``):

* **Bandwidth.** The memory holds a credit of bytes, ``cap = max(B, bytes_per_cycle)`` at reset.
  A beat, read or write, moves only in a cycle that starts with at least ``B`` bytes of credit
  left for it; reads come first: a read beat presented in a cycle sets its ``B`` bytes aside
  before a write beat is accepted in that cycle. At the end of every cycle the memory takes
  ``B`` bytes per beat that moved and adds ``bytes_per_cycle``, up to ``cap``. So reads and
  writes together move ``bytes_per_cycle`` bytes per cycle in the long run (at most one read
  and one write beat per cycle), as one memory port shared by both directions does.
* **Latency.** A read burst's first beat is presented ``latency`` cycles after the cycle of its
  address transfer at the earliest; bursts are served in order. A write burst is answered
  (AXI4 ``B``; a Wishbone beat's ``ACK``) ``latency`` cycles after its last data beat at the
  earliest. Addresses are accepted in every cycle, any number outstanding.
* **Stalls.** ``stalls`` is ``None`` (none) or a :class:`Stalls`: in each cycle each channel
  independently withholds its ready (address and write-data channels) or its next beat (read
  data and write response) with ``probability``, from a generator seeded with ``seed``. Stalls
  change timing only: results stay bit-exact, and the cycle model's figure (which assumes no
  stalls) is a lower bound.

Examples: ``MemoryModel()`` is an 8-byte-per-cycle memory with a 20-cycle latency (a DDR
controller on a 64-bit bus); ``MemoryModel(bytes_per_cycle=2)`` a 16-bit SDRAM.
"""

from __future__ import annotations

import dataclasses

__all__ = ["MemoryModel", "Stalls"]

#: Bounds of the parameters (inclusive).
MAX_BYTES_PER_CYCLE = 64
MAX_LATENCY = 1024


@dataclasses.dataclass(frozen=True)
class Stalls:
    """Random stalls of a :class:`MemoryModel` (see its rules)."""

    probability: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.probability, bool) or not isinstance(self.probability,
                                                                (int, float)):
            raise TypeError(f"Stalls probability must be a number, not {self.probability!r}")
        if not 0.0 <= self.probability < 1.0:
            raise ValueError(f"Stalls probability must be in [0, 1), not {self.probability!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ValueError(f"Stalls seed must be a non-negative integer, not {self.seed!r}")


@dataclasses.dataclass(frozen=True)
class MemoryModel:
    """A memory of fixed latency and bandwidth behind the engine's master port (see the
    module documentation for the exact rules).

    Parameters
    ----------
    bytes_per_cycle : int
        Bandwidth, reads and writes together, in bytes per engine clock cycle (1 to 64).
    latency : int
        Cycles from a read's address to its first data beat, and from a write's last data beat
        to its response (1 to 1024).
    stalls : Stalls or float or None
        Random stalls; a float ``p`` is ``Stalls(p)``.
    """

    bytes_per_cycle: int = 8
    latency: int = 20
    stalls: Stalls | None = None

    def __post_init__(self) -> None:
        for name, top in (("bytes_per_cycle", MAX_BYTES_PER_CYCLE), ("latency", MAX_LATENCY)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"MemoryModel {name} must be an integer, not {value!r}")
            if not 1 <= value <= top:
                raise ValueError(f"MemoryModel {name} must be in [1, {top}], not {value}")
        stalls = self.stalls
        if isinstance(stalls, (int, float)) and not isinstance(stalls, bool):
            stalls = Stalls(float(stalls)) if stalls else None
            object.__setattr__(self, "stalls", stalls)
        if stalls is not None and not isinstance(stalls, Stalls):
            raise TypeError(f"MemoryModel stalls must be None, a probability or a Stalls, "
                            f"not {stalls!r}")

    def cap(self, beat_bytes: int) -> int:
        """The most credit the memory holds, for a bus of ``beat_bytes`` bytes per beat."""
        return max(beat_bytes, self.bytes_per_cycle)

    @property
    def stall_probability(self) -> float:
        return 0.0 if self.stalls is None else self.stalls.probability

    @property
    def stall_seed(self) -> int:
        return 0 if self.stalls is None else self.stalls.seed
