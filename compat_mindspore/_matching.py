"""Match ``MaskLayerDes`` descriptions to MindSpore parameters, and hand them to supjax.

A description's ``layer_name`` is a substring of a parameter name. Parameters are visited
in ``networks.get_parameters(expand=True)`` order; each takes the first description (in
list order) that it contains and that has not matched yet. Every description must match.
Each match becomes a :class:`supjax.LayerRule` whose pattern is the parameter's exact name,
resolved by :func:`supjax.engine.select_layers` over the network's parameters in network order (so
``leaf_index`` is the position in the network, which is what the "first parameter" rules
of supjax look at).
"""

from __future__ import annotations

import collections
import re
from typing import NamedTuple, Sequence

import numpy as np
from mindspore import Parameter, nn

from supjax import LayerRule
from supjax.engine import SelectedLayer, select_layers

from compat_mindspore._convert import numpy_dtype
from compat_mindspore._state import is_state_parameter
from compat_mindspore.mask_layer import MaskLayerDes

__all__ = ["MatchedLayer", "check_mask_layers", "match_mask_layers", "parameter_key"]

_GLOB_CHARS = re.compile(r"[*?\[\]]")


class MatchedLayer(NamedTuple):
    """One suppressed parameter: its description, the parameter and supjax's view of it.

    >>> from mindspore import nn
    >>> net = nn.SequentialCell([nn.Dense(4, 3), nn.Dense(3, 2)])
    >>> (matched,) = match_mask_layers(net, [MaskLayerDes("1.weight", 2, False, False, -1)])
    >>> matched.parameter.name, matched.position, matched.selected.size, matched.description.grad_idx
    ('1.weight', 2, 6, 2)
    """

    description: MaskLayerDes
    parameter: Parameter
    position: int  # index in networks.get_parameters(expand=True)
    selected: SelectedLayer


def check_mask_layers(mask_layers: Sequence[object]) -> None:
    """MindArmour's list checks: every item a ``MaskLayerDes``, unique names, unique ``grad_idx``.

    All three raise ``ValueError`` (as the reference does, even for a wrong item type).

    >>> check_mask_layers([MaskLayerDes("a", 0, False, False, -1), MaskLayerDes("b", 1, False, False, -1)])
    """
    for i, item in enumerate(mask_layers):
        if not isinstance(item, MaskLayerDes):
            raise ValueError(
                f"mask_layers should be a list of MaskLayerDes, but item {i} is a {type(item).__name__}"
            )
    names: dict[str, int] = {}
    indices: dict[int, int] = {}
    for i, item in enumerate(mask_layers):
        if item.layer_name in names:
            raise ValueError(
                f"Mask layer name should be unique, but got duplicate name {item.layer_name!r} "
                f"in mask_layers {names[item.layer_name]} and {i}"
            )
        if item.grad_idx in indices:
            raise ValueError(
                f"grad_idx should be unique, but got duplicate grad_idx {item.grad_idx} "
                f"in mask_layers {indices[item.grad_idx]} and {i}"
            )
        names[item.layer_name] = i
        indices[item.grad_idx] = i


def parameter_key(name: str, seen: set[str]) -> str:
    """A unique key for a parameter name (names repeat only in unusual networks).

    >>> parameter_key("fc.weight", {"fc.weight"})
    'fc.weight#1'
    """
    key, n = name, 0
    while key in seen:
        n += 1
        key = f"{name}#{n}"
    seen.add(key)
    return key


def _exact_pattern(key: str) -> str | re.Pattern:
    """An exact-match pattern for supjax (a regex when the name holds glob characters)."""
    return re.compile(re.escape(key)) if _GLOB_CHARS.search(key) else key


def _stand_in(param: Parameter) -> np.ndarray:
    """A zero-memory array with the parameter's shape and dtype, for supjax's checks."""
    return np.broadcast_to(np.zeros((), dtype=numpy_dtype(param)), tuple(param.shape))


def match_mask_layers(networks: nn.Cell, mask_layers: Sequence[MaskLayerDes]) -> tuple[MatchedLayer, ...]:
    """Match every description to one parameter; the result is in network order.

    Raises ``ValueError`` when a description matches no parameter, or a matched parameter is
    not a floating-point tensor (from supjax).

    >>> from mindspore import nn
    >>> net = nn.SequentialCell([nn.Dense(4, 3), nn.Dense(3, 2)])
    >>> [m.parameter.name for m in match_mask_layers(net, [MaskLayerDes("1.weight", 2, False, False, -1)])]
    ['1.weight']
    """
    params = [p for p in networks.get_parameters(expand=True) if not is_state_parameter(p.name)]
    seen: set[str] = set()
    keys = [parameter_key(p.name, seen) for p in params]
    taken: dict[int, MaskLayerDes] = {}
    used: set[int] = set()
    for position, param in enumerate(params):
        for j, des in enumerate(mask_layers):
            if j not in used and des.layer_name in param.name:
                used.add(j)
                taken[position] = des
                break
    missing = [des.layer_name for j, des in enumerate(mask_layers) if j not in used]
    if missing:
        names = ", ".join(p.name for p in params[:30])
        raise ValueError(f"can't match these mask layers: {missing}; parameter names are: {names}")
    if not taken:
        return ()
    rules = [
        LayerRule(
            _exact_pattern(keys[position]),
            is_add_noise=des.is_add_noise,
            is_lower_clip=des.is_lower_clip,
            min_num=des.effective_min_num,
            upper_bound=des.upper_bound,
        )
        for position, des in sorted(taken.items())
    ]
    tree = collections.OrderedDict((key, _stand_in(p)) for key, p in zip(keys, params))
    selected = select_layers(tree, rules)
    return tuple(
        MatchedLayer(taken[s.leaf_index], params[s.leaf_index], s.leaf_index, s) for s in selected
    )
