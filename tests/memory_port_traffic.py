"""Random traffic on a memory port (:class:`convhw.gateware.memory_port.MemoryPortSignature`)
for the Amaranth simulator, shared by the bus-master tests: legal commands, random write data
and strobes, the results they must give (from a shadow :class:`~convhw.sim_memory.
SparseMemory`), and a runner that plays the issuer with random pauses on its five channels.

Reads and writes run at the same time, so they go to separate arenas (the port does not order
them); the written arena is read back afterwards, when every write has been answered.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from amaranth.sim import Simulator

from convhw.gateware.memory_port import BOUNDARY, split_bursts
from convhw.sim_memory import SparseMemory, stream_get, stream_put

READ_ARENA = (0x0001_0000, 0x3000)
WRITE_ARENA = (0x0004_0000, 0x3000)


@dataclass
class Command:
    addr: int
    beats: int
    data: list[int] = field(default_factory=list)   # writes: per beat
    strb: list[int] = field(default_factory=list)


def _in(address, ranges):
    return any(start <= address < end for start, end in ranges)


class Traffic:
    """Random commands and their expected results.

    Parameters
    ----------
    seed : int
    data_width : int
    reads, writes : int
        Number of commands of each kind.
    errors : list of (start, end)
        Byte ranges the slave answers with errors.
    max_beats : int
        Upper bound on a command's beats (besides 256 and the 4 KiB rule).
    """

    def __init__(self, seed: int, data_width: int, *, reads: int = 20, writes: int = 20,
                 errors=(), max_beats: int = 64) -> None:
        self.rng = rng = random.Random(seed)
        self.beat = data_width // 8
        self.errors = list(errors)
        self.shadow = SparseMemory()
        self.reads = [self._command(READ_ARENA, max_beats) for _ in range(reads)]
        self.writes = [self._command(WRITE_ARENA, max_beats) for _ in range(writes)]
        for cmd in self.writes:
            for _ in range(cmd.beats):
                cmd.data.append(rng.getrandbits(data_width))
                kind = rng.random()
                strb = (1 << self.beat) - 1 if kind < 0.6 else \
                    0 if kind < 0.65 else rng.getrandbits(self.beat)
                cmd.strb.append(strb)
        # Expected results: writes in command order; reads see only their own arena.
        self.write_errors = []
        for cmd in self.writes:
            error = False
            for i in range(cmd.beats):
                address = cmd.addr + i * self.beat
                if _in(address, self.errors):
                    error = True
                else:
                    self.shadow.write_word(address, cmd.data[i], self.beat, cmd.strb[i])
            self.write_errors.append(error)
        self.read_beats = []                      # (data or None if error, last)
        for cmd in self.reads:
            for i in range(cmd.beats):
                address = cmd.addr + i * self.beat
                error = _in(address, self.errors)
                data = None if error else self.shadow.read_word(address, self.beat)
                self.read_beats.append((data, i == cmd.beats - 1))

    def _command(self, arena, max_beats) -> Command:
        rng = self.rng
        base, size = arena
        addr = base + rng.randrange(size // self.beat) * self.beat
        page_left = (BOUNDARY - addr % BOUNDARY) // self.beat
        beats = rng.choice([1, 2, rng.randint(1, 8), rng.randint(1, max_beats)])
        return Command(addr, min(beats, page_left, 256))

    @property
    def write_beats(self) -> int:
        return sum(cmd.beats for cmd in self.writes)


async def _idle(ctx, rng, pause):
    while pause and rng.random() < pause:
        await ctx.tick()


def run_traffic(dut, slave, traffic: Traffic, memory: SparseMemory, *, pause: float, seed: int,
                limit: int = 40000, readback: bool = True) -> dict:
    """Play ``traffic`` on ``dut.port`` with the slave process ``slave`` (serving ``memory``)
    behind the DUT, random pauses of probability ``pause`` on the issuer's channels; check
    every read beat and write response in order, then that nothing is left over, then read the
    written arena back and compare ``memory`` with the shadow byte for byte.

    Returns statistics (``cycles``). Raises AssertionError naming ``seed`` on any difference or
    when the traffic does not finish within ``limit`` cycles.
    """
    port = dut.port
    rng = random.Random(seed)
    rngs = [random.Random(rng.getrandbits(32)) for _ in range(5)]
    done = set()
    stats = {"cycles": 0}
    what = f"(seed {seed})"

    async def read_cmds(ctx):
        for cmd in traffic.reads:
            await _idle(ctx, rngs[0], pause)
            await stream_put(ctx, port.read_cmd, {"addr": cmd.addr, "len": cmd.beats - 1})
        done.add("read_cmd")

    async def write_cmds(ctx):
        for cmd in traffic.writes:
            await _idle(ctx, rngs[1], pause)
            await stream_put(ctx, port.write_cmd, {"addr": cmd.addr, "len": cmd.beats - 1})
        done.add("write_cmd")

    async def write_data(ctx):
        for cmd in traffic.writes:
            for i in range(cmd.beats):
                await _idle(ctx, rngs[2], pause)
                await stream_put(ctx, port.write_data, {"data": cmd.data[i], "strb": cmd.strb[i],
                                                        "last": i == cmd.beats - 1})
        done.add("write_data")

    async def read_data(ctx):
        for index, (data, last) in enumerate(traffic.read_beats):
            await _idle(ctx, rngs[3], pause)
            beat = await stream_get(ctx, port.read_data)
            assert beat.last == last, f"read beat {index}: last {beat.last} {what}"
            assert beat.error == (data is None), f"read beat {index}: error {beat.error} {what}"
            if data is not None:
                assert beat.data == data, \
                    f"read beat {index}: {beat.data:#x}, expected {data:#x} {what}"
        done.add("read_data")

    async def write_resp(ctx):
        for index, error in enumerate(traffic.write_errors):
            await _idle(ctx, rngs[4], pause)
            resp = await stream_get(ctx, port.write_resp)
            assert resp.error == error, f"write response {index}: error {resp.error} {what}"
        done.add("write_resp")

    async def supervisor(ctx):
        cycles = 0
        while len(done) < 5:
            if cycles == limit:
                raise AssertionError(f"traffic unfinished after {limit} cycles, done: "
                                     f"{sorted(done)} {what}")
            await ctx.tick()
            cycles += 1
        stats["cycles"] = cycles
        for _ in range(30):   # nothing left over
            assert not ctx.get(port.read_data.valid), f"a read beat left over {what}"
            assert not ctx.get(port.write_resp.valid), f"a write response left over {what}"
            await ctx.tick()
        assert memory.written == traffic.shadow.written, \
            f"memory differs from the shadow: {_diff(memory, traffic.shadow)} {what}"
        if readback:
            for cmd in traffic.writes:
                for burst in split_bursts(cmd.addr, cmd.beats * traffic.beat,
                                          traffic.beat * 8):
                    await stream_put(ctx, port.read_cmd, {"addr": burst.addr, "len": burst.len})
                    for i in range(burst.beats):
                        address = burst.addr + i * traffic.beat
                        beat = await stream_get(ctx, port.read_data)
                        assert beat.error == _in(address, traffic.errors)
                        if not beat.error:
                            want = traffic.shadow.read_word(address, traffic.beat)
                            assert beat.data == want, \
                                f"read back {address:#x}: {beat.data:#x} != {want:#x} {what}"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(slave)
    for bench in (read_cmds, write_cmds, write_data, read_data, write_resp, supervisor):
        sim.add_testbench(bench)
    sim.run()
    return stats


def _diff(memory, shadow) -> str:
    got, want = memory.written, shadow.written
    keys = sorted(set(got) | set(want))
    bad = [k for k in keys if got.get(k) != want.get(k)]
    if not bad:
        return "none"
    k = bad[0]
    return f"{len(bad)} bytes, first at {k:#x}: {got.get(k)} vs {want.get(k)}"


def measure(dut, slave, *, kind: str, addr: int, beats: int, data_width: int,
            limit: int = 2000) -> list[int]:
    """Cycle numbers of one command of ``beats`` beats on an idle port with nothing paused:
    the issuer presents the command (and, for a write, its data, one beat per cycle as soon as
    taken) in cycle 0 and is always ready. Returns, for a read, the cycle of every
    ``read_data`` transfer; for a write, ``[cycle of the write_resp transfer]``."""
    port = dut.port
    result = []

    async def bench(ctx):
        cmd = port.read_cmd if kind == "read" else port.write_cmd
        ctx.set(port.read_data.ready, 1)
        ctx.set(port.write_resp.ready, 1)
        ctx.set(cmd.payload, {"addr": addr, "len": beats - 1})
        ctx.set(cmd.valid, 1)
        sent = 0
        if kind == "write":
            ctx.set(port.write_data.payload, {"data": 0, "strb": -1, "last": beats == 1})
            ctx.set(port.write_data.valid, 1)
        for cycle in range(limit):
            _, _, cmd_ready, wd_ready, rd_valid, wr_valid = await ctx.tick().sample(
                cmd.ready, port.write_data.ready, port.read_data.valid, port.write_resp.valid)
            if cmd_ready:
                ctx.set(cmd.valid, 0)
            if kind == "write" and wd_ready and sent < beats:
                sent += 1
                ctx.set(port.write_data.payload, {"data": sent, "strb": -1,
                                                  "last": sent == beats - 1})
                ctx.set(port.write_data.valid, sent < beats)
            if kind == "read" and rd_valid:
                result.append(cycle)
                if len(result) == beats:
                    return
            if kind == "write" and wr_valid:
                result.append(cycle)
                return
        raise AssertionError(f"{kind} of {beats} beats unfinished after {limit} cycles")

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(slave)
    sim.add_testbench(bench)
    sim.run()
    return result
