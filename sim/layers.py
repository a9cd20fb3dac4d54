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
from convhw.testing import GROUPINGS, OPS
from convhw.testing import random_layer as shared_random_layer

__all__ = ["Layer", "features", "random_layer", "random_tensors"]

# Smaller spatial sizes in 3-D: the simulation time grows with the pixels.
MAX_SIZE = {1: 24, 2: 10, 3: 6}


@dataclasses.dataclass(frozen=True)
class Layer:
    """One random layer: the spec, the input shape (batched) and how to compile it."""

    spec: ConvSpec
    shape: tuple[int, ...]
    skip_borders: bool
    seed: int

    def describe(self) -> str:
        return f"{self.spec!r}, input shape {self.shape}, skip_borders={self.skip_borders}"


def random_layer(seed: int, index: int, config: EngineConfig) -> Layer:
    """Layer ``index`` of the regression seeded with ``seed``: valid, and one this engine
    takes (redrawn until both hold)."""
    rng = np.random.default_rng([seed, index])
    block = index // 6
    spec, shape = shared_random_layer(
        rng, op=OPS[index % 6], padding_mode=PADDING_MODES[block % 4],
        grouping=GROUPINGS[(index + block) % 3], deep=index % 5 == 4,
        unit_x=True if block % 2 == 0 else None, max_size=MAX_SIZE, config=config)
    return Layer(spec, shape, bool(rng.random() < 0.75), seed)


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
