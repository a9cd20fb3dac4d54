"""The torch-shaped front end: constructors, attributes, repr, parameters, devices."""

import inspect
import re

import numpy as np
import pytest

import convhw
from convhw import functional as CF
from convhw import nn

MODULES = [nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
           nn.ConvTranspose3d]


@pytest.mark.parametrize("cls", MODULES)
def test_signature_matches_torch(cls):
    torch = pytest.importorskip("torch")
    ours = inspect.signature(cls)
    theirs = inspect.signature(getattr(torch.nn, cls.__name__))
    assert list(ours.parameters) == list(theirs.parameters)
    for name, parameter in theirs.parameters.items():
        assert ours.parameters[name].default == parameter.default, name


@pytest.mark.parametrize("name", ["conv1d", "conv2d", "conv3d", "conv_transpose1d",
                                  "conv_transpose2d", "conv_transpose3d"])
def test_functional_argument_order_matches_torch(name):
    torch = pytest.importorskip("torch")
    ours = list(inspect.signature(getattr(CF, name)).parameters)
    # torch's functional convs are builtins; their documented order is in the docstring.
    documented = getattr(torch.nn.functional, name).__doc__.split("\n")[1]
    theirs = re.findall(r"(\w+)(?:=[^,)]*)?(?:,|\))", documented.split("(", 1)[1])
    assert len(theirs) >= 7 and ours[:len(theirs)] == theirs


REPR_CASES = [
    (nn.Conv2d, dict(in_channels=2, out_channels=4, kernel_size=3, padding="same", groups=2,
                     bias=False, padding_mode="reflect")),
    (nn.Conv2d, dict(in_channels=2, out_channels=4, kernel_size=3, padding="valid")),
    (nn.Conv2d, dict(in_channels=2, out_channels=4, kernel_size=(3, 1), padding=(1, 2))),
    (nn.Conv1d, dict(in_channels=3, out_channels=6, kernel_size=5, stride=2, dilation=2)),
    (nn.Conv3d, dict(in_channels=4, out_channels=4, kernel_size=3, padding=1, groups=4,
                     padding_mode="circular")),
    (nn.ConvTranspose2d, dict(in_channels=2, out_channels=4, kernel_size=3, padding=1,
                              output_padding=1, stride=2, dilation=2)),
    (nn.ConvTranspose1d, dict(in_channels=4, out_channels=2, kernel_size=4, groups=2,
                              bias=False)),
]


@pytest.mark.parametrize("cls, kwargs", REPR_CASES)
def test_repr_and_attributes_match_torch(cls, kwargs):
    torch = pytest.importorskip("torch")
    ours, theirs = cls(**kwargs), getattr(torch.nn, cls.__name__)(**kwargs)
    assert repr(ours) == repr(theirs)
    for attribute in ("in_channels", "out_channels", "kernel_size", "stride", "padding",
                      "dilation", "output_padding", "groups", "padding_mode", "transposed"):
        assert getattr(ours, attribute) == getattr(theirs, attribute), attribute
    assert ours.weight.shape == tuple(theirs.weight.shape)
    assert (ours.bias is None) == (theirs.bias is None)


@pytest.mark.parametrize("cls", MODULES)
def test_default_init_bounds(cls):
    convhw.manual_seed(1)
    m = cls(6, 4, 3, groups=2)
    fan_in = m.weight.shape[1] * 3 ** int(cls.__name__[-2])
    bound = 1 / np.sqrt(fan_in)
    for p in (m.weight, m.bias):
        assert p.dtype == np.float64 and p.flags.writeable
        assert np.all(np.abs(p) <= bound)
        assert np.abs(p).max() > 0.5 * bound       # spread over the range, not all zero
    m.weight[...] = 1                             # writable in place
    assert np.all(m.weight == 1)


def test_manual_seed_repeats():
    convhw.manual_seed(7)
    a = nn.Conv2d(3, 4, 3).weight.copy()
    convhw.manual_seed(7)
    assert np.array_equal(a, nn.Conv2d(3, 4, 3).weight)


def test_weight_and_bias_assignment():
    m = nn.Conv2d(2, 4, 3)
    with pytest.raises(ValueError, match=r"^weight must have shape \(4, 2, 3, 3\) for this "
                                         r"Conv2d, not \(4, 2, 3\)$"):
        m.weight = np.zeros((4, 2, 3))
    with pytest.raises(TypeError, match=r"^weight must be an array of integers or real "):
        m.weight = np.zeros((4, 2, 3, 3), dtype=bool)
    with pytest.raises(ValueError, match=r"^bias must have shape \(4,\) for this Conv2d, "
                                         r"not \(3,\)$"):
        m.bias = np.zeros(3)
    m.bias = None
    assert m.bias is None and not m.spec.bias and "bias=False" in repr(m)
    m.bias = np.arange(4)
    assert m.spec.bias


def test_forward_unbatched_and_last_run():
    m = nn.Conv2d(3, 5, 3, stride=2, padding=1)
    m.weight = np.ones(m.weight.shape, np.int8)
    m.bias = np.zeros(5, np.int32)
    x = np.ones((3, 8, 8), np.int8)
    y = m(x)
    assert y.shape == (5, 4, 4) and y.dtype == np.int64
    assert y[0, 1, 1] == 27 and y[0, 0, 0] == 12       # interior: 3x3x3 ones; corner: 2x2x3
    run = m.last_run
    assert run.device == "golden" and run.input_shape == (3, 8, 8)
    assert run.output_shape == (5, 4, 4)
    assert run.useful_macs == int(y.sum())             # all-ones: each product is one MAC
    assert run.cycles is None and run.efficiency is None


def test_transposed_output_size():
    m = nn.ConvTranspose2d(2, 2, 3, stride=2, padding=1)
    x = np.zeros((1, 2, 4, 4))
    assert m(x).shape == (1, 2, 7, 7)
    assert m(x, output_size=(8, 8)).shape == (1, 2, 8, 8)
    assert m(x, output_size=[1, 2, 8, 7]).shape == (1, 2, 8, 7)
    with pytest.raises(ValueError, match=r"^output_size must lie between \(7, 7\) and \(8, 8\) "
                                         r"for an input of spatial size \(4, 4\), not \(9, 8\)$"):
        m(x, output_size=(9, 8))


def test_to_device():
    m = nn.Conv1d(1, 1, 1)
    assert m.device == convhw.Device("golden")
    assert m.to("golden") is m
    assert m.to(convhw.Device()) is m
    with pytest.raises(ValueError, match=r"^device name must be one of 'golden', 'amaranth', "
                                         r"'verilator', 'serial', not 'fpga'$"):
        m.to("fpga")
    with pytest.raises(TypeError, match=r"^device must be a convhw.Device, a device name or "
                                        r"None, not 3$"):
        nn.Conv1d(1, 1, 1, device=3)


def test_device_arguments():
    assert repr(convhw.Device()) == "Device('golden')"
    with pytest.raises(TypeError, match=r"^the 'golden' device takes no options port$"):
        convhw.Device("golden", port="/dev/null")
    with pytest.raises(TypeError, match=r"^the 'verilator' device takes no options port; it "
                                        r"takes memory, trace$"):
        convhw.Device("verilator", port="/dev/null")
    with pytest.raises(TypeError, match=r"^memory must be a convhw\.MemoryModel, not 8$"):
        convhw.Device("amaranth", memory=8)
    with pytest.raises(TypeError, match=r"^the 'serial' device needs port=\.\.\."):
        convhw.Device("serial", "small")
    with pytest.raises(TypeError, match=r"^the 'serial' device takes no options trace; it "
                                        r"takes baudrate, port, retries, timeout$"):
        convhw.Device("serial", port="/dev/null", trace="x.vcd")
    with pytest.raises(ValueError, match=r"^the 'golden' device takes no engine config, "):
        convhw.Device("golden", "small")
    assert convhw.Device("amaranth", "small").config == convhw.EngineConfig.preset("small")
    with pytest.raises(ValueError, match=r"^preset must be one of 'small', 'default', 'up5k', "
                                         r"'quantized', 'small-quantized', not 'x'$"):
        convhw.Device("amaranth", "x")


def test_dtype_argument():
    assert nn.Conv1d(1, 1, 1, dtype=np.float32).weight.dtype == np.float32
    with pytest.raises(TypeError, match=r"^dtype must be a floating-point dtype, not int8; "):
        nn.Conv1d(1, 1, 1, dtype=np.int8)


def test_input_errors():
    m = nn.Conv2d(3, 4, 3)
    with pytest.raises(ValueError, match=r"^input must be 3-D \(unbatched\) or 4-D \(batched\) "
                                         r"for Conv2d, not of shape \(3, 8\)$"):
        m(np.zeros((3, 8)))
    with pytest.raises(ValueError, match=r"^input must have 3 channels for this Conv2d, not 2 "):
        m(np.zeros((1, 2, 8, 8)))
    with pytest.raises(TypeError, match=r"^input must be an array of integers or real "
                                        r"floating-point numbers, not an array of dtype "
                                        r"complex128$"):
        m(np.zeros((1, 3, 8, 8), complex))


def test_functional_weight_errors():
    x = np.zeros((1, 4, 5, 5))
    with pytest.raises(ValueError, match=r"^weight must be 4-D for conv2d, not of shape "
                                         r"\(4, 2, 3\)$"):
        CF.conv2d(x, np.zeros((4, 2, 3)))
    with pytest.raises(ValueError, match=r"^out_channels must be divisible by groups \(2\), "
                                         r"not 3$"):
        CF.conv2d(x, np.zeros((3, 2, 3, 3)), groups=2)
    with pytest.raises(ValueError, match=r"^bias must have shape \(4,\) for this Conv2d, "):
        CF.conv2d(x, np.zeros((4, 2, 3, 3)), np.zeros(3), groups=2)


def test_from_torch():
    torch = pytest.importorskip("torch")
    for theirs in (torch.nn.Conv2d(4, 6, 3, stride=2, padding="valid", groups=2,
                                   padding_mode="replicate"),
                   torch.nn.ConvTranspose3d(2, 4, 2, stride=2, output_padding=1, bias=False)):
        ours = nn.from_torch(theirs)
        assert repr(ours) == repr(theirs)
        assert np.array_equal(ours.weight, theirs.weight.detach().double().numpy())
        x = np.random.default_rng(0).standard_normal((1, ours.in_channels, 6, 6, 6)[
            :2 + ours.spec.dims])
        with torch.no_grad():
            expected = theirs.double()(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(ours(x), expected, rtol=1e-12, atol=1e-12)
    with pytest.raises(TypeError, match=r"^module must be a torch.nn Conv1d/2d/3d or "
                                        r"ConvTranspose1d/2d/3d, not Linear$"):
        nn.from_torch(torch.nn.Linear(2, 2))
