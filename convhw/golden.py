"""The NumPy golden model: PyTorch's convolution semantics, computed exactly.

One entry point, :func:`convolution`, covers all six ops (``Conv1d/2d/3d`` and
``ConvTranspose1d/2d/3d``), every padding mode, groups, dilation, stride and output padding, for
any batch size. Arithmetic:

* integer operands (any signed or unsigned integer dtype) give an exact ``int64`` result;
* as soon as one operand is floating point, the result is ``float64``.

Exact integer results are computed through float64 BLAS whenever the worst-case magnitude of a
sum stays below 2**53 (then every partial sum is an exactly representable integer, so the
float result is exact), and through int64 matrix products otherwise. A layer whose worst case
does not fit in int64 is refused with a :class:`ValueError` instead of wrapping silently.

The model is vectorised: one batched matrix product per layer (per group), plus one strided
add per kernel tap for transposed layers. Validation is :class:`~convhw.spec.ConvSpec`'s.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .spec import ConvSpec, result_dtype

__all__ = ["convolution", "pad", "requantize", "wrap"]

_FLOAT_EXACT = 2 ** 53
_INT64_MAX = 2 ** 63 - 1

# ConvSpec padding modes -> numpy.pad modes (numpy's "reflect" excludes the edge, like torch's).
_NP_PAD_MODES = {"zeros": "constant", "circular": "wrap", "reflect": "reflect",
                 "replicate": "edge"}


def pad(spec: ConvSpec, x: np.ndarray) -> np.ndarray:
    """Pad the spatial axes of a batched input ``(N, C, *S)`` as ``spec`` says."""
    widths = [(0, 0), (0, 0), *spec.padding]
    if not any(lo or hi for lo, hi in spec.padding):
        return x
    return np.pad(x, widths, mode=_NP_PAD_MODES[spec.padding_mode])


def _compute_dtype(spec: ConvSpec, x: np.ndarray, weight: np.ndarray,
                   bias: np.ndarray | None) -> np.dtype:
    """The dtype the products are formed in: float64, unless exact integer sums could exceed
    what float64 represents exactly."""
    out = result_dtype(x, weight, bias)
    if out.kind == "f":
        return out
    def peak(a):
        # in Python integers: |int64 min| itself is not an int64
        return max(abs(int(a.min())), abs(int(a.max()))) if a is not None and a.size else 0
    worst = peak(x) * peak(weight) * spec.macs_per_output + peak(bias)
    if worst < _FLOAT_EXACT:
        return np.dtype(np.float64)
    if worst > _INT64_MAX:
        raise ValueError(
            f"integer convolution may reach {worst}, beyond the int64 range of the golden "
            f"model: reduce the operand magnitudes (largest |input| {peak(x)}, |weight| "
            f"{peak(weight)}) or use floating point")
    return np.dtype(np.int64)


def _forward(spec: ConvSpec, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    n, dims, groups = x.shape[0], spec.dims, spec.groups
    xp = pad(spec, x)
    out_size = spec.output_size(x.shape[2:])
    extents = [d * (k - 1) + 1 for k, d in zip(spec.kernel_size, spec.dilation)]
    windows = sliding_window_view(xp, extents, axis=tuple(range(2, 2 + dims)))
    # windows: (N, C, *positions, *extent); keep strided positions and dilated taps.
    index = (slice(None), slice(None),
             *(slice(None, (o - 1) * s + 1, s) for o, s in zip(out_size, spec.stride)),
             *(slice(None, None, d) for d in spec.dilation))
    windows = windows[index]
    c_group = spec.in_channels // groups
    o_group = spec.out_channels // groups
    taps = math.prod(spec.kernel_size)
    pixels = math.prod(out_size)
    # (N, C, *O, *K) -> (N, C, *K, *O) -> (N, G, Cg*K, P): the im2col matrix, pixels innermost
    # so that the copy moves whole rows and the product lands in the output layout.
    order = (0, 1, *range(2 + dims, 2 + 2 * dims), *range(2, 2 + dims))
    columns = windows.transpose(order).reshape(n, groups, c_group * taps, pixels)
    y = np.matmul(weight.reshape(groups, o_group, c_group * taps), columns)   # (N, G, Og, P)
    return y.reshape(n, spec.out_channels, *out_size)


def _transposed(spec: ConvSpec, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    # Scatter form: every input pixel times every tap lands on output i*s - p_lo + k*d.
    n, dims, groups = x.shape[0], spec.dims, spec.groups
    in_size = x.shape[2:]
    out_size = spec.output_size(in_size)
    c_group = spec.in_channels // groups
    o_group = spec.out_channels // groups
    pixels = math.prod(in_size)
    xg = x.reshape(n, groups, c_group, pixels).transpose(1, 2, 0, 3)
    xg = xg.reshape(groups, c_group, n * pixels)
    kernels = weight.reshape(groups, c_group, o_group * math.prod(spec.kernel_size))
    columns = np.matmul(kernels.transpose(0, 2, 1), xg)        # (G, Og*K, N*P)
    columns = columns.reshape(groups, o_group, *spec.kernel_size, n, *in_size)
    full = [(i - 1) * s + d * (k - 1) + 1 + op for i, s, d, k, op in zip(
        in_size, spec.stride, spec.dilation, spec.kernel_size, spec.output_padding)]
    y = np.zeros((groups, o_group, n, *full), dtype=columns.dtype)
    for tap in itertools.product(*(range(k) for k in spec.kernel_size)):
        target = (slice(None), slice(None), slice(None),
                  *(slice(t * d, t * d + (i - 1) * s + 1, s)
                    for t, d, i, s in zip(tap, spec.dilation, in_size, spec.stride)))
        y[target] += columns[(slice(None), slice(None), *tap)]
    crop = (slice(None),) * 3 + tuple(slice(lo, lo + o) for (lo, _), o in zip(spec.padding,
                                                                                out_size))
    y = y[crop]
    return y.transpose(2, 0, 1, *range(3, 3 + dims)).reshape(n, spec.out_channels, *out_size)


def convolution(spec: ConvSpec, input, weight, bias=None) -> np.ndarray:
    """Compute ``spec`` on ``input`` with torch's semantics.

    Parameters
    ----------
    spec : ConvSpec
        The layer.
    input : array_like
        ``(N, C_in, *S)`` or unbatched ``(C_in, *S)``.
    weight : array_like
        torch's weight layout, :attr:`ConvSpec.weight_shape`.
    bias : array_like or None
        ``(C_out,)``.

    Returns
    -------
    numpy.ndarray
        ``int64`` if every operand is integer, else ``float64``; batched like ``input``.
    """
    x, batched = spec.check_input(input)
    weight = spec.check_weight(weight)
    bias = spec.check_bias(bias)
    out_dtype = result_dtype(x, weight, bias)
    dtype = _compute_dtype(spec, x, weight, bias)
    x = x.astype(dtype, copy=False)
    weight = weight.astype(dtype, copy=False)
    y = (_transposed if spec.transposed else _forward)(spec, x, weight)
    if bias is not None:
        y = y + bias.astype(dtype).reshape(-1, *(1,) * spec.dims)
    if out_dtype != y.dtype:
        y = np.rint(y).astype(out_dtype)       # exact: every value is an integer below 2**53
    return y if batched else y[0]


def wrap(values, bits: int) -> np.ndarray:
    """Two's-complement wrap-around of integers to ``bits`` bits: the engine's accumulator
    overflow rule."""
    values = np.asarray(values, dtype=np.int64)
    half = 1 << (bits - 1)
    return (values + half) % (1 << bits) - half


def requantize(values, multiplier, shift, bits: int = 8, relu: bool = False) -> np.ndarray:
    """The engine's requantisation of ``acc + bias`` per output channel (axis 1 of a batched
    result, or 0 of an unbatched one is the caller's choice: ``multiplier`` and ``shift``
    broadcast against ``values``): ``clamp((v * multiplier + 2**(shift-1)) >> shift)`` to
    ``bits``-bit signed, rounding half up, then optional ReLU."""
    values = np.asarray(values, dtype=np.int64)
    multiplier = np.asarray(multiplier, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    rounding = np.where(shift > 0, np.left_shift(1, np.maximum(shift - 1, 0)), 0)
    scaled = np.right_shift(values * multiplier + rounding, shift)
    out = np.clip(scaled, -(1 << (bits - 1)), (1 << (bits - 1)) - 1)
    return np.maximum(out, 0) if relu else out
