"""Functional convolutions shaped like ``torch.nn.functional``.

``conv1d/2d/3d`` and ``conv_transpose1d/2d/3d`` take torch's arguments in torch's order, plus a
keyword-only ``device`` (default: the golden model). ``conv*d`` also takes ``padding_mode`` and
``conv_transpose*d`` also takes ``output_size``, which torch offers only on the modules.
"""

from __future__ import annotations

import numpy as np

from .driver.device import as_device
from .spec import ConvSpec
from .tensors import as_array, like_input

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
           "conv_transpose3d"]


def _conv(dims, input, weight, bias, stride, padding, dilation, groups, padding_mode, device):
    given = input
    input, weight, bias = (as_array(v, n) for v, n in ((input, "input"), (weight, "weight"),
                                                        (bias, "bias")))
    spec = ConvSpec.from_weight_shape(
        np.shape(weight), dims=dims, transposed=False, stride=stride, padding=padding,
        dilation=dilation, groups=groups, bias=bias is not None, padding_mode=padding_mode)
    output, _ = as_device(device).run(spec, input, weight, bias)
    return like_input(output, given)


def _conv_transpose(dims, input, weight, bias, stride, padding, output_padding, groups,
                    dilation, output_size, device):
    given = input
    input, weight, bias = (as_array(v, n) for v, n in ((input, "input"), (weight, "weight"),
                                                        (bias, "bias")))
    spec = ConvSpec.from_weight_shape(
        np.shape(weight), dims=dims, transposed=True, stride=stride, padding=padding,
        dilation=dilation, groups=groups, bias=bias is not None, output_padding=output_padding)
    spec = spec.with_output_size(np.shape(input), output_size)
    output, _ = as_device(device).run(spec, input, weight, bias)
    return like_input(output, given)


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", *, device=None):
    """1-D convolution of ``input`` ``(N, C_in, L)`` or ``(C_in, L)`` with ``weight``
    ``(C_out, C_in/groups, k)``; see ``torch.nn.functional.conv1d``."""
    return _conv(1, input, weight, bias, stride, padding, dilation, groups, padding_mode, device)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", *, device=None):
    """2-D convolution of ``input`` ``(N, C_in, H, W)`` or ``(C_in, H, W)``; see
    ``torch.nn.functional.conv2d``."""
    return _conv(2, input, weight, bias, stride, padding, dilation, groups, padding_mode, device)


def conv3d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
           padding_mode="zeros", *, device=None):
    """3-D convolution of ``input`` ``(N, C_in, D, H, W)`` or ``(C_in, D, H, W)``; see
    ``torch.nn.functional.conv3d``."""
    return _conv(3, input, weight, bias, stride, padding, dilation, groups, padding_mode, device)


def conv_transpose1d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, output_size=None, *, device=None):
    """1-D transposed convolution with ``weight`` ``(C_in, C_out/groups, k)``; see
    ``torch.nn.functional.conv_transpose1d``."""
    return _conv_transpose(1, input, weight, bias, stride, padding, output_padding, groups,
                           dilation, output_size, device)


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, output_size=None, *, device=None):
    """2-D transposed convolution; see ``torch.nn.functional.conv_transpose2d``."""
    return _conv_transpose(2, input, weight, bias, stride, padding, output_padding, groups,
                           dilation, output_size, device)


def conv_transpose3d(input, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                     dilation=1, output_size=None, *, device=None):
    """3-D transposed convolution; see ``torch.nn.functional.conv_transpose3d``."""
    return _conv_transpose(3, input, weight, bias, stride, padding, output_padding, groups,
                           dilation, output_size, device)
