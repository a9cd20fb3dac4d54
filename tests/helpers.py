"""Helpers that several test files use: written once here."""

import re

import numpy as np
import pytest

from convhw.compiler import compile_layer
from convhw.fuzz import FUZZ_CONFIG
from convhw.testing import random_layer

__all__ = ["VERILATED_LIST_CONFIG", "exactly", "random_jobs", "random_layer", "tiered"]

#: The list engine that the fast tier runs on Verilator wherever some small list engine will do
#: (test_fuzz.py, test_verilator_list.py, test_verilator_device.py): one library, built once
#: per cache. Each distinct configuration costs a fresh clone's ``make test`` another build
#: (20-50 s of C++ on two cores). It is the fuzz campaign's (``convhw.fuzz.FUZZ_CONFIG``) and
#: tests/test_gateware_list_engine.py's ``TINY``: the small preset's 4x4 array with 256-word
#: input and weight buffers and 64 accumulators, so that small layers tile.
VERILATED_LIST_CONFIG = FUZZ_CONFIG


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


def tiered(values, fast: int, *, several: bool = False, slow: int | None = None):
    """``values`` for ``pytest.mark.parametrize``: the first ``fast`` in the fast tier (``make
    test``), the rest marked slow (``make check``), so that one sweep serves both tiers; with
    ``slow``, only the next ``slow`` are, and the rest are marked exhaustive (``pytest -m
    exhaustive``, outside CI's half hour). ``several``: each value is a tuple of several
    arguments."""
    def param(value, *marks):
        return pytest.param(*value, marks=marks) if several else pytest.param(value, marks=marks)

    def mark(i):
        if slow is not None and i >= fast + slow:
            return pytest.mark.exhaustive
        return pytest.mark.slow
    return [param(value) if i < fast else param(value, mark(i))
            for i, value in enumerate(values)]
