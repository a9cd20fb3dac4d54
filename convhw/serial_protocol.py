"""The serial bridge protocol: framed Wishbone reads and writes over a UART.

One source of truth for both ends: the gateware bridge
(:class:`convhw.gateware.serial_bridge.SerialBridge`) and the host's
:class:`convhw.driver.serial_transport.SerialTransport` take every constant, layout and the CRC
from here. ``docs/serial-protocol.md`` describes the same protocol for users of other hosts.

Frames (bytes on an 8N1 UART; multi-byte fields little-endian except the CRC)::

    request   0x5A | cmd | tag | count-1 | address (4) | payload (4 x count, WRITE only) | crc (2)
    response  0xA5 | tag | status | detail | words   | payload (4 x words)               | crc (2)

* ``cmd``: :class:`Command`. ``count`` is 1 to the bridge's burst (INFO tells it: at least
  :data:`MAX_BURST`, at most :data:`LARGEST_BURST`) 32-bit words at consecutive word addresses
  from ``address`` (a byte address, a multiple of 4).
* ``tag``: chosen by the host and echoed. The bridge keeps the tag of the last WRITE it
  carried out: a WRITE whose tag equals it is answered with that write's status and **not**
  carried out again, so a host may resend a write whose response it lost. A host therefore
  never gives a new WRITE the tag of the previous one.
* ``crc``: CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, no reflection, no final
  XOR) of every byte after the sync byte up to the end of the payload, sent high byte first.
  Run over the whole frame after the sync byte including the CRC, it leaves 0.
* A response's ``status`` is a :class:`Status`; ``detail`` refines it (the index of the word
  that failed for a bus error, a :class:`Reject` reason for a bad request); ``words`` is the
  number of payload words that follow: ``count`` for a successful READ, :data:`INFO_WORDS` for
  INFO, 0 otherwise.
* Nothing of a WRITE reaches the bus before its CRC has been checked: the bridge buffers the
  payload. A frame that stops arriving for :func:`frame_timeout_bytes` byte times is dropped
  with a ``FRAME_TIMEOUT`` response.

The bus behind the bridge of the boards' top
(:class:`convhw.gateware.serial_list_engine.SerialListEngine`) is mapped as
:data:`REGISTERS_BASE` (the list engine's registers), :data:`INFO_BASE` (two read-only words:
the device memory's base and size) and :data:`MEMORY_BASE` (the device memory, engine address
0, at most :data:`MEMORY_WINDOW` bytes); everything else answers a bus error.
"""

from __future__ import annotations

import dataclasses
import enum
import struct

__all__ = [
    "INFO_MAGIC", "INFO_WORDS", "LARGEST_BURST", "MAX_BURST", "PROTOCOL_VERSION", "REQUEST_SYNC",
    "RESPONSE_SYNC", "Command", "FrameError", "Reject", "Request", "Response", "Status",
    "crc16", "crc16_update", "decode_request", "decode_response", "encode_request",
    "encode_response", "exchange_length", "frame_timeout_bytes", "request_length",
    "response_length",
    "INFO_BASE", "MEMORY_BASE", "MEMORY_KINDS", "MEMORY_WINDOW", "REGISTERS_BASE",
    "check_memory_kind",
]

#: 2: INFO has a fourth word, the receive FIFO's bytes (pipelined requests).
PROTOCOL_VERSION = 2
REQUEST_SYNC = 0x5A
RESPONSE_SYNC = 0xA5
#: The most words one READ or WRITE moves on every bridge (its buffer depth by default; the
#: host-fed top's).
MAX_BURST = 64
#: The longest burst a bridge may take (``SerialBridge(max_burst=)``; the boards' list top's):
#: twice the frames' payload, half the request-response round trips of :data:`MAX_BURST`. A
#: response's ``words`` byte bounds it below 256.
LARGEST_BURST = 128
#: Bytes before the payload: sync, cmd/tag, tag/status, count-1/detail, then the request's
#: 4-byte address (responses have one ``words`` byte instead).
REQUEST_HEADER = 8
RESPONSE_HEADER = 5
CRC_BYTES = 2
#: INFO's payload: magic, protocol version and burst size; the bridge's clock in Hz; the UART
#: divisor (clock cycles per bit); the bytes of its receive FIFO (0: none, one request at a
#: time).
INFO_WORDS = 4
INFO_MAGIC = 0x4357  # "CW"


#: The serial list top's address map (bridge byte addresses; see the module documentation).
REGISTERS_BASE = 0x0000_0000
INFO_BASE = 0x0000_1000          # word 0: MEMORY_BASE, word 1: the device memory's bytes
MEMORY_BASE = 0x0100_0000
MEMORY_WINDOW = 0x0100_0000
#: Where a serial top's device memory is: on-chip block RAM, or an SDRAM behind LiteDRAM
#: (convhw.gateware.serial_list_engine; the ULX3S's, convhw.boards.litedram).
MEMORY_KINDS = ("block_ram", "sdram")


def check_memory_kind(memory: object) -> str:
    """``memory`` if it is one of :data:`MEMORY_KINDS`; raises ValueError otherwise."""
    if memory not in MEMORY_KINDS:
        raise ValueError(f"memory must be {' or '.join(map(repr, MEMORY_KINDS))}, not "
                         f"{memory!r}")
    return memory


class Command(enum.IntEnum):
    INFO = 0
    READ = 1
    WRITE = 2


class Status(enum.IntEnum):
    OK = 0
    #: The request's CRC did not match: nothing was done.
    BAD_CRC = 1
    #: An unknown command, a misaligned address or a count above MAX_BURST (``detail``: a
    #: :class:`Reject`): nothing was done.
    BAD_REQUEST = 2
    #: The bus answered ERR (an unmapped address, a read-only register) at word ``detail``;
    #: the words before it were carried out.
    BUS_ERROR = 3
    #: The bus did not answer within the bridge's bus timeout at word ``detail``.
    BUS_TIMEOUT = 4
    #: The request stopped arriving mid-frame: it was dropped.
    FRAME_TIMEOUT = 5


class Reject(enum.IntEnum):
    UNKNOWN_COMMAND = 1
    MISALIGNED_ADDRESS = 2
    BURST_TOO_LONG = 3


class FrameError(ValueError):
    """Bytes that are not a well-formed frame."""


def frame_timeout_bytes() -> int:
    """Byte times of silence after which the bridge drops a partly received request."""
    return 32


# -- CRC-16/CCITT-FALSE ---------------------------------------------------------------------

def crc16_update(crc: int, byte: int) -> int:
    """One byte into the CRC, bit by bit, as the gateware does it."""
    crc ^= (byte & 0xFF) << 8
    for _ in range(8):
        crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
        crc &= 0xFFFF
    return crc


_TABLE = [crc16_update(0, byte) for byte in range(256)]


def crc16(data: bytes, crc: int = 0xFFFF) -> int:
    """CRC-16/CCITT-FALSE of ``data``; ``crc16(b"123456789") == 0x29B1``."""
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ _TABLE[(crc >> 8) ^ byte]
    return crc


# -- frames ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Request:
    command: int
    tag: int
    address: int = 0
    count: int = 1
    payload: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class Response:
    tag: int
    status: int
    detail: int = 0
    payload: tuple[int, ...] = ()


def request_length(command: int, count: int = 1) -> int:
    return REQUEST_HEADER + (4 * count if command == Command.WRITE else 0) + CRC_BYTES


def response_length(words: int) -> int:
    return RESPONSE_HEADER + 4 * words + CRC_BYTES


def exchange_length(command: int, count: int = 1) -> int:
    """Bytes on the wire, both directions, of one request of ``count`` words and its good
    response (a READ's carries the words, INFO's its :data:`INFO_WORDS`, a WRITE's none)."""
    words = {Command.READ: count, Command.INFO: INFO_WORDS}.get(command, 0)
    return request_length(command, count) + response_length(words)


def _with_crc(body: bytes) -> bytes:
    return body + crc16(body[1:]).to_bytes(2, "big")


def encode_request(command: int, tag: int, address: int = 0, count: int = 1,
                   payload=()) -> bytes:
    """The bytes of one request. ``payload`` (WRITE only) holds ``count`` 32-bit words."""
    payload = [int(w) for w in payload]
    if not 1 <= count <= 256:
        raise ValueError(f"count must be 1..256 on the wire, not {count}")
    if command == Command.WRITE and len(payload) != count:
        raise ValueError(f"a WRITE of {count} words needs {count} payload words, "
                         f"not {len(payload)}")
    if command != Command.WRITE and payload:
        raise ValueError("only a WRITE carries a payload")
    body = struct.pack("<BBBBI", REQUEST_SYNC, command & 0xFF, tag & 0xFF, count - 1,
                       address & 0xFFFFFFFF)
    body += struct.pack(f"<{len(payload)}I", *(w & 0xFFFFFFFF for w in payload))
    return _with_crc(body)


def encode_response(tag: int, status: int, detail: int = 0, payload=()) -> bytes:
    payload = [int(w) & 0xFFFFFFFF for w in payload]
    body = struct.pack("<BBBBB", RESPONSE_SYNC, tag & 0xFF, status & 0xFF, detail & 0xFF,
                       len(payload))
    return _with_crc(body + struct.pack(f"<{len(payload)}I", *payload))


def _check_frame(frame: bytes, sync: int, what: str) -> None:
    if len(frame) < 3 or frame[0] != sync:
        raise FrameError(f"a {what} starts with 0x{sync:02X}")
    if crc16(frame[1:]) != 0:
        raise FrameError(f"{what} CRC mismatch")


def decode_request(frame: bytes) -> Request:
    """A whole request frame (a model of the bridge's parser, for tests)."""
    frame = bytes(frame)
    if len(frame) < REQUEST_HEADER + CRC_BYTES:
        raise FrameError(f"a request has at least {REQUEST_HEADER + CRC_BYTES} bytes")
    _check_frame(frame, REQUEST_SYNC, "request")
    _, command, tag, count, address = struct.unpack_from("<BBBBI", frame)
    count += 1
    words = (len(frame) - REQUEST_HEADER - CRC_BYTES) // 4
    if len(frame) != request_length(command, count):
        raise FrameError(f"request of {len(frame)} bytes for command {command}, count {count}")
    return Request(command, tag, address, count,
                   struct.unpack_from(f"<{words}I", frame, REQUEST_HEADER))


def decode_response(frame: bytes) -> Response:
    """A whole response frame; :class:`FrameError` if it is malformed or its CRC is wrong."""
    frame = bytes(frame)
    if len(frame) < RESPONSE_HEADER + CRC_BYTES:
        raise FrameError(f"a response has at least {RESPONSE_HEADER + CRC_BYTES} bytes")
    _check_frame(frame, RESPONSE_SYNC, "response")
    _, tag, status, detail, words = struct.unpack_from("<BBBBB", frame)
    if len(frame) != response_length(words):
        raise FrameError(f"response of {len(frame)} bytes announces {words} words")
    return Response(tag, status, detail, struct.unpack_from(f"<{words}I", frame,
                                                            RESPONSE_HEADER))


def info_words(clock_hz: int, divisor: int, max_burst: int = MAX_BURST,
               rx_fifo: int = 0) -> tuple[int, int, int, int]:
    """INFO's payload for a bridge at ``clock_hz`` with ``divisor`` clock cycles per bit,
    bursts of up to ``max_burst`` words and a receive FIFO of ``rx_fifo`` bytes."""
    return ((INFO_MAGIC << 16) | ((max_burst - 1) << 8) | PROTOCOL_VERSION, clock_hz, divisor,
            rx_fifo)
