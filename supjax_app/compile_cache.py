"""JAX's persistent compilation cache for the ``supjax`` command (on by default).

``supjax train`` and ``supjax audit`` compile the same jitted train steps on every run; with
the cache on, a second run with the same shapes and options loads them from disk instead of
compiling them. The cache lives in ``$XDG_CACHE_HOME/supjax/jax`` (``~/.cache/supjax/jax``
when ``XDG_CACHE_HOME`` is unset), created private to the user (mode 0700: JAX trusts what
it reads there); ``--compile-cache-dir DIR`` puts it elsewhere and ``--no-compile-cache``
switches it off. Only computations that took at least :data:`MIN_COMPILE_TIME_SECS` to
compile are written (JAX's ``jax_persistent_cache_min_compile_time_secs``; its default of 1 s
would leave out most of what a short run compiles). Nothing is evicted (JAX's size cap
needs the ``filelock`` package): delete the folder to reclaim its space. A jitted function holding a host callback
is never cached by JAX: supjax's steps hold none unless asked (``warn_nonfinite=True``).

:func:`stats` counts JAX's cache events in this process (``/jax/compilation_cache/...``
monitoring events): compile requests that consulted the cache, and how many of them it
answered.

>>> import argparse
>>> parser = argparse.ArgumentParser(); add_arguments(parser)
>>> args = parser.parse_args(["--no-compile-cache"])
>>> args.no_compile_cache, args.compile_cache_dir
(True, None)
>>> str(default_cache_dir({"XDG_CACHE_HOME": "/tmp/xdg"}))
'/tmp/xdg/supjax/jax'
"""

from __future__ import annotations

import argparse
import contextlib
import os
import threading
from pathlib import Path
from typing import Iterator, Mapping, NamedTuple

import jax

__all__ = [
    "MIN_COMPILE_TIME_SECS",
    "CacheStats",
    "add_arguments",
    "cache_entries",
    "configure",
    "default_cache_dir",
    "disable",
    "enable",
    "stats",
]

#: Computations that compiled faster than this are not written to the cache (seconds). 0: all of
#: them; a quick ``supjax train`` compiles 27 computations (about 600 kB), most in well under 1 s.
MIN_COMPILE_TIME_SECS = 0.0

_REQUESTS = "/jax/compilation_cache/compile_requests_use_cache"
_HITS = "/jax/compilation_cache/cache_hits"
_counts = {_REQUESTS: 0, _HITS: 0}
_lock = threading.Lock()
_listening = False


class CacheStats(NamedTuple):
    """Cache events counted in this process since :func:`enable` was first called.

    ``requests``: compilations that consulted the persistent cache; ``hits``: how many of them
    it answered (the rest were compiled, and written when slow enough to compile).

    >>> CacheStats(requests=3, hits=2).misses
    1
    """

    requests: int
    hits: int

    @property
    def misses(self) -> int:
        """Requests the cache could not answer."""
        return self.requests - self.hits


def _on_event(event: str, **kwargs: object) -> None:
    del kwargs
    if event in _counts:
        with _lock:
            _counts[event] += 1


def _listen() -> None:
    global _listening
    with _lock:
        if _listening:
            return
        _listening = True
    jax.monitoring.register_event_listener(_on_event)


def stats() -> CacheStats:
    """How often this process consulted the persistent cache, and how often it hit.

    >>> isinstance(stats(), CacheStats)
    True
    """
    with _lock:
        return CacheStats(_counts[_REQUESTS], _counts[_HITS])


def default_cache_dir(environ: Mapping[str, str] | None = None) -> Path:
    """``$XDG_CACHE_HOME/supjax/jax``, or ``~/.cache/supjax/jax`` without ``XDG_CACHE_HOME``.

    >>> default_cache_dir({}).parts[-3:]
    ('.cache', 'supjax', 'jax')
    """
    environ = os.environ if environ is None else environ
    base = environ.get("XDG_CACHE_HOME") or ""
    root = Path(base) if os.path.isabs(base) else Path.home() / ".cache"  # the XDG spec ignores relative paths
    return root / "supjax" / "jax"


def enable(path: str | os.PathLike[str] | None = None,
           min_compile_time_secs: float = MIN_COMPILE_TIME_SECS) -> Path:
    """Switch JAX's persistent compilation cache on, in ``path`` (default :func:`default_cache_dir`).

    Call it before the first jitted computation of the process: JAX decides once per process
    whether to use the cache. Returns the cache directory (created, mode 0700).

    Raises ``TypeError``/``ValueError`` naming the argument for a bad ``min_compile_time_secs``.

    >>> import tempfile
    >>> folder = enable(tempfile.mkdtemp() + "/jax")  # doctest: +SKIP
    >>> folder.is_dir(), jax.config.jax_compilation_cache_dir == str(folder)  # doctest: +SKIP
    (True, True)
    """
    if isinstance(min_compile_time_secs, bool) or not isinstance(min_compile_time_secs, (int, float)):
        raise TypeError(f"min_compile_time_secs must be a number, got {type(min_compile_time_secs).__name__}")
    if not min_compile_time_secs >= 0:
        raise ValueError(f"min_compile_time_secs must be >= 0, got {min_compile_time_secs}")
    folder = Path(path).expanduser() if path is not None else default_cache_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    _listen()
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", str(folder))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_secs))
    return folder


def disable() -> None:
    """Switch JAX's persistent compilation cache off for this process (nothing is read or written).

    >>> before = jax.config.jax_enable_compilation_cache
    >>> disable(); jax.config.jax_enable_compilation_cache
    False
    >>> jax.config.update("jax_enable_compilation_cache", before)
    """
    jax.config.update("jax_enable_compilation_cache", False)


def cache_entries(path: str | os.PathLike[str]) -> int:
    """Number of compiled executables stored in a cache directory (0 if it does not exist).

    >>> import tempfile
    >>> cache_entries(tempfile.mkdtemp()), cache_entries("/nonexistent/supjax-cache")
    (0, 0)
    """
    folder = Path(path)
    if not folder.is_dir():
        return 0
    return sum(1 for f in folder.iterdir() if f.name.endswith("-cache"))


def add_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add ``--no-compile-cache`` and ``--compile-cache-dir DIR`` to a parser or group.

    >>> p = argparse.ArgumentParser(); add_arguments(p)
    >>> p.parse_args(["--compile-cache-dir", "/tmp/c"]).compile_cache_dir
    '/tmp/c'
    """
    parser.add_argument("--no-compile-cache", action="store_true",
                        help="do not use JAX's persistent compilation cache (by default compiled steps are "
                             "kept in $XDG_CACHE_HOME/supjax/jax, ~/.cache/supjax/jax, and reused by later runs)")
    parser.add_argument("--compile-cache-dir", default=None, metavar="DIR",
                        help="where the compilation cache lives (default $XDG_CACHE_HOME/supjax/jax)")


_OPTIONS = ("jax_enable_compilation_cache", "jax_compilation_cache_dir",
            "jax_persistent_cache_min_compile_time_secs")


@contextlib.contextmanager
def configure(args: argparse.Namespace) -> Iterator[Path | None]:
    """Apply :func:`add_arguments`' options while the block runs; yield the cache directory or None.

    JAX's options are restored afterwards, so a caller that runs a command in its own process
    (a test, a notebook) keeps its settings.

    >>> p = argparse.ArgumentParser(); add_arguments(p)
    >>> with configure(p.parse_args(["--no-compile-cache"])) as folder:
    ...     folder, jax.config.jax_enable_compilation_cache
    (None, False)
    """
    saved = {name: getattr(jax.config, name) for name in _OPTIONS}
    try:
        if getattr(args, "no_compile_cache", False):
            disable()
            yield None
        else:
            yield enable(getattr(args, "compile_cache_dir", None))
    finally:
        for name, value in saved.items():
            jax.config.update(name, value)
