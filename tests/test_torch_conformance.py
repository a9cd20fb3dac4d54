"""convhw.nn and convhw.functional against torch on random integer-valued layers.

Two properties, over all six ops, every padding mode, groups (depthwise included), dilation,
stride, output_padding and output_size:

* whenever torch computes a layer, convhw computes the same result, bit for bit;
* whenever torch rejects a layer or an input, convhw rejects it with a ValueError/TypeError
  (and never computes a result).

``CONFORMANCE_EXAMPLES`` (default 1500 per test, three tests) sets how many random layers
hypothesis draws.
"""

import os
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import convhw
from convhw import functional as CF

torch = pytest.importorskip("torch")
F = torch.nn.functional

#: Outcomes of the test running in this process.
TALLY = {"computed by both, bit-exact": 0, "rejected by both": 0}


@pytest.fixture(autouse=True)
def report_tally(record_property):
    """Each test's outcomes go into its report (``torch_conformance``), which conftest.py adds
    up and prints at the end of the run: with pytest-xdist the tests run in other processes."""
    for what in TALLY:
        TALLY[what] = 0
    yield
    record_property("torch_conformance", dict(TALLY))

EXAMPLES = int(os.environ.get("CONFORMANCE_EXAMPLES", "1500"))
conformance = settings(max_examples=EXAMPLES, deadline=None, print_blob=True,
                       suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@st.composite
def layers(draw, *, loose=False):
    """A torch-style layer and an input for it. ``loose`` widens every range past what torch
    accepts (padding beyond the input, output_padding up to the bound, 'same' with stride...)."""
    dims = draw(st.integers(1, 3))
    transposed = draw(st.booleans())
    depthwise = draw(st.booleans())
    if depthwise:
        groups = draw(st.integers(1, 4))
        in_channels, out_channels = groups, groups * draw(st.integers(1, 2))
    else:
        groups = draw(st.sampled_from([1, 1, 2, 3]))
        in_channels = groups * draw(st.integers(1, 3))
        out_channels = groups * draw(st.integers(1, 3))
    ints = lambda lo, hi: st.tuples(*[st.integers(lo, hi)] * dims)  # noqa: E731
    kernel = draw(ints(1, 5 if loose else 4))
    stride = draw(ints(1, 3))
    dilation = draw(ints(1, 3))
    if transposed:
        padding_mode = "zeros"
        padding = draw(ints(0, 4 if loose else 2))
        bound = 0 if loose else -1
        output_padding = tuple(draw(st.integers(0, max(s, d) + bound))
                               for s, d in zip(stride, dilation))
    else:
        padding_mode = draw(st.sampled_from(["zeros", "circular", "reflect", "replicate"]))
        choices = [ints(0, 5 if loose else 3), st.just("valid")]
        if loose or all(s == 1 for s in stride):
            choices.append(st.just("same"))
        padding = draw(st.one_of(choices))
        output_padding = 0
    if loose:
        size = draw(ints(1, 5))
    else:   # mostly inputs the dilated kernel fits in; the rest exercise the size checks
        size = tuple(draw(st.integers(1, 6)) + d * (k - 1) // draw(st.sampled_from([1, 1, 2]))
                     for k, d in zip(kernel, dilation))
    batch = draw(st.sampled_from([None, 1, 2]))
    shape = ((batch,) if batch else ()) + (in_channels,) + size
    output_size = None
    if transposed and draw(st.booleans()):
        # torch's reachable range: the smallest output plus up to stride - 1 (loose: +-1 more).
        smallest = [(i - 1) * s - 2 * p + d * (k - 1) + 1
                    for i, s, p, d, k in zip(size, stride, padding, dilation, kernel)]
        slack = 1 if loose else 0
        output_size = [draw(st.integers(m - slack, m + s - 1 + slack))
                       for m, s in zip(smallest, stride)]
        if draw(st.booleans()):
            output_size = list(shape[:-dims]) + output_size
    kwargs = dict(in_channels=in_channels, out_channels=out_channels, kernel_size=kernel,
                  stride=stride, padding=padding, dilation=dilation, groups=groups,
                  bias=draw(st.booleans()), padding_mode=padding_mode)
    if transposed:
        kwargs["output_padding"] = output_padding
    name = f"{'ConvTranspose' if transposed else 'Conv'}{dims}d"
    seed = draw(st.integers(0, 2**32 - 1))
    return name, kwargs, shape, output_size, seed


def tensors(kwargs, weight_shape, shape, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, shape).astype(np.int8)
    w = rng.integers(-128, 128, weight_shape).astype(np.int8)
    b = rng.integers(-2**20, 2**20, kwargs["out_channels"]) if kwargs["bias"] else None
    return x, w, b


def run_torch(name, kwargs, x, w, b, output_size):
    """torch's result in float64 (exact for these integers), or the exception it raised."""
    module = getattr(torch.nn, name)(**kwargs, dtype=torch.float64)
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(w.astype(np.float64)))
        if b is not None:
            module.bias.copy_(torch.from_numpy(b.astype(np.float64)))
        extra = {} if output_size is None else {"output_size": output_size}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")     # 'same' with an even kernel copies the input
            return module(torch.from_numpy(x.astype(np.float64)), **extra).numpy()


def torch_module_or_error(name, kwargs):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return getattr(torch.nn, name)(**kwargs, dtype=torch.float64), None
    except Exception as error:  # any rejection by torch counts
        return None, error


def run_convhw_module(name, kwargs, x, w, b, output_size):
    module = getattr(convhw.nn, name)(**kwargs)
    module.weight = w
    if b is not None:
        module.bias = b
    extra = {} if output_size is None else {"output_size": output_size}
    return module(x, **extra)


def out_of_range_output_padding(kwargs):
    return any(op >= max(s, d) for op, s, d in zip(
        kwargs.get("output_padding", ()), kwargs["stride"], kwargs["dilation"]))


@conformance
@given(layers())
def test_module_matches_torch(layer):
    name, kwargs, shape, output_size, seed = layer
    module, error = torch_module_or_error(name, kwargs)
    if error is not None:
        with pytest.raises((ValueError, TypeError)):
            getattr(convhw.nn, name)(**kwargs)
        event("layer rejected by both")
        TALLY["rejected by both"] += 1
        return
    if out_of_range_output_padding(kwargs):
        # The one deliberate difference: torch checks output_padding only in forward (and
        # skips the check when output_size overrides it); convhw refuses the layer up front.
        with pytest.raises(ValueError, match=r"^output_padding must be smaller than max"):
            getattr(convhw.nn, name)(**kwargs)
        return
    x, w, b = tensors(kwargs, tuple(module.weight.shape), shape, seed)
    try:
        expected = run_torch(name, kwargs, x, w, b, output_size)
    except (RuntimeError, ValueError):
        with pytest.raises((ValueError, TypeError)):
            run_convhw_module(name, kwargs, x, w, b, output_size)
        event("input rejected by both")
        TALLY["rejected by both"] += 1
        return
    got = run_convhw_module(name, kwargs, x, w, b, output_size)
    event(f"computed by both: {name}")
    TALLY["computed by both, bit-exact"] += 1
    assert got.dtype == np.int64
    assert got.shape == expected.shape
    assert np.array_equal(got, expected), f"first mismatch at {np.argwhere(got != expected)[0]}"


@conformance
@given(layers(loose=True))
def test_rejections_match_torch(layer):
    """Out-of-range layers and inputs: torch and convhw accept and reject the same ones."""
    test_module_matches_torch.hypothesis.inner_test(layer)


def functional_call(name, kwargs, x, w, b, output_size):
    dims = int(name[-2])
    common = dict(stride=kwargs["stride"], padding=kwargs["padding"],
                  dilation=kwargs["dilation"], groups=kwargs["groups"])
    if name.startswith("ConvTranspose"):
        fn = getattr(CF, f"conv_transpose{dims}d")
        return fn(x, w, b, output_padding=kwargs["output_padding"], output_size=output_size,
                  **common)
    fn = getattr(CF, f"conv{dims}d")
    return fn(x, w, b, padding_mode=kwargs["padding_mode"], **common)


@conformance
@given(layers())
def test_functional_matches_torch(layer):
    name, kwargs, shape, output_size, seed = layer
    module, error = torch_module_or_error(name, kwargs)
    if error is not None or out_of_range_output_padding(kwargs):
        event("layer rejected by torch (covered by the module tests)")
        return
    x, w, b = tensors(kwargs, tuple(module.weight.shape), shape, seed)
    try:
        expected = run_torch(name, kwargs, x, w, b, output_size)
    except (RuntimeError, ValueError):
        with pytest.raises((ValueError, TypeError)):
            functional_call(name, kwargs, x, w, b, output_size)
        event("input rejected by both")
        TALLY["rejected by both"] += 1
        return
    got = functional_call(name, kwargs, x, w, b, output_size)
    event(f"computed by both: {name}")
    TALLY["computed by both, bit-exact"] += 1
    assert got.shape == expected.shape
    assert np.array_equal(got, expected), f"first mismatch at {np.argwhere(got != expected)[0]}"
