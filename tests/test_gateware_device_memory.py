# amaranth: UnusedElaboratable=no
"""DeviceMemory: the host's 32-bit classic port and the engine's pipelined port on one RAM port,
against a Python model of the memory: byte lanes, back-to-back beats, ERR beyond the memory,
both buses at once (neither starves, nothing is lost)."""

import random

import pytest
from amaranth.sim import Simulator

from convhw.gateware.device_memory import DeviceMemory
from convhw.sim_helpers import wb_read, wb_transaction, wb_write


def test_init():
    dut = DeviceMemory(64, 4096)
    assert (dut.depth, dut.host_addr_width) == (512, 10)
    assert DeviceMemory(32, 12).host_addr_width == 2


def test_init_wrong_arguments():
    with pytest.raises(TypeError, match=r"^size must be an integer, not 1.5$"):
        DeviceMemory(64, 1.5)
    with pytest.raises(ValueError, match=r"^data_width must be a power of two from 32 to 512, "
                                         r"not 48$"):
        DeviceMemory(48, 96)
    with pytest.raises(ValueError, match=r"^size must be a positive multiple of 8 bytes up to "
                                         r"2\*\*24, not 12$"):
        DeviceMemory(64, 12)


def run(dut, *benches):
    sim = Simulator(dut)
    sim.add_clock(1e-6)
    for bench in benches:
        sim.add_testbench(bench)
    sim.run()


async def engine_beats(ctx, bus, beats, answers, rng=None):
    """Issue ``beats`` (adr, we, dat_w, sel) as one pipelined bus cycle, honouring STALL;
    append each answer (kind, dat_r) to ``answers``."""
    ctx.set(bus.cyc, 1)
    issued = 0
    while len(answers) < len(beats):
        present = issued < len(beats) and not (rng and rng.random() < 0.3)
        if present:
            adr, we, dat_w, sel = beats[issued]
            ctx.set(bus.stb, 1)
            ctx.set(bus.adr, adr)
            ctx.set(bus.we, we)
            ctx.set(bus.dat_w, dat_w)
            ctx.set(bus.sel, sel)
        else:
            ctx.set(bus.stb, 0)
        _, _, stall, ack, err, dat_r = await ctx.tick().sample(bus.stall, bus.ack, bus.err,
                                                                bus.dat_r)
        if ack or err:
            answers.append(("ack" if ack else "err", dat_r))
        if present and not stall:
            issued += 1
    ctx.set(bus.stb, 0)
    ctx.set(bus.cyc, 0)


def test_sim_host_lanes_and_engine_beats():
    dut = DeviceMemory(64, 256)          # 32 words of 64 bits

    async def bench(ctx):
        await wb_write(ctx, dut.host, 0x10, 0x11223344)
        await wb_write(ctx, dut.host, 0x14, 0x55667788)
        assert await wb_read(ctx, dut.host, 0x14) == 0x55667788
        ack, _ = await wb_transaction(ctx, dut.host, 0x10, write=0xAABBCCDD, sel=0b0101)
        assert ack
        assert await wb_read(ctx, dut.host, 0x10) == 0x11BB33DD
        answers = []
        await engine_beats(ctx, dut.engine, [
            (2, 0, 0, 0xFF),                           # the host's word, as one beat
            (3, 1, 0x0123456789ABCDEF, 0b11110000),    # the upper half only
            (3, 0, 0, 0xFF),
            (32, 0, 0, 0xFF),                          # beyond the memory
            (31, 1, 5, 0xFF),
            (31, 0, 0, 0xFF),
        ], answers)
        assert answers[0] == ("ack", 0x55667788_11BB33DD)
        assert answers[2] == ("ack", 0x01234567_00000000)
        assert answers[3][0] == "err"
        assert answers[5] == ("ack", 5)
        assert await wb_read(ctx, dut.host, 0x1C) == 0x01234567
        assert await wb_read(ctx, dut.host, 0x18) == 0

    run(dut, bench)


def test_sim_one_beat_per_cycle():
    dut = DeviceMemory(64, 256)

    async def bench(ctx):
        answers = []
        beats = [(i, 1, i * 3, 0xFF) for i in range(16)] + [(i, 0, 0, 0xFF) for i in range(16)]
        cycles = 0
        ctx.set(dut.engine.cyc, 1)
        # 32 beats, no stall: the last answer comes in the cycle after the last beat.
        issued = 0
        while len(answers) < len(beats):
            if issued < len(beats):
                adr, we, dat_w, sel = beats[issued]
                ctx.set(dut.engine.stb, 1)
                ctx.set(dut.engine.adr, adr)
                ctx.set(dut.engine.we, we)
                ctx.set(dut.engine.dat_w, dat_w)
                ctx.set(dut.engine.sel, sel)
            else:
                ctx.set(dut.engine.stb, 0)
            _, _, stall, ack, dat_r = await ctx.tick().sample(
                dut.engine.stall, dut.engine.ack, dut.engine.dat_r)
            assert not stall
            cycles += 1
            if ack:
                answers.append(dat_r)
            issued += 1
        assert cycles == len(beats) + 1
        assert answers[16:] == [i * 3 for i in range(16)]

    run(dut, bench)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sim_host_and_engine_at_once(seed):
    # The host writes and reads its half, the engine its own, both at full rate: every access
    # is answered, in order, with the model's data.
    print(f"seed {seed}")
    rng = random.Random(seed)
    dut = DeviceMemory(64, 512)            # 64 words; host: words 0..31, engine: 32..63
    host_words = {i: rng.getrandbits(32) for i in range(0, 64)}
    engine_words = {i: rng.getrandbits(64) for i in range(32, 64)}
    done = []

    async def host(ctx):
        for i, value in host_words.items():
            await wb_write(ctx, dut.host, 4 * i, value)
        for i, value in host_words.items():
            assert await wb_read(ctx, dut.host, 4 * i) == value
        done.append("host")

    async def engine(ctx):
        answers = []
        beats = [(i, 1, v, 0xFF) for i, v in engine_words.items()]
        beats += [(i, 0, 0, 0xFF) for i in engine_words]
        await engine_beats(ctx, dut.engine, beats, answers, rng)
        assert all(kind == "ack" for kind, _ in answers)
        assert [data for _, data in answers[len(engine_words):]] == list(engine_words.values())
        done.append("engine")

    run(dut, host, engine)
    assert sorted(done) == ["engine", "host"]
