"""``supjax_app.malloc``: the ``supjax`` command keeps freed memory for reuse, unless told not to.

The settings are checked by what glibc then does, in a fresh process each (``mallopt`` changes
the process for good): how many arenas a second thread's allocation makes, whether a 64 MiB
block is ``mmap``-ed, and whether the heap is trimmed after it is freed.
"""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from supjax_app import malloc
from supjax_app.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
GLIBC = platform.libc_ver()[0] == "glibc"

PROBE = r"""
import ctypes, json, os, sys, tempfile, threading
from supjax_app.malloc import tune_malloc
if sys.argv[1] == "tune":
    tune_malloc(environ={})
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
class Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in
                "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
libc.mallinfo2.restype = Mallinfo2
def in_thread():
    libc.free(libc.malloc(1000))
thread = threading.Thread(target=in_thread); thread.start(); thread.join()
before = libc.mallinfo2().hblks
block = libc.malloc(64 << 20)
mmapped = libc.mallinfo2().hblks - before
libc.free(block)
kept = libc.mallinfo2().arena
path = tempfile.mktemp()
libc.fopen.restype, libc.fopen.argtypes = ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_char_p]
libc.malloc_info.argtypes, libc.fclose.argtypes = [ctypes.c_int, ctypes.c_void_p], [ctypes.c_void_p]
stream = libc.fopen(path.encode(), b"w"); libc.malloc_info(0, stream); libc.fclose(stream)
arenas = open(path).read().count("<heap nr=")
os.unlink(path)
print(json.dumps({"arenas": arenas, "mmapped": mmapped, "kept_bytes": kept}))
"""


def _probe(mode: str) -> dict[str, int]:
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True,
                          cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, timeout=120)
    return json.loads(done.stdout)


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_tuned_process_has_one_arena_no_mmap_and_keeps_freed_memory():
    default, tuned = _probe("default"), _probe("tune")
    assert default["arenas"] >= 2 and default["mmapped"] == 1  # glibc's defaults, as measured
    assert tuned == {"arenas": 1, "mmapped": 0, "kept_bytes": tuned["kept_bytes"]}
    assert tuned["kept_bytes"] >= 64 << 20 > default["kept_bytes"]


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_tune_reports_every_setting_applied(monkeypatch):
    monkeypatch.setattr(malloc, "_last", dict(malloc._last))  # the module's record, restored after
    result = malloc.tune_malloc(environ={})
    assert result == {"tuned": True, "why": "mallopt", "settings": {k: v for k, (_, v) in malloc.SETTINGS.items()}}
    assert malloc.malloc_description() == result


@pytest.mark.parametrize("kwargs, why", [
    ({"enabled": False}, "--no-malloc-tuning"),
    ({"environ": {"GLIBC_TUNABLES": "glibc.cpu.x86_shstk=on:glibc.malloc.mmap_max=0"}},
     "GLIBC_TUNABLES sets glibc.malloc"),
    ({"environ": {}, "libc": ""}, "not glibc (unknown)"),
    ({"environ": {}, "libc": "musl"}, "not glibc (musl)"),
])
def test_nothing_applied_and_the_reason_said(kwargs, why, monkeypatch):
    monkeypatch.setattr(malloc, "_last", dict(malloc._last))
    calls = []
    monkeypatch.setattr(malloc.ctypes, "CDLL", lambda *a: calls.append(a))  # mallopt must not be reached
    assert malloc.tune_malloc(**kwargs) == {"tuned": False, "why": why, "settings": {}}
    assert calls == [] and malloc.malloc_description()["why"] == why


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_other_glibc_tunables_do_not_stop_the_tuning(monkeypatch):
    monkeypatch.setattr(malloc, "_last", dict(malloc._last))
    assert malloc.tune_malloc(environ={"GLIBC_TUNABLES": "glibc.cpu.hwcaps=-AVX512F"})["tuned"] is True


def test_train_takes_no_malloc_tuning():
    parser = build_parser()
    assert parser.parse_args(["train", "--dp"]).no_malloc_tuning is False
    assert parser.parse_args(["train", "--dp", "--no-malloc-tuning"]).no_malloc_tuning is True


def test_cli_main_tunes_for_dp_only_unless_told_not_to(monkeypatch, capsys):
    seen = []
    monkeypatch.setattr(malloc, "tune_malloc", lambda enabled=True: seen.append(enabled))
    from supjax_app.cli import main

    for flag, expected in (([], True), (["--no-malloc-tuning"], False)):
        # refused after loading the data (δ above 1/n), so after tuning, before training
        assert main(["train", "--dp", "--quick", "--delta", "0.001", *flag]) == 2
        assert seen.pop() is expected and seen == []
    with pytest.raises(SystemExit):  # without --dp: glibc's defaults (small steps ran slower tuned)
        main(["train", "--end-epoch", "2"])
    assert seen == [] and "--end-epoch needs --dp" in capsys.readouterr().err


def test_a_refused_setting_is_named_and_not_reported_applied(monkeypatch):
    monkeypatch.setattr(malloc, "_last", dict(malloc._last))

    class FakeLibc:  # glibc's mallopt returns 1 on success, 0 on error
        @staticmethod
        def mallopt(param, value):
            return 0 if param == malloc.SETTINGS["mmap_max"][0] else 1

    monkeypatch.setattr(malloc.ctypes, "CDLL", lambda *a: FakeLibc)
    result = malloc.tune_malloc(environ={}, libc="glibc")
    assert result == {"tuned": False, "why": "mallopt refused ['mmap_max']",
                      "settings": {"arena_max": 1, "trim_threshold": 2**31 - 1}}
