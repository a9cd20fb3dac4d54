"""One processing element of the systolic array: a registered signed multiply-accumulate with
two weight banks."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .. import timing
from ..config import EngineConfig
from .multiplier import Multiplier

__all__ = ["ProcessingElement"]


class ProcessingElement(wiring.Component):
    """A weight-stationary multiply-accumulate cell with double-buffered weights.

    Three pipeline stages with ``config.deep_pipeline``::

        operand, weight <= a, weight[bank]
        prod            <= operand * weight    (product_width bits, exact)
        psum_out        <= psum_in + prod      (truncated to acc_width bits)

    so ``psum_out`` at cycle ``t + 3`` is ``psum_in`` at cycle ``t + 2`` plus ``a(t) *
    weight[bank(t)](t)``. The first stage keeps the array's operand and bank multiplexers out
    of the multiplier's path: the multiplier starts from registers. Without the deep pipeline
    there is no first stage (``prod <= a * weight[bank]``): ``psum_out`` at ``t + 2`` is
    ``psum_in`` at ``t + 1`` plus ``a(t) * weight[bank(t)](t)``; :meth:`latency_for` is the
    number of stages. The sum wraps modulo ``2**acc_width`` (two's complement), which is the
    engine's documented overflow rule.

    A weight write (``w_we`` high in cycle ``t``) takes effect at the clock edge ending cycle
    ``t``: an operand of cycle ``t`` is still multiplied with the old value, one of cycle
    ``t + 1`` with the new one. Writing one bank while the other is multiplied never disturbs the
    products, which is what lets the array switch banks between passes without a bubble.

    Parameters
    ----------
    config : EngineConfig
        Engine parameters; ``operand_width``, ``weight_width`` and ``acc_width`` are used.
    in_logic : bool
        Multiply in logic, not in a DSP block (a PE beyond ``config.dsp_pes``).

    Attributes
    ----------
    a : In(signed(operand_width))
        Operand (``config.operand_width`` bits: ``input_width``, one more with
        ``activation_offset``).
    bank : In(1)
        The weight bank ``a`` is multiplied with.
    w_we : In(1)
        Weight write enable.
    w_bank : In(1)
        The bank written when ``w_we`` is high.
    w_data : In(signed(weight_width))
        The weight written when ``w_we`` is high.
    psum_in : In(signed(acc_width))
        Partial sum from the PE above (zero for the top row).
    psum_out : Out(signed(acc_width))
        Registered partial sum for the PE below.

    Raises
    ------
    TypeError
        If ``config`` is not an :class:`EngineConfig`.
    """

    def __init__(self, config: EngineConfig, *, in_logic: bool = False) -> None:
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        self._config = config
        self._in_logic = bool(in_logic)
        super().__init__({
            "a": In(signed(config.operand_width)),
            "bank": In(1),
            "w_we": In(1),
            "w_bank": In(1),
            "w_data": In(signed(config.weight_width)),
            "psum_in": In(signed(config.acc_width)),
            "psum_out": Out(signed(config.acc_width)),
        })

    @property
    def config(self) -> EngineConfig:
        """The engine parameters this PE was built for."""
        return self._config

    @staticmethod
    def latency_for(config: EngineConfig) -> int:
        """Register stages from ``a`` to ``psum_out`` in a PE built for ``config``
        (:func:`convhw.timing.pe_latency`)."""
        return timing.pe_latency(config)

    def elaborate(self, platform) -> Module:
        config = self._config
        m = Module()

        weights = [Signal(signed(config.weight_width), name=f"weight{bank}") for bank in range(2)]
        with m.If(self.w_we):
            with m.If(self.w_bank):
                m.d.sync += weights[1].eq(self.w_data)
            with m.Else():
                m.d.sync += weights[0].eq(self.w_data)

        # The product is registered on its own, and with the deep pipeline the multiplier's
        # inputs too, so that the operand selection, the multiplier and the adder are separate
        # timing paths; on an ECP5 those registers are the DSP block's own (`Multiplier`). A
        # product of two signed operands always fits in the sum of their widths, so it is
        # exact. No register here is reset: they are data, whose value only matters with a
        # valid word, and registers without a reset map into a DSP block together with the
        # multiplier and the adder (iCE40 SB_MAC16) instead of into logic cells.
        m.submodules.multiplier = multiplier = Multiplier(
            config.operand_width, config.weight_width, registered_inputs=config.deep_pipeline,
            in_logic=self._in_logic)
        m.d.comb += [multiplier.a.eq(self.a),
                     multiplier.b.eq(Mux(self.bank, weights[1], weights[0]))]
        prod = multiplier.p

        # The sum is one bit wider than the accumulator; dropping that bit is the wrap-around
        # modulo 2**acc_width, written out so that it is not mistaken for an accident.
        total = self.psum_in + prod
        psum = Signal(signed(config.acc_width), reset_less=True)
        m.d.sync += psum.eq(total[:config.acc_width].as_signed())
        m.d.comb += self.psum_out.eq(psum)
        return m
