"""Random layers and the jobs the compiler makes of them, shared by the gateware tests."""

import numpy as np

from convhw.compiler import compile_layer
from convhw.spec import ConvSpec


def random_layer(rng: np.random.Generator, max_size: int = 9):
    """A valid random layer of any of the six ops and an input shape for it."""
    while True:
        dims = int(rng.integers(1, 4))
        transposed = bool(rng.integers(2))
        if rng.integers(3) == 0:
            groups = in_channels = int(rng.integers(1, 6))
            out_channels = in_channels * int(rng.integers(1, 3))
        else:
            groups = int(rng.choice([1, 2, 3]))
            in_channels = groups * int(rng.integers(1, 4))
            out_channels = groups * int(rng.integers(1, 4))
        stride = tuple(int(v) for v in rng.integers(1, 4, dims))
        dilation = tuple(int(v) for v in rng.integers(1, 4, dims))
        try:
            spec = ConvSpec(
                dims, in_channels, out_channels, tuple(int(v) for v in rng.integers(1, 4, dims)),
                stride, tuple(int(v) for v in rng.integers(0, 4, dims)), dilation, groups,
                bool(rng.integers(2)),
                "zeros" if transposed else str(rng.choice(["zeros", "circular", "reflect",
                                                           "replicate"])),
                tuple(int(rng.integers(max(s, d))) for s, d in zip(stride, dilation))
                if transposed else 0, transposed)
            shape = (int(rng.integers(1, 3)), in_channels,
                     *(int(v) for v in rng.integers(1, max_size + 1, dims)))
            spec.output_shape(shape)
            return spec, shape
        except ValueError:
            continue


def random_jobs(seed: int, config, count: int):
    """``count`` jobs of random layers (several per layer when the layer tiles)."""
    rng = np.random.default_rng(seed)
    jobs = []
    while len(jobs) < count:
        spec, shape = random_layer(rng)
        try:
            config.check_layer(spec)
        except ValueError:
            continue
        steps = compile_layer(spec, shape, config, skip_borders=bool(rng.integers(4)))
        jobs.extend(step.job for step in steps[:3])
    return jobs[:count]
