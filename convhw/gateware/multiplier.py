"""A registered signed multiplier, mapped onto the FPGA's DSP block with the block's own
registers where the synthesis tool does not do that by itself."""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .family import family_of

__all__ = ["ECP5_OPERAND_WIDTH", "Multiplier", "uses_ecp5_dsp"]

#: Operand width of the ECP5 sysDSP's 18x18 multiplier (MULT18X18D).
ECP5_OPERAND_WIDTH = 18


def uses_ecp5_dsp(platform, a_width: int, b_width: int) -> bool:
    """Whether a :class:`Multiplier` elaborated for ``platform`` is an explicit MULT18X18D:
    ``platform.family`` is ``"ecp5"`` (an ``amaranth-boards`` ECP5 platform, or the stand-in
    that ``convhw synth`` and ``convhw generate --family ecp5`` pass) and both operands fit its
    18-bit inputs."""
    return (family_of(platform) == "ecp5"
            and max(a_width, b_width) <= ECP5_OPERAND_WIDTH)


def _shift_add_product(a: Value, b: Value) -> Value:
    """``a * b`` (both signed) as partial products and adders, without a multiply: ``b`` in
    two's complement is ``sum(b[i] << i) - (b[-1] << len(b) - 1)``, so the product is the sum
    of ``a << i`` for each set bit below the sign bit, less ``a << len(b) - 1`` if ``b`` is
    negative. The terms are added pairwise, a tree of ``log2(len(b))`` adder levels."""
    width = len(a) + len(b)
    terms = [Mux(b[i], a, 0).as_signed() << i for i in range(len(b) - 1)]
    terms.append(-(Mux(b[-1], a, 0).as_signed() << (len(b) - 1)))
    while len(terms) > 1:
        pairs = [terms[i] + terms[i + 1] for i in range(0, len(terms) - 1, 2)]
        terms = pairs + terms[len(terms) - len(terms) % 2:]
    return terms[0][:width].as_signed()


class Multiplier(wiring.Component):
    """``p`` is ``a * b`` of :attr:`latency` cycles before, exact (``a_width + b_width`` bits).

    With ``registered_inputs`` the operands are registered, then the product (latency 2);
    without, only the product (latency 1). None of the registers is reset; with ``enable`` they
    all load only in cycles in which the ``en`` input is high (a stalling pipeline's stage
    registers; the DSP block's clock enable), else in every cycle.

    Elaborated for an ECP5 (:func:`uses_ecp5_dsp`) it is one ``MULT18X18D`` whose input and
    output registers are these registers. Yosys maps an Amaranth multiply onto the block but
    leaves the registers in the fabric, so every product crossed the routing into the block and
    back out inside one clock: with the 8x8 array, the PE's product was the engine's critical
    path (14.3 ns, 9.9 of it routing; ``bench/results/ecp5-85f-list-engine.md``). With the
    block's registers, each of those paths ends or starts at the block. Elsewhere (simulation,
    iCE40, other vendors) it is the behavioural description, which the simulators run and the
    tools map as they can.

    With ``in_logic`` it is neither, on every platform: the product is a sum of partial
    products (``a`` times each bit of ``b``, the sign bit's subtracted), added in a balanced
    tree of adders. A synthesis tool sees adders, not a multiply, so it builds them from logic
    and carry chains and never spends a DSP block on them: the multiplier of the PEs an array
    has beyond the part's DSP blocks (``EngineConfig.dsp_pes``). Same registers, same latency.

    Parameters
    ----------
    a_width, b_width : int
        Operand widths (signed).
    registered_inputs : bool
        Register the operands too.
    enable : bool
        The registers have the clock enable ``en``.
    in_logic : bool
        Multiply in logic, never in a DSP block.
    """

    def __init__(self, a_width: int, b_width: int, *, registered_inputs: bool = True,
                 enable: bool = False, in_logic: bool = False) -> None:
        for name, width in (("a_width", a_width), ("b_width", b_width)):
            if not isinstance(width, int) or isinstance(width, bool) or width < 1:
                raise ValueError(f"{name} must be a positive int, not {width!r}")
        self._a_width = a_width
        self._b_width = b_width
        self._registered_inputs = bool(registered_inputs)
        self._enable = bool(enable)
        self._in_logic = bool(in_logic)
        super().__init__({
            "a": In(signed(a_width)),
            "b": In(signed(b_width)),
            "p": Out(signed(a_width + b_width)),
            **({"en": In(1)} if enable else {}),
        })

    @property
    def in_logic(self) -> bool:
        return self._in_logic

    @property
    def latency(self) -> int:
        """Cycles from an operand to its product."""
        return 2 if self._registered_inputs else 1

    def elaborate(self, platform) -> Module:
        m = Module()
        if not self._in_logic and uses_ecp5_dsp(platform, self._a_width, self._b_width):
            self._elaborate_ecp5(m)
            return m
        a = Signal(signed(self._a_width), reset_less=True)
        b = Signal(signed(self._b_width), reset_less=True)
        p = Signal(signed(self._a_width + self._b_width), reset_less=True)
        product = _shift_add_product(a, b) if self._in_logic else a * b
        if self._registered_inputs:
            registers = [a.eq(self.a), b.eq(self.b), p.eq(product)]
        else:
            m.d.comb += [a.eq(self.a), b.eq(self.b)]
            registers = [p.eq(product)]
        if self._enable:
            with m.If(self.en):
                m.d.sync += registers
        else:
            m.d.sync += registers
        m.d.comb += self.p.eq(p)
        return m

    def _elaborate_ecp5(self, m: Module) -> None:
        # Lattice TN1267 (ECP5 sysDSP): with REG_INPUTA/B and REG_OUTPUT on CLK0 and the
        # pipeline register bypassed, P is A * B of two clocks before; without the input
        # registers, of one. SIGNEDA/B make the 18-bit inputs two's complement, so sign-extended
        # operands give the exact signed product in P's low bits.
        width = ECP5_OPERAND_WIDTH
        a = Signal(signed(width))
        b = Signal(signed(width))
        p = Signal(2 * width)
        m.d.comb += [a.eq(self.a), b.eq(self.b),
                     self.p.eq(p[:self._a_width + self._b_width])]
        # The pins the multiplier does not use (the shift chains SRIA/SRIB, the other clocks,
        # enables and resets) stay unconnected, as in Yosys's own mapping: tied to a constant,
        # 64 blocks' worth of them are more arcs of the constant net than nextpnr could route
        # (it failed on the 8x8 array).
        inputs = "CLK0" if self._registered_inputs else "NONE"
        zero = Const(0, 1)
        ports = {
            **{f"i_A{bit}": a[bit] for bit in range(width)},
            **{f"i_B{bit}": b[bit] for bit in range(width)},
            **{f"i_C{bit}": zero for bit in range(width)},
            **{f"o_P{bit}": p[bit] for bit in range(2 * width)},
            "i_SIGNEDA": Const(1, 1), "i_SIGNEDB": Const(1, 1),
            "i_SOURCEA": zero, "i_SOURCEB": zero,
            "i_CLK0": ClockSignal(), "i_CE0": self.en if self._enable else Const(1, 1),
            "i_RST0": zero,
        }
        m.submodules.dsp = Instance(
            "MULT18X18D",
            p_REG_INPUTA_CLK=inputs, p_REG_INPUTB_CLK=inputs, p_REG_INPUTC_CLK="NONE",
            p_REG_PIPELINE_CLK="NONE", p_REG_OUTPUT_CLK="CLK0",
            p_CLK0_DIV="ENABLED", p_GSR="DISABLED", p_RESETMODE="SYNC",
            p_MULT_BYPASS="DISABLED", p_SOURCEB_MODE="B_SHIFT", p_CAS_MATCH_REG="FALSE",
            **ports)
