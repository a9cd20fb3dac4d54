"""ListEngine in the Amaranth simulator: descriptor lists compiled for layers run from a memory
behind its AXI4 or Wishbone master, started through its control port; results bit-exact
against the golden model and the list model, error codes as the list model gives them."""

import dataclasses
import functools

import numpy as np
import pytest
from amaranth.sim import Simulator

from convhw.compiler.image import Layer, plan, reference
from convhw.compiler.list_model import Memory, run_list
from convhw.config import EngineConfig
from convhw.descriptor import JOB_DESCRIPTOR
from convhw.gateware.list_engine import ListEngine
from convhw.registers import ErrorCode
from convhw.sim_helpers import wb_read, wb_write
from convhw.sim_memory import SparseMemory, axi4_slave, wishbone_slave
from convhw.spec import ConvSpec

from .test_gateware_axi4_lite_slave import read as axil_read
from .test_gateware_axi4_lite_slave import write as axil_write

# Small buffers, so that layers take several tiles, windows and weight loads.
TINY = EngineConfig(rows=4, cols=4, input_depth=256, weight_depth=256, acc_depth=64)


def network(seed, config):
    rng = np.random.default_rng(seed)
    specs = [ConvSpec(2, 6, 8, 3, padding=1), ConvSpec(2, 8, 4, 3, stride=2, padding=1,
                                                        padding_mode="reflect")]
    x = rng.integers(-128, 128, (1, 6, 9, 7))
    layers = [Layer(s, rng.integers(-128, 128, s.weight_shape),
                    rng.integers(-300, 300, s.out_channels),
                    (rng.integers(1, 1 << 15, s.out_channels),
                     rng.integers(12, 18, s.out_channels)), relu=i == 0)
              for i, s in enumerate(specs)]
    return x, layers


def run_engine(config, placed, *, latency=4, pause=0.1, seed=0, patch=None, limit=400_000):
    """Run ``placed`` (a :class:`ListPlan`) on the engine; returns the memory and the final
    STATUS, ERROR and CYCLES."""
    dut = ListEngine(config)
    regs = dut.register_map
    memory = SparseMemory(background=lambda address: 0)
    for address, data in placed.writes:
        memory.write(address, bytes(np.asarray(data, np.uint8)))
    if patch:
        patch(memory)
    result = {}
    if config.bus == "axi4":
        async def write(ctx, address, value):
            assert await axil_write(ctx, dut.ctrl, address, value) == 0

        async def read(ctx, address):
            value, resp = await axil_read(ctx, dut.ctrl, address)
            assert resp == 0
            return value
        slave = functools.partial(axi4_slave, axi=dut.mem, memory=memory, latency=latency,
                                  pause=pause, seed=seed)
    else:
        async def write(ctx, address, value):
            await wb_write(ctx, dut.ctrl, address, value)

        async def read(ctx, address):
            return await wb_read(ctx, dut.ctrl, address)
        slave = functools.partial(wishbone_slave, bus=dut.mem, memory=memory, latency=latency,
                                  pause=pause, seed=seed)

    async def host(ctx):
        await write(ctx, regs["LIST_ADDR"].address, placed.list_address)
        await write(ctx, regs["CTRL"].address, 1)
        for _ in range(limit // 16):
            status = await read(ctx, regs["STATUS"].address)
            if not status & 1:
                break
            await ctx.tick().repeat(16)
        else:
            raise AssertionError("the list did not end")
        result.update(status=status, error=await read(ctx, regs["ERROR"].address),
                      cycles=await read(ctx, regs["CYCLES"].address),
                      irq=ctx.get(dut.irq))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(slave)
    sim.add_testbench(host)
    sim.run()
    return memory, result


def model(config, placed, patch=None):
    """The list model on the same image."""
    memory = Memory(max(placed.end, 1 << 16) + 4096)
    for address, data in placed.writes:
        memory.write(address, data)
    return memory, run_list(memory, placed.list_address, config)


def outputs(memory, placed):
    got = []
    for index, record in enumerate(placed.records):
        address = placed.output_addresses[index]
        data = np.frombuffer(memory.read(address, record.output.size), np.uint8)
        got.append(placed.unpack(index, data))
    return got


@pytest.mark.parametrize("bus", ["axi4", "wishbone"])
def test_a_chained_list_is_bit_exact(bus):
    config = dataclasses.replace(TINY, bus=bus)
    x, layers = network(1, config)
    placed = plan(config, x, layers)
    assert sum(len(r.descriptors) for r in placed.records) >= 4
    memory, result = run_engine(config, placed, seed=3)
    assert result["status"] & 0b110 == 0b010, result           # DONE, no ERROR
    assert result["error"] == 0 and result["irq"] == 1
    for index, (got, want) in enumerate(zip(outputs(memory, placed), reference(x, layers))):
        assert np.array_equal(got, want), f"layer {index}"
    print(f"{bus}: {result['cycles']} cycles")


def test_a_bad_descriptor_stops_the_list_with_its_code():
    config = TINY
    x, layers = network(2, config)
    placed = plan(config, x, layers)
    bad = 2
    address = placed.list_address + bad * JOB_DESCRIPTOR.size

    def patch(memory):
        memory.write(address + 3, bytes([0x00]))               # MAGIC
    memory, result = run_engine(config, placed, patch=patch)
    assert result["status"] & 0b110 == 0b110
    assert result["error"] == (bad << 16) | ErrorCode.BAD_DESCRIPTOR
