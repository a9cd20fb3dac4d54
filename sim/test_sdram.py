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
from cocotb.triggers import ClockCycles, FallingEdge, ReadOnly

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
    # The engine's memory port idle (MemoryPort drives it in the test that uses it).
    for name in ("read_cmd_addr", "read_cmd_len", "read_cmd_valid", "read_ready",
                 "write_cmd_addr", "write_cmd_len", "write_cmd_valid", "write_data",
                 "write_strb", "write_last", "write_valid", "write_resp_ready"):
        getattr(dut, f"mp_{name}").value = 0
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


class MemoryPort:
    """The engine's memory port (mp_*), driven like the list engine's DMA would: one command at
    a time, each transfer set up at a falling edge and taken at the next rising one."""

    def __init__(self, dut, ctx: CocotbContext) -> None:
        self.dut, self.ctx = dut, ctx
        for name in ("read_cmd_valid", "write_cmd_valid", "write_valid"):
            getattr(dut, f"mp_{name}").value = 0
        for name in ("read_ready", "write_resp_ready"):
            getattr(dut, f"mp_{name}").value = 0

    async def _send(self, stem: str, **fields) -> None:
        dut = self.dut
        for name, value in fields.items():
            getattr(dut, f"mp_{name}").value = value
        getattr(dut, f"mp_{stem}_valid").value = 1
        for _ in range(10_000):
            # `ready` may follow `valid` combinationally: read it once this edge's writes
            # have settled.
            await ReadOnly()
            ready = int(getattr(dut, f"mp_{stem}_ready").value)
            await self.ctx.tick()
            if ready:
                getattr(dut, f"mp_{stem}_valid").value = 0
                return
        raise AssertionError(f"mp_{stem}: never ready")

    async def _take(self, stem: str, *fields: str) -> dict:
        dut = self.dut
        getattr(dut, f"mp_{stem}_ready").value = 1
        for _ in range(10_000):
            await ReadOnly()
            valid = int(getattr(dut, f"mp_{stem}_valid").value)
            # (The payload means nothing, and may be X, without `valid`.)
            values = {name: int(getattr(dut, f"mp_{name}").value) for name in fields} \
                if valid else None
            await self.ctx.tick()
            if valid:
                getattr(dut, f"mp_{stem}_ready").value = 0
                return values
        raise AssertionError(f"mp_{stem}: never valid")

    async def write(self, address: int, words: list[int], strobes: list[int]) -> int:
        """One burst; returns the response's error bit."""
        await self._send("write_cmd", write_cmd_addr=address, write_cmd_len=len(words) - 1)
        for i, (word, strb) in enumerate(zip(words, strobes)):
            await self._send("write", write_data=word, write_strb=strb,
                             write_last=int(i == len(words) - 1))
        return (await self._take("write_resp", "write_resp_error"))["write_resp_error"]

    async def read(self, address: int, beats: int) -> list[dict]:
        await self._send("read_cmd", read_cmd_addr=address, read_cmd_len=beats - 1)
        return [await self._take("read", "read_data", "read_last", "read_error")
                for _ in range(beats)]


@cocotb.test()
async def test_engine_port_bursts(dut):
    """The engine's port (LiteDramMaster on LiteDRAM's native port, beside the host's Wishbone
    port): bursts of 1-32 beats with byte strobes written and read back, the host's words in
    another region kept, a burst past the 32 MiB end refused with errors, no violation."""
    seed = seed_for("sdram", 3)
    rng = random.Random(seed)
    ctx, _, user = await start(dut, self_init=True)
    while not int(dut.self_init_done.value):
        await ctx.tick()
    port = MemoryPort(dut, ctx)
    shadow: dict[int, int] = {}                 # 64-bit word address -> value
    region = STORED_ROWS * BANKS * WORDS_PER_ROW * 4 // 2     # bytes: the engine's half
    host = {}
    for _ in range(40):
        beats = rng.choice([1, 2, rng.randint(1, 8), rng.randint(1, 32)])
        first = rng.randrange(region // 8 - beats)
        words = [rng.getrandbits(64) for _ in range(beats)]
        strobes = [0xFF if rng.random() < 0.7 else rng.getrandbits(8) for _ in range(beats)]
        assert await port.write(first * 8, words, strobes) == 0
        for i, (word, strb) in enumerate(zip(words, strobes)):
            # Bytes never written hold what the chip powered up with: only written bytes are
            # known (value, mask of known bytes).
            old, known = shadow.get(first + i, (0, 0))
            mask = sum(0xFF << (8 * b) for b in range(8) if strb >> b & 1)
            shadow[first + i] = ((old & ~mask) | (word & mask), known | mask)
        # The host writes its half in between (LiteDRAM's crossbar serves both ports).
        address = region + 4 * rng.randrange(region // 4)
        host[address] = rng.getrandbits(32)
        await wb_write(ctx, user, address, host[address], timeout=200)
    for _ in range(20):
        beats = rng.randint(1, 32)
        first = rng.randrange(region // 8 - beats)
        got = await port.read(first * 8, beats)
        for i, beat in enumerate(got):
            assert beat["read_error"] == 0 and beat["read_last"] == int(i == beats - 1)
            if first + i in shadow:
                value, known = shadow[first + i]
                assert beat["read_data"] & known == value, (
                    f"word {first + i:#x}: {beat['read_data']:#x} != {value:#x} in the bytes "
                    f"{known:#x} (seed {seed})")
    for address, value in host.items():
        assert await wb_read(ctx, user, address, timeout=200) == value
    # Every written word, in bursts along the written ones.
    for word, (value, known) in sorted(shadow.items()):
        (beat,) = await port.read(word * 8, 1)
        assert beat["read_data"] & known == value, f"word {word:#x} (seed {seed})"
    # Past the end: two beats in, two refused; nothing wraps onto the first words.
    end = CORE["memory_bytes"]
    assert await port.write(end - 16, [1, 2, 3, 4], [0xFF] * 4) == 1
    got = await port.read(end - 16, 4)
    assert [(b["read_error"], b["read_last"]) for b in got] == [(0, 0), (0, 0), (1, 0), (1, 1)]
    check_chip(dut, what="engine-port bursts")
    dut._log.info(f"{len(shadow)} engine words, {len(host)} host words, "
                  f"{int(dut.writes.value)} chip writes, {int(dut.reads.value)} chip reads, "
                  f"0 violations (seed {seed})")
