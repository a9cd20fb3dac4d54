"""Tap packing (convhw.compiler.packing): a low-channel layer rewritten so that its x taps fill
the array's rows computes the same outputs, to the bit, and takes fewer cycles."""

import numpy as np
import pytest

from convhw import golden
from convhw.compiler import run_model
from convhw.compiler.packing import tap_packing
from convhw.config import EngineConfig
from convhw.estimate import estimate
from convhw.spec import ConvSpec

SMALL = EngineConfig.preset("small")           # 4 rows


@pytest.mark.parametrize("seed", range(16))
def test_packed_layer_equals_the_original(seed):
    rng = np.random.default_rng(seed)
    dims = int(rng.integers(1, 4))
    channels = int(rng.integers(1, 3))
    kernel = tuple(int(k) for k in rng.integers(2, 6 if dims < 3 else 4, dims))
    mode = str(rng.choice(["zeros", "reflect", "replicate", "circular"]))
    lo_hi = tuple((int(rng.integers(0, k)), int(rng.integers(0, k))) if mode == "zeros"
                  else (k // 2, k // 2) for k in kernel)
    spec = ConvSpec(dims, channels, int(rng.integers(1, 6)), kernel,
                    stride=tuple(int(s) for s in rng.integers(1, 4, dims)), padding=lo_hi,
                    dilation=tuple(int(d) for d in rng.integers(1, 3, dims)),
                    padding_mode=mode)
    shape = (int(rng.integers(1, 3)), channels,
             *(int(s) + 2 * k * 2 for s, k in zip(rng.integers(3, 9, dims), kernel)))
    packing = tap_packing(spec, SMALL)
    assert packing is not None and packing.taps >= 2, f"seed {seed}: {spec}"
    x = rng.integers(-128, 128, shape)
    w = rng.integers(-128, 128, spec.weight_shape)
    b = rng.integers(-500, 500, spec.out_channels)
    px, pw = packing.input(x), packing.weight(w)
    assert px.shape == packing.input_shape(shape)
    assert pw.shape == packing.spec.weight_shape
    want = golden.convolution(spec, x, w, b)
    assert np.array_equal(golden.convolution(packing.spec, px, pw, b), want), f"seed {seed}"
    got, _ = run_model(packing.spec, px, pw, b, SMALL)
    assert np.array_equal(got, want), f"seed {seed}: {spec} {shape}"


def test_zero_point_is_the_padding_value():
    """With torch's quantised arithmetic the padding is the input's zero point: x - zero = 0."""
    rng = np.random.default_rng(4)
    config = EngineConfig.preset("small-quantized")
    spec = ConvSpec(2, 2, 4, 5, stride=2, padding=2)
    x = rng.integers(0, 256, (1, 2, 12, 12))
    w = rng.integers(-128, 128, spec.weight_shape)
    packing = tap_packing(spec, config)
    zero = 77
    got, _ = run_model(packing.spec, packing.input(x, pad_value=zero), packing.weight(w), None,
                       config, input_zero=zero)
    want, _ = run_model(spec, x, w, None, config, input_zero=zero)
    assert np.array_equal(got, want)


def test_which_layers_pack():
    assert tap_packing(ConvSpec(2, 3, 64, 7, stride=2, padding=3), EngineConfig()).taps == 2
    assert tap_packing(ConvSpec(1, 1, 512, 10, stride=5), EngineConfig()).taps == 8
    assert tap_packing(ConvSpec(2, 5, 8, 3), EngineConfig()) is None         # 5 of 8 rows
    assert tap_packing(ConvSpec(2, 3, 8, (3, 1)), EngineConfig()) is None    # x kernel 1
    assert tap_packing(ConvSpec(2, 3, 3, 3, groups=3), EngineConfig()) is None
    assert tap_packing(ConvSpec(2, 3, 8, 3, transposed=True), EngineConfig()) is None


def test_resnet_stem_packed_takes_fewer_cycles():
    """ResNet-18's stem on the default 8x8 array with the memory model: the packed layer
    (6 of 8 rows) against the original (3 of 8), the cycle model's bound."""
    spec = ConvSpec(2, 3, 64, 7, stride=2, padding=3, bias=False)
    shape = (1, 3, 224, 224)
    packing = tap_packing(spec, EngineConfig())
    plain = estimate(spec, shape, requantize=True, exact=False, pack_taps=False)
    packed = estimate(packing.spec, packing.input_shape(shape), requantize=True, exact=False,
                      pack_taps=False)
    assert packed.cycles * 1.5 < plain.cycles
    # estimate() models what the devices run: the packed layer, the original's useful MACs.
    modelled = estimate(spec, shape, requantize=True, exact=False)
    assert modelled.cycles == packed.cycles
    assert modelled.useful_macs == spec.useful_macs(shape)


def test_the_simulated_list_engine_packs_a_stem():
    """Device("verilator") runs a 1-channel layer packed (4 taps a word on the 4-row array):
    exact, and in fewer cycles than the same layer padded to 4 channels (which fills the rows
    and does not pack)."""
    import convhw

    from .helpers import VERILATED_LIST_CONFIG
    rng = np.random.default_rng(2)
    device = convhw.Device("verilator", VERILATED_LIST_CONFIG)
    spec = ConvSpec(2, 1, 8, 5, stride=2, padding=2)
    assert tap_packing(spec, VERILATED_LIST_CONFIG).taps == 4
    x = rng.integers(-128, 128, (1, 1, 64, 64))
    w = rng.integers(-128, 128, spec.weight_shape)
    b = rng.integers(-100, 100, 8)
    y, packed = device.run(spec, x, w, b)
    assert np.array_equal(y, golden.convolution(spec, x, w, b))
    # The same layer unpacked, as the engine runs it (51,502 cycles against 92,356 by the
    # cycle model: the packed kernel has 10 taps, the original 25, and the same jobs).
    wide = ConvSpec(2, 4, 8, 5, stride=2, padding=2)
    x4 = np.concatenate([x, np.zeros((1, 3, 64, 64), np.int64)], axis=1)
    w4 = np.concatenate([w, np.zeros((8, 3, 5, 5), np.int64)], axis=1)
    y4, unpacked = device.run(wide, x4, w4, b)
    assert np.array_equal(y4, y)
    assert packed.cycles * 1.5 < unpacked.cycles, (packed.cycles, unpacked.cycles)
