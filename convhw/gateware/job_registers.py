"""The job's registers as one struct: the layout every datapath component takes its job from.

The layouts are built from the job-field definition (:mod:`convhw.job_format`), member for
field, so that the register map, this struct and the host's register program cannot disagree
on a field's name or width.
"""

from __future__ import annotations

from amaranth.hdl import unsigned
from amaranth.lib import data

from ..config import EngineConfig
from ..job_format import AXIS_FIELDS, COLUMN_FIELDS, DIMS, JOB_FIELDS

__all__ = ["AxisRegisters", "JobRegisters", "job_member"]


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
