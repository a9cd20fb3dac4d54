# amaranth: UnusedElaboratable=no
"""convhw.nn and convhw.functional on Device("verilator"): the generated Verilog, compiled by
Verilator, against torch on random integer layers of all six ops; the same register traffic as
the Amaranth device; cycles equal to the compiler's model.

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

from .conformance import run_conformance

LAYERS = int(os.environ.get("VERILATOR_LAYERS", "100"))
SMALL = convhw.EngineConfig.preset("small")


@pytest.fixture(scope="module")
def device():
    device = convhw.Device("verilator", "small")
    yield device
    device.close()


def test_random_layers_match_torch(device):
    torch = pytest.importorskip("torch")
    seed = int(os.environ.get("SEED", "2026"))
    ops = run_conformance(torch, device, SMALL, LAYERS, seed)
    assert len(ops) == 6 or LAYERS < 60


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
