"""Register programs: what the host writes and reads for one compiled job.

Everything here is plain data derived from the register map and a compiler
:class:`~convhw.compiler.program.Step`; transports (simulators, boards) only carry the words.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..compiler.job import Job, frame
from ..config import BUS_DATA_WIDTH, EngineConfig
from ..job_format import COLUMN_FIELDS, field_value, job_fields, job_values
from ..registers import job_field_register
from ..regmap import RegisterMap

__all__ = ["JobProgram", "pack_words", "register_writes"]


def register_writes(regmap: RegisterMap, job: Job, bias=None, requantize=None,
                    relu: bool = False) -> list[tuple[int, int]]:
    """``(byte address, value)`` writes that program ``job``; ``bias`` per column (or None),
    ``requantize`` a pair of per-column multipliers and shifts (or None)."""
    # The job fields, each placed in its register; a register is written once, in the order
    # of its first field. A column field is written for the columns the job sets only (a dense
    # job sets no lanes, and the engine does not read them).
    # A register that holds no field the engine builds (INPUT_ZERO without the activation
    # offset) is not written.
    # The registers hold the job in its frame (a layer longer than the coordinates). A job no
    # frame holds (a raw register program past the coordinates, which the engine's checks
    # refuse; the compiler makes none) is written as it is.
    try:
        programmed = frame(job).job
    except ValueError:
        programmed = job
    values = job_values(programmed)
    words: dict[str, int] = {}
    built: set[str] = set()
    for path, field in job_fields(job.config):
        if field in COLUMN_FIELDS and path[1] >= len(getattr(job, field.name)):
            continue
        register, name = job_field_register(path)
        offset = regmap.field(register, name).offset
        words[register] = words.get(register, 0) | field_value(values, path) << offset
        if field.built(job.config):
            built.add(register)
    writes = [(regmap[register].address, value) for register, value in words.items()
              if register in built]
    out_mode = regmap["OUT_MODE"]
    writes.append((out_mode.address,
                   (int(requantize is not None) << out_mode.field("REQUANTIZE").offset)
                   | (int(relu) << out_mode.field("RELU").offset)))
    cols = job.config.cols
    bias = np.zeros(cols, np.int64) if bias is None else np.asarray(bias, np.int64)
    for c in range(cols):
        writes.append((regmap[f"BIAS{c}"].address, int(bias[c]) & 0xFFFFFFFF))
        if requantize is not None:
            multipliers, shifts = requantize
            writes.append((regmap[f"MULT{c}"].address, int(multipliers[c]) & 0xFFFF))
            writes.append((regmap[f"SHIFT{c}"].address, int(shifts[c])))
    return writes


def pack_words(lanes: np.ndarray, lane_width: int, parts: int) -> np.ndarray:
    """Pack ``(words, lanes)`` signed integers into ``(words * parts,)`` 32-bit bus words:
    lane ``i`` in bits ``[i*lane_width, (i+1)*lane_width)`` of its buffer word, two's
    complement, least significant bus word first."""
    lanes = np.asarray(lanes, dtype=np.int64)
    mask = (1 << lane_width) - 1
    words = [0] * len(lanes)
    for i in range(lanes.shape[1]):
        column = (lanes[:, i] & mask).tolist()
        for w in range(len(lanes)):
            words[w] |= column[w] << (i * lane_width)
    out = np.zeros(len(lanes) * parts, dtype=np.uint32)
    for w, value in enumerate(words):
        for p in range(parts):
            out[w * parts + p] = (value >> (p * BUS_DATA_WIDTH)) & 0xFFFFFFFF
    return out


@dataclasses.dataclass(frozen=True)
class JobProgram:
    """One job as bus traffic: register writes, buffer writes (window base + 32-bit words),
    and the OUTPUT words to read back (``None`` unless the step is read out)."""

    registers: list[tuple[int, int]]
    input_base: int
    input_words: np.ndarray
    weight_base: int
    weight_words: np.ndarray
    output_addresses: np.ndarray | None
    start_address: int

    @classmethod
    def build(cls, regmap: RegisterMap, config: EngineConfig, step, spec, x, weight, bias,
              requantize=None, relu: bool = False):
        """The traffic of ``step``; ``requantize`` is ``(multipliers, shifts)`` per output
        channel of the layer, or None for raw ``acc + bias`` results."""
        from ..compiler.program import input_words, weight_words
        job = step.job
        columns = slice(step.oc_start, step.oc_start + step.oc_count)

        def per_column(values):
            out = np.zeros(config.cols, np.int64)
            out[:step.oc_count] = np.asarray(values, np.int64)[columns]
            return out

        column_bias = None if bias is None else per_column(bias)
        column_requantize = None if requantize is None else tuple(
            per_column(v) for v in requantize)
        registers = register_writes(regmap, job, column_bias, column_requantize, relu)
        inputs = pack_words(input_words(step, x, config.rows), config.input_width,
                            config.bus_words_per_input_word)
        weights = pack_words(weight_words(step, spec, weight, config), config.weight_width,
                             config.bus_words_per_weight_word)
        output = None
        if step.read_out:
            entries = np.arange(job.acc_entries)[:, None] * config.output_stride
            output = regmap.window("OUTPUT").address + 4 * (
                entries + np.arange(step.oc_count)[None, :]).reshape(-1)
        return cls(registers=registers, input_base=regmap.window("INPUT").address,
                   input_words=inputs, weight_base=regmap.window("WEIGHT").address,
                   weight_words=weights, output_addresses=output,
                   start_address=regmap["CTRL"].address)
