"""The job's registers as one struct: the layout every datapath component takes its job from.

The layouts are built from the job-field definition (:mod:`convhw.job_format`), member for
field, so that the register map, this struct and the host's register program cannot disagree
on a field's name or width.
"""

from __future__ import annotations

from amaranth.hdl import unsigned
from amaranth.lib import data

from .. import timing
from ..config import EngineConfig
from ..job_format import AXIS_FIELDS, COLUMN_FIELDS, DIMS, JOB_FIELDS

__all__ = ["AxisRegisters", "JobRegisters", "fir_refused", "job_member"]


def AxisRegisters(config: EngineConfig) -> data.StructLayout:
    """The job registers of one spatial dimension: one member per axis field."""
    return data.StructLayout({field.name: unsigned(field.width_for(config))
                              for field in AXIS_FIELDS})


def JobRegisters(config: EngineConfig) -> data.StructLayout:
    """Every job field: ``axes`` (one :func:`AxisRegisters` per dimension, z first), a member
    per job field and an array of ``cols`` values per column field."""
    members = {"axes": data.ArrayLayout(AxisRegisters(config), DIMS)}
    members.update({field.name: unsigned(field.width_for(config)) for field in JOB_FIELDS})
    members.update({field.name: data.ArrayLayout(unsigned(field.width_for(config)), config.cols)
                    for field in COLUMN_FIELDS})
    return data.StructLayout(members)


def job_member(job: data.View, path: tuple):
    """The member of a :func:`JobRegisters` view at ``path`` (see
    :func:`convhw.job_format.job_fields`)."""
    member = job
    for key in path:
        member = member[key]
    return member


def fir_refused(config: EngineConfig, *, fir_taps, x_kernel, x_stride, x_dilation, transposed):
    """Whether a job with ``FIR_TAPS`` set cannot use the FIR mode (the job checkers'
    ``BAD_GEOMETRY``, :func:`convhw.compiler.list_model.job_code` in NumPy): more taps than
    rows; an x dilation other than 1; an x kernel or stride other than 1 or, with
    :func:`convhw.timing.fir_takes_stride` (a polyphase FIR, the stride's phases as the x
    kernel), an x kernel above the x stride; transposed."""
    x_taps = ([x_kernel > x_stride] if timing.fir_takes_stride(config)
              else [x_kernel != 1, x_stride != 1])
    refused = fir_taps > config.rows
    for term in (*x_taps, x_dilation != 1, transposed):
        refused = refused | term
    return (fir_taps != 0) & refused
