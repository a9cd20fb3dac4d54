"""IEEE-754 single precision in integer logic: the operations of torch's quantised output
processing (:mod:`convhw.quantized_golden`), each rounded to nearest, ties to even, exactly as
a CPU's float32 arithmetic rounds them.

Functions here build combinational logic in a module (``m``) and return a ``Signal`` of the
result; :class:`~convhw.gateware.float32_requantizer.Float32Requantizer` puts registers between
them. A float is its 32-bit pattern (sign, 8-bit exponent, 23-bit fraction). Operands are finite
(the requantiser's are: an int32 converted, and constants the host checked); a result too large
for a float is infinity, and a result below the smallest normal is subnormal or zero, as IEEE
says (no flush to zero: x86's SSE arithmetic, which fbgemm uses, does not flush by default).

Every rounding keeps three extra bits below the kept ones, guard, round and sticky (the OR of all
lower bits), and rounds up when the guard bit is set and either the sticky bits or the kept
value's lowest bit are: the value is then the nearest float, ties to the even one.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, unsigned

__all__ = ["float_add", "float_multiply", "int_to_float", "leading_zeros", "round_to_int",
           "shift_right_sticky"]

_FRACTION = 23
_BIAS = 127
_EXP_MAX = 255


def leading_zeros(m: Module, value, name: str) -> Signal:
    """The number of zero bits above the highest one of ``value`` (its width if it is 0)."""
    width = len(value)
    count = Signal(range(width + 1), name=name)
    m.d.comb += count.eq(width)
    for bit in range(width):          # the highest set bit assigns last
        with m.If(value[bit]):
            m.d.comb += count.eq(width - 1 - bit)
    return count


def shift_right_sticky(m: Module, value, amount, name: str) -> Signal:
    """``value >> amount`` with its lowest bit ORed with every bit shifted out (the sticky
    bit); an amount past the width leaves only the sticky bit."""
    width = len(value)
    result = Signal(width, name=name)
    shifted = value >> amount
    lost = Signal(name=f"{name}_lost")
    mask = (Const(1, width + 1) << amount)[:width + 1] - 1
    m.d.comb += lost.eq((value & mask[:width]) != 0)
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
    final_exp = Signal(range(-1024, 1024), name=f"{name}_exp")
    frac = Signal(23, name=f"{name}_frac")
    field = Signal(8, name=f"{name}_field")
    result = Signal(32, name=name)
    with m.If(rounded[24]):                   # carried out of the mantissa: one more exponent
        m.d.comb += [final_exp.eq(exponent + 1), frac.eq(rounded[1:24])]
    with m.Else():
        m.d.comb += [final_exp.eq(exponent), frac.eq(rounded[:23])]
    hidden = rounded[24] | rounded[23]
    with m.If(final_exp >= _EXP_MAX):
        m.d.comb += result.eq(Cat(Const(0, 23), Const(_EXP_MAX, 8), sign))       # infinity
    with m.Else():
        m.d.comb += field.eq(Mux(hidden, final_exp[:8], 0))
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


def int_to_float(m: Module, value, name: str = "i2f") -> Signal:
    """The float nearest ``value`` (a signed 32-bit integer)."""
    sign = value[31]
    magnitude = Signal(32, name=f"{name}_mag")
    m.d.comb += magnitude.eq(Mux(sign, -value, value))
    zeros = leading_zeros(m, magnitude, f"{name}_lz")
    normal = Signal(32, name=f"{name}_norm")
    m.d.comb += normal.eq((magnitude << zeros)[:32])
    # Bit 31 of `normal` is the hidden bit; 24 kept, then guard, round, sticky.
    mantissa = Cat(normal[:6].any(), normal[6], normal[7], normal[8:32])
    exponent = Signal(range(-64, 512), name=f"{name}_e")
    m.d.comb += exponent.eq(_BIAS + 31 - zeros)
    packed = _round_pack(m, sign, exponent, mantissa, name)
    result = Signal(32, name=f"{name}_out")
    m.d.comb += result.eq(Mux(magnitude == 0, 0, packed))
    return result


def float_add(m: Module, a, b, name: str = "fadd") -> Signal:
    """``a + b`` of two finite floats, rounded to nearest even."""
    sa, ea, ma = _unpack(m, a, f"{name}_a")
    sb, eb, mb = _unpack(m, b, f"{name}_b")
    # The larger magnitude first.
    swap = Signal(name=f"{name}_swap")
    m.d.comb += swap.eq(Cat(mb, eb) > Cat(ma, ea))
    big_s, big_e, big_m = (Mux(swap, sb, sa), Mux(swap, eb, ea), Mux(swap, mb, ma))
    small_s, small_e, small_m = (Mux(swap, sa, sb), Mux(swap, ea, eb), Mux(swap, ma, mb))
    distance = Signal(8, name=f"{name}_d")
    m.d.comb += distance.eq(big_e - small_e)
    big = Cat(Const(0, 3), big_m)                                    # 27 bits: m, g, r, s
    small = shift_right_sticky(m, Cat(Const(0, 3), small_m), distance, f"{name}_aligned")
    total = Signal(28, name=f"{name}_sum")
    subtract = big_s ^ small_s
    m.d.comb += total.eq(Mux(subtract, big - small, big + small))
    exponent = Signal(range(-64, 512), name=f"{name}_e")
    mantissa = Signal(27, name=f"{name}_m")
    with m.If(total[27]):                     # a carry: one place right, the lost bit sticky
        m.d.comb += [mantissa.eq(Cat(total[1] | total[0], total[2:28])),
                     exponent.eq(big_e + 1)]
    with m.Else():
        # Cancellation: shift left to put the hidden bit at 26, but not below exponent 1
        # (then the result is subnormal). A left shift of more than one place only happens
        # when the operands were at most one place apart, with no sticky bits yet.
        zeros = leading_zeros(m, total[:27], f"{name}_lz")
        shift = Signal(8, name=f"{name}_shift")
        m.d.comb += shift.eq(Mux(zeros < big_e, zeros, big_e - 1))
        m.d.comb += [mantissa.eq((total[:27] << shift)[:27]),
                     exponent.eq(big_e - shift)]
    packed = _round_pack(m, big_s, exponent, mantissa, name)
    result = Signal(32, name=f"{name}_out")
    with m.If(total == 0):
        # An exact zero: +0, but -0 for (-0) + (-0).
        m.d.comb += result.eq(Cat(Const(0, 31), sa & sb))
    with m.Else():
        m.d.comb += result.eq(packed)
    return result


def float_multiply(m: Module, a, b, name: str = "fmul") -> Signal:
    """``a * b`` of two finite floats, rounded to nearest even."""
    sa, ea, ma = _unpack(m, a, f"{name}_a")
    sb, eb, mb = _unpack(m, b, f"{name}_b")
    sign = sa ^ sb
    product = Signal(48, name=f"{name}_p")
    m.d.comb += product.eq(ma * mb)
    zeros = leading_zeros(m, product, f"{name}_lz")
    normal = Signal(48, name=f"{name}_norm")
    m.d.comb += normal.eq((product << zeros)[:48])
    # normal's bit 47 is the hidden bit of a result with exponent ea + eb - 126 - zeros.
    exponent = Signal(range(-512, 512), name=f"{name}_e")
    m.d.comb += exponent.eq(ea + eb - (_BIAS - 1) - zeros)
    # 24 kept bits, then 24 below them folded into guard, round, sticky; a subnormal result
    # (exponent below 1) shifts further right first, to exponent 1.
    under = Signal(range(512), name=f"{name}_under")
    m.d.comb += under.eq(Mux(exponent < 1, 1 - exponent, 0))
    wide = Cat(normal[:21].any(), normal[21:48])                     # 28 bits: m(24) g r s
    shifted = shift_right_sticky(m, wide, under, f"{name}_sub")
    mantissa = Cat(shifted[1] | shifted[0], shifted[2:28])           # back to 27 bits
    packed = _round_pack(m, sign, Mux(exponent < 1, 1, exponent), mantissa, name)
    result = Signal(32, name=f"{name}_out")
    m.d.comb += result.eq(Mux(product == 0, Cat(Const(0, 31), sign), packed))
    return result


def round_to_int(m: Module, bits, name: str = "f2i") -> tuple[Signal, Signal]:
    """A finite or infinite float rounded to the nearest integer, ties to even:
    ``(value, saturated)``, ``value`` a signed 34-bit integer, ``saturated`` set (and ``value``
    then meaningless but for its sign) when the magnitude is 2**32 or more."""
    sign = bits[31]
    exp_field = bits[23:31]
    mantissa = Cat(bits[:23], exp_field != 0)
    exponent = Mux(exp_field == 0, 1, exp_field)
    big = Signal(name=f"{name}_big")
    # mantissa * 2**(exponent - 150): at least 2**32 once exponent - 150 >= 9.
    m.d.comb += big.eq(exp_field >= 150 + 9)
    magnitude = Signal(33, name=f"{name}_mag")
    with m.If(exp_field >= 150):
        left = Signal(4, name=f"{name}_left")       # (beyond 8, `big` and the value unused)
        m.d.comb += left.eq(Mux(big, 0, exp_field - 150))
        m.d.comb += magnitude.eq((mantissa << left)[:33])
    with m.Else():
        # Right by 150 - exponent (1 to 149), keeping guard and sticky.
        amount = Signal(8, name=f"{name}_amount")
        m.d.comb += amount.eq(150 - exponent)
        wide = Cat(Const(0, 2), mantissa)                              # 26 bits: m, g, s
        shifted = shift_right_sticky(m, wide, amount, f"{name}_shift")
        kept = shifted[2:26]
        guard = shifted[1]
        sticky = shifted[0]
        m.d.comb += magnitude.eq(kept + (guard & (sticky | kept[0])))
    value = Signal(unsigned(34), name=f"{name}_value")
    m.d.comb += value.eq(Mux(sign, -magnitude, magnitude))
    return value.as_signed(), big
