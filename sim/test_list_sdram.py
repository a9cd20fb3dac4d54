"""The list engine on the ULX3S's SDRAM (top ``list_sdram``, list_sdram.v): ListEngine
(configuration ``list-wishbone``) with its memory port on LiteDramMaster, LiteDRAM's native
port, the controller and the behavioural chip; LiteDRAM initialised by the board's
SdramInitializer out of reset.

The host's part as a board's host plays it: the list's image (a placed two-layer network,
:func:`convhw.compiler.image.plan`: descriptors, column parameters, weights, input) written
into the SDRAM through LiteDRAM's host port, LIST_ADDR and CTRL.START on the list engine's
control port, STATUS polled until the list ends, the outputs read back from the SDRAM and
compared bit for bit with :func:`convhw.compiler.image.reference`; and no violation of the
chip's timing or protocol in the whole run. (CYCLES here is the SDRAM's: the list cycle model
times the AXI4 and Wishbone memories of the other benches, not LiteDRAM.)
"""

from __future__ import annotations

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from convhw.compiler.image import Layer, plan, reference
from convhw.registers import list_register_map
from convhw.sim_helpers import wb_read, wb_write
from convhw.spec import ConvSpec
from test_sdram import PERIOD_PS, port

from gen_component import bench_config
from tb import Bus, CocotbContext, check_equal, seed_for

CONFIG_NAME, CONFIG = bench_config("list-wishbone")
REGMAP = list_register_map(CONFIG)
#: Cycles a list may take before the bench calls it a hang.
BUDGET = 400_000
BUSY, DONE, ERROR = 0b001, 0b010, 0b100


def network(seed: int):
    """Input and two chained layers (requantised; ReLU; the second strided, reflect-padded)."""
    rng = np.random.default_rng(seed)
    specs = [ConvSpec(2, 5, 8, 3, padding=1),
             ConvSpec(2, 8, 4, 3, stride=2, padding=1, padding_mode="reflect")]
    x = rng.integers(-128, 128, (1, 5, 8, 7))
    layers = [Layer(spec, rng.integers(-128, 128, spec.weight_shape),
                    rng.integers(-300, 300, spec.out_channels),
                    (rng.integers(1, 1 << 15, spec.out_channels),
                     rng.integers(12, 18, spec.out_channels)), relu=index == 0)
              for index, spec in enumerate(specs)]
    return x, layers


async def host_write(ctx, user, address: int, data: bytes) -> None:
    """Bytes into the SDRAM through the host's 32-bit port (partial words with byte selects)."""
    offset = address % 4
    first = address - offset
    padded = bytes(offset) + data
    padded += bytes(-len(padded) % 4)
    for i in range(0, len(padded), 4):
        lo = max(0, offset - i)
        hi = min(4, offset + len(data) - i)
        sel = sum(1 << b for b in range(lo, hi))
        word = int.from_bytes(padded[i:i + 4], "little")
        await wb_write(ctx, user, first + i, word, sel=sel, timeout=200)


async def host_read(ctx, user, address: int, size: int) -> bytes:
    first = address - address % 4
    out = bytearray()
    for word in range(first, address + size, 4):
        out += (await wb_read(ctx, user, word, timeout=200)).to_bytes(4, "little")
    return bytes(out[address - first:address - first + size])


@cocotb.test()
async def test_chained_list_from_sdram(dut):
    """A two-layer chained list fetched from and written to the SDRAM: DONE, no error, both
    layers' outputs bit-exact, no chip violation."""
    seed = seed_for("list_sdram", 1)
    cocotb.start_soon(Clock(dut.clk, PERIOD_PS, unit="ps").start())
    user, ctrl = port(dut, "user"), Bus(dut, "ctrl")
    for bus in (user, ctrl):
        for name in ("cyc", "stb", "we", "adr", "dat_w", "sel"):
            getattr(bus, name).value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    ctx = CocotbContext(dut.clk)
    for _ in range(40_000):
        if int(dut.ready.value) or int(dut.init_error.value):
            break
        await ctx.tick()
    assert int(dut.ready.value) == 1, "the SDRAM was not initialised"

    x, layers = network(seed)
    placed = plan(CONFIG, x, layers, chain=True)
    for address, data in placed.writes:
        await host_write(ctx, user, address, bytes(np.asarray(data, np.uint8)))
    await wb_write(ctx, ctrl, REGMAP["LIST_ADDR"].address, placed.list_address)
    start = REGMAP["CTRL"].field("START").offset
    await wb_write(ctx, ctrl, REGMAP["CTRL"].address, 1 << start)
    for _ in range(0, BUDGET, 256):
        await ClockCycles(dut.clk, 256)
        await FallingEdge(dut.clk)
        status = await wb_read(ctx, ctrl, REGMAP["STATUS"].address)
        if not status & BUSY:
            break
    else:
        raise AssertionError(f"the list did not end within {BUDGET} cycles (seed {seed})")
    error = await wb_read(ctx, ctrl, REGMAP["ERROR"].address)
    cycles = await wb_read(ctx, ctrl, REGMAP["CYCLES"].address)
    assert status & (DONE | ERROR) == DONE and error == 0, \
        f"STATUS {status:#06b}, ERROR {error:#x} (seed {seed})"
    expected = reference(x, layers, chain=True)
    for index, record in enumerate(placed.records):
        address = placed.output_addresses[index]
        data = np.frombuffer(await host_read(ctx, user, address, record.output.size), np.uint8)
        check_equal(placed.unpack(index, data), expected[index],
                    what=f"layer {index}'s output", context=f"  seed {seed}")
    violations = int(dut.violations.value)
    assert violations == 0, f"the chip model saw {violations} violations (see the log)"
    jobs = sum(len(r.descriptors) for r in placed.records)
    dut._log.info(f"{jobs} jobs from the SDRAM in {cycles} cycles, outputs exact, "
                  f"0 violations (seed {seed})")
