"""The conformance layers every hardware device runs: random integer layers of all six ops
through ``convhw.nn`` modules on the device, against torch, with the engine's cycle count equal
to the compiler's model: :func:`convhw.estimate` (the list cycle model) on a list engine behind a
memory model, :func:`~convhw.compiler.cycles.job_cycles` on the host-fed engine; a board's list
engine (block RAM on Wishbone, not modelled) is only checked to count. The same seed gives the
same layers on every device."""

import warnings

import numpy as np

import convhw
from convhw.compiler import compile_layer
from convhw.compiler.cycles import job_cycles

from .helpers import random_layer


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


# Inputs up to 8 wide, 4 deep in 3-D: every layer's list and tensors fit the serial board's
# 64 KiB of device memory (the largest of 400 draws on the small preset: 48 KiB).
MAX_SIZE = {1: 8, 2: 8, 3: 4}


def run_conformance(torch, device, config, layers: int, seed: int) -> set:
    """Run ``layers`` random layers on ``device`` (an engine of ``config``); returns the op
    names seen. Fails at the first mismatch, naming the seed and the layer."""
    rng = np.random.default_rng(seed)
    done = 0
    ops = set()
    while done < layers:
        spec, shape = random_layer(rng, max_size=MAX_SIZE, config=config)
        if any(lo != hi for lo, hi in spec.padding):
            continue      # ("same" with an even span) torch modules take symmetric padding only
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
        run = module.last_run
        if run.host_bytes is None:                       # the host-fed engine
            steps = compile_layer(spec, shape, config)
            expected_cycles = sum(job_cycles(s.job) for s in steps)
        elif device.memory is not None:                  # a list engine, memory modelled
            estimate = convhw.estimate(spec, shape, config=config, memory=device.memory)
            expected_cycles = estimate.cycles
            assert run.busy_cycles == estimate.busy_cycles, \
                f"seed {seed}, layer {done}: BUSY_CYCLES {run.busy_cycles}, the model says " \
                f"{estimate.busy_cycles}"
        else:
            expected_cycles = run.cycles if run.cycles > 0 else "> 0"
        assert run.cycles == expected_cycles, \
            f"seed {seed}, layer {done}: {run.cycles} cycles, the model says {expected_cycles}"
        ops.add(spec.op_name)
        done += 1
    return ops
