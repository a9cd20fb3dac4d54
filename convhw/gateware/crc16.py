"""CRC-16/CCITT-FALSE, one byte per cycle, as an Amaranth expression.

The serial bridge (:mod:`convhw.gateware.serial_bridge`) checks every request and protects every
response with the CRC of :mod:`convhw.serial_protocol` (polynomial 0x1021, initial value 0xFFFF,
no reflection, no final XOR). The bytes arrive far apart (a UART byte takes tens of cycles), but
the bridge still wants the whole byte folded in within the cycle that delivers it, so that no
state machine has to wait for a bit-serial CRC to catch up.

:func:`crc16_next` therefore unrolls the eight shift-and-XOR steps of
:func:`convhw.serial_protocol.crc16_update`. It runs that very algorithm once, at elaboration
time, on *symbols* instead of bits: each bit of the running value is the set of input bits
(of ``crc`` and ``byte``) whose exclusive-or it equals, and XOR-ing two such bits is the
symmetric difference of their sets, so terms that appear twice cancel. The result is one flat
XOR of two to seven of the 24 input bits per output bit: what a synthesiser would have to
reduce the chain of eight conditional XORs to, given to it directly.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Value

__all__ = ["CRC16_INIT", "CRC16_POLYNOMIAL", "crc16_next"]

#: The generator polynomial without its x**16 term.
CRC16_POLYNOMIAL = 0x1021
#: The register's value before the first byte.
CRC16_INIT = 0xFFFF


def _cast(name: str, value, width: int) -> Value:
    try:
        value = Value.cast(value)
    except TypeError:
        raise TypeError(f"{name} must be a value-castable object of {width} bits, "
                        f"not {value!r}") from None
    if len(value) != width:
        raise ValueError(f"{name} must be {width} bits wide, not {len(value)}")
    return value


def crc16_next(crc, byte) -> Value:
    """The CRC-16/CCITT-FALSE register after ``byte`` has been shifted into ``crc``.

    Parameters
    ----------
    crc : value-castable, 16 bits
        The register before the byte (:data:`CRC16_INIT` before a frame's first byte).
    byte : value-castable, 8 bits
        The next byte of the frame.

    Returns
    -------
    Value
        16 bits, combinational: ``crc16_update(crc, byte)`` of :mod:`convhw.serial_protocol`.

    Raises
    ------
    TypeError
        If ``crc`` or ``byte`` is not value-castable.
    ValueError
        If ``crc`` is not 16 bits or ``byte`` not 8 bits wide.
    """
    crc = _cast("crc", crc, 16)
    byte = _cast("byte", byte, 8)
    # Symbols 0..15 are the bits of crc, 16..23 those of byte.
    inputs = [*crc, *byte]
    state = [frozenset({bit}) for bit in range(16)]
    # crc ^= byte << 8
    for bit in range(8):
        state[8 + bit] ^= {16 + bit}
    # eight times: crc = (crc << 1) ^ (POLYNOMIAL if the bit shifted out is set)
    for _ in range(8):
        carry = state[15]
        state = [frozenset(), *state[:15]]
        for bit in range(16):
            if CRC16_POLYNOMIAL >> bit & 1:
                state[bit] ^= carry
    return Cat(*(Cat(*(inputs[symbol] for symbol in sorted(terms))).xor()
                 for terms in state))
