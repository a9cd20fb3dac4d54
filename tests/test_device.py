# amaranth: UnusedElaboratable=no
"""Devices over the driver: the Amaranth device end to end, the front end on it, operand checks,
engine errors and the register traffic."""

import threading

import numpy as np
import pytest

import convhw
from convhw import golden
from convhw.compiler.image import Layer, plan
from convhw.driver.driver import ConvEngineError, Driver
from convhw.driver.transport import AmaranthTransport, RecordingTransport
from convhw.spec import ConvSpec

from .helpers import VERILATED_LIST_CONFIG

SMALL = convhw.EngineConfig.preset("small")


@pytest.fixture(scope="module")
def amaranth_device():
    device = convhw.Device("amaranth", "small")
    yield device
    device.close()


def test_nn_on_amaranth_device(amaranth_device):
    rng = np.random.default_rng(31)
    m = convhw.nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, device=amaranth_device)
    m.weight = rng.integers(-128, 128, m.weight.shape).astype(np.float64)  # floats holding ints
    m.bias = rng.integers(-500, 500, 6)
    x = rng.integers(-128, 128, (4, 5, 4), dtype=np.int8)                 # unbatched
    y = m(x, output_size=(10, 8))
    # float weights: float64 results, as the golden model gives them (convhw.tensors)
    assert y.shape == (6, 10, 8) and y.dtype == np.float64
    assert np.array_equal(y, golden.convolution(m.spec.with_output_size(x.shape, (10, 8)), x,
                                                m.weight.astype(np.int64), m.bias))
    run = m.last_run
    # The layer ran as one list: its jobs, the engine's traffic and the host's as the
    # compiler places them.
    placed = plan(SMALL, x[None], [Layer(m.spec.with_output_size(x.shape, (10, 8)),
                                         m.weight.astype(np.int64), m.bias)])
    assert run.jobs == len(placed.records[0].steps)
    assert run.bytes_moved == placed.builder.traffic.total
    output = placed.records[0].output.size
    # (the host writes the input, images and list, and reads the output: a last output is
    # not zeroed first)
    assert run.host_bytes == sum(len(d) for _, d in placed.writes) + output
    assert 0 < run.efficiency <= 1


def test_a_strided_pointwise_layer_sends_only_its_pixels(amaranth_device):
    # A 1x1 convolution with stride 2 reads one pixel of four: the host writes only those
    # (the stride-1 layer on every other pixel), bit-exact.
    rng = np.random.default_rng(33)
    spec = ConvSpec(2, 6, 5, 1, stride=2)
    x = rng.integers(-128, 128, (1, 6, 9, 8))
    w, b = rng.integers(-128, 128, spec.weight_shape), rng.integers(-500, 500, 5)
    y, run = amaranth_device.run(spec, x, w, b)
    assert np.array_equal(y, golden.convolution(spec, x, w, b))
    picked = x[:, :, ::2, ::2]
    placed = plan(SMALL, picked, [Layer(ConvSpec(2, 6, 5, 1), w, b)])
    assert run.host_bytes == sum(len(d) for _, d in placed.writes) + placed.records[0].output.size
    assert placed.records[0].input.shape == (1, 6, 5, 4)


def test_functional_on_amaranth_device(amaranth_device):
    rng = np.random.default_rng(32)
    x = rng.integers(-128, 128, (2, 3, 11))
    w = rng.integers(-128, 128, (4, 3, 3))
    y = convhw.functional.conv1d(x, w, padding=1, padding_mode="circular",
                                 device=amaranth_device)
    spec = ConvSpec(1, 3, 4, 3, padding=1, padding_mode="circular", bias=False)
    assert np.array_equal(y, golden.convolution(spec, x, w))


@pytest.mark.parametrize("name, value, message", [
    ("input", np.full((1, 2, 5), 128), r"^input must lie in \[-128, 127\] for this engine, "
                                       r"not \[128, 128\]$"),
    ("input", np.full((1, 2, 5), 0.5), r"^input must hold integer values for this engine"),
    ("weight", np.full((2, 2, 3), -129), r"^weight must lie in \[-128, 127\] for this engine"),
    # integers printed exactly, also when they come as floats
    ("weight", np.full((2, 2, 3), 1234567.0), r"not \[1234567, 1234567\]$"),
])
def test_operands_out_of_range(amaranth_device, name, value, message):
    m = convhw.nn.Conv1d(2, 2, 3, bias=False, device=amaranth_device)
    m.weight = np.ones((2, 2, 3))
    x = np.ones((1, 2, 5))
    if name == "input":
        x = value
    else:
        m.weight = value
    with pytest.raises(ValueError, match=message):
        m(x)


def test_the_bias_limit_says_why(amaranth_device):
    m = convhw.nn.Conv1d(2, 2, 3, device=amaranth_device)
    m.weight = np.ones((2, 2, 3))
    m.bias = np.full(2, 2 ** 31 - 1)
    with pytest.raises(ValueError, match=r"not \[2147483647, 2147483647\] \(the int32 accumulator "
                                         r"starts from the bias and must hold it plus 6 "
                                         r"worst-case int8 x int8 products"):
        m(np.ones((1, 2, 5)))


def test_engine_error_surfaces_as_conv_engine_error():
    # A register program the engine refuses (zero stride) becomes one ConvEngineError.
    spec = ConvSpec(2, 4, 4, 3, padding=1)
    with AmaranthTransport(SMALL) as transport:
        driver = Driver(transport, SMALL)
        regmap = driver._map
        original = transport.write

        def sabotage(address, value):
            original(address, 0 if address == regmap["Y_STRIDE"].address else value)

        transport.write = sabotage
        with pytest.raises(ConvEngineError, match=r"^engine error 1 in job 0: a size, kernel, "
                                                  r"stride, dilation"):
            driver.run(spec, np.zeros((1, 4, 5, 5), np.int64), np.zeros(spec.weight_shape,
                                                                        np.int64))


def test_traffic_is_recorded_and_deterministic():
    spec = ConvSpec(2, 3, 2, 2, stride=2, bias=False)
    rng = np.random.default_rng(5)
    x = rng.integers(-128, 128, (1, 3, 5, 4))
    w = rng.integers(-128, 128, spec.weight_shape)
    logs = []
    for _ in range(2):
        with RecordingTransport(AmaranthTransport(SMALL)) as transport:
            result = Driver(transport, SMALL).run(spec, x, w)
            logs.append(transport.log)
    assert logs[0] == logs[1]
    assert np.array_equal(result.output, golden.convolution(spec, x, w))
    kinds = {entry[0] for entry in logs[0]}
    assert kinds == {"write", "write_burst", "wait_idle", "read", "read_burst"}


@pytest.mark.slow
def test_threads_share_a_verilator_device():
    # Two threads on one device, started together so that both ask for its engine at once:
    # one engine is started, the runs take turns and every result is exact.
    device = convhw.Device("verilator", VERILATED_LIST_CONFIG)     # the fast tier's library
    barrier = threading.Barrier(2)
    errors, results = [], []

    def worker(seed):
        try:
            rng = np.random.default_rng(seed)
            barrier.wait()
            for _ in range(3):
                spec = ConvSpec(2, 4, 4, 3, padding=1)
                x = rng.integers(-128, 128, (1, 4, 6, 6))
                w = rng.integers(-128, 128, spec.weight_shape)
                b = rng.integers(-1000, 1000, 4)
                output, _ = device.run(spec, x, w, b)
                results.append((seed, output, golden.convolution(spec, x, w, b)))
        except BaseException as error:              # reported by the main thread
            errors.append(error)

    transports = []
    real = convhw.Device._transport
    device._transport = lambda: transports.append(real(device)) or transports[-1]
    threads = [threading.Thread(target=worker, args=(seed,)) for seed in (1, 2)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        device.close()
    assert not errors, errors
    assert len(transports) == 1 and len(results) == 6
    for seed, got, expected in results:
        assert np.array_equal(got, expected), f"seed {seed}"
