"""``ConvSpec``: the one description of a convolution layer.

Every argument check and every piece of shape arithmetic in convhw lives in this module: the
front end, the golden model, the compiler and the tests ask a :class:`ConvSpec` rather than
recomputing a size themselves. The semantics are PyTorch's (``torch.nn.Conv{1,2,3}d`` and
``torch.nn.ConvTranspose{1,2,3}d``); where torch rejects an argument or an input, ``ConvSpec``
rejects it too, with a :class:`ValueError` or :class:`TypeError` that names the argument, the value
and the allowed range, before anything is computed.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["PADDING_MODES", "ConvSpec", "result_dtype"]

#: Padding modes of ``torch.nn.Conv*d``; transposed convolutions accept only ``"zeros"``.
PADDING_MODES = ("zeros", "circular", "reflect", "replicate")


def _is_int(value: Any) -> bool:
    # bool is an int subclass, but ``kernel_size=True`` is a mistake, not a size.
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _tuple(name: str, value: Any, dims: int, *, minimum: int, what: str) -> tuple[int, ...]:
    """Normalise an int or a ``dims``-tuple of ints (torch's ``_single/_pair/_triple``)."""
    if _is_int(value):
        items = (int(value),) * dims
    elif isinstance(value, Sequence) and not isinstance(value, str):
        if len(value) != dims or not all(_is_int(v) for v in value):
            raise TypeError(
                f"{name} must be {what} or a tuple of {dims} such integers, not {value!r}")
        items = tuple(int(v) for v in value)
    else:
        raise TypeError(f"{name} must be {what} or a tuple of {dims} such integers, not {value!r}")
    if any(v < minimum for v in items):
        raise ValueError(f"{name} must be {what} or a tuple of {dims} such integers, not {value!r}")
    return items


def result_dtype(*arrays: np.ndarray | None) -> np.dtype:
    """The dtype of a convolution result: ``int64`` when every operand is an integer array
    (exact arithmetic), ``float64`` as soon as one is floating point."""
    if all(a is None or a.dtype.kind in "iu" for a in arrays):
        return np.dtype(np.int64)
    return np.dtype(np.float64)


_INT64_MAX = 2**63 - 1


def _as_numeric(name: str, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must be an array of integers or real floating-point numbers, "
            f"not an array of dtype {array.dtype}")
    # Integer arithmetic is exact in int64: an unsigned 64-bit value past its range would wrap
    # to a negative number on the way in.
    if array.dtype.kind == "u" and array.dtype.itemsize == 8 and array.size:
        largest = int(array.max())
        if largest > _INT64_MAX:
            raise ValueError(
                f"{name} holds {largest}, outside the int64 range of integer operands "
                f"[{-_INT64_MAX - 1}, {_INT64_MAX}]")
    return array


@dataclasses.dataclass(frozen=True)
class ConvSpec:
    """An immutable, validated description of one convolution layer.

    Parameters follow ``torch.nn.Conv{dims}d`` (``transposed=False``) and
    ``torch.nn.ConvTranspose{dims}d`` (``transposed=True``). Scalars are broadcast to every
    spatial dimension. After construction every field is in canonical form:

    * ``kernel_size``, ``stride``, ``dilation``, ``output_padding``: tuples of ``dims`` ints;
    * ``padding``: a tuple of ``dims`` ``(low, high)`` pairs. ``'valid'`` is all zeros;
      ``'same'`` puts ``total // 2`` before and the rest after, as torch does, so the
      asymmetric padding of an even kernel is exact. Pairs may also be given directly.

    Parameters
    ----------
    dims : int
        Number of spatial dimensions: 1, 2 or 3.
    in_channels, out_channels : int
        Channel counts, both positive and divisible by ``groups``.
    kernel_size, stride, dilation : int or tuple of int
        Positive.
    padding : int, tuple, 'same' or 'valid'
        Non-negative. ``'same'`` requires stride 1; strings are not accepted when transposed.
    groups : int
        Positive divisor of both channel counts.
    bias : bool
        Whether the layer adds a bias.
    padding_mode : str
        One of :data:`PADDING_MODES`; transposed layers accept ``'zeros'`` only.
    output_padding : int or tuple of int
        Transposed only: extra size added to one side of the output, each element smaller
        than ``max(stride, dilation)`` in its dimension.
    transposed : bool
        ``True`` for ``ConvTranspose{dims}d``.
    """

    dims: int
    in_channels: int
    out_channels: int
    kernel_size: Any
    stride: Any = 1
    padding: Any = 0
    dilation: Any = 1
    groups: int = 1
    bias: bool = True
    padding_mode: str = "zeros"
    output_padding: Any = 0
    transposed: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__.__get__(self)
        if not _is_int(self.dims) or self.dims not in (1, 2, 3):
            raise ValueError(f"dims must be 1, 2 or 3, not {self.dims!r}")
        dims = int(self.dims)
        set_("dims", dims)
        if not isinstance(self.transposed, (bool, np.bool_)):
            raise TypeError(f"transposed must be a bool, not {self.transposed!r}")
        set_("transposed", bool(self.transposed))
        if not isinstance(self.bias, (bool, np.bool_)):
            raise TypeError(f"bias must be a bool, not {self.bias!r}")
        set_("bias", bool(self.bias))

        for name in ("in_channels", "out_channels", "groups"):
            value = getattr(self, name)
            if not _is_int(value):
                raise TypeError(f"{name} must be a positive integer, not {value!r}")
            if value < 1:
                raise ValueError(f"{name} must be a positive integer, not {value!r}")
            set_(name, int(value))
        if self.in_channels % self.groups:
            raise ValueError(f"in_channels must be divisible by groups ({self.groups}), "
                             f"not {self.in_channels!r}")
        if self.out_channels % self.groups:
            raise ValueError(f"out_channels must be divisible by groups ({self.groups}), "
                             f"not {self.out_channels!r}")

        positive = "a positive integer"
        set_("kernel_size", _tuple("kernel_size", self.kernel_size, dims,
                                   minimum=1, what=positive))
        set_("stride", _tuple("stride", self.stride, dims, minimum=1, what=positive))
        set_("dilation", _tuple("dilation", self.dilation, dims, minimum=1, what=positive))

        if not isinstance(self.padding_mode, str) or self.padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {', '.join(map(repr, PADDING_MODES))}, "
                             f"not {self.padding_mode!r}")
        if self.transposed and self.padding_mode != "zeros":
            raise ValueError(f"padding_mode must be 'zeros' for ConvTranspose{dims}d, "
                             f"not {self.padding_mode!r}")

        set_("padding", self._normalise_padding(self.padding))

        output_padding = _tuple("output_padding", self.output_padding, dims, minimum=0,
                                what="a non-negative integer")
        if self.transposed:
            bound = tuple(max(s, d) for s, d in zip(self.stride, self.dilation))
            if any(op >= b for op, b in zip(output_padding, bound)):
                raise ValueError(
                    f"output_padding must be smaller than max(stride, dilation) "
                    f"= {self._fmt(bound)} in every dimension, not {self._fmt(output_padding)}")
            set_("output_padding", output_padding)
        else:
            if any(output_padding):
                raise ValueError(f"output_padding is only valid for transposed convolutions, "
                                 f"not {self.output_padding!r} for Conv{dims}d")
            set_("output_padding", (0,) * dims)

    @classmethod
    def from_weight_shape(cls, weight_shape: Sequence[int], *, dims: int, transposed: bool,
                          stride: Any = 1, padding: Any = 0, dilation: Any = 1,
                          groups: int = 1, bias: bool = False, padding_mode: str = "zeros",
                          output_padding: Any = 0) -> ConvSpec:
        """The spec of a functional call (``conv2d(input, weight, ...)``): the channel counts
        and kernel size are read off torch's weight layout."""
        shape = tuple(weight_shape)
        if len(shape) != dims + 2:
            raise ValueError(f"weight must be {dims + 2}-D for "
                             f"{'conv_transpose' if transposed else 'conv'}{dims}d, "
                             f"not of shape {shape!r}")
        per_group = shape[1] * groups if _is_int(groups) else shape[1]
        in_channels, out_channels = (shape[0], per_group) if transposed else (per_group, shape[0])
        return cls(dims=dims, in_channels=in_channels, out_channels=out_channels,
                   kernel_size=shape[2:], stride=stride, padding=padding, dilation=dilation,
                   groups=groups, bias=bias, padding_mode=padding_mode,
                   output_padding=output_padding, transposed=transposed)

    @staticmethod
    def _fmt(values: tuple[int, ...]) -> str:
        return repr(values[0]) if len(values) == 1 else repr(values)

    def _normalise_padding(self, padding: Any) -> tuple[tuple[int, int], ...]:
        dims = self.dims
        if isinstance(padding, str):
            if self.transposed:
                raise ValueError(f"padding must be a non-negative integer or a tuple of {dims} "
                                 f"such integers for ConvTranspose{dims}d, not {padding!r}")
            if padding == "valid":
                return ((0, 0),) * dims
            if padding == "same":
                if any(s != 1 for s in self.stride):
                    raise ValueError(f"padding='same' requires stride 1, "
                                     f"not stride={self._fmt(self.stride)}")
                pairs = []
                for k, d in zip(self.kernel_size, self.dilation):
                    total = d * (k - 1)
                    pairs.append((total // 2, total - total // 2))
                return tuple(pairs)
            raise ValueError(f"padding must be 'same', 'valid', a non-negative integer or a "
                             f"tuple of {dims} such integers, not {padding!r}")
        what = "a non-negative integer"
        if (isinstance(padding, Sequence) and len(padding) == dims
                and all(isinstance(p, Sequence) and not isinstance(p, str) for p in padding)):
            # Explicit (low, high) pairs: canonical form, also used by the compiler for tiles.
            pairs = []
            for p in padding:
                if len(p) != 2 or not all(_is_int(v) for v in p):
                    raise TypeError(f"padding pairs must be (low, high) integer pairs, "
                                    f"not {padding!r}")
                if p[0] < 0 or p[1] < 0:
                    raise ValueError(f"padding must be {what} in every position, "
                                     f"not {padding!r}")
                pairs.append((int(p[0]), int(p[1])))
            return tuple(pairs)
        values = _tuple("padding", padding, dims, minimum=0, what=what)
        return tuple((p, p) for p in values)

    # -- derived names -------------------------------------------------------------------------

    @property
    def op_name(self) -> str:
        """The torch class name of this layer, e.g. ``'ConvTranspose2d'``."""
        return f"{'ConvTranspose' if self.transposed else 'Conv'}{self.dims}d"

    @property
    def weight_shape(self) -> tuple[int, ...]:
        """torch's weight shape: ``(out, in/groups, *k)``, transposed ``(in, out/groups, *k)``."""
        if self.transposed:
            return (self.in_channels, self.out_channels // self.groups, *self.kernel_size)
        return (self.out_channels, self.in_channels // self.groups, *self.kernel_size)

    @property
    def bias_shape(self) -> tuple[int, ...] | None:
        return (self.out_channels,) if self.bias else None

    @property
    def fan_in(self) -> int:
        """torch's fan-in of the weight (``weight.shape[1] * prod(kernel_size)``), which sets
        the default initialisation bounds."""
        return self.weight_shape[1] * math.prod(self.kernel_size)

    @property
    def macs_per_output(self) -> int:
        """Upper bound of products summed into one output element (padding taps included)."""
        return self.in_channels // self.groups * math.prod(self.kernel_size)

    # -- shapes --------------------------------------------------------------------------------

    def output_size(self, input_size: Sequence[int]) -> tuple[int, ...]:
        """Spatial output size for spatial ``input_size``; raises if torch would."""
        input_size = tuple(int(i) for i in input_size)
        if len(input_size) != self.dims:
            raise ValueError(f"input size must have {self.dims} spatial dimensions, "
                             f"not {input_size!r}")
        if any(i < 1 for i in input_size):
            raise ValueError(f"input spatial size must be at least 1 in every dimension, "
                             f"not {input_size!r}")
        out = []
        for axis, (i, k, s, (pl, ph), d, op) in enumerate(zip(
                input_size, self.kernel_size, self.stride, self.padding, self.dilation,
                self.output_padding)):
            extent = d * (k - 1) + 1
            if self.transposed:
                o = (i - 1) * s - pl - ph + extent + op
                if o < 1:
                    raise ValueError(
                        f"input size {input_size!r} is too small for {self.op_name} with "
                        f"padding {self._fmt(tuple(p for p, _ in self.padding))}: the output "
                        f"would be {o} long in spatial dimension {axis}; it must be at least 1")
            else:
                if self.padding_mode == "reflect" and max(pl, ph) >= i:
                    raise ValueError(
                        f"padding {(pl, ph)!r} in spatial dimension {axis} must be smaller "
                        f"than the input size {i} for padding_mode='reflect'")
                if self.padding_mode == "circular" and max(pl, ph) > i:
                    raise ValueError(
                        f"padding {(pl, ph)!r} in spatial dimension {axis} must be at most "
                        f"the input size {i} for padding_mode='circular'")
                if i + pl + ph < extent:
                    raise ValueError(
                        f"padded input size {i + pl + ph} in spatial dimension {axis} must be "
                        f"at least the dilated kernel size {extent} (input size {input_size!r})")
                o = (i + pl + ph - extent) // s + 1
            out.append(o)
        return tuple(out)

    def output_shape(self, input_shape: Sequence[int]) -> tuple[int, ...]:
        """Full output shape, ``(N, out, *spatial)`` or ``(out, *spatial)`` like the input."""
        batched = self.check_input_shape(input_shape)
        spatial = self.output_size(tuple(input_shape)[-self.dims:])
        head = (input_shape[0],) if batched else ()
        return (*head, self.out_channels, *spatial)

    def check_input_shape(self, shape: Sequence[int]) -> bool:
        """Validate an input shape; return whether it is batched ``(N, C, *S)``."""
        batched = self._check_rank_and_channels(shape)
        self.output_size(tuple(shape)[-self.dims:])
        return batched

    def _check_rank_and_channels(self, shape: Sequence[int]) -> bool:
        shape = tuple(shape)
        if len(shape) not in (self.dims + 1, self.dims + 2):
            raise ValueError(
                f"input must be {self.dims + 1}-D (unbatched) or {self.dims + 2}-D (batched) "
                f"for {self.op_name}, not of shape {shape!r}")
        batched = len(shape) == self.dims + 2
        channels = shape[1] if batched else shape[0]
        if channels != self.in_channels:
            raise ValueError(f"input must have {self.in_channels} channels for this "
                             f"{self.op_name}, not {channels} (input shape {shape!r})")
        return batched

    def check_input(self, x: Any, name: str = "input") -> tuple[np.ndarray, bool]:
        """Validate an input tensor; return it batched as ``(N, C, *S)`` and whether it was."""
        x = _as_numeric(name, x)
        batched = self.check_input_shape(x.shape)
        return (x if batched else x[np.newaxis]), batched

    def check_weight(self, weight: Any, name: str = "weight") -> np.ndarray:
        weight = _as_numeric(name, weight)
        if weight.shape != self.weight_shape:
            raise ValueError(f"{name} must have shape {self.weight_shape!r} for this "
                             f"{self.op_name}, not {weight.shape!r}")
        return weight

    def check_bias(self, bias: Any, name: str = "bias") -> np.ndarray | None:
        if bias is None:
            return None
        bias = _as_numeric(name, bias)
        if bias.shape != (self.out_channels,):
            raise ValueError(f"{name} must have shape {(self.out_channels,)!r} for this "
                             f"{self.op_name}, not {bias.shape!r}")
        return bias

    # -- transposed output_size ----------------------------------------------------------------

    def with_output_size(self, input_shape: Sequence[int],
                         output_size: Sequence[int] | None) -> ConvSpec:
        """Resolve torch's ``output_size`` argument of a transposed layer into
        ``output_padding``; returns the spec to run (``self`` when ``output_size`` is None).

        ``output_size`` may hold the spatial sizes alone, or lead with the batch and channel
        sizes as torch allows; each size must lie in the range the stride can reach.
        """
        if output_size is None:
            return self
        if not self.transposed:
            raise ValueError(f"output_size is only valid for transposed convolutions, "
                             f"not for {self.op_name}")
        batched = self._check_rank_and_channels(input_shape)
        if isinstance(output_size, str) or not isinstance(output_size, Sequence) or not all(
                _is_int(v) for v in output_size):
            raise TypeError(f"output_size must be a sequence of integers, not {output_size!r}")
        output_size = tuple(int(v) for v in output_size)
        leading = 2 if batched else 1
        if len(output_size) == self.dims + leading:
            output_size = output_size[leading:]
        if len(output_size) != self.dims:
            raise ValueError(f"output_size must have {self.dims} or {self.dims + leading} "
                             f"elements for a {len(input_shape)}-D input, not {len(output_size)}")
        spatial = tuple(input_shape)[-self.dims:]
        # torch's smallest size may be < 1 when output_padding is what makes the output exist.
        low = tuple((i - 1) * s - pl - ph + d * (k - 1) + 1 for i, s, (pl, ph), d, k in zip(
            spatial, self.stride, self.padding, self.dilation, self.kernel_size))
        high = tuple(m + s - 1 for m, s in zip(low, self.stride))
        if any(not (lo <= o <= hi) for o, lo, hi in zip(output_size, low, high)):
            raise ValueError(f"output_size must lie between {self._fmt(low)} and "
                             f"{self._fmt(high)} for an input of spatial size {spatial!r}, "
                             f"not {self._fmt(output_size)}")
        output_padding = tuple(o - m for o, m in zip(output_size, low))
        spec = dataclasses.replace(self, output_padding=output_padding)
        spec.output_size(spatial)
        return spec

    # -- work ----------------------------------------------------------------------------------

    def _taps_per_dim(self, input_size: tuple[int, ...]) -> list[int]:
        """Per spatial dimension, the number of (output, tap) pairs that read a real input
        element: padding taps of ``'zeros'`` mode and a transposed layer's inserted zeros are
        not counted; circular, reflect and replicate taps read real data and are counted."""
        output_size = self.output_size(input_size)
        counts = []
        for i, o, k, s, (pl, _), d in zip(input_size, output_size, self.kernel_size,
                                          self.stride, self.padding, self.dilation):
            out = np.arange(o)[:, None]
            tap = np.arange(k)[None, :]
            if self.transposed:
                num = out + pl - tap * d
                valid = (num % s == 0) & (num >= 0) & (num // s < i)
            elif self.padding_mode == "zeros":
                src = out * s - pl + tap * d
                valid = (src >= 0) & (src < i)
            else:
                valid = np.ones((o, k), dtype=bool)
            counts.append(int(valid.sum()))
        return counts

    def useful_macs(self, input_shape: Sequence[int]) -> int:
        """Multiply-accumulates that touch real data for an input of ``input_shape``: the
        numerator of compute efficiency."""
        batched = self.check_input_shape(input_shape)
        batch = input_shape[0] if batched else 1
        pairs = math.prod(self._taps_per_dim(tuple(input_shape)[-self.dims:]))
        return batch * self.out_channels * (self.in_channels // self.groups) * pairs
