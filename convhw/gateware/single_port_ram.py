"""``SinglePortRam``: a buffer with one address for reads and writes, on the iCE40UP5K's
single-port RAM (SB_SPRAM256KA) where the part has it.

The UP5K has 30 block RAMs of 4 kbit (15 KB) and four SPRAM blocks of 256 kbit (128 KB) that
Yosys maps nothing onto by itself: an SPRAM has one address, and a memory with a read and a
write port of their own addresses does not fit it. A buffer that is never read and written in
the same cycle (the host-fed engine's input and weight buffers: the host writes them while the
engine is idle, the engine reads them while it is busy) fits, and then costs no block RAM and
no logic cells for the multiplexers that a deep buffer of 256 x 16 block RAMs needs.
"""

from __future__ import annotations

from amaranth.hdl import Cat, ClockSignal, Const, Instance, Module, Signal
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

from .family import family_of

__all__ = ["SPRAM_DEPTH", "SPRAM_WIDTH", "SinglePortRam", "uses_ice40_spram"]

#: Words and bits per word of one SB_SPRAM256KA.
SPRAM_DEPTH = 16384
SPRAM_WIDTH = 16
#: SB_SPRAM256KA blocks in the iCE40UP5K (the only iCE40 that has them).
SPRAM_BLOCKS = 4
#: The SPRAM's write mask has a bit per nibble.
_NIBBLE = 4


def uses_ice40_spram(platform, width: int, depth: int, parts: int = 1) -> bool:
    """Whether a :class:`SinglePortRam` elaborated for ``platform`` is made of SB_SPRAM256KA
    blocks: an iCE40 part (only the UP5K family has them; the build fails on another iCE40),
    ``depth`` at most one block's 16,384 words, at most four blocks side by side for
    ``width``, and each written part a whole number of the mask's nibbles."""
    return (family_of(platform) == "ice40"
            and depth <= SPRAM_DEPTH
            and -(-width // SPRAM_WIDTH) <= SPRAM_BLOCKS
            and (parts == 1 or (width // parts) % _NIBBLE == 0))


class SinglePortRam(wiring.Component):
    """``depth`` words of ``width`` bits, one access per cycle at ``addr``.

    In a cycle in which any bit of ``w_en`` is set, the enabled parts of ``w_data`` (``parts``
    parts of equal width, least significant first) are written at ``addr``, and ``r_data`` in
    the next cycle is undefined. In any other cycle ``r_data`` in the next cycle is the word at
    ``addr``. The words' contents at power-up are undefined.

    Elaborated for an iCE40 (:func:`uses_ice40_spram`) it is SB_SPRAM256KA blocks side by side
    (the SPRAM's data output follows only a read, as here); elsewhere a ``lib.memory`` memory,
    :attr:`memory`, which a simulation may load directly.

    Parameters
    ----------
    width, depth : int
        The buffer's shape.
    parts : int
        Bits of ``w_en``; ``width`` must be a multiple of it.
    """

    def __init__(self, *, width: int, depth: int, parts: int = 1) -> None:
        for name, value in (("width", width), ("depth", depth), ("parts", parts)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, not {value!r}")
        if width % parts:
            raise ValueError(f"width ({width}) must be a multiple of parts ({parts})")
        self._width, self._depth, self._parts = width, depth, parts
        super().__init__({
            "addr": In(range(depth)),
            "w_data": In(width),
            "w_en": In(parts),
            "r_data": Out(width),
        })
        self._memory = None

    @property
    def memory(self) -> memory.Memory:
        """The behavioural form's memory, made when first asked for (so that an iCE40 build,
        which has no use for it, has none left unused)."""
        if self._memory is None:
            self._memory = memory.Memory(shape=self._width, depth=self._depth, init=[])
        return self._memory

    def elaborate(self, platform) -> Module:
        m = Module()
        width, parts = self._width, self._parts
        if not uses_ice40_spram(platform, width, self._depth, parts):
            m.submodules.memory = mem = self.memory
            write = mem.write_port(granularity=width // parts if parts > 1 else None)
            read = mem.read_port()
            m.d.comb += [write.addr.eq(self.addr), write.data.eq(self.w_data),
                         write.en.eq(self.w_en), read.addr.eq(self.addr),
                         self.r_data.eq(read.data)]
            return m

        writing = self.w_en.any()
        part_width = width // parts
        # A write-mask bit per nibble of the whole word, from the part that holds the nibble;
        # the word padded to whole blocks (the padding never written, its output unused).
        blocks = -(-width // SPRAM_WIDTH)
        nibbles = blocks * SPRAM_WIDTH // _NIBBLE
        mask = Cat(*(self.w_en[min(n * _NIBBLE // part_width, parts - 1)]
                     if n * _NIBBLE < width else Const(0, 1) for n in range(nibbles)))
        data_in = Cat(self.w_data, Const(0, blocks * SPRAM_WIDTH - width))
        data_out = Signal(blocks * SPRAM_WIDTH)
        address = Signal(14)
        m.d.comb += address.eq(self.addr)
        for b in range(blocks):
            m.submodules[f"spram{b}"] = Instance(
                "SB_SPRAM256KA",
                i_ADDRESS=address,
                i_DATAIN=data_in[b * SPRAM_WIDTH:(b + 1) * SPRAM_WIDTH],
                i_MASKWREN=mask[b * 4:(b + 1) * 4],
                i_WREN=writing,
                i_CHIPSELECT=Const(1, 1),
                i_CLOCK=ClockSignal(),
                i_STANDBY=Const(0, 1),
                i_SLEEP=Const(0, 1),
                i_POWEROFF=Const(1, 1),     # active low: powered
                o_DATAOUT=data_out[b * SPRAM_WIDTH:(b + 1) * SPRAM_WIDTH],
            )
        m.d.comb += self.r_data.eq(data_out[:width])
        return m
