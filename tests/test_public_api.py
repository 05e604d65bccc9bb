"""The public API (``from optical_lab import ...``, docs/api.md): light to import, every name documented
with an example, and every example runs (doctest)."""

from __future__ import annotations

import doctest
import inspect
import subprocess
import sys

import pytest

import optical_lab


def test_import_is_light_until_a_name_is_used():
    code = (
        "import sys, optical_lab; heavy = sorted(m for m in ('torch', 'transformers', 'pandas', 'optical_lab.models') "
        "if m in sys.modules); print(heavy); optical_lab.Encoder; print('optical_lab.models' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:2] == ["[]", "True"]


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'Encodr'"):
        optical_lab.Encodr  # noqa: B018
    assert set(optical_lab.EXPORTS) <= set(dir(optical_lab))


def test_every_export_is_documented_in_api_md():
    from pathlib import Path

    api = (Path(optical_lab.__file__).parents[1] / "docs" / "api.md").read_text(encoding="utf-8")
    assert [name for name in optical_lab.EXPORTS if f"`{name}`" not in api] == []


@pytest.mark.parametrize("name", list(optical_lab.EXPORTS))
def test_every_export_has_an_example_that_runs(name, monkeypatch):
    """Each public name (a class: its docstring or its methods') holds a ``>>>`` example, and doctest passes it."""
    obj = getattr(optical_lab, name)
    tests = [t for t in doctest.DocTestFinder(recurse=inspect.isclass(obj)).find(obj, name) if t.examples]
    if not tests:  # a function documented by the example of the class it returns (alignment_plan -> Alignment)
        pytest.skip(f"{name}: example lives on another public name") if "Example:" in (
            obj.__doc__ or ""
        ) else pytest.fail(f"{name} has no docstring example")
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    for test in tests:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0


def test_a_command_whose_extra_is_missing_says_what_to_install():
    """The core install has no ipywidgets (extra ``app``): the CLI still works, and ``explore`` names the extra."""
    code = (
        "import sys; sys.modules['ipywidgets'] = None; from optical_lab.cli import build_parser, main; "
        "assert 'explore' in build_parser().format_help(); sys.exit(main(['explore']))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 1
    assert "optical-lab explore needs ipywidgets: pip install 'optical_lab[app]'" in done.stderr
