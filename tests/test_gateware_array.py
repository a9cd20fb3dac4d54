# amaranth: UnusedElaboratable=no
"""SystolicArray in the Amaranth simulator against a NumPy model of its contract: dense streams
on square and non-square arrays, bubbles, a bank switch without a bubble (with the next pass's
weights loaded while the current one streams), depthwise (FIR) mode with several lane
selections, the latency property, and Verilog conversion.

(The first line silences Amaranth's "created but never used" warning for the arrays that the
constructor tests build and never elaborate.)"""


import numpy as np
import pytest
from amaranth.back import verilog
from amaranth.hdl import signed, unsigned
from amaranth.lib import data
from amaranth.lib.wiring import In, Out
from amaranth.sim import Simulator

from convhw import timing
from convhw.config import EngineConfig
from convhw.gateware.systolic_array import SystolicArray

from .helpers import exactly

SMALL = EngineConfig.preset("small")
WIDE_ARRAY = EngineConfig(rows=3, cols=5)
TALL_ARRAY = EngineConfig(rows=5, cols=2)
ONE = EngineConfig(rows=1, cols=1)
# Narrow operands and a 9-bit accumulator: sums of four extreme products wrap around.
NARROW = EngineConfig(rows=4, cols=3, input_width=4, weight_width=4, acc_width=9)

# Without the deep pipeline neither the array's input nor the PEs' operands are registered: two
# cycles less.
SHALLOW = EngineConfig(rows=3, cols=4, deep_pipeline=False)
CONFIGS = {"small": SMALL, "3x5": WIDE_ARRAY, "5x2": TALL_ARRAY, "1x1": ONE, "narrow": NARROW,
           "shallow": SHALLOW}


# -- the model -------------------------------------------------------------------------------
#
# Written from the array's contract only: each word is multiplied with the weight matrix of the
# bank it names, `weights[τ]` below (rows x cols), and sums wrap at acc_width.


def wrap(values, width):
    """``values`` as ``width``-bit two's-complement numbers."""
    half = 1 << (width - 1)
    return (np.asarray(values, dtype=np.int64) + half) % (2 * half) - half


def dense_model(config, words, weights):
    """``out[τ, c] = sum_r words[τ, r] * weights[τ, r, c]``."""
    return wrap(np.einsum("tr,trc->tc", words, weights), config.acc_width)


def depthwise_model(config, words, weights, lane_select, word_row=None, sum_row=None):
    """``out[τ, c] = sum_r words[τ + r, lane_select[c]] * weights[τ + r, r, c]``, for every ``τ``
    whose window ``τ .. τ + rows - 1`` lies inside the stream; with row tags, only the terms
    whose word's tag ``word_row[τ + r]`` equals the sum's ``sum_row[τ]``."""
    n = len(words) - config.rows + 1
    out = np.zeros((n, config.cols), dtype=np.int64)
    for r in range(config.rows):
        term = words[r:r + n][:, lane_select] * weights[r:r + n, r, :]
        if word_row is not None:
            term = np.where((word_row[r:r + n] == sum_row[:n])[:, None], term, 0)
        out += term
    return wrap(out, config.acc_width)


# -- the simulation --------------------------------------------------------------------------


def pack(values, width):
    """Signed ``values`` as one unsigned word, element ``i`` in bits ``[i*width, (i+1)*width)``."""
    return sum((int(v) & ((1 << width) - 1)) << (i * width) for i, v in enumerate(values))


def load_cycles(bank, matrix):
    """One cycle per row writing ``matrix`` (rows x cols) into ``bank``."""
    return [{"w": (r, bank, row)} for r, row in enumerate(matrix)]


def stream_cycles(words, banks, valid=None, word_row=None, sum_row=None):
    valid = np.ones(len(words), dtype=int) if valid is None else valid
    word_row = np.zeros(len(words), dtype=int) if word_row is None else word_row
    sum_row = word_row if sum_row is None else sum_row
    return [{"word": w, "bank": int(b), "valid": int(v), "rows": (int(wr), int(sr))}
            for w, b, v, wr, sr in zip(words, banks, valid, word_row, sum_row)]


def simulate(config, cycles, *, depthwise=0, lane_select=None):
    """Drive ``cycles`` (dicts with an optional input word ``word``/``bank``/``valid`` and an
    optional weight write ``w = (row, bank, values)``), then ``latency`` idle cycles.

    Returns ``(latency, out_valid, out_psum)`` with one entry (a row of ``cols`` sums) per cycle.
    """
    dut = SystolicArray(config)
    lane_select = [0] * config.cols if lane_select is None else lane_select
    valid_out, psum_out = [], []

    async def testbench(ctx):
        ctx.set(dut.depthwise, depthwise)
        ctx.set(dut.lane_select, [int(s) for s in lane_select])
        for inputs in [*cycles, *[{}] * dut.latency]:
            ctx.set(dut.in_valid, inputs.get("valid", 0))
            ctx.set(dut.in_bank, inputs.get("bank", 0))
            ctx.set(dut.in_word, pack(inputs.get("word", ()), config.operand_width))
            if SystolicArray.tagged_for(config):
                word_row, sum_row = inputs.get("rows", (0, 0))
                ctx.set(dut.in_word_row, word_row)
                ctx.set(dut.in_sum_row, sum_row)
            row, bank, values = inputs.get("w", (0, 0, ()))
            ctx.set(dut.w_we, "w" in inputs)
            ctx.set(dut.w_row, row)
            ctx.set(dut.w_bank, bank)
            ctx.set(dut.w_data, pack(values, config.weight_width))
            valid_out.append(ctx.get(dut.out_valid))
            psum_out.append(list(ctx.get(dut.out_psum)))
            await ctx.tick()

    sim = Simulator(dut)
    sim.add_clock(1e-6)
    sim.add_testbench(testbench)
    sim.run()
    return dut.latency, np.array(valid_out), np.array(psum_out, dtype=np.int64)


def random_words(rng, config, n):
    lo, hi = config.input_range
    words = rng.integers(lo, hi, size=(n, config.rows), endpoint=True)
    # Sprinkle the extremes, where sign-extension bugs live.
    corners = rng.random(words.shape) < 0.2
    words[corners] = rng.choice([lo, hi], size=int(corners.sum()))
    return words


def random_weights(rng, config, *shape):
    lo, hi = config.weight_range
    weights = rng.integers(lo, hi, size=(*shape, config.rows, config.cols), endpoint=True)
    corners = rng.random(weights.shape) < 0.2
    weights[corners] = rng.choice([lo, hi], size=int(corners.sum()))
    return weights


def check(got, expected, seed, what):
    bad = np.argwhere(got != expected)
    assert not len(bad), (f"seed {seed}: {what}: {len(bad)} sums differ, first at (word, column) "
                          f"{tuple(bad[0])}: got {got[tuple(bad[0])]}, "
                          f"expected {expected[tuple(bad[0])]}")


# -- construction ----------------------------------------------------------------------------


def test_init():
    dut = SystolicArray(WIDE_ARRAY)
    assert dut.config is WIDE_ARRAY
    # input stage, skew through 3 rows and 5 columns, 3 PE stages, de-skew
    assert dut.latency == 1 + 3 + 5 + 1
    assert dict(dut.signature.members.items()) == {
        "in_valid": In(1),
        "in_word": In(3 * 8),
        "in_bank": In(1),
        "in_word_row": In(1),
        "in_sum_row": In(1),
        "depthwise": In(1),
        "lane_select": In(data.ArrayLayout(range(3), 5)),
        "w_we": In(1),
        "w_row": In(range(3)),
        "w_bank": In(1),
        "w_data": In(5 * 8),
        "out_valid": Out(1),
        "out_psum": Out(data.ArrayLayout(signed(32), 5)),
    }
    assert dut.in_word.shape() == unsigned(24)
    assert dut.w_row.shape() == unsigned(2)
    assert dut.w_data.shape() == unsigned(40)


def test_init_one():
    dut = SystolicArray(ONE)
    assert dut.latency == 1 + 3
    assert SystolicArray(SHALLOW).latency == 3 + 4
    assert dut.w_row.shape() == unsigned(0)
    assert dut.lane_select.as_value().shape() == unsigned(0)


def test_properties_read_only():
    dut = SystolicArray(SMALL)
    with pytest.raises(AttributeError):
        dut.config = WIDE_ARRAY
    with pytest.raises(AttributeError):
        dut.latency = 3


@pytest.mark.parametrize("config", [None, "small", 4, (4, 4)])
def test_init_wrong_config(config):
    with pytest.raises(TypeError, match=exactly(
            f"config must be an EngineConfig, not {config!r}")):
        SystolicArray(config)


def test_converts_to_verilog():
    text = verilog.convert(SystolicArray(EngineConfig.preset("default")))
    assert "module top" in text


# -- dense mode ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(CONFIGS))
def test_latency(name):
    # One word after silence: out_valid and the only non-zero sums appear `latency` cycles later.
    config = CONFIGS[name]
    rng = np.random.default_rng(7)
    weights = random_weights(rng, config)
    word = np.arange(1, config.rows + 1) * np.where(np.arange(config.rows) % 2, -1, 1)
    cycles = [*load_cycles(0, weights), *[{}] * 3, {"word": word, "valid": 1}, *[{}] * 4]
    start = len(cycles) - 5
    latency, valid, psums = simulate(config, cycles)
    assert np.flatnonzero(valid).tolist() == [start + latency]
    expected = dense_model(config, word[None], weights[None])[0]
    assert expected.any()
    assert np.flatnonzero(psums.any(axis=1)).tolist() == [start + latency]
    assert psums[start + latency].tolist() == expected.tolist()


@pytest.mark.parametrize("name", ["small", "3x5", "5x2", "narrow", "shallow"])
def test_dense_random(name):
    # Both banks loaded, then a stream whose bank bit changes at random from word to word.
    config = CONFIGS[name]
    seed = 1000 + list(CONFIGS).index(name)
    rng = np.random.default_rng(seed)
    n = 60
    weights = random_weights(rng, config, 2)
    words = random_words(rng, config, n)
    banks = rng.integers(2, size=n)
    cycles = [*load_cycles(0, weights[0]), *load_cycles(1, weights[1])]
    start = len(cycles)
    cycles += stream_cycles(words, banks)
    latency, valid, psums = simulate(config, cycles)
    out = slice(start + latency, start + latency + n)
    assert valid.tolist() == [0] * out.start + [1] * n + [0] * (len(valid) - out.stop), \
        f"seed {seed}"
    check(psums[out], dense_model(config, words, weights[banks]), seed, "dense stream")


@pytest.mark.parametrize("name", ["small", "3x5"])
def test_dense_bubbles(name):
    # Idle cycles (in_valid low, with garbage words) keep flowing: their outputs are flagged
    # invalid and the real words around them are unaffected.
    config = CONFIGS[name]
    seed = 2000 + list(CONFIGS).index(name)
    rng = np.random.default_rng(seed)
    n = 60
    weights = random_weights(rng, config, 2)
    words = random_words(rng, config, n)
    banks = rng.integers(2, size=n)
    valid_in = (rng.random(n) < 0.65).astype(int)
    valid_in[:3] = [1, 0, 0]
    cycles = [*load_cycles(0, weights[0]), *load_cycles(1, weights[1])]
    start = len(cycles)
    cycles += stream_cycles(words, banks, valid_in)
    latency, valid, psums = simulate(config, cycles)
    out = slice(start + latency, start + latency + n)
    assert not valid[:out.start].any() and not valid[out.stop:].any(), f"seed {seed}"
    assert valid[out].tolist() == valid_in.tolist(), f"seed {seed}"
    real = valid_in.astype(bool)
    check(psums[out][real], dense_model(config, words, weights[banks])[real], seed,
          "real words among bubbles")


@pytest.mark.parametrize("name", ["small", "3x5", "5x2"])
def test_bank_switch_without_bubble(name):
    # Three back-to-back passes: A in bank 0, B in bank 1, C in bank 0 again. B is loaded while
    # A streams, finishing the cycle before B's first word; C is loaded while B streams, starting
    # in the cycle of A's last product: both as late and as early as the contract allows. The
    # bank bit switches between two consecutive valid words; no cycle is lost.
    config = CONFIGS[name]
    seed = 3000 + list(CONFIGS).index(name)
    rng = np.random.default_rng(seed)
    rows, cols = config.rows, config.cols
    per_pass = 2 * rows + cols + 3
    entry = timing.array_input_stages(config)       # cycles from entering to the PEs
    matrices = random_weights(rng, config, 3)
    words = random_words(rng, config, 3 * per_pass)
    banks = np.repeat([0, 1, 0], per_pass)
    cycles = load_cycles(0, matrices[0])
    start = len(cycles)
    cycles += stream_cycles(words, banks)
    # Rows are written bottom row first, so that the row each bound is about is the one written
    # at the bound: row 0 multiplies a word first, the bottom row last.
    order = list(reversed(range(rows)))
    # The first word of pass B enters in cycle start + per_pass and reaches row 0 `entry`
    # cycles later; row 0 is written the cycle before.
    for k, r in enumerate(order):
        cycles[start + per_pass + entry - rows + k]["w"] = (r, 1, matrices[1][r])
    # The last word of pass A enters in cycle start + per_pass - 1 and is multiplied for the last
    # time (by PE(rows - 1, cols - 1)) entry + rows + cols - 2 cycles later; a write in that
    # cycle is only seen by the products of the next one.
    reload = start + per_pass - 1 + entry + rows + cols - 2
    assert reload + rows <= start + 2 * per_pass
    for k, r in enumerate(order):
        cycles[reload + k]["w"] = (r, 0, matrices[2][r])
    latency, valid, psums = simulate(config, cycles)
    out = slice(start + latency, start + latency + len(words))
    assert valid[out].all(), f"seed {seed}"
    expected = dense_model(config, words, np.repeat(matrices, per_pass, axis=0))
    check(psums[out], expected, seed, "passes A, B, C")


# -- depthwise mode --------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "lane_select"), [
    ("small", [0, 1, 2, 3]),
    ("small", [1, 1, 0, 3]),
    ("small", [3, 2, 1, 0]),
    ("3x5", [0, 1, 2, 2, 0]),
    ("narrow", [2, 0, 3]),
])
def test_depthwise(name, lane_select):
    config = CONFIGS[name]
    seed = 4000 + sum(lane_select) * 10 + list(CONFIGS).index(name)
    rng = np.random.default_rng(seed)
    n = 50
    weights = random_weights(rng, config, 2)
    words = random_words(rng, config, n)
    banks = rng.integers(2, size=n)
    cycles = [*load_cycles(0, weights[0]), *load_cycles(1, weights[1])]
    start = len(cycles)
    cycles += stream_cycles(words, banks)
    latency, valid, psums = simulate(config, cycles, depthwise=1, lane_select=lane_select)
    # out_valid keeps the dense timing: it is in_valid of word τ, delayed by latency.
    out = slice(start + latency, start + latency + n)
    assert valid.tolist() == [0] * out.start + [1] * n + [0] * (len(valid) - out.stop), \
        f"seed {seed}"
    expected = depthwise_model(config, words, weights[banks], np.array(lane_select))
    check(psums[out][:len(expected)], expected, seed, f"depthwise, lanes {lane_select}")


@pytest.mark.parametrize("name", ["small", "3x5", "narrow"])
def test_depthwise_row_tags(name):
    # Joined FIR rows (timing.fir_shares_padding): a term counts only where the word's row
    # tag equals that of the sum it is multiplied into; random tags, so that every PE sees
    # both.
    config = CONFIGS[name]
    seed = 4500 + list(CONFIGS).index(name)
    rng = np.random.default_rng(seed)
    n = 60
    weights = random_weights(rng, config, 1)
    words = random_words(rng, config, n)
    word_row, sum_row = rng.integers(2, size=n), rng.integers(2, size=n)
    lane_select = [int(v) for v in rng.integers(config.rows, size=config.cols)]
    cycles = load_cycles(0, weights[0])
    start = len(cycles)
    cycles += stream_cycles(words, np.zeros(n), word_row=word_row, sum_row=sum_row)
    latency, _, psums = simulate(config, cycles, depthwise=1, lane_select=lane_select)
    expected = depthwise_model(config, words, weights[np.zeros(n, dtype=int)],
                               np.array(lane_select), word_row, sum_row)
    got = psums[start + latency:start + latency + len(expected)]
    check(got, expected, seed, "depthwise with row tags")


def test_depthwise_fir():
    # The use the mode exists for: a 3-tap filter per channel over a row of pixels. Channel c
    # (lane c) goes through column c, whose rows hold its taps; row 3 of the array is unused.
    config = SMALL
    taps = np.array([[1, 2, 3, -1], [0, -1, 1, 2], [5, 0, -2, 1], [0, 0, 0, 0]])
    pixels = np.arange(12 * 4).reshape(12, 4) % 17 - 8
    cycles = load_cycles(0, taps)
    start = len(cycles)
    cycles += stream_cycles(pixels, np.zeros(len(pixels)))
    latency, _, psums = simulate(config, cycles, depthwise=1, lane_select=[0, 1, 2, 3])
    got = psums[start + latency:start + latency + len(pixels) - 2]
    for c in range(4):
        expected = np.correlate(pixels[:, c], taps[:3, c], mode="valid")
        assert got[:, c].tolist() == expected.tolist(), f"channel {c}"
