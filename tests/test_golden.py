"""The golden model on hand-checked cases and against an independent brute-force loop; no torch."""

import itertools

import numpy as np
import pytest

from convhw import golden
from convhw.spec import ConvSpec
from convhw.testing import random_layer


def conv1d(x, w, **kwargs):
    spec = ConvSpec(1, 1, 1, len(w), **kwargs)
    return golden.convolution(spec, np.array([[x]]), np.array([[w]]), None)[0, 0].tolist()


@pytest.mark.parametrize("mode, expected", [
    # x = 1 2 3 4, w = 1 0 -1, padding 1: y[o] = x[o-1] - x[o+1] with the mode's edge values.
    ("zeros", [-2, -2, -2, 3]),        # padded 0 1 2 3 4 0
    ("reflect", [0, -2, -2, 0]),       # padded 2 1 2 3 4 3
    ("circular", [2, -2, -2, 2]),      # padded 4 1 2 3 4 1
    ("replicate", [-1, -2, -2, -1]),   # padded 1 1 2 3 4 4
])
def test_padding_modes(mode, expected):
    assert conv1d([1, 2, 3, 4], [1, 0, -1], padding=1, padding_mode=mode) == expected


def test_stride_dilation():
    # out = (7 - 2*(2-1) - 1) // 2 + 1 = 3; y[o] = x[2o] + x[2o + 2]
    assert conv1d(list(range(7)), [1, 1], stride=2, dilation=2) == [2, 6, 10]


def test_same_even_kernel():
    # k=4: total padding 3 -> 1 before, 2 after; y[o] = x[o-1] + x[o] + x[o+1] + x[o+2]
    assert conv1d([1, 2, 3, 4, 5], [1, 1, 1, 1], padding="same") == [6, 10, 14, 12, 9]


@pytest.mark.parametrize("padding, output_padding, expected", [
    # x = 1 2 3, w = 1 10, stride 2: the full output puts x[i]*w[k] at 2i + k.
    (0, 0, [1, 10, 2, 20, 3, 30]),
    (1, 0, [10, 2, 20, 3]),            # crop one from each side
    (1, 1, [10, 2, 20, 3, 30]),        # output_padding extends the high side
    (0, 1, [1, 10, 2, 20, 3, 30, 0]),  # ... past the last tap: zero
])
def test_transposed_1d(padding, output_padding, expected):
    spec = ConvSpec(1, 1, 1, 2, stride=2, padding=padding, output_padding=output_padding,
                    transposed=True)
    y = golden.convolution(spec, np.array([[1, 2, 3]]), np.array([[[1, 10]]]))
    assert y[0].tolist() == expected


def test_groups_do_not_mix():
    # two groups of one channel: output c only sees input c.
    spec = ConvSpec(2, 2, 2, 1, groups=2, bias=True)
    x = np.array([[[[1, 2]], [[3, 4]]]])
    w = np.array([[[[10]]], [[[100]]]])
    y = golden.convolution(spec, x, w, np.array([1, -1]))
    assert y.tolist() == [[[[11, 21]], [[299, 399]]]]


def test_2d_box():
    spec = ConvSpec(2, 1, 1, 2, bias=False)
    y = golden.convolution(spec, np.ones((1, 1, 3, 3), np.int8), np.ones((1, 1, 2, 2), np.int8))
    assert y.dtype == np.int64 and y.tolist() == [[[[4, 4], [4, 4]]]]


def test_unbatched():
    spec = ConvSpec(1, 1, 2, 1)
    y = golden.convolution(spec, np.array([[1, 2]]), np.array([[[2]], [[3]]]), np.array([0, 1]))
    assert y.shape == (2, 2) and y.tolist() == [[2, 4], [4, 7]]


@pytest.mark.parametrize("x_dtype, w_dtype, expected", [
    (np.int8, np.int8, np.int64), (np.uint8, np.int16, np.int64),
    (np.int8, np.float32, np.float64), (np.float16, np.float64, np.float64),
])
def test_result_dtype(x_dtype, w_dtype, expected):
    spec = ConvSpec(1, 1, 1, 1, bias=False)
    y = golden.convolution(spec, np.ones((1, 1, 3), x_dtype), np.ones((1, 1, 1), w_dtype))
    assert y.dtype == expected


def test_wide_integers_exact():
    # Products beyond 2**53 leave the float64 path; the result is still exact.
    spec = ConvSpec(1, 3, 1, 2, bias=False)
    x = np.full((1, 3, 4), 2**30 + 7, np.int64)
    w = np.full((1, 3, 2), -(2**29) - 3, np.int64)
    y = golden.convolution(spec, x, w)
    assert y.tolist() == [[[6 * (2**30 + 7) * (-(2**29) - 3)] * 3]]


def test_int64_overflow_refused():
    spec = ConvSpec(1, 2, 1, 1, bias=False)
    x = np.full((1, 2, 1), 2**40, np.int64)
    with pytest.raises(ValueError, match=r"^integer convolution may reach \d+, beyond the int64 "):
        golden.convolution(spec, x, np.full((1, 2, 1), 2**23, np.int64))


@pytest.mark.parametrize("operand", ["input", "weight", "bias"])
def test_uint64_beyond_int64_refused(operand):
    # A uint64 value past the int64 range used to wrap to a negative number on the way in.
    spec = ConvSpec(1, 1, 1, 1)
    arrays = {"input": np.ones((1, 1, 1), np.uint64), "weight": np.ones((1, 1, 1), np.uint64),
              "bias": np.ones(1, np.uint64)}
    arrays[operand][...] = 2**63
    with pytest.raises(ValueError, match=rf"^{operand} holds 9223372036854775808, outside the "
                                         r"int64 range of integer operands "):
        golden.convolution(spec, arrays["input"], arrays["weight"], arrays["bias"])


def test_uint64_within_int64_exact():
    spec = ConvSpec(1, 1, 1, 1, bias=False)
    y = golden.convolution(spec, np.full((1, 1, 1), 2**62, np.uint64), np.ones((1, 1, 1), np.int8))
    assert y.dtype == np.int64 and y.tolist() == [[[2**62]]]


def test_int64_min_overflow_refused():
    # |int64 min| is no int64: the bound on the sums is taken in Python integers.
    spec = ConvSpec(1, 1, 1, 1, bias=False)
    with pytest.raises(ValueError, match=r"^integer convolution may reach 18446744073709551616,"):
        golden.convolution(spec, np.full((1, 1, 1), -(2**63), np.int64),
                           np.full((1, 1, 1), 2, np.int64))


def brute_force(spec: ConvSpec, x, w, b):
    """Torch's definition, one output element at a time, in plain Python integers."""
    n, c_in, *size = x.shape
    out_size = spec.output_size(size)
    cg, og = spec.in_channels // spec.groups, spec.out_channels // spec.groups
    y = np.zeros((n, spec.out_channels, *out_size), dtype=object)

    def source(i, dim):          # padded coordinate -> input coordinate, or None for a zero
        lo, n_in = spec.padding[dim][0], size[dim]
        i -= lo
        if 0 <= i < n_in:
            return i
        mode = spec.padding_mode
        if mode == "zeros":
            return None
        if mode == "circular":
            return i % n_in
        if mode == "replicate":
            return min(max(i, 0), n_in - 1)
        return -i if i < 0 else 2 * (n_in - 1) - i          # reflect, edge excluded

    for batch, oc, *o in itertools.product(range(n), range(spec.out_channels),
                                           *(range(v) for v in out_size)):
        g = oc // og
        total = 0 if b is None else int(b[oc])
        for ic, *k in itertools.product(range(cg), *(range(v) for v in spec.kernel_size)):
            if spec.transposed:
                idx = []
                for dim, (oo, kk) in enumerate(zip(o, k)):
                    num = oo + spec.padding[dim][0] - kk * spec.dilation[dim]
                    if num % spec.stride[dim] or not 0 <= num // spec.stride[dim] < size[dim]:
                        break
                    idx.append(num // spec.stride[dim])
                else:
                    total += int(x[(batch, g * cg + ic, *idx)]) * int(w[(g * cg + ic,
                                                                         oc % og, *k)])
            else:
                idx = [source(oo * spec.stride[d] + kk * spec.dilation[d], d)
                       for d, (oo, kk) in enumerate(zip(o, k))]
                if None not in idx:
                    total += int(x[(batch, g * cg + ic, *idx)]) * int(w[(oc, ic, *k)])
        y[(batch, oc, *o)] = total
    return y


@pytest.mark.parametrize("seed", range(40))
def test_against_brute_force(seed):
    rng = np.random.default_rng(seed)
    spec, shape = random_layer(rng, max_size=6, asymmetric=True)
    x = rng.integers(-128, 128, shape)
    w = rng.integers(-128, 128, spec.weight_shape)
    b = rng.integers(-1000, 1000, spec.out_channels) if spec.bias else None
    y = golden.convolution(spec, x, w, b)
    expected = brute_force(spec, x, w, b)
    assert y.shape == expected.shape, f"seed {seed}: {spec}"
    assert np.array_equal(y, expected.astype(np.int64)), f"seed {seed}: {spec}"
