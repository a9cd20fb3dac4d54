# amaranth: UnusedElaboratable=no
"""LiteDramMaster in the Amaranth simulator, against a model of LiteDRAM's native port: the
shared memory-port traffic (random bursts, strobes and pauses on every channel) served exactly,
beats beyond the memory refused with errors instead of wrapping, and LiteDRAM's read data never
stalled. With the generated core and the chip it is exercised in the sdram-ulx3s bench."""

from __future__ import annotations

import random
from collections import deque

import pytest
from amaranth.sim import Simulator

from convhw.gateware.litedram_master import LiteDramMaster
from convhw.sim_memory import SparseMemory, stream_get, stream_put

from .memory_port_traffic import WRITE_ARENA, Traffic, run_traffic


def native_port(dut, memory: SparseMemory, *, seed: int, latency: int = 4, pause: float = 0.3,
                log: dict | None = None):
    """LiteDRAM's native port as a process: commands taken when ``cmd_ready`` (random), served
    in order; a write's data asked for with ``wdata_ready`` once it is the oldest command (as a
    bank machine does), a read's data returned ``latency`` cycles after its command at the
    earliest, for one cycle, with no regard for ``rdata_ready`` (LiteDRAM cannot wait: the
    model checks it is high)."""
    rng = random.Random(seed)
    n = dut.native
    size = len(n.wdata_data) // 8
    log = {} if log is None else log
    log.setdefault("beyond", 0)

    async def process(ctx):
        ops = deque()                 # [kind, word, due cycle]
        cycle = 0
        driven = {"cmd_ready": 0, "wdata_ready": 0, "rdata_valid": 0}
        for name in driven:
            ctx.set(getattr(n, name), 0)
        samples = (n.cmd_valid, n.cmd_we, n.cmd_addr, n.wdata_valid, n.wdata_data, n.wdata_we,
                   n.rdata_ready)
        while True:
            _, _, cmd_valid, cmd_we, cmd_addr, w_valid, w_data, w_we, r_ready = \
                await ctx.tick().sample(*samples)
            cycle += 1
            if driven["rdata_valid"]:
                assert r_ready, "LiteDRAM's read data was stalled (rdata_ready low)"
                ops.popleft()
            if driven["wdata_ready"] and w_valid:
                _, word, _ = ops.popleft()
                memory.write_word(word * size, w_data, size, w_we)
            if driven["cmd_ready"] and cmd_valid:
                ops.append(["w" if cmd_we else "r", cmd_addr, cycle + latency])
            # The next cycle's answers: only the oldest command is served.
            head = ops[0] if ops else None
            wdata_ready = head is not None and head[0] == "w" and rng.random() > pause
            rdata_valid = head is not None and head[0] == "r" and head[2] <= cycle
            driven = {"cmd_ready": int(len(ops) < 8 and rng.random() > pause),
                      "wdata_ready": int(wdata_ready), "rdata_valid": int(rdata_valid)}
            for name, value in driven.items():
                ctx.set(getattr(n, name), value)
            if rdata_valid:
                ctx.set(n.rdata_data, memory.read_word(head[1] * size, size))
    return process


@pytest.mark.parametrize("seed, pause", [(1, 0.0), (2, 0.3), (3, 0.6)])
def test_traffic_in_memory(seed, pause):
    dut = LiteDramMaster(64, memory_bytes=1 << 20)
    memory = SparseMemory()
    traffic = Traffic(seed, 64)
    run_traffic(dut, native_port(dut, memory, seed=seed, pause=pause), traffic, memory,
                pause=pause, seed=seed)


def test_beats_beyond_the_memory_are_errors_not_wrapped():
    # A 256 KiB memory: the written arena (from 256 KiB) lies beyond it. Every write there is
    # answered with an error and nothing reaches LiteDRAM, which would have wrapped it onto
    # the read arena (a 18-bit word address keeps only the low bits).
    seed = 4
    size = 1 << 18
    assert WRITE_ARENA[0] >= size
    dut = LiteDramMaster(64, memory_bytes=size)
    memory = SparseMemory()
    traffic = Traffic(seed, 64, errors=[(size, 1 << 32)])
    run_traffic(dut, native_port(dut, memory, seed=seed), traffic, memory, pause=0.3,
                seed=seed)


def test_burst_across_the_end():
    # 4 beats from 16 bytes below the end: 2 written and read, 2 refused, in order.
    size = 1 << 16
    dut = LiteDramMaster(64, memory_bytes=size, read_buffer=4)
    memory = SparseMemory()
    seen = {}

    async def bench(ctx):
        port = dut.port
        await stream_put(ctx, port.write_cmd, {"addr": size - 16, "len": 3})
        for i in range(4):
            await stream_put(ctx, port.write_data, {"data": 0x1111 * (i + 1), "strb": 0xFF,
                                                    "last": i == 3})
        seen["write_error"] = (await stream_get(ctx, port.write_resp)).error
        await stream_put(ctx, port.read_cmd, {"addr": size - 16, "len": 3})
        seen["beats"] = [await stream_get(ctx, port.read_data) for _ in range(4)]

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(native_port(dut, memory, seed=5))
    sim.add_testbench(bench)
    sim.run_until(5e-5)
    assert seen["write_error"] == 1
    beats = [(b.data, b.error, b.last) for b in seen["beats"]]
    assert beats == [(0x1111, 0, 0), (0x2222, 0, 0), (0, 1, 0), (0, 1, 1)]
    assert memory.read_word(size - 16, 8) == 0x1111 and memory.read_word(size - 8, 8) == 0x2222
    # Nothing wrapped onto the first words.
    assert memory.read_word(0, 8) != 0x3333 and memory.read_word(8, 8) != 0x4444


@pytest.mark.parametrize("kwargs, message", [
    ({"memory_bytes": 3 << 20}, "memory_bytes must be a power of two"),
    ({"memory_bytes": 4}, "memory_bytes must be a power of two"),
    ({"read_buffer": 1}, "read_buffer must be an integer from 2 to 256, not 1"),
])
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LiteDramMaster(64, **kwargs)
