# amaranth: UnusedElaboratable=no
"""The SDRAM initialiser in the Amaranth simulator, against a Wishbone slave that answers each
access after a random number of wait states: the table's writes in order, each complete, the
waits counted from each write's answer, and ERR or silence ending the table with ``error``.
With LiteDRAM's real table it runs against the real controller in sim/test_sdram.py's bench."""

from __future__ import annotations

import random

import pytest
from amaranth.sim import Simulator

from convhw.boards.litedram import init_writes, load
from convhw.gateware.sdram_initializer import SdramInitializer


def play(writes, *, seed: int, answer=lambda index: "ack", timeout: int = 256,
         max_cycles: int = 100_000):
    """Run the initialiser; returns [(cycle of the answer, byte address, value, sel)] and the
    cycle ``done`` or ``error`` rose (and which)."""
    dut = SdramInitializer(writes, timeout=timeout)
    rng = random.Random(seed)
    seen, end = [], {}

    async def slave(ctx):
        cycle, latency, index = 0, None, 0
        while cycle < max_cycles:
            bus = dut.bus
            if ctx.get(dut.done) or ctx.get(dut.error):
                end.update(cycle=cycle, what="done" if ctx.get(dut.done) else "error")
                # The bus stays idle afterwards.
                for _ in range(5):
                    assert not ctx.get(bus.cyc)
                    await ctx.tick()
                return
            ctx.set(bus.ack, 0)
            ctx.set(bus.err, 0)
            if ctx.get(bus.cyc) and ctx.get(bus.stb):
                assert ctx.get(bus.we) == 1
                if latency is None:
                    latency = rng.randint(0, 3)
                if latency == 0:
                    kind = answer(index)
                    if kind != "silent":
                        ctx.set(bus.ack if kind == "ack" else bus.err, 1)
                        seen.append((cycle, ctx.get(bus.adr) * 4, ctx.get(bus.dat_w),
                                     ctx.get(bus.sel)))
                        index += 1
                        latency = None
                else:
                    latency -= 1
            else:
                assert latency is None, "CYC dropped before the access was answered"
            await ctx.tick()
            ctx.set(bus.ack, 0)
            ctx.set(bus.err, 0)
            cycle += 1
        raise AssertionError(f"neither done nor error in {max_cycles} cycles")

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(slave)
    sim.run()
    return seen, end


def test_table_played_in_order_with_its_waits():
    seed = 5
    writes = [(0x800, 0x0e, 7), (0x80c, 0x400, 0), (0x804, 0xb, 0), (0x808, 1, 3),
              (0x0, 1, 0)]
    seen, end = play(writes, seed=seed)
    assert [(a, v) for _, a, v, _ in seen] == [(a, v) for a, v, _ in writes], f"seed {seed}"
    assert all(sel == 0b1111 for *_, sel in seen)
    for (answered, *_), (next_answered, *_), (_, _, wait) in zip(seen, seen[1:], writes):
        # The next write starts after the wait and a cycle with CYC low; its answer comes
        # after 0-3 wait states.
        assert answered + wait + 2 <= next_answered <= answered + wait + 2 + 3, f"seed {seed}"
    assert end["what"] == "done"
    assert end["cycle"] == seen[-1][0] + writes[-1][2] + 2


def test_litedram_table():
    writes = init_writes(load())
    seen, end = play(writes, seed=11, max_cycles=40_000)
    assert [(a, v) for _, a, v, _ in seen] == [(a, v) for a, v, _ in writes]
    assert end["what"] == "done"
    # CKE, then 20,000 cycles before the first precharge.
    assert seen[3][0] - seen[2][0] >= 20_000


@pytest.mark.parametrize("failing", [0, 3])
def test_err_stops_the_table(failing):
    writes = [(4 * i, i, 2) for i in range(6)]
    seen, end = play(writes, seed=failing,
                     answer=lambda index: "err" if index == failing else "ack")
    assert len(seen) == failing + 1 and end["what"] == "error"


def test_silence_is_an_error_not_a_hang():
    writes = [(4 * i, i, 0) for i in range(4)]
    seen, end = play(writes, seed=2, timeout=20,
                     answer=lambda index: "silent" if index == 2 else "ack")
    assert len(seen) == 2 and end["what"] == "error"
    assert end["cycle"] - seen[-1][0] <= 20 + 3


@pytest.mark.parametrize("writes, timeout, message", [
    ([], 256, "writes must hold at least one register write"),
    ([(2, 0, 0)], 256, r"each write must be \(byte address"),
    ([(0, 1 << 32, 0)], 256, r"each write must be \(byte address"),
    ([(0, 0, -1)], 256, r"each write must be \(byte address"),
    ([(0, 0, 0)], 0, "timeout must be a positive integer, not 0"),
])
def test_bad_tables_refused(writes, timeout, message):
    with pytest.raises(ValueError, match=message):
        SdramInitializer(writes, timeout=timeout)
