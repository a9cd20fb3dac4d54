"""``convhw.estimate``: one layer lowered and placed as ``plan`` places it, timed by the list
cycle model, without simulating the gateware."""

import dataclasses

import numpy as np
import pytest

import convhw
from convhw.compiler.cycles import list_cycles
from convhw.compiler.image import Layer, plan
from convhw.memory_model import MemoryModel
from convhw.spec import ConvSpec

from .test_gateware_list_engine import TINY


@pytest.mark.parametrize("requantize", [False, True])
def test_estimate_is_the_list_model_of_the_planned_layer(requantize):
    spec, shape = ConvSpec(2, 4, 8, 3, stride=2, padding=1), (1, 4, 7, 7)
    rng = np.random.default_rng(0)
    layer = Layer(spec, rng.integers(-128, 128, spec.weight_shape),
                  requantize=((np.ones(8, int), np.full(8, 12)) if requantize else None))
    placed = plan(TINY, rng.integers(-128, 128, shape), [layer])
    memory = MemoryModel(2, 20)
    timing = list_cycles(placed, TINY, memory)
    e = convhw.estimate(spec, shape, config=TINY, memory=memory, requantize=requantize)
    assert e.cycles == timing.cycles
    assert (e.bytes_read, e.bytes_written) == (timing.bytes_read, timing.bytes_written)
    assert e.bytes_moved == e.bytes_read + e.bytes_written
    assert e.jobs == len(placed.builder.descriptors())
    assert e.useful_macs == spec.useful_macs(shape)
    assert e.efficiency == pytest.approx(e.useful_macs / (4 * 4 * e.cycles))
    assert 0 < e.efficiency < 1


def test_estimate_wishbone():
    # The Wishbone engine is modelled too: the same list, its own master's cycles.
    spec, shape = ConvSpec(2, 4, 8, 3, stride=2, padding=1), (1, 4, 7, 7)
    config = dataclasses.replace(TINY, bus="wishbone")
    rng = np.random.default_rng(0)
    layer = Layer(spec, rng.integers(-128, 128, spec.weight_shape))
    placed = plan(config, rng.integers(-128, 128, shape), [layer])
    memory = MemoryModel(8, 20)
    e = convhw.estimate(spec, shape, config=config, memory=memory)
    assert e.cycles == list_cycles(placed, config, memory).cycles
    assert e.cycles > convhw.estimate(spec, shape, config=TINY, memory=memory).cycles


def test_estimate_unbatched_shape_and_defaults():
    spec = ConvSpec(1, 8, 8, 3, padding=1)
    e = convhw.estimate(spec, (8, 20))
    assert e == convhw.estimate(spec, (1, 8, 20), config=convhw.EngineConfig(),
                                memory=convhw.MemoryModel())
    assert (e.rows, e.cols) == (convhw.EngineConfig().rows, convhw.EngineConfig().cols)


def test_estimate_int8_results_write_less_and_fast_memory_helps():
    spec, shape = ConvSpec(2, 8, 8, 3, padding=1), (1, 8, 6, 6)
    raw = convhw.estimate(spec, shape, config=TINY)
    int8 = convhw.estimate(spec, shape, config=TINY, requantize=True, relu=True)
    assert int8.bytes_written < raw.bytes_written
    slow = convhw.estimate(spec, shape, config=TINY, memory=MemoryModel(1, 50))
    assert slow.cycles > raw.cycles and slow.efficiency < raw.efficiency


def test_estimate_wrong():
    with pytest.raises(TypeError, match=r"^spec must be a ConvSpec, not 3$"):
        convhw.estimate(3, (1, 4, 5, 5))
    with pytest.raises(TypeError, match=r"^config must be an EngineConfig, not 'x'$"):
        convhw.estimate(ConvSpec(2, 4, 4, 3), (1, 4, 5, 5), config="x")
    with pytest.raises(ValueError, match=r"^memory must have no stalls"):
        convhw.estimate(ConvSpec(2, 4, 4, 3), (1, 4, 5, 5), memory=MemoryModel(stalls=0.1))


@pytest.mark.parametrize("spec, shape", [
    (ConvSpec(2, 16, 16, 3, padding=1), (1, 16, 12, 12)),
    (ConvSpec(2, 8, 16, 3, stride=2, padding=1), (1, 8, 13, 11)),
    (ConvSpec(2, 16, 16, 3, padding=1, groups=16), (1, 16, 12, 12)),     # depthwise (FIR)
    (ConvSpec(1, 4, 8, 5, padding=2), (1, 4, 40)),
    (ConvSpec(2, 8, 4, 4, stride=2, padding=1, transposed=True), (1, 8, 6, 6)),
    (ConvSpec(3, 4, 8, 3, padding=1), (1, 4, 4, 6, 6)),
])
@pytest.mark.parametrize("memory", [MemoryModel(8, 20), MemoryModel(1, 40)],
                         ids=["8B", "1B"])
def test_bound_is_below_the_exact_figure_and_the_rest_exact(spec, shape, memory):
    config = convhw.EngineConfig.preset("small")
    exact = convhw.estimate(spec, shape, config=config, memory=memory, requantize=True)
    bound = convhw.estimate(spec, shape, config=config, memory=memory, requantize=True,
                            exact=False)
    assert exact.exact and not bound.exact
    assert (bound.busy_cycles, bound.jobs) == (exact.busy_cycles, exact.jobs)
    # the traffic the jobs need; the bus moves whole beats (4 int8 channels: half a beat)
    assert bound.bytes_read <= exact.bytes_read
    assert bound.bytes_written <= exact.bytes_written
    assert bound.cycles <= exact.cycles
    # the larger of the datapath's time and the traffic's
    assert bound.cycles == max(bound.busy_cycles, -(-bound.bytes_moved
                                                    // memory.bytes_per_cycle))


def test_bound_on_a_reference_layer_is_within_a_percent():
    # ResNet-18's 3x3 64->64 at 56x56 on the default engine (exact: 1,771,678 cycles by the
    # cycle model, which tests/test_list_cycles.py holds equal to the RTL): every pixel fills
    # whole beats, so the bytes are exact too.
    spec, shape = ConvSpec(2, 64, 64, 3, padding=1), (1, 64, 56, 56)
    bound = convhw.estimate(spec, shape, requantize=True, exact=False)
    assert bound.busy_cycles == 1_765_880 and bound.bytes_moved == 541_184
    assert 0.99 * 1_771_678 <= bound.cycles <= 1_771_678
