"""Convolution modules shaped like ``torch.nn``.

``Conv1d/2d/3d`` and ``ConvTranspose1d/2d/3d`` take torch's constructor arguments in torch's order
with torch's defaults. ``weight`` and ``bias`` are writable NumPy arrays of torch's shapes,
initialised within torch's default bounds (uniform in ``±1/sqrt(fan_in)``). ``device`` is a
:class:`convhw.Device` (or its name); the default is the golden model. A module is called like a
torch module, and remembers what its last call cost in :attr:`last_run`.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .driver.device import Device, RunInfo, as_device
from .spec import ConvSpec
from .tensors import as_array, like_input

__all__ = ["Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
           "from_torch", "manual_seed", "torch_conv_arguments"]

_rng = np.random.default_rng()


def manual_seed(seed: int) -> None:
    """Seed the generator that initialises new modules' weights and biases."""
    global _rng
    _rng = np.random.default_rng(seed)


class _ConvNd:
    """The shared body of the six modules: a :class:`ConvSpec`, the parameters, the device."""

    _dims: int
    _transposed: bool

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation,
                 output_padding, groups, bias, padding_mode, device, dtype):
        self._spec = ConvSpec(
            dims=self._dims, in_channels=in_channels, out_channels=out_channels,
            kernel_size=kernel_size, stride=stride, padding=padding, dilation=dilation,
            groups=groups, bias=bias, padding_mode=padding_mode, output_padding=output_padding,
            transposed=self._transposed)
        dtype = np.dtype(np.float64 if dtype is None else dtype)
        if dtype.kind != "f":
            raise TypeError(f"dtype must be a floating-point dtype, not {dtype}; assign "
                            f"integer weights to .weight after construction")
        # torch keeps 'same'/'valid' as given and an int padding as a tuple; so does repr.
        spec = self._spec
        self._padding = padding if isinstance(padding, str) else tuple(
            lo if lo == hi else (lo, hi) for lo, hi in spec.padding)
        self._device = as_device(device)
        self.last_run: RunInfo | None = None
        bound = 1 / math.sqrt(spec.fan_in)
        self._weight = _rng.uniform(-bound, bound, spec.weight_shape).astype(dtype)
        self._bias = _rng.uniform(-bound, bound, spec.out_channels).astype(dtype) if bias else None

    # -- torch's attributes --------------------------------------------------------------------

    spec = property(lambda self: self._spec, doc="The layer's :class:`ConvSpec`.")
    in_channels = property(lambda self: self._spec.in_channels)
    out_channels = property(lambda self: self._spec.out_channels)
    kernel_size = property(lambda self: self._spec.kernel_size)
    stride = property(lambda self: self._spec.stride)
    padding = property(lambda self: self._padding)
    dilation = property(lambda self: self._spec.dilation)
    output_padding = property(lambda self: self._spec.output_padding)
    groups = property(lambda self: self._spec.groups)
    padding_mode = property(lambda self: self._spec.padding_mode)
    transposed = property(lambda self: self._spec.transposed)
    device = property(lambda self: self._device, doc="The :class:`convhw.Device` it runs on.")

    @property
    def weight(self) -> np.ndarray:
        return self._weight

    @weight.setter
    def weight(self, value) -> None:
        self._weight = self._spec.check_weight(as_array(value, "weight"))

    @property
    def bias(self) -> np.ndarray | None:
        return self._bias

    @bias.setter
    def bias(self, value) -> None:
        value = as_array(value, "bias")
        spec = dataclasses.replace(self._spec, bias=value is not None)
        self._bias = spec.check_bias(value)
        self._spec = spec

    # -- use -----------------------------------------------------------------------------------

    def to(self, device) -> _ConvNd:
        """Move the module to ``device`` (a :class:`convhw.Device` or its name); returns it."""
        self._device = as_device(device)
        return self

    def _run(self, spec: ConvSpec, input) -> np.ndarray:
        output, self.last_run = self._device.run(spec, as_array(input, "input"),
                                                 self._weight, self._bias)
        return like_input(output, input)

    def __call__(self, *args, **kwargs) -> np.ndarray:
        return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        spec, dims = self._spec, self._dims
        s = f"{spec.in_channels}, {spec.out_channels}, kernel_size={spec.kernel_size}, " \
            f"stride={spec.stride}"
        if self._padding != (0,) * dims:
            s += f", padding={self._padding}"
        if spec.dilation != (1,) * dims:
            s += f", dilation={spec.dilation}"
        if spec.output_padding != (0,) * dims:
            s += f", output_padding={spec.output_padding}"
        if spec.groups != 1:
            s += f", groups={spec.groups}"
        if self._bias is None:
            s += ", bias=False"
        if spec.padding_mode != "zeros":
            s += f", padding_mode={spec.padding_mode}"
        return s

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class _Conv(_ConvNd):
    _transposed = False

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation, 0,
                         groups, bias, padding_mode, device, dtype)

    def forward(self, input) -> np.ndarray:
        return self._run(self._spec, input)


class _ConvTranspose(_ConvNd):
    _transposed = True

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None):
        super().__init__(in_channels, out_channels, kernel_size, stride, padding, dilation,
                         output_padding, groups, bias, padding_mode, device, dtype)

    def forward(self, input, output_size=None) -> np.ndarray:
        shape = np.shape(as_array(input, "input"))
        return self._run(self._spec.with_output_size(shape, output_size), input)


class Conv1d(_Conv):
    """1-D convolution over ``(N, C_in, L)`` or ``(C_in, L)``, like ``torch.nn.Conv1d``."""
    _dims = 1


class Conv2d(_Conv):
    """2-D convolution over ``(N, C_in, H, W)`` or ``(C_in, H, W)``, like ``torch.nn.Conv2d``."""
    _dims = 2


class Conv3d(_Conv):
    """3-D convolution over ``(N, C_in, D, H, W)`` or ``(C_in, D, H, W)``, like
    ``torch.nn.Conv3d``."""
    _dims = 3


class ConvTranspose1d(_ConvTranspose):
    """1-D transposed convolution, like ``torch.nn.ConvTranspose1d``."""
    _dims = 1


class ConvTranspose2d(_ConvTranspose):
    """2-D transposed convolution, like ``torch.nn.ConvTranspose2d``."""
    _dims = 2


class ConvTranspose3d(_ConvTranspose):
    """3-D transposed convolution, like ``torch.nn.ConvTranspose3d``."""
    _dims = 3


_MODULES = {cls.__name__: cls for cls in (Conv1d, Conv2d, Conv3d, ConvTranspose1d,
                                          ConvTranspose2d, ConvTranspose3d)}


def torch_conv_arguments(module, transposed: bool) -> dict:
    """The geometry arguments of a torch convolution module (float or quantised: they share
    the attribute names), as ConvSpec and the modules here take them."""
    arguments = dict(in_channels=module.in_channels, out_channels=module.out_channels,
                     kernel_size=module.kernel_size, stride=module.stride,
                     padding=module.padding, dilation=module.dilation, groups=module.groups,
                     padding_mode=module.padding_mode)
    if transposed:
        arguments["output_padding"] = module.output_padding
    return arguments


def from_torch(module, device: Device | str | None = None) -> _ConvNd:
    """The convhw module equal to a ``torch.nn.Conv*d``/``ConvTranspose*d`` module: same
    arguments, a float64 copy of its weight and bias."""
    torch_class = next((c for c in type(module).__mro__
                        if c.__module__ == "torch.nn.modules.conv" and c.__name__ in _MODULES),
                       None)
    if torch_class is None:
        raise TypeError(f"module must be a torch.nn Conv1d/2d/3d or ConvTranspose1d/2d/3d, "
                        f"not {type(module).__name__}")
    kwargs = torch_conv_arguments(module, torch_class.__name__.startswith("ConvTranspose"))
    converted = _MODULES[torch_class.__name__](**kwargs, bias=module.bias is not None,
                                               device=device)
    converted.weight = module.weight.detach().cpu().double().numpy().copy()
    if module.bias is not None:
        converted.bias = module.bias.detach().cpu().double().numpy().copy()
    return converted
