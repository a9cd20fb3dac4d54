import os
import warnings

import pytest
from hypothesis import settings

# Property tests print their falsifying example and a reproduction blob; the "ci" profile is
# deterministic so that a red CI run can be replayed with the same examples.
settings.register_profile("default", deadline=None, print_blob=True)
settings.register_profile("ci", deadline=None, print_blob=True, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")

# The Verilated list engine is built without profile-guided optimisation here: the tests build
# many configurations, and the second compilation and the training would double their build
# time. test_verilator_list.py builds one with it.
os.environ.setdefault("CONVHW_VERILATOR_PGO", "0")


@pytest.fixture
def quiet_quantization():
    """torch 2.13 deprecates torch.ao.quantization (for torchao), and its observers warn about
    reduce_range; convhw.quantize is that quantiser all the same. The tests that quantise
    (``pytestmark = pytest.mark.usefixtures("quiet_quantization")``) ignore those warnings,
    and only inside the test."""
    with warnings.catch_warnings():
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\..*")
        yield


#: What the torch conformance tests counted (their reports' ``torch_conformance`` property).
CONFORMANCE = {}


def pytest_runtest_logreport(report):
    if report.when != "teardown":     # the property is recorded in the test's teardown
        return
    for name, value in report.user_properties:
        if name == "torch_conformance":
            for what, n in value.items():
                CONFORMANCE[what] = CONFORMANCE.get(what, 0) + n


def pytest_terminal_summary(terminalreporter):
    if any(CONFORMANCE.values()):
        counts = ", ".join(f"{n} {what}" for what, n in CONFORMANCE.items())
        terminalreporter.write_line(f"torch conformance: {counts}")
