"""Which parameters are suppressed, and with which per-layer options.

A :class:`LayerRule` is the JAX counterpart of MindArmour's ``MaskLayerDes``: a pattern that
picks leaves of the params pytree by key path, plus the per-layer options. Paths are the
leaf's keys joined by ``/`` (``"conv1/kernel"``, ``"layers/0/w"``); a pattern matches a
path exactly, as a glob (``"conv*/kernel"``), or as a compiled regular expression
(``re.compile(r"dense_\\d/kernel")``, full match).
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from typing import Any, NamedTuple, Sequence

import jax
import numpy as np

from supjax._checks import check_bool, check_int, check_real

__all__ = [
    "LayerRule",
    "SelectedLayer",
    "leaf_indices",
    "leaf_path",
    "leaf_paths",
    "select_layers",
]

#: The documented size above which a layer takes the large-layer path.
DOCUMENTED_LARGE_LAYER_SIZE = 100_000
#: The size MindArmour 2.0.0's code really uses.
REFERENCE_LARGE_LAYER_SIZE = 10_000


@dataclasses.dataclass(frozen=True)
class LayerRule:
    """Per-layer suppression options (MindArmour's ``MaskLayerDes`` without ``grad_idx``).

    Args:
      pattern: exact key path, glob, or compiled regex selecting one or more leaves.
      is_add_noise: add ``U(-0.1, 0.1)`` noise to kept weights with ``|w| > 0.5``.
      is_lower_clip: pull kept weights with ``|w| <= 0.005`` out to ``+-0.005``.
      min_num: weights that must stay unsuppressed (``-1``: no limit).
      upper_bound: largest ``|w|`` kept; used as ``max(0.10, upper_bound)``.

    >>> LayerRule("conv1/kernel", is_lower_clip=True, min_num=10).effective_upper_bound
    1.2
    """

    pattern: str | re.Pattern
    is_add_noise: bool = False
    is_lower_clip: bool = False
    min_num: int = -1
    upper_bound: float = 1.20

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, (str, re.Pattern)):
            raise TypeError(
                f"pattern must be a str (path or glob) or a compiled re.Pattern, "
                f"got {type(self.pattern).__name__}"
            )
        if isinstance(self.pattern, str) and not self.pattern:
            raise ValueError("pattern must be a non-empty string")
        check_bool("is_add_noise", self.is_add_noise)
        check_bool("is_lower_clip", self.is_lower_clip)
        check_int("min_num", self.min_num, low=-1)
        check_real("upper_bound", self.upper_bound, low=0.0, low_open=True)

    @property
    def effective_upper_bound(self) -> float:
        """``max(0.10, upper_bound)``, the bound the rules apply."""
        return max(0.10, float(self.upper_bound))

    def matches(self, path: str) -> bool:
        """Whether this rule's pattern selects ``path``.

        >>> LayerRule("conv*/kernel").matches("conv2/kernel")
        True
        """
        if isinstance(self.pattern, re.Pattern):
            return self.pattern.fullmatch(path) is not None
        return path == self.pattern or fnmatch.fnmatchcase(path, self.pattern)


class SelectedLayer(NamedTuple):
    """A params leaf chosen for suppression (what :func:`select_layers` returns).

    >>> import jax.numpy as jnp
    >>> select_layers({"a": jnp.ones(3), "w": jnp.ones((2, 5))}, [LayerRule("w")])[0]
    SelectedLayer(path='w', leaf_index=1, size=10, rule=LayerRule(pattern='w', is_add_noise=False, is_lower_clip=False, min_num=-1, upper_bound=1.2))
    """

    path: str
    leaf_index: int
    size: int
    rule: LayerRule


def _key_name(key: Any) -> str:
    for attr in ("key", "name", "idx"):
        if hasattr(key, attr):
            return str(getattr(key, attr))
    return str(key)


def leaf_path(key_path: Sequence[Any]) -> str:
    """The ``/``-joined name of a pytree key path (a trailing ``value`` is dropped).

    >>> import jax
    >>> [leaf_path(p) for p, _ in jax.tree_util.tree_flatten_with_path({"a": {"b": 1}})[0]]
    ['a/b']
    """
    names = [_key_name(k) for k in key_path]
    if len(names) > 1 and names[-1] == "value":
        names = names[:-1]
    return "/".join(names)


def leaf_paths(tree: Any) -> tuple[str, ...]:
    """The :func:`leaf_path` of every leaf of ``tree``, in leaf order.

    >>> leaf_paths({"b": [1, 2], "a": {"k": 3}})
    ('a/k', 'b/0', 'b/1')
    """
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return tuple(leaf_path(key_path) for key_path, _ in flat)


def leaf_indices(tree: Any, paths: Sequence[str]) -> tuple[int, ...]:
    """Position among the leaves of ``tree`` of each path in ``paths``.

    The one path-to-index map of the project (the transformation, training, reports).
    Raises ``ValueError`` naming the paths that ``tree`` does not hold.

    >>> leaf_indices({"a": 1, "w": {"kernel": 2}}, ["w/kernel", "a"])
    (1, 0)
    """
    index = {path: i for i, path in enumerate(leaf_paths(tree))}
    missing = [p for p in paths if p not in index]
    if missing:
        raise ValueError(f"paths {missing} are not in the tree; its leaf paths are {sorted(index)}")
    return tuple(index[p] for p in paths)


def select_layers(params: Any, rules: Sequence[LayerRule]) -> tuple[SelectedLayer, ...]:
    """Resolve ``rules`` against the leaves of ``params``, in leaf order.

    Errors (``ValueError``): a rule matching nothing, two rules with the same pattern, a
    leaf matched by two rules, a selected leaf that is not a floating-point array.

    >>> import jax.numpy as jnp
    >>> p = {"conv1": {"kernel": jnp.ones((3, 3)), "bias": jnp.ones(3)}}
    >>> [s.path for s in select_layers(p, [LayerRule("conv1/kernel")])]
    ['conv1/kernel']
    """
    rules = _check_rules(rules)
    flat, _ = jax.tree_util.tree_flatten_with_path(params)
    if not flat:
        raise ValueError("params has no leaves to select from")
    selected: list[SelectedLayer] = []
    used = [False] * len(rules)
    for index, (key_path, leaf) in enumerate(flat):
        path = leaf_path(key_path)
        hits = [i for i, rule in enumerate(rules) if rule.matches(path)]
        if len(hits) > 1:
            names = ", ".join(repr(rules[i].pattern) for i in hits)
            raise ValueError(f"layer {path!r} is matched by more than one rule: {names}")
        if not hits:
            continue
        used[hits[0]] = True
        _check_leaf(path, leaf)
        selected.append(SelectedLayer(path, index, int(np.size(leaf)), rules[hits[0]]))
    unmatched = [repr(rules[i].pattern) for i, u in enumerate(used) if not u]
    if unmatched:
        paths = ", ".join(leaf_path(k) for k, _ in flat[:20])
        raise ValueError(
            f"rules match no parameter: {', '.join(unmatched)}; parameter paths are: {paths}"
        )
    return tuple(selected)


def _check_rules(rules: Sequence[LayerRule]) -> tuple[LayerRule, ...]:
    if isinstance(rules, LayerRule):
        rules = (rules,)
    if not isinstance(rules, (list, tuple)):
        raise TypeError(f"layers must be a list or tuple of LayerRule, got {type(rules).__name__}")
    if not rules:
        raise ValueError("layers must name at least one layer to suppress, got an empty list")
    for i, rule in enumerate(rules):
        if not isinstance(rule, LayerRule):
            raise TypeError(f"layers[{i}] must be a LayerRule, got {type(rule).__name__}")
    patterns = [r.pattern.pattern if isinstance(r.pattern, re.Pattern) else r.pattern for r in rules]
    dupes = sorted({p for p in patterns if patterns.count(p) > 1})
    if dupes:
        raise ValueError(f"layer patterns must be unique, got duplicates: {dupes}")
    return tuple(rules)


def _check_leaf(path: str, leaf: Any) -> None:
    dtype = getattr(leaf, "dtype", None)
    if dtype is None or not hasattr(leaf, "shape"):
        raise TypeError(f"layer {path!r} must be an array, got {type(leaf).__name__}")
    if not np.issubdtype(np.dtype(dtype), np.floating) and str(dtype) != "bfloat16":
        raise TypeError(f"layer {path!r} must hold floating-point weights, got dtype {dtype}")
    if np.size(leaf) == 0:
        raise ValueError(f"layer {path!r} is empty (shape {tuple(leaf.shape)})")
