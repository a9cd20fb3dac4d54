"""convhw.gateware.float32 against NumPy's float32 (the CPU's IEEE-754 single precision, round
to nearest even): int -> float, add, multiply and round-to-integer, each on random bit patterns
(seeded; the seed is printed with a failure) and on the cases where rounding is delicate (ties,
carries into the exponent, subnormals, cancellation, overflow)."""

from __future__ import annotations

import numpy as np
import pytest
from amaranth.hdl import Module, Signal
from amaranth.sim import Simulator

from convhw.gateware import float32

SEED = 20261206
F32 = np.float32


def bits(values) -> np.ndarray:
    return np.asarray(values, dtype=F32).view(np.uint32)


def floats(patterns) -> np.ndarray:
    return np.asarray(patterns, dtype=np.uint32).view(F32)


def simulate(build, inputs: list[np.ndarray], stages: int = 0):
    """Drives the function ``build(m, *signals, stage)`` with each row of ``inputs`` (one array
    per operand) and returns its outputs (a list per output). ``stages``: built with that many
    register stages inside (``float32.registers``), one row per cycle; else combinational."""
    m = Module()
    operands = [Signal(32, name=f"operand{i}") for i in range(len(inputs))]
    stage = float32.registers(m, "pipe") if stages else None
    outputs = build(m, *operands, stage)
    if not isinstance(outputs, tuple):
        outputs = (outputs,)
    results = [[] for _ in outputs]
    rows = list(zip(*inputs))

    async def bench(ctx):
        for cycle in range(len(rows) + stages):
            if cycle < len(rows):
                for signal, value in zip(operands, rows[cycle]):
                    ctx.set(signal, int(value) & 0xFFFFFFFF)
            if cycle >= stages:
                for index, output in enumerate(outputs):
                    results[index].append(ctx.get(output))
            if stages:
                await ctx.tick()

    sim = Simulator(m)
    if stages:
        sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return [np.array(r, dtype=np.int64) for r in results]


def special_floats() -> np.ndarray:
    """Values where rounding is delicate, both signs."""
    tiny = np.uint32(1).view(F32)                               # smallest subnormal
    values = [0.0, 1.0, 1.5, 2.5, 3.5, 0.5, 0.25, 1e-45, 1e-40, 1.1754942e-38, 1.1754944e-38,
              float(tiny), 16777216.0, 16777217.0, 8388607.5, 8388608.5, 3.4028235e38, 1e38,
              2.0 ** 31, 2.0 ** 31 - 64, 2.0 ** 32, 4294967040.0, 1e-7, 123456.789,
              np.nextafter(F32(1), F32(2)), np.nextafter(F32(1), F32(0))]
    values = np.array(values, dtype=F32)
    return np.concatenate([values, -values])


def random_floats(rng, count) -> np.ndarray:
    """Finite floats: random patterns, random exponents near 127 (sums that cancel and carry),
    and random subnormals."""
    patterns = rng.integers(0, 2 ** 32, count, dtype=np.uint64).astype(np.uint32)
    finite = patterns[(patterns >> 23 & 0xFF) != 0xFF]
    near = (rng.integers(0, 2, count) << 31 | rng.integers(110, 145, count) << 23
            | rng.integers(0, 2 ** 23, count)).astype(np.uint32)
    sub = (rng.integers(0, 2, count // 4) << 31 | rng.integers(0, 2 ** 23, count // 4)).astype(
        np.uint32)
    return floats(np.concatenate([finite, near, sub]))


def same_float(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """Where the patterns differ (NumPy's results are never NaN here)."""
    return got.astype(np.uint32) != bits(want)


@pytest.mark.parametrize("pipelined", [False, True], ids=["combinational", "pipelined"])
def test_int_to_float(pipelined):
    rng = np.random.default_rng(SEED)
    values = np.concatenate([
        rng.integers(-2 ** 31, 2 ** 31, 3000),
        rng.integers(-2 ** 26, 2 ** 26, 1000),
        [0, 1, -1, 2 ** 31 - 1, -2 ** 31, 2 ** 24, 2 ** 24 + 1, 2 ** 24 + 3, 2 ** 25 + 2,
         2 ** 25 + 6, 16777215, -16777217, 2 ** 30 + 64, 2 ** 30 + 192],
    ]).astype(np.int64)
    (got,) = simulate(lambda m, a, stage: float32.int_to_float(m, a, stage=stage),
                      [values & 0xFFFFFFFF], float32.STAGES["int_to_float"] if pipelined else 0)
    want = values.astype(np.int32).astype(F32)
    wrong = same_float(got, want)
    assert not wrong.any(), (f"seed {SEED}: {int(wrong.sum())} differ, first "
                             f"{values[wrong][:3]} -> {got[wrong][:3]} not {bits(want[wrong][:3])}")


def _binary(op, numpy_op, count, stages):
    rng = np.random.default_rng(SEED + count)
    special = special_floats()
    a_special, b_special = (x.ravel() for x in np.meshgrid(special, special))
    a = np.concatenate([random_floats(rng, count), a_special])
    b = np.concatenate([random_floats(rng, count)[:len(a) - len(a_special)], b_special])
    a, b = a[:len(b)], b[:len(a)]
    # Pairs built to cancel (a + -(a + tiny)) and to tie.
    near = random_floats(rng, count // 4)
    a = np.concatenate([a, near, near])
    b = np.concatenate([b, -np.nextafter(near, np.inf), -near])
    (got,) = simulate(lambda m, x, y, stage: op(m, x, y, stage=stage), [bits(a), bits(b)],
                      stages)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        want = numpy_op(a, b).astype(F32)
    wrong = same_float(got, want)
    assert not wrong.any(), (
        f"seed {SEED}: {int(wrong.sum())} of {len(a)} differ, first "
        f"{list(zip(a[wrong][:3], b[wrong][:3]))} -> {floats(got[wrong][:3] & 0xFFFFFFFF)} not "
        f"{want[wrong][:3]}")


@pytest.mark.parametrize("pipelined", [pytest.param(False, marks=pytest.mark.slow), True],
                         ids=["combinational", "pipelined"])
def test_float_add(pipelined):
    _binary(float32.float_add, np.add, 2000, float32.STAGES["float_add"] if pipelined else 0)


@pytest.mark.parametrize("pipelined", [pytest.param(False, marks=pytest.mark.slow), True],
                         ids=["combinational", "pipelined"])
def test_float_multiply(pipelined):
    _binary(float32.float_multiply, np.multiply, 2000,
            float32.STAGES["float_multiply"] if pipelined else 0)


@pytest.mark.parametrize("pipelined", [False, True], ids=["combinational", "pipelined"])
def test_round_to_int(pipelined):
    rng = np.random.default_rng(SEED + 1)
    values = np.concatenate([
        special_floats(),
        random_floats(rng, 2000),
        (rng.integers(-3000, 3000, 2000) / 2).astype(F32),          # ties
        (rng.normal(0, 300, 2000)).astype(F32),
        np.array([np.inf, -np.inf], dtype=F32),
    ])
    magnitude, negative, saturated = simulate(
        lambda m, x, stage: float32.round_to_int(m, x, stage=stage), [bits(values)],
        float32.STAGES["round_to_int"] if pipelined else 0)
    got = np.where(negative.astype(bool), -magnitude, magnitude)
    big = np.abs(values.astype(np.float64)) >= 2.0 ** 32
    assert np.array_equal(saturated.astype(bool), big), f"seed {SEED + 1}"
    want = np.rint(values[~big].astype(np.float64)).astype(np.int64)
    assert np.array_equal(got[~big], want), f"seed {SEED + 1}"
    assert np.array_equal(got[big] < 0, values[big] < 0), f"seed {SEED + 1}"


def test_leading_zeros_and_sticky_shift():
    rng = np.random.default_rng(SEED + 2)
    values = np.concatenate([[0, 1, 2 ** 26, 2 ** 27 - 1], rng.integers(0, 2 ** 27, 300),
                             rng.integers(0, 2 ** 8, 50)])
    amounts = np.concatenate([[0, 3, 27, 40], rng.integers(0, 32, len(values) - 4)])
    zeros, shifted = simulate(
        lambda m, x, n, stage: (float32.leading_zeros(m, x[:27], "lz"),
                         float32.shift_right_sticky(m, x[:27], n[:6], "shift")),
        [values, amounts])
    assert np.array_equal(zeros, [27 - int(v).bit_length() for v in values]), f"seed {SEED + 2}"
    want = [(v >> n) | (1 if v & ((1 << n) - 1) else 0) if n < 27 else int(v != 0)
            for v, n in zip(values.tolist(), amounts.tolist())]
    assert np.array_equal(shifted, want), f"seed {SEED + 2}"
