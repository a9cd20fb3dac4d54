"""Random layers for tests, regressions and fuzzers: one seeded generator, so that the unit
tests, the torch-conformance runs and the cocotb regression (``sim/layers.py``) draw from the
same distribution of the six ops.

:func:`random_layer` draws a :class:`~convhw.spec.ConvSpec` and an input shape valid for it
(and, given an engine configuration, one the engine takes), redrawing until both hold. Every
choice that a caller may want to steer (the op, the padding mode, the grouping, a deep layer)
is a keyword; everything else comes from the generator, so a seed names a layer.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from .config import EngineConfig
from .spec import PADDING_MODES, ConvSpec

__all__ = ["GROUPINGS", "OPS", "random_layer"]

#: The six ops as (dims, transposed): Conv1d/2d/3d, ConvTranspose1d/2d/3d.
OPS = tuple((dims, transposed) for transposed in (False, True) for dims in (1, 2, 3))

#: How input channels are grouped: one group, 2 or 3 groups, one group per channel.
GROUPINGS = ("plain", "grouped", "depthwise")


def random_layer(rng: np.random.Generator, *, op: tuple[int, bool] | None = None,
                 padding_mode: str | None = None, grouping: str | None = None,
                 deep: bool = False, unit_x: bool | None = None,
                 max_size: int | Mapping[int, int] = 9, asymmetric: bool = False,
                 unbatched: bool = False,
                 config: EngineConfig | None = None) -> tuple[ConvSpec, tuple[int, ...]]:
    """A random valid layer and an input shape for it.

    ``op`` (dims, transposed), ``padding_mode`` (forward ops; transposed ones take zeros) and
    ``grouping`` (one of :data:`GROUPINGS`) are drawn when not given. ``deep``: three or four
    input chunks of the array's rows and a 3-wide kernel, so that jobs loop over input chunks
    and outgrow small buffers. ``unit_x``: stride and dilation 1 along x for a forward
    depthwise layer (what the depthwise lane mode takes); ``None`` draws it. ``max_size``: the
    largest spatial extent, or one per dims. ``asymmetric``: forward padding may be a
    (before, after) pair per dimension. ``unbatched``: the input may have no batch dimension.
    ``config``: channel counts scale with its array, and the layer is one it takes.
    """
    rows, cols = (config.rows, config.cols) if config is not None else (2, 2)
    while True:
        dims, transposed = op if op is not None else OPS[int(rng.integers(len(OPS)))]
        group_kind = grouping if grouping is not None else GROUPINGS[int(rng.integers(3))]
        if group_kind == "depthwise":
            groups = in_channels = int(rng.integers(1, rows + 3))
            out_channels = in_channels * int(rng.integers(1, 3))
        elif deep:
            groups = 1 if group_kind == "plain" else int(rng.choice([2, 3]))
            in_channels = groups * int(rng.integers(rows * 2 // groups + 1,
                                                    rows * 4 // groups + 1))
            out_channels = groups * int(rng.integers(1, cols // groups + 3))
        elif group_kind == "plain":
            groups = 1
            in_channels = int(rng.integers(1, rows * 2 + 2))
            out_channels = int(rng.integers(1, cols + 3))
        else:
            groups = int(rng.choice([2, 3]))
            in_channels = groups * int(rng.integers(1, 4))
            out_channels = groups * int(rng.integers(1, 4))
        kernel = (3,) * dims if deep else tuple(int(v) for v in rng.integers(1, 4, dims))
        stride = tuple(int(v) for v in rng.integers(1, 4, dims))
        dilation = tuple(int(v) for v in rng.integers(1, 4, dims))
        if group_kind == "depthwise" and not transposed and (
                unit_x if unit_x is not None else rng.random() < 0.5):
            stride, dilation = (*stride[:-1], 1), (*dilation[:-1], 1)
        top = max_size[dims] if isinstance(max_size, Mapping) else max_size
        size = tuple(int(v) for v in rng.integers(1, top + 1, dims))
        mode, output_padding = "zeros", 0
        if transposed:
            padding = tuple(int(v) for v in rng.integers(0, 4, dims))
            output_padding = tuple(int(rng.integers(max(s, d)))
                                   for s, d in zip(stride, dilation, strict=True))
        else:
            mode = padding_mode if padding_mode is not None else \
                PADDING_MODES[int(rng.integers(len(PADDING_MODES)))]
            choice = rng.random()
            if choice < 0.15:
                padding, stride = "same", (1,) * dims
            elif choice < 0.25:
                padding = "valid"
            elif asymmetric and choice < 0.5:
                padding = tuple((int(a), int(b)) for a, b in rng.integers(0, 4, (dims, 2)))
            else:
                padding = tuple(int(v) for v in rng.integers(0, 4, dims))
        batch = (2,) if rng.random() < 0.35 else (1,)
        if unbatched and rng.random() < 0.3:
            batch = ()
        try:
            spec = ConvSpec(dims, in_channels, out_channels, kernel, stride, padding, dilation,
                            groups, bool(rng.integers(2)), mode, output_padding, transposed)
            shape = (*batch, in_channels, *size)
            spec.output_shape(shape)
            if config is not None:
                config.check_layer(spec)
        except ValueError:
            continue
        return spec, shape
