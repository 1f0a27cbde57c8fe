"""glibc's allocator settings for ``supjax train --dp``: keep freed memory instead of unmapping it.

XLA's CPU backend allocates a step's temporary buffers with ``malloc`` on its worker threads and
frees them at the end of the step. With glibc's defaults each worker thread gets an arena of its
own, and a buffer too large for such an arena is ``mmap``-ed and unmapped again, every step: a
DP-SGD step of ``supjax train --dp`` (batch 512, per-example gradients of LeNet5) took 41600 page
faults and 75 ms of system time, about a third of its time. Three settings of glibc's
``mallopt`` take that away (:data:`SETTINGS`): one arena for all threads, no ``mmap`` for large
blocks, and freed memory kept for the next step rather than trimmed; the same step then takes no
page faults and runs 25 % faster, for about 0.3-0.6 GB more resident memory. How much a whole run
gains depends on the machine: a fifth of the wall time on one VM, nothing measurable on another
(README, "Private and sparse").

``supjax train --dp`` (and :mod:`supjax_app.dp.select`) call :func:`tune_malloc` before they
compute anything; ``--no-malloc-tuning`` switches it off, and so does a ``GLIBC_TUNABLES`` that
sets any ``glibc.malloc`` tunable (the user's own settings win). Results do not change, only where
memory comes from. Off glibc (macOS, musl) it does nothing. Other commands keep glibc's defaults:
with one arena, the small LeNet5 steps of ``supjax train`` ran 4-24 % slower (XLA's threads then
share one allocator lock).

>>> import argparse
>>> parser = argparse.ArgumentParser(); add_arguments(parser)
>>> parser.parse_args(["--no-malloc-tuning"]).no_malloc_tuning
True
>>> tune_malloc(enabled=False)
{'tuned': False, 'why': '--no-malloc-tuning', 'settings': {}}
"""

from __future__ import annotations

import argparse
import ctypes
import os
import platform
from typing import Mapping

__all__ = [
    "SETTINGS",
    "add_arguments",
    "malloc_description",
    "tune_malloc",
]

#: glibc ``mallopt`` parameters (``<malloc.h>``): name -> (parameter number, value).
SETTINGS: dict[str, tuple[int, int]] = {
    "arena_max": (-8, 1),  # M_ARENA_MAX: every thread allocates from the main arena
    "mmap_max": (-4, 0),  # M_MMAP_MAX: large blocks come from the heap, not a fresh mmap
    "trim_threshold": (-1, 2**31 - 1),  # M_TRIM_THRESHOLD: freed heap memory is kept for reuse
}

_last: dict[str, object] = {"tuned": False, "why": "tune_malloc not called", "settings": {}}


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add ``--no-malloc-tuning`` to ``parser``.

    >>> parser = argparse.ArgumentParser(); add_arguments(parser)
    >>> parser.parse_args([]).no_malloc_tuning
    False
    """
    parser.add_argument("--no-malloc-tuning", action="store_true",
                        help="keep glibc's default allocator settings (by default --dp keeps freed memory "
                             "for reuse: fewer page faults, DP-SGD runs up to about 20%% faster on some "
                             "machines, more resident memory)")


def tune_malloc(enabled: bool = True, environ: Mapping[str, str] | None = None,
                libc: str | None = None) -> dict[str, object]:
    """Apply :data:`SETTINGS` with glibc's ``mallopt``; say whether it did, and why not.

    Returns ``{"tuned": bool, "why": reason, "settings": {name: value}}`` (the settings applied,
    empty when none were). Nothing is applied when ``enabled`` is false, when ``environ``
    (default :data:`os.environ`) has a ``GLIBC_TUNABLES`` naming a ``glibc.malloc`` tunable, or
    when the C library ``libc`` (default: this process's, by :func:`platform.libc_ver`) is not glibc.

    >>> tune_malloc(environ={"GLIBC_TUNABLES": "glibc.malloc.arena_max=4"})["why"]
    'GLIBC_TUNABLES sets glibc.malloc'
    >>> tune_malloc(environ={}, libc="musl")
    {'tuned': False, 'why': 'not glibc (musl)', 'settings': {}}
    """
    global _last
    _last = _tune(enabled, os.environ if environ is None else environ,
                  platform.libc_ver()[0] if libc is None else libc)
    return dict(_last)


def _tune(enabled: bool, environ: Mapping[str, str], libc: str) -> dict[str, object]:
    if not enabled:
        why = "--no-malloc-tuning"
    elif "glibc.malloc." in environ.get("GLIBC_TUNABLES", ""):
        why = "GLIBC_TUNABLES sets glibc.malloc"
    elif libc != "glibc":
        why = f"not glibc ({libc or 'unknown'})"
    else:
        return _apply()
    return {"tuned": False, "why": why, "settings": {}}


def _apply() -> dict[str, object]:
    mallopt = ctypes.CDLL(None).mallopt
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    applied = {name: value for name, (param, value) in SETTINGS.items() if mallopt(param, value) == 1}
    missing = sorted(set(SETTINGS) - set(applied))
    return {"tuned": not missing, "why": f"mallopt refused {missing}" if missing else "mallopt",
            "settings": applied}


def malloc_description() -> dict[str, object]:
    """What the last :func:`tune_malloc` call of this process did (for reports).

    >>> _ = tune_malloc(enabled=False)
    >>> malloc_description()["why"]
    '--no-malloc-tuning'
    """
    return dict(_last)
