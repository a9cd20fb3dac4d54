"""Seeded random layers for the cocotb benches, with the features that matter cycled through
deterministically so that even a short run covers them all.

Layer ``index`` of a regression takes its op from ``index % 6`` (Conv1d/2d/3d,
ConvTranspose1d/2d/3d) and, with ``block = index // 6``, its padding mode (forward ops) from
``block % 4`` and its grouping (plain, grouped, depthwise) from ``(index + block) % 3``; it is
deep (three or four input chunks, kernel 3) when ``index % 5 == 4``, and a forward depthwise
layer of an even block takes the depthwise (FIR) lane mode. Everything else (sizes, stride,
dilation, padding, output padding, batch, bias, skip_borders) is drawn from the seeded
generator, so 24 consecutive layers cover every op, grouping and padding mode.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from convhw.compiler import compile_layer
from convhw.config import EngineConfig
from convhw.spec import PADDING_MODES, ConvSpec

__all__ = ["Layer", "features", "random_layer", "random_tensors"]

OPS = [(dims, transposed) for transposed in (False, True) for dims in (1, 2, 3)]


@dataclasses.dataclass(frozen=True)
class Layer:
    """One random layer: the spec, the input shape (batched) and how to compile it."""

    spec: ConvSpec
    shape: tuple[int, ...]
    skip_borders: bool
    seed: int

    def describe(self) -> str:
        return f"{self.spec!r}, input shape {self.shape}, skip_borders={self.skip_borders}"


def _draw(rng: np.random.Generator, index: int, config: EngineConfig):
    # Blocks of six layers, one per op; from block to block the padding mode (forward ops)
    # and the grouping move on, so that 24 layers give every op every grouping and every
    # forward op every padding mode.
    block = index // 6
    dims, transposed = OPS[index % 6]
    mode = "zeros" if transposed else PADDING_MODES[block % 4]
    grouping = (index + block) % 3           # plain, grouped, depthwise
    deep = index % 5 == 4
    if grouping == 2:
        groups = in_channels = int(rng.integers(1, config.rows + 3))
        out_channels = in_channels * int(rng.integers(1, 3))
    elif deep:
        # Three or four input chunks of the array's rows, so that jobs loop over input chunks
        # and, on small buffers, split them into runs that accumulate.
        groups = 1 if grouping == 0 else int(rng.choice([2, 3]))
        in_channels = groups * int(rng.integers(config.rows * 2 // groups + 1,
                                                config.rows * 4 // groups + 1))
        out_channels = groups * int(rng.integers(1, config.cols // groups + 3))
    elif grouping == 0:
        groups = 1
        in_channels = int(rng.integers(1, config.rows * 2 + 2))
        out_channels = int(rng.integers(1, config.cols + 3))
    else:
        groups = int(rng.choice([2, 3]))
        in_channels = groups * int(rng.integers(1, 4))
        out_channels = groups * int(rng.integers(1, 3))
    # A deep layer has the largest kernel, so that its weights or its input window times its
    # chunks outgrow small buffers.
    kernel = (3,) * dims if deep else tuple(int(v) for v in rng.integers(1, 4, dims))
    stride = tuple(int(v) for v in rng.integers(1, 4, dims))
    dilation = tuple(int(v) for v in rng.integers(1, 4, dims))
    if grouping == 2 and not transposed and (block % 2 == 0 or rng.random() < 0.5):
        # Unit stride and dilation along x: what the depthwise (FIR) lane mode takes.
        stride, dilation = (*stride[:-1], 1), (*dilation[:-1], 1)
    # Smaller spatial sizes in 3-D: the simulation time grows with the pixels.
    max_size = {1: 24, 2: 10, 3: 6}[dims]
    size = tuple(int(v) for v in rng.integers(1, max_size + 1, dims))
    output_padding = 0
    if transposed:
        padding = tuple(int(v) for v in rng.integers(0, 4, dims))
        output_padding = tuple(int(rng.integers(max(s, d))) for s, d in zip(stride, dilation))
    else:
        choice = rng.random()
        if choice < 0.15:
            padding, stride = "same", (1,) * dims
        elif choice < 0.25:
            padding = "valid"
        else:
            padding = tuple(int(v) for v in rng.integers(0, 4, dims))
    spec = ConvSpec(dims, in_channels, out_channels, kernel, stride, padding, dilation, groups,
                    bool(rng.integers(2)), mode, output_padding, transposed)
    batch = 2 if rng.random() < 0.35 else 1
    return spec, (batch, in_channels, *size), bool(rng.random() < 0.75)


def random_layer(seed: int, index: int, config: EngineConfig) -> Layer:
    """Layer ``index`` of the regression seeded with ``seed``: valid, and one this engine
    takes (redrawn until both hold)."""
    rng = np.random.default_rng([seed, index])
    while True:
        try:
            spec, shape, skip_borders = _draw(rng, index, config)
            spec.output_shape(shape)
            config.check_layer(spec)
        except ValueError:
            continue
        return Layer(spec, shape, skip_borders, seed)


def random_tensors(layer: Layer, config: EngineConfig):
    """Input, weight and bias of a layer: the operand ranges' extremes sprinkled in, a bias
    within what the accumulator holds."""
    rng = np.random.default_rng([layer.seed, 1 << 20])
    spec = layer.spec
    lo, hi = config.input_range
    x = rng.integers(lo, hi, layer.shape, endpoint=True)
    wlo, whi = config.weight_range
    w = rng.integers(wlo, whi, spec.weight_shape, endpoint=True)
    for array, (a, b) in ((x, (lo, hi)), (w, (wlo, whi))):
        corners = rng.random(array.shape) < 0.1
        array[corners] = rng.choice([a, b], int(corners.sum()))
    b = rng.integers(-100_000, 100_000, spec.out_channels, endpoint=True) if spec.bias else None
    return x, w, b


def features(layer: Layer, config: EngineConfig, steps=None) -> set[str]:
    """What a layer exercises, for the coverage tally."""
    spec = layer.spec
    steps = steps if steps is not None else compile_layer(spec, layer.shape, config,
                                                          skip_borders=layer.skip_borders)
    seen = {spec.op_name, f"padding {spec.padding_mode}"}
    if spec.groups > 1:
        seen.add("depthwise" if spec.groups == spec.in_channels else "groups")
    if max(spec.stride) > 1:
        seen.add("stride")
    if max(spec.dilation) > 1:
        seen.add("dilation")
    if spec.transposed and max(spec.output_padding) > 0:
        seen.add("output_padding")
    if any(lo != hi for lo, hi in spec.padding):
        seen.add("asymmetric padding")
    if layer.shape[0] > 1:
        seen.add("batch > 1")
    if spec.bias:
        seen.add("bias")
    if not layer.skip_borders:
        seen.add("skip_borders off")
    tiles = {tuple(a.out_start for a in s.job.axes) for s in steps}
    if len(tiles) > 1:
        seen.add("multi-tile")
    if any(s.job.accumulate for s in steps):
        seen.add("input-channel runs")
    if any(a.seg1_len for s in steps for a in s.job.axes):
        seen.add("two-segment window")
    if any(s.job.in_chunks > 1 for s in steps):
        seen.add("in_chunks > 1")
    if any(getattr(s.job, "fir_taps", 0) for s in steps):
        seen.add("FIR mode")
    return seen
