# amaranth: UnusedElaboratable=no
"""The address generator's sequential divider, in the Amaranth simulator."""

import random

import pytest
from amaranth.sim import Simulator

from convhw.gateware.divider import Divider


def run_divisions(width, cases):
    dut = Divider(width)
    results = []

    async def testbench(ctx):
        for dividend, divisor in cases:
            ctx.set(dut.dividend, dividend)
            ctx.set(dut.divisor, divisor)
            ctx.set(dut.start, 1)
            await ctx.tick()
            ctx.set(dut.start, 0)
            cycles = 1
            while not ctx.get(dut.done):
                await ctx.tick()
                cycles += 1
            results.append((ctx.get(dut.quotient), ctx.get(dut.remainder), cycles))

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return dut, results


def test_floor_division_and_latency():
    seed = 1234
    rng = random.Random(seed)
    width = 12
    cases = [(0, 1), (7, 7), (-1, 3), (-6, 3), (-7, 3), (2047, 1), (-2048, 5), (-2048, 2047)]
    cases += [(rng.randrange(-2048, 2048), rng.randrange(1, 2048)) for _ in range(60)]
    dut, results = run_divisions(width, cases)
    for (n, d), (q, r, cycles) in zip(cases, results):
        assert (q, r) == divmod(n, d), f"seed {seed}: {n} / {d}"
        assert cycles == dut.latency


@pytest.mark.parametrize("width, error, message", [
    (1, ValueError, r"^width must be at least 2, not 1$"),
    ("8", TypeError, r"^width must be an integer, not '8'$"),
])
def test_init_wrong_width(width, error, message):
    with pytest.raises(error, match=message):
        Divider(width)
