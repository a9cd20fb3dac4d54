"""IEEE-754 single precision in integer logic: the operations of torch's quantised output
processing (:mod:`convhw.quantized_golden`), each rounded to nearest, ties to even, exactly as
a CPU's float32 arithmetic rounds them.

Functions here build the logic of one operation in a module (``m``) and return a ``Signal`` of
the result: combinational, or, given a ``stage`` (:func:`registers`), with :data:`STAGES`
register stages inside (so that the requantiser clocks as fast as the engine);
:class:`~convhw.gateware.float32_requantizer.Float32Requantizer` chains them.

A float is its 32-bit pattern (sign, 8-bit exponent, 23-bit fraction). Operands are finite (the
requantiser's are: an int32 converted, and constants the host checked); a result too large for a
float is infinity, and a result below the smallest normal is subnormal or zero, as IEEE says (no
flush to zero: x86's SSE arithmetic, which fbgemm uses, does not flush by default).

Every rounding keeps three extra bits below the kept ones, guard, round and sticky (the OR of all
lower bits), and rounds up when the guard bit is set and either the sticky bits or the kept
value's lowest bit are: the value is then the nearest float, ties to the even one.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value

from .. import timing
from .multiplier import Multiplier

__all__ = ["STAGES", "float_add", "float_multiply", "int_to_float", "leading_zeros",
           "registers", "round_to_int", "shift_right_sticky"]

_FRACTION = 23
_BIAS = 127
_EXP_MAX = 255


def leading_zeros(m: Module, value, name: str) -> Signal:
    """The number of zero bits above the highest one of ``value`` (its width if it is 0): a
    tree of halves, ``log2(width)`` levels of 2-way choices (a chain of priority choices was
    the requantiser's longest path)."""
    width = len(value)
    size = 1 << max(0, (width - 1).bit_length())
    padded = Cat(Const(0, size - width), value) if size > width else value   # zeros below

    def count(bits):
        """(all zero, leading zeros below len(bits)) of a power-of-two wide slice."""
        if len(bits) == 1:
            return ~bits[0], Cat()                  # (no bits: a 1-bit slice's count is 0)
        half = len(bits) // 2
        high_zero, high_count = count(bits[half:])
        low_zero, low_count = count(bits[:half])
        # All zero above: half + the lower count, else the upper count (k - 1 bits each).
        return (high_zero & low_zero,
                Mux(high_zero, Cat(low_count, Const(1, 1)), Cat(high_count, Const(0, 1))))

    zero, leading = count(padded)
    result = Signal(range(width + 1), name=name)
    m.d.comb += result.eq(Mux(zero, width, leading))
    return result


def shift_right_sticky(m: Module, value, amount, name: str) -> Signal:
    """``value >> amount`` with its lowest bit ORed with every bit shifted out (the sticky
    bit); an amount past the width leaves only the sticky bit."""
    width = len(value)
    result = Signal(width, name=name)
    shifted = value >> amount
    lost = Signal(name=f"{name}_lost")
    # The bits below `amount`: the complement of all ones shifted left (no carry chain).
    kept = (Const((1 << width) - 1, width) << amount)[:width]
    m.d.comb += lost.eq((value & ~kept) != 0)
    with m.If(amount >= width):
        m.d.comb += result.eq(value != 0)
    with m.Else():
        m.d.comb += result.eq(shifted | lost)
    return result


def _round_pack(m: Module, sign, exponent, mantissa, name: str) -> Signal:
    """Packs a result: ``mantissa`` (24 kept bits, hidden bit at 23, then guard, round and
    sticky below: 27 bits) with the biased ``exponent`` (signed, at least 1: a subnormal has
    exponent 1 and its hidden bit clear), rounded to nearest, ties to even."""
    kept = mantissa[3:27]
    guard = mantissa[2]
    sticky = mantissa[1] | mantissa[0]
    up = guard & (sticky | kept[0])
    rounded = Signal(25, name=f"{name}_rounded")
    m.d.comb += rounded.eq(kept + up)
    frac = Signal(23, name=f"{name}_frac")
    field = Signal(8, name=f"{name}_field")
    result = Signal(32, name=name)
    carry = rounded[24]                       # carried out of the mantissa: one more exponent
    # The exponent's two candidates and their overflow tests are computed beside the
    # increment, not after it: only a choice waits for the carry.
    overflow = Mux(carry, exponent >= _EXP_MAX - 1, exponent >= _EXP_MAX)
    m.d.comb += frac.eq(Mux(carry, rounded[1:24], rounded[:23]))
    hidden = carry | rounded[23]
    with m.If(overflow):
        m.d.comb += result.eq(Cat(Const(0, 23), Const(_EXP_MAX, 8), sign))       # infinity
    with m.Else():
        m.d.comb += field.eq(Mux(hidden, Mux(carry, exponent + 1, exponent)[:8], 0))
        m.d.comb += result.eq(Cat(frac, field, sign))
    return result


def _unpack(m: Module, bits, name: str):
    """(sign, effective exponent 1..254, 24-bit mantissa with its hidden bit) of a finite
    float; a zero has mantissa 0."""
    exp_field = bits[23:31]
    mantissa = Signal(24, name=f"{name}_mant")
    exponent = Signal(8, name=f"{name}_exp")
    m.d.comb += [mantissa.eq(Cat(bits[:23], exp_field != 0)),
                 exponent.eq(Mux(exp_field == 0, 1, exp_field))]
    return bits[31], exponent, mantissa


def registers(m: Module, name: str):
    """A ``stage`` for the operations below: each call registers the values it is given (one
    clock in the ``sync`` domain) and returns the registers, in order. They are data, which
    a valid bit beside them qualifies: not reset (on an FPGA a reset reaching thousands of
    flip-flops is a net across the whole die)."""
    calls = [0]

    def stage(*values):
        calls[0] += 1
        regs = []
        for index, value in enumerate(values):
            reg = Signal.like(Value.cast(value), name=f"{name}_s{calls[0]}_{index}",
                              reset_less=True)
            m.d.sync += reg.eq(value)
            regs.append(reg)
        return tuple(regs)

    return stage


def _combinational(*values):
    return values


#: Register stages each operation puts inside itself when given a ``stage`` (its result is
#: then that many cycles after its operands, plus any register the caller puts after it); data
#: in :mod:`convhw.timing`, which the cycle model reads too.
STAGES = timing.FLOAT32_STAGES


def int_to_float(m: Module, value, name: str = "i2f", stage=None) -> Signal:
    """The float nearest ``value`` (a signed 32-bit integer)."""
    stage = stage or _combinational
    sign = value[31]
    magnitude = Signal(32, name=f"{name}_mag")
    m.d.comb += magnitude.eq(Mux(sign, -value, value))
    sign, magnitude = stage(sign, magnitude)
    zeros = leading_zeros(m, magnitude, f"{name}_lz")
    sign, magnitude, zeros = stage(sign, magnitude, zeros)       # (the count, then the shift)
    normal = Signal(32, name=f"{name}_norm")
    m.d.comb += normal.eq((magnitude << zeros)[:32])
    exponent = Signal(range(-64, 512), name=f"{name}_e")
    m.d.comb += exponent.eq(_BIAS + 31 - zeros)
    sign, normal, exponent, zero = stage(sign, normal, exponent, magnitude == 0)
    # Bit 31 of `normal` is the hidden bit; 24 kept, then guard, round, sticky.
    mantissa = Cat(normal[:6].any(), normal[6], normal[7], normal[8:32])
    packed = _round_pack(m, sign, exponent, mantissa, name)
    result = Signal(32, name=f"{name}_out")
    m.d.comb += result.eq(Mux(zero, 0, packed))
    return result


def float_add(m: Module, a, b, name: str = "fadd", stage=None) -> Signal:
    """``a + b`` of two finite floats, rounded to nearest even."""
    stage = stage or _combinational
    sa, ea, ma = _unpack(m, a, f"{name}_a")
    sb, eb, mb = _unpack(m, b, f"{name}_b")
    # The larger magnitude first.
    swap = Signal(name=f"{name}_swap")
    m.d.comb += swap.eq(Cat(mb, eb) > Cat(ma, ea))
    big_s, big_e, big_m = (Mux(swap, sb, sa), Mux(swap, eb, ea), Mux(swap, mb, ma))
    small_m = Mux(swap, ma, mb)
    distance = Signal(8, name=f"{name}_d")
    m.d.comb += distance.eq(Mux(swap, eb - ea, ea - eb))
    subtract, negative_zero = sa ^ sb, sa & sb
    big_s, big_e, big_m, small_m, distance, subtract, negative_zero = stage(
        big_s, big_e, big_m, small_m, distance, subtract, negative_zero)
    big = Cat(Const(0, 3), big_m)                                    # 27 bits: m, g, r, s
    small = shift_right_sticky(m, Cat(Const(0, 3), small_m), distance, f"{name}_aligned")
    total = Signal(28, name=f"{name}_sum")
    m.d.comb += total.eq(Mux(subtract, big - small, big + small))
    total, big_s, big_e, negative_zero = stage(total, big_s, big_e, negative_zero)
    # Cancellation: shift left to put the hidden bit at 26, but not below exponent 1 (then the
    # result is subnormal). A left shift of more than one place only happens when the
    # operands were at most one place apart, with no sticky bits yet. (The count, then the
    # shift.)
    zeros = leading_zeros(m, total[:27], f"{name}_lz")
    shift = Signal(8, name=f"{name}_shift")
    m.d.comb += shift.eq(Mux(zeros < big_e, zeros, big_e - 1))
    total, big_s, big_e, negative_zero, shift = stage(total, big_s, big_e, negative_zero, shift)
    zero = total == 0
    exponent = Signal(range(-64, 512), name=f"{name}_e")
    mantissa = Signal(27, name=f"{name}_m")
    with m.If(total[27]):                     # a carry: one place right, the lost bit sticky
        m.d.comb += [mantissa.eq(Cat(total[1] | total[0], total[2:28])),
                     exponent.eq(big_e + 1)]
    with m.Else():
        m.d.comb += [mantissa.eq((total[:27] << shift)[:27]),
                     exponent.eq(big_e - shift)]
    mantissa, exponent, big_s, zero, negative_zero = stage(
        mantissa, exponent, big_s, zero, negative_zero)
    packed = _round_pack(m, big_s, exponent, mantissa, name)
    result = Signal(32, name=f"{name}_out")
    with m.If(zero):
        # An exact zero: +0, but -0 for (-0) + (-0).
        m.d.comb += result.eq(Cat(Const(0, 31), negative_zero))
    with m.Else():
        m.d.comb += result.eq(packed)
    return result


def float_multiply(m: Module, a, b, name: str = "fmul", stage=None) -> Signal:
    """``a * b`` of two finite floats, rounded to nearest even."""
    stage = stage or _combinational
    sa, ea, ma = _unpack(m, a, f"{name}_a")
    sb, eb, mb = _unpack(m, b, f"{name}_b")
    exponents = Signal(9, name=f"{name}_esum")
    m.d.comb += exponents.eq(ea + eb)
    ma, mb, exponents, sign = stage(ma, mb, exponents, sa ^ sb)
    product = Signal(48, name=f"{name}_p")
    if stage is _combinational:
        m.d.comb += product.eq(ma * mb)
    else:
        # Pipelined: four partial products of 17-bit and 7-bit pieces, each a registered
        # Multiplier (on the ECP5 a MULT18X18D with its own output register), then their sum.
        # Yosys maps a 24x24 multiply onto four blocks but leaves the sum's adders behind the
        # blocks' outputs in the same clock: on the ULX3S that path (block, routing, two carry
        # chains) was 16.5 ns, the critical path at 60 MHz.
        pieces = [(ma[:17], mb[:17], 0), (ma[:17], mb[17:], 17), (ma[17:], mb[:17], 17),
                  (ma[17:], mb[17:], 34)]
        partials = []
        for index, (x, y, shift) in enumerate(pieces):
            multiplier = Multiplier(18, 18, registered_inputs=False)
            m.submodules[f"{name}_partial{index}"] = multiplier
            m.d.comb += [multiplier.a.eq(x.as_unsigned()), multiplier.b.eq(y.as_unsigned())]
            partials.append(multiplier.p[:len(x) + len(y)] << shift)
        exponents, sign = stage(exponents, sign)
        m.d.comb += product.eq(partials[0] + (partials[1] + partials[2]) + partials[3])
    product, exponents, sign = stage(product, exponents, sign)
    zeros = leading_zeros(m, product, f"{name}_lz")
    product, exponents, sign, zeros = stage(product, exponents, sign, zeros)
    normal = Signal(48, name=f"{name}_norm")
    m.d.comb += normal.eq((product << zeros)[:48])
    # normal's bit 47 is the hidden bit of a result with exponent ea + eb - 126 - zeros.
    exponent = Signal(range(-512, 512), name=f"{name}_e")
    m.d.comb += exponent.eq(exponents - (_BIAS - 1) - zeros)
    # 24 kept bits, then 24 below them folded into guard, round, sticky; a subnormal result
    # (exponent below 1) shifts further right first, to exponent 1 (the amount here, the
    # shift in the next stage).
    under = Signal(range(512), name=f"{name}_under")
    m.d.comb += under.eq(Mux(exponent < 1, 1 - exponent, 0))
    normal, exponent, under, sign, zero = stage(normal, Mux(exponent < 1, 1, exponent), under,
                                                sign, product == 0)
    wide = Cat(normal[:21].any(), normal[21:48])                     # 28 bits: m(24) g r s
    shifted = shift_right_sticky(m, wide, under, f"{name}_sub")
    mantissa = Cat(shifted[1] | shifted[0], shifted[2:28])           # back to 27 bits
    mantissa, exponent, sign, zero = stage(mantissa, exponent, sign, zero)
    packed = _round_pack(m, sign, exponent, mantissa, name)
    result = Signal(32, name=f"{name}_out")
    m.d.comb += result.eq(Mux(zero, Cat(Const(0, 31), sign), packed))
    return result


def round_to_int(m: Module, bits, name: str = "f2i", stage=None
                 ) -> tuple[Signal, Signal, Signal]:
    """A finite or infinite float rounded to the nearest integer, ties to even, as
    ``(magnitude, negative, saturated)``: ``magnitude`` 33 bits, ``negative`` the float's sign,
    ``saturated`` set (``magnitude`` then meaningless) when the magnitude is 2**32 or more.
    (Sign and magnitude, not a signed value: the requantiser adds the zero point with one
    adder per sign instead of a negation and an adder in series.)"""
    stage = stage or _combinational
    sign = bits[31]
    exp_field = bits[23:31]
    mantissa = Cat(bits[:23], exp_field != 0)
    exponent = Mux(exp_field == 0, 1, exp_field)
    big = Signal(name=f"{name}_big")
    # mantissa * 2**(exponent - 150): at least 2**32 once exponent - 150 >= 9.
    m.d.comb += big.eq(exp_field >= 150 + 9)
    # The shift's direction and amount, then the shift (two stages).
    to_left = Signal(name=f"{name}_to_left")
    left = Signal(4, name=f"{name}_left")           # (beyond 8, `big` and the value unused)
    right = Signal(8, name=f"{name}_right")         # 1 to 149
    m.d.comb += [to_left.eq(exp_field >= 150), left.eq(Mux(big, 0, exp_field - 150)),
                 right.eq(150 - exponent)]
    mantissa, sign, big, to_left, left, right = stage(mantissa, sign, big, to_left, left, right)
    # Shifted into place, with a guard and a sticky bit (both 0 for a left shift).
    aligned = Signal(35, name=f"{name}_aligned")
    with m.If(to_left):
        m.d.comb += aligned.eq(Cat(Const(0, 2), (mantissa << left)[:33]))
    with m.Else():
        wide = Cat(Const(0, 2), mantissa)                              # 26 bits: m, g, s
        m.d.comb += aligned.eq(shift_right_sticky(m, wide, right, f"{name}_shift"))
    aligned, sign, big = stage(aligned, sign, big)
    kept, guard, sticky = aligned[2:35], aligned[1], aligned[0]
    magnitude = Signal(33, name=f"{name}_mag")
    m.d.comb += magnitude.eq(kept + (guard & (sticky | kept[0])))
    return stage(magnitude, sign, big)
