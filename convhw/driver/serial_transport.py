"""``SerialTransport``: the engine on a board, through its UART bridge (pyserial).

Every operation is one request frame and one response frame of :mod:`convhw.serial_protocol`;
bursts are cut into frames of the bridge's max burst (INFO: 64 or 128 words).

Errors on the link are never turned into data:

* a response that does not arrive in time, arrives corrupted (CRC), or reports that the
  request arrived corrupted (``BAD_CRC``) or incomplete (``FRAME_TIMEOUT``) is a failed
  attempt. After the bridge's frame timeout has passed and the input has been flushed, a
  one-word request is sent again with the same tag: a WRITE the bridge had already carried out
  is answered from its record and not repeated (see the protocol's tags), which is what makes a
  write with side effects (START, ABORT) safe to resend. A longer frame is cut in half and its
  words are sent as new requests instead: a frame's chance to cross a noisy line falls
  geometrically with its length, and a burst only ever goes to plain storage (the device
  memory, the job's registers), where writing a word twice is harmless. After
  :data:`GROW_AFTER` clean frames the frame length doubles again, up to the bridge's burst.
  READs have no side effects;
* after ``retries`` consecutive failed attempts (halving included), :class:`LinkError` says
  what went wrong: an operation that makes no progress ends within ``retries + 1`` attempts,
  each bounded by its transfer time plus ``timeout``;
* a bus error (an unmapped address, a read-only register) is the engine's answer, not the
  link's, and raises :class:`~convhw.driver.transport.BusError` (on a suspect line, below,
  after the request has been sent once more as a new one and answered the same).

Suspect line. CRC-16 lets about one corrupted frame in 65,536 pass. On a clean line that never
happens, but on a noisy one (5 % of bytes corrupted: a corrupted frame in most attempts) it
does, once in a few thousand frames, and its request or response is then taken as it arrived:
a WRITE to another address, a READ answered with other data. So for :data:`SUSPECT_FRAMES`
frames after any failed attempt (``verify="auto"``, the default; ``"always"``/``"never"``
instead), the transport checks what it can: a READ frame is read at least twice, as separate
requests, and its payload taken when two answers agree; a frame of
:meth:`SerialTransport.write_burst` (storage: the device memory, the job's registers) is read
back (itself read twice) and compared, and a difference raises :class:`DamagedWriteError` (a
:class:`LinkError` and a :class:`~convhw.driver.transport.WriteDamaged`) at once, since the
corrupted request that the bridge carried out may have written elsewhere (the list driver
then runs its call again, writing everything anew); and a bus
error is confirmed by sending the request again with a new tag. What is left is two corrupted
frames passing in one check (about one in 4e9 corrupted pairs), and a single-word
:meth:`SerialTransport.write` (a control register: its side effects, START or ABORT, make a
read-back meaningless). On a clean line none of this costs anything.

Device memory. Behind the boards' bridge the list engine's memory is a window of the bus
(:data:`~convhw.serial_protocol.MEMORY_BASE`, the map in :mod:`convhw.serial_protocol`):
:meth:`SerialTransport.mem_write` and :meth:`SerialTransport.mem_read` take byte addresses
relative to it (the engine's own addresses) and any byte length, as bursts of whole words (a
partial word at either end is read first and merged, so its other bytes keep their value);
:meth:`SerialTransport.memory_size` reads the window's size from the top's INFO words. With
these the transport is what :class:`~convhw.driver.list_driver.ListDriver` needs.

``port`` is anything ``serial.serial_for_url`` opens: a device (``/dev/ttyUSB0``), a
pseudo-terminal (the simulated board of :mod:`convhw.driver.serial_sim`), or a URL such as
``socket://host:port``.
"""

from __future__ import annotations

import time

import numpy as np

from .. import serial_protocol as sp
from .transport import BusError, Transport, WriteDamaged

__all__ = ["DamagedWriteError", "LinkError", "SerialTransport"]


class LinkError(ConnectionError):
    """The serial link did not carry a request and its response, even after retries."""


class DamagedWriteError(LinkError, WriteDamaged):
    """Words read back differently from what was written: a damaged request was carried out."""


class _NoResponse(Exception):
    pass


class _AttemptFailed(Exception):
    pass


#: Clean frames after which a frame length halved by failures doubles again.
GROW_AFTER = 2
#: Frames after a failed attempt during which the line is suspect and checked (see above).
SUSPECT_FRAMES = 256
#: Frames of one burst sent before their responses are awaited, on a clean line to a bridge
#: with a receive FIFO (a READ's requests only as many as the FIFO holds besides the one being
#: parsed): the USB round trip is paid once per so many frames instead of once per frame.
PIPELINE_FRAMES = 8
VERIFY_MODES = ("auto", "always", "never")


class SerialTransport(Transport):
    """The five transport operations over a serial port to a board's bridge.

    Parameters
    ----------
    port : str
        What ``serial.serial_for_url`` opens.
    baudrate : int
        The bridge's rate (the board's build summary says it; 3,000,000 for the boards here).
    timeout : float
        Seconds a response may be late beyond its transfer time at ``baudrate``.
    retries : int
        Consecutive failed attempts after the first before :class:`LinkError`.
    verify : str
        When reads are doubled and storage writes read back: ``"auto"`` (while the line is
        suspect, see the module's documentation), ``"always"`` or ``"never"``.
    """

    def __init__(self, port: str, baudrate: int = 3_000_000, *, timeout: float = 0.5,
                 retries: int = 12, verify: str = "auto") -> None:
        try:
            import serial
        except ImportError as error:        # pragma: no cover - pyserial is in the dev extra
            raise ImportError("the serial device needs pyserial: pip install pyserial") \
                from error
        if not isinstance(baudrate, int) or isinstance(baudrate, bool) or baudrate <= 0:
            raise ValueError(f"baudrate must be a positive integer, not {baudrate!r}")
        if not isinstance(retries, int) or isinstance(retries, bool) or not 0 <= retries <= 100:
            raise ValueError(f"retries must be an integer from 0 to 100, not {retries!r}")
        if not isinstance(timeout, (int, float)) or not 0 < timeout <= 3600:
            raise ValueError(f"timeout must be a number of seconds in (0, 3600], not "
                             f"{timeout!r}")
        if verify not in VERIFY_MODES:
            raise ValueError(f"verify must be one of {', '.join(map(repr, VERIFY_MODES))}, "
                             f"not {verify!r}")
        self.verify = verify
        self.port_name = port
        self.baudrate = baudrate
        self.timeout = float(timeout)
        self.retries = retries
        self._port = serial.serial_for_url(port, baudrate=baudrate, timeout=self.timeout)
        self._tag = 0
        self._last_write_tag: int | None = None
        #: Link statistics: frames sent and received, and what went wrong on the way.
        self.stats = dict(requests=0, attempts=0, bytes_sent=0, bytes_received=0,
                          no_response=0, corrupt_response=0, bad_crc=0, frame_timeout=0,
                          halved=0, doubled_reads=0, read_backs=0, disagreements=0,
                          pipelined=0,
                          bus_errors_resent=0)
        self._suspect = 0              # frames the line stays suspect
        self.clock_hz = self.divisor = self.max_burst = self.rx_fifo = 0
        self._frame_words = 1          # the frame length in words, adapted to the line
        self._clean = 0                # clean frames since the length last changed
        self._memory_size: int | None = None
        self._identify()

    # -- the link -------------------------------------------------------------------------

    def _identify(self) -> None:
        magic, self.clock_hz, self.divisor, self.rx_fifo = \
            self._request(sp.Command.INFO).payload
        if magic >> 16 != sp.INFO_MAGIC or magic & 0xFF != sp.PROTOCOL_VERSION:
            raise LinkError(f"{self.port_name}: INFO answered {magic:#010x}, not a convhw "
                            f"bridge of protocol version {sp.PROTOCOL_VERSION}")
        self.max_burst = ((magic >> 8) & 0xFF) + 1
        self._frame_words = self.max_burst

    def _byte_seconds(self) -> float:
        return 10 / self.baudrate

    def _new_tag(self, command: int) -> int:
        self._tag = (self._tag + 1) & 0xFF
        if command == sp.Command.WRITE:
            # A new write must not carry the tag of the write the bridge remembers.
            if self._tag == self._last_write_tag:
                self._tag = (self._tag + 1) & 0xFF
            self._last_write_tag = self._tag
        return self._tag

    def _request(self, command: int, address: int = 0, count: int = 1,
                 payload=()) -> sp.Response:
        """One request, sent again with its tag until a response arrives."""
        responses = self._transfer(command, address, count, payload, split=False)
        return responses[0]

    def _verifying(self) -> bool:
        return self.verify == "always" or self.verify == "auto" and self._suspect > 0

    def _transfer(self, command: int, address: int, count: int, payload=(), *,
                  split: bool = True, read_back: bool = False) -> list[sp.Response]:
        """``count`` words at ``address`` as frames of at most :attr:`frame_words` words (with
        ``split``; else one frame), adapting the frame length to the line (see the module's
        documentation); with ``read_back``, a WRITE's frames are read back while the line is
        suspect. The responses, in order."""
        responses, done, problems = [], 0, []
        frame = None
        while done < count:
            if (frame is None and split and self.rx_fifo and not self._verifying()
                    and count - done > self._frame_words):
                done += self._pipelined(command, address, count, payload, done, responses)
                continue
            if frame is None:
                n = min(self._frame_words, count - done) if split else count
                chunk = list(payload[done:done + n]) if command == sp.Command.WRITE else []
                at = address + 4 * done
                words = {sp.Command.READ: n, sp.Command.INFO: sp.INFO_WORDS}.get(command, 0)
                wire = sp.exchange_length(command, n) * self._byte_seconds()
                frame = (command, at, n, chunk, wire)
                # Retries of this frame keep its tag (a WRITE carried out is not repeated),
                # the last one it was sent with; its READ answers so far (suspect line).
                state = dict(tag=self._new_tag(command), seen=[])
                self.stats["requests"] += 1
            if problems:
                self._resynchronise()
            try:
                response = self._attempt_checked(*frame, state)
            except _AttemptFailed as failure:
                self._suspect = SUSPECT_FRAMES
                problems.append(str(failure))
                if len(problems) > self.retries:
                    raise LinkError(
                        f"{self.port_name}: {sp.Command(command).name} at "
                        f"{address + 4 * done:#x} failed {len(problems)} times: "
                        f"{'; '.join(problems)}") from None
                if split and n > 1:
                    # Cut in half; the words go again as new requests.
                    self._frame_words = n // 2
                    self._clean = 0
                    self.stats["halved"] += 1
                    frame = None
                continue
            responses.append(self._check(response, command, at, words))
            if read_back and self._verifying():
                self._read_back(at, chunk)
            done += n
            frame, problems = None, []
            self._suspect = max(0, self._suspect - 1)
            if split:
                self._clean += 1
                if self._clean >= GROW_AFTER and self._frame_words < self.max_burst:
                    self._frame_words = min(self.max_burst, 2 * self._frame_words)
                    self._clean = 0
        return responses

    def _pipelined(self, command: int, address: int, count: int, payload, done: int,
                   responses: list) -> int:
        """From word ``done`` of a burst, up to :data:`PIPELINE_FRAMES` frames sent back to
        back, then their responses taken in order (appended to ``responses``). Returns the
        words done: all of them, or those before the first frame without a usable response;
        then the line is suspect (the caller goes on a frame at a time, checking) and the frames
        after it are sent again, which only storage bursts see: a WRITE carried out twice
        writes the same words."""
        limit = PIPELINE_FRAMES
        if command == sp.Command.READ:
            limit = min(limit, 1 + self.rx_fifo // sp.request_length(sp.Command.READ, 1))
        frames, at_word, wire = [], done, 0
        while len(frames) < limit and at_word < count:
            n = min(self._frame_words, count - at_word)
            chunk = list(payload[at_word:at_word + n]) if command == sp.Command.WRITE else []
            frames.append((address + 4 * at_word, n, chunk, self._new_tag(command)))
            wire += sp.exchange_length(command, n)
            at_word += n
        data = b"".join(sp.encode_request(command, tag, at, n, chunk)
                        for at, n, chunk, tag in frames)
        for key in ("requests", "attempts", "pipelined"):
            self.stats[key] += len(frames)
        self._port.write(data)
        self._port.flush()
        self.stats["bytes_sent"] += len(data)
        deadline = time.monotonic() + wire * self._byte_seconds() + self.timeout
        answers = []
        for *_, tag in frames:
            try:
                response = self._receive(tag, deadline)
            except _NoResponse:
                self.stats["no_response"] += 1
                break
            except sp.FrameError:
                self.stats["corrupt_response"] += 1
                break
            if response.status in (sp.Status.BAD_CRC, sp.Status.FRAME_TIMEOUT):
                self.stats["bad_crc" if response.status == sp.Status.BAD_CRC
                           else "frame_timeout"] += 1
                break
            answers.append(response)
        if len(answers) < len(frames):
            self._suspect = SUSPECT_FRAMES
            self._resynchronise()
        words = 0
        for (at, n, _, _), response in zip(frames, answers):
            responses.append(self._check(response, command, at,
                                         n if command == sp.Command.READ else 0))
            words += n
        return words

    def _attempt_checked(self, command: int, address: int, count: int, chunk: list,
                         wire: float, state: dict) -> sp.Response:
        """One attempt at a frame, under its tag (``state["tag"]``); on a suspect line a bus
        error is confirmed by a second request, and a READ's answer is taken only when two
        answers to it agree (each request under a new tag; ``state["seen"]`` keeps those of
        earlier attempts): :class:`_AttemptFailed` until then."""
        def attempt(tag: int) -> sp.Response:
            state["tag"] = tag           # a WRITE's retries go with the last tag it was sent
            return self._attempt(sp.encode_request(command, tag, address, count, chunk), tag,
                                 wire)

        seen = state["seen"]
        response = attempt(state["tag"])
        if not self._verifying():
            return response
        if response.status in (sp.Status.BUS_ERROR, sp.Status.BUS_TIMEOUT):
            # A corrupted address the CRC let by reaches an unmapped one: ask again. (Nothing
            # was carried out: a bus error stops a WRITE at its first failing word, and the
            # words before it are storage, written again with the same values.)
            self.stats["bus_errors_resent"] += 1
            response = attempt(self._new_tag(command))
        if command != sp.Command.READ:
            return response
        while True:
            answer = (response.status, tuple(response.payload))
            if answer in seen:
                return response
            seen.append(answer)
            if len(seen) > 1:
                self.stats["disagreements"] += 1
                if len(seen) % 3 == 0:       # bounded: counts as a failed attempt
                    raise _AttemptFailed(f"{len(seen)} answers to one READ disagree")
            self.stats["doubled_reads"] += 1
            response = attempt(self._new_tag(command))     # a failure ends the attempt

    def _read_back(self, address: int, words: list) -> None:
        """Compare the words at ``address`` with ``words``, just written (suspect line)."""
        self.stats["read_backs"] += 1
        got = [w for r in self._transfer(sp.Command.READ, address, len(words))
               for w in r.payload]
        if got != [int(w) for w in words]:
            self.stats["disagreements"] += 1
            raise DamagedWriteError(
                f"{self.port_name}: the {len(words)} words written at {address:#x} read back "
                f"differently: the bridge carried out a request that was corrupted on the "
                f"line (its CRC let it by), which may have written elsewhere; device memory "
                f"and registers must be written again")

    def _attempt(self, frame: bytes, tag: int, wire: float) -> sp.Response:
        """Send ``frame`` once and return its response; :class:`_AttemptFailed` says why
        there is none usable."""
        self.stats["attempts"] += 1
        self._port.write(frame)
        self._port.flush()
        self.stats["bytes_sent"] += len(frame)
        try:
            response = self._receive(tag, time.monotonic() + wire + self.timeout)
        except _NoResponse as error:
            self.stats["no_response"] += 1
            raise _AttemptFailed(str(error)) from None
        except sp.FrameError as error:
            self.stats["corrupt_response"] += 1
            raise _AttemptFailed(f"corrupted response ({error})") from None
        if response.status == sp.Status.BAD_CRC:
            self.stats["bad_crc"] += 1
            raise _AttemptFailed("the bridge received a corrupted request")
        if response.status == sp.Status.FRAME_TIMEOUT:
            self.stats["frame_timeout"] += 1
            raise _AttemptFailed("the bridge received an incomplete request")
        return response

    def _receive(self, tag: int, deadline: float) -> sp.Response:
        """The response carrying ``tag``; responses to earlier attempts are skipped."""
        while True:
            sync = self._read(1, deadline)
            if sync[0] != sp.RESPONSE_SYNC:
                continue
            header = sync + self._read(sp.RESPONSE_HEADER - 1, deadline)
            words = header[-1]
            if words > sp.LARGEST_BURST:
                raise sp.FrameError(f"response announces {words} words")
            frame = header + self._read(4 * words + sp.CRC_BYTES, deadline)
            response = sp.decode_response(frame)
            if response.tag == tag:
                return response

    def _read(self, count: int, deadline: float) -> bytes:
        data = b""
        while len(data) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _NoResponse(f"no response within {self.timeout:g} s"
                                  if not data else f"response stopped after {len(data)} bytes")
            self._port.timeout = remaining
            chunk = self._port.read(count - len(data))
            self.stats["bytes_received"] += len(chunk)
            data += chunk
        return data

    def _resynchronise(self) -> None:
        """Let the bridge drop whatever it was receiving, then forget stale input."""
        time.sleep(max(0.002, 2 * sp.frame_timeout_bytes() * self._byte_seconds()))
        self._port.reset_input_buffer()

    def _check(self, response: sp.Response, command: int, address: int,
               words: int) -> sp.Response:
        if response.status in (sp.Status.BUS_ERROR, sp.Status.BUS_TIMEOUT):
            what = "error" if response.status == sp.Status.BUS_ERROR else "timeout"
            verb = "write" if command == sp.Command.WRITE else "read"
            raise BusError(f"bus {what} on the {verb} at {address + 4 * response.detail:#x}")
        if response.status != sp.Status.OK:
            raise LinkError(f"{self.port_name}: the bridge rejected a request: "
                            f"{sp.Status(response.status).name} (detail {response.detail})")
        if len(response.payload) != words:
            raise LinkError(f"{self.port_name}: {len(response.payload)} words in a response "
                            f"that should carry {words}")
        return response

    # -- the transport operations ---------------------------------------------------------

    @staticmethod
    def _address(address: int) -> int:
        if not isinstance(address, (int, np.integer)) or address < 0 or address % 4:
            raise ValueError(f"address must be a non-negative multiple of 4, not {address!r}")
        return int(address)

    def write(self, address: int, value: int) -> None:
        # A control register, perhaps with side effects: never read back.
        self._transfer(sp.Command.WRITE, self._address(address), 1, [int(value) & 0xFFFFFFFF])

    def read(self, address: int) -> int:
        return int(self.read_burst(address, 1)[0])

    def write_burst(self, address: int, words) -> None:
        address = self._address(address)
        words = np.asarray(words, dtype=np.uint32).tolist()
        if words:
            self._transfer(sp.Command.WRITE, address, len(words), words, read_back=True)

    def read_burst(self, address: int, count: int) -> np.ndarray:
        address = self._address(address)
        out = []
        if count:
            for response in self._transfer(sp.Command.READ, address, count):
                out += response.payload
        return np.array(out, dtype=np.uint32)

    @property
    def frame_words(self) -> int:
        """The longest frame the transport sends now, in words: the bridge's burst on a clean
        line, less after failed attempts (see the module's documentation)."""
        return self._frame_words

    def poll_cycles(self) -> int:
        """Engine cycles one STATUS poll takes at the least: its two frames on the wire."""
        frames = sp.request_length(sp.Command.READ) + sp.response_length(1)
        return frames * 10 * self.divisor

    def wait_idle(self, status_address: int, max_cycles: int) -> None:
        # Each poll lasts at least poll_cycles() engine cycles, so counting polls bounds the
        # engine's time whatever the wall-clock speed of the board (or of a simulation).
        for _ in range(max_cycles // self.poll_cycles() + 2):
            if not self.read(status_address) & 1:
                return
        raise TimeoutError(f"the engine stayed busy for {max_cycles} cycles")

    # -- device memory (the serial list top) ------------------------------------------------

    def memory_size(self) -> int:
        """Bytes of device memory, from the top's INFO words; :class:`LinkError` if the board
        has none at :data:`~convhw.serial_protocol.MEMORY_BASE` (a top without device memory
        answers the INFO address with a bus error)."""
        if self._memory_size is None:
            try:
                base, size = self.read_burst(sp.INFO_BASE, 2).tolist()
            except BusError:
                raise LinkError(f"{self.port_name}: the board has no device memory (its INFO "
                                f"words at {sp.INFO_BASE:#x} answer a bus error): it does not "
                                f"run the list engine") from None
            if base != sp.MEMORY_BASE:
                raise LinkError(f"{self.port_name}: the board's device memory is at {base:#x}, "
                                f"this host expects it at {sp.MEMORY_BASE:#x}")
            self._memory_size = size
        return self._memory_size

    @staticmethod
    def _span(address, size) -> tuple[int, int, int]:
        if not isinstance(address, (int, np.integer)) or isinstance(address, bool) \
                or address < 0:
            raise ValueError(f"address must be a non-negative integer, not {address!r}")
        address, size = int(address), int(size)
        if size < 0 or address + size > sp.MEMORY_WINDOW:
            raise ValueError(f"{size} bytes at {address:#x} are not inside the device-memory "
                             f"window of {sp.MEMORY_WINDOW:#x} bytes")
        start = address & ~3
        return address, start, (address + size + 3) & ~3

    def mem_write(self, address: int, data) -> None:
        """Write the bytes ``data`` (a ``uint8`` array or bytes) at device-memory ``address``."""
        data = np.frombuffer(bytes(data), np.uint8) if isinstance(data, (bytes, bytearray)) \
            else np.asarray(data, dtype=np.uint8).ravel()
        address, start, end = self._span(address, data.size)
        if not data.size:
            return
        buffer = np.zeros(end - start, np.uint8)
        if start != address:
            buffer[:4] = self.read_burst(sp.MEMORY_BASE + start, 1).view(np.uint8)
        if address + data.size != end:
            buffer[-4:] = self.read_burst(sp.MEMORY_BASE + end - 4, 1).view(np.uint8)
        buffer[address - start:address - start + data.size] = data
        self.write_burst(sp.MEMORY_BASE + start, buffer.view("<u4"))

    def mem_read(self, address: int, size: int) -> np.ndarray:
        """``size`` bytes of device memory from ``address``, a ``uint8`` array."""
        address, start, end = self._span(address, size)
        if size == 0:
            return np.zeros(0, np.uint8)
        words = self.read_burst(sp.MEMORY_BASE + start, (end - start) // 4)
        return words.astype("<u4").view(np.uint8)[address - start:address - start + size].copy()

    def close(self) -> None:
        self._port.close()
