"""The output stage: bias, optional requantisation and ReLU on the way out of the accumulator."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..config import EngineConfig

__all__ = ["OutputStage"]


class OutputStage(wiring.Component):
    """Turns one accumulator value into one result word, pipelined over :attr:`latency` cycles.

    ``raw`` (``requantize`` low): ``acc + bias`` as a signed 32-bit word. The compiler only runs
    layers whose worst-case ``acc + bias`` fits the accumulator, so this never wraps.

    ``requantize``: ``clamp((acc + bias) * multiplier + 2**(shift - 1) >> shift, -2**(w-1),
    2**(w-1) - 1)`` with ``w = input_width``: a signed 16-bit multiplier, an arithmetic shift right
    by 0..63 that rounds half up (towards plus infinity) when ``shift > 0``, then saturation to
    the input width, so results feed the next layer as they are.
    :func:`convhw.golden.requantize` is the same rule in NumPy.

    ``relu``: negative results become 0 (after requantisation, if any).

    Inputs are sampled in the cycle ``valid`` is high; ``result`` is valid :attr:`latency`
    cycles later with ``result_valid``.
    """

    MULTIPLIER_WIDTH = 16
    SHIFT_WIDTH = 6

    def __init__(self, config: EngineConfig):
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        self._config = config
        super().__init__({
            "valid": In(1),
            "acc": In(signed(config.acc_width)),
            "bias": In(signed(config.acc_width)),
            "requantize": In(1),
            "relu": In(1),
            "multiplier": In(signed(self.MULTIPLIER_WIDTH)),
            "shift": In(unsigned(self.SHIFT_WIDTH)),
            "result_valid": Out(1),
            "result": Out(signed(32)),
        })

    @property
    def config(self) -> EngineConfig:
        return self._config

    @property
    def latency(self) -> int:
        return 3

    def elaborate(self, platform) -> Module:
        m = Module()
        config = self._config
        aw = config.acc_width
        biased = Signal(signed(aw))
        product = Signal(signed(aw + self.MULTIPLIER_WIDTH))
        shift = Signal.like(self.shift)
        requantize, relu = Signal(), Signal()
        valid = Signal(3)
        m.d.sync += valid.eq(valid << 1 | self.valid)
        m.d.comb += self.result_valid.eq(valid[2])

        # stage 1: bias (wraps like the accumulator; the compiler keeps it in range)
        m.d.sync += [biased.eq(self.acc + self.bias), shift.eq(self.shift),
                     requantize.eq(self.requantize), relu.eq(self.relu)]
        # stage 2: scale
        multiplier = Signal.like(self.multiplier)
        m.d.sync += multiplier.eq(self.multiplier)
        m.d.sync += product.eq(biased * Mux(requantize, multiplier, 1))
        raw = Signal(signed(aw))
        m.d.sync += raw.eq(biased)
        shift2, requantize2, relu2 = Signal.like(shift), Signal(), Signal()
        m.d.sync += [shift2.eq(shift), requantize2.eq(requantize), relu2.eq(relu)]
        # stage 3: round, shift, saturate, ReLU
        rounding = Mux(shift2 == 0, 0, (1 << (shift2 - 1).as_unsigned()[:self.SHIFT_WIDTH]))
        scaled = Signal(signed(aw + self.MULTIPLIER_WIDTH + 1))
        m.d.comb += scaled.eq((product + rounding) >> shift2)
        low, high = config.input_range
        saturated = Signal(signed(config.input_width + 1))
        m.d.comb += saturated.eq(Mux(scaled < low, low, Mux(scaled > high, high, scaled)))
        value = Signal(signed(max(aw, 32)))
        m.d.comb += value.eq(Mux(requantize2, saturated, raw))
        m.d.sync += self.result.eq(Mux(relu2 & (value < 0), 0, value))
        return m
