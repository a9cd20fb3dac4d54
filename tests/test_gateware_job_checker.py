"""JobChecker in the Amaranth simulator against the list model's checks
(convhw.compiler.list_model.job_code): random descriptors, and compiled ones corrupted."""

import dataclasses
import random

import pytest
from amaranth.sim import Simulator

from convhw.compiler.list_model import job_code
from convhw.compiler.lower import ListBuilder
from convhw.config import EngineConfig
from convhw.descriptor import JOB_DESCRIPTOR
from convhw.gateware.job_checker import JobChecker
from convhw.registers import ErrorCode
from convhw.sim_memory import stream_get, stream_put
from convhw.spec import ConvSpec

from .helpers import tiered

SMALL = EngineConfig.preset("small")


def random_descriptor(rng, config):
    d = {f.name: 0 for f in JOB_DESCRIPTOR.fields}
    def small():
        return 0 if rng.random() < 0.01 else rng.choice([1, 1, 2, 3, rng.randrange(1, 24)])

    for axis in "ZYX":
        for name in ("IN_SIZE", "OUT_LEN", "SEG0_LEN", "SEG1_LEN", "PAD_LO", "OUT_START",
                     "SEG0_START", "SEG1_START"):
            d[f"{axis}_{name}"] = small()
        for name in ("KERNEL", "STRIDE", "DILATION"):
            d[f"{axis}_{name}"] = 0 if rng.random() < 0.01 else rng.choice([1, 1, 1, 2, 3, 5])
    d.update(
        MAGIC=0xCD, TRANSPOSED=rng.random() < 0.2, PADDING_MODE=rng.randrange(4),
        IN_CHUNKS=rng.choice([0, 1, 1, 2, 3, 5, 9, 17]), FIR_TAPS=rng.choice([0] * 8 + [1, 3, 7]),
        OUT_CHANNELS=rng.randrange(1, config.cols + 1), WRITE_OUTPUT=rng.random() < 0.7,
        REQUANTIZE=rng.random() < 0.5, LOAD_WEIGHTS=rng.random() < 0.5,
        WEIGHT_BASE=rng.choice([0, 5, config.weight_depth // 2 - 3, config.weight_depth // 2,
                                config.weight_depth - 1, config.weight_depth + 2]),
        WEIGHT_WORDS=rng.choice([0, 1, 36, 200, 1 << 20]),
        INPUT_ADDR=rng.randrange(1 << 20), OUTPUT_ADDR=rng.randrange(1 << 20),
        INPUT_PIXEL_PITCH=rng.choice([8, 16, 8, 6]), INPUT_ROW_PITCH=rng.randrange(1 << 10),
        INPUT_PLANE_PITCH=rng.randrange(1 << 12), OUTPUT_PIXEL_PITCH=rng.choice([8, 32, 12]),
        OUTPUT_ROW_PITCH=rng.randrange(1 << 10), OUTPUT_PLANE_PITCH=rng.randrange(1 << 12),
        WEIGHT_ADDR=rng.randrange(1 << 20), PARAMS_ADDR=rng.choice([64, 66, 1024]))
    return {k: int(v) for k, v in d.items()}


def run(config, entries):
    dut = JobChecker(config)
    got = []

    async def producer(ctx):
        for index, (d, code) in enumerate(entries):
            await stream_put(ctx, dut.entries, {"descriptor": {k.lower(): v for k, v in d.items()},
                                                "index": index, "code": code})

    async def consumer(ctx):
        for _ in entries:
            entry = await stream_get(ctx, dut.checked)
            got.append((int(entry.index), ErrorCode(int(entry.code))))

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(producer)
    sim.add_testbench(consumer)
    sim.run()
    return got


@pytest.mark.parametrize("config", tiered([SMALL, EngineConfig.preset("default"),
                                           dataclasses.replace(SMALL, input_width=16,
                                                               weight_width=16, acc_width=40)],
                                          fast=1),
                         ids=["small", "default", "wide"])
def test_random_descriptors(config):
    rng = random.Random(1)
    legal = compiled(config)
    entries = [(random_descriptor(rng, config), 0) for _ in range(150)]
    # Compiled descriptors with one field changed: near every limit, on both sides of it.
    mutations = {
        "Y_OUT_LEN": lambda d: rng.randrange(1, 2 * config.acc_depth),
        "IN_CHUNKS": lambda d: rng.randrange(0, config.input_depth // 4),
        "WEIGHT_BASE": lambda d: rng.randrange(0, config.weight_depth + 8),
        "WEIGHT_WORDS": lambda d: rng.randrange(0, config.weight_depth),
        "PADDING_MODE": lambda d: rng.randrange(4),
        "Y_PAD_LO": lambda d: rng.randrange(0, 2 * d["Y_IN_SIZE"] + 2),
        "TRANSPOSED": lambda d: 1 - d["TRANSPOSED"],
        "FIR_TAPS": lambda d: rng.randrange(0, 2 * config.rows),
        "X_STRIDE": lambda d: rng.randrange(0, 3),
        "OUT_CHANNELS": lambda d: rng.randrange(0, config.cols + 1),
        "OUTPUT_ADDR": lambda d: d["OUTPUT_ADDR"] + rng.randrange(4),
        "WEIGHT_ADDR": lambda d: d["WEIGHT_ADDR"] + rng.randrange(2),
        "PARAMS_ADDR": lambda d: d["PARAMS_ADDR"] + rng.randrange(4),
        "INPUT_ROW_PITCH": lambda d: d["INPUT_ROW_PITCH"] + rng.randrange(2),
        # A stride that puts the tile's last output times the stride just below, at or far
        # past 2**coord_width (SOURCE_RANGE for a forward job).
        "X_OUT_START": lambda d: reach(d, "X", rng.choice([-1, 0, 1, rng.randrange(1 << 20)])),
        "Z_OUT_START": lambda d: reach(d, "Z", rng.choice([-1, 0, rng.randrange(1 << 20)])),
    }

    def reach(d, axis, beyond):
        """An OUT_START (and a STRIDE, set in ``d``) that put ``(OUT_START + OUT_LEN - 1) *
        STRIDE`` at ``2**coord_width + beyond``, or near it."""
        stride = rng.randrange(1, 1 << config.param_width)
        d[f"{axis}_STRIDE"] = stride
        end = ((1 << config.coord_width) + beyond) // stride
        return max(0, min(end - d[f"{axis}_OUT_LEN"] + 1, (1 << config.coord_width) - 1))

    for _ in range(250):
        d = dict(rng.choice(legal))
        name = rng.choice(list(mutations))
        d[name] = mutations[name](d)
        entries.append((d, 0))
    entries[7] = (entries[7][0], ErrorCode.READ_ERROR)       # the fetcher's code passes through
    got = run(config, entries)
    expected = [(i, code if code else job_code(config, d)) for i, (d, code) in enumerate(entries)]
    assert got == expected
    codes = {code for _, code in expected}
    # The descriptors reach every code the checker gives.
    assert {ErrorCode.NONE, ErrorCode.BAD_GEOMETRY, ErrorCode.BAD_PADDING,
            ErrorCode.TILE_TOO_LARGE, ErrorCode.WINDOW_TOO_LARGE, ErrorCode.WEIGHTS_TOO_LARGE,
            ErrorCode.SOURCE_RANGE, ErrorCode.MISALIGNED} <= codes, codes


def compiled(config):
    builder = ListBuilder(config)
    for spec, shape in ((ConvSpec(2, 8, 8, 3, padding=1, padding_mode="reflect"), (1, 8, 20, 20)),
                        (ConvSpec(1, 4, 4, 3, groups=4, padding=1), (2, 4, 30)),
                        (ConvSpec(3, 4, 4, 2, stride=2, transposed=True), (1, 4, 3, 4, 5))):
        builder.add_layer(spec, shape, input_addr=0x1000, output_addr=0x8000,
                          weight_addr=0x20000, params_addr=0x30000, requantize=True)
    return [d | {"MAGIC": 0xCD} for d in builder.descriptors()]


def test_compiled_descriptors_pass():
    descriptors = compiled(SMALL)
    got = run(SMALL, [(d, 0) for d in descriptors])
    assert got == [(i, ErrorCode.NONE) for i in range(len(descriptors))]


def test_a_wide_first_factor_saturates():
    # A product's first factor at or above 2**width (Z_OUT_LEN 0x801 on the list engine's
    # bench) must saturate, not wrap to a small value that passes the limit.
    base = compiled(SMALL)[0]
    entries = [(base | {name: (1 << bits) + 1}, 0) for name in ("Z_OUT_LEN", "Z_SEG0_LEN")
               for bits in range(9, 16)]
    expected = [(i, job_code(SMALL, d)) for i, (d, _) in enumerate(entries)]
    assert all(code != ErrorCode.NONE for _, code in expected)
    assert run(SMALL, entries) == expected
