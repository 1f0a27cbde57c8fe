"""Parameter averaging for DP-SGD: debiased exponential moving averages of the iterates.

DP-SGD's accountant bounds the privacy of the whole sequence of privatised updates, so every
iterate, and any function of them such as their moving average, has the same (ε, δ) (De et al.
2022 use such an average for their DP-SGD results). :func:`make_averager` keeps one average per
decay with ``optax.ema(decay, debias=True)`` applied to the params; :func:`masked_like` gives the
suppressed model's average the zeros suppression released.

>>> import jax.numpy as jnp
>>> init, update = make_averager((0.5,))
>>> state = init(jnp.zeros(1))
>>> for value in (4.0, 8.0):
...     averages, state = update(state, jnp.array([value]))
>>> round(float(averages[0][0]), 5)  # (0.5 * 0.5 * 4 + 0.5 * 8) / (1 - 0.5 ** 2)
6.66667
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import optax

__all__ = [
    "check_decay",
    "make_averager",
    "masked_like",
]


def check_decay(option: str, value: Any) -> float:
    """``value`` as a float if it is a number in (0, 1); otherwise ``ValueError`` naming ``option``.

    >>> check_decay("--ema-decay", 0.99)
    0.99
    >>> check_decay("--ema-decay", 1)
    Traceback (most recent call last):
    ...
    ValueError: --ema-decay must be a number in (0, 1), got 1
    """
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not 0 < float(value) < 1:
        raise ValueError(f"{option} must be a number in (0, 1), got {value!r}")
    return float(value)


def make_averager(decays: Sequence[float]) -> tuple[Callable[[Any], Any], Callable[[Any, Any], tuple[Any, Any]]]:
    """``(init, update)``: one debiased moving average of the params per decay.

    ``init(params)`` gives the state; ``update(state, params)`` (jitted) folds in the params
    after a step and returns ``(averages, state)``, ``averages[i]`` for ``decays[i]``.

    >>> init, update = make_averager((0.9, 0.99))
    >>> averages, _ = update(init({"w": jnp.zeros(2)}), {"w": jnp.ones(2)})
    >>> [round(float(a["w"][0]), 5) for a in averages]  # debiased: after one step, the params themselves
    [1.0, 1.0]
    """
    decays = tuple(check_decay("decays", d) for d in decays)
    averagers = tuple(optax.ema(d, debias=True) for d in decays)

    def init(params: Any) -> tuple[Any, ...]:
        return tuple(a.init(params) for a in averagers)

    @jax.jit
    def update(state: tuple[Any, ...], params: Any) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
        pairs = [a.update(params, s) for a, s in zip(averagers, state)]
        return tuple(avg for avg, _ in pairs), tuple(s for _, s in pairs)

    return init, update


def masked_like(averaged: Any, keep: Any) -> Any:
    """``averaged`` with zeros wherever the bool tree ``keep`` is ``False``.

    For the suppressed model, ``keep`` is :func:`supjax.keep_mask_tree` of the final state:
    its average then has exactly the zeros suppression released, so it is as sparse as the
    last iterate.

    >>> masked_like({"w": jnp.array([0.5, 0.25]), "b": jnp.array(1.0)},
    ...             {"w": jnp.array([False, True]), "b": jnp.asarray(True)})["w"].tolist()
    [0.0, 0.25]
    """
    return jax.tree_util.tree_map(lambda a, k: jnp.where(k, a, jnp.zeros_like(a)), averaged, keep)
