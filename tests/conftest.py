import os

from hypothesis import settings

# Property tests print their falsifying example and a reproduction blob; the "ci" profile is
# deterministic so that a red CI run can be replayed with the same examples.
settings.register_profile("default", deadline=None, print_blob=True)
settings.register_profile("ci", deadline=None, print_blob=True, derandomize=True)
settings.load_profile("ci" if os.environ.get("CI") else "default")


def pytest_terminal_summary(terminalreporter):
    import sys
    module = sys.modules.get("test_torch_conformance") or sys.modules.get(
        "tests.test_torch_conformance")
    if module is not None and any(module.TALLY.values()):
        counts = ", ".join(f"{n} {what}" for what, n in module.TALLY.items())
        terminalreporter.write_line(f"torch conformance: {counts}")
