"""The LeNet5-style CNN of the MindArmour tutorial, in Flax Linen, and its suppression rules.

Parameter paths are ``conv1/kernel``, ``conv2/kernel``, ``fc1/kernel``, ``fc2/kernel`` and
``fc3/kernel`` (plus their biases), the names :func:`lenet5_rules` selects.

>>> import jax, jax.numpy as jnp
>>> model = lenet5_for((8, 8, 1), num_classes=10)
>>> shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))["params"]
>>> sorted(shapes)
['conv1', 'conv2', 'fc1', 'fc2', 'fc3']
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from supjax.layers import LayerRule
from supjax_app.pooling import max_pool_2x2

__all__ = [
    "ACTIVATIONS",
    "LENET5_LAYERS",
    "LeNet5",
    "init_params",
    "lenet5_features",
    "lenet5_for",
    "lenet5_rules",
]

#: Suppressed LeNet5 layers with the tutorial's options: (path, is_add_noise, is_lower_clip, min_num).
LENET5_LAYERS: tuple[tuple[str, bool, bool, int], ...] = (
    ("conv1/kernel", False, True, 10),
    ("conv2/kernel", False, True, 50),
    ("fc1/kernel", False, False, -1),
    ("fc2/kernel", False, False, -1),
    ("fc3/kernel", False, False, 50),
)

#: Activations of :class:`LeNet5` (``activation=``).
ACTIVATIONS: tuple[str, ...] = ("relu", "tanh")

#: Images smaller than this (per side) use SAME padding in both convolutions.
_SMALL_IMAGE = 28


class LeNet5(nn.Module):
    """LeNet5: conv 5x5x6, max-pool, conv 5x5x16, max-pool, dense 120, 84, ``num_classes``.

    ``activation`` is ``"relu"`` (the tutorial's) or ``"tanh"``.

    ``conv1_padding``/``conv2_padding`` are Flax padding names; use :func:`lenet5_for`
    to pick them from the image size.

    >>> import jax, jax.numpy as jnp
    >>> m = LeNet5(num_classes=10, conv2_padding="VALID")
    >>> x = jnp.zeros((2, 28, 28, 1))
    >>> v = jax.eval_shape(m.init, jax.random.PRNGKey(0), x)
    >>> jax.eval_shape(m.apply, v, x).shape, v["params"]["fc1"]["kernel"].shape
    ((2, 10), (400, 120))
    """

    num_classes: int = 10
    conv1_padding: str = "SAME"
    conv2_padding: str = "SAME"
    activation: str = "relu"  # or "tanh" (the usual choice under DP-SGD)

    def _act(self, x: jnp.ndarray) -> jnp.ndarray:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"--activation must be one of {', '.join(ACTIVATIONS)}, got {self.activation!r}")
        return jnp.tanh(x) if self.activation == "tanh" else nn.relu(x)

    def setup(self) -> None:
        self.conv1 = nn.Conv(6, (5, 5), padding=self.conv1_padding)
        self.conv2 = nn.Conv(16, (5, 5), padding=self.conv2_padding)
        self.fc1 = nn.Dense(120)
        self.fc2 = nn.Dense(84)
        self.fc3 = nn.Dense(self.num_classes)

    def features(self, x: jnp.ndarray) -> jnp.ndarray:
        """fc1's output after its ReLU, ``(N, 120)``: the representation the inversion attack inverts.

        >>> import jax, jax.numpy as jnp
        >>> m = lenet5_for((8, 8, 1), 10)
        >>> v = jax.eval_shape(m.init, jax.random.PRNGKey(0), jnp.zeros((1, 8, 8, 1)))
        >>> jax.eval_shape(lambda v, x: m.apply(v, x, method="features"), v, jnp.zeros((3, 8, 8, 1))).shape
        (3, 120)
        """
        x = max_pool_2x2(self._act(self.conv1(x)))
        x = max_pool_2x2(self._act(self.conv2(x)))
        x = x.reshape((x.shape[0], -1))
        return self._act(self.fc1(x))

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        return self.fc3(self._act(self.fc2(self.features(x))))


def lenet5_for(image_shape: Sequence[int], num_classes: int, activation: str = "relu") -> LeNet5:
    """A :class:`LeNet5` that fits ``image_shape`` (``(H, W, C)``).

    Below 28 pixels per side (scikit-learn's 8x8 digits) both convolutions pad SAME so the
    feature maps do not vanish; from 28 up (MNIST, Fashion-MNIST) conv1 pads SAME and conv2
    is VALID, the usual 28x28 LeNet5 (16 * 5 * 5 = 400 inputs to fc1).

    >>> lenet5_for((8, 8, 1), 10).conv2_padding, lenet5_for((28, 28, 1), 10, activation="tanh").activation
    ('SAME', 'tanh')
    """
    if len(image_shape) != 3:
        raise ValueError(f"image_shape must be (height, width, channels), got {tuple(image_shape)}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"--activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    small = min(image_shape[0], image_shape[1]) < _SMALL_IMAGE
    return LeNet5(num_classes=num_classes, conv1_padding="SAME", conv2_padding="SAME" if small else "VALID",
                  activation=activation)


def lenet5_features(model: LeNet5, params: Any, x: jnp.ndarray) -> jnp.ndarray:
    """fc1's output after its ReLU for images ``x`` (``(N, H, W, C)``), shape ``(N, 120)``.

    The same layers as ``model.apply({"params": params}, x)`` up to fc1 (:meth:`LeNet5.features`).
    ``functools.partial(lenet5_features, model)`` is the ``feature_fn(params, x)`` of
    :mod:`supjax_app.attacks.inversion`.

    >>> import jax.numpy as jnp
    >>> model = lenet5_for((8, 8, 1), 10)
    >>> p = init_params(model, (8, 8, 1), seed=0)
    >>> f = lenet5_features(model, p, jnp.ones((2, 8, 8, 1)))
    >>> f.shape, bool((f >= 0).all())
    ((2, 120), True)
    """
    return model.apply({"params": params}, x, method=LeNet5.features)


def lenet5_rules(add_noise: Iterable[str] = (), upper_bound: float = LayerRule.upper_bound) -> tuple[LayerRule, ...]:
    """The tutorial's five :class:`~supjax.LayerRule` for :class:`LeNet5`.

    ``add_noise`` names layers (``"conv1"`` or ``"conv1/kernel"``) whose ``is_add_noise``
    is turned on; the tutorial turns it on nowhere. ``upper_bound`` is every layer's
    :attr:`~supjax.LayerRule.upper_bound` (the tutorial keeps MindArmour's default, 1.2).

    >>> [(r.pattern, r.min_num) for r in lenet5_rules()][:2]
    [('conv1/kernel', 10), ('conv2/kernel', 50)]
    >>> [r.is_add_noise for r in lenet5_rules(["fc3"])]
    [False, False, False, False, True]
    >>> {r.upper_bound for r in lenet5_rules(upper_bound=4.8)}
    {4.8}
    """
    wanted = {name if "/" in name else f"{name}/kernel" for name in add_noise}
    known = {path for path, *_ in LENET5_LAYERS}
    unknown = sorted(wanted - known)
    if unknown:
        raise ValueError(f"add_noise names unknown layers {unknown}; allowed: {sorted(known)}")
    return tuple(
        LayerRule(path, is_add_noise=noise or path in wanted, is_lower_clip=clip, min_num=min_num,
                  upper_bound=upper_bound)
        for path, noise, clip, min_num in LENET5_LAYERS
    )


# Flax's lecun_normal: a normal truncated to +-2 standard deviations, rescaled by this
# factor so the truncated distribution has variance 1 / fan_in.
_TRUNCATED_STD = 0.87962566103423978


def _truncated_normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    out = rng.standard_normal(shape)
    bad = np.abs(out) > 2.0
    while bad.any():
        out[bad] = rng.standard_normal(int(bad.sum()))
        bad = np.abs(out) > 2.0
    return out


def init_params(model: nn.Module, image_shape: Sequence[int], seed: int) -> Any:
    """Initial parameters of ``model``, drawn on the host with numpy (no XLA compilation).

    Same distributions as Flax's defaults for ``nn.Conv``/``nn.Dense`` (kernels
    ``lecun_normal``: truncated normal with variance ``1 / fan_in``; biases 0), but drawn
    with ``numpy.random.default_rng(seed)``: compiling ``jax.jit(model.init)`` with the
    threefry PRNG takes 5-15 s on a 2-core CPU, longer than a whole ``--quick`` training run.

    >>> p = init_params(lenet5_for((8, 8, 1), 10), (8, 8, 1), seed=0)
    >>> p["fc1"]["kernel"].shape, float(p["fc1"]["bias"].sum())
    ((64, 120), 0.0)
    >>> bool(abs(p["fc1"]["kernel"].std() * 8 - 1) < 0.1)  # std ~ 1 / sqrt(fan_in = 64)
    True
    """
    x = jax.ShapeDtypeStruct((1, *image_shape), jnp.float32)
    shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), x)["params"]
    rng = np.random.default_rng([int(seed), 0x1717])
    flat, treedef = jax.tree_util.tree_flatten_with_path(shapes)
    leaves = []
    for path, leaf in flat:
        name = str(getattr(path[-1], "key", path[-1]))
        if name == "kernel":
            fan_in = int(np.prod(leaf.shape[:-1]))
            value = _truncated_normal(rng, leaf.shape) * (np.sqrt(1.0 / fan_in) / _TRUNCATED_STD)
        else:
            value = np.zeros(leaf.shape)
        leaves.append(jnp.asarray(value.astype(leaf.dtype)))
    return jax.tree_util.tree_unflatten(treedef, leaves)
