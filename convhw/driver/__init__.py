"""Devices that run convolution layers: the golden model now; simulators and boards later."""

from .device import Device, RunInfo

__all__ = ["Device", "RunInfo"]
