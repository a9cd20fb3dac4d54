"""``OutputPipeline``: the output stage as a pipeline, one group of accumulator values per cycle.

The arithmetic is :class:`~convhw.gateware.output_stage.OutputStage`'s (and
:func:`convhw.compiler.list_model.output_values`'): ``v = acc + bias`` exactly; a raw result is
``v`` wrapped to ``8 * config.raw_bytes`` bits; a requantised one is
``clamp((v * mult + 2**(shift - 1)) >> shift)`` to ``config.input_width`` bits (a signed 16-bit
multiplier, a shift of 0..63 that rounds half up, :func:`convhw.golden.requantize`); then ReLU.
Here it streams: one group of ``lanes`` values enters per cycle and leaves, in order, a fixed
number of cycles later.

Stages, each ending in a register (for a 100+ MHz ECP5 clock):

1. the bias add, and the multiplier's inputs (a raw value takes the multiplier 1 and shift 0,
   so one path serves both modes);
2. the partial products: ``v`` split into 17-bit unsigned pieces and a signed top piece of at
   most 18 bits, each times the 16-bit multiplier (one 18x18 DSP block each, ``MULT18X18D`` on
   ECP5; two per lane for a 32-bit accumulator);
3. their sum, the product ``p``;
4. ``2 * p`` shifted right by the shift's multiple of 8;
5. shifted right by the rest of the shift: ``t = floor(p / 2**(shift - 1))``, so that bit 0 of
   ``t`` is the rounding bit (the bit ``shift - 1`` of ``p``, 0 for shift 0);
6. the result: ``(t >> 1) + t[0]`` saturated to the input width (or ``v`` wrapped), ReLU.

With ``EngineConfig.float_output`` a group may instead take torch's quantised output processing
(``float``: :class:`~convhw.gateware.float32_requantizer.Float32Requantizer` per lane, fed
with ``v`` wrapped to int32 from stage 1, the lane's float32 ``f32_bias`` and ``f32_mult``,
``output_zero`` and ``relu``; an 8-bit result, zero-extended); its
:data:`~convhw.timing.FLOAT32_REQUANTIZER_LATENCY` stages follow stage 1, and the integer
path's results wait in as many registers beside them, so that every group takes the same
:attr:`OutputPipeline.stages`.

The stages never stall: they advance in every cycle, and no decision about the output reaches
their registers (on the ULX3S the stall enable of the skid buffer this pipeline had, fanned out
to some 8,000 stage registers' clock enables, was the critical path: 17.8 ns, 16.4 of it
routing); a stage's registers load when what enters them is valid, an enable that comes from a
flip-flop. A first-in first-out buffer of :attr:`OutputPipeline.depth` groups follows the
stages, and the pipeline takes a group only while it holds fewer than that many, counting those
in the stages and those in the buffer (credits), so a group that enters always finds room in
the buffer. ``i.ready`` is a flip-flop, and ``o.ready`` reaches only the buffer's read side and
the count. The buffer is Amaranth's ``SyncFIFO`` (a memory read asynchronously: distributed RAM
on the ECP5, flip-flops on the iCE40, whose engines do not use this pipeline). Latency
:attr:`OutputPipeline.latency` cycles from an input transfer to the output's ``valid``; one
group per cycle while the output is ready; while it is not, up to ``depth`` groups are taken.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from .. import timing
from ..config import EngineConfig
from .float32_requantizer import Float32Requantizer
from .multiplier import Multiplier

__all__ = ["OutputPipeline", "check_lanes"]

#: Bits of the requantisation multiplier (signed) and of the shift.
MULT_WIDTH = 16
SHIFT_WIDTH = 6
#: Width of the low, unsigned pieces ``v`` is split into for the multiplier (an 18x18 signed DSP
#: multiplier takes 17 unsigned bits as a non-negative 18-bit operand).
PIECE_WIDTH = 17


def _pieces(width: int) -> list[tuple[int, int]]:
    """``(offset, width)`` of the pieces of a ``width``-bit signed value: 17-bit unsigned ones
    from the bottom, then a signed top piece of at most 18 bits."""
    pieces, offset = [], 0
    while width - offset > PIECE_WIDTH + 1:
        pieces.append((offset, PIECE_WIDTH))
        offset += PIECE_WIDTH
    pieces.append((offset, width - offset))
    return pieces


def check_lanes(config: EngineConfig, lanes: object) -> int:
    """``lanes`` if it divides ``config.cols`` (``config.cols`` for ``None``); raises
    otherwise."""
    if lanes is None:
        return config.cols
    if not isinstance(lanes, int) or isinstance(lanes, bool):
        raise TypeError(f"lanes must be an integer, not {lanes!r}")
    if lanes < 1 or config.cols % lanes:
        raise ValueError(f"lanes must be a divisor of cols ({config.cols}), not {lanes!r}")
    return lanes


class OutputPipeline(wiring.Component):
    """Bias, requantisation and ReLU on ``lanes`` accumulator values per cycle.

    Parameters
    ----------
    config : EngineConfig
    lanes : int
        Values per group, a divisor of ``config.cols``.
    user_width : int
        Bits of a side-band field carried unchanged from input to output (0 for none).

    Attributes
    ----------
    i : In(stream.Signature(input_layout))
        ``data`` (``lanes`` x ``signed(acc_width)``), ``bias`` (``lanes`` x
        ``signed(acc_width)``), ``mult`` (``lanes`` x ``signed(16)``), ``shift`` (``lanes`` x
        ``unsigned(6)``), ``requantize``, ``relu``, ``user``.
    o : Out(stream.Signature(output_layout))
        ``data`` (``lanes`` x ``signed(8 * config.raw_bytes)``: a requantised result
        sign-extended), ``user``.
    """

    def __init__(self, config: EngineConfig, lanes: int | None = None, *,
                 user_width: int = 0) -> None:
        if not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig, not {config!r}")
        lanes = check_lanes(config, lanes)
        if not isinstance(user_width, int) or isinstance(user_width, bool):
            raise TypeError(f"user_width must be an integer, not {user_width!r}")
        if user_width < 0:
            raise ValueError(f"user_width must be a non-negative integer, not {user_width!r}")
        self._config = config
        self._lanes = lanes
        self._user_width = user_width
        super().__init__({
            "i": In(stream.Signature(self.input_layout)),
            "o": Out(stream.Signature(self.output_layout)),
        })

    @property
    def config(self) -> EngineConfig:
        return self._config

    @property
    def lanes(self) -> int:
        return self._lanes

    @property
    def user_width(self) -> int:
        return self._user_width

    @property
    def stages(self) -> int:
        """Register stages: :func:`convhw.timing.output_stages` (6, or with ``float_output``
        the bias add and the float32 requantiser's :data:`~convhw.timing.
        FLOAT32_REQUANTIZER_LATENCY`)."""
        return timing.output_stages(self._config)

    @property
    def depth(self) -> int:
        """Groups the pipeline holds at most, in its stages and its buffer:
        :func:`convhw.timing.output_credits` (``stages + 2``, the fewest that keep one group per
        cycle flowing)."""
        return timing.output_credits(self._config)

    @property
    def latency(self) -> int:
        """Cycles from an input transfer to ``o.valid``: the stages and the output buffer."""
        return self.stages + 1

    @property
    def result_width(self) -> int:
        """Bits of one result: the raw element's, ``8 * config.raw_bytes``."""
        return 8 * self._config.raw_bytes

    @property
    def product_width(self) -> int:
        """Bits of ``v * mult``: ``acc_width + 1 + 16``."""
        return self._config.acc_width + 1 + MULT_WIDTH

    @property
    def multipliers(self) -> list[tuple[int, int]]:
        """The multipliers of one lane, as ``(bits of the v piece, bits of mult)``; the pieces
        are unsigned but the top one, which is signed."""
        return [(width, MULT_WIDTH) for _, width in _pieces(self._config.acc_width + 1)]

    @property
    def input_layout(self) -> data.StructLayout:
        aw, n = self._config.acc_width, self._lanes
        fields = {
            "data": data.ArrayLayout(signed(aw), n),
            "bias": data.ArrayLayout(signed(aw), n),
            "mult": data.ArrayLayout(signed(MULT_WIDTH), n),
            "shift": data.ArrayLayout(unsigned(SHIFT_WIDTH), n),
            "requantize": 1,
            "relu": 1,
            "user": unsigned(self._user_width),
        }
        if self._config.float_output:
            fields.update({
                "f32_bias": data.ArrayLayout(unsigned(32), n),
                "f32_mult": data.ArrayLayout(unsigned(32), n),
                "output_zero": unsigned(8),
                "float": 1,
            })
        return data.StructLayout(fields)

    @property
    def output_layout(self) -> data.StructLayout:
        return data.StructLayout({
            "data": data.ArrayLayout(signed(self.result_width), self._lanes),
            "user": unsigned(self._user_width),
        })

    def elaborate(self, platform) -> Module:
        m = Module()
        config = self._config
        aw, w, rw = config.acc_width, config.input_width, self.result_width
        vw, pw = aw + 1, self.product_width
        pieces = _pieces(vw)
        stages = self.stages                      # the cycle model counts them
        floats = config.float_output

        depth = self.depth
        m.submodules.buffer = buffer = SyncFIFO(width=self.output_layout.size, depth=depth)
        m.d.comb += [self.o.valid.eq(buffer.r_rdy), self.o.payload.eq(buffer.r_data),
                     buffer.r_en.eq(self.o.ready)]
        # Credits: the groups taken and not yet delivered; ``room`` (``i.ready``) is registered.
        held = Signal(range(depth + 1))
        room = Signal(init=1)
        took = self.i.valid & room
        gave = self.o.valid & self.o.ready
        next_held = Signal.like(held)
        m.d.comb += [next_held.eq(held + took - gave), self.i.ready.eq(room)]
        m.d.sync += [held.eq(next_held), room.eq(next_held != depth)]

        valid = [Signal(name=f"valid{k}") for k in range(1, stages + 1)]
        m.d.sync += valid[0].eq(took)
        for k in range(1, stages):
            m.d.sync += valid[k].eq(valid[k - 1])

        def loads(k):
            """The load enable of stage ``k``'s registers (1 to ``stages``): what enters the
            stage is valid (an idle pipeline's registers rest, which Verilator's model of the
            engine runs measurably faster for). It comes from a flip-flop (stage 1's from the
            registered ``room`` and the input's ``valid``), never from the output's ``ready``."""
            return took if k == 1 else valid[k - 2]

        def stage(name, shape, value, k):
            """A register of stage ``k`` named ``name``, loaded with ``value``. Data, which the
            stage's valid bit qualifies, so not reset: with the float32 stage these are some
            8,000 flip-flops per 4x4 engine, and the reset's route across the die to them was
            once the ULX3S's critical path."""
            reg = Signal(shape, name=name, reset_less=True)
            with m.If(loads(k)):
                m.d.sync += reg.eq(value)
            return reg

        def carry(prefix, signals, k):
            return {n: stage(f"{prefix}_{n}", len(v), v, k) for n, v in signals.items()}

        i = self.i.payload
        flags = {"requantize": i.requantize, "relu": i.relu, "user": i.user}
        if floats:
            flags["float"] = i.float
        f = {0: flags}
        for k in range(1, stages + 1):
            f[k] = carry(f"s{k}", f[k - 1], k)
        if floats:
            # The float32 constants and the zero point enter the requantiser beside ``v``.
            zero1 = stage("output_zero1", 8, i.output_zero, 1)
        results = []
        for lane in range(self._lanes):
            # 1: bias add; the multiplier's inputs (raw: times 1, no shift)
            v = stage(f"v_{lane}", signed(vw), i.data[lane] + i.bias[lane], 1)
            mult = stage(f"mult_{lane}", signed(MULT_WIDTH),
                         Mux(i.requantize, i.mult[lane], 1), 1)
            shift1 = stage(f"shift1_{lane}", unsigned(SHIFT_WIDTH),
                           Mux(i.requantize, i.shift[lane], 0), 1)
            # 2: partial products (the multipliers' output registers: Multipliers whose product
            # register is on the ECP5 the DSP block's own, so that no path runs through a block
            # and back into the fabric's registers)
            partials = []
            for index, (offset, width) in enumerate(pieces):
                top = index == len(pieces) - 1
                piece = v[offset:offset + width]
                operand = piece.as_signed() if top else piece
                multiplier = Multiplier(PIECE_WIDTH + 1, MULT_WIDTH, registered_inputs=False,
                                        enable=True)
                m.submodules[f"multiplier{index}_{lane}"] = multiplier
                m.d.comb += [multiplier.a.eq(operand), multiplier.b.eq(mult),
                             multiplier.en.eq(loads(2))]
                shape = signed(width + MULT_WIDTH + (0 if top else 1))
                partials.append((offset, multiplier.p[:shape.width].as_signed()))
            shift2 = stage(f"shift2_{lane}", unsigned(SHIFT_WIDTH), shift1, 2)
            # 3: the product
            total = partials[0][1]
            for offset, partial in partials[1:]:
                total = total + (partial << offset)
            product = stage(f"p_{lane}", signed(pw), total, 3)
            shift3 = stage(f"shift3_{lane}", unsigned(SHIFT_WIDTH), shift2, 3)
            # 4, 5: 2p >> shift, in two steps (by the multiple of 8, then by the rest)
            doubled = Cat(Const(0, 1), product).as_signed()
            coarse = stage(f"coarse_{lane}", signed(pw + 1),
                           doubled >> Cat(Const(0, 3), shift3[3:]), 4)
            shift4 = stage(f"shift4_{lane}", unsigned(3), shift3[:3], 4)
            t = stage(f"t_{lane}", signed(pw + 1), coarse >> shift4, 5)
            # 6: round half up, saturate (requantised) or wrap (raw), ReLU
            q, rounding = t[1:].as_signed(), t[0]
            top = q[w - 1:]
            fits = (top == 0) | (top == (1 << len(top)) - 1)
            low, high = config.result_range
            narrow = q[:w].as_signed()
            saturated = Mux(fits, Mux(narrow == high, high, narrow + rounding),
                            Mux(q < 0, low, high))
            value = Mux(f[5]["requantize"], saturated, q[:rw].as_signed())
            value_w = Signal(signed(rw), name=f"value_{lane}")
            m.d.comb += value_w.eq(value)
            result = stage(f"result_{lane}", signed(rw),
                           Mux(f[5]["relu"] & value_w[-1], 0, value_w), 6)
            if floats:
                # The integer result waits for the float one (stages 7 .. stages), which the
                # requantiser computes from v, the sum wrapped to int32.
                for k in range(7, stages + 1):
                    result = stage(f"result{k}_{lane}", signed(rw), result, k)
                requantizer = Float32Requantizer()
                m.submodules[f"float_{lane}"] = requantizer
                m.d.comb += [
                    requantizer.valid.eq(valid[0]),
                    requantizer.acc.eq(v[:32]),
                    requantizer.bias.eq(stage(f"f32_bias_{lane}", 32, i.f32_bias[lane], 1)),
                    requantizer.multiplier.eq(stage(f"f32_mult_{lane}", 32, i.f32_mult[lane],
                                                    1)),
                    requantizer.zero_point.eq(zero1),
                    requantizer.relu.eq(f[1]["relu"]),
                ]
                result = Mux(f[stages]["float"], requantizer.result, result)
            results.append(result)

        last = Signal(self.output_layout)
        m.d.comb += [last.user.eq(f[stages]["user"]), buffer.w_en.eq(valid[-1]),
                     buffer.w_data.eq(last)]
        for lane, result in enumerate(results):
            m.d.comb += last.data[lane].eq(result)
        return m
