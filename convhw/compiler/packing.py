"""Packings: a layer with few input channels (a network's stem) rewritten so that its kernel
taps fill the array's rows.

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

A tap packing leaves ``rows mod C`` rows idle and zero taps where ``P`` does not divide ``K``
(a 3x3 stride-2 stem on 3 channels: 6 of 8 rows, 4 tap products for 3). The window packing
(:class:`WindowPacking`, im2col over the innermost ``n`` spatial dimensions) packs every tap
of those dimensions, with their stride, into the channels:

    x'[(c, k), ..., v] = xpad[c, ..., v * stride + k * dilation]      (k, v over those dims)
    w'[o, (c, k), ..., 0] = w[o, c, ..., k]

a layer of ``C * prod(K)`` channels with a kernel of 1 and stride 1 along the folded dimensions:
27 channels for that stem, 4 input words of 8 per output pixel where the tap packing streams 6.
Its input is ``prod(K) / prod(stride)`` times the original's (12 for ResNet-18's 7x7 stride-2
stem). :func:`packing_for` estimates each candidate on the engine, memory traffic included, and
keeps the fastest.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np

from ..config import EngineConfig
from ..spec import ConvSpec

__all__ = ["TapPacking", "WindowPacking", "packing_candidates", "packing_for", "tap_packing",
           "window_packing"]

_NUMPY_MODES = {"reflect": "reflect", "replicate": "edge", "circular": "wrap"}


def _padded(x: np.ndarray, spec: ConvSpec, dims: int, pad_value: int) -> np.ndarray:
    """``x`` with the padding of ``spec``'s innermost ``dims`` spatial dimensions made real:
    the padding mode's values, or ``pad_value`` for zeros."""
    widths = [(0, 0)] * (x.ndim - dims) + [tuple(p) for p in spec.padding[-dims:]]
    mode = _NUMPY_MODES.get(spec.padding_mode)
    return (np.pad(x, widths, mode=mode) if mode else
            np.pad(x, widths, constant_values=pad_value))


@dataclasses.dataclass(frozen=True)
class TapPacking:
    """How a layer is packed (:func:`tap_packing`): the packed layer :attr:`spec`, the number
    of x taps per channel in one input word (:attr:`taps`), and the original layer."""

    original: ConvSpec
    spec: ConvSpec
    taps: int

    @property
    def key(self) -> tuple:
        """What tells this packing's weights from another's (a resident weight's key)."""
        return ("taps", self.taps)

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
        d = spec.dilation[-1]
        xpad = _padded(x, spec, 1, pad_value)
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


@dataclasses.dataclass(frozen=True)
class WindowPacking:
    """An im2col packing (:func:`window_packing`): the innermost :attr:`folded` spatial
    dimensions' taps and strides packed into the channels of the packed layer :attr:`spec`."""

    original: ConvSpec
    spec: ConvSpec
    folded: int

    @property
    def key(self) -> tuple:
        """What tells this packing's weights from another's (a resident weight's key)."""
        return ("window", self.folded)

    def input_shape(self, shape) -> tuple[int, ...]:
        """The packed input's shape for an original input of ``shape``: the folded dimensions
        are the output's."""
        spec, n = self.original, self.folded
        shape = tuple(shape)
        out = spec.output_shape(shape)
        taps = math.prod(spec.kernel_size[-n:])
        return (*shape[:-spec.dims - 1], shape[-spec.dims - 1] * taps,
                *shape[-spec.dims:-n], *out[-n:])

    def input(self, x, pad_value: int = 0) -> np.ndarray:
        """The packed input of ``x`` (``(N, C, *spatial)`` or ``(C, *spatial)``):
        ``pad_value`` is the value of zero padding (an input's zero point)."""
        spec, n = self.original, self.folded
        x = np.asarray(x)
        xpad = _padded(x, spec, n, pad_value)
        out = self.input_shape(x.shape)[-n:]
        lead = (slice(None),) * (x.ndim - n)
        parts = []
        for taps in itertools.product(*(range(k) for k in spec.kernel_size[-n:])):
            window = tuple(slice(k * d, k * d + (o - 1) * s + 1, s) for k, d, s, o in
                           zip(taps, spec.dilation[-n:], spec.stride[-n:], out))
            parts.append(xpad[lead + window])
        channel_axis = x.ndim - spec.dims - 1
        packed = np.stack(parts, axis=channel_axis + 1)        # (.., C, taps, .., out)
        return packed.reshape(self.input_shape(x.shape))

    def weight(self, weight) -> np.ndarray:
        """The packed weights of ``weight`` (torch's ``(out, in, *kernel)``)."""
        w = np.asarray(weight)
        n, dims = self.folded, self.original.dims
        # (o, c, *unfolded, *folded) -> (o, c, *folded, *unfolded): channel-major, the folded
        # taps in the order input() stacks them.
        w = np.moveaxis(w, list(range(2 + dims - n, 2 + dims)), list(range(2, 2 + n)))
        return w.reshape(w.shape[0], -1, *w.shape[2 + n:], *([1] * n))


def window_packing(spec: ConvSpec, folded: int) -> WindowPacking | None:
    """The im2col packing of ``spec``'s innermost ``folded`` spatial dimensions, or ``None``
    for a layer it does not apply to (transposed, grouped, or no taps in those dimensions)."""
    if spec.transposed or spec.groups != 1 or not 1 <= folded <= spec.dims:
        return None
    if math.prod(spec.kernel_size[-folded:]) < 2:
        return None
    keep = spec.dims - folded
    packed = dataclasses.replace(
        spec, in_channels=spec.in_channels * math.prod(spec.kernel_size[-folded:]),
        kernel_size=(*spec.kernel_size[:keep], *(1,) * folded),
        stride=(*spec.stride[:keep], *(1,) * folded),
        dilation=(*spec.dilation[:keep], *(1,) * folded),
        padding=(*spec.padding[:keep], *((0, 0),) * folded),
        padding_mode=spec.padding_mode if any(map(any, spec.padding[:keep])) else "zeros")
    return WindowPacking(original=spec, spec=packed, folded=folded)


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


def packing_candidates(spec: ConvSpec, config: EngineConfig) -> list:
    """Every packing of ``spec`` that fills more of ``config``'s rows than the layer does:
    the tap packing and the window packings of 1 to ``dims`` dimensions, for a forward layer
    of one group whose input channels fill at most half the rows."""
    if spec.transposed or spec.groups != 1 or 2 * spec.in_channels > config.rows:
        return []
    candidates = [tap_packing(spec, config)]
    candidates += [window_packing(spec, n) for n in range(1, spec.dims + 1)]
    return [c for c in candidates if c is not None]


def packing_for(spec: ConvSpec, input_shape, config: EngineConfig, memory=None):
    """The packing the list engine runs ``spec`` on an input of ``input_shape`` with when the
    host writes that input (a single layer, a list's first), or ``None``: of
    :func:`packing_candidates` that the engine can hold, the one with the fewest cycles by
    the cycle model's bound (:func:`convhw.estimate.estimate`, ``exact=False``: the engine's
    busy cycles or the memory's, ``memory`` the memory model, by default
    :class:`~convhw.memory_model.MemoryModel`'s), if it takes fewer than the layer as written.
    ``Device`` and :func:`convhw.estimate.estimate` both follow it."""
    # (imported here: estimate models packed layers with this module)
    from ..estimate import estimate

    candidates = []
    for packing in packing_candidates(spec, config):
        shape = packing.input_shape(input_shape)
        try:
            config.check_layer(packing.spec, shape)
        except ValueError:
            continue
        candidates.append((packing, shape))
    if not candidates:
        return None
    kwargs = dict(config=config, requantize=True, exact=False, pack_taps=False)
    if memory is not None:
        kwargs["memory"] = memory
    # Modelled from the most promising on, and one that cannot beat the best so far by the
    # most useful MACs a cycle brings (a lower bound of its cycles) is not modelled at all: in
    # a sweep of configurations a stem's packings were most of each configuration's time.
    ranked = sorted(candidates, key=lambda c: _least_cycles(c[0].spec, c[1], config))
    best, best_cycles = None, None
    for packing, shape in ranked:
        if best_cycles is not None and _least_cycles(packing.spec, shape, config) >= best_cycles:
            continue
        cycles = estimate(packing.spec, shape, **kwargs).cycles
        if best_cycles is None or cycles < best_cycles:
            best, best_cycles = packing, cycles
    # The layer as written wins ties.
    if _least_cycles(spec, input_shape, config) <= best_cycles \
            and estimate(spec, input_shape, **kwargs).cycles <= best_cycles:
        return None
    return best


def _least_cycles(spec: ConvSpec, input_shape, config: EngineConfig) -> float:
    """A lower bound of a (one-group, forward) layer's cycles on the array: its useful MACs
    over the most a cycle does on average. Each (output, tap) takes ``ceil(channels / rows)``
    input words times ``ceil(out_channels / cols)`` column chunks, whatever the tiling."""
    channels = spec.in_channels // spec.groups
    per_cycle = (channels / math.ceil(channels / config.rows)
                 * spec.out_channels / math.ceil(spec.out_channels / config.cols))
    return spec.useful_macs(tuple(input_shape)) / per_cycle
