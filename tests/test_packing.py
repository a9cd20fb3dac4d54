"""Packings (convhw.compiler.packing): a low-channel layer rewritten so that its taps fill the
array's rows (x taps packed, or im2col over the innermost dimensions) computes the same outputs,
to the bit, and takes fewer cycles; the compiler picks the fastest."""

import numpy as np
import pytest

from convhw import golden
from convhw.compiler import run_model
from convhw.compiler.packing import packing_for, tap_packing, window_packing
from convhw.config import EngineConfig
from convhw.estimate import estimate
from convhw.spec import ConvSpec

SMALL = EngineConfig.preset("small")           # 4 rows


def random_stem(rng, largest_kernel: int, largest_size: int):
    """A random layer of 1-2 input channels (1-3 dimensions, every padding mode, stride and
    dilation) and an input shape for it."""
    dims = int(rng.integers(1, 4))
    channels = int(rng.integers(1, 3))
    kernel = tuple(int(k) for k in rng.integers(2, largest_kernel if dims < 3 else 4, dims))
    mode = str(rng.choice(["zeros", "reflect", "replicate", "circular"]))
    lo_hi = tuple((int(rng.integers(0, k)), int(rng.integers(0, k))) if mode == "zeros"
                  else (k // 2, k // 2) for k in kernel)
    spec = ConvSpec(dims, channels, int(rng.integers(1, 6)), kernel,
                    stride=tuple(int(s) for s in rng.integers(1, 4, dims)), padding=lo_hi,
                    dilation=tuple(int(d) for d in rng.integers(1, 3, dims)),
                    padding_mode=mode)
    shape = (int(rng.integers(1, 3)), channels,
             *(int(s) + 2 * k * 2 for s, k in zip(rng.integers(3, largest_size, dims), kernel)))
    return spec, shape


def check_packed(packing, shape, rng, context: str):
    """Random operands through ``packing``: the packed shapes, and the packed layer's golden
    model and the compiler's run of it equal the original layer's golden model."""
    spec = packing.original
    x = rng.integers(-128, 128, shape)
    w = rng.integers(-128, 128, spec.weight_shape)
    b = rng.integers(-500, 500, spec.out_channels)
    px, pw = packing.input(x), packing.weight(w)
    assert px.shape == packing.input_shape(shape), context
    assert pw.shape == packing.spec.weight_shape, context
    want = golden.convolution(spec, x, w, b)
    assert np.array_equal(golden.convolution(packing.spec, px, pw, b), want), context
    got, _ = run_model(packing.spec, px, pw, b, SMALL)
    assert np.array_equal(got, want), context


@pytest.mark.parametrize("seed", range(16))
def test_packed_layer_equals_the_original(seed):
    rng = np.random.default_rng(seed)
    spec, shape = random_stem(rng, 6, 9)
    packing = tap_packing(spec, SMALL)
    assert packing is not None and packing.taps >= 2, f"seed {seed}: {spec}"
    check_packed(packing, shape, rng, f"seed {seed}: {spec} {shape}")


@pytest.mark.parametrize("seed", range(16))
def test_window_packed_layer_equals_the_original(seed):
    """im2col over 1 to dims innermost dimensions, any stride, dilation and padding mode:
    the golden model of the packed layer and the compiler's run of it equal the original."""
    rng = np.random.default_rng(seed)
    spec, shape = random_stem(rng, 5, 8)
    dims, channels, kernel = spec.dims, spec.in_channels, spec.kernel_size
    folded = int(rng.integers(1, dims + 1))
    packing = window_packing(spec, folded)
    assert packing is not None, f"seed {seed}: {spec}"
    assert packing.spec.in_channels == channels * np.prod(kernel[dims - folded:])
    check_packed(packing, shape, rng, f"seed {seed}: {spec} {shape} folded {folded}")


def test_window_packing_orders_channels_like_the_weights():
    """The packed channel (c, ky, kx) of a 2-D fold reads xpad[c, v*s + ky*d, u*s + kx*d]
    and its weight is w[o, c, ky, kx]: checked element by element, not only through sums."""
    spec = ConvSpec(2, 2, 3, (2, 3), stride=(2, 1), padding=((1, 0), (0, 2)), dilation=(1, 2))
    x = np.arange(2 * 5 * 6).reshape(1, 2, 5, 6) + 1
    w = np.arange(3 * 2 * 2 * 3).reshape(3, 2, 2, 3)
    packing = window_packing(spec, 2)
    px, pw = packing.input(x, pad_value=-7), packing.weight(w)
    xpad = np.pad(x, [(0, 0), (0, 0), (1, 0), (0, 2)], constant_values=-7)
    for c in range(2):
        for ky in range(2):
            for kx in range(3):
                ch = (c * 2 + ky) * 3 + kx
                assert np.array_equal(pw[:, ch, 0, 0], w[:, c, ky, kx])
                for v in range(px.shape[2]):
                    for u in range(px.shape[3]):
                        assert px[0, ch, v, u] == xpad[0, c, v * 2 + ky, u + kx * 2]


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
    """Tap packing applies to a forward layer of one group with a kernel along x; the
    compiler (packing_for) picks, among it and the window packings, the fewest cycles."""
    assert tap_packing(ConvSpec(2, 3, 64, 7, stride=2, padding=3), EngineConfig()).taps == 2
    assert tap_packing(ConvSpec(1, 1, 512, 10, stride=5), EngineConfig()).taps == 8
    assert tap_packing(ConvSpec(2, 5, 8, 3), EngineConfig()) is None         # 5 of 8 rows
    assert tap_packing(ConvSpec(2, 3, 8, (3, 1)), EngineConfig()) is None    # x kernel 1
    assert tap_packing(ConvSpec(2, 3, 3, 3, groups=3), EngineConfig()) is None
    assert tap_packing(ConvSpec(2, 3, 8, 3, transposed=True), EngineConfig()) is None
    assert window_packing(ConvSpec(2, 3, 3, 3, groups=3), 1) is None
    assert window_packing(ConvSpec(2, 3, 8, 3, transposed=True), 2) is None
    assert window_packing(ConvSpec(2, 3, 8, (3, 1)), 1) is None             # nothing to fold
    config = EngineConfig()
    resnet = packing_for(ConvSpec(2, 3, 64, 7, stride=2, padding=3), (1, 3, 224, 224), config)
    assert resnet.key == ("window", 2)           # 147 channels: 19 input words of 8
    audio = packing_for(ConvSpec(1, 1, 512, 10, stride=5), (1, 1, 16000), config)
    assert audio.key == ("window", 1)            # 10 channels, stride 1
    assert packing_for(ConvSpec(2, 5, 8, 3), (1, 5, 32, 32), config) is None


def test_resnet_stem_packed_takes_fewer_cycles():
    """ResNet-18's stem on the default 8x8 array with the memory model, the cycle model's
    bound: x taps packed (6 of 8 rows) against the original (3 of 8), and im2col over y and x
    (147 of 152 rows, the 12 times larger input read included) against the x taps."""
    spec = ConvSpec(2, 3, 64, 7, stride=2, padding=3, bias=False)
    shape = (1, 3, 224, 224)
    plain = estimate(spec, shape, requantize=True, exact=False, pack_taps=False)
    taps = tap_packing(spec, EngineConfig())
    tapped = estimate(taps.spec, taps.input_shape(shape), requantize=True, exact=False,
                      pack_taps=False)
    assert tapped.cycles * 1.5 < plain.cycles
    packing = window_packing(spec, 2)
    packed = estimate(packing.spec, packing.input_shape(shape), requantize=True, exact=False,
                      pack_taps=False)
    assert packed.cycles * 1.3 < tapped.cycles
    # estimate() models what the devices run: the packed layer, the original's useful MACs.
    modelled = estimate(spec, shape, requantize=True, exact=False)
    assert modelled.cycles == packed.cycles
    assert modelled.useful_macs == spec.useful_macs(shape)


def test_the_simulated_list_engine_packs_a_stem():
    """Device("verilator") runs a 1-channel layer packed (im2col over y and x on the 4-row
    array: 25 channels, 7 input words per output pixel): exact, and in fewer cycles than the
    same layer padded to 4 channels (which fills the rows and does not pack)."""
    import convhw

    from .helpers import VERILATED_LIST_CONFIG
    rng = np.random.default_rng(2)
    device = convhw.Device("verilator", VERILATED_LIST_CONFIG)
    spec = ConvSpec(2, 1, 8, 5, stride=2, padding=2)
    assert packing_for(spec, (1, 1, 64, 64), VERILATED_LIST_CONFIG).key == ("window", 2)
    x = rng.integers(-128, 128, (1, 1, 64, 64))
    w = rng.integers(-128, 128, spec.weight_shape)
    b = rng.integers(-100, 100, 8)
    y, packed = device.run(spec, x, w, b)
    assert np.array_equal(y, golden.convolution(spec, x, w, b))
    # The cycle model of the packed layer (what estimate() models) is the RTL's CYCLES.
    assert packed.cycles == estimate(spec, (1, 1, 64, 64), config=VERILATED_LIST_CONFIG).cycles
    # The same layer unpacked, as the engine runs it (22,303 cycles against 54,802: 7 input
    # words per output pixel against 25, the unpacked layer's passes short, 8x8 outputs).
    wide = ConvSpec(2, 4, 8, 5, stride=2, padding=2)
    x4 = np.concatenate([x, np.zeros((1, 3, 64, 64), np.int64)], axis=1)
    w4 = np.concatenate([w, np.zeros((8, 3, 5, 5), np.int64)], axis=1)
    y4, unpacked = device.run(wide, x4, w4, b)
    assert np.array_equal(y4, y)
    assert packed.cycles * 2 < unpacked.cycles, (packed.cycles, unpacked.cycles)
