"""The import rules of the layout (README "Layout"), checked on the source and at run time.

* ``supjax/`` (the library) imports none of the application's or the adapter's packages,
  nor flax, mindspore, matplotlib, scikit-learn, orbax or rich — not even inside a function;
* ``supjax_app/`` (the application) never imports ``compat_mindspore``: ``supjax bench`` finds
  its MindSpore figures through the ``supjax.bench`` entry-point group;
* ``compat_mindspore/`` reaches supjax only through ``supjax`` and the door ``supjax.engine``.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LIBRARY_FORBIDDEN = ("supjax_app", "compat_mindspore", "flax", "mindspore", "mindarmour", "matplotlib",
                     "sklearn", "orbax", "rich", "scipy")


def imported_modules(path: Path) -> list[str]:
    """Every module an ``import``/``from ... import`` statement in ``path`` names (any depth)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


def _top(name: str) -> str:
    return name.split(".")[0]


def _sources(folder: str) -> list[Path]:
    files = sorted((ROOT / folder).rglob("*.py"))
    assert files, folder
    return files


def test_imported_modules_sees_imports_inside_functions(tmp_path):
    source = tmp_path / "m.py"
    source.write_text("import os\ndef f():\n    from compat_mindspore import bench\n")
    assert "compat_mindspore" in imported_modules(source)


@pytest.mark.parametrize("path", _sources("supjax"), ids=lambda p: str(p.relative_to(ROOT)))
def test_library_imports_no_application_adapter_or_heavy_package(path):
    bad = sorted({n for n in imported_modules(path) if _top(n) in LIBRARY_FORBIDDEN})
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


@pytest.mark.parametrize("path", _sources("supjax_app"), ids=lambda p: str(p.relative_to(ROOT)))
def test_application_never_imports_the_mindspore_adapter(path):
    bad = sorted({n for n in imported_modules(path) if _top(n) == "compat_mindspore"})
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_importing_supjax_loads_no_application_package():
    code = ("import sys, supjax; heavy = %r; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))" % (LIBRARY_FORBIDDEN,))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=ROOT, env={"PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"})
    assert out.stdout.strip() == "[]", out.stdout


def _through_the_door(name: str) -> bool:
    """``supjax``, ``supjax.engine[.X]`` or ``supjax.X`` for a name ``supjax`` exports."""
    import supjax

    if name in ("supjax", "supjax.engine") or name.startswith("supjax.engine."):
        return True
    module, _, attr = name.rpartition(".")
    return module == "supjax" and attr in supjax.__all__


def test_through_the_door_rejects_a_core_module():
    assert not _through_the_door("supjax.schedule") and not _through_the_door("supjax.schedule.stop_counts")
    assert _through_the_door("supjax.LayerRule") and _through_the_door("supjax.engine.Move")


@pytest.mark.parametrize("path", _sources("compat_mindspore"), ids=lambda p: str(p.relative_to(ROOT)))
def test_adapter_reaches_supjax_only_through_the_package_and_the_door(path):
    bad = sorted({n for n in imported_modules(path) if _top(n) == "supjax" and not _through_the_door(n)})
    assert not bad, f"{path.relative_to(ROOT)} imports {bad}"
