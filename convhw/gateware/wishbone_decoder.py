"""``WishboneDecoder``: one Wishbone B4 classic master to several slaves by address window.

Our own, small decoder rather than ``amaranth_soc.wishbone.Decoder``: amaranth-soc is not on
PyPI and not installed here (the project does not depend on it), and the serial tops need only
a fixed map of a few windows on a 32-bit classic bus, with ``ERR`` for everything unmapped.

Decoding
--------
* Each window is ``(base, size)`` in bytes. Its slave port has the word-address width
  ``k = ceil(log2(size / 4))``, and ``base`` must be a multiple of ``4 * 2**k``: the slave sees
  the low ``k`` bits of the master's word address, never an adder. Windows must not overlap.
* An access hits a window when its word address is in ``[base / 4, (base + size) / 4)``. A hit
  passes ``CYC`` and ``STB`` to that window's slave only (the others see both low), with ``WE``,
  ``ADR``, ``DAT_W`` and ``SEL`` unchanged; the slave's ``ACK``, ``ERR`` and ``DAT_R`` come back
  combinationally, gated with the hit. A slave must gate its answers with its own
  ``CYC & STB`` (every slave in this package does), so a slave that was not addressed never
  answers.
* An access that hits no window is answered with ``ERR`` in the cycle after it is presented
  (and not again while the master holds it for that cycle).
* The decoder adds no cycle and holds no state but the ``ERR`` of an unmapped access.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from ..config import BUS_DATA_WIDTH
from .wishbone import WishboneSignature

__all__ = ["WishboneDecoder"]


def _word_bits(size: int) -> int:
    """Word-address bits of a window of ``size`` bytes (at least 1)."""
    return max(1, (size // 4 - 1).bit_length())


class WishboneDecoder(wiring.Component):
    """See the module documentation.

    Parameters
    ----------
    addr_width : int
        Word-address width of the master's bus.
    windows : dict of str to (int, int)
        Window name to ``(base, size)`` in bytes: ``size`` a positive multiple of 4, ``base`` a
        multiple of ``4 * 2**ceil(log2(size / 4))``, the window inside the master's address
        space and not overlapping another.

    Attributes
    ----------
    bus : In(WishboneSignature(addr_width))
        From the master.
    targets : Out(Signature({name: Out(WishboneSignature(k)), ...}))
        One port per window, by name, ``k`` the window's word-address width.

    Raises
    ------
    TypeError
        If ``addr_width`` is not an integer or ``windows`` not a dict of pairs of integers.
    ValueError
        If a window is empty, misaligned, outside the address space or overlaps another.
    """

    def __init__(self, addr_width: int, windows: dict[str, tuple[int, int]]) -> None:
        if not isinstance(addr_width, int) or isinstance(addr_width, bool) or addr_width < 1:
            raise TypeError(f"addr_width must be a positive integer, not {addr_width!r}")
        if not isinstance(windows, dict) or not windows:
            raise TypeError(f"windows must be a non-empty dict of name to (base, size), not "
                            f"{windows!r}")
        checked = {}
        for name, window in windows.items():
            if (not isinstance(window, tuple) or len(window) != 2
                    or not all(isinstance(v, int) and not isinstance(v, bool) for v in window)):
                raise TypeError(f"window {name!r} must be a pair of integers (base, size), not "
                                f"{window!r}")
            base, size = window
            if size < 4 or size % 4:
                raise ValueError(f"window {name!r}: size must be a positive multiple of 4, not "
                                 f"{size}")
            span = 4 << _word_bits(size)
            if base < 0 or base % span:
                raise ValueError(f"window {name!r}: base must be a multiple of {span:#x}, not "
                                 f"{base:#x}")
            if base + size > 4 << addr_width:
                raise ValueError(f"window {name!r} ends at {base + size:#x}, beyond the bus's "
                                 f"{4 << addr_width:#x} bytes")
            for other, (other_base, other_size) in checked.items():
                if base < other_base + other_size and other_base < base + size:
                    raise ValueError(f"windows {other!r} and {name!r} overlap")
            checked[name] = (base, size)
        self._addr_width = addr_width
        self._windows = checked
        super().__init__({
            "bus": In(WishboneSignature(addr_width)),
            "targets": Out(wiring.Signature({
                name: Out(WishboneSignature(_word_bits(size)))
                for name, (_, size) in checked.items()})),
        })

    @property
    def addr_width(self) -> int:
        return self._addr_width

    @property
    def windows(self) -> dict[str, tuple[int, int]]:
        return dict(self._windows)

    def elaborate(self, platform) -> Module:
        m = Module()
        bus = self.bus
        hits = []
        ack = err = 0
        dat_r = 0
        for name, (base, size) in self._windows.items():
            target = getattr(self.targets, name)
            k = _word_bits(size)
            hit = Signal(name=f"{name}_hit")
            first, end = base // 4, (base + size) // 4
            condition = (bus.adr >> k) == (first >> k)
            if end - first < 1 << k:
                condition &= bus.adr[:k] < end - first
            m.d.comb += [
                hit.eq(condition),
                target.cyc.eq(bus.cyc & hit),
                target.stb.eq(bus.stb & hit),
                target.we.eq(bus.we),
                target.adr.eq(bus.adr[:k]),
                target.dat_w.eq(bus.dat_w),
                target.sel.eq(bus.sel),
            ]
            hits.append(hit)
            ack = ack | (hit & target.ack)
            err = err | (hit & target.err)
            dat_r = dat_r | (hit.replicate(BUS_DATA_WIDTH) & target.dat_r)

        # An unmapped access: ERR in the next cycle, once.
        unmapped = Signal()
        unmapped_err = Signal()
        m.d.comb += unmapped.eq(bus.cyc & bus.stb & ~Cat(*hits).any())
        m.d.sync += unmapped_err.eq(unmapped & ~unmapped_err)
        m.d.comb += [
            bus.ack.eq(ack),
            bus.err.eq(err | (unmapped_err & unmapped)),
            bus.dat_r.eq(dat_r),
        ]
        return m
