"""``ProcessingElement`` (top ``pe``, generated from convhw.gateware.pe) against a cycle model
of its contract, written from the docstring only:

* ``psum_out`` in cycle ``t + 3`` is ``psum_in`` of cycle ``t + 2`` plus ``a(t) *
  weight[bank(t)]``, wrapped to ``acc_width`` bits (two's complement);
* a weight written in cycle ``t`` is used by the operands of cycles ``t + 1`` on.

Random streams with the operand ranges' extremes, weight writes inserted at random or by a
fixed pattern (into the bank in use, too), and sums that wrap.
"""

from __future__ import annotations

import cocotb
import numpy as np

from gen_component import bench_config
from tb import TB, Inserter, check_equal, seed_for, to_signed

CONFIG_NAME, CONFIG = bench_config("default")


def model(cycles: list[dict[str, int]]) -> np.ndarray:
    """``psum_out`` per cycle for a stream starting after reset (everything 0)."""
    iw, ww, acc = CONFIG.input_width, CONFIG.weight_width, CONFIG.acc_width
    weights = [0, 0]
    prod = [0] * (len(cycles) + 2)         # prod[t + 2]: the product registered at edge t + 2
    for t, c in enumerate(cycles):
        prod[t + 2] = to_signed(c.get("a", 0), iw) * weights[c.get("bank", 0)]
        if c.get("w_we", 0):
            weights[c.get("w_bank", 0)] = to_signed(c.get("w_data", 0), ww)
    out = np.zeros(len(cycles), dtype=np.int64)
    for t in range(1, len(cycles)):
        # The sum registered at edge t: psum_in of cycle t - 1 plus the product registered at
        # edge t - 1 (of the operand of cycle t - 3).
        out[t] = to_signed(to_signed(cycles[t - 1].get("psum_in", 0), acc) + prod[t - 1], acc)
    return out


def operand(rng: np.random.Generator, bits: int, extremes: float = 0.3) -> int:
    """A ``bits``-wide two's-complement operand (as its unsigned encoding), the range's
    extremes and -1, 0, 1 with probability ``extremes``."""
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    if rng.random() < extremes:
        value = int(rng.choice([lo, hi, -1, 0, 1]))
    else:
        value = int(rng.integers(lo, hi, endpoint=True))
    return value & ((1 << bits) - 1)


def random_stream(rng, n: int, writes: Inserter, *, psum_extremes: float = 0.3):
    cycles = []
    for _ in range(n):
        c = {"a": operand(rng, CONFIG.input_width), "bank": int(rng.integers(2)),
             "psum_in": operand(rng, CONFIG.acc_width, psum_extremes)}
        if next(writes):
            c.update(w_we=1, w_bank=int(rng.integers(2)),
                     w_data=operand(rng, CONFIG.weight_width))
        cycles.append(c)
    return cycles


async def run(dut, test: str, cycles) -> None:
    tb = TB(dut, seed=seed_for(test), context=f"  test: {test}, pe of {CONFIG}")
    defaults = {"a": 0, "bank": 0, "w_we": 0, "w_bank": 0, "w_data": 0, "psum_in": 0}
    await tb.start(inputs=defaults)
    got = await tb.drive(cycles + [{}] * 3, ["psum_out"], defaults=defaults)
    out = np.array([to_signed(v, CONFIG.acc_width) for v in got["psum_out"]], dtype=np.int64)
    expected = model(cycles + [{}] * 3)
    # Cycle 0 still shows the reset state; compare from the first sum of driven inputs on.
    check_equal(out[1:], expected[1:], what="psum_out per cycle", context=tb.context)


@cocotb.test()
@cocotb.parametrize(stream=range(4))
async def test_random_stream(dut, stream: int) -> None:
    """Random operands, banks and partial sums; weights written at random (30 %)."""
    test = f"test_random_stream/stream={stream}"
    rng = np.random.default_rng(seed_for(test))
    writes = Inserter(seed=int(rng.integers(1 << 31)), probability=0.3)
    await run(dut, test, random_stream(rng, 1500, writes))


@cocotb.test()
async def test_write_patterns(dut) -> None:
    """Weight writes by fixed patterns: every cycle, every other, bursts; the bank written is
    often the one being multiplied, so write-then-use timing is exercised."""
    test = "test_write_patterns"
    rng = np.random.default_rng(seed_for(test))
    cycles = []
    for pattern in ([1], [1, 0], [1, 1, 1, 0, 0, 0, 0, 0]):
        stream = random_stream(rng, 300, Inserter(pattern))
        for c in stream:
            if c.get("w_we") and rng.random() < 0.5:
                c["w_bank"] = c["bank"]
        cycles += stream
    await run(dut, test, cycles)


@cocotb.test()
async def test_wrap_around(dut) -> None:
    """Partial sums at the accumulator's extremes plus the largest products: the sum wraps."""
    test = "test_wrap_around"
    rng = np.random.default_rng(seed_for(test))
    iw, ww, acc = CONFIG.input_width, CONFIG.weight_width, CONFIG.acc_width
    lo_a, lo_w = 1 << (iw - 1), 1 << (ww - 1)          # the most negative operands, encoded
    big = [(1 << (acc - 1)) - 1, 1 << (acc - 1)]       # max and min, encoded
    cycles = [{"w_we": 1, "w_bank": 0, "w_data": lo_w}, {"w_we": 1, "w_bank": 1, "w_data": 1}]
    for _ in range(400):
        cycles.append({"a": lo_a if rng.random() < 0.7 else operand(rng, iw),
                       "bank": int(rng.random() < 0.2), "psum_in": int(rng.choice(big))})
    await run(dut, test, cycles)
