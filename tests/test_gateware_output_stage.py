# amaranth: UnusedElaboratable=no
"""The output stage against the golden model's requantisation rule."""

import numpy as np
import pytest
from amaranth.sim import Simulator

from convhw import golden
from convhw.config import EngineConfig
from convhw.gateware.output_stage import OutputStage


def run(config, cases):
    dut = OutputStage(config)
    results = []

    async def testbench(ctx):
        for case in cases:
            for name, value in case.items():
                ctx.set(getattr(dut, name), value)
            ctx.set(dut.valid, 1)
            await ctx.tick()
            ctx.set(dut.valid, 0)
            for _ in range(OutputStage.latency_for(case["requantize"], case["shift"]) - 1):
                assert not ctx.get(dut.result_valid)
                await ctx.tick()
            assert ctx.get(dut.result_valid)
            results.append(ctx.get(dut.result))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return results


@pytest.mark.parametrize("requantize, relu", [(0, 0), (0, 1), (1, 0), (1, 1)])
def test_matches_golden(requantize, relu):
    seed = 77 + 2 * requantize + relu
    rng = np.random.default_rng(seed)
    config = EngineConfig()
    n = 60
    acc = np.concatenate([rng.integers(-2**30, 2**30, n - 4), [0, -1, 2**30, -2**30]])
    bias = rng.integers(-2**20, 2**20, n)
    mult = rng.integers(-2**15, 2**15, n)
    shift = rng.integers(0, 40, n)
    cases = [dict(acc=int(a), bias=int(b), multiplier=int(mu), shift=int(s),
                  requantize=requantize, relu=relu) for a, b, mu, s in zip(acc, bias, mult, shift)]
    got = run(config, cases)
    if requantize:
        expected = golden.requantize(acc + bias, mult, shift, bits=8, relu=bool(relu))
    else:
        expected = np.maximum(acc + bias, 0) if relu else acc + bias
    assert got == expected.tolist(), f"seed {seed}"


def test_rounding_half_up():
    # 5 * 1 >> 1 = 2.5 -> 3; -5 >> 1 = -2.5 -> -2 (half up); saturation at the int8 bounds.
    config = EngineConfig()
    cases = [dict(acc=a, bias=0, multiplier=1, shift=s, requantize=1, relu=0)
             for a, s in [(5, 1), (-5, 1), (1000, 0), (-1000, 0), (255, 1), (-257, 1)]]
    assert run(config, cases) == [3, -2, 127, -128, 127, -128]
