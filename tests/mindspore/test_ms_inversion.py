"""``supjax_app.attacks.inversion`` against MindArmour 2.0.0's ``ImageInversionAttack`` (CPU).

One tiny LeNet5 on 8x12 images (both convolutions SAME, fc1 96 -> 120; not square, so rows
and columns cannot be confused) is built twice with
the same random weights and biases: in Flax (``supjax_app.models``, NHWC) and in MindSpore
(NCHW; conv kernels ``(kh, kw, in, out) -> (out, in, kh, kw)``, dense kernels transposed,
fc1's input rows permuted from Flax's (h, w, c) flattening to MindSpore's (c, h, w)). On it:
the forward pass, ``InversionLoss`` per image, one attack step, SSIM (``compute_ssim``) and
``evaluate`` (L2, SSIM and confidence) agree to float32 rounding.
"""

from __future__ import annotations

import contextlib
import io
from functools import partial

import jax.numpy as jnp
import numpy as np
import pytest
from mindspore import Tensor, nn

from supjax_app.attacks import inversion as inv
from supjax_app.models import lenet5_features, lenet5_for

pytestmark = pytest.mark.mindspore

SHAPE = (8, 12, 1)  # H, W, C
MODEL = lenet5_for(SHAPE, 10)
FEATURES = partial(lenet5_features, MODEL)


@pytest.fixture(scope="module")
def oracle():
    """MindArmour's inversion module and its ``compute_ssim`` (import banner swallowed)."""
    with contextlib.redirect_stdout(io.StringIO()):
        from mindarmour.privacy.evaluation import inversion_attack
        from mindarmour.utils.util import compute_ssim
    return inversion_attack, compute_ssim


class MSLeNet5(nn.Cell):
    """LeNet5 for 1x8x12 inputs with SAME convolutions; ``features_only``: fc1 after its ReLU."""

    def __init__(self, features_only: bool) -> None:
        super().__init__()
        self.features_only = features_only
        self.conv1 = nn.Conv2d(1, 6, 5, pad_mode="same", has_bias=True)
        self.conv2 = nn.Conv2d(6, 16, 5, pad_mode="same", has_bias=True)
        self.fc1 = nn.Dense(96, 120)
        self.fc2 = nn.Dense(120, 84)
        self.fc3 = nn.Dense(84, 10)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.flatten = nn.Flatten()

    def construct(self, x):
        x = self.pool(self.relu(self.conv1(x)))
        x = self.pool(self.relu(self.conv2(x)))
        x = self.relu(self.fc1(self.flatten(x)))
        if self.features_only:
            return x
        return self.fc3(self.relu(self.fc2(x)))


def _flax_params(seed: int) -> dict:
    rng = np.random.default_rng(seed)

    def draw(*shape: int, scale: float) -> np.ndarray:
        return (rng.normal(size=shape) * scale).astype(np.float32)

    return {
        "conv1": {"kernel": draw(5, 5, 1, 6, scale=0.3), "bias": draw(6, scale=0.1)},
        "conv2": {"kernel": draw(5, 5, 6, 16, scale=0.1), "bias": draw(16, scale=0.1)},
        "fc1": {"kernel": draw(96, 120, scale=0.15), "bias": draw(120, scale=0.1)},
        "fc2": {"kernel": draw(120, 84, scale=0.1), "bias": draw(84, scale=0.1)},
        "fc3": {"kernel": draw(84, 10, scale=0.1), "bias": draw(10, scale=0.1)},
    }


def _ms_net(params: dict, features_only: bool) -> MSLeNet5:
    net = MSLeNet5(features_only)
    fc1 = params["fc1"]["kernel"].reshape(2, 3, 16, 120).transpose(3, 2, 0, 1).reshape(120, 96)
    values = {
        "conv1.weight": params["conv1"]["kernel"].transpose(3, 2, 0, 1),
        "conv2.weight": params["conv2"]["kernel"].transpose(3, 2, 0, 1),
        "fc1.weight": fc1,
        "fc2.weight": params["fc2"]["kernel"].T,
        "fc3.weight": params["fc3"]["kernel"].T,
    }
    for layer in ("conv1", "conv2", "fc1", "fc2", "fc3"):
        values[f"{layer}.bias"] = params[layer]["bias"]
    for p in net.get_parameters():
        p.set_data(Tensor(np.ascontiguousarray(values[p.name], dtype=np.float32)))
    net.set_train(False)
    return net


def _nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2))


def _nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.asarray(x).transpose(0, 2, 3, 1))


def _images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((n, *SHAPE), dtype=np.float32)


def test_same_features_in_both_frameworks(pynative):
    params = _flax_params(0)
    x = _images(5, 1)
    ours = np.asarray(FEATURES(params, jnp.asarray(x)))
    theirs = _ms_net(params, True)(Tensor(_nchw(x))).asnumpy()
    assert (ours > 0).mean() > 0.2  # the ReLU leaves enough units alive to matter
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("weights", [inv.DEFAULT_WEIGHTS, inv.TUTORIAL_WEIGHTS])
def test_same_loss_per_image(oracle, pynative, weights):
    module, _ = oracle
    params = _flax_params(1)
    targets = np.asarray(FEATURES(params, jnp.asarray(_images(3, 2))))
    x = _images(3, 3) * 0.3
    loss = module.InversionLoss(_ms_net(params, True), list(weights))
    theirs = [float(loss(Tensor(_nchw(x[i : i + 1])), Tensor(targets[i])).asnumpy()) for i in range(3)]
    ours = inv.inversion_loss(FEATURES, params, x, targets, weights)
    np.testing.assert_allclose(ours, theirs, rtol=2e-5)


@pytest.mark.parametrize("weights", [inv.DEFAULT_WEIGHTS, inv.TUTORIAL_WEIGHTS])
def test_one_attack_step_equals_mindarmour(oracle, pynative, weights):
    """``ImageInversionAttack.generate(iters=1)`` draws with the global ``np.random``: first a
    shape-test batch ``random((N, 1, 8, 12))``, then per image its start ``random((1, 1, 8, 12))
    * 0.05``. Seeding ``np.random`` and repeating those draws gives its start points exactly,
    which we hand to ``invert_features`` (NHWC); nothing of MindArmour is patched. The images
    are attacked one by one there and all at once here."""
    module, _ = oracle
    params = _flax_params(2)
    n = 4
    targets = np.asarray(FEATURES(params, jnp.asarray(_images(n, 4))))
    attack = module.ImageInversionAttack(_ms_net(params, True), (1, 8, 12), (0, 1), loss_weights=list(weights))

    np.random.seed(1234)
    np.random.random((n, 1, 8, 12))
    starts = np.concatenate([np.random.random((1, 1, 8, 12)).astype(np.float32) * 0.05 for _ in range(n)])
    np.random.seed(1234)
    theirs = _nhwc(attack.generate(targets, iters=1))

    # The gradient's sign decides the step: check no entry is so small that rounding could flip it.
    loss = module.InversionLoss(_ms_net(params, True), list(weights))
    from mindarmour.utils.util import GradWrapWithLoss

    grads = np.concatenate(
        [GradWrapWithLoss(loss)(Tensor(starts[i : i + 1]), Tensor(targets[i])).asnumpy() for i in range(n)]
    )
    assert np.abs(grads).min() > 1e-6

    ours = np.asarray(inv.invert_features(FEATURES, params, targets, _nhwc(starts), iters=1, weights=weights))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-7)
    moved = np.abs(theirs - _nhwc(starts))
    assert (moved > 0).mean() > 0.5  # the step really moved (clipping at 0 stops some pixels)


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (12, 10, 3)])
def test_ssim_equals_compute_ssim(oracle, shape):
    _, compute_ssim = oracle
    rng = np.random.default_rng(sum(shape))
    x = rng.random((4, *shape), dtype=np.float32)
    noisy = np.clip(x + rng.normal(scale=0.2, size=x.shape), 0, 1).astype(np.float32)
    other = rng.random((4, *shape), dtype=np.float32)
    for y in (noisy, other, x):
        theirs = [compute_ssim(x[i], y[i]) for i in range(4)]
        np.testing.assert_allclose(inv.ssim(x, y), theirs, rtol=0, atol=2e-6)


def test_evaluate_equals_mindarmour(oracle, pynative):
    module, _ = oracle
    target_params, eval_params = _flax_params(3), _flax_params(4)
    attack = module.ImageInversionAttack(_ms_net(target_params, True), (1, 8, 12), (0, 1))
    originals, inverted = _images(6, 5), _images(6, 6) * 0.5
    labels = np.array([0, 1, 2, 3, 4, 5])
    theirs = attack.evaluate(_nchw(originals), _nchw(inverted), labels, _ms_net(eval_params, False))

    def evaluator(x):
        return MODEL.apply({"params": eval_params}, x)

    ours = inv.evaluate_inversion(originals, inverted, labels, evaluator).means()
    np.testing.assert_allclose(ours, theirs, rtol=1e-5)
