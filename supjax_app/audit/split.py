"""The audit's data: a pool (with canaries), a disjoint validation split, and the test split.

>>> import numpy as np
>>> from supjax_app.data import Dataset
>>> x = np.zeros((50, 4, 4, 1), np.float32); y = np.arange(50, dtype=np.int32) % 5
>>> d = audit_split(Dataset(x, y, x[:10], y[:10], "toy", 5), pool=30, validation=20, canary_fraction=0.1, seed=0)
>>> len(d.y_pool), int(d.canary.sum()), bool((d.y_pool[d.canary] != d.y_pool_true[d.canary]).all())
(30, 3, True)
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from supjax_app.data import Dataset

__all__ = ["AuditData", "audit_split"]


class AuditData(NamedTuple):
    """The arrays of one audit.

    ``y_pool`` holds the labels the models train on: a canary's is a random wrong label
    (``y_pool_true`` keeps the true one). ``pool_index``/``validation_index`` are positions in
    the data set's training split.

    >>> AuditData._fields[:4]
    ('x_pool', 'y_pool', 'y_pool_true', 'canary')
    """

    x_pool: np.ndarray
    y_pool: np.ndarray
    y_pool_true: np.ndarray
    canary: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    pool_index: np.ndarray
    validation_index: np.ndarray
    name: str
    num_classes: int


def audit_split(ds: Dataset, pool: int, validation: int, canary_fraction: float, seed: int) -> AuditData:
    """Draw a pool and a disjoint validation split from ``ds``'s training split; mark canaries.

    ``round(canary_fraction * pool)`` pool examples (seeded) get a label drawn uniformly
    from the other classes. Raises ``ValueError`` naming ``--pool``/``--validation`` when the
    training split is too small, before anything is trained.
    """
    n = len(ds.x_train)
    if pool + validation > n:
        raise ValueError(
            f"--pool ({pool}) plus --validation ({validation}) must be at most the {n} training "
            f"examples of {ds.name!r}; allowed --pool range: [20, {max(20, n - validation)}]"
        )
    rng = np.random.default_rng([seed, 7])
    order = rng.permutation(n)
    pool_index, validation_index = np.sort(order[:pool]), np.sort(order[pool:pool + validation])
    y_true = ds.y_train[pool_index].astype(np.int32)
    canary = np.zeros(pool, bool)
    canary[rng.choice(pool, int(round(canary_fraction * pool)), replace=False)] = True
    shift = rng.integers(1, ds.num_classes, size=pool)
    y_pool = np.where(canary, (y_true + shift) % ds.num_classes, y_true).astype(np.int32)
    return AuditData(
        x_pool=ds.x_train[pool_index], y_pool=y_pool, y_pool_true=y_true, canary=canary,
        x_val=ds.x_train[validation_index], y_val=ds.y_train[validation_index].astype(np.int32),
        x_test=ds.x_test, y_test=ds.y_test.astype(np.int32),
        pool_index=pool_index, validation_index=validation_index,
        name=ds.name, num_classes=ds.num_classes,
    )
