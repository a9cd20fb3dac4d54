"""The training run of a profile-guided build of the Verilated list engine.

``python -m convhw.driver.verilator_training LIBRARY CONFIG_JSON`` loads the instrumented
library that :mod:`convhw.driver.verilator_build` has just compiled (``CONFIG_JSON``: the
:class:`~convhw.config.EngineConfig`'s fields) and runs a few small layers on it, each one list
as the devices run them, so that the compiler's profile counts the branches a convolution
takes: the array computing while the loaders fetch the next window, the output writer draining
requantised and 32-bit results (and float32-requantised ones on an engine with
``float_output``), a strided layer and a depthwise one. The profile is written
when the process ends. Every result is checked against the golden model: a library that
computes wrongly fails its build here rather than later.

The layers are sized from the configuration (a few times the array's channels, a 16 x 16
image), a few hundred thousand cycles in all: seconds, instrumented.
"""

from __future__ import annotations

import dataclasses
import json
import sys

import numpy as np

from ..compiler.image import Layer, reference
from ..config import EngineConfig
from ..memory_model import MemoryModel
from ..spec import ConvSpec
from .list_driver import ListDriver
from .verilator_list import ListVerilatorTransport

__all__ = ["layers", "train"]


def layers(config: EngineConfig) -> list[tuple[ConvSpec, tuple[int, ...], bool]]:
    """``(spec, input shape, int8 results)`` of the training layers for ``config``."""
    channels = 2 * max(config.rows, config.cols)
    size = (1, channels, 16, 16)
    return [
        (ConvSpec(2, channels, channels, 3, padding=1), size, True),
        (ConvSpec(2, channels, 2 * channels, 3, stride=2, padding=1), size, False),
        (ConvSpec(2, channels, channels, 3, padding=1, groups=channels), size, True),
    ]


def train(library, config: EngineConfig, seed: int = 0) -> None:
    """Run :func:`layers` on the library at ``library``, built for ``config``; raises
    ``RuntimeError`` if a result differs from the golden model's
    (:func:`convhw.compiler.image.reference`)."""
    rng = np.random.default_rng(seed)
    with ListVerilatorTransport(config, library=library) as transport:
        driver = ListDriver(transport, config, MemoryModel())
        for index, (spec, shape, int8) in enumerate(layers(config)):
            low, high = config.input_range
            x = rng.integers(low, high + 1, shape)
            requantize = ((rng.integers(1 << 14, 1 << 15, spec.out_channels),
                           np.full(spec.out_channels, 22)) if int8 else None)
            # An engine with the float32 output stage trains it on its first layer.
            floats = None
            if config.float_output and index == 0:
                requantize = None
                floats = (rng.normal(0, 100, spec.out_channels).astype(np.float32),
                          rng.uniform(1e-4, 1e-3, spec.out_channels).astype(np.float32), 100)
            layer = Layer(spec, rng.integers(-128, 128, spec.weight_shape),
                          rng.integers(-2000, 2000, spec.out_channels), requantize,
                          input_zero=int(rng.integers(config.zero_range[1] + 1)),
                          float_requantize=floats)
            got = driver.run_layers(x, [layer]).outputs[0]
            if not np.array_equal(got, reference(x, [layer])[0]):
                raise RuntimeError(f"the training layer {spec} computed wrongly on {library}")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m convhw.driver.verilator_training LIBRARY CONFIG_JSON",
              file=sys.stderr)
        return 2
    fields = {f.name for f in dataclasses.fields(EngineConfig)}
    config = EngineConfig(**{k: v for k, v in json.loads(argv[1]).items() if k in fields})
    train(argv[0], config)
    return 0


if __name__ == "__main__":
    sys.exit(main())
