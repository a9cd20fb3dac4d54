# amaranth: UnusedElaboratable=no
# (Components whose constructor raises, or built only to inspect, are never elaborated.)
"""``OutputWriter`` against :func:`convhw.compiler.list_model.write_results`: random tiles
drained from an accumulator memory into a stream-level write-memory model (seeded random stalls
on the command, data and response channels, a response latency, error ranges, burst checks),
the whole memory compared byte for byte with the list model's (so no byte outside the written
elements changes); write errors; back-to-back commands; exact cycle counts; validation;
Verilog."""

from __future__ import annotations

import random
from collections import deque

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import Elaboratable, Module, Signal, unsigned
from amaranth.lib.memory import Memory as AccMemory
from amaranth.sim import Simulator

from convhw.compiler.list_model import Memory, MemoryFault, write_results
from convhw.config import EngineConfig
from convhw.gateware.memory_port import BOUNDARY
from convhw.gateware.output_writer import OutputWriter, command_layout

from .helpers import exactly

_SMALL = {"rows": 4, "input_depth": 1024, "weight_depth": 512, "acc_depth": 256}
CONFIGS = {
    "small": EngineConfig.preset("small"),
    "default": EngineConfig.preset("default"),
    "cols12": EngineConfig(cols=12, **_SMALL),
    # 2-byte requantised elements, 32-bit and 128-bit beats
    "int12": EngineConfig(cols=6, input_width=12, memory_width=32, **_SMALL),
    "wide": EngineConfig(cols=4, memory_width=128, **_SMALL),
}


class Harness(Elaboratable):
    """The writer and an accumulator memory behind its read port, ``acc_read_latency`` cycles
    from address to data."""

    def __init__(self, dut: OutputWriter, banks: np.ndarray) -> None:
        self.dut = dut
        config = dut.config
        mask = (1 << config.acc_width) - 1
        self.init = [sum((int(v) & mask) << (c * config.acc_width) for c, v in enumerate(row))
                     for row in banks]

    def elaborate(self, platform):
        m = Module()
        dut, config = self.dut, self.dut.config
        m.submodules.dut = dut
        m.submodules.acc = acc = AccMemory(shape=unsigned(config.acc_word_width),
                                           depth=config.acc_depth, init=self.init)
        port = acc.read_port()
        m.d.comb += port.addr.eq(dut.acc_addr)
        if dut.acc_read_latency == 1:
            m.d.comb += dut.acc_data.eq(port.data)
        else:
            late = Signal.like(port.data)
            m.d.sync += late.eq(port.data)
            m.d.comb += dut.acc_data.eq(late)
        return m


class Tile:
    """One random command, its accumulator bank contents and its descriptor for the list
    model."""

    def __init__(self, config: EngineConfig, rng: random.Random, memory_size: int, *,
                 entries: int = 24, contiguous: bool | None = None,
                 requantize: bool | None = None, bank: int | None = None) -> None:
        cols = config.cols
        dims = rng.randint(1, 3)
        lens = [1, 1, 1]
        budget = min(entries, config.acc_depth // 2)
        for axis in range(3 - dims, 3):
            lens[axis] = rng.randint(1, max(1, int(round(budget ** (1 / dims)))) + 1)
        while np.prod(lens) > budget:
            lens[lens.index(max(lens))] -= 1
        starts = [rng.randint(0, 3) for _ in range(3)]
        oc = rng.choice([cols, rng.randint(1, cols)])
        requantize = rng.random() < 0.5 if requantize is None else requantize
        eb = config.input_bytes if requantize else config.raw_bytes
        entry = oc * eb
        if contiguous is None:
            contiguous = rng.random() < 0.5
        if contiguous:
            pixel = entry
        else:
            pixel = entry + eb * rng.choice([1, rng.randint(1, 12)])
        row = pixel * (starts[2] + lens[2] + rng.randint(0, 2))
        plane = row * (starts[1] + lens[1] + rng.randint(0, 2))
        span = plane * (starts[0] + lens[0])
        addr = eb * rng.randrange(max(1, (memory_size - span - 64) // eb))
        self.bank = rng.randint(0, 1) if bank is None else bank
        self.lens, self.starts = lens, starts
        lo, hi = config.acc_range
        edges = [lo, hi, 0, -1]
        n = int(np.prod(lens))
        self.acc = np.array([[rng.choice(edges) if rng.random() < 0.1 else rng.randint(lo, hi)
                              for _ in range(cols)] for _ in range(n)], np.int64)
        if requantize:     # keep some results inside the range, not all saturated
            self.acc //= 1 << rng.randint(0, config.acc_width - 4)
        self.columns = [{"BIAS": rng.choice([rng.randint(-2**31, 2**31 - 1),
                                             rng.randint(-1000, 1000)]),
                         "MULT": rng.choice([-32768, 32767, rng.randint(-32768, 32767)]),
                         "SHIFT": rng.choice([0, 63, rng.randint(0, 40), rng.randint(8, 20)])}
                        for _ in range(cols)]
        self.d = {"OUT_CHANNELS": oc, "REQUANTIZE": int(requantize),
                  "RELU": int(rng.random() < 0.3), "OUTPUT_ADDR": addr,
                  "OUTPUT_PIXEL_PITCH": pixel, "OUTPUT_ROW_PITCH": row,
                  "OUTPUT_PLANE_PITCH": plane}
        for axis, start, length in zip("ZYX", starts, lens):
            self.d[f"{axis}_OUT_START"] = start
            self.d[f"{axis}_OUT_LEN"] = length

    def command(self) -> dict:
        d = self.d
        return {
            "addr": d["OUTPUT_ADDR"], "pixel_pitch": d["OUTPUT_PIXEL_PITCH"],
            "row_pitch": d["OUTPUT_ROW_PITCH"], "plane_pitch": d["OUTPUT_PLANE_PITCH"],
            **{axis: {"out_start": d[f"{axis.upper()}_OUT_START"],
                      "out_len": d[f"{axis.upper()}_OUT_LEN"]} for axis in "zyx"},
            "out_channels": d["OUT_CHANNELS"], "requantize": d["REQUANTIZE"],
            "relu": d["RELU"], "bank": self.bank,
            "columns": [{"bias": c["BIAS"] & 0xFFFF_FFFF, "mult": c["MULT"],
                         "shift": c["SHIFT"]} for c in self.columns],
            **getattr(self, "overrides", {}),
        }

    def __repr__(self):
        return f"Tile(bank={self.bank}, {self.d})"


def run(config, tiles, *, seed, latency=2, lanes=None, pause=0.0, resp_latency=1,
        errors=(), memory_size=1 << 14, data_after_cmd=False, gaps=0.0, limit=20000):
    """Drain ``tiles`` (one command each, sent back to back unless ``gaps``) into a memory model
    and compare with the list model. Returns (done errors, cycles, trace)."""
    rng = random.Random(seed)
    what = f"(seed {seed})"
    dut = OutputWriter(config, acc_read_latency=latency, lanes=lanes)
    half = config.acc_depth // 2
    banks = np.array([[rng.randint(*config.acc_range) for _ in range(config.cols)]
                      for _ in range(config.acc_depth)], np.int64)
    init = bytes(rng.getrandbits(8) for _ in range(memory_size))
    memory = np.frombuffer(init, np.uint8).copy()
    beat = config.beat_bytes
    trace = {"cmd": [], "data": [], "done": []}
    if isinstance(pause, float):
        pause = dict.fromkeys(("cmd", "data", "resp"), pause)
    prng = {ch: random.Random(seed * 7 + k) for k, ch in enumerate(("cmd", "data", "resp"))}
    dones = []
    # a tile's bank holds its entries while it is written: tiles of one bank do not overlap in
    # time here, since each bank's contents are fixed for the whole run
    for tile in tiles:
        assert len(tile.acc) <= half
    fixed = {}
    for tile in tiles:
        key = tile.bank
        if key in fixed:
            tile.acc = fixed[key][:len(tile.acc)]
        else:
            banks[key * half:key * half + len(tile.acc)] = tile.acc
            fixed[key] = banks[key * half:(key + 1) * half]
    harness = Harness(dut, banks)

    def in_error(address):
        return any(lo <= address < hi for lo, hi in errors)

    async def commands(ctx):
        for tile in tiles:
            while rng.random() < gaps:
                await ctx.tick()
            ctx.set(dut.command.payload, tile.command())
            ctx.set(dut.command.valid, 1)
            await ctx.tick().until(dut.command.ready)
            ctx.set(dut.command.valid, 0)

    async def model(ctx):
        cmds, beats, resps = deque(), deque(), deque()
        ready = {"cmd": False, "data": False}
        resp_out = None
        cycle = 0
        async for _, _, cv, cp, dv, dp, rr in ctx.tick().sample(
                dut.write_cmd.valid, dut.write_cmd.payload, dut.write_data.valid,
                dut.write_data.payload, dut.write_resp.ready):
            cycle += 1
            if resp_out is not None and rr:
                resp_out = None
            if ready["cmd"] and cv:
                addr, length = int(cp.addr), int(cp.len)
                assert addr % beat == 0, f"command at {addr:#x} not beat-aligned {what}"
                end = addr + (length + 1) * beat
                assert addr // BOUNDARY == (end - 1) // BOUNDARY, \
                    f"command at {addr:#x}, {length + 1} beats, crosses 4 KiB {what}"
                cmds.append([addr, length + 1, 0, False])
                trace["cmd"].append((cycle, addr, length + 1))
            if ready["data"] and dv:
                beats.append((int(dp.data), int(dp.strb), int(dp.last)))
                trace["data"].append(cycle)
            while cmds and beats:
                cmd = cmds[0]
                value, strb, last = beats.popleft()
                index = cmd[2]
                assert last == (index == cmd[1] - 1), \
                    f"last {last} on beat {index} of {cmd[1]} at {cmd[0]:#x} {what}"
                address = cmd[0] + index * beat
                if in_error(address):
                    cmd[3] = True
                else:
                    assert address + beat <= memory_size, f"write at {address:#x} {what}"
                    for k in range(beat):
                        if strb >> k & 1:
                            memory[address + k] = value >> 8 * k & 0xFF
                cmd[2] += 1
                if cmd[2] == cmd[1]:
                    cmds.popleft()
                    resps.append((cycle + resp_latency, cmd[3]))
            if resp_out is None and resps and resps[0][0] <= cycle \
                    and prng["resp"].random() >= pause["resp"]:
                resp_out = resps.popleft()[1]
                ctx.set(dut.write_resp.payload.error, resp_out)
            ctx.set(dut.write_resp.valid, resp_out is not None)
            ready["cmd"] = prng["cmd"].random() >= pause["cmd"]
            ready["data"] = prng["data"].random() >= pause["data"] and (
                not data_after_cmd or bool(cmds) or (ready["cmd"] and False))
            ctx.set(dut.write_cmd.ready, ready["cmd"])
            ctx.set(dut.write_data.ready, ready["data"])

    async def done(ctx):
        ctx.set(dut.done.ready, 1)
        cycle = 0
        while len(dones) < len(tiles):
            assert cycle < limit, f"{len(dones)} of {len(tiles)} done after {limit} cycles {what}"
            _, _, valid, error = await ctx.tick().sample(dut.done.valid,
                                                         dut.done.payload.error)
            cycle += 1
            if valid:
                dones.append(int(error))
                trace["done"].append(cycle)
        for _ in range(20):
            assert not ctx.get(dut.done.valid), f"a done too many {what}"
            assert not ctx.get(dut.write_data.valid), f"a beat too many {what}"
            assert not ctx.get(dut.write_cmd.valid), f"a command too many {what}"
            await ctx.tick()

    sim = Simulator(harness)
    sim.add_clock(1e-8)
    sim.add_process(model)
    sim.add_testbench(commands)
    sim.add_testbench(done)
    sim.run()

    reference = Memory(memory_size)
    reference.data[:] = np.frombuffer(init, np.uint8)
    expected = []
    for tile in tiles:
        if not tile.d["OUT_CHANNELS"] or not all(tile.lens) or not tile.d["X_OUT_LEN"]:
            expected.append(0)      # the list model refuses it (BAD_GEOMETRY); nothing written
            continue
        faulty = Memory(memory_size, [(lo, hi) for lo, hi in errors])
        try:
            write_results(faulty, tile.d, tile.acc, tile.columns, config)
            expected.append(0)
        except MemoryFault:
            expected.append(1)
        write_results(reference, tile.d, tile.acc, tile.columns, config)
    assert dones == expected, f"done errors {dones}, expected {expected} {what}"
    if not errors:
        changed = np.count_nonzero(reference.data != np.frombuffer(init, np.uint8))
        trace["changed"] = changed
        bad = np.flatnonzero(memory != reference.data)
        assert not bad.size, (f"{bad.size} bytes differ, first at {bad[0]:#x}: "
                              f"{memory[bad[0]]} != {reference.data[bad[0]]}, tiles {tiles} "
                              f"{what}")
    return dones, trace


def check_random(name, seed, *, count=4, latency=2, lanes=None, pause=0.3, **kwargs):
    config = CONFIGS[name]
    rng = random.Random(seed)
    tiles = [Tile(config, rng, 1 << 14, **kwargs) for _ in range(count)]
    _, trace = run(config, tiles, seed=seed, latency=latency, lanes=lanes, pause=pause,
                   resp_latency=rng.randint(1, 6))
    assert trace["changed"] > 0


@pytest.mark.parametrize(("name", "latency", "lanes", "seed"), [
    ("small", 1, None, 1), ("small", 2, 2, 2), ("default", 2, None, 3), ("default", 1, 4, 4),
    ("cols12", 2, None, 5), ("cols12", 1, 3, 6), ("int12", 2, 2, 15), ("wide", 1, None, 16)])
def test_sim_random(name, latency, lanes, seed):
    check_random(name, seed, latency=latency, lanes=lanes)


@pytest.mark.parametrize("seed", [7, 8])
def test_sim_random_strided_no_pause(seed):
    check_random("default", seed, pause=0.0, contiguous=False, count=3)


def test_sim_data_after_command():
    """A memory that takes a command's data only after the command (as the Wishbone adapter
    may)."""
    config = CONFIGS["small"]
    rng = random.Random(9)
    tiles = [Tile(config, rng, 1 << 14) for _ in range(3)]
    run(config, tiles, seed=9, pause=0.2, data_after_cmd=True)


def test_sim_long_runs():
    """Contiguous raw rows of 3 KiB: split at 256 beats and at 4 KiB boundaries."""
    config = CONFIGS["default"]
    rng = random.Random(10)
    tile = Tile(config, rng, 1 << 15, entries=1, contiguous=True, requantize=False)
    tile.lens, tile.starts = [1, 2, 100], [0, 1, 3]
    tile.acc = np.array([[rng.randint(-1000, 1000) for _ in range(8)] for _ in range(200)])
    tile.d.update(OUT_CHANNELS=8, OUTPUT_PIXEL_PITCH=32, OUTPUT_ROW_PITCH=32 * 110,
                  OUTPUT_PLANE_PITCH=0, OUTPUT_ADDR=0x1004, Y_OUT_START=1, Y_OUT_LEN=2,
                  X_OUT_START=3, X_OUT_LEN=100, Z_OUT_LEN=1, Z_OUT_START=0)
    dones, trace = run(config, [tile], seed=10, pause=0.1, memory_size=1 << 15)
    sizes = [beats for _, _, beats in trace["cmd"]]
    assert 256 in sizes and len(sizes) >= 4, sizes


def test_sim_errors():
    """Error ranges: the commands that hit one get done.error, the others not; nothing
    hangs."""
    config = CONFIGS["small"]
    rng = random.Random(11)
    tiles = [Tile(config, rng, 1 << 12, entries=8) for _ in range(6)]
    def first_beat(tile):
        d = tile.d
        address = d["OUTPUT_ADDR"] + sum(
            d[f"{a}_OUT_START"] * d[f"OUTPUT_{p}_PITCH"]
            for a, p in zip("ZYX", ("PLANE", "ROW", "PIXEL")))
        return address - address % config.beat_bytes

    errors = [(first_beat(tiles[k]), first_beat(tiles[k]) + config.beat_bytes) for k in (1, 4)]
    dones, _ = run(config, tiles, seed=11, pause=0.2, errors=errors, memory_size=1 << 12)
    assert 0 in dones and 1 in dones, dones


def test_sim_empty_tile():
    """A zero length or no columns: no write, done without error."""
    config = CONFIGS["small"]
    rng = random.Random(12)
    tiles = [Tile(config, rng, 1 << 12) for _ in range(3)]
    tiles[0].d["X_OUT_LEN"] = 0
    tiles[0].acc = tiles[0].acc[:0]
    tiles[2].d["OUT_CHANNELS"] = 0
    tiles[2].acc = tiles[2].acc[:0]
    dones, trace = run(config, tiles, seed=12, pause=0.1, memory_size=1 << 12)
    assert dones == [0, 0, 0]


def test_sim_out_channels_above_cols():
    """OUT_CHANNELS 13..15 on 12 columns (the field has 4 bits) writes the 12 columns."""
    config = CONFIGS["cols12"]
    rng = random.Random(17)
    tiles = [Tile(config, rng, 1 << 13, entries=6) for _ in range(3)]
    for tile, oc in zip(tiles, (13, 14, 15)):
        tile.d["OUT_CHANNELS"] = 12
        eb = config.input_bytes if tile.d["REQUANTIZE"] else config.raw_bytes
        if tile.d["OUTPUT_PIXEL_PITCH"] < 12 * eb:
            for name in ("PIXEL", "ROW", "PLANE"):
                tile.d[f"OUTPUT_{name}_PITCH"] *= 16
        tile.d["OUTPUT_ADDR"] = 0
        tile.overrides = {"out_channels": oc}
    run(config, tiles, seed=17, pause=0.1, memory_size=1 << 17)


def measure(config, tiles, **kwargs):
    _, trace = run(config, tiles, seed=0, pause=0.0, **kwargs)
    return trace


@pytest.mark.parametrize(("contiguous", "latency"), [(True, 2), (False, 1)])
def test_sim_throughput(contiguous, latency):
    """Beat-sized entries (default preset, int8 results, 8 columns: 8 bytes; contiguous, or one
    burst per entry) on a memory that never stalls, responses one cycle after a burst: one
    beat per cycle, and a command takes N + a constant cycles: the setup's coord_width + 3,
    the read latency, the pipeline's 7, the walker, issuer, byte-format, packer and responder
    registers."""
    config = CONFIGS["default"]
    for n in (16, 48):
        rng = random.Random(13)
        tile = Tile(config, rng, 1 << 14, entries=1, contiguous=contiguous, requantize=True)
        tile.acc = np.array([[rng.randint(-99, 99) for _ in range(8)] for _ in range(n)])
        pitch = 8 if contiguous else 24
        tile.d.update(OUT_CHANNELS=8, OUTPUT_PIXEL_PITCH=pitch, OUTPUT_ROW_PITCH=pitch * n,
                      OUTPUT_PLANE_PITCH=pitch * n, OUTPUT_ADDR=0x200, X_OUT_START=0,
                      Y_OUT_START=0, Z_OUT_START=0, X_OUT_LEN=n, Y_OUT_LEN=1, Z_OUT_LEN=1)
        trace = measure(config, [tile], latency=latency)
        first = config.coord_width + latency + 15
        assert trace["data"] == list(range(first, first + n))
        cmds = [cycle for cycle, _, _ in trace["cmd"]]
        start = config.coord_width + 11
        # (strided: the commands run at most 16 runs ahead of the beats, the walker's FIFOs)
        assert cmds[0] == start and len(cmds) == (1 if contiguous else n)
        assert cmds[-1] <= trace["data"][-1]
        assert trace["done"] == [n + config.coord_width + latency + 18]


def test_sim_back_to_back_cycles():
    """Two commands sent at once: the second one's setup overlaps the first one's drain."""
    config = CONFIGS["default"]
    rng = random.Random(14)
    tiles = []
    for k in range(2):
        tile = Tile(config, rng, 1 << 14, entries=1, contiguous=True, requantize=True, bank=k)
        tile.acc = np.array([[rng.randint(-99, 99) for _ in range(8)] for _ in range(32)])
        tile.d.update(OUT_CHANNELS=8, OUTPUT_PIXEL_PITCH=8, OUTPUT_ROW_PITCH=256,
                      OUTPUT_PLANE_PITCH=256, OUTPUT_ADDR=0x200 + 0x400 * k, X_OUT_START=0,
                      Y_OUT_START=0, Z_OUT_START=0, X_OUT_LEN=32, Y_OUT_LEN=1, Z_OUT_LEN=1)
        tiles.append(tile)
    trace = measure(config, tiles, latency=2)
    beats = trace["data"]
    assert len(beats) == 64
    gap = beats[32] - beats[31]
    # the reader takes the second command in the cycle of the first one's last read
    assert gap == 1, beats
    assert beats[:32] == list(range(beats[0], beats[0] + 32))
    assert beats[32:] == list(range(beats[32], beats[32] + 32))


# -- construction -------------------------------------------------------------------------------


def test_init():
    config = EngineConfig.preset("default")
    dut = OutputWriter(config, addr_width=40, acc_read_latency=1, lanes=4)
    assert (dut.config, dut.addr_width, dut.acc_read_latency, dut.lanes) == (config, 40, 1, 4)
    assert dut.read_fifo_depth == 3
    assert dut.command_layout == command_layout(config, 40)
    members = dut.signature.members
    assert members["acc_data"].shape.width == 8 * 32
    assert members["acc_addr"].shape.width == 11
    assert members["write_cmd"].signature.members["payload"].shape.size == 40 + 8
    assert OutputWriter(config).lanes == 8
    layout = command_layout(config)
    assert layout.size == 32 * 4 + 6 * 16 + 4 + 3 + 8 * (32 + 16 + 6)
    assert list(layout.members) == ["addr", "pixel_pitch", "row_pitch", "plane_pitch", "z", "y",
                                    "x", "out_channels", "requantize", "relu", "bank",
                                    "columns"]


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({"config": "default"}, TypeError, "config must be an EngineConfig, not 'default'"),
    ({"acc_read_latency": 3}, ValueError, "acc_read_latency must be 1 or 2, not 3"),
    ({"acc_read_latency": 1.0}, TypeError, "acc_read_latency must be an integer, not 1.0"),
    ({"lanes": 3}, ValueError, "lanes must be a divisor of cols (8), not 3"),
    ({"addr_width": 8}, ValueError, "addr_width must be an integer from 12 to 64, not 8"),
])
def test_init_wrong(kwargs, error, message):
    kwargs = {"config": EngineConfig(), **kwargs}
    with pytest.raises(error, match=exactly(message)):
        OutputWriter(**kwargs)


def test_command_layout_wrong():
    with pytest.raises(TypeError, match=exactly("config must be an EngineConfig, not None")):
        command_layout(None)


@pytest.mark.parametrize(("name", "lanes"), [("small", None), ("cols12", 4)])
def test_verilog(name, lanes):
    text = verilog.convert(OutputWriter(CONFIGS[name], lanes=lanes), name="output_writer",
                           emit_src=False)
    assert "module output_writer" in text
