"""The float32 requantiser: torch's quantised output processing of one sum, in integer logic.

``out = clamp(round_half_even(float32(float32(acc) + bias) * multiplier) + zero_point, low,
255)``, every operation in IEEE-754 single precision, rounded as a CPU rounds it
(:mod:`convhw.gateware.float32`); ``low`` is ``zero_point`` with ``relu``, else 0. That is
fbgemm's output processing (:func:`convhw.quantized_golden.requantize` with
``kernel="fbgemm"``, on the constants of :meth:`~convhw.quantized_golden.QuantizedArithmetic.
constants`). qnnpack's is the same with its int32 bias already in ``acc`` and ``bias`` +0.0
(``x + 0.0`` is ``x`` for every float but -0, which ``float32(acc)`` never is).

Four register stages, one operation each (convert, add, multiply, round and clamp), a result
every cycle: ``result`` and ``result_valid`` follow ``valid`` and its operands by
:data:`LATENCY` cycles. Not yet in the engine's output stage (issue 12): a component with its
own tests, against NumPy's float32 and the golden model.
"""

# (No `from __future__ import annotations`: wiring.Component reads the signature from the
# class's annotations, which must then be objects, not strings.)
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from . import float32

__all__ = ["LATENCY", "Float32Requantizer"]

#: Cycles from operands to result.
LATENCY = 4


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
        # Each stage carries what the later ones need.
        valid = [Signal(name=f"valid{i}") for i in range(LATENCY)]
        m.d.sync += [valid[0].eq(self.valid), *(valid[i].eq(valid[i - 1])
                                                 for i in range(1, LATENCY))]

        def carried(value, stages, name):
            regs = [Signal.like(value, name=f"{name}{i}") for i in range(stages)]
            m.d.sync += regs[0].eq(value)
            for i in range(1, stages):
                m.d.sync += regs[i].eq(regs[i - 1])
            return regs

        zero_point = carried(self.zero_point, 3, "zero_point")
        relu = carried(self.relu, 3, "relu")
        bias = carried(self.bias, 1, "bias")
        multiplier = carried(self.multiplier, 2, "multiplier")

        # 1: int32 -> float32
        converted = Signal(32)
        m.d.sync += converted.eq(float32.int_to_float(m, self.acc, "convert"))
        # 2: + bias
        biased = Signal(32)
        m.d.sync += biased.eq(float32.float_add(m, converted, bias[0], "add"))
        # 3: * multiplier
        scaled = Signal(32)
        m.d.sync += scaled.eq(float32.float_multiply(m, biased, multiplier[1], "multiply"))
        # 4: round half to even, + zero point, clamp
        rounded, saturated = float32.round_to_int(m, scaled, "round")
        total = Signal(signed(36))
        m.d.comb += total.eq(rounded + zero_point[2])
        low = Signal(unsigned(8))
        m.d.comb += low.eq(Mux(relu[2], zero_point[2], 0))
        out = Signal(8)
        with m.If(saturated):
            m.d.comb += out.eq(Mux(scaled[31], low, 255))
        with m.Elif(total > 255):
            m.d.comb += out.eq(255)
        with m.Elif(total < low):
            m.d.comb += out.eq(low)
        with m.Else():
            m.d.comb += out.eq(total[:8])
        m.d.sync += self.result.eq(out)
        m.d.comb += self.result_valid.eq(valid[LATENCY - 1])
        return m
