"""``supjax train`` starts without the heavy packages it does not need (measured: ~1.9 s of a warm --quick run)."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
from supjax_app.cli import build_parser, config_from_args
from supjax_app.train import app
config_from_args(build_parser().parse_args(["train", "--quick"]))
print(sorted(m for m in ("dp_accounting", "orbax.checkpoint") if m in sys.modules))
"""


def test_train_without_dp_or_checkpoints_imports_neither_dp_accounting_nor_orbax():
    out = subprocess.run([sys.executable, "-c", CODE], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_checkpointer_imports_orbax_when_used(tmp_path):
    code = ("import sys\nfrom supjax_app.train.checkpoint import Checkpointer\n"
            f"Checkpointer({str(tmp_path)!r}).close()\nprint('orbax.checkpoint' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip().splitlines()[-1] == "True"
