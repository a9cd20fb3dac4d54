"""``MemoryPortSignature``, ``split_bursts`` and the plain-Python parts of
``convhw.sim_memory`` (sparse memory, payload packing)."""

import random

import pytest
from amaranth.lib import stream
from amaranth.lib.wiring import In, Out

from convhw.gateware.memory_port import BOUNDARY, Burst, MemoryPortSignature, split_bursts
from convhw.sim_memory import SparseMemory, pack, unpack

from .helpers import exactly


def test_init():
    sig = MemoryPortSignature()
    assert (sig.data_width, sig.addr_width, sig.beat_bytes) == (64, 32, 8)
    assert list(sig.members) == ["read_cmd", "read_data", "write_cmd", "write_data",
                                 "write_resp"]
    assert [sig.members[name].flow for name in sig.members] == [Out, In, Out, Out, In]
    assert sig.members["read_cmd"].signature == stream.Signature(sig.cmd_layout)
    assert dict(sig.cmd_layout.members) == {"addr": 32, "len": 8}
    assert dict(sig.read_data_layout.members) == {"data": 64, "last": 1, "error": 1}
    assert dict(MemoryPortSignature(512, 40).write_data_layout.members) == \
        {"data": 512, "strb": 64, "last": 1}
    assert dict(sig.write_resp_layout.members) == {"error": 1}
    assert sig == MemoryPortSignature(64, 32) and sig != MemoryPortSignature(32, 32)
    assert repr(sig) == "MemoryPortSignature(64, 32)"


@pytest.mark.parametrize(("args", "error", "message"), [
    ((16,), ValueError, "data_width must be a power of two from 32 to 512, not 16"),
    ((1024,), ValueError, "data_width must be a power of two from 32 to 512, not 1024"),
    ((100,), ValueError, "data_width must be a power of two from 32 to 512, not 100"),
    ((64.0,), TypeError, "data_width must be an integer, not 64.0"),
    ((True,), TypeError, "data_width must be an integer, not True"),
    ((64, 11), ValueError, "addr_width must be an integer from 12 to 64, not 11"),
    ((64, None), TypeError, "addr_width must be an integer, not None"),
])
def test_init_wrong(args, error, message):
    with pytest.raises(error, match=exactly(message)):
        MemoryPortSignature(*args)


def test_split_bursts_examples():
    assert split_bursts(0, 0) == []
    assert split_bursts(0xFF8, 24, 64) == [Burst(0xFF8, 1), Burst(0x1000, 2)]
    assert split_bursts(3, 2, 32) == [Burst(0, 2)]          # widened to whole beats
    assert split_bursts(0, 8192, 32) == [Burst(i * 1024, 256) for i in range(8)]
    assert split_bursts(0, 8192, 256) == [Burst(0, 128), Burst(4096, 128)]
    assert split_bursts(0x10, 64, 64, max_beats=3) == [Burst(0x10, 3), Burst(0x28, 3),
                                                      Burst(0x40, 2)]
    assert Burst(0x10, 3).len == 2


@pytest.mark.parametrize("seed", range(5))
def test_split_bursts_random(seed):
    """The bursts tile the widened range exactly, in order, each legal."""
    rng = random.Random(seed)
    for _ in range(200):
        width = rng.choice([32, 64, 128, 512])
        step = width // 8
        addr, size = rng.randrange(1 << 20), rng.randrange(20000)
        bursts = split_bursts(addr, size, width)
        position = addr - addr % step
        for burst in bursts:
            assert burst.addr == position and 1 <= burst.beats <= 256, seed
            end = burst.addr + burst.beats * step
            assert burst.addr // BOUNDARY == (end - 1) // BOUNDARY, seed
            position = end
        assert position == (-(-(addr + size) // step) * step if size else position), seed


def test_split_bursts_wrong():
    with pytest.raises(ValueError, match=exactly("size must be a non-negative integer, not -1")):
        split_bursts(0, -1)
    with pytest.raises(TypeError, match=exactly("addr must be an integer, not 1.5")):
        split_bursts(1.5, 8)
    with pytest.raises(ValueError, match=exactly("max_beats must be an integer from 1 to 256, "
                                                 "not 257")):
        split_bursts(0, 8, max_beats=257)
    with pytest.raises(ValueError, match=exactly("data_width must be a power of two from 32 to "
                                                 "512, not 8")):
        split_bursts(0, 8, 8)


def test_sparse_memory():
    memory = SparseMemory(background=lambda address: address & 0xFF)
    assert memory.read(0x1FE, 4) == bytes([0xFE, 0xFF, 0x00, 0x01])
    memory.write_word(0x100, 0x11223344, 4, strb=0b0101)
    assert memory.read_word(0x100, 4) == 0x03220144
    assert memory.written == {0x100: 0x44, 0x102: 0x22}
    memory.write(0x200, b"\xaa\xbb")
    assert memory.read_word(0x200, 2) == 0xBBAA


def test_pack_unpack():
    layout = MemoryPortSignature(32).write_data_layout
    value = pack(layout, data=0x12345678, strb=0b1010, last=1)
    assert value == 0x12345678 | 0b1010 << 32 | 1 << 36
    assert unpack(layout, value) == {"data": 0x12345678, "strb": 0b1010, "last": 1}
    with pytest.raises(ValueError, match=exactly("fields must be members of the layout, "
                                                 "not ['lats']")):
        pack(layout, lats=1)
