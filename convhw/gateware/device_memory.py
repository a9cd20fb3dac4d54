"""``DeviceMemory``: on-chip block RAM as the list engine's memory, shared with the host.

::

    host   (Wishbone B4 classic, 32 bits)     --+
                                                +-- arbiter -- one RAM port, data_width bits
    engine (Wishbone B4 pipelined, data_width) --+

The RAM is a :class:`~amaranth.lib.memory.Memory` of ``size / (data_width / 8)`` words with
**one** read/write port (a read port and a byte-granular write port on one address, the read
port disabled while writing), shared by the two buses. One port, not two, because that is what
every target maps to block RAM: an iCE40 EBR has a single write port and an iCE40UP5K SPRAM a
single read/write port (Yosys: ``srsw``, ``rdwr no_change``, which the disabled read port
matches); an ECP5 DP16KD takes it as well. The host writes and reads device memory between
lists, while the engine waits, and polls only registers while a list runs, so sharing the port
costs the engine nothing in practice.

Engine port (slave, B4 pipelined)
---------------------------------
* ``ADR`` is the word address (byte address / ``data_width / 8``) of the 32-bit byte address
  space of :class:`~convhw.gateware.wishbone_master.WishbonePipelinedSignature`; ``SEL`` is
  per byte; ``CTI``/``BTE`` are ignored (every beat is addressed).
* A beat (``CYC & STB``) is accepted in a cycle without ``STALL`` and answered in the next
  cycle: ``ACK`` with the word read (a write's ``DAT_R`` is meaningless), or ``ERR`` for a word
  at or beyond ``size`` bytes, which touches nothing. One beat per cycle while the host is idle.
* ``STALL`` is high only in a cycle that serves the host.

Host port (slave, B4 classic, 32-bit, word granularity per byte lane)
----------------------------------------------------------------------
* ``ADR`` is the 32-bit word address inside the memory; the decoder in front of it keeps it
  below ``size / 4``. ``SEL`` enables bytes of the word (the serial bridge always sends
  ``0b1111``). ``ACK`` in the cycle after the access is served, gated with ``CYC & STB``; so an
  access takes 2 cycles when the engine is idle.

Arbitration: when both want the port in one cycle, the one not served last time goes first, so
neither waits for more than one access of the other.
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In

from ..config import BUS_DATA_WIDTH
from .wishbone import WishboneSignature
from .wishbone_master import WishbonePipelinedSignature

__all__ = ["DeviceMemory"]

#: The engine port's byte-address width (the list engine's master port).
ENGINE_ADDR_WIDTH = 32


class DeviceMemory(wiring.Component):
    """See the module documentation.

    Parameters
    ----------
    data_width : int
        The engine port's data width (``EngineConfig.memory_width``), a power of two from 32
        to 512.
    size : int
        Bytes of memory, a positive multiple of ``data_width / 8`` up to 2**24.

    Attributes
    ----------
    host : In(WishboneSignature(host_addr_width))
        32-bit classic port; ``host_addr_width = ceil(log2(size / 4))`` (at least 1).
    engine : In(WishbonePipelinedSignature(data_width, 32))
        The list engine's memory bus.

    Raises
    ------
    TypeError
        If an argument is not an integer.
    ValueError
        If ``data_width`` is not a power of two from 32 to 512 or ``size`` is not a positive
        multiple of its bytes up to 2**24.
    """

    def __init__(self, data_width: int, size: int) -> None:
        for name, value in (("data_width", data_width), ("size", size)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"{name} must be an integer, not {value!r}")
        if data_width < BUS_DATA_WIDTH or data_width > 512 or data_width & (data_width - 1):
            raise ValueError(f"data_width must be a power of two from 32 to 512, not "
                             f"{data_width}")
        beat = data_width // 8
        if size < beat or size % beat or size > 1 << 24:
            raise ValueError(f"size must be a positive multiple of {beat} bytes up to 2**24, "
                             f"not {size}")
        self._data_width = data_width
        self._size = size
        super().__init__({
            "host": In(WishboneSignature(self.host_addr_width)),
            "engine": In(WishbonePipelinedSignature(data_width, ENGINE_ADDR_WIDTH)),
        })

    @property
    def data_width(self) -> int:
        return self._data_width

    @property
    def size(self) -> int:
        return self._size

    @property
    def depth(self) -> int:
        """RAM words of ``data_width`` bits."""
        return self._size // (self._data_width // 8)

    @property
    def host_addr_width(self) -> int:
        return max(1, (self._size // 4 - 1).bit_length())

    def elaborate(self, platform) -> Module:
        m = Module()
        host, engine = self.host, self.engine
        lanes = self._data_width // BUS_DATA_WIDTH
        lane_bits = (lanes - 1).bit_length()
        sel_bits = BUS_DATA_WIDTH // 8

        m.submodules.ram = ram = Memory(shape=self._data_width, depth=self.depth, init=[])
        write = ram.write_port(granularity=8)
        read = ram.read_port()
        # One port: the read port follows the write port's address and rests while writing.
        m.d.comb += [read.addr.eq(write.addr), read.en.eq(~write.en.any())]

        host_ack = Signal()          # the host's access was served last cycle
        host_lane = Signal(max(1, lane_bits))
        engine_ack = Signal()
        engine_err = Signal()
        host_last = Signal()         # the last contested cycle went to the host

        host_wants = Signal()
        engine_wants = Signal()
        serve_host = Signal()
        m.d.comb += [
            host_wants.eq(host.cyc & host.stb & ~host_ack),
            engine_wants.eq(engine.cyc & engine.stb),
            serve_host.eq(host_wants & (~engine_wants | ~host_last)),
            engine.stall.eq(serve_host),
        ]
        with m.If(host_wants & engine_wants):
            m.d.sync += host_last.eq(serve_host)

        engine_in_range = engine.adr < self.depth
        serve_engine = engine_wants & ~serve_host
        row = host.adr[lane_bits:] if lane_bits else host.adr
        with m.If(serve_host):
            m.d.comb += [
                write.addr.eq(row),
                write.data.eq(host.dat_w.replicate(lanes)),
            ]
            with m.If(host.we):
                if lane_bits:
                    m.d.comb += write.en.eq(host.sel << (host.adr[:lane_bits] * sel_bits))
                else:
                    m.d.comb += write.en.eq(host.sel)
        with m.Elif(serve_engine & engine_in_range):
            m.d.comb += [write.addr.eq(engine.adr), write.data.eq(engine.dat_w)]
            with m.If(engine.we):
                m.d.comb += write.en.eq(engine.sel)

        m.d.sync += [
            host_ack.eq(serve_host),
            engine_ack.eq(serve_engine & engine_in_range),
            engine_err.eq(serve_engine & ~engine_in_range),
        ]
        if lane_bits:
            with m.If(serve_host):
                m.d.sync += host_lane.eq(host.adr[:lane_bits])
            host_data = read.data.word_select(host_lane, BUS_DATA_WIDTH)
        else:
            host_data = read.data
        m.d.comb += [
            host.ack.eq(host_ack & host.cyc & host.stb),
            host.err.eq(0),
            host.dat_r.eq(host_data),
            engine.ack.eq(engine_ack & engine.cyc),
            engine.err.eq(engine_err & engine.cyc),
            engine.dat_r.eq(read.data),
        ]
        return m
