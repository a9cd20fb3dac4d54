# amaranth: UnusedElaboratable=no
# (Loaders built only to inspect their signature, or whose constructor raises, are never
# elaborated.)
"""The input loader in the Amaranth simulator, against the list model's ``gather_window``:
random windows (segments, empty second segments, contiguous and strided pixels, unaligned
addresses, 1 to 4 chunks) on a stream-level memory with latency, random stalls on both
channels and error ranges; back-to-back commands; exact cycle counts; Verilog."""

from __future__ import annotations

import functools
import math
import random
from collections import deque

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Module, Shape
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import Out
from amaranth.sim import Simulator

from convhw import timing as timing_constants
from convhw.compiler.layout import unpack_elements
from convhw.compiler.list_model import Memory, MemoryFault, gather_window
from convhw.config import EngineConfig
from convhw.gateware.axi4 import Axi4Master
from convhw.gateware.input_loader import BufferFormat, InputLoadCommand, InputLoader
from convhw.gateware.memory_port import BOUNDARY, MAX_BEATS, MemoryPortSignature
from convhw.sim_memory import SparseMemory, axi4_slave, stream_get, stream_put

from .helpers import exactly

SMALL = EngineConfig.preset("small")            # 4-byte words, 8-byte beats
DEFAULT = EngineConfig.preset("default")        # 8-byte words, 8-byte beats
ROWS12 = EngineConfig(rows=12, cols=4, input_depth=1024, weight_depth=512, acc_depth=256)
# Two-byte elements of 12 bits; 16-byte beats.
WIDE = EngineConfig(rows=4, cols=4, input_width=12, input_depth=512, weight_depth=512,
                    acc_depth=256, memory_width=128)
# 8-byte words in 4-byte beats.
NARROW = EngineConfig(rows=8, cols=4, input_depth=512, weight_depth=512, acc_depth=256,
                      memory_width=32)

MEMORY_SIZE = 1 << 16
AXES = "ZYX"


# -- windows --------------------------------------------------------------------------------------


def descriptor(addr, pitches, in_chunks, segments):
    """The ``gather_window`` descriptor values: ``pitches`` (pixel, row, plane), ``segments``
    per axis z, y, x: (seg0_start, seg0_len, seg1_start, seg1_len)."""
    d = {"INPUT_ADDR": addr, "INPUT_PIXEL_PITCH": pitches[0], "INPUT_ROW_PITCH": pitches[1],
         "INPUT_PLANE_PITCH": pitches[2], "IN_CHUNKS": in_chunks}
    for axis, seg in zip(AXES, segments):
        for name, value in zip(("SEG0_START", "SEG0_LEN", "SEG1_START", "SEG1_LEN"), seg):
            d[f"{axis}_{name}"] = value
    return d


def command(d, bank):
    """The loader's command for the descriptor values ``d``."""
    return {
        "addr": d["INPUT_ADDR"], "pixel_pitch": d["INPUT_PIXEL_PITCH"],
        "row_pitch": d["INPUT_ROW_PITCH"], "plane_pitch": d["INPUT_PLANE_PITCH"],
        "in_chunks": d["IN_CHUNKS"], "bank": bank,
        **{axis.lower(): {name.lower(): d[f"{axis}_{name}"] for name in (
            "SEG0_START", "SEG0_LEN", "SEG1_START", "SEG1_LEN")} for axis in AXES},
    }


def window_words(d):
    return d["IN_CHUNKS"] * math.prod(d[f"{a}_SEG0_LEN"] + d[f"{a}_SEG1_LEN"] for a in AXES)


def window_span(d, config):
    """One past the highest byte the window reads."""
    run = d["IN_CHUNKS"] * config.rows * config.input_bytes
    top = d["INPUT_ADDR"] + run
    for axis, pitch in zip(AXES, ("PLANE", "ROW", "PIXEL")):
        end = max(d[f"{axis}_SEG0_START"] + d[f"{axis}_SEG0_LEN"],
                  d[f"{axis}_SEG1_START"] + d[f"{axis}_SEG1_LEN"])
        top += max(end - 1, 0) * d[f"INPUT_{pitch}_PITCH"]
    return top


def random_window(rng, config, max_words=96):
    """Random segments (a second one half the time, an empty first one sometimes), contiguous
    or strided (wider or narrower than a pixel) pixels, any element-aligned address."""
    ib = config.input_bytes
    run_unit = config.rows * ib
    while True:
        in_chunks = rng.randint(1, 4)
        run = in_chunks * run_unit
        segments = []
        for top, longest in ((3, 2), (8, 3), (24, 8)):
            seg1 = (rng.randint(0, top), rng.randint(1, longest)) if rng.random() < 0.5 \
                else (rng.randint(0, top), 0)
            seg0 = (rng.randint(0, top), 0 if seg1[1] and rng.random() < 0.15
                    else rng.randint(1, longest))
            segments.append(seg0 + seg1)
        kind = rng.random()
        pixel = run if kind < 0.5 else ib * rng.randint(run // ib + 1, 3 * run // ib) \
            if kind < 0.85 else ib * rng.randint(0, run // ib)
        row = ib * rng.randint(0, 48 * run // ib)
        plane = ib * rng.randint(0, 400 * run // ib)
        d = descriptor(0, (pixel, row, plane), in_chunks, segments)
        words = window_words(d)
        span = window_span(d, config)
        if 0 < words <= max_words and span < MEMORY_SIZE:
            d["INPUT_ADDR"] = ib * rng.randrange((MEMORY_SIZE - span) // ib)
            return d


# -- the memory, stream level ---------------------------------------------------------------------


async def memory_slave(ctx, dut, memory, *, latency, pause_cmd=0.0, pause_data=0.0, seed=0,
                       log=None):
    """Serve ``dut.read_cmd``/``dut.read_data`` from ``memory`` (a list model
    :class:`Memory`): a beat that touches ``memory.errors`` or lies beyond it comes back with
    ``error``; commands are checked (aligned, no 4 KiB crossing); the first beat of a command
    comes ``latency`` cycles after it at the earliest, commands in order; ``read_cmd.ready`` is
    low and a due beat waits with the given probabilities. ``log`` gets ``(cycle, addr,
    beats)`` for every command."""
    beat = len(dut.read_data.payload.data) // 8
    rng = random.Random(seed * 7919 + 1)
    bursts = deque()
    presented = False
    cmd_ready = False
    cycle = 0
    ctx.set(dut.read_cmd.ready, 0)
    ctx.set(dut.read_data.valid, 0)
    async for _, _, cmd_valid, cmd, data_ready in ctx.tick().sample(
            dut.read_cmd.valid, dut.read_cmd.payload, dut.read_data.ready):
        cycle += 1
        if presented and data_ready:
            presented = False
        if cmd_ready and cmd_valid:
            addr, beats = cmd.addr, cmd.len + 1
            assert addr % beat == 0, f"read at {addr:#x} not aligned to {beat} bytes " \
                                     f"(seed {seed})"
            assert addr // BOUNDARY == (addr + beats * beat - 1) // BOUNDARY, \
                f"read at {addr:#x} of {beats} beats crosses 4 KiB (seed {seed})"
            bursts.append([cycle + latency, addr, beats])
            if log is not None:
                log.append((cycle, addr, beats))
        if not presented and bursts and bursts[0][0] <= cycle + 1 \
                and not (pause_data and rng.random() < pause_data):
            burst = bursts[0]
            addr = burst[1]
            error = addr + beat > memory.size or any(
                addr < hi and lo < addr + beat for lo, hi in memory.errors)
            value = 0 if error else int.from_bytes(memory.data[addr:addr + beat].tobytes(),
                                                   "little")
            ctx.set(dut.read_data.payload, {"data": value, "last": burst[2] == 1,
                                            "error": error})
            presented = True
            burst[1] += beat
            burst[2] -= 1
            if not burst[2]:
                bursts.popleft()
        ctx.set(dut.read_data.valid, presented)
        cmd_ready = not (pause_cmd and rng.random() < pause_cmd)
        ctx.set(dut.read_cmd.ready, cmd_ready)


def random_memory(seed, errors=()):
    memory = Memory(MEMORY_SIZE, errors)
    memory.data[:] = np.random.default_rng(seed).integers(0, 256, MEMORY_SIZE, dtype=np.uint8)
    return memory


# -- the runner -----------------------------------------------------------------------------------


def run_loader(config, memory, windows, *, seed, latency=3, pause_cmd=0.0, pause_data=0.0,
               idle=0.0, done_pause=0.0, log=None, limit=20000, dut=None, slave=None):
    """Run ``windows`` (``(descriptor values, bank)``) through a loader on ``memory``; returns
    the buffer writes ``(cycle, addr, lanes)`` and the ``done`` transfers ``(cycle, error)``,
    cycles counted from the first edge, and the cycle each command was taken.

    By default the loader's read port is served by :func:`memory_slave`; ``dut`` (with the
    loader's ``command``, ``buffer`` and ``done``) and ``slave`` (a process) replace both."""
    if dut is None:
        dut = InputLoader(config)
        slave = functools.partial(memory_slave, dut=dut, memory=memory, latency=latency,
                                  pause_cmd=pause_cmd, pause_data=pause_data, seed=seed, log=log)
    rng = random.Random(seed)
    writes, dones, taken = [], [], []
    iw = config.input_width

    async def driver(ctx):
        for d, bank in windows:
            while idle and rng.random() < idle:
                await ctx.tick()
            await stream_put(ctx, dut.command, command(d, bank))

    async def monitor(ctx):
        cycle = 0
        async for _, _, en, addr, value, cmd_valid, cmd_ready in ctx.tick().sample(
                dut.buffer.en, dut.buffer.addr, dut.buffer.data, dut.command.valid,
                dut.command.ready):
            cycle += 1
            if cmd_valid and cmd_ready:
                taken.append(cycle)
            if en:
                writes.append((cycle, addr, [value >> (iw * lane) & ((1 << iw) - 1)
                                             for lane in range(config.rows)]))

    async def consumer(ctx):
        cycle = 0
        ready = True
        ctx.set(dut.done.ready, ready)
        async for _, _, valid, payload in ctx.tick().sample(dut.done.valid, dut.done.payload):
            cycle += 1
            if ready and valid:
                dones.append((cycle, payload.error))
                if len(dones) == len(windows):
                    break
            assert cycle < limit, f"loader hangs: {len(dones)} of {len(windows)} done " \
                                  f"(seed {seed})"
            ready = not (done_pause and rng.random() < done_pause)
            ctx.set(dut.done.ready, ready)
        for _ in range(40):                    # nothing after the last done
            await ctx.tick()
            assert not ctx.get(dut.done.valid), f"a done too many (seed {seed})"

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(slave)
    sim.add_process(monitor)
    sim.add_testbench(driver)
    sim.add_testbench(consumer)
    sim.run()
    return writes, dones, taken


def check(config, memory, windows, writes, dones, seed):
    """Writes and dones against ``gather_window``: every command's words in order from its
    bank's first word, and its done (with ``error`` exactly when the model faults) after its
    last write."""
    half = config.input_depth // 2
    mask = (1 << config.input_width) - 1
    what = f"(seed {seed})"
    assert len(dones) == len(windows), what
    position = 0
    for index, ((d, bank), (done_cycle, error)) in enumerate(zip(windows, dones)):
        count = window_words(d)
        try:
            want = gather_window(memory, d, config)
            fault = False
        except MemoryFault:
            want, fault = None, True
        assert error == fault, f"command {index}: done.error {error}, model fault {fault} {what}"
        got = writes[position:position + count]
        position += count
        assert len(got) == count, f"command {index}: {len(got)} writes of {count} {what}"
        for i, (_, addr, lanes) in enumerate(got):
            assert addr == bank * half + i, f"command {index} word {i}: address {addr} {what}"
            if want is not None:
                expect = [int(v) & mask for v in want[i]]
                assert lanes == expect, \
                    f"command {index} word {i}: {lanes} != {expect} ({d}) {what}"
        if got:
            assert done_cycle > got[-1][0], f"command {index}: done before its last write {what}"
    assert position == len(writes), f"{len(writes) - position} writes too many {what}"


def check_random(config, seed, count=10, **kwargs):
    rng = random.Random(seed)
    memory = random_memory(seed)
    windows = [(random_window(rng, config), rng.randint(0, 1)) for _ in range(count)]
    writes, dones, _ = run_loader(config, memory, windows, seed=seed, **kwargs)
    check(config, memory, windows, writes, dones, seed)


# -- tests ----------------------------------------------------------------------------------------


def test_init():
    dut = InputLoader(DEFAULT, 40)
    port = MemoryPortSignature(64, 40)
    members = dut.signature.members
    assert members["read_cmd"].signature == stream.Signature(port.cmd_layout)
    assert members["read_data"].signature == stream.Signature(port.read_data_layout).flip()
    assert dut.command_layout == InputLoadCommand(DEFAULT)
    layout = dict(InputLoadCommand(DEFAULT))
    assert [name for name in layout] == ["addr", "pixel_pitch", "row_pitch", "plane_pitch",
                                         "in_chunks", "z", "y", "x", "bank", "base"]
    assert Shape.cast(layout["in_chunks"].shape).width == 13
    assert layout["x"].shape.size == 64 and layout["bank"].width == 1
    assert (dut.addr_width, dut.word_bytes, dut.window_beats) == (40, 8, 2)
    assert InputLoader(ROWS12).window_beats == 3 and InputLoader(SMALL).window_beats == 2


@pytest.mark.parametrize(("args", "error", "message"), [
    (("default",), TypeError, "config must be an EngineConfig, not 'default'"),
    ((DEFAULT, 8), ValueError, "addr_width must be an integer from 12 to 64, not 8"),
])
def test_init_wrong(args, error, message):
    with pytest.raises(error, match=exactly(message)):
        InputLoader(*args)


def test_init_wrong_queue_depth():
    with pytest.raises(ValueError, match=exactly("queue_depth must be at least 2, not 1")):
        InputLoader(DEFAULT, queue_depth=1)


@pytest.mark.parametrize(("config", "seed"), [
    (SMALL, 1), (SMALL, 2), (DEFAULT, 3), (DEFAULT, 4), (ROWS12, 5), (ROWS12, 6), (WIDE, 7),
    (NARROW, 16),
])
def test_sim_random_windows(config, seed):
    """Random windows, random stalls on both memory channels, random gaps between commands
    and a slow done consumer."""
    rng = random.Random(seed)
    check_random(config, seed, latency=rng.randint(1, 8), pause_cmd=rng.choice([0.0, 0.3]),
                 pause_data=rng.choice([0.2, 0.5]), idle=0.3, done_pause=0.3)


@pytest.mark.parametrize(("config", "seed"), [(SMALL, 8), (DEFAULT, 9), (ROWS12, 10)])
def test_sim_back_to_back(config, seed):
    """Commands offered back to back on a memory without stalls."""
    check_random(config, seed, latency=2)


def test_sim_empty_windows():
    """A window without words (an empty axis, or no chunks) still gets its done."""
    rng = random.Random(11)
    memory = random_memory(11)
    windows = []
    for index in range(6):
        d = random_window(rng, DEFAULT, 24)
        if index % 2:
            if index == 3:
                d["IN_CHUNKS"] = 0
            else:
                axis = rng.choice(AXES)
                d[f"{axis}_SEG0_LEN"] = d[f"{axis}_SEG1_LEN"] = 0
        windows.append((d, index % 2))
    writes, dones, _ = run_loader(DEFAULT, memory, windows, seed=11, done_pause=0.5)
    check(DEFAULT, memory, windows, writes, dones, 11)


@pytest.mark.parametrize(("config", "seed"), [(SMALL, 12), (ROWS12, 13)])
def test_sim_error_beats(config, seed):
    """Beats from error ranges (beat-aligned, so that a beat fails exactly when one of the
    window's bytes lies in a range) set done.error of their command only; every beat is
    consumed and the later commands load normally."""
    rng = random.Random(seed)
    beat = config.beat_bytes
    windows = [(random_window(rng, config), rng.randint(0, 1)) for _ in range(14)]
    errors = []
    for d, _ in windows[1::3]:              # a beat of one of the window's pixels
        z, y, x = (d[f"{a}_SEG0_START"] + rng.randrange(max(d[f"{a}_SEG0_LEN"], 1))
                   for a in AXES)
        addr = (d["INPUT_ADDR"] + z * d["INPUT_PLANE_PITCH"] + y * d["INPUT_ROW_PITCH"]
                + x * d["INPUT_PIXEL_PITCH"]) // beat * beat
        errors.append((addr, addr + beat * rng.randint(1, 2)))
    memory = random_memory(seed, errors)
    faults = 0
    for d, _ in windows:
        try:
            gather_window(memory, d, config)
        except MemoryFault:
            faults += 1
    assert 0 < faults < len(windows), f"seed {seed}: {faults} faulting windows"
    writes, dones, _ = run_loader(config, memory, windows, seed=seed, latency=4,
                                  pause_cmd=0.2, pause_data=0.3)
    check(config, memory, windows, writes, dones, seed)


def test_sim_long_bursts():
    """A contiguous segment of 300 beats from a page start: a 256-beat command and the rest;
    one from a page's last beat and one across a page end: cut at 4 KiB."""
    memory = random_memory(14)
    log = []
    windows = [(descriptor(4096, (8, 0, 0), 1, [(0, 1, 0, 0), (0, 1, 0, 0), (0, 300, 0, 0)]), 0),
               (descriptor(8192 - 8, (8, 0, 0), 1, [(0, 1, 0, 0), (0, 1, 0, 0),
                                                    (0, 20, 0, 0)]), 1),
               (descriptor(3 * 4096 - 42, (16, 0, 0), 2, [(0, 1, 0, 0), (0, 1, 0, 0),
                                                          (0, 9, 0, 0)]), 0)]
    writes, dones, _ = run_loader(DEFAULT, memory, windows, seed=14, log=log)
    check(DEFAULT, memory, windows, writes, dones, 14)
    assert [(addr, beats) for _, addr, beats in log] == [
        (4096, MAX_BEATS), (4096 + 8 * MAX_BEATS, 300 - MAX_BEATS),
        (8192 - 8, 1), (8192, 19), (3 * 4096 - 48, 6), (3 * 4096, 13)]


def contiguous_window(words, rows=1, addr=0x1000, in_chunks=1, config=DEFAULT):
    run = in_chunks * config.rows * config.input_bytes
    return descriptor(addr, (run, words * run, 0), in_chunks,
                      [(0, 1, 0, 0), (0, rows, 0, 0), (0, words // in_chunks, 0, 0)])


def timing(config, windows, latency=1):
    memory = random_memory(15)
    writes, dones, taken = run_loader(config, memory, windows, seed=15, latency=latency)
    check(config, memory, windows, writes, dones, 15)
    return [w[0] for w in writes], [d[0] for d in dones], taken


@pytest.mark.parametrize("latency", [1, 4])
def test_sim_throughput(latency):
    """A contiguous window of N beat-sized words, no stalls: one word per cycle, the first
    word written 22 + latency cycles after the command was taken, done taken in the cycle after
    the last write (N + 22 + latency cycles in all); also over 4 rows (4 ranges) and for two
    commands back to back (the second command's start hidden behind the first's data)."""
    cycles, dones, taken = timing(DEFAULT, [(contiguous_window(64), 0)], latency)
    assert cycles == list(range(cycles[0], cycles[0] + 64))
    assert cycles[0] - taken[0] == 22 + latency
    assert dones[0] == cycles[-1] + 1 == taken[0] + 64 + 22 + latency
    cycles, dones, taken = timing(DEFAULT, [(contiguous_window(16, 4), 0)], latency)
    assert cycles == list(range(cycles[0], cycles[0] + 64))
    cycles, dones, taken = timing(DEFAULT, [(contiguous_window(32, 2), 0),
                                            (contiguous_window(32, 2, 0x3000), 1)], latency)
    assert cycles == list(range(cycles[0], cycles[0] + 128))


def test_sim_throughput_word_sizes():
    """Words of half a beat: one per cycle (the buffer's one write port); words of a beat and
    a half (rows=12): two per three cycles (a beat per cycle); unaligned beat-sized words: a
    beat per cycle, a range of 16 words taking 17 beats."""
    cycles, _, _ = timing(SMALL, [(contiguous_window(64, config=SMALL), 0)])
    assert cycles == list(range(cycles[0], cycles[0] + 64))
    cycles, _, _ = timing(ROWS12, [(contiguous_window(64, config=ROWS12), 0)])
    assert cycles[-1] - cycles[0] == 64 * 12 // 8 - 2
    cycles, _, _ = timing(DEFAULT, [(contiguous_window(16, 4, addr=0x1003), 0)])
    assert cycles[-1] - cycles[0] == 4 * 17 - 2


class LoaderOnAxi4(wiring.Component):
    """The loader's read port on an :class:`Axi4Master`."""

    def __init__(self, config):
        self.loader = InputLoader(config)
        self.master = Axi4Master(config.memory_width)
        self.command, self.buffer, self.done = (self.loader.command, self.loader.buffer,
                                                self.loader.done)
        super().__init__({"axi": Out(self.master.axi.signature)})

    def elaborate(self, platform):
        m = Module()
        m.submodules.loader, m.submodules.master = self.loader, self.master
        wiring.connect(m, self.loader.read_cmd, self.master.port.read_cmd)
        wiring.connect(m, self.loader.read_data, self.master.port.read_data)
        wiring.connect(m, self.master.axi, wiring.flipped(self.axi))
        return m


@pytest.mark.parametrize(("config", "seed"), [(DEFAULT, 17), (ROWS12, 18)])
def test_sim_on_axi4(config, seed):
    """Behind the AXI4 master, on the AXI4 slave model (random pauses on every channel, an
    error range): the same words and errors."""
    rng = random.Random(seed)
    windows = [(random_window(rng, config, 48), rng.randint(0, 1)) for _ in range(8)]
    d = windows[2][0]                       # its first pixel's first beat fails
    first = d["INPUT_ADDR"] + sum(
        (d[f"{a}_SEG0_START"] if d[f"{a}_SEG0_LEN"] else d[f"{a}_SEG1_START"])
        * d[f"INPUT_{pitch}_PITCH"] for a, pitch in zip(AXES, ("PLANE", "ROW", "PIXEL")))
    beat = config.beat_bytes
    errors = [(first // beat * beat, first // beat * beat + beat)]
    memory = random_memory(seed, errors)
    dut = LoaderOnAxi4(config)
    sparse = SparseMemory(lambda address: int(memory.data[address % MEMORY_SIZE]))
    slave = functools.partial(axi4_slave, axi=dut.axi, memory=sparse, latency=3, pause=0.3,
                              errors=errors, seed=seed)
    writes, dones, _ = run_loader(config, memory, windows, seed=seed, dut=dut, slave=slave,
                                  idle=0.2)
    assert [error for _, error in dones].count(1) >= 1, f"seed {seed}"
    check(config, memory, windows, writes, dones, seed)


def test_verilog():
    text = verilog.convert(InputLoader(ROWS12), name="input_loader", emit_src=False)
    assert "module input_loader" in text


def test_sim_throughput_strided():
    """Strided pixels of one beat each (a read command per pixel): one word per cycle, also
    from one row to the next. The walker's other transitions show when the ranges are this
    short: a second y segment costs a cycle, and the next command's start (its products and
    first addresses: the walker works on one command at a time) 16 cycles."""
    window = descriptor(0x1000, (16, 256, 0), 1, [(0, 1, 0, 0), (0, 4, 0, 0), (0, 8, 0, 0)])
    cycles, dones, _ = timing(DEFAULT, [(window, 0)])
    assert cycles == list(range(cycles[0], cycles[0] + 32))
    window = descriptor(0x1000, (16, 256, 0), 1, [(0, 1, 0, 0), (0, 2, 5, 2), (0, 8, 0, 0)])
    cycles, dones, _ = timing(DEFAULT, [(window, 0)] * 2)
    gaps = [b - a - 1 for a, b in zip(cycles, cycles[1:]) if b - a > 1]
    assert gaps == [1, 16, 1]


def test_sim_outstanding_reads():
    """With a memory latency of 24 cycles and one-beat ranges, a read command goes out in each
    of the 24 cycles before the first beat comes back, and the 64 words then follow one per
    cycle: the latency is hidden (the default queue holds 32 ranges)."""
    log = []
    memory = random_memory(19)
    windows = [(descriptor(0x1000, (16, 256, 0), 1, [(0, 1, 0, 0), (0, 4, 0, 0),
                                                     (0, 16, 0, 0)]), 0)]
    writes, dones, _ = run_loader(DEFAULT, memory, windows, seed=19, latency=24, log=log)
    check(DEFAULT, memory, windows, writes, dones, 19)
    first = log[0][0]
    assert [cycle for cycle, _, _ in log[:25]] == list(range(first, first + 25))
    cycles = [cycle for cycle, _, _ in writes]
    assert cycles == list(range(first + 26, first + 26 + 64))


# -- the same loader for the weight buffer and the column parameters -------------------------

def contiguous_block(addr, words, base):
    """A block loader's command: ``words`` contiguous buffer words from ``addr`` to ``base``."""
    return {"addr": addr, "words": words, "base": base}


def run_blocks(config, fmt, memory, blocks, *, latency, pause, seed):
    """Run ``blocks`` (``(addr, words, base)``) through a block loader for ``fmt`` on
    ``memory``; returns the buffer writes ``(cycle, addr, value)``, the ``done`` errors and
    the cycle each command was taken, cycles counted from the first edge."""
    dut = InputLoader(config, buffer=fmt, windowed=False)
    written, dones, taken = [], [], []

    async def driver(ctx):
        for addr, words, base in blocks:
            await stream_put(ctx, dut.command, contiguous_block(addr, words, base))

    async def monitor(ctx):
        cycle = 0
        async for _, _, en, a, value, valid, ready in ctx.tick().sample(
                dut.buffer.en, dut.buffer.addr, dut.buffer.data, dut.command.valid,
                dut.command.ready):
            cycle += 1
            if valid and ready:
                taken.append(cycle)
            if en:
                written.append((cycle, a, value))

    async def consumer(ctx):
        for _ in blocks:
            dones.append((await stream_get(ctx, dut.done)).error)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_process(functools.partial(memory_slave, dut=dut, memory=memory, latency=latency,
                                      pause_cmd=pause, pause_data=pause, seed=seed))
    sim.add_process(monitor)
    sim.add_testbench(driver)
    sim.add_testbench(consumer)
    sim.run()
    return written, dones, taken


@pytest.mark.parametrize(("config", "kind"), [(SMALL, "weights"), (DEFAULT, "weights"),
                                              (ROWS12, "weights"), (DEFAULT, "params")])
def test_sim_weight_and_params_blocks(config, kind):
    # What the list model does for LOAD_WEIGHTS (WEIGHT_WORDS words of `cols` weights from
    # WEIGHT_ADDR to WEIGHT_BASE) and for a job's column parameters (cols records of 8 bytes
    # into its slot).
    fmt = BufferFormat.for_weights(config) if kind == "weights" else \
        BufferFormat.for_params(config, slots=4)
    memory = random_memory(21)
    rng = random.Random(21)
    half = fmt.depth // 2
    blocks = []
    for _ in range(6):
        words = rng.randint(1, half) if kind == "weights" else config.cols
        base = rng.randrange(0, half - words + 1) if kind == "weights" else \
            rng.randrange(4) * config.cols
        addr = rng.randrange(0, MEMORY_SIZE // 2, fmt.element_bytes)
        blocks.append((addr, words, base))
    written, dones, _ = run_blocks(config, fmt, memory, blocks, latency=5, pause=0.2, seed=21)
    assert dones == [0] * len(blocks)
    assert len(written) == sum(words for _, words, _ in blocks)
    for index, (addr, words, base) in enumerate(blocks):
        got, written = written[:words], written[words:]
        raw = memory.data[addr:addr + words * fmt.word_bytes]
        elements = unpack_elements(raw, fmt.element_bytes).reshape(words, fmt.lanes)
        mask = (1 << fmt.lane_width) - 1
        expected = [(base + w, sum((int(v) & mask) << (fmt.lane_width * lane)
                                   for lane, v in enumerate(elements[w])))
                    for w in range(words)]
        assert [(a, value) for _, a, value in got] == expected, f"block {index}"


@pytest.mark.parametrize("latency", [1, 4])
def test_sim_block_timing(latency):
    """A block's range goes out in the cycle after its command is taken (no products, no
    walk): its first word is written block_loader_start_cycles() + 6 + latency cycles after,
    where a window's is loader_start_cycles() + 6 + latency (test_sim_throughput); then a
    word per cycle, also across two blocks back to back."""
    fmt = BufferFormat.for_weights(DEFAULT)
    blocks = [(0x1000, 24, 0), (0x2000, 40, 24)]
    written, dones, taken = run_blocks(DEFAULT, fmt, random_memory(23), blocks,
                                       latency=latency, pause=0.0, seed=23)
    assert dones == [0, 0]
    cycles = [cycle for cycle, _, _ in written]
    # From the range to the first write the two forms are the same: a window's first word
    # comes 22 + latency cycles after its command (test_sim_throughput), its range
    # loader_start_cycles() of them after the command.
    to_first_write = 22 - timing_constants.loader_start_cycles()
    assert cycles[0] - taken[0] == (timing_constants.block_loader_start_cycles()
                                    + to_first_write + latency)
    assert cycles == list(range(cycles[0], cycles[0] + 64))


def test_block_command_layout():
    """The block form takes the block's address, word count and first buffer word only."""
    fmt = BufferFormat.for_params(DEFAULT, slots=4)
    loader = InputLoader(DEFAULT, buffer=fmt, windowed=False)
    assert not loader.windowed and InputLoader(DEFAULT).windowed
    assert list(dict(loader.command_layout.members)) == ["addr", "words", "base"]
