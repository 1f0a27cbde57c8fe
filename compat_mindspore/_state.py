"""Where ``SuppressCtrl`` keeps its state: non-trainable ``Parameter``s attached to the network.

:class:`ControllerState` is a ``Cell`` that :class:`~compat_mindspore.ctrl.SuppressCtrl` inserts
into the network as the child ``suppress_ctrl``. Its parameters are the only copy of the
controller's state: the recorded suppressed counts, the schedule's position (started, start
step, previous operation step), the current target sparsity, the number of operations, the
noise's JAX PRNG key, which layers have a correction not applied yet, and the keep-mask and
correction buffers of every layer. So ``save_checkpoint(network)`` or ``ModelCheckpoint``
saves them, and ``load_param_into_net(network, ...)`` into a network that carries a
controller built with the same arguments restores them: training resumed with
``model.train(..., initial_epoch=k)`` continues as the uninterrupted run would.

Being the network's last child, its parameters come after the network's own in
``get_parameters()``, so the positions of the network's parameters do not move. Reads are
cached per parameter and re-read whenever the parameter's data buffer changes (as
``set_data`` and ``load_param_into_net`` replace it), so the per-step schedule check does no
device-to-host copy.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import jax
import numpy as np
from mindspore import Parameter, Tensor, nn

from supjax.engine import ScheduleState

from compat_mindspore._convert import read_parameter, write_parameter

__all__ = ["CHILD_NAME", "ControllerState", "is_state_parameter"]

#: The attribute name of the state cell in the network.
CHILD_NAME = "suppress_ctrl"
_PREFIXES = (f"{CHILD_NAME}.", "suppress_mul.", "suppress_add.")


def is_state_parameter(name: str) -> bool:
    """Whether a parameter name is one of a controller's state parameters.

    >>> is_state_parameter("suppress_mul.conv1.weight"), is_state_parameter("conv1.weight")
    (True, False)
    """
    return name.startswith(_PREFIXES)


def _buffer_address(param: Parameter) -> int | None:
    try:
        return int(param.data_ptr())
    except (AttributeError, RuntimeError, TypeError, ValueError):
        return None  # no address to key the cache on: always read


def _parameter(name: str, value: np.ndarray) -> Parameter:
    return Parameter(Tensor(np.ascontiguousarray(value)), name=f"{CHILD_NAME}.{name}", requires_grad=False)


class ControllerState(nn.Cell):
    """The controller's state as non-trainable parameters (read and written from the host).

    Args:
        key: the initial JAX PRNG key of the noise.
        muls: keep-mask buffers, one per suppressed layer.
        adds: correction buffers, one per suppressed layer.

    Examples:
        >>> import jax
        >>> from mindspore import nn
        >>> from compat_mindspore._convert import make_buffer
        >>> net = nn.SequentialCell([nn.Dense(2, 2)])
        >>> mul, add = make_buffer("suppress_mul.w", net[0].weight, 1.0), make_buffer("suppress_add.w", net[0].weight, 0.0)
        >>> state = ControllerState(jax.random.PRNGKey(3), [mul], [add])
        >>> state.counts = [4]
        >>> state.sparsity = 0.25
        >>> (state.counts.tolist(), state.sparsity, state.schedule.started, state.key.tolist())
        ([4], 0.25, False, [0, 3])
        >>> state.attach(net)
        >>> [p.name for p in net.get_parameters()][2:4]
        ['suppress_ctrl.counts', 'suppress_ctrl.schedule']
    """

    def __init__(self, key: jax.Array, muls: Sequence[Parameter], adds: Sequence[Parameter]) -> None:
        super().__init__(auto_prefix=False)
        self._cache: dict[str, tuple[int, Any]] = {}
        n = len(muls)
        self._counts = _parameter("counts", np.zeros(n, np.int32))
        self._schedule = _parameter("schedule", np.zeros(3, np.int64))  # started, start_step, prev_step
        self._sparsity = _parameter("sparsity", np.zeros((), np.float64))
        self._operations = _parameter("operations", np.zeros((), np.int64))
        self._pending = _parameter("pending", np.zeros(max(n, 1), np.int32))
        key_data = np.asarray(jax.device_get(key))
        self._key_dtype = key_data.dtype
        self._key = _parameter("key", key_data)
        for i, (mul, add) in enumerate(zip(muls, adds)):
            self.insert_param_to_cell(f"mul_{i}", mul)
            self.insert_param_to_cell(f"add_{i}", add)

    def _value(self, param: Parameter, decode: Callable[[np.ndarray], Any]) -> Any:
        """``decode(value)`` of the parameter, cached while its data buffer is the one decoded."""
        address = _buffer_address(param)
        cached = self._cache.get(param.name)
        if address is not None and cached is not None and cached[0] == address:
            return cached[1]
        value = decode(read_parameter(param))
        if address is not None:
            self._cache[param.name] = (address, value)
        return value

    def _write(self, param: Parameter, value: np.ndarray) -> None:
        write_parameter(param, value)
        self._cache.pop(param.name, None)

    def attach(self, networks: nn.Cell) -> None:
        """Make this the network's child ``suppress_ctrl`` (replacing an earlier controller's)."""
        networks.insert_child_to_cell(CHILD_NAME, self)

    @property
    def counts(self) -> np.ndarray:
        """The recorded suppressed count of each layer (int32)."""
        return np.array(self._value(self._counts, tuple), np.int32)

    @counts.setter
    def counts(self, value: Sequence[int]) -> None:
        self._write(self._counts, np.asarray(value, np.int32))

    @property
    def schedule(self) -> ScheduleState:
        """The schedule's position: started, start step, previous operation step."""
        return self._value(self._schedule, lambda a: ScheduleState(bool(a[0]), int(a[1]), int(a[2])))

    @schedule.setter
    def schedule(self, value: ScheduleState) -> None:
        self._write(self._schedule, np.array([int(bool(value.started)), int(value.start_step), int(value.prev_step)]))

    @property
    def sparsity(self) -> float:
        """The current target sparsity (a float64, as MindArmour's ``cur_sparse``)."""
        return self._value(self._sparsity, lambda a: float(a.reshape(-1)[0]))

    @sparsity.setter
    def sparsity(self, value: float) -> None:
        self._write(self._sparsity, np.asarray(float(value), np.float64))

    @property
    def operations(self) -> int:
        """Suppress operations applied so far."""
        return self._value(self._operations, lambda a: int(a.reshape(-1)[0]))

    @operations.setter
    def operations(self, value: int) -> None:
        self._write(self._operations, np.asarray(int(value), np.int64))

    @property
    def pending(self) -> np.ndarray:
        """Per layer, whether its correction buffer holds a correction not applied yet (bool)."""
        return np.array(self._value(self._pending, lambda a: tuple(bool(v) for v in a)), bool)

    @property
    def any_pending(self) -> bool:
        """Whether any layer has a correction pending."""
        return self._value(self._pending, lambda a: tuple(bool(v) for v in a)).count(True) > 0

    @pending.setter
    def pending(self, value: Sequence[bool]) -> None:
        flags = np.zeros(self._pending.shape, np.int32)
        flags[: len(value)] = np.asarray(value, bool)
        self._write(self._pending, flags)

    @property
    def key(self) -> jax.Array:
        """The noise's next JAX PRNG key."""
        return jax.numpy.asarray(self._value(self._key, lambda a: a.astype(self._key_dtype)))

    @key.setter
    def key(self, value: jax.Array) -> None:
        self._write(self._key, np.asarray(jax.device_get(value)))
