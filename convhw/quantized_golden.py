"""The golden model of torch's quantised convolutions: the integer sum and the float32 output
arithmetic of its CPU kernels, bit for bit.

A torch quantised convolution (``torch.ao.nn.quantized.Conv1d/2d/3d``, ``ConvTranspose1d/2d/3d``
and the fused ``ConvReLU``) takes quint8 activations ``x`` with a scale and a zero point, qint8
weights ``w`` with a scale and zero point per tensor or per output channel, a float bias, and an
output scale and zero point. Its result is, per output element:

1. the **exact integer sum** ``acc = sum (x - x_zero_point) * (w - w_zero_point)``, the padding
   being the input zero point (so a padded tap adds 0), as an int32;
2. the **output processing**, which differs between torch's kernels (:data:`KERNELS`):

   * ``"fbgemm"`` (torch's ``x86``, ``fbgemm`` and ``onednn`` engines): in IEEE-754 single
     precision, ``float(acc)``, plus ``bias / (x_scale * w_scale)``, times ``(x_scale * w_scale)
     / out_scale``, rounded half to even, plus the output zero point;
   * ``"qnnpack"``: the bias rounded to an int32 first (``round(bias * (1 / (x_scale *
     w_scale)))``) and added to the integer sum, then ``float(acc + bias_q)`` times the same
     multiplier, rounded half to even, plus the output zero point;

   then clamped to 0..255, or to ``out_zero_point..255`` with a fused ReLU.

The per-channel constants (``bias / (x_scale * w_scale)`` or its int32 rounding, and the
multiplier) are computed once, in float32, as the kernels compute them:
:meth:`QuantizedArithmetic.constants`. The engine's quantised output stage is to compute step 2
on exactly these constants; this module is what it is checked against, and
``tests/test_quantized_golden.py`` checks this module against torch itself.

Measured with torch 2.13 on the development machine (``tests/test_quantized_golden.py``): 0
elements differ from torch's ``x86`` and ``fbgemm`` engines with ``"fbgemm"``, and from
``qnnpack`` with ``"qnnpack"``, with full-range (0..255) activations too on Conv2d (``onednn``
matched as well in a one-off Conv2d check, not in the tests). That holds on a CPU whose fbgemm
kernels accumulate u8 x s8 products exactly (AVX512-VNNI here). The issue that asked for this
module reports, from another machine, that fbgemm's AVX2 kernels add product pairs in
saturating 16-bit arithmetic and so differ from the exact sum for large activations (not
reproduced here: no AVX2-only CPU; torch's default x86 qconfig keeps activations to 7 bits,
``reduce_range``, for that reason); there the exact sum is the engine's, and the difference
torch's. torch's ``x86`` engine runs transposed convolutions on oneDNN, whose results were not
the exact sum's here (up to 255 apart); its ``fbgemm`` and ``qnnpack`` engines' transposed
convolutions match.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from . import golden
from .spec import ConvSpec

__all__ = ["KERNELS", "QuantizedArithmetic", "quantized_convolution", "requantize"]

#: The output arithmetics of torch's quantised CPU kernels this module reproduces.
KERNELS = ("fbgemm", "qnnpack")

_F32 = np.float32


@dataclasses.dataclass(frozen=True)
class QuantizedArithmetic:
    """The quantisation parameters of one torch quantised convolution, and the kernel whose
    output arithmetic to follow.

    Attributes
    ----------
    input_scale, input_zero_point : float, int
        The quint8 input's.
    weight_scales, weight_zero_points : array_like
        One per output channel (a per-tensor weight's repeated).
    output_scale, output_zero_point : float, int
        The module's ``scale`` and ``zero_point``.
    bias : array_like or None
        The float bias, one per output channel.
    relu : bool
        A fused ReLU (``ConvReLU*d``): the output clamped below at its zero point.
    kernel : str
        One of :data:`KERNELS`.
    """

    input_scale: float
    input_zero_point: int
    weight_scales: np.ndarray
    weight_zero_points: np.ndarray
    output_scale: float
    output_zero_point: int
    bias: np.ndarray | None = None
    relu: bool = False
    kernel: str = "fbgemm"

    def __post_init__(self) -> None:
        if self.kernel not in KERNELS:
            raise ValueError(f"kernel must be one of {KERNELS}, not {self.kernel!r}")
        scales = np.asarray(self.weight_scales, dtype=np.float64).reshape(-1)
        zero_points = np.asarray(self.weight_zero_points, dtype=np.int64).reshape(-1)
        if zero_points.size == 1 and scales.size > 1:
            zero_points = np.repeat(zero_points, scales.size)
        if scales.size == 0 or zero_points.shape != scales.shape:
            raise ValueError(f"weight_scales and weight_zero_points must have one value per "
                             f"output channel, not {scales.size} and {zero_points.size}")
        for name, value in (("input_scale", self.input_scale),
                            ("output_scale", self.output_scale)):
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, not {value!r}")
        if not (np.all(np.isfinite(scales)) and np.all(scales > 0)):
            raise ValueError("weight_scales must be positive finite numbers")
        for name, value in (("input_zero_point", self.input_zero_point),
                            ("output_zero_point", self.output_zero_point)):
            if not 0 <= int(value) <= 255:
                raise ValueError(f"{name} must be in 0..255 (quint8), not {value!r}")
        if np.any(zero_points < -128) or np.any(zero_points > 127):
            raise ValueError("weight_zero_points must be in -128..127 (qint8)")
        object.__setattr__(self, "weight_scales", scales)
        object.__setattr__(self, "weight_zero_points", zero_points)
        if self.bias is not None:
            bias = np.asarray(self.bias, dtype=_F32).reshape(-1)
            if bias.shape != scales.shape:
                raise ValueError(f"bias must have one value per output channel "
                                 f"({scales.size}), not {bias.size}")
            object.__setattr__(self, "bias", bias)

    @property
    def channels(self) -> int:
        return self.weight_scales.size

    def constants(self) -> tuple[np.ndarray, np.ndarray]:
        """Per output channel: the bias term and the multiplier, as the kernel computes them.

        ``"fbgemm"``: ``(bias / (x_scale * w_scale), (x_scale * w_scale) / out_scale)``, both
        float32 (each operation in float32; scales from their float64 values to float32
        first). ``"qnnpack"``: the bias term is int64 (the int32 it adds to the sum).
        """
        act_times_w = (_F32(self.input_scale) * self.weight_scales.astype(_F32)).astype(_F32)
        multiplier = (act_times_w / _F32(self.output_scale)).astype(_F32)
        bias = self.bias if self.bias is not None else np.zeros(self.channels, _F32)
        if self.kernel == "fbgemm":
            return (bias / act_times_w).astype(_F32), multiplier
        inverse = (_F32(1) / act_times_w).astype(_F32)
        return np.rint((bias * inverse).astype(_F32)).astype(np.int64), multiplier


def requantize(acc, arithmetic: QuantizedArithmetic, channel_axis: int = 1) -> np.ndarray:
    """The kernel's output processing of the exact sums ``acc`` (int32 range; output channels
    on ``channel_axis``): uint8 results."""
    acc = np.asarray(acc)
    if not np.issubdtype(acc.dtype, np.integer):
        raise TypeError(f"acc must be integers, not {acc.dtype}")
    acc = acc.astype(np.int64)
    if acc.size and (acc.min() < -2 ** 31 or acc.max() >= 2 ** 31):
        raise ValueError("acc must be in the int32 range (the kernels' accumulator)")
    if acc.ndim <= channel_axis or acc.shape[channel_axis] != arithmetic.channels:
        raise ValueError(f"acc must have {arithmetic.channels} channels on axis "
                         f"{channel_axis}, not shape {acc.shape}")
    shape = [1] * acc.ndim
    shape[channel_axis] = -1
    bias, multiplier = (c.reshape(shape) for c in arithmetic.constants())
    if arithmetic.kernel == "fbgemm":
        raw = (acc.astype(_F32) + bias).astype(_F32)
    else:
        # (an int32 sum in qnnpack; an overflow here would wrap there)
        raw = golden.wrap(acc + bias, 32).astype(_F32)
    scaled = (raw * multiplier).astype(_F32)
    out = np.rint(scaled).astype(np.int64) + int(arithmetic.output_zero_point)
    low = int(arithmetic.output_zero_point) if arithmetic.relu else 0
    return np.clip(out, low, 255).astype(np.uint8)


def quantized_convolution(spec: ConvSpec, input, weight,
                          arithmetic: QuantizedArithmetic) -> np.ndarray:
    """``spec`` on quint8 ``input`` and qint8 ``weight`` (their integer representations, torch's
    layouts) with torch's quantised arithmetic: uint8 results, batched like ``input``."""
    x = np.asarray(input)
    w = np.asarray(weight)
    if not (np.issubdtype(x.dtype, np.integer) and np.issubdtype(w.dtype, np.integer)):
        raise TypeError("input and weight must be the integer representations (int_repr())")
    if x.size and (x.min() < 0 or x.max() > 255):
        raise ValueError("input must be quint8 values, 0..255")
    if w.size and (w.min() < -128 or w.max() > 127):
        raise ValueError("weight must be qint8 values, -128..127")
    if arithmetic.channels != spec.out_channels:
        raise ValueError(f"the arithmetic has {arithmetic.channels} output channels, the layer "
                         f"{spec.out_channels}")
    # The weight's output-channel axis: 0, or 1 of a transposed layer's (C_in, C_out/g, ...).
    zero_points = arithmetic.weight_zero_points
    if spec.transposed:
        groups = spec.groups
        per_group = spec.out_channels // groups
        zw = zero_points.reshape(groups, 1, per_group)
        w = (w.astype(np.int64).reshape(groups, -1, per_group, *w.shape[2:])
             - zw.reshape(groups, 1, per_group, *(1,) * spec.dims)).reshape(w.shape)
    else:
        w = w.astype(np.int64) - zero_points.reshape(-1, *(1,) * (w.ndim - 1))
    acc = golden.convolution(spec, x.astype(np.int64) - int(arithmetic.input_zero_point), w)
    batched = acc.ndim == spec.dims + 2
    acc = golden.wrap(acc, 32)
    return requantize(acc, arithmetic, channel_axis=1 if batched else 0)
