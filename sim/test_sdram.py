"""The ULX3S's SDRAM controller (LiteDRAM, rtl/boards/litedram_ulx3s.v) against the behavioural
chip (sdram_chip.v), top ``sdram_ulx3s`` (sdram_ulx3s.v).

The host's part, as a board without a CPU must play it: LiteDRAM's initialisation sequence
replayed through the DFII registers (from rtl/boards/litedram_ulx3s.json, the sequence
``litedram.init`` makes for the part), then the chip handed to the controller. Then words
written through the user port at random addresses (runs within a row, across banks and rows,
byte-masked writes) and every one read back, compared with a Python model of the memory; and
the chip's own checks: no timing or protocol violation in the whole run, every command after
initialisation, and refreshes at the rate the part needs while the bus idles. Then the same
table played by the board's own SdramInitializer (convhw/gateware/sdram_initializer.py) out of
reset, as a bitstream does.
"""

from __future__ import annotations

import random
import types

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge

from convhw.boards.litedram import init_writes, load
from convhw.sim_helpers import wb_read, wb_write

from tb import CocotbContext, seed_for

CORE = load()
#: The board's clock period (60 MHz, to the even picosecond cocotb's clock needs), as the
#: chip model's parameter has it (sdram_ulx3s.v).
PERIOD_PS = 16666
#: Rows per bank the chip model stores (sdram_ulx3s.v's STORED_ROWS).
STORED_ROWS = 64
#: 32-bit user words per SDRAM row and bank: 512 columns of 16 bits.
WORDS_PER_ROW = 256
BANKS = 4


def port(dut, prefix: str):
    return types.SimpleNamespace(**{name: getattr(dut, f"{prefix}_{name}")
                                    for name in ("cyc", "stb", "we", "adr", "dat_w", "sel",
                                                 "dat_r", "ack", "err")})


async def start(dut, *, self_init: bool = False) -> tuple[CocotbContext, object, object]:
    cocotb.start_soon(Clock(dut.clk, PERIOD_PS, unit="ps").start())
    dut.self_init.value = int(self_init)
    for bus in (port(dut, "ctrl"), port(dut, "user")):
        for name in ("cyc", "stb", "we", "adr", "dat_w", "sel"):
            getattr(bus, name).value = 0
    dut.rst.value = 1
    await ClockCycles(dut.clk, 4)
    await FallingEdge(dut.clk)
    dut.rst.value = 0
    await ClockCycles(dut.clk, 4)
    await FallingEdge(dut.clk)
    return CocotbContext(dut.clk), port(dut, "ctrl"), port(dut, "user")


async def initialise(ctx, ctrl) -> None:
    """LiteDRAM's initialisation sequence, then the chip to the controller (DFII ``SEL``): the
    table the board's SdramInitializer plays."""
    for address, value, wait in init_writes(CORE):
        await wb_write(ctx, ctrl, address, value)
        for _ in range(wait):
            await ctx.tick()


def check_chip(dut, *, what: str) -> None:
    violations = int(dut.violations.value)
    assert violations == 0, f"{what}: the chip model saw {violations} violations (see the log)"


def addresses(rng: random.Random, count: int) -> list[int]:
    """User word addresses in the rows the model stores: runs along a row, single words
    anywhere, and the same column in every bank (bank conflicts and row misses)."""
    limit = STORED_ROWS * BANKS * WORDS_PER_ROW
    out: list[int] = []
    while len(out) < count:
        kind = rng.randrange(3)
        if kind == 0:
            first = rng.randrange(limit - 16)
            out += range(first, first + rng.randint(2, 16))
        elif kind == 1:
            out.append(rng.randrange(limit))
        else:
            column, row = rng.randrange(WORDS_PER_ROW), rng.randrange(STORED_ROWS)
            out += [(row * BANKS + bank) * WORDS_PER_ROW + column for bank in range(BANKS)]
    return out[:count]


@cocotb.test()
async def test_initialise_write_read_refresh(dut):
    """Initialise, write and read back 600 words (a quarter byte-masked), then idle through
    ten refresh intervals: every word as written, no violation, refreshes kept up."""
    seed = seed_for("sdram", 1)
    rng = random.Random(seed)
    ctx, ctrl, user = await start(dut)
    await initialise(ctx, ctrl)
    assert int(dut.chip_initialised.value) == 1, "the chip did not see a complete initialisation"
    assert int(dut.init_done.value) == 1
    check_chip(dut, what="initialisation")

    model: dict[int, int] = {}
    words = addresses(rng, 600)
    for address in words:
        value = rng.getrandbits(32)
        sel = 0b1111 if rng.random() < 0.75 else rng.randint(1, 14)
        old = model.get(address)
        if sel != 0b1111 and old is None:
            # A byte-masked write needs a known word to predict: write the whole word first.
            old = rng.getrandbits(32)
            await wb_write(ctx, user, address * 4, old, timeout=200)
        await wb_write(ctx, user, address * 4, value, sel=sel, timeout=200)
        if sel != 0b1111:
            mask = sum(0xFF << (8 * b) for b in range(4) if sel >> b & 1)
            value = (old & ~mask) | (value & mask)
        model[address] = value
    order = list(model)
    rng.shuffle(order)
    for address in order:
        got = await wb_read(ctx, user, address * 4, timeout=200)
        assert got == model[address], (
            f"word {address:#x}: read {got:#010x}, wrote {model[address]:#010x} (seed {seed})")
    check_chip(dut, what="writes and reads")
    assert int(dut.writes.value) >= len(model) * 2 and int(dut.reads.value) >= len(model) * 2

    # Idle: the controller alone keeps the rows refreshed.
    t_refi = CORE["timing_cycles"]["tREFI"]
    before = int(dut.refreshes.value)
    await ClockCycles(dut.clk, 10 * t_refi)
    refreshed = int(dut.refreshes.value) - before
    assert 9 <= refreshed <= 11, f"{refreshed} refreshes in 10 intervals of {t_refi} cycles"
    check_chip(dut, what="idle")
    # ... and the data is still there.
    for address in order[:32]:
        assert await wb_read(ctx, user, address * 4, timeout=200) == model[address]
    dut._log.info(f"{len(model)} words, {int(dut.writes.value)} chip writes, "
                  f"{int(dut.reads.value)} chip reads, {int(dut.refreshes.value)} refreshes, "
                  f"0 violations (seed {seed})")


@cocotb.test()
async def test_board_initialises_itself(dut):
    """The board's SdramInitializer plays the same table out of reset: done, the chip
    initialised, then words written and read back, no violation."""
    seed = seed_for("sdram", 2)
    rng = random.Random(seed)
    ctx, _, user = await start(dut, self_init=True)
    writes = init_writes(CORE)
    budget = sum(wait for *_, wait in writes) + 10 * len(writes) + 100
    for _ in range(budget):
        if int(dut.self_init_done.value) or int(dut.self_init_error.value):
            break
        await ctx.tick()
    assert int(dut.self_init_done.value) == 1 and int(dut.self_init_error.value) == 0, \
        f"the initialiser did not finish in {budget} cycles"
    assert int(dut.chip_initialised.value) == 1 and int(dut.init_done.value) == 1
    model = {}
    for address in addresses(rng, 100):
        model[address] = rng.getrandbits(32)
        await wb_write(ctx, user, address * 4, model[address], timeout=200)
    for address, value in model.items():
        got = await wb_read(ctx, user, address * 4, timeout=200)
        assert got == value, f"word {address:#x}: read {got:#010x}, wrote {value:#010x}"
    check_chip(dut, what="self-initialised run")
