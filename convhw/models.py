"""``convhw.models``: the benchmark networks of issue 12 as plain ``torch.nn.Module`` s.

Five networks, each written here from its published architecture (torchvision is not used):
ResNet-18, MobileNetV2, the DCGAN generator, wav2vec 2.0's convolutional feature encoder and an
R3D-18 stem with one 3-D residual block. Each comes in two sizes: ``"full"``, the network and
input of the paper, and ``"small"``, the same structure on a small input (and, where named,
fewer channels) for the fast tests.

:func:`build` returns a model in eval mode and its example input::

    model, inputs = convhw.models.build("resnet18", "small")
    quantized = convhw.quantize(model, [inputs], reference="fbgemm")
    offloaded = convhw.offload(quantized, "golden")

The weights are random, not trained: drawn after ``torch.manual_seed(seed)`` (in a forked RNG,
so the caller's random state is left alone), convolutions with He (Kaiming) normal
initialisation (the DCGAN generator with the paper's N(0, 0.02)). For quantisation to mean
something every normalisation layer is non-trivial and deterministic: affine weights drawn from
U(0.5, 1.5), biases from U(-0.25, 0.25), and each BatchNorm's running mean and variance those of
the activations it sees on a seeded random batch (one forward pass in training mode, cumulative
average), so that the activations stay of order one through the network as in a trained one.

The ``forward`` methods are FX-traceable (no data-dependent control flow, residual adds written
``out + identity``) and hold no ``QuantStub``: :func:`convhw.quantize` (torch's FX graph mode
quantisation) inserts the quantise and dequantise nodes, folds BatchNorm into the
convolutions before it (not into transposed ones) and quantises every convolution; each
network's documentation says which of its ops stay in float.

torch is imported only when a model is built; the module itself imports without it.
"""

from __future__ import annotations

import functools
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:                            # pragma: no cover - annotations only
    import torch

__all__ = ["BOARD_NAMES", "NAMES", "OUTPUT_SHAPES", "SHAPES", "SIZES", "build",
           "dcgan_generator", "digits", "layer_macs", "mobilenet_v2", "r3d_block", "resnet18",
           "resnet8", "wav2vec2_encoder"]

#: The networks :func:`build` makes.
NAMES = ("resnet18", "mobilenet_v2", "dcgan_generator", "wav2vec2_encoder", "r3d_block")

#: Networks small enough to keep their weights on a board (:func:`build` makes them too).
BOARD_NAMES = ("resnet8",)

#: Their sizes: the paper's network and input, and a small one for the fast tests.
SIZES = ("full", "small")

#: ``(name, size) -> (input shape, output shape)`` of each model (batch 1).
SHAPES = {
    ("resnet18", "full"): ((1, 3, 224, 224), (1, 1000)),
    ("resnet18", "small"): ((1, 3, 32, 32), (1, 1000)),
    ("mobilenet_v2", "full"): ((1, 3, 224, 224), (1, 1000)),
    ("mobilenet_v2", "small"): ((1, 3, 32, 32), (1, 1000)),
    ("dcgan_generator", "full"): ((1, 100, 1, 1), (1, 3, 64, 64)),
    ("dcgan_generator", "small"): ((1, 100, 1, 1), (1, 3, 64, 64)),
    ("wav2vec2_encoder", "full"): ((1, 1, 16000), (1, 512, 49)),
    ("wav2vec2_encoder", "small"): ((1, 1, 1600), (1, 64, 4)),
    ("r3d_block", "full"): ((1, 3, 8, 112, 112), (1, 64, 8, 56, 56)),
    ("r3d_block", "small"): ((1, 3, 4, 16, 16), (1, 16, 4, 8, 8)),
    ("resnet8", "full"): ((1, 3, 32, 32), (1, 10)),
    ("resnet8", "small"): ((1, 3, 16, 16), (1, 10)),
}

#: ``(name, size) -> output shape``: what each model returns for its example input.
OUTPUT_SHAPES = {key: shapes[1] for key, shapes in SHAPES.items()}


def build(name: str, size: str = "full",
          seed: int = 0) -> tuple[torch.nn.Module, tuple[torch.Tensor, ...]]:
    """The network ``name`` (one of :data:`NAMES`) at ``size`` (``"full"`` or ``"small"``):
    ``(model, inputs)``, the float model in eval mode with deterministic weights from ``seed``
    and a deterministic example input tuple (``model(*inputs)`` runs it). See the module
    documentation for the weights and each network's function (:func:`resnet18`, ...) for its
    architecture."""
    import torch

    if name not in NAMES + BOARD_NAMES:
        raise ValueError(f"name must be one of {NAMES + BOARD_NAMES}, not {name!r}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, not {size!r}")
    input_shape, _ = SHAPES[name, size]
    classes = _classes()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _CONSTRUCTORS[name](classes, size)
        _randomise_norms(torch, model)
        # BatchNorm statistics: one pass of a random batch in training mode (32 samples for
        # the small models, whose last maps are 1x1; 2 for the full ones, whose maps are large
        # and whose pass costs seconds).
        statistics_batch = 32 if size == "small" else 2
        _batchnorm_statistics(torch, model,
                              torch.randn(statistics_batch, *input_shape[1:]))
        model.eval()
        inputs = (torch.randn(*input_shape),)
    return model, inputs


def digits(seed: int = 7, split: int = 1400, steps: int = 60):
    """A small CNN trained here on scikit-learn's bundled handwritten digits (8x8 images, 1797
    of them): two 3x3 convolutions with ReLU (8 and 16 channels, the second strided), then a
    4x4 convolution over the whole 4x4 map as the classifier (10 classes). Full-batch Adam,
    ``steps`` steps (about a second on a CPU), on the first ``split`` images of a seeded
    shuffle. Returns ``(model, x_test, y_test, x_train)``: the float model in eval mode, the
    held-out images (N, 1, 8, 8) and labels, and the training images (calibration data for
    quantisation). The model has a ``QuantStub``/``DeQuantStub`` pair, so torch's eager mode
    quantisation takes it as well as FX."""
    import torch
    from sklearn.datasets import load_digits

    data = load_digits()
    x = torch.tensor(data.images / 16.0, dtype=torch.float32).unsqueeze(1)
    y = torch.tensor(data.target)
    order = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))
    x, y = x[order], y[order]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _classes().DigitsNet()
        optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
        for _ in range(steps):
            optimiser.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[:split]), y[:split])
            loss.backward()
            optimiser.step()
    model.eval()
    return model, x[split:], y[split:], x[:split]


def resnet18(size: str = "full", seed: int = 0):
    """ResNet-18 (He et al., "Deep Residual Learning for Image Recognition", 2016), the
    ImageNet network: a 7x7 stride-2 convolution (3->64) with BatchNorm and ReLU, a 3x3
    stride-2 max pool, four stages of two BasicBlocks (two 3x3 convolutions with BatchNorm,
    ReLU after the first and after the residual add) with 64, 128, 256 and 512 channels, the
    first block of stages 2-4 striding by 2 with a 1x1 stride-2 convolution and BatchNorm on
    its shortcut; adaptive average pooling to 1x1 and a fully connected layer to 1000 classes.
    20 convolutions, none with a bias.

    Simplified: nothing in the architecture; the weights are random (module documentation).
    ``"full"`` takes (1, 3, 224, 224); ``"small"`` is the same network on (1, 3, 32, 32) (the
    last stage then works on a 1x1 map). Quantised by FX (fbgemm) nothing stays in float:
    Conv+BN(+ReLU) fused into quantised ConvReLU2d/Conv2d, the residual add and its ReLU
    torch's ``quantized.add_relu``, max and average pooling on the quantised tensors, the fully
    connected layer a quantised Linear.
    """
    return build("resnet18", size, seed)


def resnet8(size: str = "full", seed: int = 0):
    """ResNet-8, the smallest of the CIFAR-10 ResNets (He et al. 2016, section 4.2: 6n + 2
    layers, n = 1), made all-convolutional for the boards: a 3x3 convolution (3->16) with
    BatchNorm and ReLU, three BasicBlocks with 16, 32 and 64 channels (the second and third
    striding by 2, with a 1x1 stride-2 convolution and BatchNorm on the shortcut: the paper's
    option B), global average pooling, and a 1x1 convolution to 10 classes in place of the
    fully connected layer. 10 convolutions, 78 k weights: a network whose weights stay in a
    board's memory.

    Simplified: projection shortcuts where the paper's CIFAR networks pad with zeros (its
    option A), the classifier a convolution, random weights (module documentation).

    ``"full"`` takes CIFAR's (1, 3, 32, 32); ``"small"`` is half the width (8, 16 and 32
    channels, 20 k weights) on (1, 3, 16, 16). Quantised by FX (fbgemm): the convolutions
    quantised (Conv+BN(+ReLU) fused), the residual adds torch's ``quantized.add_relu``, the
    pooling on the quantised tensor; nothing stays in float."""
    return build("resnet8", size, seed)


def mobilenet_v2(size: str = "full", seed: int = 0):
    """MobileNetV2 at width 1.0 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear
    Bottlenecks", 2018): a 3x3 stride-2 convolution (3->32) with BatchNorm and ReLU6, then 17
    inverted residual blocks from the paper's (t, c, n, s) table (1,16,1,1), (6,24,2,2),
    (6,32,3,2), (6,64,4,2), (6,96,3,1), (6,160,3,2), (6,320,1,1) — each a 1x1 expansion to t
    times the channels (absent for t = 1), a 3x3 depthwise convolution with the stride, both
    with BatchNorm and ReLU6, and a linear 1x1 projection with BatchNorm, with a residual add
    when the stride is 1 and the channels are unchanged — then a 1x1 convolution to 1280
    channels with BatchNorm and ReLU6, adaptive average pooling and a fully connected layer to
    1000 classes. 52 convolutions (17 of them depthwise), none with a bias.

    Simplified: the classifier's dropout is left out (an identity at inference); only width
    1.0 (whose channel counts are all multiples of 8, so no rounding). ``"full"`` takes
    (1, 3, 224, 224); ``"small"`` is the same network on (1, 3, 32, 32) (the last stages work
    on 2x2 and 1x1 maps). Quantised by FX (fbgemm) nothing stays in float: Conv+BN fused into
    quantised Conv2d (ReLU6 is not fused: it runs on the quantised tensor), the residual adds
    ``quantized.add``, the pooling on quantised tensors, the classifier a quantised Linear.
    """
    return build("mobilenet_v2", size, seed)


def dcgan_generator(size: str = "full", seed: int = 0):
    """The DCGAN generator (Radford et al., "Unsupervised Representation Learning with Deep
    Convolutional Generative Adversarial Networks", 2016, in its common 64x64 form): the latent
    vector z (nz = 100, as a (N, 100, 1, 1) map) through five 4x4 transposed convolutions
    without bias — 100 -> 8 ngf (stride 1, no padding: 4x4), 8 ngf -> 4 ngf -> 2 ngf -> ngf
    (stride 2, padding 1: 8x8, 16x16, 32x32), each with BatchNorm and ReLU, and ngf -> 3
    (stride 2, padding 1) with Tanh: a 64x64 RGB image. 5 convolutions (all transposed).

    Simplified: nothing in the architecture; random weights, the convolutions N(0, 0.02) as
    in the paper. ``"full"`` has ngf = 64; ``"small"`` ngf = 16; both take (1, 100, 1, 1) and
    give (1, 3, 64, 64). Quantised by FX (fbgemm) nothing stays in float, but BatchNorm is not
    folded into the transposed convolutions: each is a quantised ConvTranspose2d (per-tensor
    weights, as torch's default configuration gives transposed convolutions) followed by
    torch's quantised BatchNorm+ReLU (``BNReLU2d``); Tanh runs on the quantised tensor with
    torch's fixed output quantisation.
    """
    return build("dcgan_generator", size, seed)


def wav2vec2_encoder(size: str = "full", seed: int = 0):
    """wav2vec 2.0's convolutional feature encoder (Baevski et al., "wav2vec 2.0: A Framework
    for Self-Supervised Learning of Speech Representations", 2020), as in the BASE model: seven
    Conv1d layers of 512 channels without bias, kernels (10, 3, 3, 3, 3, 2, 2) and strides
    (5, 2, 2, 2, 2, 2, 2) (a receptive field of 400 samples, one frame every 320: 49 frames a
    second at 16 kHz), each followed by GELU, the first also by GroupNorm(512, 512) (one group
    per channel, normalised over time) before its GELU. 7 convolutions.

    Simplified: only the feature encoder (no feature projection, quantiser or transformer); the
    waveform comes as a (N, 1, T) tensor instead of (N, T). ``"full"`` takes 1 s at 16 kHz,
    (1, 1, 16000) -> (1, 512, 49); ``"small"`` has 64 channels (GroupNorm(64, 64)) and takes
    (1, 1, 1600) -> (1, 64, 4). Quantised by FX (fbgemm) the seven convolutions are quantised
    Conv1d; GroupNorm and GELU are not quantised by torch's default configuration and stay in
    float: each convolution's output is dequantised, goes through them in float and is
    quantised again for the next convolution (the encoder's output is float).
    """
    return build("wav2vec2_encoder", size, seed)


def r3d_block(size: str = "full", seed: int = 0):
    """The start of R3D-18 (Tran et al., "A Closer Look at Spatiotemporal Convolutions for
    Action Recognition", 2018): its stem, a Conv3d 3->64 with kernel (3, 7, 7), stride
    (1, 2, 2) and padding (1, 3, 3), BatchNorm and ReLU, then one 3-D BasicBlock: two 3x3x3
    Conv3d 64->64 (padding 1) with BatchNorm, ReLU after the first, the block's input added to
    the second's output, then ReLU. 3 convolutions, none with a bias.

    Simplified: only the stem and the first block of the first stage (R3D-18 has eight blocks,
    pooling and a classifier after it). ``"full"`` takes a clip of 8 frames of 112x112,
    (1, 3, 8, 112, 112) -> (1, 64, 8, 56, 56); ``"small"`` has 16 channels instead of 64 and
    takes (1, 3, 4, 16, 16) -> (1, 16, 4, 8, 8). Quantised by FX (fbgemm) nothing stays in
    float: Conv3d+BN(+ReLU) fused into quantised ConvReLU3d/Conv3d, the residual add and its
    ReLU ``quantized.add_relu``.
    """
    return build("r3d_block", size, seed)


def layer_macs(model, inputs) -> dict[str, tuple[str, int]]:
    """``name -> (op, MACs)`` of every float convolution and ``Linear`` of ``model`` (a float
    ``torch.nn.Module``) in one forward pass of ``inputs`` (a tuple), from forward hooks:
    the multiply-accumulates that reach an output (a transposed convolution's products that
    its padding crops are not counted)."""
    import torch

    convolutions = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
    transposed = (torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)
    counts: dict[str, tuple[str, int]] = {}

    def hook(name):
        def count(module, args, output):
            x = args[0]
            if isinstance(module, torch.nn.Linear):
                macs = output.numel() * module.in_features
            elif isinstance(module, transposed):
                # products of input position i and tap k landing at i*s - p + k*d in [0, out)
                taps = x.shape[0] * module.in_channels * (module.out_channels // module.groups)
                for i_size, o_size, k, s, p, d in zip(
                        x.shape[2:], output.shape[2:], module.kernel_size, module.stride,
                        module.padding, module.dilation):
                    taps *= sum(1 for i in range(i_size) for j in range(k)
                                if 0 <= i * s - p + j * d < o_size)
                macs = taps
            else:
                macs = (output.numel() * (module.in_channels // module.groups)
                        * math.prod(module.kernel_size))
            counts[name] = (type(module).__name__, int(macs))
        return count

    handles = [module.register_forward_hook(hook(name))
               for name, module in model.named_modules()
               if isinstance(module, (*convolutions, *transposed, torch.nn.Linear))]
    try:
        with torch.no_grad():
            model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return counts


# --------------------------------------------------------------------------------------------
# The modules (defined once torch is imported)


@functools.cache
def _classes():
    """The networks' ``torch.nn.Module`` classes, in a namespace (torch imported here)."""
    import types

    import torch
    from torch import nn

    def kaiming(module):
        for m in module.modules():
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    # ---- the digits CNN

    class DigitsNet(nn.Module):
        """8x8 digit -> 10 classes: two 3x3 convolutions with ReLU, then a 4x4 convolution
        over the whole 4x4 map as the classifier."""

        def __init__(self):
            super().__init__()
            self.quant = torch.ao.quantization.QuantStub()
            self.conv1 = nn.Conv2d(1, 8, 3, padding=1)
            self.relu1 = nn.ReLU()
            self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1)
            self.relu2 = nn.ReLU()
            self.classify = nn.Conv2d(16, 10, 4)
            self.dequant = torch.ao.quantization.DeQuantStub()

        def forward(self, x):
            x = self.quant(x)
            x = self.relu1(self.conv1(x))
            x = self.relu2(self.conv2(x))
            return self.dequant(self.classify(x)).flatten(1)

    # ---- ResNet-18

    class BasicBlock(nn.Module):
        """Two 3x3 convolutions with BatchNorm; ReLU after the first and after the add of the
        shortcut (a 1x1 convolution with BatchNorm where the shape changes)."""

        def __init__(self, in_channels: int, channels: int, stride: int = 1) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(in_channels, channels, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(channels)
            self.relu1 = nn.ReLU()
            self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(channels)
            self.relu2 = nn.ReLU()
            self.downsample = None
            if stride != 1 or in_channels != channels:
                self.downsample = nn.Sequential(
                    nn.Conv2d(in_channels, channels, 1, stride, bias=False),
                    nn.BatchNorm2d(channels))

        def forward(self, x):
            identity = x if self.downsample is None else self.downsample(x)
            out = self.relu1(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            out = out + identity
            return self.relu2(out)

    class ResNet18(nn.Module):
        """ResNet-18: see :func:`convhw.models.resnet18`."""

        def __init__(self, classes: int = 1000) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
            self.bn1 = nn.BatchNorm2d(64)
            self.relu = nn.ReLU()
            self.maxpool = nn.MaxPool2d(3, 2, 1)
            stages, in_channels = [], 64
            for channels, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
                stages.append(nn.Sequential(BasicBlock(in_channels, channels, stride),
                                            BasicBlock(channels, channels, 1)))
                in_channels = channels
            self.layer1, self.layer2, self.layer3, self.layer4 = stages
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512, classes)
            kaiming(self)

        def forward(self, x):
            x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            return self.fc(torch.flatten(self.avgpool(x), 1))

    class ResNet8(nn.Module):
        """ResNet-8, all-convolutional: see :func:`convhw.models.resnet8`."""

        def __init__(self, width: int = 16, classes: int = 10) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.relu = nn.ReLU()
            self.layer1 = BasicBlock(width, width, 1)
            self.layer2 = BasicBlock(width, 2 * width, 2)
            self.layer3 = BasicBlock(2 * width, 4 * width, 2)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classify = nn.Conv2d(4 * width, classes, 1)
            kaiming(self)

        def forward(self, x):
            x = self.relu(self.bn1(self.conv1(x)))
            x = self.layer3(self.layer2(self.layer1(x)))
            return torch.flatten(self.classify(self.avgpool(x)), 1)

    # ---- MobileNetV2

    def conv_bn_relu6(in_channels, out_channels, kernel, stride=1, groups=1):
        return nn.Sequential(
            nn.Conv2d(in_channels, out_channels, kernel, stride, (kernel - 1) // 2,
                      groups=groups, bias=False),
            nn.BatchNorm2d(out_channels), nn.ReLU6())

    class InvertedResidual(nn.Module):
        """1x1 expansion (unless ``expansion == 1``), 3x3 depthwise with the stride (both with
        BatchNorm and ReLU6), linear 1x1 projection with BatchNorm; the input added when the
        shapes agree."""

        def __init__(self, in_channels: int, out_channels: int, stride: int,
                     expansion: int) -> None:
            super().__init__()
            hidden = in_channels * expansion
            layers = []
            if expansion != 1:
                layers.append(conv_bn_relu6(in_channels, hidden, 1))
            layers += [conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden),
                       nn.Conv2d(hidden, out_channels, 1, bias=False),
                       nn.BatchNorm2d(out_channels)]
            self.block = nn.Sequential(*layers)
            self.residual = stride == 1 and in_channels == out_channels

        def forward(self, x):
            if self.residual:                 # fixed when the block is made: FX-traceable
                return x + self.block(x)
            return self.block(x)

    class MobileNetV2(nn.Module):
        """MobileNetV2 width 1.0: see :func:`convhw.models.mobilenet_v2`."""

        #: (expansion t, channels c, repeats n, first stride s) of the paper's Table 2.
        SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1))

        def __init__(self, classes: int = 1000) -> None:
            super().__init__()
            layers, in_channels = [conv_bn_relu6(3, 32, 3, 2)], 32
            for t, c, n, s in self.SETTINGS:
                for i in range(n):
                    layers.append(InvertedResidual(in_channels, c, s if i == 0 else 1, t))
                    in_channels = c
            layers.append(conv_bn_relu6(in_channels, 1280, 1))
            self.features = nn.Sequential(*layers)
            self.avgpool = nn.AdaptiveAvgPool2d(1)
            self.classifier = nn.Linear(1280, classes)
            kaiming(self)

        def forward(self, x):
            return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))

    # ---- DCGAN generator

    class DCGANGenerator(nn.Module):
        """The DCGAN generator: see :func:`convhw.models.dcgan_generator`."""

        def __init__(self, nz: int = 100, ngf: int = 64, colours: int = 3) -> None:
            super().__init__()
            layers, in_channels = [], nz
            for i, channels in enumerate((ngf * 8, ngf * 4, ngf * 2, ngf)):
                stride, padding = (1, 0) if i == 0 else (2, 1)
                layers += [nn.ConvTranspose2d(in_channels, channels, 4, stride, padding,
                                              bias=False),
                           nn.BatchNorm2d(channels), nn.ReLU()]
                in_channels = channels
            layers += [nn.ConvTranspose2d(in_channels, colours, 4, 2, 1, bias=False),
                       nn.Tanh()]
            self.main = nn.Sequential(*layers)
            for m in self.modules():
                if isinstance(m, nn.ConvTranspose2d):
                    nn.init.normal_(m.weight, 0.0, 0.02)

        def forward(self, z):
            return self.main(z)

    # ---- wav2vec 2.0 feature encoder

    class Wav2Vec2FeatureEncoder(nn.Module):
        """wav2vec 2.0's convolutional feature encoder: see
        :func:`convhw.models.wav2vec2_encoder`."""

        KERNELS = (10, 3, 3, 3, 3, 2, 2)
        STRIDES = (5, 2, 2, 2, 2, 2, 2)

        def __init__(self, channels: int = 512) -> None:
            super().__init__()
            layers, in_channels = [], 1
            for i, (kernel, stride) in enumerate(zip(self.KERNELS, self.STRIDES)):
                layers.append(nn.Conv1d(in_channels, channels, kernel, stride, bias=False))
                if i == 0:
                    layers.append(nn.GroupNorm(channels, channels))
                layers.append(nn.GELU())
                in_channels = channels
            self.layers = nn.Sequential(*layers)
            for m in self.modules():
                if isinstance(m, nn.Conv1d):
                    nn.init.kaiming_normal_(m.weight)

        def forward(self, waveform):
            return self.layers(waveform)

    # ---- R3D-18 stem and first block

    class R3DBlock(nn.Module):
        """R3D-18's stem and one 3-D BasicBlock: see :func:`convhw.models.r3d_block`."""

        def __init__(self, channels: int = 64) -> None:
            super().__init__()
            self.stem = nn.Conv3d(3, channels, (3, 7, 7), (1, 2, 2), (1, 3, 3), bias=False)
            self.stem_bn = nn.BatchNorm3d(channels)
            self.stem_relu = nn.ReLU()
            self.conv1 = nn.Conv3d(channels, channels, 3, 1, 1, bias=False)
            self.bn1 = nn.BatchNorm3d(channels)
            self.relu1 = nn.ReLU()
            self.conv2 = nn.Conv3d(channels, channels, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm3d(channels)
            self.relu2 = nn.ReLU()
            kaiming(self)

        def forward(self, x):
            identity = self.stem_relu(self.stem_bn(self.stem(x)))
            out = self.relu1(self.bn1(self.conv1(identity)))
            out = self.bn2(self.conv2(out))
            out = out + identity
            return self.relu2(out)

    return types.SimpleNamespace(
        DigitsNet=DigitsNet, BasicBlock=BasicBlock, ResNet18=ResNet18, ResNet8=ResNet8,
        InvertedResidual=InvertedResidual,
        MobileNetV2=MobileNetV2, DCGANGenerator=DCGANGenerator,
        Wav2Vec2FeatureEncoder=Wav2Vec2FeatureEncoder, R3DBlock=R3DBlock)


_CONSTRUCTORS = {
    "resnet18": lambda c, size: c.ResNet18(),
    "mobilenet_v2": lambda c, size: c.MobileNetV2(),
    "dcgan_generator": lambda c, size: c.DCGANGenerator(ngf=64 if size == "full" else 16),
    "wav2vec2_encoder": lambda c, size: c.Wav2Vec2FeatureEncoder(
        512 if size == "full" else 64),
    "r3d_block": lambda c, size: c.R3DBlock(64 if size == "full" else 16),
    "resnet8": lambda c, size: c.ResNet8(16 if size == "full" else 8),
}


def _randomise_norms(torch, model) -> None:
    """Affine weights U(0.5, 1.5) and biases U(-0.25, 0.25) for every BatchNorm and
    GroupNorm."""
    norms = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.GroupNorm)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, norms) and module.weight is not None:
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.25, 0.25)


def _batchnorm_statistics(torch, model, batch) -> None:
    """Every BatchNorm's running mean and variance: those of what it sees when ``batch`` runs
    through ``model`` in training mode (a cumulative average over the one batch)."""
    norms = [m for m in model.modules()
             if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return
    momenta = [m.momentum for m in norms]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with torch.no_grad():
        model(batch)
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
