"""Save and restore a whole :class:`~supjax_app.train.loop.TrainState` with Orbax.

A checkpoint holds every leaf of the state (params, optimizer state with its
``SuppressState``, PRNG key, data position) as an array, plus a JSON item with the leaf
paths (to catch a mismatched model or optimizer) and whatever metadata the caller adds.
Saves are asynchronous (Orbax's async ``CheckpointManager``): :meth:`Checkpointer.save` copies
the state to host memory and returns while a background thread writes it, so training goes
on during the write. Orbax writes each step into a temporary directory and renames it to the
step's name only when everything is written, so a process killed mid-save leaves only that
temporary directory, which Orbax ignores (a new manager cleans it up), and the last complete
checkpoint stays the latest. Every read waits for the pending save of this process first.

>>> import tempfile, jax.numpy as jnp
>>> ckpt = Checkpointer(tempfile.mkdtemp())
>>> ckpt.save(3, {"w": jnp.arange(3.0)}, {"note": "hi"})
>>> state, meta = ckpt.restore({"w": jnp.zeros(3)})
>>> state["w"].tolist(), meta["note"], ckpt.latest_step()
([0.0, 1.0, 2.0], 'hi', 3)
>>> ckpt.close()
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import numpy as np

from supjax.layers import leaf_paths

__all__ = [
    "Checkpointer",
    "CheckpointMismatch",
]


class CheckpointMismatch(ValueError):
    """A checkpoint does not fit the state it is restored into.

    >>> import tempfile, jax.numpy as jnp
    >>> with Checkpointer(tempfile.mkdtemp()) as ckpt:
    ...     ckpt.save(1, {"w": jnp.zeros(2)})
    ...     try:
    ...         ckpt.restore({"w": jnp.zeros(3)})
    ...     except CheckpointMismatch as err:
    ...         print(err)
    checkpoint 1: w has shape (2,) and dtype float32, expected (3,) and float32
    """


def _key(i: int) -> str:
    return f"leaf_{i:05d}"


def _orbax() -> Any:
    """``orbax.checkpoint``, imported on first use (about 0.9 s: a run without checkpoints skips it)."""
    import orbax.checkpoint

    return orbax.checkpoint


class Checkpointer:
    """An Orbax ``CheckpointManager`` over one directory, keeping the last ``max_to_keep``.

    Args:
      directory: where the step directories go (created if missing).
      max_to_keep: how many checkpoints to keep (older ones are deleted).

    >>> import tempfile, jax.numpy as jnp
    >>> with Checkpointer(tempfile.mkdtemp(), max_to_keep=2) as ckpt:
    ...     for step in (10, 20, 30):
    ...         ckpt.save(step, {"w": jnp.full(2, step)}, {"epoch": step // 10})
    ...     print(ckpt.all_steps(), ckpt.meta()["epoch"], ckpt.read(20)[0]["w"].tolist())
    [20, 30] 3 [20, 20]
    """

    def __init__(self, directory: str | os.PathLike, max_to_keep: int = 3) -> None:
        if max_to_keep < 1:
            raise ValueError(f"max_to_keep must be >= 1, got {max_to_keep}")
        ocp = _orbax()
        self.directory = Path(directory).absolute()
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=True,
            enable_async_checkpointing=True,
            cleanup_tmp_directories=True,
        )
        self._manager = ocp.CheckpointManager(self.directory, options=options)

    def all_steps(self) -> list[int]:
        """Steps of the complete checkpoints on disk, ascending (after the pending save)."""
        self._manager.wait_until_finished()
        return sorted(int(s) for s in self._manager.all_steps())

    def latest_step(self) -> int | None:
        """The newest complete checkpoint's step, or ``None``."""
        steps = self.all_steps()
        return steps[-1] if steps else None

    def save(self, step: int, state: Any, meta: dict[str, Any] | None = None) -> None:
        """Start writing ``state`` (any pytree of arrays) and JSON ``meta`` as checkpoint ``step``.

        The arrays are copied to host memory before this returns, so ``state`` may change
        right after; the write itself goes on in the background (the next save, any read
        and :meth:`close` wait for it). Saving a step that already exists does nothing.
        """
        ocp = _orbax()
        if step in self.all_steps():
            return
        leaves = jax.tree_util.tree_leaves(state)
        # own copies: a zero-copy view of a device buffer could be overwritten (a donated
        # buffer reused by the next step) while the background thread still writes it
        arrays = {_key(i): np.array(jax.device_get(leaf), copy=True) for i, leaf in enumerate(leaves)}
        info = {"paths": list(leaf_paths(state)), "meta": meta or {}}
        self._manager.save(
            int(step),
            args=ocp.args.Composite(state=ocp.args.StandardSave(arrays), info=ocp.args.JsonSave(info)),
        )

    def wait(self) -> None:
        """Block until the pending save (if any) is complete on disk."""
        self._manager.wait_until_finished()

    def restore(self, template: Any, step: int | None = None) -> tuple[Any, dict[str, Any]]:
        """Checkpoint ``step`` (default: the latest) restored into ``template``'s structure.

        Returns ``(state, meta)``. Raises ``FileNotFoundError`` when there is no checkpoint
        and :class:`CheckpointMismatch` when its leaves do not fit ``template``.
        """
        ocp = _orbax()
        step = self._step(step)
        leaves, treedef = jax.tree_util.tree_flatten(template)
        abstract = {_key(i): np.zeros(np.shape(x), np.asarray(x).dtype) for i, x in enumerate(leaves)}
        info = self._manager.restore(int(step), args=ocp.args.Composite(info=ocp.args.JsonRestore()))["info"]
        paths = list(leaf_paths(template))
        if info["paths"] != paths:
            raise CheckpointMismatch(
                f"checkpoint {step} in {self.directory} was written for a different model or "
                f"optimizer ({len(info['paths'])} arrays, expected {len(paths)}); "
                "use another --checkpoint-dir or drop --resume"
            )
        restored = self._manager.restore(
            int(step), args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract))
        )["state"]
        new_leaves = []
        for i, (x, path) in enumerate(zip(leaves, paths)):
            value = np.asarray(restored[_key(i)])
            if value.shape != np.shape(x) or value.dtype != np.asarray(x).dtype:
                raise CheckpointMismatch(
                    f"checkpoint {step}: {path} has shape {value.shape} and dtype {value.dtype}, "
                    f"expected {np.shape(x)} and {np.asarray(x).dtype}"
                )
            new_leaves.append(jax.numpy.asarray(value))
        return jax.tree_util.tree_unflatten(treedef, new_leaves), info["meta"]

    def meta(self, step: int | None = None) -> dict[str, Any]:
        """The JSON metadata saved with checkpoint ``step`` (default: the latest)."""
        ocp = _orbax()
        step = self._step(step)
        return self._manager.restore(int(step), args=ocp.args.Composite(info=ocp.args.JsonRestore()))["info"]["meta"]

    def _step(self, step: int | None) -> int:
        self._manager.wait_until_finished()
        if step is None:
            step = self.latest_step()
            if step is None:
                raise FileNotFoundError(f"no checkpoint in {self.directory}")
        return int(step)

    def read(self, step: int | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Checkpoint ``step`` (default: the latest) as ``({leaf path: numpy array}, meta)``.

        Needs no template: for inspecting or comparing checkpoints.
        """
        ocp = _orbax()
        step = self._step(step)
        got = self._manager.restore(
            int(step), args=ocp.args.Composite(state=ocp.args.StandardRestore(), info=ocp.args.JsonRestore())
        )
        paths = got["info"]["paths"]
        arrays = {path: np.asarray(got["state"][_key(i)]) for i, path in enumerate(paths)}
        return arrays, got["info"]["meta"]

    def close(self) -> None:
        """Finish pending work and release the manager."""
        self._manager.wait_until_finished()
        self._manager.close()

    def __enter__(self) -> "Checkpointer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
