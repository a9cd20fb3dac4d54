"""Tap packing: a layer with few input channels (a network's stem) rewritten so that its kernel
taps along x fill the array's rows.

The array multiplies ``rows`` input channels per cycle. A stem has 1-4 (RGB images, audio
samples): ResNet-18's 7x7 stride-2 stem keeps 3 of 8 rows busy (0.37 of the array's MACs, the
network's least efficient layer). Packing ``P`` neighbouring x taps of each channel into the
input word turns it into a layer of ``C * P`` channels whose x kernel is ``ceil(K / P)`` taps
at ``P`` times the dilation, over a packed input:

    x'[c * P + j, ..., u] = xpad[c, ..., u + j * dilation]
    w'[o, c * P + j, ..., k] = w[o, c, ..., k * P + j]      (0 where k * P + j >= K)

where ``xpad`` is the input with its x padding made real (the padding mode's values; the
padding value, the zero point with torch's quantised arithmetic, for zeros). Every output is
then the same sum of the same products (integers: the same result to the bit); the packed
layer has no x padding, and its input is cut so that its output has exactly the original
size. The packed input is ``P`` times the original's: it is made by whoever writes the layer's
input (the host, for a network's first layer).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from ..config import EngineConfig
from ..spec import ConvSpec

__all__ = ["TapPacking", "packing_for", "tap_packing"]

_NUMPY_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


@dataclasses.dataclass(frozen=True)
class TapPacking:
    """How a layer is packed (:func:`tap_packing`): the packed layer :attr:`spec`, the number
    of x taps per channel in one input word (:attr:`taps`), and the original layer."""

    original: ConvSpec
    spec: ConvSpec
    taps: int

    def input_shape(self, shape) -> tuple[int, ...]:
        """The packed input's shape for an original input of ``shape``."""
        spec, p = self.original, self.taps
        shape = tuple(shape)
        lo, hi = spec.padding[-1]
        d, k = spec.dilation[-1], spec.kernel_size[-1]
        width = shape[-1] + lo + hi - (k - 1) * d + (-(-k // p) - 1) * p * d
        return (*shape[:-spec.dims - 1], shape[-spec.dims - 1] * p,
                *shape[-spec.dims:-1], width)

    def input(self, x, pad_value: int = 0) -> np.ndarray:
        """The packed input of ``x`` (``(N, C, *spatial)`` or ``(C, *spatial)``):
        ``pad_value`` is the value of zero padding (an input's zero point)."""
        spec, p = self.original, self.taps
        x = np.asarray(x)
        lo, hi = spec.padding[-1]
        d = spec.dilation[-1]
        widths = [(0, 0)] * (x.ndim - 1) + [(lo, hi)]
        mode = _NUMPY_MODES.get(spec.padding_mode)
        xpad = (np.pad(x, widths, mode=mode) if mode else
                np.pad(x, widths, constant_values=pad_value))
        width = self.input_shape(x.shape)[-1]
        # Past xpad's end, the taps read have zero weights: any value does.
        xpad = np.pad(xpad, [(0, 0)] * (x.ndim - 1) + [(0, max(0, width + (p - 1) * d
                                                               - xpad.shape[-1]))],
                      constant_values=pad_value)
        channel_axis = x.ndim - spec.dims - 1
        parts = [xpad[..., j * d:j * d + width] for j in range(p)]
        packed = np.stack(parts, axis=channel_axis + 1)        # (.., C, P, .., W')
        shape = list(x.shape)
        shape[channel_axis] *= p
        shape[-1] = width
        return packed.reshape(shape)

    def weight(self, weight) -> np.ndarray:
        """The packed weights of ``weight`` (torch's ``(out, in, *kernel)``)."""
        w = np.asarray(weight)
        p, k = self.taps, self.original.kernel_size[-1]
        packed_k = -(-k // p)
        w = np.concatenate([w, np.zeros((*w.shape[:-1], packed_k * p - k), w.dtype)], axis=-1)
        w = w.reshape(*w.shape[:-1], packed_k, p)              # (o, c, .., k', j)
        w = np.moveaxis(w, -1, 2)                              # (o, c, j, .., k')
        return w.reshape(w.shape[0], w.shape[1] * p, *w.shape[3:])


def tap_packing(spec: ConvSpec, config: EngineConfig) -> TapPacking | None:
    """The packing of ``spec`` for ``config``'s array, or ``None`` when it would not fill more
    rows: a forward layer of one group whose input channels fill at most half the rows and
    whose x kernel has two taps or more. ``P`` is the most x taps whose channels fit the rows
    (at most the kernel's)."""
    if spec.transposed or spec.groups != 1:
        return None
    k = spec.kernel_size[-1]
    p = min(config.rows // spec.in_channels, k)
    if p < 2:
        return None
    packed = dataclasses.replace(
        spec, in_channels=spec.in_channels * p,
        kernel_size=(*spec.kernel_size[:-1], -(-k // p)),
        dilation=(*spec.dilation[:-1], spec.dilation[-1] * p),
        padding=(*spec.padding[:-1], (0, 0)),
        # (x has no padding left; the other dimensions keep the mode)
        padding_mode=spec.padding_mode if any(map(any, spec.padding[:-1])) else "zeros")
    assert math.prod(packed.kernel_size) <= math.prod(spec.kernel_size)
    return TapPacking(original=spec, spec=packed, taps=p)


def packing_for(spec: ConvSpec, input_shape, config: EngineConfig) -> TapPacking | None:
    """The packing the list engine runs ``spec`` on an input of ``input_shape`` with when the
    host writes that input (a single layer, a list's first): :func:`tap_packing`'s, unless
    the engine cannot hold the packed layer (then None). ``Device`` and
    :func:`convhw.estimate.estimate` both follow it."""
    packing = tap_packing(spec, config)
    if packing is None:
        return None
    try:
        config.check_layer(packing.spec, packing.input_shape(input_shape))
    except ValueError:
        return None
    return packing
