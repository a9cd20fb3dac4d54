"""SerialTransport against a Python model of the bridge behind a pseudo-terminal.

The model speaks the protocol of convhw/serial_protocol.py (including the write record that
makes resent writes harmless) and can lose or damage frames in either direction, so the
transport's retries and its errors are tested here in milliseconds; the real bridge's Verilog
behind the same kind of pty is tested in test_serial_device.py.
"""

from __future__ import annotations

import os
import struct
import threading
import time
import tty

import numpy as np
import pytest

from convhw import serial_protocol as sp
from convhw.driver.serial_transport import GROW_AFTER, LinkError, SerialTransport
from convhw.driver.transport import BusError

pytest.importorskip("serial")

UNMAPPED = 0x9000


class BridgeModel:
    """A bridge on the master side of a pty: a word memory with one unmapped address."""

    def __init__(self):
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.port = os.ttyname(slave)
        self._slave = slave
        self.memory: dict[int, int] = {}
        self.executed_writes = 0
        self.last_write = None          # (tag, response bytes)
        # Faults, consumed in order: ("drop_request"|"corrupt_request"|"drop_response"|
        # "corrupt_response"|"truncate_request", ...)
        self.faults: list[str] = []
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def close(self):
        self._stop = True
        self._thread.join(timeout=2)
        os.close(self.master)
        os.close(self._slave)

    def _read_exact(self, n):
        data = b""
        while len(data) < n and not self._stop:
            import select
            ready, _, _ = select.select([self.master], [], [], 0.02)
            if ready:
                data += os.read(self.master, n - len(data))
        return data

    def _serve(self):
        while not self._stop:
            byte = self._read_exact(1)
            if not byte or byte[0] != sp.REQUEST_SYNC:
                continue
            header = byte + self._read_exact(sp.REQUEST_HEADER - 1)
            if len(header) < sp.REQUEST_HEADER:
                return
            command, count = header[1], header[3] + 1
            rest = self._read_exact(sp.request_length(command, count) - sp.REQUEST_HEADER)
            frame = bytearray(header + rest)
            fault = self.faults.pop(0) if self.faults else None
            if fault == "misroute_request":
                # Corrupted on the line where the CRC does not see it: another address.
                request = sp.decode_request(bytes(frame))
                frame = bytearray(sp.encode_request(request.command, request.tag,
                                                    request.address ^ 0x40, request.count,
                                                    request.payload))
            if fault == "drop_request":
                continue
            if fault == "corrupt_request":
                frame[-3] ^= 0x10
            if fault == "truncate_request":
                continue                # as if the rest never came: the bridge times out
            response = self._answer(bytes(frame))
            if fault == "drop_response":
                continue
            if fault == "corrupt_response":
                response = bytearray(response)
                response[-3] ^= 0x01
            if fault in ("forge_payload", "forge_bus_error"):
                # A corrupted response whose CRC still matches.
                answer = sp.decode_response(response)
                response = sp.encode_response(answer.tag, sp.Status.BUS_ERROR, 0) \
                    if fault == "forge_bus_error" else sp.encode_response(
                        answer.tag, answer.status, answer.detail,
                        [answer.payload[0] ^ 1, *answer.payload[1:]])
            os.write(self.master, bytes(response))

    def _answer(self, frame: bytes) -> bytes:
        try:
            request = sp.decode_request(frame)
        except sp.FrameError:
            return sp.encode_response(frame[2], sp.Status.BAD_CRC)
        if request.command == sp.Command.INFO:
            return sp.encode_response(request.tag, sp.Status.OK,
                                      payload=sp.info_words(1_000_000, 8))
        if request.command == sp.Command.READ:
            words = []
            for i in range(request.count):
                address = request.address + 4 * i
                if address == UNMAPPED:
                    return sp.encode_response(request.tag, sp.Status.BUS_ERROR, i)
                words.append(self.memory.get(address, 0))
            return sp.encode_response(request.tag, sp.Status.OK, payload=words)
        if self.last_write and self.last_write[0] == request.tag:
            return self.last_write[1]
        response = sp.encode_response(request.tag, sp.Status.OK)
        for i, word in enumerate(request.payload):
            address = request.address + 4 * i
            if address == UNMAPPED:
                response = sp.encode_response(request.tag, sp.Status.BUS_ERROR, i)
                break
            self.memory[address] = word
        self.executed_writes += 1
        self.last_write = (request.tag, response)
        return response


@pytest.fixture
def bridge():
    model = BridgeModel()
    yield model
    model.close()


def transport(bridge, **options):
    options.setdefault("timeout", 0.05)
    return SerialTransport(bridge.port, 1_000_000, **options)


def test_info_and_bursts(bridge):
    with transport(bridge) as t:
        assert (t.clock_hz, t.divisor, t.max_burst) == (1_000_000, 8, sp.MAX_BURST)
        words = np.arange(150, dtype=np.uint32) * 0x01010101
        t.write_burst(0x1000, words)            # three frames: 64 + 64 + 22 words
        assert bridge.executed_writes == 3
        assert np.array_equal(t.read_burst(0x1000, 150), words)
        t.write(0x2000, 0xDEADBEEF)
        assert t.read(0x2000) == 0xDEADBEEF
        assert t.stats["attempts"] == t.stats["requests"]


FAULTS = ["drop_request", "corrupt_request", "truncate_request", "drop_response",
          "corrupt_response"]


@pytest.mark.parametrize("fault", FAULTS)
def test_a_damaged_word_write_is_resent_and_carried_out_once(bridge, fault):
    with transport(bridge) as t:
        before = dict(t.stats)
        bridge.faults = [fault]
        t.write(0x100, 7)
        assert bridge.memory[0x100] == 7
        # A lost *response* means the write was done: the resend, with the same tag, is
        # answered from the record (a write with side effects, such as START, runs once).
        assert bridge.executed_writes == 1
        assert t.stats["requests"] - before["requests"] == 1
        assert t.stats["attempts"] - before["attempts"] == 2


@pytest.mark.parametrize("fault", FAULTS)
def test_a_damaged_burst_is_halved_and_grows_back(bridge, fault):
    with transport(bridge, verify="never") as t:
        before = dict(t.stats)
        bridge.faults = [fault]
        t.write_burst(0x100, [1, 2, 3, 4, 5])
        assert [bridge.memory[0x100 + 4 * i] for i in range(5)] == [1, 2, 3, 4, 5]
        # The five-word frame failed once; its words went again as new, shorter requests (no
        # frame was sent twice).
        assert t.stats["halved"] - before["halved"] == 1
        assert t.stats["attempts"] - before["attempts"] \
            == t.stats["requests"] - before["requests"] >= 3
        assert t.frame_words < sp.MAX_BURST
        # Clean frames double it again, GROW_AFTER at a time, up to the bridge's burst.
        words = np.arange(64 * GROW_AFTER * 8, dtype=np.uint32)
        t.write_burst(0x1000, words)
        assert np.array_equal(t.read_burst(0x1000, len(words)), words)
        assert t.frame_words == sp.MAX_BURST


@pytest.mark.parametrize("fault", ["drop_request", "corrupt_request", "drop_response",
                                   "corrupt_response"])
def test_a_damaged_read_is_retried(bridge, fault):
    bridge.memory[0x40] = 77
    with transport(bridge) as t:
        bridge.faults = [fault]
        assert t.read(0x40) == 77


def test_consecutive_writes_never_share_a_tag(bridge):
    with transport(bridge) as t:
        for i in range(600):                    # more than 256 requests: tags wrap
            if i % 3 == 0:
                t.read(0x0)
            t.write(0x10, i)
        assert bridge.memory[0x10] == 599
        assert bridge.executed_writes == 600


def test_a_clean_line_is_not_checked(bridge):
    with transport(bridge) as t:
        t.write_burst(0x100, [1, 2, 3])
        assert list(t.read_burst(0x100, 3)) == [1, 2, 3]
        assert t.stats["doubled_reads"] == t.stats["read_backs"] == 0
        assert t.stats["attempts"] == t.stats["requests"]


def test_a_failed_attempt_makes_the_line_suspect_and_checked(bridge):
    bridge.memory[0x40] = 5
    with transport(bridge) as t:
        bridge.faults = ["corrupt_request"]
        t.write_burst(0x100, [1, 2])            # a failed attempt: the line is suspect
        before = dict(t.stats)
        # A READ response the CRC let by, with one bit changed: the second read disagrees,
        # and the frame is read again.
        bridge.faults = ["forge_payload"]
        assert t.read(0x40) == 5
        assert t.stats["disagreements"] - before["disagreements"] == 1
        assert t.stats["doubled_reads"] > before["doubled_reads"]
        # Storage writes are read back (their reads doubled as well).
        t.write_burst(0x200, [9])
        assert t.stats["read_backs"] - before["read_backs"] == 1


def test_a_write_carried_out_elsewhere_raises_a_link_error(bridge):
    with transport(bridge, verify="always") as t:
        bridge.faults = ["misroute_request"]
        with pytest.raises(LinkError, match="read back differently"):
            t.write_burst(0x100, [1, 2])
        assert bridge.memory[0x140] == 1        # where the damaged request wrote
    with transport(bridge, verify="never") as t:
        bridge.faults = ["misroute_request"]
        t.write_burst(0x300, [1])               # unchecked: taken as done
        assert 0x300 not in bridge.memory


def test_a_forged_bus_error_is_asked_again_on_a_suspect_line(bridge):
    with transport(bridge, verify="always") as t:
        bridge.faults = ["forge_bus_error"]
        t.write_burst(0x100, [3])
        assert bridge.memory[0x100] == 3 and t.stats["bus_errors_resent"] == 1
        with pytest.raises(BusError):           # a real one stays one
            t.read(UNMAPPED)
    with transport(bridge, verify="never") as t:
        bridge.faults = ["forge_bus_error"]
        with pytest.raises(BusError):
            t.read(0x100)


def test_a_control_write_is_never_read_back(bridge):
    with transport(bridge, verify="always") as t:
        t.write(0x10, 1)
        assert t.stats["read_backs"] == 0 and bridge.executed_writes == 1


def test_bus_error_names_the_address(bridge):
    with transport(bridge) as t:
        with pytest.raises(BusError, match=f"{UNMAPPED:#x}"):
            t.read_burst(UNMAPPED - 8, 4)
        with pytest.raises(BusError, match=f"write at {UNMAPPED:#x}"):
            t.write_burst(UNMAPPED - 4, [1, 2])
        assert bridge.memory[UNMAPPED - 4] == 1   # the words before the error were written


def test_a_dead_link_gives_a_clear_error_quickly(bridge):
    with transport(bridge, retries=2) as t:
        bridge.faults = ["drop_request"] * 3
        start = time.monotonic()
        with pytest.raises(LinkError, match=r"READ at 0x20 failed 3 times: no response"):
            t.read(0x20)
        assert time.monotonic() - start < 2
        assert t.read(0x20) == 0                # and the link works again afterwards


def test_arguments_are_checked(bridge):
    with pytest.raises(ValueError, match="baudrate"):
        SerialTransport(bridge.port, 0)
    with pytest.raises(ValueError, match="retries"):
        SerialTransport(bridge.port, retries=-1)
    with pytest.raises(ValueError, match="verify must be one of"):
        SerialTransport(bridge.port, verify="sometimes")
    with transport(bridge) as t:
        with pytest.raises(ValueError, match="multiple of 4"):
            t.read(0x2)


def test_not_a_bridge():
    master, slave = os.openpty()
    tty.setraw(slave)
    try:
        os.write(master, struct.pack("<B", 0))      # garbage, then silence
        with pytest.raises(LinkError, match="INFO"):
            SerialTransport(os.ttyname(slave), timeout=0.02, retries=1)
    finally:
        os.close(master)
        os.close(slave)


def test_device_memory_bytes(bridge):
    bridge.memory[sp.INFO_BASE] = sp.MEMORY_BASE
    bridge.memory[sp.INFO_BASE + 4] = 4096
    rng = np.random.default_rng(5)
    with transport(bridge) as t:
        assert t.memory_size() == 4096
        whole = rng.integers(0, 256, 300, dtype=np.uint8)
        t.mem_write(0, whole)
        assert bridge.memory[sp.MEMORY_BASE] == int(whole[:4].view("<u4")[0])
        assert np.array_equal(t.mem_read(0, 300), whole)
        # Partial words at both ends, and inside one word: the bytes around are kept.
        for address, size in [(5, 11), (1, 2), (7, 1), (298, 2), (33, 0)]:
            data = rng.integers(0, 256, size, dtype=np.uint8)
            t.mem_write(address, data)
            whole[address:address + size] = data
            assert np.array_equal(t.mem_read(0, 300), whole), (address, size)
            assert np.array_equal(t.mem_read(address, size), data)
        t.mem_write(8, b"\x01\x02")
        assert list(t.mem_read(7, 4)) == [whole[7], 1, 2, whole[10]]
        with pytest.raises(ValueError, match="not inside the device-memory window"):
            t.mem_read(sp.MEMORY_WINDOW - 4, 8)
        with pytest.raises(ValueError, match="non-negative integer"):
            t.mem_write(-1, b"x")


def test_no_device_memory(bridge):
    bridge.memory[sp.INFO_BASE] = 0
    with transport(bridge) as t:
        with pytest.raises(LinkError, match="device memory is at 0x0"):
            t.memory_size()


@pytest.mark.parametrize("command", [sp.Command.READ, sp.Command.WRITE, sp.Command.INFO])
@pytest.mark.parametrize("count", [1, 64, sp.LARGEST_BURST])
def test_exchange_length_is_the_encoded_frames(command, count):
    # The wire bytes the transport and the benchmarks count, against encoded frames.
    payload = list(range(count)) if command == sp.Command.WRITE else []
    answer = {sp.Command.READ: count, sp.Command.INFO: sp.INFO_WORDS}.get(command, 0)
    encoded = (len(sp.encode_request(command, 1, 0, count, payload))
               + len(sp.encode_response(1, sp.Status.OK, 0, list(range(answer)))))
    assert sp.exchange_length(command, count) == encoded
