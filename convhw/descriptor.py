"""The job descriptor and the per-column parameter block, as plain data.

The engine runs *descriptor lists* from memory: an array of fixed-size job descriptors that the
host (or the compiler, for a whole network) writes once and starts with one register write. This
module defines the two memory formats the engine reads, once, for every consumer: the compiler
that writes them (:mod:`convhw.compiler.lower`), the NumPy model that executes them
(:mod:`convhw.compiler.list_model`), the gateware that will decode them, and the generated
Markdown, C header and JSON (:meth:`MemoryFormat.to_markdown`, :meth:`MemoryFormat.to_c_header`,
:meth:`MemoryFormat.to_json`). It imports no Amaranth.

Conventions
-----------
* A format is a whole number of little-endian 32-bit words; a field lies inside one word, at
  bits ``[offset + width - 1 : offset]``. Every bit that no field covers is reserved and must be
  0: the engine refuses a descriptor with a reserved bit set (``ErrorCode.BAD_DESCRIPTOR``), so
  that a pointer into garbage stops the list instead of running it.
* Geometry fields have fixed slots whatever the engine (16 bits for sizes and coordinates, 8 for
  kernel, stride and dilation): a descriptor list is portable between engines, and an engine
  whose ``coord_width`` or ``param_width`` is narrower refuses a value beyond them
  (``ErrorCode.FIELD_TOO_WIDE``). The geometry fields and their meaning are the job's
  (:data:`convhw.job_format.AXIS_FIELDS`), packed here in the same order.
* Byte addresses and pitches are 32 bits.
"""

from __future__ import annotations

import dataclasses
import json
import re
import textwrap
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from .config import EngineConfig
from .job_format import AXIS_FIELDS

__all__ = ["COLUMN_PARAMS", "DESCRIPTOR_MAGIC", "FLOAT_COLUMN_PARAMS", "FORMATS",
           "JOB_DESCRIPTOR", "FormatField", "MemoryFormat", "column_params", "formats_c_header",
           "formats_json", "formats_markdown"]

_NAME = re.compile(r"[A-Z][A-Z0-9_]*")
_PREFIX = "CONVHW"
_JSON_FORMAT = "convhw-memory-format"
_JSON_VERSION = 1

#: Value of ``CONTROL.MAGIC`` in every valid job descriptor (``0xCD``: "convhw descriptor").
DESCRIPTOR_MAGIC = 0xCD

#: The engine with the widest geometry fields: a descriptor's slot for a field is as wide as the
#: field is in it (16 bits for sizes and coordinates, 8 for kernel, stride and dilation).
_WIDEST = EngineConfig(coord_width=16, param_width=8)


@dataclasses.dataclass(frozen=True)
class FormatField:
    """A field of a :class:`MemoryFormat`.

    Parameters
    ----------
    name : str
        Upper-case identifier, unique within the format.
    word : int
        Index of the 32-bit word that holds it.
    offset, width : int
        Least significant bit and bits, inside the word.
    description : str
        One line for the documentation.
    signed : bool
        Whether the value is two's complement (decoded as a negative number when its top bit is
        set).
    """

    name: str
    word: int
    offset: int
    width: int
    description: str
    signed: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.fullmatch(self.name):
            raise ValueError(f"field name must be an upper-case identifier, not {self.name!r}")
        for what, value, low, high in (("word", self.word, 0, 1 << 16),
                                       ("offset", self.offset, 0, 31),
                                       ("width", self.width, 1, 32)):
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"field {self.name!r} {what} must be an integer from {low} to "
                                 f"{high}, not {value!r}")
        if self.offset + self.width > 32:
            raise ValueError(f"field {self.name!r} must fit in bits [31:0], not occupy bits "
                             f"{self.bits}")

    @property
    def msb(self) -> int:
        return self.offset + self.width - 1

    @property
    def bits(self) -> str:
        return f"[{self.msb}:{self.offset}]"

    @property
    def mask(self) -> int:
        """The field's bits in place in its word."""
        return ((1 << self.width) - 1) << self.offset

    @property
    def limit(self) -> int:
        """One more than the largest value it holds (unsigned), or than the largest positive
        one (signed)."""
        return 1 << (self.width - 1 if self.signed else self.width)


class MemoryFormat:
    """A record of 32-bit words in memory, defined by its fields.

    Parameters
    ----------
    name : str
        Upper-case identifier: the stem of the generated C macros.
    title : str
        Heading of the documentation.
    words : int
        Size of one record in 32-bit words.
    fields : iterable of FormatField
        Non-overlapping fields inside ``words``.
    description : str
        A paragraph for the documentation.
    word_names : mapping of int to str, optional
        A name per word, for the documentation.
    """

    def __init__(self, name: str, title: str, words: int, fields: Iterable[FormatField],
                 description: str, word_names: Mapping[int, str] | None = None) -> None:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise ValueError(f"format name must be an upper-case identifier, not {name!r}")
        if not isinstance(words, int) or isinstance(words, bool) or words < 1:
            raise ValueError(f"words must be a positive integer, not {words!r}")
        fields = tuple(sorted(fields, key=lambda f: (f.word, f.offset)))
        seen: dict[str, FormatField] = {}
        for field in fields:
            if not isinstance(field, FormatField):
                raise TypeError(f"fields must be FormatField objects, not {field!r}")
            if field.name in seen:
                raise ValueError(f"format {name} has two fields named {field.name!r}")
            if field.word >= words:
                raise ValueError(f"field {field.name!r} word must be below {words}, not "
                                 f"{field.word}")
            seen[field.name] = field
        for lower, upper in zip(fields, fields[1:]):
            if lower.word == upper.word and upper.offset <= lower.msb:
                raise ValueError(f"field {upper.name!r} bits {upper.bits} overlap field "
                                 f"{lower.name!r} bits {lower.bits} in word {lower.word}")
        self._name = name
        self._title = title
        self._words = words
        self._fields = fields
        self._by_name = seen
        self._description = description
        self._word_names = dict(word_names or {})
        used = [0] * words
        for field in fields:
            used[field.word] |= field.mask
        self._reserved = tuple(~u & 0xFFFFFFFF for u in used)

    # -- lookup --------------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._name

    @property
    def words(self) -> int:
        return self._words

    @property
    def size(self) -> int:
        """Bytes of one record."""
        return 4 * self._words

    @property
    def fields(self) -> tuple[FormatField, ...]:
        """In word and bit order."""
        return self._fields

    @property
    def reserved_masks(self) -> tuple[int, ...]:
        """Per word, the bits no field covers: they must be 0."""
        return self._reserved

    def __getitem__(self, name: str) -> FormatField:
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(f"format {self._name} has no field {name!r}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._by_name

    def __repr__(self) -> str:
        return f"MemoryFormat({self._name}, {self._words} words, {len(self._fields)} fields)"

    # -- packing -------------------------------------------------------------------------------

    def encode(self, values: Mapping[str, int]) -> np.ndarray:
        """One record as ``words`` uint32 values; fields not given are 0.

        Raises
        ------
        KeyError
            For a name that is not a field.
        ValueError
            For a value that does not fit its field.
        """
        words = [0] * self._words
        for name, value in values.items():
            field = self[name]
            value = int(value)
            low = -field.limit if field.signed else 0
            high = field.limit - 1
            if not low <= value <= high:
                raise ValueError(f"{self._name}.{name} must be an integer from {low} to {high}, "
                                 f"not {value!r}")
            words[field.word] |= (value & ((1 << field.width) - 1)) << field.offset
        return np.array(words, dtype=np.uint32)

    def decode(self, words) -> dict[str, int]:
        """Every field of one record (``words`` uint32 values) by name."""
        words = [int(w) for w in np.asarray(words, dtype=np.uint32).reshape(-1)]
        if len(words) != self._words:
            raise ValueError(f"a {self._name} record is {self._words} words, not {len(words)}")
        values = {}
        for field in self._fields:
            value = (words[field.word] >> field.offset) & ((1 << field.width) - 1)
            if field.signed and value >= field.limit:
                value -= 1 << field.width
            values[field.name] = value
        return values

    def reserved_bits_set(self, words) -> bool:
        """Whether ``words`` has a reserved bit set."""
        words = np.asarray(words, dtype=np.uint32).reshape(-1)
        return any(int(w) & m for w, m in zip(words, self._reserved))

    # -- generators ----------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": _JSON_FORMAT,
            "format_version": _JSON_VERSION,
            "name": self._name,
            "title": self._title,
            "words": self._words,
            "bytes": self.size,
            "byte_order": "little-endian 32-bit words",
            "description": self._description,
            "word_names": {str(k): v for k, v in sorted(self._word_names.items())},
            "fields": [dataclasses.asdict(f) for f in self._fields],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    def to_c_header(self) -> str:
        """``CONVHW_<FORMAT>_WORDS``/``_BYTES`` and, per field, ``CONVHW_<FORMAT>_<FIELD>_WORD``,
        ``_SHIFT``, ``_WIDTH`` and ``_MASK`` (the bits in place in its word)."""
        stem = f"{_PREFIX}_{self._name}"
        guard = f"{stem}_H"
        lines = [
            f"/* convhw {self._title}.",
            " * Generated by convhw.descriptor; do not edit: regenerate it instead.",
            " *",
            *(f" * {line}" for line in textwrap.wrap(self._description, 90)),
            " *",
            " * Little-endian 32-bit words; a field reads as",
            " * (word[_WORD] & _MASK) >> _SHIFT. Bits no field covers must be 0.",
            " */",
            f"#ifndef {guard}",
            f"#define {guard}",
            "",
            f"#define {stem}_WORDS {self._words}u",
            f"#define {stem}_BYTES {self.size}u",
        ]
        if self is JOB_DESCRIPTOR:
            lines.append(f"#define {stem}_MAGIC_VALUE {_hex(DESCRIPTOR_MAGIC, 2)}u")
        for field in self._fields:
            name = f"{stem}_{field.name}"
            lines += ["", f"/* {field.description} */",
                      f"#define {name}_WORD {field.word}",
                      f"#define {name}_SHIFT {field.offset}",
                      f"#define {name}_WIDTH {field.width}",
                      f"#define {name}_MASK {_hex(field.mask, 8)}u"]
        lines += ["", f"#endif /* {guard} */", ""]
        return "\n".join(lines)

    def to_markdown(self, level: int = 2) -> str:
        head = "#" * level

        def cell(text: str) -> str:
            return text.replace("|", "\\|")

        lines = [f"{head} {self._title}", "", self._description, "",
                 f"{self._words} little-endian 32-bit words ({self.size} bytes). Bits that no "
                 f"field covers are reserved and must be 0.", "",
                 "| word | byte | bits | field | description |", "|---|---|---|---|---|"]
        for field in self._fields:
            word = self._word_names.get(field.word)
            where = f"{field.word}" + (f" ({word})" if word else "")
            kind = " (two's complement)" if field.signed else ""
            lines.append(f"| {where} | `{_hex(4 * field.word, 2)}` | {field.bits} | "
                         f"{field.name} | {cell(field.description)}{kind} |")
        lines.append("")
        return "\n".join(lines)


def _hex(value: int, digits: int) -> str:
    return f"0x{value:0{digits}x}"


# -- the job descriptor ------------------------------------------------------------------------

AXES = "ZYX"


def _geometry(first_word: int) -> tuple[list[FormatField], dict[int, str], int]:
    """The per-axis geometry fields, in ``AXIS_FIELDS`` order, packed per axis: the 16-bit
    slots two to a word, then the 8-bit slots."""
    fields, names, word = [], {}, first_word
    for axis in AXES:
        for bits in (16, 8):
            offset = 0
            start = word
            for field in AXIS_FIELDS:
                if field.width_for(_WIDEST) != bits:
                    continue
                if offset + bits > 32:
                    word, offset = word + 1, 0
                fields.append(FormatField(f"{axis}_{field.name.upper()}", word, offset, bits,
                                          f"{field.description} ({axis.lower()})"))
                offset += bits
            for w in range(start, word + 1):
                names[w] = f"{axis} geometry"
            word += 1
    return fields, names, word


def _job_descriptor() -> MemoryFormat:
    f = FormatField
    fields = [
        # Word 0: what the job does besides computing.
        f("LAST", 0, 0, 1, "The list ends after this job: DONE (and the interrupt) follow it"),
        f("IRQ", 0, 1, 1, "Raise the interrupt when this job has finished (LAST always does)"),
        f("LOAD_INPUT", 0, 2, 1, "Fetch the job's input window into input bank INPUT_BANK "
          "before it computes; 0: the bank already holds it (an earlier job loaded it)"),
        f("LOAD_WEIGHTS", 0, 3, 1, "Fetch WEIGHT_WORDS weight words from WEIGHT_ADDR into the "
          "weight buffer at WEIGHT_BASE before the job computes; 0: they are there already"),
        f("WRITE_OUTPUT", 0, 4, 1, "The accumulator holds final sums after this job: write "
          "them through the output stage to OUTPUT_ADDR"),
        f("INPUT_BANK", 0, 5, 1, "Input-buffer bank the job reads (and LOAD_INPUT fills)"),
        f("ACC_BANK", 0, 6, 1, "Accumulator bank the job sums into (and WRITE_OUTPUT drains)"),
        f("WAIT", 0, 7, 1, "Take this job (start its loads) only once every earlier job has "
          "finished and its results are written (write responses in): set on a job that reads "
          "what earlier jobs of the list wrote, e.g. a chained layer's first job"),
        f("MAGIC", 0, 24, 8, f"Always {_hex(DESCRIPTOR_MAGIC, 2)}: anything else is not a "
          "descriptor and stops the list"),
        # Word 1: the job's mode, as the JOB_MODE and OUT_MODE registers.
        f("TRANSPOSED", 1, 0, 1, "Transposed convolution (gather form)"),
        f("PADDING_MODE", 1, 1, 2, "0 zeros, 1 circular, 2 reflect, 3 replicate (forward only)"),
        f("ACCUMULATE", 1, 3, 1, "Add to the accumulator bank instead of overwriting it"),
        f("SKIP_BORDERS", 1, 4, 1, "Skip outputs whose source is padding"),
        f("REQUANTIZE", 1, 8, 1, "Results requantised to input_width-bit elements; 0: raw "
          "acc + bias as 32-bit elements"),
        f("RELU", 1, 9, 1, "Clamp negative results to 0 (FLOAT_REQUANTIZE: to OUTPUT_ZERO)"),
        f("FLOAT_REQUANTIZE", 1, 10, 1, "torch's quantised output processing in float32 "
          "(an engine with float_output; FIELD_TOO_WIDE on others): acc + BIAS wrapped to "
          "int32, to float32, + F32_BIAS, * F32_MULT, rounded half to even, + OUTPUT_ZERO, "
          "clamped to 0..255; 8-bit results whatever REQUANTIZE says"),
        f("FIR_TAPS", 1, 16, 8, "Depthwise (FIR) lane mode: x taps held by the array rows; 0: "
          "dense mode"),
        # Word 2: channel extents.
        f("IN_CHUNKS", 2, 0, 16, "Input words per pixel (channel chunks of `rows` channels)"),
        f("OUT_CHANNELS", 2, 16, 16, "Output channels written per pixel (columns 0 .. "
          "OUT_CHANNELS-1); at most `cols`"),
    ]
    geometry, names, word = _geometry(3)
    fields += geometry
    names.update({0: "CONTROL", 1: "MODE", 2: "CHANNELS"})
    tail = [
        ("INPUT_ADDR", "Byte address of input channel 0 of lane 0 at coordinate (0, 0, 0) of "
         "the input tensor (batch element and first input channel folded in)"),
        ("INPUT_PIXEL_PITCH", "Bytes from one input pixel to the next along x"),
        ("INPUT_ROW_PITCH", "Bytes from one input row to the next along y"),
        ("INPUT_PLANE_PITCH", "Bytes from one input plane to the next along z"),
        ("WEIGHT_ADDR", "Byte address of the weight words LOAD_WEIGHTS fetches"),
        ("WEIGHT_BASE", "Weight-buffer word of the job's first weight (tap 0, chunk 0, row 0); "
         "LOAD_WEIGHTS fills from here"),
        ("WEIGHT_WORDS", "Weight words LOAD_WEIGHTS fetches"),
        ("OUTPUT_ADDR", "Byte address of output channel OUT_CHANNEL 0 (column 0) at coordinate "
         "(0, 0, 0) of the output tensor (batch element and first channel folded in)"),
        ("OUTPUT_PIXEL_PITCH", "Bytes from one output pixel to the next along x"),
        ("OUTPUT_ROW_PITCH", "Bytes from one output row to the next along y"),
        ("OUTPUT_PLANE_PITCH", "Bytes from one output plane to the next along z"),
        ("PARAMS_ADDR", "Byte address of the job's column parameters (COLUMN_PARAMS records, "
         "one per column)"),
    ]
    for name, description in tail:
        fields.append(f(name, word, 0, 32, description))
        names[word] = name
        word += 1
    # The quantised arithmetic's per-job values: the input zero point (16 bits, the widest
    # input_width) and the output's (8 bits: quint8); the last word is free for later fields.
    fields.append(f("INPUT_ZERO", word, 0, 16, "Input zero point: an engine with the "
                    "activation offset multiplies input - INPUT_ZERO (padding: 0); below "
                    "2**input_width, and 0 on an engine without it"))
    fields.append(f("OUTPUT_ZERO", word, 16, 8, "Output zero point of FLOAT_REQUANTIZE's "
                    "results; 0 on an engine without float_output"))
    names[word] = "ZERO_POINTS"
    return MemoryFormat(
        "DESCRIPTOR", "job descriptor", 32, fields,
        "One job: an output tile of one output-channel chunk over a run of input-channel "
        "chunks. A descriptor list is an array of them, run in order from LIST_ADDR up to the "
        "first one with LAST set. Geometry fields mean what the job registers of the same name "
        "mean (docs/engine.md); the engine adds each axis's window segment starts and tile "
        "start times the pitches to INPUT_ADDR and OUTPUT_ADDR itself, so the host never "
        "re-arranges data per job.",
        names)


def _column_params(float_output: bool) -> MemoryFormat:
    f = FormatField
    fields = [
        f("BIAS", 0, 0, 32, "Added to the column's sums before the output stage", True),
        f("MULT", 1, 0, 16, "Requantisation multiplier", True),
        f("SHIFT", 1, 16, 6, "Requantisation right shift"),
        f("LANE", 1, 24, 6, "FIR mode: the input lane the column multiplies"),
    ]
    names = {0: "BIAS", 1: "REQUANT"}
    if not float_output:
        return MemoryFormat(
            "COLUMN_PARAMS", "column parameters", 2, fields,
            "The output stage's and the FIR mode's per-column values: one record per array "
            "column, `cols` records in a row at PARAMS_ADDR, fetched with every job.", names)
    fields += [
        f("F32_BIAS", 2, 0, 32, "FLOAT_REQUANTIZE: the float32 bias term added to the "
          "converted sum (IEEE-754 single bit pattern; +0.0 for none)"),
        f("F32_MULT", 3, 0, 32, "FLOAT_REQUANTIZE: the float32 multiplier (IEEE-754 single "
          "bit pattern, finite)"),
    ]
    names.update({2: "F32_BIAS", 3: "F32_MULT"})
    return MemoryFormat(
        "FLOAT_COLUMN_PARAMS", "column parameters (engines with float_output)", 4, fields,
        "The column parameters of an engine with the float32 output stage "
        "(`EngineConfig.float_output`, the `quantized` preset): the two words of COLUMN_PARAMS "
        "and the two float32 constants of torch's quantised output processing.", names)


#: The job descriptor format.
JOB_DESCRIPTOR = _job_descriptor()
#: The per-column parameter record.
COLUMN_PARAMS = _column_params(float_output=False)
#: The per-column parameter record of an engine with ``EngineConfig.float_output``.
FLOAT_COLUMN_PARAMS = _column_params(float_output=True)


def column_params(config: EngineConfig) -> MemoryFormat:
    """The column parameter record ``config``'s engine reads."""
    return FLOAT_COLUMN_PARAMS if config.float_output else COLUMN_PARAMS


#: Every memory format the engine reads, in documentation order.
FORMATS = (JOB_DESCRIPTOR, COLUMN_PARAMS, FLOAT_COLUMN_PARAMS)


def formats_markdown() -> str:
    """The memory formats as one Markdown page."""
    parts = ["# convhw memory formats", "",
             "Generated by `convhw.descriptor`; do not edit. How the engine uses them: "
             "[memory.md](memory.md).", ""]
    parts += [fmt.to_markdown() for fmt in FORMATS]
    return "\n".join(parts)


def formats_c_header() -> str:
    """The memory formats as one C header."""
    return "\n".join(fmt.to_c_header() for fmt in FORMATS)


def formats_json() -> str:
    """The memory formats as one JSON document."""
    data = {"format": _JSON_FORMAT, "format_version": _JSON_VERSION,
            "formats": [fmt.to_dict() for fmt in FORMATS]}
    return json.dumps(data, indent=2, sort_keys=True) + "\n"
