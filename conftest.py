"""Test-suite wiring.

The MindSpore tests (``tests/mindspore``, ``tests/oracle`` and the doctests of
``compat_mindspore``) need MindSpore 2.10 and mindarmour 2.0.0, which live in their own
environment (numpy<2, JAX 0.7.0: the nox session ``mindspore``). They carry the
``mindspore`` marker; a run that deselects them with ``-m "not mindspore"`` does not even
import them. Any other run without MindSpore fails loudly instead of skipping.
"""

from __future__ import annotations

import pathlib

import pytest
from hypothesis import settings

# CI (every nox session passes ``--hypothesis-profile ci``): the same examples on every run,
# so that a failure reproduces; a fixed example budget and no per-example deadline (JIT
# compilation makes the first example of a test slow on a loaded 2-core machine).
settings.register_profile("ci", derandomize=True, max_examples=100, deadline=None)

ROOT = pathlib.Path(__file__).parent
MINDSPORE_PLACES = (ROOT / "tests" / "mindspore", ROOT / "tests" / "oracle", ROOT / "compat_mindspore")


def _needs_mindspore(path: pathlib.Path) -> bool:
    return any(path == place or place in path.parents for place in MINDSPORE_PLACES)


def pytest_ignore_collect(collection_path: pathlib.Path, config: pytest.Config) -> bool | None:
    markexpr = (config.option.markexpr or "").replace(" ", "")
    if markexpr == "notmindspore" and _needs_mindspore(pathlib.Path(collection_path)):
        return True
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _needs_mindspore(pathlib.Path(str(item.path))):
            item.add_marker(pytest.mark.mindspore)
