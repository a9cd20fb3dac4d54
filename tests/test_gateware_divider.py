# amaranth: UnusedElaboratable=no
"""The pass sequencer's sequential divider, in the Amaranth simulator."""

import random

import pytest
from amaranth.sim import Simulator

from convhw.gateware.divider import Divider


def run_divisions(width, divisor_width, cases, *, back_to_back=False, shifts=False):
    """Each case started alone (or, ``back_to_back``, in the ``done`` cycle of the one before);
    returns the divider and per case (quotient, remainder, cycles from start to done)."""
    dut = Divider(width, divisor_width, shifts=shifts)
    results = []

    async def testbench(ctx):
        for i, (dividend, divisor) in enumerate(cases):
            if i == 0 or not back_to_back:
                await ctx.tick()
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


@pytest.mark.parametrize("back_to_back", [False, True])
@pytest.mark.parametrize("shifts", [False, True])
def test_division_and_latency(back_to_back, shifts):
    seed = 1234
    rng = random.Random(seed)
    width, divisor_width = 9, 4
    cases = [(0, 1), (7, 7), (511, 1), (511, 15), (0, 15), (14, 15), (15, 15), (255, 2),
             (1, 3), (511, 8), (7, 8), (8, 8), (300, 4), (1, 2)]
    cases += [(rng.randrange(1 << width), rng.randrange(1, 1 << divisor_width))
              for _ in range(60)]
    dut, results = run_divisions(width, divisor_width, cases, back_to_back=back_to_back,
                                 shifts=shifts)
    for (n, d), (q, r, cycles) in zip(cases, results):
        assert (q, r) == divmod(n, d), f"seed {seed}: {n} / {d}"
        one = d == 1 or shifts and d in (2, 4, 8)
        assert cycles == dut.latency(d) == (1 if one else width + 1)


@pytest.mark.parametrize("args, error, message", [
    ((0, 4), ValueError, r"^width must be at least 1, not 0$"),
    (("8", 4), TypeError, r"^width must be an integer, not '8'$"),
    ((8, 0), ValueError, r"^divisor_width must be at least 1, not 0$"),
    ((8, True), TypeError, r"^divisor_width must be an integer, not True$"),
])
def test_init_wrong_width(args, error, message):
    with pytest.raises(error, match=message):
        Divider(*args)
