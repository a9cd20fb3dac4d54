"""ConvSpec on its own: normalisation, every validation message, shape arithmetic, output_size
resolution, weight/bias checks and useful MACs; shapes and rejections cross-checked against
torch when it is installed (the torch tests skip without it)."""

import dataclasses
import itertools
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from convhw.spec import PADDING_MODES, ConvSpec, result_dtype
from convhw.testing import random_layer

from .helpers import exactly

# -- normalisation ---------------------------------------------------------------------------


def test_init():
    spec = ConvSpec(2, 4, 8, 3)
    assert spec.dims == 2
    assert spec.in_channels == 4
    assert spec.out_channels == 8
    assert spec.kernel_size == (3, 3)
    assert spec.stride == (1, 1)
    assert spec.padding == ((0, 0), (0, 0))
    assert spec.dilation == (1, 1)
    assert spec.groups == 1
    assert spec.bias is True
    assert spec.padding_mode == "zeros"
    assert spec.output_padding == (0, 0)
    assert spec.transposed is False


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_init_broadcast(dims):
    spec = ConvSpec(dims, 2, 2, 3, stride=2, padding=1, dilation=3)
    assert spec.kernel_size == (3,) * dims
    assert spec.stride == (2,) * dims
    assert spec.padding == ((1, 1),) * dims
    assert spec.dilation == (3,) * dims
    assert spec.output_padding == (0,) * dims


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_init_broadcast_transposed(dims):
    spec = ConvSpec(dims, 2, 2, 3, stride=2, padding=1, output_padding=1, transposed=True)
    assert spec.padding == ((1, 1),) * dims
    assert spec.output_padding == (1,) * dims


def test_init_tuples():
    spec = ConvSpec(3, 1, 1, (1, 2, 3), stride=[3, 2, 1], padding=(0, 1, 2), dilation=(2, 1, 1))
    assert spec.kernel_size == (1, 2, 3)
    assert spec.stride == (3, 2, 1)
    assert spec.padding == ((0, 0), (1, 1), (2, 2))
    assert spec.dilation == (2, 1, 1)


def test_init_numpy_integers():
    spec = ConvSpec(np.int64(2), np.int32(4), np.uint8(6), (np.int64(3), np.int16(1)),
                    groups=np.int64(2), bias=np.bool_(False), transposed=np.bool_(False))
    assert spec == ConvSpec(2, 4, 6, (3, 1), groups=2, bias=False)
    for value in (spec.dims, spec.in_channels, spec.out_channels, spec.groups,
                  *spec.kernel_size, *spec.stride):
        assert type(value) is int
    assert type(spec.bias) is bool and type(spec.transposed) is bool


def test_init_canonical_equality():
    # Equal layers written differently are equal (and hash alike) once normalised.
    a = ConvSpec(1, 2, 2, 3, padding=1)
    b = ConvSpec(1, 2, 2, (3,), padding=((1, 1),), stride=(1,))
    assert a == b and hash(a) == hash(b)
    assert ConvSpec(2, 1, 1, 3, padding="valid") == ConvSpec(2, 1, 1, 3, padding=0)


def test_init_frozen():
    spec = ConvSpec(1, 1, 1, 3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.stride = (2,)


def test_init_padding_valid():
    assert ConvSpec(3, 1, 1, 3, padding="valid").padding == ((0, 0),) * 3


@pytest.mark.parametrize("kernel_size, dilation, expected", [
    # total = d * (k - 1); low = total // 2, high = total - low
    (1, 1, (0, 0)),     # total 0
    (2, 1, (0, 1)),     # total 1
    (3, 1, (1, 1)),     # total 2
    (4, 1, (1, 2)),     # total 3
    (5, 1, (2, 2)),     # total 4
    (3, 2, (2, 2)),     # total 4
    (2, 3, (1, 2)),     # total 3
    (4, 2, (3, 3)),     # total 6
    (4, 3, (4, 5)),     # total 9
])
def test_init_padding_same(kernel_size, dilation, expected):
    spec = ConvSpec(1, 1, 1, kernel_size, padding="same", dilation=dilation)
    assert spec.padding == (expected,)


def test_init_padding_same_per_dimension():
    # (k, d) = (3, 1): total 2 -> (1, 1); (4, 2): total 6 -> (3, 3); (2, 1): total 1 -> (0, 1)
    spec = ConvSpec(3, 1, 1, (3, 4, 2), padding="same", dilation=(1, 2, 1), stride=(1, 1, 1))
    assert spec.padding == ((1, 1), (3, 3), (0, 1))


def test_init_padding_pairs():
    assert ConvSpec(1, 1, 1, 3, padding=((0, 2),)).padding == ((0, 2),)
    assert ConvSpec(2, 1, 1, 3, padding=[[1, 0], (2, 3)]).padding == ((1, 0), (2, 3))
    spec = ConvSpec(2, 1, 1, 3, padding=((1, 2), (0, 0)), transposed=True)
    assert spec.padding == ((1, 2), (0, 0))
    assert all(type(v) is int for pair in spec.padding for v in pair)


def test_init_output_padding():
    spec = ConvSpec(2, 1, 1, 3, stride=(2, 3), output_padding=(1, 2), transposed=True)
    assert spec.output_padding == (1, 2)
    # max(stride, dilation) bounds it: stride 1 but dilation 3 allows 2.
    spec = ConvSpec(1, 1, 1, 3, dilation=3, output_padding=2, transposed=True)
    assert spec.output_padding == (2,)


@pytest.mark.parametrize("output_padding", [0, (0, 0)])
def test_init_output_padding_zero_conv(output_padding):
    assert ConvSpec(2, 1, 1, 3, output_padding=output_padding).output_padding == (0, 0)


def test_derived():
    spec = ConvSpec(2, 4, 6, (3, 5), groups=2)
    assert spec.op_name == "Conv2d"
    assert spec.weight_shape == (6, 2, 3, 5)
    assert spec.bias_shape == (6,)
    assert spec.fan_in == 2 * 3 * 5
    assert spec.macs_per_output == 2 * 3 * 5
    spec = ConvSpec(3, 4, 6, (1, 2, 3), groups=2, bias=False, transposed=True)
    assert spec.op_name == "ConvTranspose3d"
    assert spec.weight_shape == (4, 3, 1, 2, 3)
    assert spec.bias_shape is None
    assert spec.fan_in == 3 * 6       # torch: weight.shape[1] * prod(kernel_size)
    assert spec.macs_per_output == 2 * 6


def test_result_dtype():
    i8, u8, f4 = np.zeros(1, np.int8), np.zeros(1, np.uint8), np.zeros(1, np.float32)
    assert result_dtype(i8, u8, None) == np.int64
    assert result_dtype(i8, f4) == np.float64
    assert result_dtype(None) == np.int64


# -- validation ------------------------------------------------------------------------------


@pytest.mark.parametrize("dims", [0, 4, -1, True, 2.0, "2", None])
def test_init_wrong_dims(dims):
    with pytest.raises(ValueError, match=exactly(f"dims must be 1, 2 or 3, not {dims!r}")):
        ConvSpec(dims, 1, 1, 1)


@pytest.mark.parametrize("name", ["bias", "transposed"])
@pytest.mark.parametrize("value", [1, 0, None, "True"])
def test_init_wrong_bool(name, value):
    with pytest.raises(TypeError, match=exactly(f"{name} must be a bool, not {value!r}")):
        ConvSpec(1, 1, 1, 1, **{name: value})


WRONG_POSITIVE_INTEGERS = [
    (2.0, TypeError), ("2", TypeError), (None, TypeError), (True, TypeError),
    (np.bool_(True), TypeError), (0, ValueError), (-2, ValueError),
]


def check_wrong_positive_integer(name, value, error):
    kwargs = dict(in_channels=2, out_channels=2, groups=1)
    kwargs[name] = value
    with pytest.raises(error, match=exactly(f"{name} must be a positive integer, not {value!r}")):
        ConvSpec(1, kernel_size=1, **kwargs)


@pytest.mark.parametrize("value, error", WRONG_POSITIVE_INTEGERS)
def test_init_wrong_in_channels(value, error):
    check_wrong_positive_integer("in_channels", value, error)


@pytest.mark.parametrize("value, error", WRONG_POSITIVE_INTEGERS)
def test_init_wrong_out_channels(value, error):
    check_wrong_positive_integer("out_channels", value, error)


@pytest.mark.parametrize("value, error", WRONG_POSITIVE_INTEGERS)
def test_init_wrong_groups(value, error):
    check_wrong_positive_integer("groups", value, error)


def test_init_wrong_in_channels_groups():
    with pytest.raises(ValueError, match=r"^in_channels must be divisible by groups \(2\), "
                                         r"not 3$"):
        ConvSpec(1, 3, 4, 1, groups=2)
    with pytest.raises(ValueError, match=r"^in_channels must be divisible by groups \(4\), "
                                         r"not 2$"):
        ConvSpec(1, 2, 4, 1, groups=4, transposed=True)


def test_init_wrong_out_channels_groups():
    with pytest.raises(ValueError, match=r"^out_channels must be divisible by groups \(2\), "
                                         r"not 3$"):
        ConvSpec(1, 4, 3, 1, groups=2)


WRONG_POSITIVE_TUPLES = [
    (0, ValueError),
    (-1, ValueError),
    ((3, 0), ValueError),
    ((-2, 1), ValueError),
    ((3,), TypeError),                  # wrong length
    ((3, 3, 3), TypeError),
    ([], TypeError),
    (2.0, TypeError),                   # float
    ((2, 2.5), TypeError),
    (True, TypeError),                  # bool
    ((1, False), TypeError),
    ("3", TypeError),
    (None, TypeError),
    ({3, 4}, TypeError),                # not a sequence
]


def check_wrong_positive_tuple(name, value, error):
    kwargs = {"kernel_size": 1, name: value}
    message = f"{name} must be a positive integer or a tuple of 2 such integers, not {value!r}"
    with pytest.raises(error, match=exactly(message)):
        ConvSpec(2, 1, 1, **kwargs)


@pytest.mark.parametrize("value, error", WRONG_POSITIVE_TUPLES)
def test_init_wrong_kernel_size(value, error):
    check_wrong_positive_tuple("kernel_size", value, error)


@pytest.mark.parametrize("value, error", WRONG_POSITIVE_TUPLES)
def test_init_wrong_stride(value, error):
    check_wrong_positive_tuple("stride", value, error)


@pytest.mark.parametrize("value, error", WRONG_POSITIVE_TUPLES)
def test_init_wrong_dilation(value, error):
    check_wrong_positive_tuple("dilation", value, error)


@pytest.mark.parametrize("value, error", [
    (-1, ValueError),
    ((0, -1), ValueError),
    ((1,), TypeError),
    ((1, 1, 1), TypeError),
    (1.0, TypeError),
    ((1, 1.0), TypeError),
    (True, TypeError),
    (None, TypeError),
    (((1, 1), 1), TypeError),           # mixed pairs and ints
])
def test_init_wrong_padding(value, error):
    message = f"padding must be a non-negative integer or a tuple of 2 such integers, not {value!r}"
    with pytest.raises(error, match=exactly(message)):
        ConvSpec(2, 1, 1, 3, padding=value)


@pytest.mark.parametrize("value", [((-1, 0), (0, 0)), ((0, 0), (0, -3))])
def test_init_wrong_padding_negative_pair(value):
    message = f"padding must be a non-negative integer in every position, not {value!r}"
    with pytest.raises(ValueError, match=exactly(message)):
        ConvSpec(2, 1, 1, 3, padding=value)


@pytest.mark.parametrize("value", [((1, 2, 3), (0, 0)), ((1,), (0, 0)), ((1, 1.5), (0, 0)),
                                   ((1, True), (0, 0)), (("1", 0), (0, 0))])
def test_init_wrong_padding_pair(value):
    message = f"padding pairs must be (low, high) integer pairs, not {value!r}"
    with pytest.raises(TypeError, match=exactly(message)):
        ConvSpec(2, 1, 1, 3, padding=value)


@pytest.mark.parametrize("value", ["full", "SAME", "Valid", ""])
def test_init_wrong_padding_string(value):
    message = (f"padding must be 'same', 'valid', a non-negative integer or a tuple of 2 such "
               f"integers, not {value!r}")
    with pytest.raises(ValueError, match=exactly(message)):
        ConvSpec(2, 1, 1, 3, padding=value)


def test_init_wrong_padding_same_stride():
    with pytest.raises(ValueError, match=r"^padding='same' requires stride 1, not stride=2$"):
        ConvSpec(1, 1, 1, 3, padding="same", stride=2)
    with pytest.raises(ValueError, match=r"^padding='same' requires stride 1, "
                                         r"not stride=\(1, 2\)$"):
        ConvSpec(2, 1, 1, 3, padding="same", stride=(1, 2))


@pytest.mark.parametrize("padding", ["same", "valid", "full"])
def test_init_wrong_padding_transposed_string(padding):
    message = (f"padding must be a non-negative integer or a tuple of 2 such integers for "
               f"ConvTranspose2d, not {padding!r}")
    with pytest.raises(ValueError, match=exactly(message)):
        ConvSpec(2, 1, 1, 3, padding=padding, transposed=True)


@pytest.mark.parametrize("mode", ["zero", "Zeros", "reflection", "", None, 0])
def test_init_wrong_padding_mode(mode):
    message = (f"padding_mode must be one of 'zeros', 'circular', 'reflect', 'replicate', "
               f"not {mode!r}")
    with pytest.raises(ValueError, match=exactly(message)):
        ConvSpec(1, 1, 1, 3, padding_mode=mode)


def test_padding_modes():
    assert PADDING_MODES == ("zeros", "circular", "reflect", "replicate")


@pytest.mark.parametrize("mode", ["circular", "reflect", "replicate"])
def test_init_wrong_padding_mode_transposed(mode):
    message = f"padding_mode must be 'zeros' for ConvTranspose3d, not {mode!r}"
    with pytest.raises(ValueError, match=exactly(message)):
        ConvSpec(3, 1, 1, 3, padding_mode=mode, transposed=True)


@pytest.mark.parametrize("dims, kwargs, bound, given", [
    (1, dict(stride=2, output_padding=2), "2", "2"),
    (1, dict(stride=1, output_padding=1), "1", "1"),
    (1, dict(stride=2, dilation=3, output_padding=3), "3", "3"),
    (2, dict(stride=(2, 1), dilation=(1, 3), output_padding=(1, 3)), "(2, 3)", "(1, 3)"),
    (3, dict(stride=3, output_padding=(0, 3, 0)), "(3, 3, 3)", "(0, 3, 0)"),
])
def test_init_wrong_output_padding_bound(dims, kwargs, bound, given):
    message = (f"output_padding must be smaller than max(stride, dilation) = {bound} in every "
               f"dimension, not {given}")
    with pytest.raises(ValueError, match=exactly(message)):
        ConvSpec(dims, 1, 1, 3, transposed=True, **kwargs)


@pytest.mark.parametrize("value, error", [
    (-1, ValueError), ((1, -1), ValueError), ((1,), TypeError), (1.0, TypeError),
    (True, TypeError),
])
def test_init_wrong_output_padding_type(value, error):
    message = (f"output_padding must be a non-negative integer or a tuple of 2 such integers, "
               f"not {value!r}")
    with pytest.raises(error, match=exactly(message)):
        ConvSpec(2, 1, 1, 3, stride=3, output_padding=value, transposed=True)


@pytest.mark.parametrize("dims, value", [(1, 1), (2, (0, 1)), (2, (1, 1)), (3, 2)])
def test_init_wrong_output_padding_conv(dims, value):
    message = (f"output_padding is only valid for transposed convolutions, not {value!r} for "
               f"Conv{dims}d")
    with pytest.raises(ValueError, match=exactly(message)):
        ConvSpec(dims, 1, 1, 3, stride=3, output_padding=value)


def test_init_output_padding_checked_eagerly():
    # A deliberate difference from torch (see tests/test_torch_conformance.py): torch checks
    # output_padding only in forward, and not at all when forward is given output_size;
    # ConvSpec refuses the layer when it is built.
    with pytest.raises(ValueError, match=r"^output_padding must be smaller than max"):
        ConvSpec(1, 1, 1, 3, stride=2, output_padding=5, transposed=True)


# -- shapes ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dims, kwargs, input_size, expected", [
    # conv: o = (i + pl + ph - (d * (k - 1) + 1)) // s + 1
    (1, dict(kernel_size=3), (7,), (5,)),                               # (7 - 3) // 1 + 1
    (1, dict(kernel_size=3, stride=2, padding=1), (7,), (4,)),          # (7 + 2 - 3) // 2 + 1
    (1, dict(kernel_size=3, stride=2), (8,), (3,)),                     # (8 - 3) // 2 + 1
    (1, dict(kernel_size=3, stride=3, dilation=2, padding=2), (10,), (4,)),  # (10+4-5)//3 + 1
    (1, dict(kernel_size=4, padding=((1, 2),)), (5,), (5,)),            # (5 + 3 - 4) // 1 + 1
    (1, dict(kernel_size=2, padding=((0, 3),), stride=2), (4,), (3,)),  # (4 + 3 - 2) // 2 + 1
    (1, dict(kernel_size=1), (1,), (1,)),
    (1, dict(kernel_size=5, dilation=2), (9,), (1,)),                   # (9 - 9) // 1 + 1
    (1, dict(kernel_size=4, padding="same", dilation=3), (2,), (2,)),   # total 9: (2+9-10)+1
    (2, dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0), dilation=(1, 2)), (5, 6),
     (3, 4)),                                  # H: (5 + 2 - 3) // 2 + 1; W: (6 - 3) // 1 + 1
    (2, dict(kernel_size=(4, 2), padding="same"), (3, 1), (3, 1)),
    (2, dict(kernel_size=3, padding=((0, 1), (2, 0))), (4, 4), (3, 4)),  # 4+1-3+1, 4+2-3+1
    (3, dict(kernel_size=1), (4, 4, 4), (4, 4, 4)),
    (3, dict(kernel_size=(2, 3, 1), stride=(1, 2, 3)), (4, 4, 4), (3, 1, 2)),
    # (4-2)//1+1, (4-3)//2+1, (4-1)//3+1
    (1, dict(kernel_size=3, padding=2, padding_mode="reflect"), (3,), (5,)),  # 3 + 4 - 3 + 1
    (1, dict(kernel_size=3, padding=3, padding_mode="circular"), (3,), (7,)),  # 3 + 6 - 3 + 1
    (1, dict(kernel_size=3, padding=9, padding_mode="replicate"), (1,), (17,)),  # 1+18-3+1
])
def test_output_size(dims, kwargs, input_size, expected):
    assert ConvSpec(dims, 1, 1, **kwargs).output_size(input_size) == expected


@pytest.mark.parametrize("dims, kwargs, input_size, expected", [
    # transposed: o = (i - 1) * s - pl - ph + d * (k - 1) + 1 + op
    (1, dict(kernel_size=3, stride=2), (3,), (7,)),                     # 4 + 2 + 1
    (1, dict(kernel_size=3, stride=2, output_padding=1), (3,), (8,)),   # 4 + 2 + 1 + 1
    (1, dict(kernel_size=3, stride=2, padding=1), (3,), (5,)),          # 4 - 2 + 2 + 1
    (1, dict(kernel_size=2, stride=3, dilation=2, padding=1, output_padding=2), (4,), (12,)),
    #                                                                     9 - 2 + 2 + 1 + 2
    (1, dict(kernel_size=3, stride=2, padding=((0, 1),)), (3,), (6,)),  # 4 - 1 + 2 + 1
    (1, dict(kernel_size=1), (1,), (1,)),                               # 0 + 0 + 1
    (1, dict(kernel_size=3, padding=1), (1,), (1,)),                    # 0 - 2 + 2 + 1
    (1, dict(kernel_size=2, stride=2, padding=1, output_padding=1), (1,), (1,)),  # 0-2+1+1+1
    (2, dict(kernel_size=(3, 1), stride=(1, 2), padding=(1, 0), output_padding=(0, 1)),
     (2, 3), (2, 6)),                          # H: 1 - 2 + 2 + 1; W: 4 + 0 + 1 + 1
    (3, dict(kernel_size=2, stride=2), (1, 2, 3), (2, 4, 6)),           # 2i
])
def test_output_size_transposed(dims, kwargs, input_size, expected):
    spec = ConvSpec(dims, 1, 1, transposed=True, **kwargs)
    assert spec.output_size(input_size) == expected


def test_output_shape():
    spec = ConvSpec(2, 3, 8, 3, padding=1, stride=(1, 2))
    # H: (5 + 2 - 3) // 1 + 1 = 5; W: (6 + 2 - 3) // 2 + 1 = 3
    assert spec.output_shape((2, 3, 5, 6)) == (2, 8, 5, 3)
    assert spec.output_shape((3, 5, 6)) == (8, 5, 3)
    assert spec.output_shape((0, 3, 5, 6)) == (0, 8, 5, 3)     # torch allows an empty batch
    assert spec.output_shape([2, 3, 5, 6]) == (2, 8, 5, 3)


def test_output_shape_transposed():
    spec = ConvSpec(1, 4, 6, 3, stride=2, groups=2, transposed=True)
    assert spec.output_shape((5, 4, 3)) == (5, 6, 7)            # (3 - 1) * 2 + 2 + 1
    assert spec.output_shape((4, 3)) == (6, 7)


def test_check_input_shape():
    spec = ConvSpec(3, 2, 2, 1)
    assert spec.check_input_shape((1, 2, 3, 4, 5)) is True
    assert spec.check_input_shape((2, 3, 4, 5)) is False


@pytest.mark.parametrize("shape", [(5, 6), (3,), (), (1, 1, 3, 5, 6)])
def test_check_input_shape_wrong_rank(shape):
    spec = ConvSpec(2, 3, 8, 3, padding=1)
    message = f"input must be 3-D (unbatched) or 4-D (batched) for Conv2d, not of shape {shape!r}"
    with pytest.raises(ValueError, match=exactly(message)):
        spec.check_input_shape(shape)
    with pytest.raises(ValueError, match=exactly(message)):
        spec.output_shape(shape)


@pytest.mark.parametrize("shape, channels", [((1, 4, 5, 6), 4), ((2, 5, 6), 2),
                                             ((3, 3, 5, 6), 3)])
def test_check_input_shape_wrong_channels(shape, channels):
    spec = ConvSpec(2, 6, 6, 3, groups=3, transposed=True)
    message = (f"input must have 6 channels for this ConvTranspose2d, not {channels} "
               f"(input shape {shape!r})")
    with pytest.raises(ValueError, match=exactly(message)):
        spec.check_input_shape(shape)


def test_output_size_wrong_length():
    spec = ConvSpec(2, 1, 1, 1)
    with pytest.raises(ValueError, match=r"^input size must have 2 spatial dimensions, "
                                         r"not \(5,\)$"):
        spec.output_size((5,))
    with pytest.raises(ValueError, match=r"^input size must have 2 spatial dimensions, "
                                         r"not \(5, 5, 5\)$"):
        spec.output_size([5, 5, 5])


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("padding", [0, 1])
def test_output_size_zero(transposed, padding):
    spec = ConvSpec(2, 1, 1, 1, padding=padding, transposed=transposed)
    message = "input spatial size must be at least 1 in every dimension, not (3, 0)"
    with pytest.raises(ValueError, match=exactly(message)):
        spec.output_size((3, 0))
    with pytest.raises(ValueError, match=exactly(message)):
        spec.check_input_shape((1, 1, 3, 0))


def test_output_size_reflect():
    spec = ConvSpec(1, 1, 1, 3, padding=3, padding_mode="reflect")
    assert spec.output_size((4,)) == (8,)                       # 4 + 6 - 3 + 1
    message = ("padding (3, 3) in spatial dimension 0 must be smaller than the input size 3 "
               "for padding_mode='reflect'")
    with pytest.raises(ValueError, match=exactly(message)):
        spec.output_size((3,))
    with pytest.raises(ValueError, match=exactly(message)):
        spec.check_input_shape((2, 1, 3))


def test_output_size_reflect_asymmetric():
    # 'same' with k=4 pads (1, 2): the high side needs an input of at least 3.
    spec = ConvSpec(2, 1, 1, (1, 4), padding="same", padding_mode="reflect")
    assert spec.output_size((1, 3)) == (1, 3)
    message = ("padding (1, 2) in spatial dimension 1 must be smaller than the input size 2 "
               "for padding_mode='reflect'")
    with pytest.raises(ValueError, match=exactly(message)):
        spec.output_size((1, 2))
    # padding (1, 0) on a height of 1: dimension 0 fails although dimension 1 is fine.
    spec = ConvSpec(2, 1, 1, 1, padding=(1, 0), padding_mode="reflect")
    message = ("padding (1, 1) in spatial dimension 0 must be smaller than the input size 1 "
               "for padding_mode='reflect'")
    with pytest.raises(ValueError, match=exactly(message)):
        spec.output_size((1, 3))


def test_output_size_circular():
    spec = ConvSpec(3, 1, 1, 1, padding=(0, 0, 3), padding_mode="circular")
    assert spec.output_size((1, 1, 3)) == (1, 1, 9)            # wraps around exactly once
    message = ("padding (3, 3) in spatial dimension 2 must be at most the input size 2 for "
               "padding_mode='circular'")
    with pytest.raises(ValueError, match=exactly(message)):
        spec.output_size((1, 1, 2))


def test_output_size_replicate():
    spec = ConvSpec(2, 1, 1, 1, padding=(5, 7), padding_mode="replicate")
    assert spec.output_size((1, 1)) == (11, 15)


@pytest.mark.parametrize("mode", ["zeros", "reflect", "circular", "replicate"])
def test_output_size_kernel_too_large(mode):
    spec = ConvSpec(1, 1, 1, 5, padding_mode=mode)
    message = ("padded input size 3 in spatial dimension 0 must be at least the dilated kernel "
               "size 5 (input size (3,))")
    with pytest.raises(ValueError, match=exactly(message)):
        spec.output_size((3,))


def test_output_size_kernel_too_large_dilated():
    # extent = 2 * (3 - 1) + 1 = 5 in dimension 1; padded 3 + 1 = 4 < 5
    spec = ConvSpec(2, 1, 1, 3, dilation=(1, 2), padding=((0, 0), (1, 0)))
    assert spec.output_size((3, 4)) == (1, 1)                   # padded 5: (5 - 5) + 1
    message = ("padded input size 4 in spatial dimension 1 must be at least the dilated kernel "
               "size 5 (input size (3, 3))")
    with pytest.raises(ValueError, match=exactly(message)):
        spec.output_size((3, 3))


def test_output_size_transposed_too_small():
    # k=1, padding 1 on length 2: (2 - 1) * 1 - 2 + 0 + 1 = 0
    spec = ConvSpec(1, 1, 1, 1, padding=1, transposed=True)
    message = ("input size (2,) is too small for ConvTranspose1d with padding 1: the output "
               "would be 0 long in spatial dimension 0; it must be at least 1")
    with pytest.raises(ValueError, match=exactly(message)):
        spec.output_size((2,))
    assert spec.output_size((3,)) == (1,)
    # dimension 1: (1 - 1) * 1 - 4 + 2 + 1 = -1
    spec = ConvSpec(2, 1, 1, 3, padding=(0, 2), transposed=True)
    message = ("input size (1, 1) is too small for ConvTranspose2d with padding (0, 2): the "
               "output would be -1 long in spatial dimension 1; it must be at least 1")
    with pytest.raises(ValueError, match=exactly(message)):
        spec.check_input_shape((1, 1, 1))


# -- with_output_size ------------------------------------------------------------------------

# H: (4 - 1) * 2 - 2 + 2 + 1 = 7, reachable 7..8; W: (5 - 1) * 3 - 2 + 2 + 1 = 13, 13..15
OUTPUT_SIZE_SPEC = ConvSpec(2, 2, 3, 3, stride=(2, 3), padding=1, transposed=True)


def test_with_output_size_none():
    spec = OUTPUT_SIZE_SPEC
    assert spec.with_output_size((1, 2, 4, 5), None) is spec


@pytest.mark.parametrize("input_shape, output_size", [
    ((1, 2, 4, 5), (8, 14)),
    ((1, 2, 4, 5), [8, 14]),
    ((1, 2, 4, 5), (1, 3, 8, 14)),      # batched: batch and channels lead
    ((1, 2, 4, 5), (7, 3, 8, 14)),      # torch does not check the leading sizes either
    ((2, 4, 5), (8, 14)),
    ((2, 4, 5), (3, 8, 14)),            # unbatched: channels lead
])
def test_with_output_size(input_shape, output_size):
    spec = OUTPUT_SIZE_SPEC.with_output_size(input_shape, output_size)
    assert spec.output_padding == (1, 1)
    assert spec == dataclasses.replace(OUTPUT_SIZE_SPEC, output_padding=(1, 1))
    assert spec.output_shape(input_shape)[-2:] == (8, 14)
    assert OUTPUT_SIZE_SPEC.output_padding == (0, 0)


@pytest.mark.parametrize("output_size, output_padding", [
    ((7, 13), (0, 0)), ((8, 13), (1, 0)), ((7, 15), (0, 2)), ((8, 15), (1, 2)),
])
def test_with_output_size_range(output_size, output_padding):
    spec = OUTPUT_SIZE_SPEC.with_output_size((1, 2, 4, 5), output_size)
    assert spec.output_padding == output_padding


def test_with_output_size_ignores_output_padding():
    # torch computes the reachable range without the layer's own output_padding.
    spec = dataclasses.replace(OUTPUT_SIZE_SPEC, output_padding=(1, 2))
    assert spec.with_output_size((2, 4, 5), (7, 13)).output_padding == (0, 0)


def test_with_output_size_dilation():
    # stride 1, dilation 3: only the smallest size (3 - 1) + 3 * 2 + 1 = 9 is reachable, as in
    # torch, although output_padding up to 2 would be accepted directly.
    spec = ConvSpec(1, 1, 1, 3, dilation=3, transposed=True)
    assert spec.with_output_size((1, 3), [9]).output_padding == (0,)
    with pytest.raises(ValueError, match=r"^output_size must lie between 9 and 9 for an input "
                                         r"of spatial size \(3,\), not 10$"):
        spec.with_output_size((1, 3), [10])


def test_with_output_size_smallest_below_one():
    # (1 - 1) * 2 - 2 + 1 + 1 = 0: the output exists only with output_padding 1 (torch agrees).
    spec = ConvSpec(1, 1, 1, 2, stride=2, padding=1, transposed=True)
    resolved = spec.with_output_size((1, 1, 1), [1])
    assert resolved.output_padding == (1,)
    assert resolved.output_shape((1, 1, 1)) == (1, 1, 1)
    with pytest.raises(ValueError, match=r"^input size \(1,\) is too small for ConvTranspose1d"):
        spec.with_output_size((1, 1, 1), [0])


@pytest.mark.parametrize("output_size", [(9, 13), (6, 13), (7, 12), (7, 16), (0, 0)])
def test_with_output_size_wrong_range(output_size):
    message = (f"output_size must lie between (7, 13) and (8, 15) for an input of spatial size "
               f"(4, 5), not {output_size!r}")
    with pytest.raises(ValueError, match=exactly(message)):
        OUTPUT_SIZE_SPEC.with_output_size((1, 2, 4, 5), output_size)


def test_with_output_size_wrong_range_1d():
    spec = ConvSpec(1, 1, 1, 3, stride=3, transposed=True)
    # (3 - 1) * 3 + 2 + 1 = 9, reachable 9..11
    with pytest.raises(ValueError, match=r"^output_size must lie between 9 and 11 for an input "
                                         r"of spatial size \(3,\), not 12$"):
        spec.with_output_size((1, 1, 3), [12])


@pytest.mark.parametrize("input_shape, output_size, message", [
    ((1, 2, 4, 5), (8,), "output_size must have 2 or 4 elements for a 4-D input, not 1"),
    ((1, 2, 4, 5), (2, 8, 14), "output_size must have 2 or 4 elements for a 4-D input, not 3"),
    ((2, 4, 5), (1, 3, 8, 14), "output_size must have 2 or 3 elements for a 3-D input, not 4"),
    ((2, 4, 5), (), "output_size must have 2 or 3 elements for a 3-D input, not 0"),
])
def test_with_output_size_wrong_length(input_shape, output_size, message):
    with pytest.raises(ValueError, match=exactly(message)):
        OUTPUT_SIZE_SPEC.with_output_size(input_shape, output_size)


@pytest.mark.parametrize("output_size", ["8", 8, (8.0, 14), (8, None), (True, 14)])
def test_with_output_size_wrong_type(output_size):
    message = f"output_size must be a sequence of integers, not {output_size!r}"
    with pytest.raises(TypeError, match=exactly(message)):
        OUTPUT_SIZE_SPEC.with_output_size((1, 2, 4, 5), output_size)


def test_with_output_size_wrong_input():
    with pytest.raises(ValueError, match=r"^input must have 2 channels for this ConvTranspose2d, "
                                         r"not 3 \(input shape \(1, 3, 4, 5\)\)$"):
        OUTPUT_SIZE_SPEC.with_output_size((1, 3, 4, 5), (8, 14))
    with pytest.raises(ValueError, match=r"^input must be 3-D \(unbatched\) or 4-D \(batched\) "):
        OUTPUT_SIZE_SPEC.with_output_size((4, 5), (8, 14))


def test_with_output_size_conv():
    with pytest.raises(ValueError, match=r"^output_size is only valid for transposed "
                                         r"convolutions, not for Conv2d$"):
        ConvSpec(2, 2, 3, 3).with_output_size((1, 2, 4, 5), (2, 3))
    spec = ConvSpec(2, 2, 3, 3)
    assert spec.with_output_size((1, 2, 4, 5), None) is spec


# -- weights ---------------------------------------------------------------------------------


def test_from_weight_shape():
    spec = ConvSpec.from_weight_shape((8, 2, 3, 5), dims=2, transposed=False, groups=2)
    assert spec == ConvSpec(2, 4, 8, (3, 5), groups=2, bias=False)
    assert spec.weight_shape == (8, 2, 3, 5)


def test_from_weight_shape_transposed():
    spec = ConvSpec.from_weight_shape((4, 3, 3), dims=1, transposed=True, groups=2)
    assert spec == ConvSpec(1, 4, 6, 3, groups=2, bias=False, transposed=True)
    assert spec.weight_shape == (4, 3, 3)


def test_from_weight_shape_arguments():
    spec = ConvSpec.from_weight_shape(
        (2, 1, 3, 3, 3), dims=3, transposed=True, stride=2, padding=1, dilation=(1, 2, 1),
        bias=True, output_padding=(1, 0, 1))
    assert spec == ConvSpec(3, 2, 1, 3, stride=2, padding=1, dilation=(1, 2, 1), bias=True,
                            output_padding=(1, 0, 1), transposed=True)
    spec = ConvSpec.from_weight_shape((1, 1, 4), dims=1, transposed=False, padding="same",
                                      padding_mode="circular")
    assert spec.padding == ((1, 2),) and spec.padding_mode == "circular"


@pytest.mark.parametrize("shape, dims, transposed, message", [
    ((8, 2, 3), 2, False, "weight must be 4-D for conv2d, not of shape (8, 2, 3)"),
    ((4, 3, 3, 3), 1, True, "weight must be 3-D for conv_transpose1d, not of shape (4, 3, 3, 3)"),
    ((), 3, False, "weight must be 5-D for conv3d, not of shape ()"),
])
def test_from_weight_shape_wrong_rank(shape, dims, transposed, message):
    with pytest.raises(ValueError, match=exactly(message)):
        ConvSpec.from_weight_shape(shape, dims=dims, transposed=transposed)


def test_from_weight_shape_wrong_groups():
    # conv: weight.shape[0] is out_channels; transposed: weight.shape[0] is in_channels.
    with pytest.raises(ValueError, match=r"^out_channels must be divisible by groups \(2\), "
                                         r"not 3$"):
        ConvSpec.from_weight_shape((3, 2, 2), dims=1, transposed=False, groups=2)
    with pytest.raises(ValueError, match=r"^in_channels must be divisible by groups \(2\), "
                                         r"not 3$"):
        ConvSpec.from_weight_shape((3, 1, 2), dims=1, transposed=True, groups=2)


def test_check_weight():
    spec = ConvSpec(2, 4, 6, (3, 5), groups=2)
    weight = np.zeros((6, 2, 3, 5), np.int8)
    assert spec.check_weight(weight) is weight
    assert spec.check_weight(np.zeros((6, 2, 3, 5), np.float32)).dtype == np.float32
    converted = spec.check_weight(np.zeros((6, 2, 3, 5)).tolist())
    assert isinstance(converted, np.ndarray) and converted.shape == (6, 2, 3, 5)


@pytest.mark.parametrize("shape", [(6, 4, 3, 5), (6, 2, 5, 3), (2, 6, 3, 5), (6, 2, 3), ()])
def test_check_weight_wrong_shape(shape):
    spec = ConvSpec(2, 4, 6, (3, 5), groups=2)
    message = f"weight must have shape (6, 2, 3, 5) for this Conv2d, not {shape!r}"
    with pytest.raises(ValueError, match=exactly(message)):
        spec.check_weight(np.zeros(shape))
    message = f"w must have shape (6, 2, 3, 5) for this Conv2d, not {shape!r}"
    with pytest.raises(ValueError, match=exactly(message)):
        spec.check_weight(np.zeros(shape), name="w")


WRONG_DTYPES = [
    (np.ones((2, 1, 3), bool), "bool"),
    (np.ones((2, 1, 3), np.complex128), "complex128"),
    (np.ones((2, 1, 3), np.complex64), "complex64"),
    (np.empty((2, 1, 3), object), "object"),
    (np.full((2, 1, 3), "a"), "<U1"),
    (np.zeros((2, 1, 3), "datetime64[s]"), "datetime64[s]"),
]


@pytest.mark.parametrize("weight, dtype", WRONG_DTYPES)
def test_check_weight_wrong_dtype(weight, dtype):
    spec = ConvSpec(1, 1, 2, 3, transposed=False)
    message = (f"weight must be an array of integers or real floating-point numbers, not an "
               f"array of dtype {dtype}")
    with pytest.raises(TypeError, match=exactly(message)):
        spec.check_weight(weight)


def test_check_weight_wrong_dtype_list():
    spec = ConvSpec(1, 1, 1, 1)
    with pytest.raises(TypeError, match=r"dtype bool$"):
        spec.check_weight([[[True]]])
    with pytest.raises(TypeError, match=r"dtype object$"):
        spec.check_weight([[[None]]])


def test_check_bias():
    spec = ConvSpec(2, 4, 6, 3, transposed=True)
    assert spec.check_bias(None) is None
    bias = np.arange(6, dtype=np.uint16)
    assert spec.check_bias(bias) is bias
    assert spec.check_bias([1.0] * 6).dtype == np.float64


@pytest.mark.parametrize("shape", [(4,), (1, 6), (), (6, 1)])
def test_check_bias_wrong_shape(shape):
    spec = ConvSpec(2, 4, 6, 3, transposed=True)
    message = f"bias must have shape (6,) for this ConvTranspose2d, not {shape!r}"
    with pytest.raises(ValueError, match=exactly(message)):
        spec.check_bias(np.zeros(shape))


@pytest.mark.parametrize("weight, dtype", WRONG_DTYPES)
def test_check_bias_wrong_dtype(weight, dtype):
    spec = ConvSpec(1, 1, 3, 1)
    message = (f"b must be an array of integers or real floating-point numbers, not an array of "
               f"dtype {dtype}")
    with pytest.raises(TypeError, match=exactly(message)):
        spec.check_bias(weight[0, 0], name="b")


def test_check_input():
    spec = ConvSpec(1, 2, 1, 1)
    x, batched = spec.check_input(np.zeros((2, 3), np.int16))
    assert batched is False and x.shape == (1, 2, 3) and x.dtype == np.int16
    x, batched = spec.check_input(np.zeros((4, 2, 3)))
    assert batched is True and x.shape == (4, 2, 3)
    with pytest.raises(TypeError, match=r"^x must be an array of integers or real "
                                        r"floating-point numbers, not an array of dtype bool$"):
        spec.check_input(np.zeros((2, 3), bool), name="x")
    with pytest.raises(ValueError, match=r"^input must have 2 channels for this Conv1d, not 3 "):
        spec.check_input(np.zeros((3, 3)))


# -- useful MACs -----------------------------------------------------------------------------


@pytest.mark.parametrize("mode, expected", [
    # k=3, padding 1, length 4, stride 1: outputs 0..3 read x[o-1], x[o], x[o+1].
    ("zeros", 10),       # outputs 0 and 3 have one padding tap each: 2 + 3 + 3 + 2
    ("reflect", 12),     # padding taps read real data: 4 * 3
    ("circular", 12),
    ("replicate", 12),
])
def test_useful_macs_1d(mode, expected):
    spec = ConvSpec(1, 1, 1, 3, padding=1, padding_mode=mode)
    assert spec.useful_macs((1, 1, 4)) == expected
    assert spec.useful_macs((1, 4)) == expected


def test_useful_macs_channels():
    # The 1-D zeros case above, times batch 2, out_channels 6, in_channels / groups = 2.
    spec = ConvSpec(1, 4, 6, 3, padding=1, groups=2)
    assert spec.useful_macs((2, 4, 4)) == 2 * 6 * 2 * 10
    assert spec.useful_macs((4, 4)) == 6 * 2 * 10
    assert spec.useful_macs((0, 4, 4)) == 0


def test_useful_macs_2d():
    # k=3, padding 1 on 2x2: per dimension, outputs 0 and 1 each have 2 real taps -> 4;
    # the taps of a 2-D output are pairs, so 4 * 4.
    assert ConvSpec(2, 1, 1, 3, padding=1).useful_macs((1, 2, 2)) == 16
    # stride 2, dilation 2, k=2 on 5: o = (5 - 3) // 2 + 1 = 2, every tap is real.
    assert ConvSpec(1, 1, 1, 2, stride=2, dilation=2).useful_macs((1, 5)) == 4


@pytest.mark.parametrize("padding, output_padding, expected", [
    # k=3, stride 2, input 2: input i lands at 2i - padding + t for taps t = 0, 1, 2.
    (0, 0, 6),          # o = 5: positions 0 1 2 and 2 3 4, all kept; inserted zeros not counted
    (1, 0, 4),          # o = 3: -1 0 1 and 1 2 3 -> 2 + 2 kept
    (1, 1, 5),          # o = 4: -1 0 1 and 1 2 3 -> 2 + 3 kept
    (0, 1, 6),          # o = 6: the extra position receives no tap
])
def test_useful_macs_transposed(padding, output_padding, expected):
    spec = ConvSpec(1, 1, 1, 3, stride=2, padding=padding, output_padding=output_padding,
                    transposed=True)
    assert spec.useful_macs((1, 1, 2)) == expected
    # The upper bound counts every tap of every output, inserted zeros included.
    assert spec.macs_per_output * spec.output_size((2,))[0] > expected


def test_useful_macs_wrong_input():
    spec = ConvSpec(1, 2, 1, 3)
    with pytest.raises(ValueError, match=r"^input must have 2 channels for this Conv1d"):
        spec.useful_macs((1, 1, 4))
    with pytest.raises(ValueError, match=r"^padded input size 2 in spatial dimension 0"):
        spec.useful_macs((2, 2))


def brute_force_useful_macs(spec, input_shape):
    """Count the (output element, input channel, tap) triples that read a real input element,
    one spatial position at a time (torch's definitions, independently of ConvSpec)."""
    dims = spec.dims
    batch = input_shape[0] if len(input_shape) == dims + 2 else 1
    size = input_shape[-dims:]
    low = [lo for lo, _ in spec.padding]
    high = [hi for _, hi in spec.padding]
    k, s, d = spec.kernel_size, spec.stride, spec.dilation
    taps = list(itertools.product(*(range(v) for v in k)))
    pairs = 0
    if spec.transposed:
        # Scatter form: input position p through tap t lands at p*s - low + t*d; count those
        # that land inside the output. Any other (output, tap) pair reads an inserted zero.
        out = [(size[a] - 1) * s[a] - low[a] - high[a] + d[a] * (k[a] - 1) + 1
               + spec.output_padding[a] for a in range(dims)]
        for p in itertools.product(*(range(v) for v in size)):
            for t in taps:
                if all(0 <= p[a] * s[a] - low[a] + t[a] * d[a] < out[a] for a in range(dims)):
                    pairs += 1
    else:
        # Gather form: each padded axis as a list of source indices (None: a zero).
        def padded_axis(n, lo, hi):
            axis = []
            for q in range(-lo, n + hi):
                if 0 <= q < n:
                    axis.append(q)
                elif spec.padding_mode == "zeros":
                    axis.append(None)
                elif spec.padding_mode == "circular":
                    axis.append(q % n)
                elif spec.padding_mode == "replicate":
                    axis.append(min(max(q, 0), n - 1))
                else:                                   # reflect, edge excluded
                    axis.append(-q if q < 0 else 2 * (n - 1) - q)
                    assert 0 <= axis[-1] < n, "reflect padding reached past the input"
            return axis
        axes = [padded_axis(size[a], low[a], high[a]) for a in range(dims)]
        out = [(len(axes[a]) - d[a] * (k[a] - 1) - 1) // s[a] + 1 for a in range(dims)]
        for o in itertools.product(*(range(v) for v in out)):
            for t in taps:
                if all(axes[a][o[a] * s[a] + t[a] * d[a]] is not None for a in range(dims)):
                    pairs += 1
    return batch * spec.out_channels * (spec.in_channels // spec.groups) * pairs


MACS_SEED = 20250101


def small_layer(seed):
    """A random small valid layer (padding pairs, unbatched inputs) and an input shape."""
    return random_layer(np.random.default_rng(seed), max_size=5, asymmetric=True,
                        unbatched=True)


@pytest.mark.parametrize("case", range(40))
def test_useful_macs_brute_force(case):
    seed = MACS_SEED + case
    spec, shape = small_layer(seed)
    note = f"seed {seed}: {spec!r} on input {shape}"
    macs = spec.useful_macs(shape)
    assert macs == brute_force_useful_macs(spec, shape), note
    output_shape = spec.output_shape(shape)
    batch = output_shape[0] if len(shape) == spec.dims + 2 else 1
    bound = batch * spec.out_channels * spec.macs_per_output * math.prod(output_shape[-spec.dims:])
    assert macs <= bound, note
    if not spec.transposed and spec.padding_mode != "zeros":
        assert macs == bound, note


def test_useful_macs_brute_force_coverage():
    # The random layers above reach every kind of layer.
    kinds = set()
    for case in range(40):
        spec, shape = small_layer(MACS_SEED + case)
        kinds.add((spec.transposed, spec.padding_mode))
        kinds.add(spec.dims)
    assert kinds >= {(True, "zeros"), *((False, mode) for mode in PADDING_MODES), 1, 2, 3}


# -- torch -----------------------------------------------------------------------------------


@pytest.mark.torch
@pytest.mark.parametrize("mode", ["reflect", "circular", "replicate"])
def test_torch_negative_padding_mode(mode):
    # What the xfail below expects: torch pads with F.pad for these modes, which crops one
    # element from each side for padding -1: (6 - 2 - 1) // 1 + 1 = 4. 'zeros' refuses.
    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        module = torch.nn.Conv1d(1, 1, 1, padding=-1, padding_mode=mode, dtype=torch.float64)
        assert tuple(module(torch.zeros(1, 1, 6, dtype=torch.float64)).shape) == (1, 1, 4)
        module = torch.nn.Conv1d(1, 1, 1, padding=-1, dtype=torch.float64)
        with pytest.raises(RuntimeError, match=r"negative padding is not supported"):
            module(torch.zeros(1, 1, 6, dtype=torch.float64))


@pytest.mark.parametrize("mode", ["reflect", "circular", "replicate"])
def test_init_negative_padding_mode_refused(mode):
    # Deliberately stricter than torch, whose F.pad crops the input for negative padding in
    # these modes (see the test above): a negative padding is refused in every mode.
    with pytest.raises(ValueError, match=r"^padding must be a non-negative integer or a tuple "
                                         r"of 1 such integers, not -1$"):
        ConvSpec(1, 1, 1, 1, padding=-1, padding_mode=mode)


def _as_tuple(value, dims):
    return value if isinstance(value, tuple) else (value,) * dims


def _crops(kwargs):
    """Whether torch would crop: its non-'zeros' modes pad with F.pad, which crops where the
    padding is negative."""
    padding = kwargs["padding"]
    return (kwargs["padding_mode"] != "zeros" and not isinstance(padding, str)
            and min(_as_tuple(padding, 1)) < 0)


def _rarely(draw, good, bad):
    """A value from ``good``, or one time in twenty from ``bad`` (what torch refuses)."""
    return draw(bad) if draw(st.sampled_from([False] * 19 + [True])) else draw(good)


def _int_or_tuple(draw, dims, good, bad):
    if draw(st.booleans()):
        return _rarely(draw, good, bad)
    return tuple(_rarely(draw, good, bad) for _ in range(dims))


@st.composite
def torch_layers(draw):
    """torch-style arguments of any of the six layers and an input shape; now and then an
    argument or the input is one torch refuses."""
    dims = draw(st.integers(1, 3))
    transposed = draw(st.booleans())
    groups = _rarely(draw, st.sampled_from([1, 1, 2, 3]), st.sampled_from([0, -1]))
    g = max(groups, 1)
    if draw(st.integers(0, 9)) == 0:        # channels that may not split into groups
        in_channels, out_channels = draw(st.integers(1, 6)), draw(st.integers(1, 6))
    else:
        in_channels, out_channels = g * draw(st.integers(1, 2)), g * draw(st.integers(1, 2))
    top = 3 if dims == 3 else 4
    kernel = _int_or_tuple(draw, dims, st.integers(1, top), st.sampled_from([0, -1]))
    stride = _int_or_tuple(draw, dims, st.integers(1, 3), st.sampled_from([0, -1]))
    dilation = _int_or_tuple(draw, dims, st.integers(1, 2), st.just(0))
    strings = st.sampled_from(["same", "valid"])
    padding = _int_or_tuple(draw, dims, st.integers(0, 3), st.just(-1))
    if draw(st.integers(0, 19 if transposed else 1)) == 0:
        padding = draw(strings)
        if padding == "same" and draw(st.integers(0, 3)):
            stride = 1
    if transposed:
        padding_mode = _rarely(draw, st.just("zeros"), st.sampled_from(PADDING_MODES[1:]))
    else:
        padding_mode = draw(st.sampled_from(PADDING_MODES))
    kwargs = dict(in_channels=in_channels, out_channels=out_channels, kernel_size=kernel,
                  stride=stride, padding=padding, dilation=dilation, groups=groups,
                  bias=draw(st.booleans()), padding_mode=padding_mode)
    if transposed:
        bounds = [max(s, d, 1) for s, d in zip(_as_tuple(stride, dims),
                                               _as_tuple(dilation, dims), strict=True)]
        kwargs["output_padding"] = tuple(
            _rarely(draw, st.integers(0, b - 1), st.sampled_from([b, -1])) for b in bounds)
    size = tuple(_rarely(draw, st.integers(1, top + 2), st.just(0)) for _ in range(dims))
    channels = _rarely(draw, st.just(in_channels), st.just(in_channels + 1))
    batch = draw(st.sampled_from([(), (1,), (2,), (0,)]))
    return dims, transposed, kwargs, (*batch, channels, *size)


def torch_output_shape(torch, dims, transposed, kwargs, shape, output_size=None):
    """The shape of torch's output, or the exception torch raised."""
    name = f"{'ConvTranspose' if transposed else 'Conv'}{dims}d"
    extra = {} if output_size is None else {"output_size": list(output_size)}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = getattr(torch.nn, name)(**kwargs, dtype=torch.float64)
            with torch.no_grad():
                return tuple(module(torch.zeros(shape, dtype=torch.float64), **extra).shape)
    except Exception as error:
        return error


@pytest.mark.torch
@settings(max_examples=200, deadline=None)
@given(torch_layers())
def test_output_size_matches_torch(layer):
    torch = pytest.importorskip("torch")
    dims, transposed, kwargs, shape = layer
    expected = torch_output_shape(torch, dims, transposed, kwargs, shape)
    try:
        spec = ConvSpec(dims, transposed=transposed, **kwargs)
        got = spec.output_shape(shape)
    except (ValueError, TypeError) as error:
        if len(shape) == dims + 2 and shape[0] == 0:
            # torch skips most checks for an empty batch (a too-small transposed output,
            # output_padding, dilation 0, an empty padded input...); ConvSpec does not.
            return
        if _crops(kwargs):
            return      # deliberately refused: test_init_negative_padding_mode_refused
        assert isinstance(expected, Exception), \
            f"ConvSpec raised {error!r}; torch computed shape {expected}"
        return
    assert not isinstance(expected, Exception), \
        f"torch raised {expected!r}; ConvSpec computed shape {got}"
    assert got == expected
    assert spec.output_size(shape[-dims:]) == expected[-dims:]


@st.composite
def torch_output_sizes(draw):
    """A valid transposed layer, an input and an output_size around torch's reachable range."""
    dims = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 2]))
    ints = lambda lo, hi: st.tuples(*[st.integers(lo, hi)] * dims)  # noqa: E731
    kernel, stride, dilation = draw(ints(1, 3)), draw(ints(1, 3)), draw(ints(1, 3))
    output_padding = tuple(draw(st.integers(0, max(s, d) - 1))
                           for s, d in zip(stride, dilation, strict=True))
    # Mostly outputs of length >= 1; now and then one that exists only with output_padding.
    padding = tuple(_rarely(draw, st.integers(0, 1), st.just(2)) for _ in range(dims))
    size = tuple(_rarely(draw, st.integers(2, 4), st.just(1)) for _ in range(dims))
    batch = draw(st.sampled_from([(), (2,)]))
    shape = (*batch, groups, *size)
    smallest = [(i - 1) * s - 2 * p + d * (k - 1) + 1
                for i, s, p, d, k in zip(size, stride, padding, dilation, kernel, strict=True)]
    output_size = [_rarely(draw, st.integers(m, m + s - 1), st.sampled_from([m - 1, m + s]))
                   for m, s in zip(smallest, stride, strict=True)]
    if draw(st.booleans()):
        output_size = [*shape[:-dims], *output_size]
    elif draw(st.integers(0, 9)) == 0:
        output_size = [1, *output_size]     # a wrong number of leading sizes
    kwargs = dict(in_channels=groups, out_channels=groups * draw(st.integers(1, 2)),
                  kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
                  groups=groups, bias=False, output_padding=output_padding)
    return dims, kwargs, shape, output_size


@pytest.mark.torch
@settings(max_examples=200, deadline=None)
@given(torch_output_sizes())
def test_with_output_size_matches_torch(layer):
    torch = pytest.importorskip("torch")
    dims, kwargs, shape, output_size = layer
    expected = torch_output_shape(torch, dims, True, kwargs, shape, output_size)
    spec = ConvSpec(dims, transposed=True, **kwargs)
    try:
        got = spec.with_output_size(shape, output_size).output_shape(shape)
    except (ValueError, TypeError) as error:
        assert isinstance(expected, Exception), \
            f"ConvSpec raised {error!r}; torch computed shape {expected}"
        return
    assert not isinstance(expected, Exception), \
        f"torch raised {expected!r}; ConvSpec computed shape {got}"
    assert got == expected
