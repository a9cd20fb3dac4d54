"""Elaborating a component for an FPGA family in the Amaranth simulator, which elaborates
without a platform."""

from amaranth.hdl import Elaboratable, Fragment

from convhw.generate import TargetFamily


class ForFamily(Elaboratable):
    """``component`` elaborated as for ``family`` (:class:`~convhw.generate.TargetFamily`)."""

    def __init__(self, component, family):
        self.component = component
        self.platform = TargetFamily(family)

    def elaborate(self, platform):
        return Fragment.get(self.component, self.platform)
