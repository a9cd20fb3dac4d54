# amaranth: UnusedElaboratable=no
# (Components whose constructor raises, or built only to inspect, are never elaborated.)
"""``OutputPipeline`` against the list model's output stage (:func:`convhw.golden.requantize`,
:func:`convhw.golden.wrap`): random values and the extremes of every operand, random gaps on
both sides of the stream, the latency and throughput, validation, Verilog."""

import random

import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.sim import Simulator

from convhw import golden
from convhw.compiler.list_model import float_requantize
from convhw.config import EngineConfig
from convhw.gateware.output_pipeline import OutputPipeline

from .helpers import exactly


def expected(config, group):
    """What the list model's output stage gives for one input group."""
    v = np.asarray(group["data"], np.int64) + np.asarray(group["bias"], np.int64)
    if group.get("float"):
        out = float_requantize(v[None, :], group["f32_bias"], group["f32_mult"],
                               group["output_zero"], bool(group["relu"]))[0]
        return out.tolist()
    if group["requantize"]:
        out = golden.requantize(v, group["mult"], group["shift"], bits=config.input_width)
    elif config.raw_bytes == 8:
        out = v     # acc + bias fits 64 bits (and golden.wrap cannot take 64 bits)
    else:
        out = golden.wrap(v, 8 * config.raw_bytes)
    if group["relu"]:
        out = np.maximum(out, 0)
    return out.tolist()


def random_groups(config, lanes, rng, count, user_width):
    lo, hi = config.acc_range
    accs = [lo, hi, 0, -1, 1]
    mults = [-32768, 32767, -32767, 0, 1, -1]
    shifts = [0, 1, 63, 62, 31, 32]

    def pick(edges, a, b):
        return rng.choice(edges) if rng.random() < 0.3 else rng.randint(a, b)

    groups = []
    for _ in range(count):
        groups.append({
            "data": [pick(accs, lo, hi) for _ in range(lanes)],
            "bias": [pick(accs, lo, hi) for _ in range(lanes)],
            "mult": [pick(mults, -32768, 32767) for _ in range(lanes)],
            "shift": [pick(shifts, 0, 63) if rng.random() < 0.5 else rng.randint(0, 20)
                      for _ in range(lanes)],
            "requantize": rng.randint(0, 1),
            "relu": rng.randint(0, 1),
            "user": rng.getrandbits(user_width) if user_width else 0,
        })
        if config.float_output:
            groups[-1].update({
                "f32_bias": [float_bits(rng.choice(f32_biases) if rng.random() < 0.3
                                        else rng.uniform(-1e6, 1e6)) for _ in range(lanes)],
                "f32_mult": [float_bits(rng.choice(f32_mults) if rng.random() < 0.3
                                        else 10 ** rng.uniform(-9, 0)) for _ in range(lanes)],
                "output_zero": pick([0, 255, 128], 0, 255),
                "float": rng.randint(0, 1),
            })
    return groups


def float_bits(value):
    """The float32 bit pattern of ``value`` (rounded to float32)."""
    return int(np.array(value, np.float32).view(np.uint32))


# Edge cases of the float32 constants: zeros, the smallest subnormal and normal, the largest
# float32, values whose products overflow or round to nothing.
f32_biases = [0.0, -0.0, 1.4e-45, -1.4e-45, 1.2e-38, 3.4e38, -3.4e38, 0.5, -0.5, 2.5]
f32_mults = [0.0, 1.4e-45, 1.2e-38, 1.0, 3.4e38, 1e-30, 0.5, 1e10]


def check_random(config, lanes, seed, count=200, pause=0.3, user_width=3):
    rng = random.Random(seed)
    dut = OutputPipeline(config, lanes, user_width=user_width)
    groups = random_groups(config, lanes, rng, count, user_width)
    got = []

    async def producer(ctx):
        for group in groups:
            while rng.random() < pause:
                await ctx.tick()
            ctx.set(dut.i.payload, group)
            ctx.set(dut.i.valid, 1)
            await ctx.tick().until(dut.i.ready)
            ctx.set(dut.i.valid, 0)

    async def consumer(ctx):
        prng = random.Random(seed + 1)
        while len(got) < len(groups):
            ready = prng.random() >= pause
            ctx.set(dut.o.ready, ready)
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid and ready:
                got.append(([int(payload.data[k]) for k in range(lanes)], int(payload.user)))
        for _ in range(10):
            assert not ctx.get(dut.o.valid), f"a result too many (seed {seed})"
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    for index, (group, (data, user)) in enumerate(zip(groups, got)):
        want = expected(config, group)
        assert data == want, f"group {index}: {data} != {want}, input {group} (seed {seed})"
        assert user == group["user"], f"group {index}: user (seed {seed})"


@pytest.mark.parametrize(("preset", "lanes", "seed"), [
    ("default", 8, 1), ("default", 2, 2), ("small", 4, 3), ("up5k", 1, 4), ("quantized", 2, 7)])
def test_sim_random(preset, lanes, seed):
    check_random(EngineConfig.preset(preset), lanes, seed)


def test_sim_wide_accumulator():
    """A 40-bit accumulator: three pieces per multiplier, 64-bit raw results."""
    check_random(EngineConfig(cols=3, acc_width=40, input_width=12), 3, 5, count=100)


@pytest.mark.parametrize("preset", ["small", "quantized"])
def test_sim_no_pause_one_per_cycle(preset):
    """Without gaps a group leaves every cycle, ``latency`` cycles after it went in."""
    config = EngineConfig.preset(preset)
    dut = OutputPipeline(config, 4)
    rng = random.Random(6)
    groups = random_groups(config, 4, rng, 20, 0)
    seen = []

    async def bench(ctx):
        ctx.set(dut.o.ready, 1)
        ctx.set(dut.i.valid, 1)
        for cycle in range(dut.latency + len(groups) + 5):
            if cycle < len(groups):
                ctx.set(dut.i.payload, groups[cycle])
            else:
                ctx.set(dut.i.valid, 0)
            _, _, ready, valid = await ctx.tick().sample(dut.i.ready, dut.o.valid)
            if cycle < len(groups):
                assert ready
            if valid:
                seen.append(cycle)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert seen == list(range(dut.latency, dut.latency + len(groups)))


def test_init():
    config = EngineConfig.preset("default")
    dut = OutputPipeline(config, 4, user_width=2)
    assert (dut.config, dut.lanes, dut.user_width, dut.result_width) == (config, 4, 2, 32)
    assert dut.multipliers == [(17, 16), (16, 16)]
    assert dut.product_width == 49
    assert OutputPipeline(config).lanes == 8
    assert OutputPipeline(EngineConfig.preset("up5k")).multipliers == [(17, 16), (8, 16)]


@pytest.mark.parametrize(("args", "kwargs", "error", "message"), [
    (("default",), {}, TypeError, "config must be an EngineConfig, not 'default'"),
    ((EngineConfig(), 3), {}, ValueError, "lanes must be a divisor of cols (8), not 3"),
    ((EngineConfig(), 0), {}, ValueError, "lanes must be a divisor of cols (8), not 0"),
    ((EngineConfig(), 2.0), {}, TypeError, "lanes must be an integer, not 2.0"),
    ((EngineConfig(),), {"user_width": -1}, ValueError,
     "user_width must be a non-negative integer, not -1"),
])
def test_init_wrong(args, kwargs, error, message):
    with pytest.raises(error, match=exactly(message)):
        OutputPipeline(*args, **kwargs)


def test_verilog():
    text = verilog.convert(OutputPipeline(EngineConfig.preset("small"), 2), name="output_pipeline",
                           emit_src=False)
    assert "module output_pipeline" in text


@pytest.mark.parametrize("preset", ["small", "quantized"])
def test_sim_stalled_output_takes_depth_groups(preset):
    """With the output stalled the pipeline takes exactly ``depth`` groups (its credits) and
    then none; ``i.ready`` does not follow ``o.ready`` in the same cycle (it is a register);
    released, the groups leave in order, one per cycle."""
    config = EngineConfig.preset(preset)
    dut = OutputPipeline(config, 4, user_width=6)
    groups = random_groups(config, 4, random.Random(8), dut.depth + 5, 6)
    for index, group in enumerate(groups):
        group["user"] = index
    taken, got = [], []

    async def bench(ctx):
        ctx.set(dut.o.ready, 0)
        ctx.set(dut.i.valid, 1)
        for cycle in range(dut.depth + 30):
            ctx.set(dut.i.payload, groups[len(taken)])
            _, _, ready = await ctx.tick().sample(dut.i.ready)
            if ready:
                taken.append(cycle)
        assert len(taken) == dut.depth
        ctx.set(dut.i.valid, 0)
        ctx.set(dut.o.ready, 1)
        assert not ctx.get(dut.i.ready)           # the credits come back a cycle later
        for _ in range(dut.depth + 3):
            _, _, valid, payload = await ctx.tick().sample(dut.o.valid, dut.o.payload)
            if valid:
                got.append(int(payload.user))
        assert ctx.get(dut.i.ready)

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    assert taken == list(range(dut.depth))
    assert got == list(range(dut.depth))
    assert dut.depth == dut.stages + 2
