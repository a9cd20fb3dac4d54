"""The fields of a job, defined once, as plain data.

A job is what the engine computes between one START and its DONE (see
:class:`convhw.compiler.job.Job`). Its fields are listed here and nowhere else; everything that
holds a job is derived from these lists:

* the job registers of the register map (:func:`convhw.registers.engine_register_map`, which
  places each field in a register),
* the gateware's job struct (:func:`convhw.gateware.job_registers.JobRegisters`) and the
  engine's connection of the register file to it,
* the host's register program (:func:`convhw.driver.program.register_writes`).

Each field knows its width for an :class:`EngineConfig`, its reset value and its meaning; how
the fields are packed into words is not part of a field but of each packing (the register map
is one), so that another packing of the same fields can be derived from the same lists.

There are three kinds of field: :data:`AXIS_FIELDS`, one per spatial dimension (z, y, x, the
outermost first); :data:`JOB_FIELDS`, one per job; :data:`COLUMN_FIELDS`, one per array column.
:func:`job_values` gives the encoded values of a job, in the shape of the gateware struct.

This module imports no Amaranth.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Iterator
from typing import Any

from .config import EngineConfig

__all__ = ["AXES", "AXIS_FIELDS", "COLUMN_FIELDS", "DIMS", "JOB_FIELDS", "JobField",
           "PaddingMode", "field_value", "job_fields", "job_values"]

#: Spatial dimensions of every job, outermost first; a 1-D or 2-D layer has unit leading ones.
DIMS = 3
#: The dimensions' names, in the same order.
AXES = "ZYX"


class PaddingMode(enum.IntEnum):
    """The hardware encoding of ``ConvSpec.padding_mode`` (the job's ``padding_mode``)."""

    ZEROS = 0
    CIRCULAR = 1
    REFLECT = 2
    REPLICATE = 3

    @classmethod
    def from_spec(cls, mode: str | PaddingMode) -> PaddingMode:
        """The code of a ``ConvSpec.padding_mode`` string (``"zeros"``, ``"circular"``,
        ``"reflect"``, ``"replicate"``)."""
        if isinstance(mode, PaddingMode):
            return mode
        if not isinstance(mode, str):
            raise TypeError(f"padding mode must be a string, not {mode!r}")
        try:
            return cls[mode.upper()]
        except KeyError:
            raise ValueError(f"padding mode must be one of "
                             f"{', '.join(repr(m.spec_name) for m in cls)}, not {mode!r}"
                             ) from None

    @property
    def spec_name(self) -> str:
        """The ``ConvSpec.padding_mode`` string of the code."""
        return self.name.lower()


def _coord(config: EngineConfig) -> int:
    return config.coord_width


def _param(config: EngineConfig) -> int:
    return config.param_width


def _bit(config: EngineConfig) -> int:
    return 1


@dataclasses.dataclass(frozen=True)
class JobField:
    """One field of a job.

    Parameters
    ----------
    name : str
        Lower-case identifier: the attribute of :class:`convhw.compiler.job.Job` (or of its
        ``Axis``) that holds the value, the member of the gateware struct and, upper-cased, the
        name in the register map.
    width : callable
        ``width(config)``: bits of the field in an engine built for ``config``.
    description : str
        One line for the documentation; a column field's may name its column as ``{c}``.
    reset : int
        Value after reset.
    encode : callable
        Turns the job's attribute into the field's value (default: :class:`int`).
    requires : str or None
        The :class:`EngineConfig` flag without which the engine does not build the field: it
        then always reads as 0.
    """

    name: str
    width: Callable[[EngineConfig], int]
    description: str
    reset: int = 0
    encode: Callable[[Any], int] = int
    requires: str | None = None

    def width_for(self, config: EngineConfig) -> int:
        return self.width(config)

    def built(self, config: EngineConfig) -> bool:
        """Whether an engine built for ``config`` has the field (else it always reads 0)."""
        return self.requires is None or bool(getattr(config, self.requires))

    def reset_for(self, config: EngineConfig) -> int:
        return self.reset if self.built(config) else 0


#: Per spatial dimension; their semantics are :class:`convhw.compiler.job.Axis`'s.
AXIS_FIELDS = (
    JobField("in_size", _coord, "Input extent of the whole layer"),
    JobField("kernel", _param, "Kernel extent"),
    JobField("stride", _param, "Stride"),
    JobField("dilation", _param, "Dilation"),
    JobField("pad_lo", _coord, "Padding before the first input element"),
    JobField("out_start", _coord, "First output coordinate of the tile"),
    JobField("out_len", _coord, "Output extent of the tile"),
    JobField("seg0_start", _coord, "First input coordinate of the window's first segment"),
    JobField("seg0_len", _coord, "Length of the window's first segment"),
    JobField("seg1_start", _coord, "First input coordinate of the window's second segment"),
    JobField("seg1_len", _coord, "Length of the window's second segment (0: none)"),
)

#: Once per job.
JOB_FIELDS = (
    JobField("transposed", _bit, "Transposed convolution (gather form)"),
    JobField("padding_mode", lambda config: max(PaddingMode).bit_length(),
             ", ".join(f"{m.value} {m.spec_name}" for m in PaddingMode) + " (forward only)",
             encode=lambda mode: int(PaddingMode.from_spec(mode))),
    JobField("accumulate", _bit, "Add to the accumulator instead of overwriting it"),
    JobField("skip_borders", _bit, "Skip outputs whose source is padding", reset=1,
             requires="border_skipping"),
    # A chunk count of input_depth words must fit, hence the extra bit.
    JobField("in_chunks", lambda config: config.address_width(config.input_depth) + 1,
             "Input words per pixel (channel chunks)", reset=1),
    JobField("fir_taps", _param,
             "Depthwise (FIR) lane mode: x taps held by the array rows; 0: dense mode"),
    JobField("input_zero", lambda config: config.input_width,
             "Input zero point: the array multiplies input - INPUT_ZERO (padding: 0)",
             requires="activation_offset"),
)

#: Once per array column; the job's attribute holds one value per column.
COLUMN_FIELDS = (
    JobField("lanes", lambda config: max(1, (config.rows - 1).bit_length()),
             "FIR mode: input lane column {c} multiplies"),
)


def job_fields(config: EngineConfig) -> Iterator[tuple[tuple[Any, ...], JobField]]:
    """Every field of a job for ``config``, each as ``(path, field)``, in definition order:
    ``("axes", d, name)`` for dimension ``d``'s axis fields (all of z, then y, then x),
    ``(name,)`` for a job field, ``(name, c)`` for column ``c``'s column field. A path indexes
    both :func:`job_values` and the gateware struct."""
    for d in range(DIMS):
        for field in AXIS_FIELDS:
            yield ("axes", d, field.name), field
    for field in JOB_FIELDS:
        yield (field.name,), field
    for field in COLUMN_FIELDS:
        for c in range(config.cols):
            yield (field.name, c), field


def job_values(job) -> dict[str, Any]:
    """The encoded field values of ``job`` (a :class:`convhw.compiler.job.Job`), shaped like
    the gateware struct: ``{"axes": [{name: value}] * DIMS, name: value, ...}``, a column field
    as a list with one value per column (missing columns 0). A field the engine does not build
    keeps the job's value: the engine ignores it."""
    config = job.config
    values: dict[str, Any] = {"axes": [
        {f.name: f.encode(getattr(axis, f.name)) for f in AXIS_FIELDS} for axis in job.axes]}
    for field in JOB_FIELDS:
        values[field.name] = field.encode(getattr(job, field.name))
    for field in COLUMN_FIELDS:
        given = [field.encode(v) for v in getattr(job, field.name)]
        values[field.name] = given + [0] * (config.cols - len(given))
    return values


def field_value(values: dict[str, Any], path: tuple[Any, ...]) -> int:
    """The value at ``path`` (see :func:`job_fields`) in :func:`job_values` ``(job)``."""
    value: Any = values
    for key in path:
        value = value[key]
    return value
