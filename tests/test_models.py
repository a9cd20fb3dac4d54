"""convhw.models, the benchmark networks of issue 12: each builds deterministically, runs in
float with its documented output shape, quantises with convhw.quantize (torch's FX, fbgemm)
and, offloaded, runs every quantised convolution on the golden device bit-identically to the
quantised torch model. The small sizes here; the full ones (float only) in the slow tier."""

from __future__ import annotations

import subprocess
import sys
from collections import Counter

import pytest

import convhw
from convhw import models

torch = pytest.importorskip("torch")
pytestmark = [pytest.mark.torch, pytest.mark.usefixtures("quiet_quantization")]

#: The quantised convolutions FX makes of each network (Conv+BN(+ReLU) fused where torch
#: fuses them), as convhw.offload reports them.
QUANTIZED_CONVOLUTIONS = {
    # conv1 and the first conv of each of 8 blocks with ReLU; the second convs (added before
    # their ReLU) and the 3 shortcut convs without
    "resnet18": {"ConvReLU2d": 9, "Conv2d": 8 + 3},
    # stem, 16 expansions, 17 depthwise, 17 projections, last 1x1 (ReLU6 is not fused)
    "mobilenet_v2": {"Conv2d": 1 + 16 + 17 + 17 + 1},
    "dcgan_generator": {"ConvTranspose2d": 5},
    "wav2vec2_encoder": {"Conv1d": 7},
    "r3d_block": {"ConvReLU3d": 2, "Conv3d": 1},
    # conv1 and the first conv of each of 3 blocks with ReLU; the second convs, the 2 shortcut
    # convs and the classifier without
    "resnet8": {"ConvReLU2d": 4, "Conv2d": 3 + 2 + 1},
}

#: Each network's convolutions (float model), as the issue counts them.
CONVOLUTIONS = {"resnet18": 20, "mobilenet_v2": 52, "dcgan_generator": 5,
                "wav2vec2_encoder": 7, "r3d_block": 3, "resnet8": 10}


@pytest.fixture
def engine():
    """Restores torch's quantised engine (convhw.quantize sets it) after the test."""
    saved = torch.backends.quantized.engine
    yield
    torch.backends.quantized.engine = saved


def _calibration(inputs, batches=2, seed=1):
    generator = torch.Generator().manual_seed(seed)
    return [inputs] + [tuple(torch.randn(x.shape, generator=generator) for x in inputs)
                       for _ in range(batches)]


def test_the_module_imports_without_torch():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import convhw.models as m\n"
            "assert len(m.NAMES) == 5\n"
            "try:\n"
            "    m.build('resnet18', 'small')\n"
            "except ImportError:\n"
            "    print('needs torch')\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert run.stdout == "needs torch\n"


def test_names_sizes_and_arguments():
    assert set(models.NAMES + models.BOARD_NAMES) == set(CONVOLUTIONS)
    assert set(models.SHAPES) == {(n, s) for n in models.NAMES + models.BOARD_NAMES
                                  for s in models.SIZES}
    with pytest.raises(ValueError, match="name must be one of"):
        models.build("vgg16")
    with pytest.raises(ValueError, match="size must be one of"):
        models.build("resnet18", "tiny")
    for name in models.NAMES + models.BOARD_NAMES:
        doc = getattr(models, name).__doc__
        assert "Simplified:" in doc and "float" in doc


def test_weights_and_inputs_are_deterministic():
    state = torch.get_rng_state()
    a, (xa,) = models.build("r3d_block", "small", seed=3)
    b, (xb,) = models.build("r3d_block", "small", seed=3)
    c, (xc,) = models.build("r3d_block", "small", seed=4)
    assert torch.equal(torch.get_rng_state(), state)    # the caller's RNG left alone
    assert not a.training
    assert torch.equal(xa, xb) and not torch.equal(xa, xc)
    for (name, ta), tb, tc in zip(a.state_dict().items(), b.state_dict().values(),
                                  c.state_dict().values()):
        assert torch.equal(ta, tb), name
        if ta.is_floating_point():
            assert not torch.equal(ta, tc), name
    # the BatchNorm statistics are not the defaults (mean 0, variance 1)
    bn = a.bn1
    assert bn.running_mean.abs().min() > 0 and not torch.allclose(
        bn.running_var, torch.ones_like(bn.running_var))


@pytest.mark.parametrize("name", models.NAMES + models.BOARD_NAMES)
def test_small_model_quantised_and_offloaded_bit_identical(name, engine):
    model, inputs = models.build(name, "small")
    with torch.no_grad():
        floats = model(*inputs)
    assert tuple(floats.shape) == models.OUTPUT_SHAPES[name, "small"]
    macs = models.layer_macs(model, inputs)
    assert sum(1 for op, _ in macs.values() if op != "Linear") == CONVOLUTIONS[name]

    quantized = convhw.quantize(model, _calibration(inputs), reference="fbgemm")
    assert torch.backends.quantized.engine == "fbgemm"
    offloaded = convhw.offload(quantized, "golden")
    report = offloaded.convhw_report
    # everything offload takes runs on the golden device: every convolution (and the
    # classifiers' quantised Linear, which offload runs as a 1x1 Conv1d)
    assert {layer.runs_on for layer in report} == {"golden"}, report
    convolutions = [layer for layer in report if "Conv" in layer.op]
    assert Counter(layer.op for layer in convolutions) == QUANTIZED_CONVOLUTIONS[name]
    assert len(convolutions) == CONVOLUTIONS[name]
    with torch.no_grad():
        want, got = quantized(*inputs), offloaded(*inputs)
    assert torch.equal(want, got), f"{int((want != got).sum())} of {want.numel()} differ"
    # the quantisation is meaningful: the quantised model follows the float one (MobileNetV2
    # the least: its random weights amplify the rounding over 52 layers on 1x1 maps)
    similarity = torch.nn.functional.cosine_similarity(want.flatten(), floats.flatten(), dim=0)
    assert similarity > (0.5 if name == "mobilenet_v2" else 0.95)


def test_wav2vec2_groupnorm_and_gelu_stay_in_float(engine):
    model, inputs = models.build("wav2vec2_encoder", "small")
    quantized = convhw.quantize(model, _calibration(inputs), reference="fbgemm")
    kinds = Counter(type(m) for m in quantized.modules())
    assert kinds[torch.ao.nn.quantized.Conv1d] == 7
    assert kinds[torch.nn.GroupNorm] == 1 and kinds[torch.nn.GELU] == 7


def test_layer_macs():
    model, inputs = models.build("resnet18", "small")
    macs = models.layer_macs(model, inputs)
    assert macs["conv1"] == ("Conv2d", 64 * 16 * 16 * 3 * 7 * 7)
    assert macs["layer2.0.downsample.0"] == ("Conv2d", 128 * 4 * 4 * 64)
    assert macs["fc"] == ("Linear", 512 * 1000)
    # a transposed convolution: the products that land in the output, counted independently
    # as a transposed convolution of ones with ones
    model, inputs = models.build("dcgan_generator", "small")
    macs = models.layer_macs(model, inputs)
    x = torch.ones(1, 100, 1, 1)
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ConvTranspose2d):
            ones = torch.nn.functional.conv_transpose2d(
                x, torch.ones_like(module.weight), stride=module.stride, padding=module.padding)
            assert macs[name] == ("ConvTranspose2d", int(ones.sum()))
            x = torch.ones_like(ones)


@pytest.mark.slow
@pytest.mark.parametrize("name", models.NAMES)
def test_full_model_in_float(name):
    model, inputs = models.build(name, "full")
    assert tuple(inputs[0].shape) == models.SHAPES[name, "full"][0]
    macs = models.layer_macs(model, inputs)
    with torch.no_grad():
        out = model(*inputs)
    assert tuple(out.shape) == models.OUTPUT_SHAPES[name, "full"]
    assert torch.isfinite(out).all()
    assert sum(1 for op, _ in macs.values() if op != "Linear") == CONVOLUTIONS[name]
