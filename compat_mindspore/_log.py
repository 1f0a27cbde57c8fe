"""compat's logging: through MindArmour's ``LogUtil`` logger when mindarmour is importable.

MindArmour's ``LogUtil.get_instance()`` wraps the standard logger named ``"MA"`` and writes
each record as ``" [<file>:<line>] [<tag>] <message>"``; ``LogUtil.set_level("INFO")``
sets that logger's level. When mindarmour can be imported, compat writes its records to the
same logger in the same layout, so a script migrated from MindArmour sees compat's per-layer
lines where it saw MindArmour's (mindarmour itself is not imported: its import takes seconds).
Without mindarmour, records go to the logger ``"compat_mindspore"`` as plain messages.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import sys

__all__ = ["TAG", "log", "logger"]

#: The tag of compat's records in MindArmour's layout.
TAG = "compat_mindspore"


@functools.lru_cache(maxsize=1)
def _mindarmour_importable() -> bool:
    try:
        return importlib.util.find_spec("mindarmour") is not None
    except (ImportError, ValueError):
        return False


def logger() -> logging.Logger:
    """The logger compat writes to: ``"MA"`` (MindArmour's ``LogUtil``) or ``"compat_mindspore"``.

    >>> logger().name in ("MA", "compat_mindspore")
    True
    """
    return logging.getLogger("MA" if _mindarmour_importable() else "compat_mindspore")


def log(level: int, msg: str, *args: object) -> None:
    """Log ``msg % args`` at ``level`` (in ``LogUtil``'s layout on MindArmour's logger).

    >>> log(logging.DEBUG, "nothing shown at the default level: %s", 1)
    """
    target = logger()
    if not target.isEnabledFor(level):
        return
    if target.name == "MA":
        # LogUtil's layout: the caller's place and the tag before the message
        caller = sys._getframe(1)
        place = f"{os.path.realpath(caller.f_code.co_filename)}:{caller.f_lineno}"
        target.log(level, " [%s] [%s] " + msg, place, TAG, *args, stacklevel=2)
    else:
        target.log(level, msg, *args, stacklevel=2)
