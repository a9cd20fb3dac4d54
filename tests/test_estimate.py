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
