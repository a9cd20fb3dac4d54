"""torch in, torch out (convhw.tensors): the front ends' rule for torch tensors, and the same
output dtype on every device."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import convhw
from convhw import functional

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.torch


def test_a_torch_input_gives_a_torch_output_of_its_dtype():
    m = convhw.nn.Conv2d(2, 3, 3, padding=1)
    for dtype in (torch.float32, torch.float64):
        x = torch.randint(-4, 4, (1, 2, 5, 5)).to(dtype)
        y = m(x)
        assert isinstance(y, torch.Tensor) and y.dtype == dtype and y.device == x.device
        want = torch.nn.functional.conv2d(x.double(), torch.from_numpy(m.weight),
                                          torch.from_numpy(m.bias), padding=1)
        assert torch.allclose(y.double(), want)
    # integer tensors: torch has no integer convolution; convhw's exact results are int64
    y = functional.conv1d(torch.ones(1, 1, 4, dtype=torch.int32), np.ones((1, 1, 2), int))
    assert y.dtype == torch.int64 and y.tolist() == [[[2, 2, 2]]]


def test_tensors_that_require_grad_are_read_detached():
    x = torch.ones(1, 2, 6, requires_grad=True)
    w = torch.ones(3, 2, 3, requires_grad=True)
    y = functional.conv1d(x, w, torch.zeros(3, requires_grad=True))
    assert not y.requires_grad and y.tolist() == [[[6.0] * 4] * 3]
    m = convhw.nn.ConvTranspose1d(2, 2, 3)
    m.weight = torch.ones(2, 2, 3, requires_grad=True)
    m.bias = torch.zeros(2, requires_grad=True)
    assert isinstance(m.weight, np.ndarray)
    assert m(x).shape == (1, 2, 8)


def test_quantised_tensors_are_sent_to_offload():
    with warnings.catch_warnings():          # (torch's deprecation of its quantised factory)
        warnings.simplefilter("ignore", UserWarning)
        q = torch.quantize_per_tensor(torch.ones(1, 1, 4), 0.1, 0, torch.quint8)
    with pytest.raises(TypeError, match=r"input is a quantised torch tensor: run quantised "
                                        r"models with convhw.offload"):
        functional.conv1d(q, np.ones((1, 1, 2)))


def test_the_output_dtype_is_the_same_on_every_device():
    device = convhw.Device("amaranth", convhw.EngineConfig.preset("small"))
    rng = np.random.default_rng(5)
    x_int = rng.integers(-8, 8, (1, 2, 7))
    w_int = rng.integers(-8, 8, (2, 2, 3))
    for x, w in ((x_int, w_int), (x_int.astype(float), w_int), (x_int, w_int.astype(float))):
        golden = functional.conv1d(x, w)
        hardware = functional.conv1d(x, w, device=device)
        assert golden.dtype == hardware.dtype
        assert np.array_equal(golden, hardware)
    device.close()
