"""Float32Requantizer against the golden model of torch's output processing
(convhw.quantized_golden.requantize), one sum per cycle, both kernels' arithmetics."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from amaranth.sim import Simulator

from convhw import quantized_golden as qg
from convhw.gateware.float32_requantizer import LATENCY, Float32Requantizer

SEED = 1206


def run(rows):
    """rows: (acc, bias pattern, multiplier pattern, zero point, relu) -> results, in order."""
    dut = Float32Requantizer()
    results = []

    async def bench(ctx):
        for index in range(len(rows) + LATENCY):
            if index < len(rows):
                acc, bias, multiplier, zero_point, relu = rows[index]
                ctx.set(dut.acc, int(acc))
                ctx.set(dut.bias, int(bias))
                ctx.set(dut.multiplier, int(multiplier))
                ctx.set(dut.zero_point, int(zero_point))
                ctx.set(dut.relu, int(relu))
            ctx.set(dut.valid, index < len(rows))
            if ctx.get(dut.result_valid):
                results.append(ctx.get(dut.result))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return np.array(results)


@pytest.mark.parametrize("kernel", ["fbgemm", "qnnpack"])
def test_matches_the_golden_output_processing(kernel):
    rng = np.random.default_rng(SEED)
    channels = 16
    arithmetic = qg.QuantizedArithmetic(
        input_scale=0.037, input_zero_point=5,
        weight_scales=rng.uniform(0.0005, 0.02, channels), weight_zero_points=0,
        output_scale=0.21, output_zero_point=73,
        bias=rng.normal(0, 3, channels).astype(np.float32), relu=False, kernel=kernel)
    count = 1500
    acc = np.concatenate([rng.integers(-40000, 40000, count),
                          rng.integers(-2 ** 31, 2 ** 31 - 2 ** 16, 100),
                          [0, 1, -1, 2 ** 31 - 2 ** 16, -2 ** 31 + 2 ** 16]])
    channel = rng.integers(0, channels, len(acc))
    bias_term, multiplier = arithmetic.constants()
    rows, want = [], []
    for relu in (False, True):
        for a, c in zip(acc.tolist(), channel.tolist()):
            if kernel == "fbgemm":
                hw_acc, hw_bias = a, np.float32(bias_term[c]).view(np.uint32)
            else:
                hw_acc, hw_bias = a + int(bias_term[c]), 0
            rows.append((hw_acc, hw_bias, np.float32(multiplier[c]).view(np.uint32),
                         arithmetic.output_zero_point, relu))
        # the golden model, each sum in its channel
        per = dataclasses.replace(arithmetic, relu=relu)
        full = np.zeros((1, channels, len(acc)), np.int64)
        full[0, channel, np.arange(len(acc))] = acc
        out = qg.requantize(full, per)
        want.extend(out[0, channel, np.arange(len(acc))].tolist())
    got = run(rows)
    want = np.array(want)
    wrong = got != want
    assert not wrong.any(), (f"seed {SEED}: {int(wrong.sum())} of {len(want)} differ; first "
                             f"rows {[rows[i] for i in np.flatnonzero(wrong)[:3]]}: "
                             f"{got[wrong][:3]} not {want[wrong][:3]}")


def test_saturates_and_clamps():
    one = np.float32(1.0).view(np.uint32)
    huge = np.float32(3e38).view(np.uint32)
    rows = [(300, 0, one, 0, False),              # 300 -> 255
            (-5, 0, one, 10, False),              # 5
            (-50, 0, one, 10, False),             # -40 -> 0
            (-50, 0, one, 10, True),              # clamped at the zero point
            (2 ** 31 - 1, 0, huge, 0, False),     # overflow to infinity -> 255
            (-(2 ** 31), 0, huge, 20, True),      # -infinity -> the zero point
            (3, 0, np.float32(0.5).view(np.uint32), 0, False),   # 1.5 -> 2
            (5, 0, np.float32(0.5).view(np.uint32), 0, False)]   # 2.5 -> 2
    assert run(rows).tolist() == [255, 5, 0, 10, 255, 20, 2, 2]
