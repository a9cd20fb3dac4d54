"""The engine's register map: control and status registers, the job registers, the per-column
output registers and the INPUT, WEIGHT and OUTPUT windows (:func:`engine_register_map`), and
the engine's error codes (:class:`ErrorCode`).

The map is built with the generic classes of :mod:`convhw.regmap` (which also holds the
addressing rules and the Markdown, C and JSON generators); the job registers are placed from the
job-field definition (:mod:`convhw.job_format`), see :func:`job_field_register`. This module
imports no Amaranth.
"""

from __future__ import annotations

import enum

from .config import BUS_DATA_WIDTH, EngineConfig
from .job_format import AXES, AXIS_FIELDS, COLUMN_FIELDS, JOB_FIELDS, JobField
from .regmap import Field, Register, RegisterMap, Window

__all__ = ["COLUMN_BASE", "ENGINE_ID", "ENGINE_REGISTER_SPACE", "ENGINE_VERSION", "JOB_BASE",
           "JOB_MODE_FIELDS", "LIST_ENGINE_VERSION", "ErrorCode", "engine_register_map",
           "job_field_register", "list_register_map"]

#: Register space of :func:`engine_register_map`; the job registers start at :data:`JOB_BASE`.
ENGINE_REGISTER_SPACE = 0x1000
_WORD_BYTES = BUS_DATA_WIDTH // 8

#: ``"CVHW"`` in ASCII, most significant byte first.
ENGINE_ID = 0x43564857
ENGINE_VERSION = (0, 1)


def _place_windows(entries: list[tuple[str, int, str, str, str]], start: int) -> list[Window]:
    """Windows in the given order, each at the next address aligned to its span."""
    windows = []
    cursor = start
    for name, words, access, description, layout in entries:
        span = 1 << max(0, (words * _WORD_BYTES - 1).bit_length())   # Window.span
        address = -(-cursor // span) * span
        windows.append(Window(name, address, words, description, access, layout))
        cursor = address + span
    return windows


def _buffer_layout(config_words: int, element: str, lanes: int, lane_width: int) -> str:
    word_width = lanes * lane_width
    if config_words == 1:
        where = f"Buffer word `k` is window word `k`, in bits [{word_width - 1}:0]"
    else:
        where = (f"Buffer word `k` ({word_width} bits) is window words `{config_words}k` to "
                 f"`{config_words}k+{config_words - 1}`, least significant 32 bits first")
    text = (f"{where}; {element} `i` of the word occupies bits "
            f"[{lane_width}i+{lane_width - 1}:{lane_width}i] (two's complement).")
    if word_width % BUS_DATA_WIDTH:
        text += (" The unused high bits of a buffer word's last window word are ignored on "
                 "write and read as 0.")
    return text


class ErrorCode(enum.IntEnum):
    """Values of the ERROR.CODE register. 0 means the last job finished normally."""

    NONE = 0
    BAD_GEOMETRY = 1        # a size, kernel, stride, dilation, tile length or in_chunks is 0,
    #                         or FIR_TAPS is set for a job that cannot use the FIR mode
    TILE_TOO_LARGE = 2      # the tile's outputs exceed the accumulator
    WINDOW_TOO_LARGE = 3    # the input window (times in_chunks) exceeds the input buffer
    WEIGHTS_TOO_LARGE = 4   # taps x in_chunks x rows exceed the weight buffer
    BAD_PADDING = 5         # a padding mode the job cannot use (see JobController)
    WINDOW_MISS = 6         # a source coordinate fell outside the input window while running
    ABORTED = 7             # the host wrote CTRL.ABORT
    BAD_DESCRIPTOR = 8      # MAGIC is not 0xCD, or a reserved descriptor bit is set
    FIELD_TOO_WIDE = 9      # a descriptor field exceeds this engine's widths or columns
    #                         (INPUT_ZERO: non-zero without the activation offset)
    MISALIGNED = 10         # a descriptor address or pitch breaks the alignment rules
    READ_ERROR = 11         # the memory answered a read with an error
    WRITE_ERROR = 12        # the memory answered a write with an error
    SOURCE_RANGE = 13       # a forward tile's last output times the stride reaches
    #                         2**coord_width: its source coordinates would leave the engine's
    #                         range

    @property
    def meaning(self) -> str:
        return {
            0: "no error",
            1: "a size, kernel, stride, dilation, tile length or IN_CHUNKS register is zero, "
               "or FIR_TAPS is set for a job that cannot use the FIR mode",
            2: "the tile's outputs do not fit the accumulator",
            3: "the input window times IN_CHUNKS does not fit the input buffer",
            4: "kernel taps x IN_CHUNKS x rows do not fit the weight buffer",
            5: "the padding mode cannot be used with this job (transposed, or padding larger "
               "than the input allows)",
            6: "a source coordinate fell outside the input window",
            7: "aborted by the host",
            8: "not a job descriptor: MAGIC is not 0xCD or a reserved bit is set",
            9: "a descriptor field is wider than this engine allows (coord_width, "
               "param_width, in_chunks, OUT_CHANNELS above cols, INPUT_ZERO beyond "
               "input_width bits or not 0 without the activation offset)",
            10: "a descriptor address or pitch is not aligned as docs/memory.md requires",
            11: "the memory answered a read with a bus error",
            12: "the memory answered a write with a bus error",
            13: "a forward tile's last output times the stride is 2**coord_width or more: "
                "its source coordinates would leave the address generator's range",
        }[int(self)]



JOB_BASE = 0x100
COLUMN_BASE = 0x400
#: The job fields packed into the JOB_MODE register, from bit 0 up.
JOB_MODE_FIELDS = ("transposed", "padding_mode", "accumulate", "skip_borders")
# The job fields with a register of their own: its byte offset from JOB_MODE, its description.
# (OUT_MODE, at offset 8, is not a job field: the output stage's mode is read with the results.)
_JOB_REGISTERS = {"in_chunks": (4, "Input chunks of the job"),
                  "fir_taps": (12, "Depthwise lane mode"),
                  "input_zero": (16, "Input zero point (activation offset)")}
# The column fields: register name stem, address of column 0's, description.
_COLUMN_REGISTERS = {"lanes": ("LANE", COLUMN_BASE + 0x300, "Column {c} lane")}
if set(JOB_MODE_FIELDS) | set(_JOB_REGISTERS) != {f.name for f in JOB_FIELDS} \
        or set(_COLUMN_REGISTERS) != {f.name for f in COLUMN_FIELDS}:
    raise AssertionError("every job field must have exactly one place in the register map")


def job_field_register(path: tuple) -> tuple[str, str]:
    """``(register, field)``: where the register map holds the job field at ``path`` (see
    :func:`convhw.job_format.job_fields`). Axis fields are ``<AXIS>_<NAME>.VALUE``, the flags
    fields of ``JOB_MODE``, the other job fields ``<NAME>.VALUE``, column fields
    ``<STEM><c>.VALUE``."""
    if path[0] == "axes":
        _, d, name = path
        return f"{AXES[d]}_{name.upper()}", "VALUE"
    if len(path) == 1:
        name, = path
        if name in JOB_MODE_FIELDS:
            return "JOB_MODE", name.upper()
        return name.upper(), "VALUE"
    name, c = path
    return f"{_COLUMN_REGISTERS[name][0]}{c}", "VALUE"


def _job_field(config: EngineConfig, field: JobField, name: str, offset: int = 0,
               column: int | None = None) -> Field:
    """The register-map field that holds a job field: ``rw``, or ``ro`` (always 0) when the
    engine does not build it."""
    description = field.description.format(c=column) if column is not None \
        else field.description
    width = field.width_for(config)
    if field.built(config):
        return Field(name, width, offset, "rw", description, field.reset)
    return Field(name, width, offset, "ro", f"{description}: not built in this engine "
                 f"(EngineConfig.{field.requires}), always 0")


def _job_registers(config: EngineConfig) -> list:
    registers = []
    address = JOB_BASE
    for d, axis in enumerate(AXES):
        for field in AXIS_FIELDS:
            registers.append(Register(f"{axis}_{field.name.upper()}", address,
                                      [_job_field(config, field, "VALUE")],
                                      f"Job geometry, dimension {d} ({axis.lower()})"))
            address += 4
    job_fields = {field.name: field for field in JOB_FIELDS}
    mode_fields, offset = [], 0
    for name in JOB_MODE_FIELDS:
        field = job_fields[name]
        mode_fields.append(_job_field(config, field, name.upper(), offset))
        offset += field.width_for(config)
    registers.append(Register("JOB_MODE", address, mode_fields, "Job mode"))
    for name, (offset, description) in _JOB_REGISTERS.items():
        registers.append(Register(name.upper(), address + offset,
                                  [_job_field(config, job_fields[name], "VALUE")], description))
    registers.append(Register("OUT_MODE", address + 8, [
        Field("REQUANTIZE", 1, 0, "rw", "Requantise results to input_width bits"),
        Field("RELU", 1, 1, "rw", "Clamp negative results to 0"),
    ], "Output stage mode"))
    for field in COLUMN_FIELDS:
        stem, base, description = _COLUMN_REGISTERS[field.name]
        for c in range(config.cols):
            registers.append(Register(f"{stem}{c}", base + 4 * c,
                                      [_job_field(config, field, "VALUE", column=c)],
                                      description.format(c=c)))
    for c in range(config.cols):
        registers += [
            Register(f"BIAS{c}", COLUMN_BASE + 4 * c, [
                Field("VALUE", config.acc_width if config.acc_width <= 32 else 32, 0, "rw",
                      f"Bias of column {c}, two's complement")], f"Column {c} bias"),
            Register(f"MULT{c}", COLUMN_BASE + 0x100 + 4 * c, [
                Field("VALUE", 16, 0, "rw", f"Requantisation multiplier of column {c}, "
                      f"two's complement", 1)], f"Column {c} multiplier"),
            Register(f"SHIFT{c}", COLUMN_BASE + 0x200 + 4 * c, [
                Field("VALUE", 6, 0, "rw", f"Requantisation right shift of column {c}")],
                f"Column {c} shift"),
        ]
    return registers


def engine_register_map(config: EngineConfig | str | None = None) -> RegisterMap:
    """The register map of the convolution engine built with ``config``.

    Registers live in the first 4 KiB (0x100 and up is reserved for the job registers); the
    INPUT, WEIGHT and OUTPUT windows follow in that order, each aligned to its span.

    Parameters
    ----------
    config : EngineConfig, str or None
        A configuration or preset name (see :meth:`EngineConfig.coerce`).
    """
    config = EngineConfig.coerce(config)
    ro = "ro"
    registers = _identity_registers(config, ENGINE_VERSION)
    registers += [
        Register("CTRL", 0x020, [
            Field("START", 1, 0, "w1p", "Start the programmed job"),
            Field("ABORT", 1, 1, "w1p", "Abort the running job, at any point (with START: "
                  "end at once, ABORTED)"),
        ], "Job control"),
        Register("STATUS", 0x024, [
            Field("BUSY", 1, 0, ro, "A job is running"),
            Field("DONE", 1, 1, ro, "The last job finished"),
            Field("ERROR", 1, 2, ro, "The last job stopped with an error (see ERROR)"),
        ], "Job status"),
        Register("ERROR", 0x028, [
            Field("CODE", 8, 0, ro, "Why the last job failed; 0: no error"),
        ], "Job error"),
        Register("CYCLES", 0x02C, [
            Field("COUNT", 32, 0, ro, "Clock cycles the last (or running) job took"),
        ], "Job cycle counter"),
    ]
    registers += _job_registers(config)
    words_in = config.bus_words_per_input_word
    words_w = config.bus_words_per_weight_word
    windows = _place_windows([
        ("INPUT", config.input_depth * words_in, "rw",
         f"Input buffer: {config.input_depth} words of {config.rows} channels of one pixel",
         _buffer_layout(words_in, "channel lane", config.rows, config.input_width)),
        ("WEIGHT", config.weight_depth * words_w, "rw",
         f"Weight buffer: {config.weight_depth} words of {config.cols} weights of one input lane",
         _buffer_layout(words_w, "column", config.cols, config.weight_width)),
        ("OUTPUT", config.acc_depth * config.output_stride, "ro",
         f"Results through the output stage: {config.acc_depth} entries of {config.cols} "
         f"channels",
         f"Accumulator entry `p`, channel `c` is window word `{config.output_stride}p+c`: the "
         f"value after "
         f"the output stage (bias, optional requantisation and ReLU) as a 32-bit two's "
         f"complement value."),
    ], ENGINE_REGISTER_SPACE)
    return RegisterMap(registers, windows, register_space=ENGINE_REGISTER_SPACE, config=config)


def _identity_registers(config: EngineConfig, version: tuple[int, int]) -> list[Register]:
    """ID, VERSION and the HWCFG registers: what the host reads to know the engine."""
    depth_bits = (1 << 20).bit_length()  # 21: EngineConfig allows depths up to 2**20
    major, minor = version
    ro = "ro"
    return [
        Register("ID", 0x000, [
            Field("VALUE", 32, 0, ro, '"CVHW": identifies a convhw engine', ENGINE_ID),
        ], "Engine identifier"),
        Register("VERSION", 0x004, [
            Field("MINOR", 8, 0, ro, "Minor version: compatible additions", minor),
            Field("MAJOR", 8, 8, ro, "Major version: incompatible changes", major),
        ], "Register-map version"),
        Register("HWCFG0", 0x008, [
            Field("ROWS", 8, 0, ro, "Array rows (input-channel lanes)", config.rows),
            Field("COLS", 8, 8, ro, "Array columns (output channels)", config.cols),
            Field("INPUT_WIDTH", 5, 16, ro, "Input operand bits", config.input_width),
            Field("WEIGHT_WIDTH", 5, 21, ro, "Weight operand bits", config.weight_width),
            Field("ACC_WIDTH", 6, 26, ro, "Accumulator bits", config.acc_width),
        ], "Array geometry and widths"),
        Register("HWCFG1", 0x00C, [
            Field("INPUT_DEPTH", depth_bits, 0, ro, "Input buffer words", config.input_depth),
        ], "Input buffer depth"),
        Register("HWCFG2", 0x010, [
            Field("WEIGHT_DEPTH", depth_bits, 0, ro, "Weight buffer words",
                  config.weight_depth),
        ], "Weight buffer depth"),
        Register("HWCFG3", 0x014, [
            Field("ACC_DEPTH", depth_bits, 0, ro, "Accumulator entries", config.acc_depth),
        ], "Accumulator depth"),
    ]


#: Version of :func:`list_register_map`: major 1, the engine that runs descriptor lists.
#: Minor 1: HWCFG4 names the arithmetic features (activation offset, float32 output stage).
LIST_ENGINE_VERSION = (1, 1)


def list_register_map(config: EngineConfig | str | None = None) -> RegisterMap:
    """The control registers of the engine that runs descriptor lists (docs/memory.md).

    Everything a job needs is in memory (the descriptors, the tensors); the registers only
    start a list, stop it and say how it ended. There are no windows.
    """
    config = EngineConfig.coerce(config)
    ro = "ro"
    registers = _identity_registers(config, LIST_ENGINE_VERSION) + [
        Register("HWCFG4", 0x018, [
            Field("MEMORY_WIDTH", 10, 0, ro, "Data bits of the memory master port",
                  config.memory_width),
            Field("ACTIVATION_OFFSET", 1, 16, ro, "Inputs are unsigned less the job's "
                  "INPUT_ZERO (EngineConfig.activation_offset)", int(config.activation_offset)),
            Field("FLOAT_OUTPUT", 1, 17, ro, "The float32 output stage (FLOAT_REQUANTIZE; "
                  "EngineConfig.float_output)", int(config.float_output)),
        ], "Memory port and arithmetic features"),
        Register("CTRL", 0x020, [
            Field("START", 1, 0, "w1p", "Start the list at LIST_ADDR"),
            Field("ABORT", 1, 1, "w1p", "Stop the running list, at any point (with START: "
                  "end at once, ABORTED at job 0)"),
        ], "List control"),
        Register("STATUS", 0x024, [
            Field("BUSY", 1, 0, ro, "A list is running"),
            Field("DONE", 1, 1, ro, "The last list ended"),
            Field("ERROR", 1, 2, ro, "The last list ended with an error (see ERROR)"),
            Field("IRQ", 1, 3, ro, "The interrupt is pending (cleared by IRQ_CLEAR)"),
        ], "List status"),
        Register("ERROR", 0x028, [
            Field("CODE", 8, 0, ro, "Why the last list stopped; 0: no error"),
            Field("JOB", 16, 16, ro, "Index of the job that failed (ABORTED: the oldest job "
                  "not finished)"),
        ], "List error"),
        Register("CYCLES", 0x02C, [
            Field("COUNT", 32, 0, ro, "Clock cycles from the last START to the list's end"),
        ], "List cycle counter"),
        Register("BUSY_CYCLES", 0x03C, [
            Field("COUNT", 32, 0, ro, "Clock cycles of the last list in which the compute core "
                  "was busy with a job (its datapath's time: CYCLES less this is what loads, "
                  "result writes and hand-overs did not hide)"),
        ], "List datapath cycle counter"),
        Register("LIST_ADDR", 0x030, [
            Field("VALUE", 32, 0, "rw", "Byte address of the first descriptor, a multiple "
                  "of 128"),
        ], "Descriptor list address"),
        Register("IRQ_ENABLE", 0x034, [
            Field("ENABLE", 1, 0, "rw", "Drive the interrupt output while STATUS.IRQ is set "
                  "(set when a list ends and when a job with IRQ set finishes)", 1),
        ], "Interrupt enable"),
        Register("IRQ_CLEAR", 0x038, [
            Field("CLEAR", 1, 0, "w1p", "Clear STATUS.IRQ"),
        ], "Interrupt acknowledge"),
    ]
    return RegisterMap(registers, (), register_space=ENGINE_REGISTER_SPACE, config=config)
