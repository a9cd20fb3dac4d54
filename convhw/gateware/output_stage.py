"""The output stage: bias, optional requantisation and ReLU on the way out of the accumulator."""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..config import EngineConfig

__all__ = ["OutputStage"]


class OutputStage(wiring.Component):
    """Turns one accumulator value into one result word, over a few cycles.

    ``raw`` (``requantize`` low): ``acc + bias`` as a signed 32-bit word. The compiler only runs
    layers whose worst-case ``acc + bias`` fits the accumulator, so this never wraps.

    ``requantize``: ``clamp((acc + bias) * multiplier + 2**(shift - 1) >> shift, -2**(w-1),
    2**(w-1) - 1)`` with ``w = input_width``: a signed 16-bit multiplier, an arithmetic shift right
    by 0..63 that rounds half up (towards plus infinity) when ``shift > 0``, then saturation to
    the input width, so results feed the next layer as they are.
    :func:`convhw.golden.requantize` is the same rule in NumPy.

    ``relu``: negative results become 0 (after requantisation, if any).

    The stage sits on the bus's read path, where a result is asked for one at a time, so it
    works serially rather than in a pipeline of its own: the product takes one cycle per
    multiplier bit (no DSP block), the shift one cycle per bit. Inputs are sampled in the cycle
    ``valid`` is high; ``result`` is valid :meth:`latency_for` cycles later with
    ``result_valid``, and until the next result. ``valid`` is ignored until then.
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

    @classmethod
    def latency_for(cls, requantize: bool, shift: int) -> int:
        """Cycles from ``valid`` to ``result_valid``: the bias add and the result, and when
        requantising one per multiplier bit and one per bit shifted."""
        return 2 + (cls.MULTIPLIER_WIDTH + shift if requantize else 0)

    def elaborate(self, platform) -> Module:
        m = Module()
        config = self._config
        aw, w = config.acc_width, config.input_width
        biased = Signal(signed(aw))
        product = Signal(signed(aw + self.MULTIPLIER_WIDTH))
        multiplier = Signal.like(self.multiplier)
        count = Signal(range(max(self.MULTIPLIER_WIDTH, 1 << self.SHIFT_WIDTH)))
        shift = Signal.like(self.shift)
        rounding = Signal()        # the last bit shifted out: the product's bit shift - 1
        requantize, relu = Signal(), Signal()
        m.d.sync += self.result_valid.eq(0)

        # round half up: (p >> s) + bit s-1 of p; only the largest value can overflow by it.
        low, high = config.result_range
        fits = Signal()
        top = product[w - 1:]
        m.d.comb += fits.eq((top == 0) | (top == (1 << len(top)) - 1))
        narrow = product[:w].as_signed()
        saturated = Mux(fits, Mux(narrow == high, high, narrow + rounding),
                        Mux(product < 0, low, high))
        value = Signal(signed(max(aw, 32)))
        m.d.comb += value.eq(Mux(requantize, saturated, biased))

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.valid):
                    # bias (wraps like the accumulator; the compiler keeps it in range)
                    m.d.sync += [biased.eq(self.acc + self.bias), multiplier.eq(self.multiplier),
                                 shift.eq(self.shift), requantize.eq(self.requantize),
                                 relu.eq(self.relu), product.eq(0), rounding.eq(0),
                                 count.eq(self.MULTIPLIER_WIDTH - 1)]
                    with m.If(self.requantize):
                        m.next = "MULTIPLY"
                    with m.Else():
                        m.next = "RESULT"
            with m.State("MULTIPLY"):
                # most significant multiplier bit first; it weighs -2**15 (two's complement)
                bit = multiplier[-1]
                first = count == self.MULTIPLIER_WIDTH - 1
                m.d.sync += [
                    product.eq((product << 1) + Mux(bit, Mux(first, -biased, biased), 0)),
                    multiplier.eq(multiplier << 1),
                    count.eq(count - 1),
                ]
                with m.If(count == 0):
                    m.d.sync += count.eq(shift)
                    with m.If(shift == 0):
                        m.next = "RESULT"
                    with m.Else():
                        m.next = "SHIFT"
            with m.State("SHIFT"):
                m.d.sync += [product.eq(product >> 1), rounding.eq(product[0]),
                             count.eq(count - 1)]
                with m.If(count == 1):
                    m.next = "RESULT"
            with m.State("RESULT"):
                m.d.sync += [self.result.eq(Mux(relu & (value < 0), 0, value)),
                             self.result_valid.eq(1)]
                m.next = "IDLE"
        return m
