"""One jitted suppress operation, ready to time: the timer behind the operation figures.

``lenet5_operation_ms`` and ``selection_ratio`` (:mod:`supjax_app.bench.figures`) and
``compat_mindspore.bench``'s ``reference_speedup`` all time supjax's operation through
:func:`operation_timer`, reaching supjax's internals through the door :mod:`supjax.engine`.

>>> from supjax import LayerRule
>>> plans, run = operation_timer(random_weights({"w": (300,)}, seed=0), [LayerRule("w/kernel")])
>>> plans[0].size, run(SPARSITIES[0]) > 0
(300, True)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from supjax import engine
from supjax_app.bench.timing import timed

__all__ = [
    "LATER",
    "SPARSITIES",
    "operation_timer",
    "random_weights",
]

#: Targets cycled through the timed operations.
SPARSITIES: tuple[float, ...] = (0.3, 0.5, 0.7, 0.9)
#: Targets of operations timed after one at ``SPARSITIES[0]``.
LATER: tuple[float, ...] = SPARSITIES[1:]


def random_weights(shapes: dict[str, tuple[int, ...]], seed: int) -> dict[str, np.ndarray]:
    """float32 weights drawn from N(0, 0.1**2), one array per named shape.

    >>> {name: w.shape for name, w in random_weights({"conv1": (5, 5, 1, 6), "fc": (10,)}, 0).items()}
    {'conv1': (5, 5, 1, 6), 'fc': (10,)}
    """
    rng = np.random.default_rng(seed)
    return {name: rng.normal(0.0, 0.1, shape).astype(np.float32) for name, shape in shapes.items()}


def operation_timer(
    weights: dict[str, np.ndarray],
    rules: Sequence[Any],
    reference_parity: bool = False,
    after: float | None = None,
) -> tuple[list[engine.LayerPlan], Callable[[float], float]]:
    """A jitted operation over ``weights`` (``name/kernel`` paths), and its plans.

    Returns ``(plans, run)`` where ``run(sparsity)`` times one operation (a target from
    :data:`SPARSITIES`) from fresh masks, or from the state an operation at ``after`` left.
    Every target is compiled and run once before ``run`` is returned.

    >>> from supjax import LayerRule
    >>> plans, run = operation_timer(random_weights({"a": (40,), "b": (60,)}, 0),
    ...                              [LayerRule("a/kernel"), LayerRule("b/kernel")], after=SPARSITIES[0])
    >>> [(p.path_name, p.size) for p in plans], run(LATER[0]) > 0
    ([('a/kernel', 40), ('b/kernel', 60)], True)
    """
    params = {name: {"kernel": jnp.asarray(w)} for name, w in weights.items()}
    plans = engine.plan_layers(engine.select_layers(params, rules), reference_parity)
    ws = [params[p.path_name.split("/")[0]]["kernel"] for p in plans]
    keeps = [jnp.ones(w.shape, bool) for w in ws]
    counts = jnp.zeros(len(plans), jnp.int32)
    key = jax.random.PRNGKey(0)
    operation = jax.jit(
        lambda w, k, c, s, key: engine.suppress_operation(plans, w, k, c, s, key, reference_parity)
    )
    stops = {
        s: jnp.asarray([engine.stop_count(p.size, p.rule.min_num, s) for p in plans], jnp.int32)
        for s in SPARSITIES
    }
    for s in SPARSITIES:  # compile, then warm up every target once
        jax.block_until_ready(operation(ws, keeps, counts, stops[s], key))
    if after is not None:
        first = operation(ws, keeps, counts, stops[after], key)
        keeps, counts = list(first.keep), first.counts
        ws = [w - d for w, d in zip(ws, first.delta)]  # where that operation's step lands
        jax.block_until_ready(ws)

    def run(sparsity: float) -> float:
        return timed(lambda: operation(ws, keeps, counts, stops[sparsity], key))

    return plans, run
