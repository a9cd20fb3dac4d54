# amaranth: UnusedElaboratable=no
"""convhw.nn and convhw.functional on Device("verilator"): the generated Verilog, compiled by
Verilator, against torch on random integer layers of all six ops; the same register traffic as
the Amaranth device; cycles equal to the compiler's model.

The device is the fast tier's shared Verilated list engine (``VERILATED_LIST_CONFIG`` of
tests/helpers.py: the small preset with smaller buffers, whose library test_fuzz.py and
test_verilator_list.py use too); the conformance layers are the same as on the small preset
(the generator draws by the array, which is the same), those the serial device runs.

``VERILATOR_LAYERS`` (default 100) sets the number of random layers; the up5k preset's run is
marked slow (it builds a library of its own).
"""

import os

import numpy as np
import pytest

import convhw
from convhw import golden
from convhw.driver.driver import Driver
from convhw.driver.transport import AmaranthTransport, RecordingTransport
from convhw.spec import ConvSpec

from .conformance import MAX_SIZE, run_conformance
from .helpers import VERILATED_LIST_CONFIG, random_layer
from .test_gateware_list_engine import TINY

LAYERS = int(os.environ.get("VERILATOR_LAYERS", "100"))
SEED = int(os.environ.get("SEED", "2026"))
SMALL = convhw.EngineConfig.preset("small")


@pytest.fixture(scope="module")
def device():
    device = convhw.Device("verilator", VERILATED_LIST_CONFIG)
    yield device
    device.close()


def test_random_layers_match_torch(device):
    torch = pytest.importorskip("torch")
    ops = run_conformance(torch, device, VERILATED_LIST_CONFIG, LAYERS, SEED)
    assert len(ops) == 6 or LAYERS < 60


def test_the_fast_tier_verilates_one_small_list_engine():
    # The fast tier's Verilator tests share one library (see tests/helpers.py): a configuration
    # of their own would cost a fresh clone another build.
    assert VERILATED_LIST_CONFIG == TINY
    # Its conformance layers are the small preset's, which the serial device runs (same seed).
    draws = [np.random.default_rng(SEED) for _ in range(2)]
    for _ in range(300):
        assert (random_layer(draws[0], max_size=MAX_SIZE, config=VERILATED_LIST_CONFIG)
                == random_layer(draws[1], max_size=MAX_SIZE, config=SMALL))


@pytest.mark.slow
def test_same_traffic_as_amaranth():
    from convhw.driver.verilator_transport import VerilatorTransport
    spec = ConvSpec(2, 5, 3, 3, stride=2, padding=1, groups=1)
    rng = np.random.default_rng(8)
    x = rng.integers(-128, 128, (1, 5, 7, 6))
    w = rng.integers(-128, 128, spec.weight_shape)
    b = rng.integers(-100, 100, 3)
    logs, outputs = [], []
    for make in (lambda: AmaranthTransport(SMALL), lambda: VerilatorTransport(SMALL)):
        with RecordingTransport(make()) as transport:
            outputs.append(Driver(transport, SMALL).run(spec, x, w, b).output)
            logs.append(transport.log)
    assert logs[0] == logs[1]
    assert np.array_equal(outputs[0], golden.convolution(spec, x, w, b))
    assert np.array_equal(outputs[0], outputs[1])



@pytest.mark.slow
def test_up5k_conformance():
    """The up5k preset's Verilog (8-bit coordinates, 4-bit kernel, stride and dilation, a 2x2
    array, no border skipping) runs the conformance layers too."""
    torch = pytest.importorskip("torch")
    device = convhw.Device("verilator", "up5k")
    try:
        ops = run_conformance(torch, device, convhw.EngineConfig.preset("up5k"), 60, seed=2027)
    finally:
        device.close()
    assert len(ops) == 6
