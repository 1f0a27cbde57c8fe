"""Running supjax's suppress operations for ``SuppressCtrl``: the compiled operations and their inputs.

supjax's :func:`~supjax.engine.suppress_operation` is jitted once per set of layer plans
(closed over, shared by equal plans) and compiled ahead of its first use in one background
thread; :func:`~supjax.engine.exact_operation` and :func:`~supjax.engine.run_layer` are
jitted for the one-layer operations. The other helpers check the arguments, find the
weights these run on and log what the operations skip.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
from typing import Callable, Sequence

import jax
import numpy as np
from mindspore import Parameter, nn

from supjax.engine import exact_operation, run_layer, suppress_operation

from compat_mindspore._convert import numpy_dtype
from compat_mindspore._log import log
from compat_mindspore._matching import MatchedLayer

__all__: list[str] = []


_COMPILER: concurrent.futures.ThreadPoolExecutor | None = None


def compiler() -> concurrent.futures.ThreadPoolExecutor:
    """One background thread for compiling suppress operations ahead of their first use.

    >>> compiler() is compiler()
    True
    """
    global _COMPILER
    if _COMPILER is None:
        _COMPILER = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="supjax-compile")
    return _COMPILER


@functools.lru_cache(maxsize=64)
def jitted_operation(plans: tuple, reference_parity: bool):
    """supjax's ``suppress_operation`` jitted with the plans closed over, shared by equal plans.

    >>> jitted_operation((), False) is jitted_operation((), False)
    True
    """
    return jax.jit(functools.partial(suppress_operation, plans, reference_parity=reference_parity))


exact_jit = jax.jit(exact_operation, static_argnames=("rule", "parity"))
layer_jit = jax.jit(run_layer, static_argnames=("plan", "reference_parity"))


def compile_job(
    operation: Callable, layers: Sequence[MatchedLayer], keeps: Sequence[np.ndarray], counts: np.ndarray
) -> Callable[[], None]:
    """A call that runs ``operation`` once on zero weights, so that it gets compiled.

    >>> from mindspore import nn
    >>> from compat_mindspore._matching import match_mask_layers
    >>> from compat_mindspore.mask_layer import MaskLayerDes
    >>> net = nn.SequentialCell([nn.Dense(2, 2)])
    >>> layers = match_mask_layers(net, [MaskLayerDes("0.weight", 0, False, True, 1)])
    >>> seen = []
    >>> job = compile_job(lambda *args: seen.append(args), layers, [np.ones((2, 2), bool)], np.zeros(1, np.int32))
    >>> job()
    >>> [a.shape for a in seen[0][0]], seen[0][2].tolist()
    ([(2, 2)], [0])
    """
    weights = [np.zeros(tuple(m.parameter.shape), numpy_dtype(m.parameter)) for m in layers]
    keeps = [np.ones(k.shape, bool) for k in keeps]
    counts = np.zeros_like(counts)
    key = jax.random.PRNGKey(0)

    def run() -> None:
        jax.block_until_ready(operation(weights, keeps, counts, counts, key))

    return run


def check_schedule_args(end_epoch: int, start_epoch: int, lr: float, sparse_end: float, sparse_start: float) -> None:
    """MindArmour's range checks, in its order (all ``ValueError``).

    >>> check_schedule_args(10, 3, 0.05, 0.9, 0.0)
    >>> check_schedule_args(10, 3, 0.6, 0.9, 0.0)
    Traceback (most recent call last):
    ...
    ValueError: learning rate should not be greater than 0.5, but got 0.6
    """
    if lr > 0.5:
        raise ValueError(f"learning rate should not be greater than 0.5, but got {lr}")
    if start_epoch > end_epoch:
        raise ValueError(
            "start_epoch should not be greater than end_epoch, but got start_epoch and "
            f"end_epoch are: {start_epoch}, {end_epoch}"
        )
    if end_epoch > 100:
        raise ValueError(f"end_epoch should not be greater than 100, but got {end_epoch}")
    if sparse_end >= 1.0 or sparse_end <= 0.0:
        raise ValueError(f"sparse_end should be in range (0, 1), but got {sparse_end}")
    if sparse_start >= sparse_end:
        raise ValueError(
            "sparse_start should be smaller than sparse_end, but got sparse_start and "
            f"sparse_end are: {sparse_start}, {sparse_end}"
        )


def check_interval(interval: float) -> None:
    """Log (INFO) that an interval between suppress operations outside (10, 20) may give a poor model.

    >>> check_interval(15.0)
    """
    if not 10 < interval < 20:
        log(
            logging.INFO,
            "mask interval (end_epoch - start_epoch + 1) * batch_num / mask_times = %s is outside "
            "(10, 20): the trained model's precision may be poor",
            interval,
        )


def check_grad_idx(layers: Sequence[MatchedLayer], n_params: int) -> None:
    """``ValueError`` when a layer's ``grad_idx`` is beyond the network's ``n_params`` parameters.

    >>> check_grad_idx((), 0)
    """
    for layer in layers:
        if layer.description.grad_idx >= n_params:
            raise ValueError(
                f"grad_idx {layer.description.grad_idx} of mask layer "
                f"{layer.description.layer_name!r} is beyond the network's {n_params} parameters"
            )


def parameters_of(networks: nn.Cell, own: nn.Cell, layers: Sequence[MatchedLayer]) -> list[Parameter]:
    """The parameters of ``networks`` at the layers' positions (``own``: the network matched).

    >>> from mindspore import nn
    >>> from compat_mindspore._matching import match_mask_layers
    >>> from compat_mindspore.mask_layer import MaskLayerDes
    >>> net, twin = nn.SequentialCell([nn.Dense(2, 2)]), nn.SequentialCell([nn.Dense(2, 2)])
    >>> layers = match_mask_layers(net, [MaskLayerDes("0.weight", 0, False, True, 1)])
    >>> parameters_of(twin, net, layers)[0] is twin[0].weight
    True
    """
    if networks is own:
        return [m.parameter for m in layers]
    params = list(networks.get_parameters(expand=True))
    found = []
    for m in layers:
        if m.position >= len(params) or tuple(params[m.position].shape) != tuple(m.parameter.shape):
            raise ValueError(
                f"networks does not have the structure the controller was built for "
                f"(no parameter shaped {tuple(m.parameter.shape)} at position {m.position})"
            )
        found.append(params[m.position])
    return found


def layer_at(layers: Sequence[MatchedLayer], grad_idx: int) -> int | None:
    """The index of the layer with ``grad_idx`` (``None``, with a warning, if none has it).

    >>> layer_at((), 3) is None
    True
    """
    for i, m in enumerate(layers):
        if m.description.grad_idx == grad_idx:
            return i
    log(logging.WARNING, "no suppressed layer has grad_idx %s: nothing to do", grad_idx)
    return None


def flat_weights(layer: MatchedLayer, plan, weights: np.ndarray) -> np.ndarray:
    """``weights`` flattened in the layer's dtype; ``ValueError`` unless it has the plan's size.

    >>> from mindspore import nn
    >>> from supjax.engine import plan_layers
    >>> from compat_mindspore._matching import match_mask_layers
    >>> from compat_mindspore.mask_layer import MaskLayerDes
    >>> net = nn.SequentialCell([nn.Dense(2, 2)])
    >>> (layer,) = match_mask_layers(net, [MaskLayerDes("0.weight", 0, False, True, 1)])
    >>> (plan,) = plan_layers([layer.selected], False)
    >>> flat_weights(layer, plan, [[1, 2], [3, 4]])
    array([1., 2., 3., 4.], dtype=float32)
    """
    flat = np.asarray(weights, dtype=numpy_dtype(layer.parameter)).reshape(-1)
    if flat.size != plan.size:
        raise ValueError(
            f"weight_array_flat has {flat.size} values but layer {plan.path_name!r} has {plan.size}"
        )
    return flat


def warn_nonfinite(params: Sequence[Parameter], nonfinite) -> None:
    """Warn about each parameter whose ``nonfinite`` flag is set (supjax skipped it).

    >>> warn_nonfinite([], [])
    """
    for i, flag in enumerate(np.asarray(nonfinite)):
        if flag:
            log(logging.WARNING, "%s holds NaN or Inf: skipped by this suppress operation", params[i].name)
