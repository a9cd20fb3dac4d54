# amaranth: UnusedElaboratable=no
"""convhw.nn and convhw.functional on Device("verilator"): the generated Verilog, compiled by
Verilator, against torch on random integer layers of all six ops; the same register traffic as
the Amaranth device; cycles equal to the compiler's model.

``VERILATOR_LAYERS`` (default 300) sets the number of random layers.
"""

import os
import warnings

import numpy as np
import pytest

import convhw
from convhw import golden
from convhw.compiler import compile_layer
from convhw.compiler.cycles import job_cycles
from convhw.driver.driver import Driver
from convhw.driver.transport import AmaranthTransport, RecordingTransport
from convhw.spec import ConvSpec

from .jobs import random_layer

LAYERS = int(os.environ.get("VERILATOR_LAYERS", "300"))
SMALL = convhw.EngineConfig.preset("small")


@pytest.fixture(scope="module")
def device():
    device = convhw.Device("verilator", "small")
    yield device
    device.close()


def torch_reference(torch, spec, x, w, b, output_size):
    name = spec.op_name
    kwargs = dict(stride=spec.stride, dilation=spec.dilation, groups=spec.groups,
                  bias=b is not None, dtype=torch.float64)
    if spec.transposed:
        kwargs.update(padding=tuple(lo for lo, _ in spec.padding),
                      output_padding=spec.output_padding)
    else:
        kwargs.update(padding=tuple(lo for lo, _ in spec.padding),
                      padding_mode=spec.padding_mode)
    module = getattr(torch.nn, name)(spec.in_channels, spec.out_channels, spec.kernel_size,
                                     **kwargs)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(w.astype(np.float64)))
        if b is not None:
            module.bias.copy_(torch.from_numpy(b.astype(np.float64)))
        extra = {} if output_size is None else {"output_size": output_size}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return module(torch.from_numpy(x.astype(np.float64)), **extra).numpy()


def test_random_layers_match_torch(device):
    torch = pytest.importorskip("torch")
    seed = int(os.environ.get("SEED", "2026"))
    rng = np.random.default_rng(seed)
    done = 0
    ops = set()
    while done < LAYERS:
        spec, shape = random_layer(rng, max_size=8)
        if any(lo != hi for lo, hi in spec.padding):
            continue                      # torch modules take symmetric padding only
        try:
            SMALL.check_layer(spec)
        except ValueError:
            continue
        x = rng.integers(-128, 128, shape)
        w = rng.integers(-128, 128, spec.weight_shape)
        b = rng.integers(-1000, 1000, spec.out_channels) if spec.bias else None
        cls = getattr(convhw.nn, spec.op_name)
        kwargs = dict(stride=spec.stride, padding=tuple(lo for lo, _ in spec.padding),
                      dilation=spec.dilation, groups=spec.groups, bias=spec.bias)
        if spec.transposed:
            kwargs["output_padding"] = spec.output_padding
        else:
            kwargs["padding_mode"] = spec.padding_mode
        module = cls(spec.in_channels, spec.out_channels, spec.kernel_size, device=device,
                     **kwargs)
        module.weight = w
        if b is not None:
            module.bias = b
        got = module(x)
        expected = torch_reference(torch, spec, x, w, b, None)
        mismatch = np.argwhere(got != expected)
        assert got.shape == expected.shape and not mismatch.size, \
            f"seed {seed}, layer {done}: {spec} on {shape}: first mismatch at " \
            f"{tuple(mismatch[0]) if mismatch.size else 'shape'}"
        steps = compile_layer(spec, shape, SMALL)
        assert module.last_run.cycles == sum(job_cycles(s.job) for s in steps), \
            f"seed {seed}, layer {done}: cycles"
        ops.add(spec.op_name)
        done += 1
    assert len(ops) == 6 or LAYERS < 60


def test_same_traffic_as_amaranth():
    from convhw.driver.verilator_transport import VerilatorTransport
    spec = ConvSpec(2, 5, 3, 3, stride=2, padding=1, groups=1)
    rng = np.random.default_rng(8)
    x = rng.integers(-128, 128, (1, 5, 7, 6))
    w = rng.integers(-128, 128, spec.weight_shape)
    b = rng.integers(-100, 100, 3)
    logs, outputs = [], []
    for make in (lambda: AmaranthTransport(SMALL), lambda: VerilatorTransport(SMALL)):
        with RecordingTransport(make()) as transport:
            outputs.append(Driver(transport, SMALL).run(spec, x, w, b).output)
            logs.append(transport.log)
    assert logs[0] == logs[1]
    assert np.array_equal(outputs[0], golden.convolution(spec, x, w, b))
    assert np.array_equal(outputs[0], outputs[1])
