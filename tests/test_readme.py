"""The README's tables of measured figures are those of bench/results/ (written by
``bench/update_readme.py``), not typed by hand."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_readme_tables_match_the_recorded_results(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "bench"))      # its table helper, bench/report.py
    spec = importlib.util.spec_from_file_location("update_readme",
                                                  ROOT / "bench" / "update_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text = (ROOT / "README.md").read_text()
    assert module.render(text) == text, \
        "README.md's tables differ from bench/results/: run bench/update_readme.py"


def test_the_quantised_model_example_prints_what_the_readme_shows():
    # The README's example and the output it shows, run as written.
    import contextlib
    import io
    import re
    import warnings

    import pytest
    pytest.importorskip("torch")
    text = (ROOT / "README.md").read_text()
    found = re.search(r"<!-- example: quantize-offload -->\n```python\n(.*?)```\n\nprints\n\n"
                      r"```\n(.*?)```", text, re.S)
    assert found, "the README lost its quantize-offload example"
    code, shown = found.groups()
    out = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(out):
        warnings.simplefilter("ignore")         # (torch's deprecation of torch.ao.quantization)
        exec(compile(code, "README.md", "exec"), {})
    assert out.getvalue() == shown
