"""The per-layer mask bookkeeping of ``SuppressCtrl``: host keep-masks and two buffers per layer.

For each suppressed layer, :class:`MaskBuffers` keeps two MindSpore ``Parameter`` buffers that
the train step of :class:`~compat_mindspore.model.SuppressModel` applies:
``suppress_mul.<name>`` (the keep-mask) and ``suppress_add.<name>`` (the correction of the last
suppress operation, in the current :data:`CorrectionForm`, until :meth:`MaskBuffers.reset_zeros`).
They are part of the controller's :class:`~compat_mindspore._state.ControllerState` (created
here), which also records which layers have a correction pending; the host keep-masks are
read back from the keep-mask buffers, so a checkpoint restores them too.
"""

from __future__ import annotations

from typing import Any, Literal, Sequence

import jax
import numpy as np

from compat_mindspore._convert import make_buffer, read_parameter, write_parameter
from compat_mindspore._corrections import gradient_correction, reference_gradient_correction
from compat_mindspore._matching import MatchedLayer
from compat_mindspore._state import ControllerState

__all__: list[str] = []

#: How a correction reaches the weights: ``"gradient"`` is MindArmour's ``g' = add + g * mul``
#: with ``add = delta / lr``; ``"update"`` corrects the weights after the optimizer step
#: (``w = keep ? w_after - delta : 0``), for any optimizer.
CorrectionForm = Literal["gradient", "update"]


class MaskBuffers:
    """The keep-masks and the (keep-mask, correction) buffers of the suppressed layers.

    Args:
        layers: the suppressed parameters, in network order.
        plans: supjax's ``LayerPlan`` of each layer.
        settings: the controller, whose ``lr`` (``delta / lr`` in the gradient form) and
            ``reference_parity`` (MindArmour 2.0.0's correction) are read at each correction.
        key: the initial PRNG key of the noise, kept in :attr:`state`. Default: ``PRNGKey(0)``.

    Examples:
        >>> import numpy as np
        >>> from mindspore import nn
        >>> from supjax.engine import plan_layers
        >>> from compat_mindspore._matching import match_mask_layers
        >>> from compat_mindspore.mask_layer import MaskLayerDes
        >>> net = nn.SequentialCell([nn.Dense(2, 2)])
        >>> layers = match_mask_layers(net, [MaskLayerDes("0.weight", 0, False, True, 1)])
        >>> from types import SimpleNamespace
        >>> settings = SimpleNamespace(lr=0.5, reference_parity=False)
        >>> buffers = MaskBuffers(layers, plan_layers([m.selected for m in layers], False), settings)
        >>> [p.name for p in buffers.mul + buffers.add]
        ['suppress_mul.0.weight', 'suppress_add.0.weight']
        >>> w = np.ones((2, 2), np.float32)
        >>> buffers.store(0, [True, False, True, True], np.full(4, 0.5), np.zeros(4), w, 0.1)
        >>> buffers.add[0].asnumpy().tolist()
        [[1.0, 1.0], [1.0, 1.0]]
        >>> buffers.set_form("update")
        >>> buffers.add[0].asnumpy().tolist()
        [[0.5, 0.5], [0.5, 0.5]]
        >>> buffers.reset_zeros()
        >>> buffers.add[0].asnumpy().tolist(), buffers.keeps[0].tolist()
        ([[0.0, 0.0], [0.0, 0.0]], [[True, False], [True, True]])
    """

    def __init__(
        self, layers: Sequence[MatchedLayer], plans: Sequence[Any], settings: Any, key: jax.Array | None = None
    ) -> None:
        self.layers = layers
        self.plans = plans
        self.settings = settings
        self.mul = [make_buffer(f"suppress_mul.{m.parameter.name}", m.parameter, 1.0) for m in layers]
        self.add = [make_buffer(f"suppress_add.{m.parameter.name}", m.parameter, 0.0) for m in layers]
        self.state = ControllerState(jax.random.PRNGKey(0) if key is None else key, self.mul, self.add)
        # the inputs of the corrections not applied yet, to rewrite them on a form change
        self.pending: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray, float]] = {}
        self.form: CorrectionForm = "gradient"

    @property
    def keeps(self) -> list[np.ndarray]:
        """The keep-masks (``True`` = kept), read from the keep-mask buffers."""
        return [read_parameter(mul) > 0 for mul in self.mul]

    def store(self, i: int, keep: Any, delta: Any, move: Any, weights: np.ndarray, threshold: float) -> None:
        """Record layer ``i``'s new keep-mask and write its two buffers (arrays from supjax)."""
        shape = tuple(self.layers[i].parameter.shape)
        keep = np.asarray(keep).reshape(shape).astype(bool)
        write_parameter(self.mul[i], keep)
        delta = np.asarray(delta).reshape(shape)
        move = np.asarray(move).reshape(shape)
        write_parameter(self.add[i], self.correction(i, delta, move, weights, threshold))
        self.pending[i] = (delta, move, weights, threshold)
        flags = self.state.pending
        flags[i] = True
        self.state.pending = flags

    def correction(
        self, i: int, delta: np.ndarray, move: np.ndarray, weights: np.ndarray, threshold: float
    ) -> np.ndarray:
        """What the correction buffer holds for ``delta`` in the current form."""
        if self.form == "update":
            return delta
        plan = self.plans[i]
        if plan.method == "large_reference":
            return gradient_correction(delta, self.settings.lr, float64=False)
        if self.settings.reference_parity:
            return reference_gradient_correction(
                weights.reshape(delta.shape), delta, move, threshold, plan.rule.effective_upper_bound,
                self.settings.lr,
            )
        return gradient_correction(delta, self.settings.lr)

    def reset_zeros(self) -> None:
        """Set the pending corrections to zero (the step after an operation has applied them)."""
        if not self.state.any_pending:
            return
        for i in np.flatnonzero(self.state.pending[: len(self.add)]):
            write_parameter(self.add[i], np.zeros(tuple(self.add[i].shape)))
        self.pending = {}
        self.state.pending = np.zeros(len(self.add), bool)

    def set_form(self, form: CorrectionForm) -> None:
        """Choose what the correction buffers hold; rewrites the corrections not applied yet."""
        if form not in ("gradient", "update"):
            raise ValueError(f"form must be 'gradient' or 'update', got {form!r}")
        if form != self.form:
            self.form = form
            for i, (delta, move, weights, threshold) in self.pending.items():  # not applied yet
                write_parameter(self.add[i], self.correction(i, delta, move, weights, threshold))
