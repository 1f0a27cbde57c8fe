"""Fixtures of the MindSpore tests (nox session ``mindspore``: MindSpore 2.10 + mindarmour 2.0.0).

These tests are never skipped silently: without MindSpore they fail at import. The
repository's root ``conftest.py`` leaves them uncollected only in a run that deselects them
(``-m "not mindspore"``, the ``core`` session on numpy 2, where MindSpore cannot run).
"""

from __future__ import annotations

import contextlib
import io

import pytest


@pytest.fixture(scope="session")
def reference():
    """``mindarmour.privacy.sup_privacy`` (the oracle), imported once, banner swallowed."""
    with contextlib.redirect_stdout(io.StringIO()):
        import mindarmour.privacy.sup_privacy as api
    return api


@pytest.fixture()
def pynative():
    """PYNATIVE_MODE for the test, restored afterwards."""
    import mindspore as ms

    previous = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    yield ms.PYNATIVE_MODE
    ms.set_context(mode=previous)


@pytest.fixture(params=["pynative", "graph"])
def ms_mode(request):
    """Each test twice: PYNATIVE_MODE and GRAPH_MODE (restored afterwards)."""
    import mindspore as ms

    previous = ms.get_context("mode")
    mode = ms.GRAPH_MODE if request.param == "graph" else ms.PYNATIVE_MODE
    ms.set_context(mode=mode)
    yield mode
    ms.set_context(mode=previous)
