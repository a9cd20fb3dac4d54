"""Helpers that several test files use: written once here."""

import re

import numpy as np
import pytest

from convhw.compiler import compile_layer
from convhw.testing import random_layer

__all__ = ["exactly", "random_jobs", "random_layer", "tiered"]


def exactly(message: str) -> str:
    """An anchored regex matching ``message`` literally (for ``pytest.raises(match=...)``)."""
    return "^" + re.escape(message) + "$"


def random_jobs(seed: int, config, count: int):
    """``count`` jobs of random layers that ``config`` takes (up to three per layer when the
    layer tiles)."""
    rng = np.random.default_rng(seed)
    jobs = []
    while len(jobs) < count:
        spec, shape = random_layer(rng, config=config)
        steps = compile_layer(spec, shape, config, skip_borders=bool(rng.integers(4)))
        jobs.extend(step.job for step in steps[:3])
    return jobs[:count]


def tiered(values, fast: int, *, several: bool = False):
    """``values`` for ``pytest.mark.parametrize``: the first ``fast`` in the fast tier (``make
    test``), the rest marked slow (``make check``), so that one sweep serves both tiers.
    ``several``: each value is a tuple of several arguments."""
    def param(value, *marks):
        return pytest.param(*value, marks=marks) if several else pytest.param(value, marks=marks)
    return [param(value) if i < fast else param(value, pytest.mark.slow)
            for i, value in enumerate(values)]
