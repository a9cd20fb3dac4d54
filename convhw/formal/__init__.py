"""Formal proofs (SymbiYosys) of the engine's control gateware: ``python -m convhw.formal``.

Each proof is a harness (an Amaranth component wrapping one gateware component, with its free
inputs as ports and its assumptions and assertions as ``Assume``/``Assert``/``Cover``), a mode
and a depth; :data:`PROOFS` lists them, :mod:`convhw.formal.runner` runs them. docs/formal.md
says what is proven and what is not.

The gateware never imports this package.
"""

from .proofs import PROOFS
from .registry import MODES, Proof

__all__ = ["MODES", "PROOFS", "Proof"]
