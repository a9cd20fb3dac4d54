# amaranth: UnusedElaboratable=no
"""Axi4LiteSlave onto the engine's register file, in the Amaranth simulator: reads and writes,
both orders of address and data, back-pressure on the answers, every SLVERR case."""

import random

import pytest
from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In
from amaranth.sim import Simulator

from convhw.config import EngineConfig
from convhw.gateware.axi4 import Axi4LiteSignature
from convhw.gateware.axi4_lite_slave import SLVERR, Axi4LiteSlave
from convhw.gateware.register_file import RegisterFile
from convhw.registers import ENGINE_ID, engine_register_map
from convhw.sim_helpers import axil_read as read
from convhw.sim_helpers import axil_write as write

REGMAP = engine_register_map(EngineConfig.preset("small"))


class Harness(wiring.Component):
    def __init__(self):
        self.slave = Axi4LiteSlave(REGMAP)
        super().__init__({"axi": In(Axi4LiteSignature(32, len(self.slave.axi.awaddr))),
                          "locked": In(1)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.slave = self.slave
        m.submodules.regs = regs = RegisterFile(REGMAP)
        wiring.connect(m, self.slave.registers, regs.bus)
        wiring.connect(m, wiring.flipped(self.axi), self.slave.axi)
        m.d.comb += self.slave.locked.eq(self.locked)
        return m


def run(bench):
    dut = Harness()
    sim = Simulator(dut)
    sim.add_clock(1e-8)

    async def testbench(ctx):
        await bench(ctx, dut)

    sim.add_testbench(testbench)
    sim.run()


@pytest.mark.parametrize("seed", range(3))
def test_reads_and_writes(seed):
    rng = random.Random(seed)
    rw = [r for r in REGMAP.registers if r.access == "rw"]

    async def bench(ctx, dut):
        assert await read(ctx, dut.axi, REGMAP["ID"].address) == (ENGINE_ID, 0)
        shadow = {}
        for _ in range(30):
            register = rng.choice(rw)
            mask = sum(f.mask for f in register.fields)
            value = rng.getrandbits(32)
            resp = await write(ctx, dut.axi, register.address, value, rng=rng,
                               data_first=rng.random() < 0.5)
            assert resp == 0, f"seed {seed}: {register.name}"
            shadow[register.address] = value & mask
            address = rng.choice(list(shadow))
            assert await read(ctx, dut.axi, address, rng=rng) == (shadow[address], 0), \
                f"seed {seed}: {address:#x}"

    run(bench)


def test_errors():
    register = REGMAP["JOB_MODE"]

    async def bench(ctx, dut):
        axi = dut.axi
        assert await write(ctx, axi, 0x0FFC, 1) == SLVERR             # no register there
        assert (await read(ctx, axi, 0x0FFC))[1] == SLVERR
        assert await write(ctx, axi, REGMAP["ID"].address, 1) == SLVERR      # read-only
        assert await write(ctx, axi, register.address, 1, strb=0b0011) == SLVERR
        assert (await read(ctx, axi, register.address + 2))[1] == SLVERR     # misaligned
        assert await write(ctx, axi, register.address, 1) == 0
        ctx.set(dut.locked, 1)
        assert await write(ctx, axi, register.address, 0) == SLVERR          # locked
        assert await read(ctx, axi, register.address) == (1, 0)              # unchanged
        assert await write(ctx, axi, REGMAP["CTRL"].address, 0b10) == 0      # ABORT: allowed
        ctx.set(dut.locked, 0)
        assert await write(ctx, axi, register.address, 0) == 0

    run(bench)


def test_unlocked_must_name_registers():
    with pytest.raises(ValueError, match=r"^unlocked must name registers of the map, not 'X'$"):
        Axi4LiteSlave(REGMAP, unlocked=("X",))
