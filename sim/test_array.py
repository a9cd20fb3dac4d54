"""``SystolicArray`` (top ``array``, generated from convhw.gateware.systolic_array) against a
NumPy model of its contract, written from the docstring only:

* dense: ``out_psum[c](τ + latency) = sum_r x_r(τ) * W[bank(τ)][r][c]``; depthwise (FIR):
  ``out_psum[c](τ + latency) = sum_r x_s(τ + r) * W[bank(τ + r)][r][c]``, ``s = lane_select[c]``;
  sums wrap to ``acc_width`` bits; ``out_valid(τ + latency) = in_valid(τ)``;
* timing of weights: PE(r, c) multiplies dense word ``τ`` in cycle ``τ + s + r + c``
  (depthwise: ``τ + s + c``), ``s`` the input stages (1 with the deep pipeline, else 0), and a
  row written in cycle ``t`` is used by the products of cycles ``t + 1`` on.

The model keeps every weight write with its cycle, so the benches write weights at any time,
into the bank in use too, and still know the exact weight each product used. ``in_valid`` is
dropped by valid inserters (seeded random or fixed patterns); bubbles carry garbage words.
"""

from __future__ import annotations

import cocotb
import numpy as np

from convhw.gateware.systolic_array import SystolicArray

from gen_component import bench_config
from tb import TB, Inserter, check_equal, seed_for, to_signed

CONFIG_NAME, CONFIG = bench_config("small")
ROWS, COLS = CONFIG.rows, CONFIG.cols
STAGES = 1 if CONFIG.deep_pipeline else 0                     # input stages, ``s``
LATENCY = ROWS + COLS + (2 if CONFIG.deep_pipeline else 0)      # the documented latency


def pack(values, width: int) -> int:
    return sum((int(v) & ((1 << width) - 1)) << (i * width) for i, v in enumerate(values))


def unpack(word: int, width: int, count: int) -> list[int]:
    return [to_signed(word >> (i * width), width) for i in range(count)]


def wrap(values, width: int) -> np.ndarray:
    half = 1 << (width - 1)
    return (np.asarray(values, dtype=np.int64) + half) % (2 * half) - half


def weight_history(n: int, writes: dict[int, tuple[int, int, list[int]]]) -> np.ndarray:
    """``W[t, bank, r, c]``: the weights the products of cycle ``t`` use (all writes of cycles
    before ``t`` applied; the array starts from reset, all zero)."""
    history = np.zeros((n + 1, 2, ROWS, COLS), dtype=np.int64)
    current = np.zeros((2, ROWS, COLS), dtype=np.int64)
    for t in range(n):
        history[t] = current
        if t in writes:
            row, bank, values = writes[t]
            current[bank, row] = values
    history[n] = current
    return history


def dense_model(words, banks, history) -> np.ndarray:
    """The sums of word ``τ`` for every ``τ`` (rows: words, columns: array columns)."""
    n = len(words)
    out = np.zeros((n, COLS), dtype=np.int64)
    r = np.arange(ROWS)[:, None]
    c = np.arange(COLS)[None, :]
    for tau in range(n):
        used = history[tau + STAGES + r + c, banks[tau], r, c]          # (rows, cols)
        out[tau] = words[tau] @ used
    return wrap(out, CONFIG.acc_width)


def depthwise_model(words, banks, history, lanes) -> np.ndarray:
    """The sums of every ``τ`` whose window ``τ .. τ + rows - 1`` lies in the stream."""
    n = len(words) - ROWS + 1
    out = np.zeros((n, COLS), dtype=np.int64)
    for tau in range(n):
        for r in range(ROWS):
            word = tau + r
            used = history[word + STAGES + np.arange(COLS), banks[word], r, np.arange(COLS)]
            out[tau] += words[word, lanes] * used
    return wrap(out, CONFIG.acc_width)


def random_values(rng, n: int, width: int, count: int) -> np.ndarray:
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    values = rng.integers(lo, hi, (n, count), endpoint=True)
    corners = rng.random(values.shape) < 0.2
    values[corners] = rng.choice([lo, hi], int(corners.sum()))
    return values


async def run(dut, test: str, *, n: int, valid: Inserter, writes: Inserter,
              depthwise: bool = False, lanes=None) -> None:
    rng = np.random.default_rng(seed_for(test, 1))
    tb = TB(dut, seed=seed_for(test), context=f"  test: {test}, array of {CONFIG}")
    lanes = [0] * COLS if lanes is None else list(lanes)
    defaults = {"w_we": 0, "w_row": 0, "w_bank": 0, "w_data": 0, "in_valid": 0, "in_word": 0,
                "in_bank": 0, "depthwise": int(depthwise),
                "lane_select": pack(lanes, (ROWS - 1).bit_length())}
    if SystolicArray.tagged_for(CONFIG):
        # the row tags of joined FIR rows, equal: the plain FIR (tests/test_gateware_array.py
        # drives them)
        defaults.update(in_word_row=0, in_sum_row=0)
    await tb.start(inputs=defaults)
    total = n + LATENCY + ROWS + 2
    words = random_values(rng, total, CONFIG.input_width, ROWS)
    banks = rng.integers(2, size=total)
    in_valid = np.array([next(valid) if t < n else 0 for t in range(total)], dtype=np.int64)
    weight_writes = {}
    cycles = []
    for t in range(total):
        c = {"in_word": pack(words[t], CONFIG.input_width), "in_bank": int(banks[t]),
             "in_valid": int(in_valid[t])}
        if t < 2 * ROWS:
            # Both banks loaded first, so that the earliest words multiply real weights.
            weight_writes[t] = (t % ROWS, t // ROWS, random_values(rng, 1, CONFIG.weight_width,
                                                                 COLS)[0])
        elif t < n and next(writes):
            weight_writes[t] = (int(rng.integers(ROWS)), int(rng.integers(2)),
                                random_values(rng, 1, CONFIG.weight_width, COLS)[0])
        if t in weight_writes:
            row, bank, values = weight_writes[t]
            c.update(w_we=1, w_row=row, w_bank=bank, w_data=pack(values, CONFIG.weight_width))
        cycles.append(c)
    got = await tb.drive(cycles, ["out_valid", "out_psum"], defaults=defaults)
    history = weight_history(total + LATENCY, weight_writes)
    out_valid = np.array(got["out_valid"], dtype=np.int64)
    check_equal(out_valid[LATENCY:], in_valid[:total - LATENCY], what="out_valid, from cycle "
                f"{LATENCY} on (in_valid delayed by the latency)", context=tb.context)
    assert not out_valid[:LATENCY].any(), f"out_valid before any word could arrive\n{tb.context}"
    psums = np.array([unpack(v, CONFIG.acc_width, COLS) for v in got["out_psum"]])
    if depthwise:
        expected = depthwise_model(words, banks, history, lanes)[:n]
        check_equal(psums[LATENCY:LATENCY + n], expected, what="depthwise sums (word, column)",
                    context=tb.context + f"\n  lanes: {lanes}")
    else:
        real = in_valid[:n].astype(bool)
        expected = dense_model(words[:n], banks[:n], history)
        check_equal(psums[LATENCY:LATENCY + n][real], expected[real],
                    what="dense sums of the valid words (valid word, column)", context=tb.context)


@cocotb.test()
@cocotb.parametrize(stream=range(3))
async def test_dense_random(dut, stream: int) -> None:
    """Dense mode: random bank per word, 30 % bubbles, weights rewritten at random (also the
    bank in use, mid-stream)."""
    test = f"test_dense_random/stream={stream}"
    seed = seed_for(test, 2)
    await run(dut, test, n=600, valid=Inserter(seed=seed, probability=0.7),
              writes=Inserter(seed=seed + 1, probability=0.25))


@cocotb.test()
@cocotb.parametrize(pattern=[(1,), (1, 0), (1, 1, 0), (0, 0, 1, 1, 1, 1)])
async def test_dense_valid_patterns(dut, pattern) -> None:
    """Dense mode, ``in_valid`` by a fixed pattern, weights rewritten every fifth cycle."""
    test = f"test_dense_valid_patterns/pattern={pattern}"
    await run(dut, test, n=300, valid=Inserter(pattern), writes=Inserter([0, 0, 0, 0, 1]))


@cocotb.test()
@cocotb.parametrize(stream=range(3))
async def test_depthwise(dut, stream: int) -> None:
    """Depthwise (FIR) mode: random lane selection, random banks and weight writes; bubbles
    are still samples of the filter."""
    test = f"test_depthwise/stream={stream}"
    seed = seed_for(test, 2)
    lanes = np.random.default_rng(seed).integers(ROWS, size=COLS)
    await run(dut, test, n=400, valid=Inserter(seed=seed, probability=0.8),
              writes=Inserter(seed=seed + 1, probability=0.2), depthwise=True, lanes=lanes)
