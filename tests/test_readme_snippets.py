"""Documentation that runs as pasted: README's Python snippets and docstring examples.

``pytest --doctest-modules`` runs docstring examples in their module's namespace, where a
name the example forgot to import is still defined; here each example runs in an empty
namespace, as it would when pasted into a fresh interpreter.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil
import re
from pathlib import Path

import pytest

import supjax

README = Path(__file__).resolve().parents[1] / "README.md"
#: README sections whose snippets need another environment (MindSpore), not run here.
OTHER_ENVIRONMENT = {"MindSpore"}
#: Modules whose every docstring example must run in an empty namespace: all of supjax.
PASTABLE_MODULES = ["supjax"] + [f"supjax.{m.name}" for m in pkgutil.iter_modules(supjax.__path__)]


def readme_snippets() -> list[tuple[str, str]]:
    """``(section, code)`` for each fenced python block of README.md, by section heading."""
    snippets, section = [], ""
    for part in re.split(r"^(## .*)$", README.read_text(), flags=re.M):
        if part.startswith("## "):
            section = part[3:].strip()
            continue
        for i, code in enumerate(re.findall(r"^```python\n(.*?)^```", part, flags=re.M | re.S)):
            snippets.append((f"{section} #{i + 1}", code))
    return snippets


SNIPPETS = readme_snippets()


def test_the_sections_asked_for_have_snippets():
    names = {name.rsplit(" #", 1)[0] for name, _ in SNIPPETS}
    assert {"The schedule, precisely", "Choosing layers", "Shipping the sparse model",
            "With optax wrappers"} <= names
    wrappers = "\n".join(code for name, code in SNIPPETS if name.startswith("With optax wrappers"))
    for used in ("optax.MultiSteps", "optax.inject_hyperparams", "optax.apply_if_finite", "ocp.StandardCheckpointer"):
        assert used in wrappers


@pytest.mark.parametrize("name,code", [s for s in SNIPPETS if s[0].rsplit(" #", 1)[0] not in OTHER_ENVIRONMENT],
                         ids=[s[0] for s in SNIPPETS if s[0].rsplit(" #", 1)[0] not in OTHER_ENVIRONMENT])
def test_readme_snippet_runs(name, code):
    exec(compile(code, f"README.md: {name}", "exec"), {"__name__": "__readme__"})


def _examples():
    finder = doctest.DocTestFinder(recurse=True)
    tests = []
    for module in PASTABLE_MODULES:
        tests += [t for t in finder.find(importlib.import_module(module), globs={}) if t.examples]
    return tests


@pytest.mark.parametrize("test", _examples(), ids=lambda t: t.name)
def test_docstring_example_runs_as_pasted(test):
    test.globs = {}  # nothing from the module: the example imports what it uses
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    failures = []
    runner.run(test, out=failures.append)
    assert runner.failures == 0, "".join(failures)
