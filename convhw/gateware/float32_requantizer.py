"""The float32 requantiser: torch's quantised output processing of one sum, in integer logic.

``out = clamp(round_half_even(float32(float32(acc) + bias) * multiplier) + zero_point, low,
255)``, every operation in IEEE-754 single precision, rounded as a CPU rounds it
(:mod:`convhw.gateware.float32`); ``low`` is ``zero_point`` with ``relu``, else 0. That is
fbgemm's output processing (:func:`convhw.quantized_golden.requantize` with
``kernel="fbgemm"``, on the constants of :meth:`~convhw.quantized_golden.QuantizedArithmetic.
constants`). qnnpack's is the same with its int32 bias already in ``acc`` and ``bias`` +0.0
(``x + 0.0`` is ``x`` for every float but -0, which ``float32(acc)`` never is).

A pipeline of the four operations (convert, add, multiply, round and clamp), each with its own
register stages (:data:`convhw.gateware.float32.STAGES`), a result every cycle: ``result``
and ``result_valid`` follow ``valid`` and its operands by :data:`LATENCY` (20) cycles.

The output pipeline (:mod:`convhw.gateware.output_pipeline`) of an engine with
``EngineConfig.float_output`` has one per lane, its stages never stalled.
"""

# (No `from __future__ import annotations`: wiring.Component reads the signature from the
# class's annotations, which must then be objects, not strings.)
from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .. import timing
from . import float32

__all__ = ["LATENCY", "Float32Requantizer"]

#: Cycles from operands to result: each operation's own stages (float32.STAGES) and a register
#: after each.
LATENCY = timing.FLOAT32_REQUANTIZER_LATENCY


class Float32Requantizer(wiring.Component):
    """One sum requantised per cycle (see the module documentation).

    Members
    -------
    valid : In(1)
    acc : In(signed(32))
        The exact sum (with qnnpack's int32 bias added).
    bias : In(32)
        float32 pattern: fbgemm's ``bias / (input_scale * weight_scale)``, or +0.0.
    multiplier : In(32)
        float32 pattern: ``(input_scale * weight_scale) / output_scale``; finite.
    zero_point : In(8)
        The output's.
    relu : In(1)
    result_valid : Out(1)
    result : Out(8)
    """

    valid: In(1)
    acc: In(signed(32))
    bias: In(32)
    multiplier: In(32)
    zero_point: In(8)
    relu: In(1)
    result_valid: Out(1)
    result: Out(8)

    def elaborate(self, platform) -> Module:
        m = Module()

        # Data registers are not reset (the valid chain is): a reset reaching every one of them
        # was the ULX3S's critical path, a net across the whole die.
        def delay(value, cycles, name, reset_less=True):
            for index in range(cycles):
                reg = Signal.like(value, name=f"{name}_d{index}", reset_less=reset_less)
                m.d.sync += reg.eq(value)
                value = reg
            return value

        stages = float32.STAGES
        # 1: int32 -> float32 (its stages, then a register)
        converted = Signal(32, reset_less=True)
        m.d.sync += converted.eq(float32.int_to_float(
            m, self.acc, "convert", stage=float32.registers(m, "convert")))
        at_add = stages["int_to_float"] + 1
        # 2: + bias
        biased = Signal(32, reset_less=True)
        m.d.sync += biased.eq(float32.float_add(
            m, converted, delay(self.bias, at_add, "bias"), "add",
            stage=float32.registers(m, "add")))
        at_multiply = at_add + stages["float_add"] + 1
        # 3: * multiplier
        scaled = Signal(32, reset_less=True)
        m.d.sync += scaled.eq(float32.float_multiply(
            m, biased, delay(self.multiplier, at_multiply, "multiplier"), "multiply",
            stage=float32.registers(m, "multiply")))
        at_round = at_multiply + stages["float_multiply"] + 1
        # 4: round half to even, + zero point, clamp. By sign: a positive value can only
        # exceed 255; a negative one only fall below 0 (below the zero point: with ReLU, the
        # zero point itself). One adder each, in parallel.
        magnitude, negative, saturated = float32.round_to_int(
            m, scaled, "round", stage=float32.registers(m, "round"))
        at_clamp = at_round + stages["round_to_int"]
        zero_point = delay(self.zero_point, at_clamp, "zero_point")
        relu = delay(self.relu, at_clamp, "relu")
        up = Signal(34)
        down = Signal(signed(35))
        m.d.comb += [up.eq(zero_point + magnitude), down.eq(zero_point - magnitude)]
        out = Signal(8)
        with m.If(~negative):
            m.d.comb += out.eq(Mux(saturated | up[8:].any(), 255, up[:8]))
        with m.Elif(relu):
            m.d.comb += out.eq(zero_point)
        with m.Else():
            m.d.comb += out.eq(Mux(saturated | down[-1], 0, down[:8]))
        m.d.sync += self.result.eq(out)
        assert at_clamp + 1 == LATENCY
        m.d.comb += self.result_valid.eq(delay(self.valid, LATENCY, "valid", reset_less=False))
        return m
