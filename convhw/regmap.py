"""Register maps as plain data: registers, their fields and memory windows on a 32-bit bus,
and the generators of their documentation, C header and JSON description.

A :class:`RegisterMap` is the one description of everything a host can reach on a bus slave:
the gateware (:class:`convhw.gateware.register_file.RegisterFile`, the Wishbone slave), the host
driver, the generated C header, the JSON description and the Markdown documentation are all built
from it, so none of them restates an address or a bit position. The engine's own map is
:func:`convhw.registers.engine_register_map`. This module imports no Amaranth: the host driver
imports it on machines that have no gateware toolchain.

Addressing
----------
* Every address here is a **byte address**. The bus is 32 bits wide and is accessed in whole
  32-bit words only: addresses are word-aligned and there are no byte or half-word accesses (the
  Wishbone slave answers a partial ``SEL`` with an error). A bus word address is the byte address
  divided by 4.
* **Registers** are single words in the register space, bytes ``[0, register_space)`` (4 KiB by
  default). A register is a set of :class:`Field` s, each ``ro`` (the hardware drives it; writes to
  a register with only ``ro`` fields are errors), ``rw`` (the host writes it, the hardware reads
  it; reads return the last value written) or ``w1p`` (write-1-pulse: writing a 1 gives the
  hardware a one-cycle pulse; it always reads as 0).
* **Windows** are memory regions of 32-bit words above the register space, each at an address
  aligned to its size rounded up to a power of two; addresses in that aligned span past the
  window's last word are unmapped.

Generated text (:meth:`RegisterMap.to_markdown`, :meth:`RegisterMap.to_c_header`,
:meth:`RegisterMap.to_json`) is byte-for-byte deterministic, so a checked-in copy can be diffed
against a fresh one.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import re
import textwrap
from collections.abc import Iterable, Mapping
from typing import Any

from .config import BUS_DATA_WIDTH, EngineConfig

__all__ = ["ACCESS_MODES", "DEFAULT_REGISTER_SPACE", "WINDOW_ACCESS_MODES", "Field",
           "Register", "RegisterMap", "Window"]

#: Field access modes, see the module documentation.
ACCESS_MODES = ("ro", "rw", "w1p")
#: Window access modes.
WINDOW_ACCESS_MODES = ("rw", "ro")

#: Bytes of register space of a :class:`RegisterMap` unless it says otherwise.
DEFAULT_REGISTER_SPACE = 0x1000

_WORD_BYTES = BUS_DATA_WIDTH // 8
_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
# C macro prefix of the generated header; also the include guard's stem.
_PREFIX = "CONVHW"
_JSON_FORMAT = "convhw-register-map"
_JSON_VERSION = 1


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _check_name(what: str, name: Any) -> str:
    # Names become C macro parts (upper case) and Amaranth member names (lower case).
    if not isinstance(name, str):
        raise TypeError(f"{what} name must be a string, not {name!r}")
    if not _NAME.fullmatch(name):
        raise ValueError(f"{what} name must be an upper-case identifier ([A-Z][A-Z0-9_]*), "
                         f"not {name!r}")
    return name


def _check_str(what: str, value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a string, not {value!r}")
    return value


def _check_range(what: str, value: Any, low: int, high: int) -> int:
    if not _is_int(value):
        raise TypeError(f"{what} must be an integer from {low} to {high}, not {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{what} must be an integer from {low} to {high}, not {value!r}")
    return int(value)


def _check_address(what: str, address: Any) -> None:
    if not _is_int(address):
        raise TypeError(f"{what} address must be a non-negative integer, not {address!r}")
    if address < 0:
        raise ValueError(f"{what} address must be a non-negative integer, not {address!r}")


def _pow2_ceil(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


def _hex(value: int, digits: int = 3) -> str:
    return f"0x{value:0{digits}x}"


@dataclasses.dataclass(frozen=True)
class Field:
    """A bit field of a :class:`Register`.

    Parameters
    ----------
    name : str
        Upper-case identifier, unique within its register.
    width : int
        Bits, 1..32.
    offset : int
        Least significant bit in the register, so that the field occupies bits
        ``[offset + width - 1 : offset]``.
    access : str
        ``"ro"``, ``"rw"`` or ``"w1p"`` (see the module documentation); a ``w1p`` field is one bit
        wide and resets to 0.
    description : str
        One line for the documentation.
    reset : int
        Value after reset; for an ``ro`` field that the hardware does not drive (a constant such
        as ``ID``), the value it always reads as.
    """

    name: str
    width: int
    offset: int
    access: str
    description: str
    reset: int = 0

    def __post_init__(self) -> None:
        _check_name("field", self.name)
        _check_range(f"field {self.name!r} width", self.width, 1, BUS_DATA_WIDTH)
        _check_range(f"field {self.name!r} offset", self.offset, 0, BUS_DATA_WIDTH - 1)
        if self.offset + self.width > BUS_DATA_WIDTH:
            raise ValueError(f"field {self.name!r} must fit in bits [{BUS_DATA_WIDTH - 1}:0], "
                             f"not occupy bits {self.bits}")
        if self.access not in ACCESS_MODES:
            raise ValueError(f"field {self.name!r} access must be one of "
                             f"{', '.join(map(repr, ACCESS_MODES))}, not {self.access!r}")
        _check_str(f"field {self.name!r} description", self.description)
        _check_range(f"field {self.name!r} reset", self.reset, 0, (1 << self.width) - 1)
        if self.access == "w1p" and (self.width != 1 or self.reset != 0):
            raise ValueError(f"w1p field {self.name!r} must be 1 bit wide with reset 0, "
                             f"not {self.width} bits with reset {self.reset}")

    @property
    def msb(self) -> int:
        return self.offset + self.width - 1

    @property
    def bits(self) -> str:
        """``"[msb:lsb]"``."""
        return f"[{self.msb}:{self.offset}]"

    @property
    def mask(self) -> int:
        """The field's bits in place in the register word."""
        return ((1 << self.width) - 1) << self.offset


@dataclasses.dataclass(frozen=True)
class Register:
    """A 32-bit register.

    Parameters
    ----------
    name : str
        Upper-case identifier, unique within the map.
    address : int
        Byte address, a multiple of 4.
    fields : sequence of Field
        At least one; they must not overlap.
    description : str
        One line for the documentation.
    """

    name: str
    address: int
    fields: tuple[Field, ...]
    description: str

    def __post_init__(self) -> None:
        _check_name("register", self.name)
        _check_address(f"register {self.name!r}", self.address)
        if self.address % _WORD_BYTES:
            raise ValueError(f"register {self.name!r} address must be a multiple of "
                             f"{_WORD_BYTES}, not {_hex(self.address)}")
        if isinstance(self.fields, (str, Field)) or not isinstance(self.fields, Iterable):
            raise TypeError(f"register {self.name!r} fields must be a sequence of Field, "
                            f"not {self.fields!r}")
        fields = tuple(self.fields)
        for field in fields:
            if not isinstance(field, Field):
                raise TypeError(f"register {self.name!r} fields must be a sequence of Field, "
                                f"not {self.fields!r}")
        if not fields:
            raise ValueError(f"register {self.name!r} must have at least one field")
        # Fields are kept in bit order so that every generator lists them the same way.
        fields = tuple(sorted(fields, key=lambda f: f.offset))
        object.__setattr__(self, "fields", fields)
        seen: dict[str, Field] = {}
        for field in fields:
            if field.name in seen:
                raise ValueError(f"register {self.name!r} has two fields named {field.name!r}")
            seen[field.name] = field
        for lower, upper in zip(fields, fields[1:]):
            if upper.offset <= lower.msb:
                raise ValueError(f"field {upper.name!r} bits {upper.bits} overlap field "
                                 f"{lower.name!r} bits {lower.bits} in register {self.name!r}")
        _check_str(f"register {self.name!r} description", self.description)

    @property
    def reset(self) -> int:
        """The register word after reset."""
        return sum(field.reset << field.offset for field in self.fields)

    @property
    def writable(self) -> bool:
        """Whether the host may write it: a register of ``ro`` fields only is read-only."""
        return any(field.access != "ro" for field in self.fields)

    @property
    def access(self) -> str:
        """The access modes of its fields, ``"/"``-joined (``"ro"``, ``"rw/w1p"``, ...)."""
        modes = {field.access for field in self.fields}
        return "/".join(mode for mode in ACCESS_MODES if mode in modes)

    def field(self, name: str) -> Field:
        for field in self.fields:
            if field.name == name:
                return field
        raise KeyError(f"register {self.name!r} has no field {name!r}; its fields are "
                       f"{', '.join(f.name for f in self.fields)}")


@dataclasses.dataclass(frozen=True)
class Window:
    """A region of 32-bit words on the bus, backed by a memory or a datapath.

    Parameters
    ----------
    name : str
        Upper-case identifier, unique within the map.
    address : int
        Byte address of word 0, a multiple of :attr:`span`.
    words : int
        32-bit words in the window, at least 1.
    description : str
        One line for the documentation.
    access : str
        ``"rw"`` or ``"ro"`` (writes to an ``ro`` window are errors).
    layout : str
        How the window's words map onto the memory behind it, for the documentation.
    """

    name: str
    address: int
    words: int
    description: str
    access: str = "rw"
    layout: str = ""

    def __post_init__(self) -> None:
        _check_name("window", self.name)
        _check_range(f"window {self.name!r} words", self.words, 1, 1 << 30)
        _check_address(f"window {self.name!r}", self.address)
        if self.address % self.span:
            raise ValueError(f"window {self.name!r} address must be a multiple of "
                             f"{_hex(self.span)} (its size rounded up to a power of two), "
                             f"not {_hex(self.address)}")
        _check_str(f"window {self.name!r} description", self.description)
        if self.access not in WINDOW_ACCESS_MODES:
            raise ValueError(f"window {self.name!r} access must be one of "
                             f"{', '.join(map(repr, WINDOW_ACCESS_MODES))}, not {self.access!r}")
        _check_str(f"window {self.name!r} layout", self.layout)

    @property
    def size(self) -> int:
        """Bytes."""
        return self.words * _WORD_BYTES

    @property
    def span(self) -> int:
        """Bytes of address space it reserves: :attr:`size` rounded up to a power of two."""
        return _pow2_ceil(self.size)

    @property
    def offset_width(self) -> int:
        """Bits of a word offset into the window (at least 1)."""
        return max(1, (self.words - 1).bit_length())


class RegisterMap:
    """Registers and windows of one bus slave.

    Parameters
    ----------
    registers : iterable of Register
    windows : iterable of Window
    register_space : int
        Bytes of address space at address 0 that belong to registers: a power of two, at least 4.
        Every register lies below it, every window above.
    config : EngineConfig, optional
        The configuration the map was built from; recorded in the generated files.

    Raises
    ------
    ValueError
        If names repeat, registers or windows overlap, a register lies outside the register space
        or a window inside it, or two generated C macro names would collide.
    """

    def __init__(self, registers: Iterable[Register] = (), windows: Iterable[Window] = (), *,
                 register_space: int = DEFAULT_REGISTER_SPACE,
                 config: EngineConfig | None = None) -> None:
        registers = tuple(registers)
        windows = tuple(windows)
        for register in registers:
            if not isinstance(register, Register):
                raise TypeError(f"registers must be Register objects, not {register!r}")
        for window in windows:
            if not isinstance(window, Window):
                raise TypeError(f"windows must be Window objects, not {window!r}")
        if (not _is_int(register_space) or register_space < _WORD_BYTES
                or register_space & (register_space - 1)):
            raise ValueError(f"register_space must be a power of two of at least {_WORD_BYTES} "
                             f"bytes, not {register_space!r}")
        if config is not None and not isinstance(config, EngineConfig):
            raise TypeError(f"config must be an EngineConfig or None, not {config!r}")

        names: dict[str, str] = {}
        for kind, item in [("register", r) for r in registers] + [("window", w) for w in windows]:
            if item.name in names:
                raise ValueError(f"{kind} name {item.name!r} is already used by a "
                                 f"{names[item.name]}")
            names[item.name] = kind

        by_address: dict[int, Register] = {}
        for register in registers:
            if register.address >= register_space:
                raise ValueError(f"register {register.name!r} address must be below the register "
                                 f"space end {_hex(register_space)}, not "
                                 f"{_hex(register.address)}")
            if register.address in by_address:
                raise ValueError(f"register {register.name!r} at {_hex(register.address)} "
                                 f"overlaps register {by_address[register.address].name!r}")
            by_address[register.address] = register

        spans = [(0, register_space, "the register space")]
        for window in windows:
            start, end = window.address, window.address + window.span
            for other_start, other_end, other in spans:
                if start < other_end and other_start < end:
                    raise ValueError(f"window {window.name!r} at {_hex(start)}..{_hex(end - 1)} "
                                     f"overlaps {other} at "
                                     f"{_hex(other_start)}..{_hex(other_end - 1)}")
            spans.append((start, end, f"window {window.name!r}"))

        # Kept in address order: generators and the gateware then never depend on the order
        # entries were appended in.
        self._registers = tuple(sorted(registers, key=lambda r: r.address))
        self._windows = tuple(sorted(windows, key=lambda w: w.address))
        self._register_space = int(register_space)
        self._config = config
        self._check_macro_names()

    # -- lookup ---------------------------------------------------------------------------------

    @property
    def registers(self) -> tuple[Register, ...]:
        """In address order."""
        return self._registers

    @property
    def windows(self) -> tuple[Window, ...]:
        """In address order."""
        return self._windows

    @property
    def register_space(self) -> int:
        return self._register_space

    @property
    def config(self) -> EngineConfig | None:
        return self._config

    @property
    def size(self) -> int:
        """Bytes of address space the map decodes: the end of its highest region."""
        ends = [self._register_space] + [w.address + w.span for w in self._windows]
        return max(ends)

    @property
    def address_width(self) -> int:
        """Bits of a byte address covering :attr:`size`."""
        return (self.size - 1).bit_length()

    @property
    def bus_address_width(self) -> int:
        """Bits of a bus word address (``ADR``): :attr:`address_width` minus 2."""
        return max(1, self.address_width - 2)

    @property
    def register_address_width(self) -> int:
        """Bits of a word index into the register space."""
        return max(1, (self._register_space // _WORD_BYTES - 1).bit_length())

    def __getitem__(self, name: str) -> Register:
        for register in self._registers:
            if register.name == name:
                return register
        raise KeyError(f"the register map has no register {name!r}")

    def __contains__(self, name: object) -> bool:
        return any(item.name == name for item in self._registers + self._windows)

    def window(self, name: str) -> Window:
        for window in self._windows:
            if window.name == name:
                return window
        raise KeyError(f"the register map has no window {name!r}")

    def field(self, register: str, name: str) -> Field:
        return self[register].field(name)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, RegisterMap):
            return NotImplemented
        return (self._registers, self._windows, self._register_space, self._config) == (
            other._registers, other._windows, other._register_space, other._config)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"RegisterMap({len(self._registers)} registers, {len(self._windows)} windows, "
                f"{_hex(self.size, 0)} bytes)")

    # -- generators -----------------------------------------------------------------------------

    def _source(self) -> str:
        return repr(self._config) if self._config is not None else "a hand-built RegisterMap"

    def _macros(self) -> list[tuple[str, str, str | None]]:
        """``(name, value, comment)`` of every macro of the C header, ``comment`` starting a
        group; ``name`` is without the prefix."""
        macros: list[tuple[str, str, str | None]] = []
        if self._config is not None:
            comment = "EngineConfig parameters"
            for field in dataclasses.fields(self._config):
                value = getattr(self._config, field.name)
                # C values: flags as 1/0, names as string literals.
                text = (str(int(value)) if isinstance(value, bool) else
                        f'"{value}"' if isinstance(value, str) else str(value))
                macros.append((f"CFG_{field.name.upper()}", text, comment))
                comment = None
        macros.append(("REGISTER_SPACE", f"{_hex(self._register_space)}u",
                       "Bus: byte addresses, 32-bit word accesses only"))
        macros.append(("ADDRESS_SPACE", f"{_hex(self.size)}u", None))
        for register in self._registers:
            comment = f"{register.name} ({register.access}): {register.description}"
            macros.append((f"{register.name}_ADDR", f"{_hex(register.address)}u", comment))
            macros.append((f"{register.name}_RESET", f"{_hex(register.reset, 8)}u", None))
            for field in register.fields:
                stem = f"{register.name}_{field.name}"
                macros.append((f"{stem}_SHIFT", str(field.offset), None))
                macros.append((f"{stem}_WIDTH", str(field.width), None))
                macros.append((f"{stem}_MASK", f"{_hex(field.mask, 8)}u", None))
        for window in self._windows:
            comment = f"{window.name} window ({window.access}): {window.description}"
            macros.append((f"{window.name}_BASE", f"{_hex(window.address)}u", comment))
            macros.append((f"{window.name}_SIZE", f"{_hex(window.size)}u", None))
            macros.append((f"{window.name}_WORDS", f"{window.words}u", None))
        return macros

    def _check_macro_names(self) -> None:
        # "A_B" field "C" and "A" field "B_C" would both define CONVHW_A_B_C_SHIFT.
        seen: set[str] = set()
        for name, _, _ in self._macros():
            if name in seen:
                raise ValueError(f"register map names must give distinct C macros, but "
                                 f"{_PREFIX}_{name} is generated twice")
            seen.add(name)

    def to_c_header(self) -> str:
        """A C header: ``CONVHW_<REG>_ADDR``, ``_RESET``, ``CONVHW_<REG>_<FIELD>_SHIFT``,
        ``_WIDTH``, ``_MASK`` (the field's bits in place), ``CONVHW_<WINDOW>_BASE``, ``_SIZE``
        (bytes), ``_WORDS``, and ``CONVHW_CFG_<PARAM>`` for the configuration."""
        guard = f"{_PREFIX}_REGS_H"
        source = textwrap.wrap(f"Generated by convhw.registers from {self._source()}.", 90,
                               break_on_hyphens=False)
        lines = [
            "/* convhw register map.",
            *(f" * {line}" for line in source),
            " * Do not edit: regenerate it instead.",
            " *",
            " * Addresses are byte addresses; the bus takes 32-bit word accesses only.",
            " * A field reads as (reg & _MASK) >> _SHIFT.",
            " */",
            f"#ifndef {guard}",
            f"#define {guard}",
        ]
        for name, value, comment in self._macros():
            if comment is not None:
                lines += ["", f"/* {comment} */"]
            lines.append(f"#define {_PREFIX}_{name} {value}")
        lines += ["", f"#endif /* {guard} */", ""]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Everything in the map as JSON-compatible data; :meth:`from_dict` inverts it."""
        config = None
        if self._config is not None:
            config = {f.name: getattr(self._config, f.name)
                      for f in dataclasses.fields(self._config)}
        return {
            "format": _JSON_FORMAT,
            "format_version": _JSON_VERSION,
            "config": config,
            "bus": {"data_width": BUS_DATA_WIDTH, "address_width": self.address_width,
                    "register_space": self._register_space, "size": self.size},
            "registers": [{
                "name": r.name, "address": r.address, "description": r.description,
                "reset": r.reset, "access": r.access,
                "fields": [dataclasses.asdict(f) for f in r.fields],
            } for r in self._registers],
            "windows": [dataclasses.asdict(w) for w in self._windows],
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as sorted, indented JSON with a final newline."""
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RegisterMap:
        if not isinstance(data, Mapping) or data.get("format") != _JSON_FORMAT:
            raise ValueError(f"data must be a {_JSON_FORMAT!r} mapping, not {data!r}")
        if data.get("format_version") != _JSON_VERSION:
            raise ValueError(f"format_version must be {_JSON_VERSION}, "
                             f"not {data.get('format_version')!r}")
        config = data["config"]
        return cls(
            [Register(r["name"], r["address"], [Field(**f) for f in r["fields"]],
                      r["description"]) for r in data["registers"]],
            [Window(**w) for w in data["windows"]],
            register_space=data["bus"]["register_space"],
            config=None if config is None else EngineConfig(**config))

    @classmethod
    def from_json(cls, text: str) -> RegisterMap:
        return cls.from_dict(json.loads(text))

    def to_markdown(self) -> str:
        """The map as Markdown: a register summary, a field table per register, the windows."""

        def cell(text: str) -> str:
            return text.replace("|", "\\|")

        lines = [
            "# convhw register map",
            "",
            f"Generated by `convhw.registers` from `{self._source()}`; do not edit.",
            "",
            "Addresses are byte addresses; the bus is 32 bits wide and takes whole-word accesses "
            "only. Access: `ro` is driven by the hardware (writing a register whose fields are "
            "all `ro` is a bus error), `rw` is written by the host and reads back, `w1p` "
            "(write-1-pulse) gives the hardware a one-cycle pulse per 1 written and reads as 0. "
            "Unmapped addresses are bus errors.",
            "",
            "## Registers",
            "",
            f"Register space: `{_hex(0)}`..`{_hex(self._register_space - 1)}`.",
            "",
            "| address | register | access | reset | description |",
            "|---|---|---|---|---|",
        ]
        for r in self._registers:
            lines.append(f"| `{_hex(r.address)}` | [{r.name}](#{r.name.lower()}) | {r.access} | "
                         f"`{_hex(r.reset, 8)}` | {cell(r.description)} |")
        for r in self._registers:
            lines += [
                "", f"### {r.name}", "",
                f"`{_hex(r.address)}`, {r.access}: {cell(r.description)}", "",
                "| bits | field | access | reset | description |",
                "|---|---|---|---|---|",
            ]
            for f in reversed(r.fields):
                lines.append(f"| {f.bits} | {f.name} | {f.access} | `{_hex(f.reset, 0)}` | "
                             f"{cell(f.description)} |")
        if self._windows:
            lines += [
                "", "## Windows", "",
                "| base | end | words | window | access | description |",
                "|---|---|---|---|---|---|",
            ]
            for w in self._windows:
                lines.append(f"| `{_hex(w.address, 5)}` | `{_hex(w.address + w.size - 1, 5)}` | "
                             f"{w.words} | [{w.name}](#{w.name.lower()}) | {w.access} | "
                             f"{cell(w.description)} |")
            for w in self._windows:
                lines += ["", f"### {w.name}", "",
                          f"`{_hex(w.address, 5)}`..`{_hex(w.address + w.size - 1, 5)}` "
                          f"({w.words} words of {BUS_DATA_WIDTH} bits), {w.access}: "
                          f"{cell(w.description)}"]
                if w.layout:
                    lines += ["", w.layout]
        lines.append("")
        return "\n".join(lines)
