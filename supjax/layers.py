"""Which parameters are suppressed, and with which per-layer options.

A :class:`LayerRule` is the JAX counterpart of MindArmour's ``MaskLayerDes``: a pattern that
picks leaves of the params pytree by key path, plus the per-layer options. Paths are the
leaf's keys joined by ``/`` (``"conv1/kernel"``, ``"layers/0/w"``); a pattern matches a
path exactly, as a glob (``"conv*/kernel"``), as a compiled regular expression
(``re.compile(r"dense_\\d/kernel")``, full match), or as a predicate ``pattern(path, leaf)``
returning a bool.

Precedence when rules overlap: the most specific rule wins, and a rule that names the path
exactly (a string equal to it) is more specific than any pattern (glob, regex, predicate).
So ``[LayerRule("conv1/kernel", min_num=10), LayerRule("*/kernel")]`` gives ``conv1/kernel``
the first rule and every other kernel the second. Two patterns matching the same leaf, or
two rules naming it exactly, are ambiguous: ``ValueError`` naming the leaf and the rules.
A rule that selects nothing (it matches no leaf, or only leaves that more specific rules
take) is an error too.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import re
from typing import Any, Callable, NamedTuple, Sequence, Union

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

#: A predicate over a leaf: ``(path, leaf) -> bool``.
Predicate = Callable[[str, Any], bool]
#: What :attr:`LayerRule.pattern` accepts.
Pattern = Union[str, "re.Pattern[str]", Predicate]


@dataclasses.dataclass(frozen=True)
class LayerRule:
    """Per-layer suppression options (MindArmour's ``MaskLayerDes`` without ``grad_idx``).

    Args:
      pattern: exact key path, glob, compiled regex, or predicate ``pattern(path, leaf) ->
        bool`` selecting one or more leaves. A predicate is called when the transformation
        is initialised and again when each update is traced, with the leaf as an array or
        a tracer: decide from ``path``, ``leaf.shape``, ``leaf.ndim`` and ``leaf.dtype``,
        never from the values. Overlapping rules: see the module (an exact path wins).
      is_add_noise: add ``U(-0.1, 0.1)`` noise to kept weights with ``|w| > 0.5``.
      is_lower_clip: pull kept weights with ``|w| <= 0.005`` out to ``+-0.005``.
      min_num: weights that must stay unsuppressed (``-1``: no limit).
      upper_bound: largest ``|w|`` kept; used as ``max(0.10, upper_bound)``.

    >>> from supjax import LayerRule
    >>> LayerRule("conv1/kernel", is_lower_clip=True, min_num=10).effective_upper_bound
    1.2
    >>> kernels = LayerRule(lambda path, leaf: path.endswith("kernel") and leaf.ndim == 4)
    """

    pattern: Pattern
    is_add_noise: bool = False
    is_lower_clip: bool = False
    min_num: int = -1
    upper_bound: float = 1.20

    def __post_init__(self) -> None:
        if not isinstance(self.pattern, (str, re.Pattern)) and not callable(self.pattern):
            raise TypeError(
                f"pattern must be a str (path or glob), a compiled re.Pattern or a callable "
                f"(path, leaf) -> bool, got {type(self.pattern).__name__}"
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

    def matches(self, path: str, leaf: Any = None) -> bool:
        """Whether this rule's pattern selects the leaf ``leaf`` at ``path``.

        >>> from supjax import LayerRule
        >>> LayerRule("conv*/kernel").matches("conv2/kernel")
        True
        """
        if isinstance(self.pattern, re.Pattern):
            return self.pattern.fullmatch(path) is not None
        if isinstance(self.pattern, str):
            return path == self.pattern or fnmatch.fnmatchcase(path, self.pattern)
        hit = self.pattern(path, leaf)
        if not isinstance(hit, (bool, np.bool_)):
            raise TypeError(
                f"pattern {_describe(self.pattern)} must return a bool for {path!r}, "
                f"got {type(hit).__name__}"
            )
        return bool(hit)

    def names_exactly(self, path: str) -> bool:
        """Whether the pattern is ``path`` itself (such a rule wins over any pattern).

        >>> from supjax import LayerRule
        >>> LayerRule("conv1/kernel").names_exactly("conv1/kernel"), LayerRule("conv*").names_exactly("conv1")
        (True, False)
        """
        return isinstance(self.pattern, str) and self.pattern == path


class SelectedLayer(NamedTuple):
    """A params leaf chosen for suppression (what :func:`select_layers` returns).

    >>> import jax.numpy as jnp
    >>> from supjax.layers import LayerRule, select_layers
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

    >>> from supjax.layers import leaf_path
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

    >>> from supjax.layers import leaf_paths
    >>> leaf_paths({"b": [1, 2], "a": {"k": 3}})
    ('a/k', 'b/0', 'b/1')
    """
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return tuple(leaf_path(key_path) for key_path, _ in flat)


def leaf_indices(tree: Any, paths: Sequence[str]) -> tuple[int, ...]:
    """Position among the leaves of ``tree`` of each path in ``paths``.

    The one path-to-index map of the project (the transformation, training, reports).
    Raises ``ValueError`` naming the paths that ``tree`` does not hold.

    >>> from supjax.layers import leaf_indices
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

    Each leaf takes its most specific matching rule (an exact path beats any pattern).
    Errors (``ValueError``): a rule selecting nothing, two rules with the same pattern, a
    leaf matched by two patterns (or named by two rules) with none more specific, a
    selected leaf that is not a floating-point array.

    >>> import jax.numpy as jnp
    >>> from supjax.layers import LayerRule, select_layers
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
        hits = [i for i, rule in enumerate(rules) if rule.matches(path, leaf)]
        exact = [i for i in hits if rules[i].names_exactly(path)]
        hits = exact or hits
        if len(hits) > 1:
            names = ", ".join(_describe(rules[i].pattern) for i in hits)
            raise ValueError(
                f"layer {path!r} is matched by more than one rule with none more specific: {names} "
                f"(a rule naming the path exactly wins over patterns; narrow one of the patterns)"
            )
        if not hits:
            continue
        used[hits[0]] = True
        _check_leaf(path, leaf)
        selected.append(SelectedLayer(path, index, int(np.size(leaf)), rules[hits[0]]))
    unmatched = [_describe(rules[i].pattern) for i, u in enumerate(used) if not u]
    if unmatched:
        paths = ", ".join(leaf_path(k) for k, _ in flat[:20])
        raise ValueError(
            f"rules match no parameter (or only parameters that rules naming them exactly take): "
            f"{', '.join(unmatched)}; parameter paths are: {paths}"
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
    keys = [_pattern_key(r.pattern) for r in rules]
    dupes = sorted({_describe(r.pattern) for r, k in zip(rules, keys) if keys.count(k) > 1})
    if dupes:
        raise ValueError(f"layer patterns must be unique, got duplicates: {dupes}")
    return tuple(rules)


def _pattern_key(pattern: Pattern) -> tuple[str, Any]:
    if isinstance(pattern, re.Pattern):
        return ("str", pattern.pattern)
    if isinstance(pattern, str):
        return ("str", pattern)
    return ("callable", id(pattern))


def _describe(pattern: Pattern) -> str:
    """``repr`` of a string pattern, ``re.compile(...)``'s, or ``<predicate name>``."""
    if isinstance(pattern, str):
        return repr(pattern)
    if isinstance(pattern, re.Pattern):
        return repr(pattern.pattern)
    return f"<predicate {getattr(pattern, '__qualname__', type(pattern).__name__)}>"


def _check_leaf(path: str, leaf: Any) -> None:
    dtype = getattr(leaf, "dtype", None)
    if dtype is None or not hasattr(leaf, "shape"):
        raise TypeError(f"layer {path!r} must be an array, got {type(leaf).__name__}")
    if not np.issubdtype(np.dtype(dtype), np.floating) and str(dtype) != "bfloat16":
        raise TypeError(f"layer {path!r} must hold floating-point weights, got dtype {dtype}")
    if np.size(leaf) == 0:
        raise ValueError(f"layer {path!r} is empty (shape {tuple(leaf.shape)})")
