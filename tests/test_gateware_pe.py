# amaranth: UnusedElaboratable=no
"""ProcessingElement in the Amaranth simulator: exact products at the extremes of the operand
ranges, accumulation, wrap-around at acc_width, both weight banks, weight-write timing, random
streams against a cycle model, and constructor validation.

(The first line silences Amaranth's "created but never used" warning for the PEs that the
constructor tests build and never elaborate.)"""


import numpy as np
import pytest
from amaranth.hdl import signed, unsigned
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from convhw.config import EngineConfig
from convhw.gateware.pe import ProcessingElement

from .helpers import exactly

DEFAULT = EngineConfig()
NARROW = EngineConfig(input_width=4, weight_width=4, acc_width=9)
SHALLOW = EngineConfig(deep_pipeline=False)
WIDE = EngineConfig(input_width=16, weight_width=16, acc_width=40)

INPUTS = ("a", "bank", "w_we", "w_bank", "w_data", "psum_in")


def wrap(value, width):
    """``value`` as a ``width``-bit two's-complement number."""
    value &= (1 << width) - 1
    return value - (1 << width) if value >> (width - 1) else value


def run(config, cycles):
    """Drive ``cycles`` (one dict of inputs per cycle, missing inputs 0) into a PE, then three
    idle cycles; return ``psum_out`` as seen in every cycle."""
    dut = ProcessingElement(config)
    outputs = []

    async def testbench(ctx):
        for inputs in [*cycles, {}, {}, {}]:
            for name in INPUTS:
                ctx.set(getattr(dut, name), inputs.get(name, 0))
            outputs.append(ctx.get(dut.psum_out))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return outputs


def model(config, cycles):
    """What ``psum_out`` should be in every cycle of :func:`run`, from the PE's contract:
    ``psum_out(t + 3) = psum_in(t + 2) + a(t) * weight[bank(t)](t)`` (deep pipeline; without it
    ``psum_out(t + 2) = psum_in(t + 1) + ...``), where a weight written in cycle ``t`` is in
    effect from cycle ``t + 1``; registers start at zero."""
    stages = 3 if config.deep_pipeline else 2
    cycles = [*cycles, {}, {}, {}]
    weights = [0, 0]
    products = []
    for inputs in cycles:
        products.append(inputs.get("a", 0) * weights[inputs.get("bank", 0)])
        if inputs.get("w_we", 0):
            weights[inputs["w_bank"]] = inputs["w_data"]
    expected = [0]
    for t in range(1, len(cycles)):
        product = products[t - stages] if t >= stages else 0
        expected.append(wrap(cycles[t - 1].get("psum_in", 0) + product, config.acc_width))
    return expected


def load(bank, weight):
    return {"w_we": 1, "w_bank": bank, "w_data": weight}


# -- construction ----------------------------------------------------------------------------


def test_init():
    dut = ProcessingElement(DEFAULT)
    assert dut.config is DEFAULT
    assert dict(dut.signature.members.items()) == {
        "a": In(signed(8)),
        "bank": In(1),
        "w_we": In(1),
        "w_bank": In(1),
        "w_data": In(signed(8)),
        "psum_in": In(signed(32)),
        "psum_out": Out(signed(32)),
    }
    assert dut.a.shape() == signed(8)
    assert dut.bank.shape() == unsigned(1)
    assert dut.psum_out.shape() == signed(32)


def test_latency():
    assert ProcessingElement.latency_for(DEFAULT) == 3
    assert ProcessingElement.latency_for(SHALLOW) == 2


def test_shallow_accumulate():
    # Without the deep pipeline psum_in at t + 1 is added to the product of the operand at t.
    cycles = [load(0, 3), load(1, -5), {"a": 7, "bank": 0}, {"a": -2, "bank": 1, "psum_in": 100},
              {"a": 11, "bank": 0, "psum_in": -1000}, {"psum_in": 12345}]
    outputs = run(SHALLOW, cycles)
    assert outputs[4:7] == [100 + 21, -1000 + 10, 12345 + 33]
    assert outputs == model(SHALLOW, cycles)


def test_init_narrow():
    dut = ProcessingElement(NARROW)
    assert dut.a.shape() == signed(4)
    assert dut.w_data.shape() == signed(4)
    assert dut.psum_in.shape() == signed(9)
    assert dut.psum_out.shape() == signed(9)


def test_config_read_only():
    dut = ProcessingElement(DEFAULT)
    with pytest.raises(AttributeError):
        dut.config = NARROW


@pytest.mark.parametrize("config", [None, "small", 8, DEFAULT.__dict__])
def test_init_wrong_config(config):
    with pytest.raises(TypeError, match=exactly(
            f"config must be an EngineConfig, not {config!r}")):
        ProcessingElement(config)


# -- arithmetic ------------------------------------------------------------------------------


def test_products_extreme():
    # Load bank 0 with the most negative weight and bank 1 with the most positive, then multiply
    # every extreme operand with both banks.
    cycles = [load(0, -128), load(1, 127)]
    operands = [(-128, 0), (-128, 1), (127, 0), (127, 1), (-1, 0), (0, 1), (1, 1)]
    cycles += [{"a": a, "bank": bank} for a, bank in operands]
    outputs = run(DEFAULT, cycles)
    # Operand at cycle t -> psum_out at t + 3.
    got = outputs[5:5 + len(operands)]
    assert got == [16384, -16256, -16256, 16129, 128, 0, 127]
    assert outputs == model(DEFAULT, cycles)


def test_accumulate():
    # psum_in at t + 2 is added to the product of the operand at t.
    cycles = [load(0, 3), load(1, -5), {"a": 7, "bank": 0}, {"a": -2, "bank": 1},
              {"a": 11, "bank": 0, "psum_in": 100}, {"psum_in": -1000}, {"psum_in": 12345}]
    outputs = run(DEFAULT, cycles)
    assert outputs[5:8] == [100 + 21, -1000 + 10, 12345 + 33]
    assert outputs == model(DEFAULT, cycles)


def test_psum_passes_through_idle():
    # With a zero operand the PE is a one-cycle register of psum_in.
    values = [0, 1, -1, 2**31 - 1, -2**31, 17]
    outputs = run(DEFAULT, [{"psum_in": v} for v in values])
    assert outputs[1:1 + len(values)] == values


@pytest.mark.parametrize(("psum_in", "a", "weight", "expected"), [
    (255, 7, 7, 255 + 49 - 512),         # past the top wraps to the bottom
    (-256, -8, 7, -256 - 56 + 512),      # past the bottom wraps to the top
    (-256, -8, -8, -256 + 64),           # the most negative product does not wrap from -256
    (255, -8, -8, 255 + 64 - 512),       # the most positive product wraps from 255
    (200, 7, 7, 249),                    # close to the top without wrapping
])
def test_wraparound_narrow(psum_in, a, weight, expected):
    cycles = [load(1, weight), {"a": a, "bank": 1}, {}, {"psum_in": psum_in}]
    outputs = run(NARROW, cycles)
    assert outputs[4] == expected
    assert NARROW.acc_range[0] <= expected <= NARROW.acc_range[1]


def test_wraparound_default():
    top, bottom = 2**31 - 1, -2**31
    cycles = [load(0, -128), {"a": -128}, {"a": -128}, {"psum_in": top}, {"psum_in": bottom},
              {"psum_in": bottom}]
    outputs = run(DEFAULT, cycles)
    # Row 4 adds -128*-128 to the top, row 5 adds it to the bottom, row 6 adds nothing.
    assert outputs[4:7] == [top + 16384 - 2**32, bottom + 16384, bottom]


# -- weight banks ----------------------------------------------------------------------------


def test_banks_independent():
    # Writing one bank never changes the other; each product uses the bank it names.
    cycles = [load(0, 5), load(1, -7), {"a": 3, "bank": 0}, {"a": 3, "bank": 1},
              {**load(1, 9), "a": 3, "bank": 0}, {"a": 3, "bank": 1}, {"a": 3, "bank": 0}]
    outputs = run(DEFAULT, cycles)
    assert outputs[5:10] == [15, -21, 15, 27, 15]


def test_weight_write_timing():
    # A write in cycle t is seen by the operand of cycle t + 1, not by the one of cycle t:
    # a bank can be rewritten up to the cycle before it is used and right after its last use.
    cycles = [load(0, 2), {**load(0, 3), "a": 1}, {**load(0, 4), "a": 1}, {"a": 1}]
    outputs = run(DEFAULT, cycles)
    assert outputs[4:7] == [2, 3, 4]
    assert outputs == model(DEFAULT, cycles)


@pytest.mark.parametrize("config", [DEFAULT, NARROW, WIDE, SHALLOW],
                         ids=["default", "narrow", "wide", "shallow"])
def test_random_stream(config):
    seed = 20240611 + config.acc_width
    rng = np.random.default_rng(seed)
    lo_a, hi_a = config.input_range
    lo_w, hi_w = config.weight_range
    lo_s, hi_s = config.acc_range

    def operand(lo, hi):
        # Favour the extremes, where sign-extension and wrap-around bugs live.
        return int(rng.choice([lo, hi, -1, 0, 1])) if rng.random() < 0.3 else \
            int(rng.integers(lo, hi, endpoint=True))

    cycles = []
    for _ in range(200):
        inputs = {"a": operand(lo_a, hi_a), "bank": int(rng.integers(2)),
                  "psum_in": operand(lo_s, hi_s)}
        if rng.random() < 0.3:
            inputs.update(load(int(rng.integers(2)), operand(lo_w, hi_w)))
        cycles.append(inputs)
    outputs = run(config, cycles)
    expected = model(config, cycles)
    mismatches = [t for t, (got, want) in enumerate(zip(outputs, expected)) if got != want]
    assert not mismatches, (f"seed {seed}: psum_out differs from the model in cycles "
                            f"{mismatches[:10]}")
