"""PLL settings for the boards' clock: the divider search, and the primitive instances.

Each search returns the setting whose output is closest to the requested frequency (ties: the
highest VCO, which has the least jitter) within the datasheet's ranges, and the frequency it
really gives; the board top constrains its clock to that frequency, not to the request.

* iCE40 ``SB_PLL40_*`` in SIMPLE feedback (iCE40 sysCLOCK PLL design guide, TN1251):
  ``f_out = f_in * (DIVF + 1) / ((DIVR + 1) * 2**DIVQ)``, phase-detector input
  ``f_in / (DIVR + 1)`` 10..133 MHz, VCO ``f_out * 2**DIVQ`` 533..1066 MHz, output 16..275 MHz.
* ECP5 ``EHXPLLL`` with CLKOP feedback (ECP5 sysCLOCK PLL/DLL user guide, TN1263):
  ``f_out = f_in * CLKFB_DIV / CLKI_DIV``, VCO ``f_out * CLKOP_DIV`` 400..800 MHz, phase
  detector 3.125..400 MHz, output 3.125..400 MHz.
"""

from __future__ import annotations

import dataclasses

from amaranth.hdl import Instance, Signal

__all__ = ["ECP5PLL", "ICE40PLL", "ecp5_pll", "ice40_pll"]

MHZ = 1e6


@dataclasses.dataclass(frozen=True)
class ICE40PLL:
    input_hz: float
    output_hz: float
    divr: int
    divf: int
    divq: int

    @property
    def filter_range(self) -> int:
        """FILTER_RANGE from the phase-detector frequency (TN1251's table)."""
        pfd = self.input_hz / (self.divr + 1)
        for limit, value in ((17e6, 1), (26e6, 2), (44e6, 3), (66e6, 4), (101e6, 5)):
            if pfd < limit:
                return value
        return 6

    def instance(self, reference, output: Signal, lock: Signal, *,
                 pad: bool = False) -> Instance:
        """The PLL from ``reference`` to ``output`` on a global net: ``SB_PLL40_CORE`` when
        ``reference`` is a clock already on the fabric, ``SB_PLL40_PAD`` when ``pad`` and
        ``reference`` is the package pin itself (an IO port). The UP5K's PLL sits at the I/O
        site of pin 35, where the iCEBreaker's oscillator arrives: that pin can reach the PLL
        only through the PAD variant (nextpnr cannot place a CORE PLL whose site an input
        buffer already uses)."""
        common = dict(
            p_FEEDBACK_PATH="SIMPLE", p_PLLOUT_SELECT="GENCLK",
            p_DIVR=self.divr, p_DIVF=self.divf, p_DIVQ=self.divq,
            p_FILTER_RANGE=self.filter_range,
            i_RESETB=1, i_BYPASS=0, o_PLLOUTGLOBAL=output, o_LOCK=lock)
        if pad:
            return Instance("SB_PLL40_PAD", i_PACKAGEPIN=reference, **common)
        return Instance("SB_PLL40_CORE", i_REFERENCECLK=reference, **common)


def ice40_pll(input_hz: float, output_hz: float) -> ICE40PLL:
    """The iCE40 PLL setting closest to ``output_hz`` (ValueError if none is in range)."""
    if not 16 * MHZ <= output_hz <= 275 * MHZ:
        raise ValueError(f"an iCE40 PLL output must be 16..275 MHz, not {output_hz / MHZ:g} MHz")
    best = None
    for divr in range(16):
        pfd = input_hz / (divr + 1)
        if not 10 * MHZ <= pfd <= 133 * MHZ:
            continue
        for divq in range(1, 7):
            for divf in range(128):
                vco = pfd * (divf + 1)
                if not 533 * MHZ <= vco <= 1066 * MHZ:
                    continue
                out = vco / (1 << divq)
                key = (abs(out - output_hz), -vco)
                if best is None or key < best[0]:
                    best = (key, ICE40PLL(input_hz, out, divr, divf, divq))
    if best is None:
        raise ValueError(f"no iCE40 PLL setting makes {output_hz / MHZ:g} MHz from "
                         f"{input_hz / MHZ:g} MHz")
    return best[1]


@dataclasses.dataclass(frozen=True)
class ECP5PLL:
    input_hz: float
    output_hz: float
    clki_div: int
    clkfb_div: int
    clkop_div: int

    def instance(self, reference: Signal, output: Signal, lock: Signal) -> Instance:
        """``EHXPLLL`` from ``reference`` to ``output`` (fed back from CLKOP)."""
        return Instance(
            "EHXPLLL",
            p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
            p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA", p_CLKOP_ENABLE="ENABLED",
            p_CLKI_DIV=self.clki_div, p_CLKFB_DIV=self.clkfb_div, p_CLKOP_DIV=self.clkop_div,
            p_CLKOP_CPHASE=self.clkop_div - 1, p_CLKOP_FPHASE=0, p_FEEDBK_PATH="CLKOP",
            # nextpnr reads the frequencies from these attributes for its timing analysis.
            a_FREQUENCY_PIN_CLKI=f"{self.input_hz / MHZ:g}",
            a_FREQUENCY_PIN_CLKOP=f"{self.output_hz / MHZ:.4f}",
            a_ICP_CURRENT="12", a_LPF_RESISTOR="8", a_MFG_ENABLE_FILTEROPAMP="1",
            a_MFG_GMCREF_SEL="2",
            i_CLKI=reference, i_CLKFB=output, i_RST=0, i_STDBY=0, i_PHASESEL0=0,
            i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1, i_PLLWAKESYNC=0,
            i_ENCLKOP=0, o_CLKOP=output, o_LOCK=lock)


def ecp5_pll(input_hz: float, output_hz: float) -> ECP5PLL:
    """The ECP5 PLL setting closest to ``output_hz`` (ValueError if none is in range)."""
    if not 3.125 * MHZ <= output_hz <= 400 * MHZ:
        raise ValueError(f"an ECP5 PLL output must be 3.125..400 MHz, not "
                         f"{output_hz / MHZ:g} MHz")
    best = None
    for clki_div in range(1, 129):
        pfd = input_hz / clki_div
        if not 3.125 * MHZ <= pfd <= 400 * MHZ:
            continue
        for clkfb_div in range(1, 129):
            out = pfd * clkfb_div
            if not 3.125 * MHZ <= out <= 400 * MHZ:
                continue
            clkop_div = max(1, min(128, round(600 * MHZ / out)))
            vco = out * clkop_div
            if not 400 * MHZ <= vco <= 800 * MHZ:
                continue
            key = (abs(out - output_hz), -vco)
            if best is None or key < best[0]:
                best = (key, ECP5PLL(input_hz, out, clki_div, clkfb_div, clkop_div))
    if best is None:
        raise ValueError(f"no ECP5 PLL setting makes {output_hz / MHZ:g} MHz from "
                         f"{input_hz / MHZ:g} MHz")
    return best[1]
