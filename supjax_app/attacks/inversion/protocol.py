"""The paired inversion protocol: the same images, from the same start, under every arm.

:func:`run_inversion` draws members and non-members of each target model, inverts their
features under every arm (dense, suppressed, ...), measures them and bootstraps each arm's
means and its paired differences to the reference arm. An image whose target features are
all zero (every fc1 unit dead) is flagged in :attr:`InversionResult.dead_targets`.

>>> GROUPS
('members', 'nonmembers')
>>> _demo_result().dead_targets.shape  # (arms, models, images)
(2, 2, 4)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from supjax_app.attacks.inversion.attack import (
    _START_SCALE,
    _STEP_SIZE,
    DEFAULT_WEIGHTS,
    PIXEL_BOUNDS,
    FeatureFn,
    _features,
    _invert,
    start_images,
)
from supjax_app.attacks.inversion.checks import (
    _check_arms,
    _check_bounds,
    _check_callable,
    _check_images,
    _check_int,
    _check_keep,
    _check_labels,
    _check_logits,
    _check_weights,
)
from supjax_app.attacks.inversion.metrics import (
    _SSIM_WIN,
    METRICS,
    SSIM_DATA_RANGE,
    Evaluator,
    Interval,
    _relative_l2,
    _ssim,
    bootstrap_interval,
    true_label_confidence,
)

__all__ = ["GROUPS", "InversionResult", "run_inversion"]

#: Image groups of :func:`run_inversion`.
GROUPS: tuple[str, ...] = ("members", "nonmembers")


@dataclass(frozen=True)
class InversionResult:
    """What :func:`run_inversion` measured. ``A`` arms, ``M`` models per arm, ``K`` images per model
    (members first). Arrays: ``indices``, ``member``, ``labels`` ``(M, K)`` (pool index, membership,
    label); ``originals`` ``(M, K, H, W, C)``; ``reconstructions`` ``(A, M, K, H, W, C)``;
    ``values[metric]`` ``(A, M, K)``; ``logits`` ``(A, M, K, classes)`` and ``original_logits``
    ``(M, K, classes)`` of the evaluator; ``dead_targets`` ``(A, M, K)`` (all-zero features).
    ``summary[arm][group][metric]`` and ``paired[arm][group][metric]`` (arm - reference per
    (model, image) pair; zero for the reference itself) are :class:`Interval`.

    >>> r = _demo_result()
    >>> r.arms, r.reconstructions.shape, r.paired["dense"]["members"]["ssim"]
    (('dense', 'suppressed'), (2, 2, 4, 8, 8, 1), Interval(mean=0.0, low=0.0, high=0.0))
    """

    arms: tuple[str, ...]
    reference: str
    indices: np.ndarray
    member: np.ndarray
    labels: np.ndarray
    originals: np.ndarray
    reconstructions: np.ndarray
    values: dict[str, np.ndarray]
    logits: np.ndarray
    original_logits: np.ndarray
    dead_targets: np.ndarray
    summary: dict[str, dict[str, dict[str, Interval]]]
    paired: dict[str, dict[str, dict[str, Interval]]]
    original_confidence: dict[str, Interval]
    settings: dict[str, Any] = field(default_factory=dict)


def _choose(keep: np.ndarray, n_members: int, n_nonmembers: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pool indices ``(M, K)`` (members first) and their membership, seeded per model index."""
    rows = []
    for m, row in enumerate(keep):
        inside, outside = np.flatnonzero(row), np.flatnonzero(~row)
        if inside.size < n_members or outside.size < n_nonmembers:
            raise ValueError(
                f"keep row {m} has {inside.size} members and {outside.size} non-members; "
                f"n_members must be <= {inside.size} and n_nonmembers <= {outside.size}"
            )
        rng = np.random.default_rng([seed, m])
        chosen_in = np.sort(rng.choice(inside, n_members, replace=False))
        chosen_out = np.sort(rng.choice(outside, n_nonmembers, replace=False))
        rows.append(np.concatenate([chosen_in, chosen_out]))
    member = np.zeros((keep.shape[0], n_members + n_nonmembers), dtype=bool)
    member[:, :n_members] = True
    return np.stack(rows), member


def _group_stats(
    values: dict[str, np.ndarray], arms: tuple[str, ...], ref: int, member: np.ndarray, n_boot: int, seed: int
) -> tuple[dict, dict]:
    summary: dict[str, dict[str, dict[str, Interval]]] = {}
    paired: dict[str, dict[str, dict[str, Interval]]] = {}
    for a, name in enumerate(arms):
        summary[name], paired[name] = {}, {}
        for group, mask in zip(GROUPS, (member, ~member)):
            summary[name][group] = {
                k: bootstrap_interval(v[a][mask], n_boot=n_boot, seed=seed) for k, v in values.items()
            }
            paired[name][group] = {
                k: bootstrap_interval(v[a][mask] - v[ref][mask], n_boot=n_boot, seed=seed)
                for k, v in values.items()
            }
    return summary, paired


def run_inversion(
    feature_fn: FeatureFn,
    arms: Mapping[str, Sequence[Any]],
    images: Any,
    labels: Any,
    keep: Any,
    evaluator: Evaluator,
    *,
    n_members: int = 30,
    n_nonmembers: int = 30,
    iters: int = 100,
    weights: Sequence[float] = DEFAULT_WEIGHTS,
    bounds: Sequence[float] = PIXEL_BOUNDS,
    reference: str = "dense",
    seed: int = 0,
    n_boot: int = 1000,
) -> InversionResult:
    """The paired inversion audit: the same images, from the same start, under every arm.

    ``arms`` maps an arm name to its ``M`` target-model params (model ``m`` of every arm was
    trained on the same examples); ``keep`` ``(M, P)`` says which of the pool's ``P`` images
    (``images`` ``(P, H, W, C)`` within ``bounds``, ``labels`` ``(P,)``) model ``m`` trained
    on. For each ``m``, ``n_members`` members and ``n_nonmembers`` non-members are drawn
    (seeded by ``seed`` and ``m``), their features ``feature_fn(params, x)`` under each arm's
    model ``m`` are inverted from one shared start, and relative L2, SSIM and the confidence of
    ``evaluator`` (``images -> logits``, trained on data disjoint from the pool) are measured.

    >>> import jax, numpy as np
    >>> def feats(p, x):
    ...     return jax.nn.relu(x.reshape(len(x), -1) @ p)
    >>> rng = np.random.default_rng(0)
    >>> arms = {"dense": [rng.normal(size=(64, 5)).astype("f4")], "other": [rng.normal(size=(64, 5)).astype("f4")]}
    >>> images, labels = rng.random((10, 8, 8, 1), dtype="f4"), np.arange(10) % 2
    >>> keep = (np.arange(10) < 5)[None]
    >>> r = run_inversion(feats, arms, images, labels, keep, lambda x: x.reshape(len(x), -1)[:, :2],
    ...                   n_members=2, n_nonmembers=2, iters=3, n_boot=50)
    >>> bool(keep[0, r.indices[0, :2]].all() and not keep[0, r.indices[0, 2:]].any())
    True
    >>> r.values["l2"].shape, r.paired["dense"]["nonmembers"]["l2"].mean
    ((2, 1, 4), 0.0)
    """
    _check_callable(feature_fn, "feature_fn")
    names, n_models = _check_arms(arms, reference)
    bounds = _check_bounds(bounds)
    pool = _check_images(images, "images", _SSIM_WIN)
    if pool.min() < bounds[0] or pool.max() > bounds[1]:
        raise ValueError(f"images must lie within bounds {bounds}, got values in [{pool.min()}, {pool.max()}]")
    pool_labels = _check_labels(labels, "labels", pool.shape[0])
    member_of = _check_keep(keep, n_models, pool.shape[0])
    _check_callable(evaluator, "evaluator")
    n_members = _check_int(n_members, "n_members", 1)
    n_nonmembers = _check_int(n_nonmembers, "n_nonmembers", 1)
    iters = _check_int(iters, "iters", 1)
    weights = _check_weights(weights)
    seed = _check_int(seed, "seed", 0)
    n_boot = _check_int(n_boot, "n_boot", 1)
    indices, member = _choose(member_of, n_members, n_nonmembers, seed)

    originals = pool[indices]  # (M, K, H, W, C)
    chosen_labels = pool_labels[indices]
    n_arms, k = len(names), indices.shape[1]
    recon = np.empty((n_arms, *originals.shape), np.float32)
    dead = np.empty((n_arms, n_models, k), bool)
    w, b = jnp.asarray(weights, jnp.float32), jnp.asarray(bounds, jnp.float32)
    step = jnp.float32(_STEP_SIZE)
    key = jax.random.PRNGKey(seed)
    for m in range(n_models):
        x = jnp.asarray(originals[m])
        x0 = start_images(jax.random.fold_in(key, m), x.shape)
        for a, name in enumerate(names):
            params = arms[name][m]
            target = _features(feature_fn, params, x)
            dead[a, m] = np.asarray(jnp.all(target == 0, axis=1))
            recon[a, m] = np.asarray(_invert(feature_fn, iters, params, target, x0, w, b, step))

    flat_x = jnp.asarray(originals.reshape(-1, *originals.shape[2:]))
    flat_labels = chosen_labels.reshape(-1)
    values: dict[str, list[np.ndarray]] = {name: [] for name in METRICS}
    logits = []
    for a in range(n_arms):
        flat_y = jnp.asarray(recon[a].reshape(flat_x.shape))
        arm_logits = _check_logits(evaluator(flat_y), flat_labels, "evaluator output")
        logits.append(arm_logits.reshape(n_models, k, -1))
        values["l2"].append(np.asarray(_relative_l2(flat_x, flat_y)).reshape(n_models, k))
        values["ssim"].append(np.asarray(_ssim(flat_x, flat_y, jnp.float32(SSIM_DATA_RANGE))).reshape(n_models, k))
        confidence = true_label_confidence(arm_logits, flat_labels)
        values["confidence"].append(np.asarray(confidence).reshape(n_models, k))
    stacked = {name: np.stack(v) for name, v in values.items()}
    original_logits = _check_logits(evaluator(flat_x), flat_labels, "evaluator output")
    original_conf = np.asarray(true_label_confidence(original_logits, flat_labels)).reshape(n_models, k)
    summary, paired = _group_stats(stacked, names, names.index(reference), member, n_boot, seed)
    settings = {
        "iters": iters,
        "weights": weights,
        "bounds": bounds,
        "seed": seed,
        "n_boot": n_boot,
        "step_size": _STEP_SIZE,
        "start_scale": _START_SCALE,
        "ssim_data_range": SSIM_DATA_RANGE,
        "n_members": n_members,
        "n_nonmembers": n_nonmembers,
    }
    return InversionResult(
        arms=names,
        reference=reference,
        indices=indices,
        member=member,
        labels=chosen_labels,
        originals=originals,
        reconstructions=recon,
        values=stacked,
        logits=np.stack(logits),
        original_logits=original_logits.reshape(n_models, k, -1),
        dead_targets=dead,
        summary=summary,
        paired=paired,
        original_confidence={
            group: bootstrap_interval(original_conf[mask], n_boot=n_boot, seed=seed)
            for group, mask in zip(GROUPS, (member, ~member))
        },
        settings=settings,
    )


def _demo_features(params: Any, x: jax.Array) -> jax.Array:
    return jax.nn.relu(x.reshape(x.shape[0], -1) @ params)


@lru_cache(maxsize=1)
def _demo_result() -> InversionResult:
    """A tiny :class:`InversionResult` for the examples (2 arms x 2 models, 8x8 images)."""
    rng = np.random.default_rng(0)
    arms = {
        name: [rng.normal(size=(64, 6)).astype(np.float32) for _ in range(2)] for name in ("dense", "suppressed")
    }
    images = rng.random((12, 8, 8, 1), dtype=np.float32)
    keep = np.stack([np.arange(12) < 6, np.arange(12) % 2 == 0])
    return run_inversion(
        _demo_features,
        arms,
        images,
        np.arange(12) % 3,
        keep,
        lambda x: x.reshape(x.shape[0], -1)[:, :3],
        n_members=2,
        n_nonmembers=2,
        iters=3,
        n_boot=50,
    )
