"""The host flow of the list engine (convhw.driver.list_driver) on the Amaranth simulator:
layers and chained lists bit-exact, engine errors and time-outs reported (and the engine usable
afterwards), two threads sharing one driver."""

import threading

import numpy as np
import pytest

from convhw.compiler.image import reference
from convhw.driver.amaranth_list import AmaranthListTransport
from convhw.driver.driver import ConvEngineError
from convhw.driver.list_driver import ListDriver
from convhw.memory_model import MemoryModel
from convhw.registers import ErrorCode

from .test_gateware_list_engine import TINY, network


@pytest.fixture(scope="module")
def driver():
    transport = AmaranthListTransport(TINY, MemoryModel(bytes_per_cycle=8, latency=6))
    driver = ListDriver(transport, TINY)
    driver.check_identity()
    yield driver
    transport.close()


def test_a_chained_list_is_bit_exact(driver):
    x, layers = network(3, TINY, channels=4, height=6)
    run = driver.run_layers(x, layers)
    for got, want in zip(run.outputs, reference(x, layers)):
        np.testing.assert_array_equal(got, want)
    assert run.cycles > 0 and run.jobs > 2
    assert run.host_bytes > x.size


def test_an_engine_error_is_raised_with_its_code_and_the_next_list_runs(driver):
    x, layers = network(4, TINY)
    # A list whose first descriptor has a bad magic byte.
    from convhw.driver.list_driver import run_list
    from convhw.registers import list_register_map

    async def bad(bus):
        await bus.mem_write(0x100, np.zeros(128, np.uint8))
        await run_list(bus, list_register_map(TINY), 0x100, max_cycles=10_000)
    with pytest.raises(ConvEngineError) as info:
        driver._execute(bad)
    assert info.value.code == ErrorCode.BAD_DESCRIPTOR and info.value.job == 0
    # The next list runs (placed by a driver of 64 KiB of device memory).
    driver_small = ListDriver(driver.transport, TINY, memory_size=1 << 16)
    run = driver_small.run_layers(x, layers[:1])
    np.testing.assert_array_equal(run.outputs[0], reference(x, layers[:1])[0])


@pytest.mark.slow
def test_a_list_that_times_out_is_aborted_and_the_engine_is_usable(driver):
    x, layers = network(5, TINY)
    from convhw.driver import list_driver

    async def short(bus):
        return await list_driver.run_layers(bus, TINY, x, layers, max_cycles=64)
    with pytest.raises(TimeoutError, match="aborted"):
        driver._execute(short)
    run = driver.run_layers(x, layers)
    np.testing.assert_array_equal(run.outputs[-1], reference(x, layers)[-1])


@pytest.mark.slow
def test_two_threads_share_a_driver(driver):
    results, errors = {}, []

    def work(seed):
        try:
            x, layers = network(seed, TINY)
            results[seed] = (driver.run_layers(x, layers[:1]).outputs[0],
                             reference(x, layers[:1])[0])
        except Exception as error:           # reported below
            errors.append(error)
    threads = [threading.Thread(target=work, args=(seed,)) for seed in (6, 7)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    assert not errors and len(results) == 2
    for got, want in results.values():
        np.testing.assert_array_equal(got, want)
