"""The runnable examples in compat_mindspore's docstrings."""

from __future__ import annotations

import doctest
import importlib

import pytest

pytestmark = pytest.mark.mindspore

MODULES = [
    "compat_mindspore",
    "compat_mindspore.sup_privacy",
    "compat_mindspore._buffers",
    "compat_mindspore._checks",
    "compat_mindspore._operations",
    "compat_mindspore._convert",
    "compat_mindspore._corrections",
    "compat_mindspore._ctrl_reports",
    "compat_mindspore._log",
    "compat_mindspore._state",
    "compat_mindspore._lenet",
    "compat_mindspore._matching",
    "compat_mindspore._reports",
    "compat_mindspore.bench",
    "compat_mindspore.bench_tutorial",
    "compat_mindspore.mask_layer",
    "compat_mindspore.factory",
    "compat_mindspore.ctrl",
    "compat_mindspore.model",
    "compat_mindspore.train_cell",
    "compat_mindspore.masker",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, pynative):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, raise_on_error=False)
    assert result.failed == 0


def test_every_module_is_listed():
    from pathlib import Path

    import compat_mindspore

    package = Path(compat_mindspore.__file__).parent
    found = {f"compat_mindspore.{p.stem}" for p in package.glob("*.py") if p.stem != "__init__"}
    assert found == set(MODULES) - {"compat_mindspore"}
