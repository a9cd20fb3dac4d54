"""Which FPGA family a component is elaborated for."""

from __future__ import annotations

__all__ = ["family_of"]


def family_of(platform) -> str | None:
    """The FPGA family of ``platform`` in lower case (``"ecp5"``, ``"ice40"``, ...), or ``None``
    for no platform (simulation, vendor-neutral Verilog). ``amaranth-boards`` platforms spell it
    their own way (``"iCE40"``, ``"ecp5"``); :class:`convhw.generate.TargetFamily` stands in for
    one when there is no board."""
    family = getattr(platform, "family", None)
    return family.lower() if isinstance(family, str) else None
