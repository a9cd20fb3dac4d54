# amaranth: UnusedElaboratable=no
"""WishboneDecoder (with ReadOnlyWords and a DeviceMemory behind it, as in the serial list top):
hits reach their slave only, unmapped accesses get ERR once, windows are checked."""

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.sim import Simulator

from convhw.gateware.device_memory import DeviceMemory
from convhw.gateware.read_only_words import ReadOnlyWords
from convhw.gateware.wishbone_decoder import WishboneDecoder
from convhw.sim_helpers import BusError, wb_read, wb_transaction, wb_write


def test_init():
    dut = WishboneDecoder(12, {"a": (0x0, 0x100), "b": (0x800, 24)})
    assert dut.targets.a.adr.shape().width == 6
    assert dut.targets.b.adr.shape().width == 3
    assert dut.windows == {"a": (0x0, 0x100), "b": (0x800, 24)}


def test_init_wrong_windows():
    with pytest.raises(TypeError, match=r"^addr_width must be a positive integer, not 0$"):
        WishboneDecoder(0, {"a": (0, 4)})
    with pytest.raises(TypeError, match=r"^window 'a' must be a pair of integers"):
        WishboneDecoder(8, {"a": (0, 4.0)})
    with pytest.raises(ValueError, match=r"^window 'a': size must be a positive multiple of 4, "
                                         r"not 6$"):
        WishboneDecoder(8, {"a": (0, 6)})
    with pytest.raises(ValueError, match=r"^window 'a': base must be a multiple of 0x20, "
                                         r"not 0x10$"):
        WishboneDecoder(8, {"a": (0x10, 24)})
    with pytest.raises(ValueError, match=r"^window 'a' ends at 0x800, beyond the bus's 0x400"):
        WishboneDecoder(8, {"a": (0x400, 0x400)})
    with pytest.raises(ValueError, match=r"^windows 'a' and 'b' overlap$"):
        WishboneDecoder(8, {"a": (0, 0x40), "b": (0x20, 4)})


class Map(wiring.Component):
    """Words 0x100 and 0x104 read-only; 24 bytes of memory at 0x200; nothing else."""

    def __init__(self):
        self.decoder = WishboneDecoder(10, {"info": (0x100, 8), "memory": (0x200, 24)})
        self.info = ReadOnlyWords((0xC0FFEE, 24), 1)
        self.memory = DeviceMemory(32, 24)
        super().__init__({"bus": wiring.In(self.decoder.bus.signature.flip())})

    def elaborate(self, platform):
        m = Module()
        m.submodules.decoder = self.decoder
        m.submodules.info = self.info
        m.submodules.memory = self.memory
        wiring.connect(m, wiring.flipped(self.bus), self.decoder.bus)
        wiring.connect(m, self.decoder.targets.info, self.info.bus)
        wiring.connect(m, self.decoder.targets.memory, self.memory.host)
        return m


def test_sim_map():
    dut = Map()

    async def bench(ctx):
        bus = dut.bus
        assert await wb_read(ctx, bus, 0x100) == 0xC0FFEE
        assert await wb_read(ctx, bus, 0x104) == 24
        for i in range(6):
            await wb_write(ctx, bus, 0x200 + 4 * i, 0x1000 + i)
        assert [await wb_read(ctx, bus, 0x200 + 4 * i) for i in range(6)] == \
            [0x1000 + i for i in range(6)]
        for address in (0x0, 0xFC, 0x108, 0x218, 0x21C, 0x3FC):
            with pytest.raises(BusError):
                await wb_read(ctx, bus, address)
        with pytest.raises(BusError):
            await wb_write(ctx, bus, 0x100, 1)                 # read-only
        with pytest.raises(BusError):
            await wb_write(ctx, bus, 0x218, 1)                 # beyond the memory
        ack, _ = await wb_transaction(ctx, bus, 0x100, sel=0b0011)
        assert not ack
        # An unmapped access is answered in its second cycle; held on, it is a new access.
        ctx.set(bus.adr, 0x0)
        ctx.set(bus.cyc, 1)
        ctx.set(bus.stb, 1)
        answers = []
        for _ in range(4):
            answers.append(ctx.get(bus.err))
            await ctx.tick()
        assert answers == [0, 1, 0, 1]
        ctx.set(bus.cyc, 0)
        ctx.set(bus.stb, 0)

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(bench)
    sim.run()
