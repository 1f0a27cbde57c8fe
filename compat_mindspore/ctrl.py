"""``SuppressCtrl``: the schedule, the suppress operations and the mask buffers.

All the rules come from supjax, through its door :mod:`supjax.engine`: the schedule's
timing (:func:`~supjax.engine.epoch_flags`, :func:`~supjax.engine.advance_schedule`,
:func:`~supjax.engine.next_sparsity`, :func:`~supjax.engine.stop_counts`, the interval of
:class:`supjax.SuppressSchedule`) and the operation with its choice of path per layer
(:func:`~supjax.engine.suppress_operation`, jitted once per set of layer plans, which are
closed over, in :mod:`compat_mindspore._operations`; :func:`~supjax.engine.run_layer` for
one layer). This module only moves arrays: it reads the weights of the MindSpore network,
runs the operation, and writes the new keep-masks and corrections into two MindSpore
``Parameter`` buffers per suppressed layer (:mod:`compat_mindspore._buffers`), which the
train step of :class:`~compat_mindspore.model.SuppressModel` applies. All its state lives in
non-trainable parameters of the network (:mod:`compat_mindspore._state`), so MindSpore
checkpoints save it and ``load_param_into_net`` restores it.
"""

from __future__ import annotations

import concurrent.futures
import secrets
from logging import INFO

import jax
import numpy as np
from mindspore import Parameter, nn

from supjax import SuppressSchedule
from supjax.engine import (
    ScheduleState,
    advance_schedule,
    as_large,
    epoch_flags,
    next_sparsity,
    plan_layers,
    stop_counts,
)

from compat_mindspore import _operations as ops
from compat_mindspore._buffers import CorrectionForm, MaskBuffers
from compat_mindspore._checks import (
    check_bool,
    check_instance,
    check_int,
    check_int_positive,
    check_number_non_negative,
    check_number_positive,
)
from compat_mindspore._convert import read_parameter
from compat_mindspore._ctrl_reports import ReportsMixin, log_operation
from compat_mindspore._log import log
from compat_mindspore._matching import MatchedLayer, check_mask_layers, match_mask_layers
from compat_mindspore._state import is_state_parameter

__all__ = ["SuppressCtrl"]


class SuppressCtrl(ReportsMixin):
    """Complete suppress privacy operation (MindArmour's ``SuppressCtrl``).

    Computes the sparsity of each operation, finds the weights to suppress and keeps them
    suppressed. Build it with :meth:`SuppressPrivacyFactory.create
    <compat_mindspore.factory.SuppressPrivacyFactory.create>`, which checks the arguments'
    ranges; this constructor checks their types and the same ranges.

    Args:
        networks (Cell): the training network (the ``network`` of ``SuppressModel``).
        mask_layers (list): :class:`~compat_mindspore.mask_layer.MaskLayerDes` of the layers
            to suppress.
        end_epoch (int): last epoch of the suppress operations (``<= 100``).
        batch_num (int): steps per epoch.
        start_epoch (int): first epoch of the suppress operations (``<= end_epoch``).
        mask_times (int): number of suppress operations.
        lr (Union[float, int]): learning rate of ``nn.SGD``, ``0 < lr <= 0.5``.
        sparse_end (float): sparsity to reach, ``0 < sparse_end < 1``.
        sparse_start (Union[float, int]): sparsity to start from, ``0 <= sparse_start < sparse_end``.
        reference_parity (bool): reproduce MindArmour 2.0.0 bit for bit (its 10000-parameter
            large-layer threshold and its prefix-count tie rule) instead of the documented
            behaviour (100000, exact counts). Default: False.
        seed (Union[int, None]): seed of the JAX PRNG key of the noise; ``None`` draws one
            from the operating system (stored in ``self.seed``). Default: None.

    Raises:
        TypeError: an argument of the wrong type (as MindArmour's checkers).
        ValueError: a value out of range, a duplicate layer name or ``grad_idx``, a
            ``mask_layers`` item that is not a ``MaskLayerDes``, a description matching no
            parameter, or a ``grad_idx`` beyond the network's parameter count.

    Unlike MindArmour's, this controller is not a ``Cell``: it does not rename the
    network's parameters (MindArmour's prefixes them with ``networks.``). It adds the
    child ``suppress_ctrl`` to the network, whose non-trainable parameters hold its whole
    state, so that a checkpoint of the network saves it: to resume, build the controller
    with the same arguments, then ``load_param_into_net(networks, ...)``, then train with
    ``initial_epoch``.

    Examples:
        >>> from mindspore import nn
        >>> from compat_mindspore import MaskLayerDes, SuppressCtrl
        >>> net = nn.SequentialCell([nn.Dense(10, 10)])
        >>> ctrl = SuppressCtrl(net, [MaskLayerDes("0.weight", 0, False, True, 10)], end_epoch=10,
        ...                     batch_num=1, start_epoch=3, mask_times=10, lr=0.05,
        ...                     sparse_end=0.95, sparse_start=0.0, seed=0)
        >>> ctrl.mask_step_interval
        0.8
        >>> ctrl.update_mask(net, cur_step=5, target_sparse=0.5)
        >>> round(ctrl.calc_theoretical_sparse_for_conv()[1], 2)
        0.5
    """

    def __init__(
        self,
        networks: nn.Cell,
        mask_layers: list,
        end_epoch: int,
        batch_num: int,
        start_epoch: int,
        mask_times: int,
        lr: float,
        sparse_end: float,
        sparse_start: float,
        *,
        reference_parity: bool = False,
        seed: int | None = None,
    ) -> None:
        self.networks: nn.Cell = check_instance("networks", networks, nn.Cell)
        self.mask_layers: list = check_instance("mask_layers", mask_layers, list)
        self.mask_end_epoch: int = check_int_positive("end_epoch", end_epoch)
        self.batch_num: int = check_int_positive("batch_num", batch_num)
        self.mask_start_epoch: int = check_int_positive("start_epoch", start_epoch)
        self.mask_times: int = check_int_positive("mask_times", mask_times)
        self.lr: float = check_number_positive("lr", lr)
        self.sparse_end: float = check_instance("sparse_end", sparse_end, float)
        self.sparse_start: float = check_number_non_negative("sparse_start", sparse_start)
        self.reference_parity: bool = check_bool("reference_parity", reference_parity)
        if seed is None:
            seed = secrets.randbits(31)
        self.seed: int = check_int("seed", seed)
        ops.check_schedule_args(end_epoch, start_epoch, lr, sparse_end, sparse_start)
        check_mask_layers(mask_layers)

        self.schedule = SuppressSchedule.from_epochs(
            start_epoch, end_epoch, batch_num, mask_times, float(sparse_start), sparse_end
        )
        self.mask_all_steps: int = self.schedule.all_steps
        self.mask_step_interval: float = self.schedule.interval
        ops.check_interval(self.mask_step_interval)
        self._layers: tuple[MatchedLayer, ...] = match_mask_layers(networks, mask_layers)
        n_params = sum(not is_state_parameter(p.name) for p in networks.get_parameters(expand=True))
        ops.check_grad_idx(self._layers, n_params)
        self._plans = plan_layers([m.selected for m in self._layers], self.reference_parity)
        self._operation = ops.jitted_operation(tuple(self._plans), self.reference_parity)
        self._warm_up: concurrent.futures.Future | None = None
        self._buffers = MaskBuffers(self._layers, self._plans, self, jax.random.PRNGKey(self.seed))
        self._state = self._buffers.state  # counts, schedule, sparsity, key, ...: parameters of the network
        self._state.attach(networks)
        self.to_do_mask: bool = False
        self.mask_initialized: bool = True
        self.model = None  # the SuppressModel this controller is linked to
        for m in self._layers:
            log(INFO, "suppressing %s (grad_idx %d)", m.parameter.name, m.description.grad_idx)

    # ------------------------------------------------------------------ state
    @property
    def cur_sparse(self) -> float:
        """Target sparsity of the last suppress operation."""
        return self._state.sparsity

    @cur_sparse.setter
    def cur_sparse(self, value: float) -> None:
        self._state.sparsity = value

    @property
    def operations(self) -> int:
        """Suppress operations applied so far."""
        return self._state.operations

    # ------------------------------------------------------------------ schedule
    @property
    def mask_started(self) -> bool:
        """Whether suppression has started (it never stops once started)."""
        return bool(self._state.schedule.started)

    @property
    def mask_start_step(self) -> int:
        """Step at which suppression started (0 before)."""
        return int(self._state.schedule.start_step)

    @property
    def mask_prev_step(self) -> int:
        """Step of the previous suppress operation (0 before the first)."""
        return int(self._state.schedule.prev_step)

    def update_status(self, cur_epoch: int, cur_step: int, cur_step_in_epoch: int) -> None:
        """Update the suppress operation status after a training step.

        Sets ``to_do_mask`` when a suppress operation is due now (supjax's
        :func:`~supjax.engine.epoch_flags` and :func:`~supjax.engine.advance_schedule`).

        Args:
            cur_epoch (int): current epoch (1-based).
            cur_step (int): steps done so far in the whole training.
            cur_step_in_epoch (int): steps done so far in the current epoch.
        """
        in_window, is_final = epoch_flags(self.schedule, self.batch_num, cur_epoch, cur_step_in_epoch)
        before = self._state.schedule
        state, do_op = advance_schedule(before, int(cur_step), in_window, is_final, self.schedule.min_gap)
        state = ScheduleState(bool(state.started), int(state.start_step), int(state.prev_step))
        if state != before:
            self._state.schedule = state
        self.to_do_mask = bool(do_op)

    # ------------------------------------------------------------------ operations
    def update_mask(self, networks: nn.Cell, cur_step: int, target_sparse: float = 0.0) -> None:
        """Run one suppress operation on every suppressed layer.

        Updates the keep-masks and the corrections applied by the next training step.

        Args:
            networks (Cell): the training network.
            cur_step (int): steps done so far in the whole training.
            target_sparse (float): sparsity to reach; ``0.0`` follows the schedule. Default: 0.0.
        """
        self.cur_sparse = next_sparsity(
            self.schedule, cur_step, self.mask_start_step, previous=self.cur_sparse, target_sparse=target_sparse
        )
        if not self._layers:
            return
        params = ops.parameters_of(networks, self.networks, self._layers)
        weights = [read_parameter(p) for p in params]
        stops = stop_counts([p.size for p in self._plans], [p.rule.min_num for p in self._plans], self.cur_sparse)
        op_key, self._state.key = jax.random.split(self._state.key)
        if self._warm_up is not None:
            self._warm_up.result()  # the compilation started by precompile() is done
        result = self._operation(weights, self._buffers.keeps, self._state.counts, stops, op_key)
        if not bool(result.applied):
            log(INFO, "first parameter's max |w| < 0.02: suppress operation given up")
            self.reset_zeros()
            return
        ops.warn_nonfinite(params, result.nonfinite)
        counts = np.asarray(result.counts, dtype=np.int32)
        self._state.counts = counts
        thresholds = np.asarray(result.thresholds)
        for i in range(len(self._layers)):
            self._buffers.store(i, result.keep[i], result.delta[i], result.move[i], weights[i], float(thresholds[i]))
        self._state.operations = self._state.operations + 1
        log_operation(params, weights, np.asarray(stops), counts, thresholds, cur_step, self.cur_sparse)

    def update_mask_layer(
        self,
        weight_array_flat: np.ndarray,
        sparse_weight_thd: float,
        sparse_stop_pos: int,
        weight_abs_max: float,
        layer_index: int,
    ) -> None:
        """Suppress one layer with a given threshold (the exact path, supjax's ``exact_operation``).

        Args:
            weight_array_flat (numpy.ndarray): the layer's weights.
            sparse_weight_thd (float): magnitude threshold of the operation.
            sparse_stop_pos (int): largest number of weights suppressed.
            weight_abs_max (float): unused (the reference's noise bound is always 0.5).
            layer_index (int): ``grad_idx`` of the layer.
        """
        del weight_abs_max
        i = ops.layer_at(self._layers, layer_index)
        if i is None:
            return
        w = ops.flat_weights(self._layers[i], self._plans[i], weight_array_flat)
        rule = self._plans[i].rule
        op_key, self._state.key = jax.random.split(self._state.key)
        out = ops.exact_jit(
            w, self._buffers.keeps[i].reshape(-1), np.int32(max(int(sparse_stop_pos), 0)), op_key,
            rule=rule, parity=self.reference_parity, threshold=np.asarray(sparse_weight_thd, dtype=w.dtype),
        )
        self._set_count(i, int(out.count))
        self._buffers.store(i, out.keep, out.delta, out.move, w, float(sparse_weight_thd))

    def update_mask_layer_approximity(
        self,
        weight_array_flat: np.ndarray,
        weight_array_flat_abs: np.ndarray,
        actual_stop_pos: int,
        layer_index: int,
    ) -> float:
        """Suppress one large layer (no clipping, no noise); returns the threshold used.

        The layer takes supjax's large-layer path (:func:`~supjax.engine.as_large`): under
        ``reference_parity`` MindArmour's per-part distinct-value threshold, else the
        exact-count rule; it is skipped as supjax's :func:`~supjax.engine.run_layer` skips it
        (nothing to suppress, NaN or Inf weights, no threshold found), returning 0.0.
        ``weight_array_flat_abs`` is recomputed from the weights.

        Args:
            weight_array_flat (numpy.ndarray): the layer's weights.
            weight_array_flat_abs (numpy.ndarray): their absolute values (unused).
            actual_stop_pos (int): number of weights that should end suppressed.
            layer_index (int): ``grad_idx`` of the layer.
        """
        del weight_array_flat_abs
        i = ops.layer_at(self._layers, layer_index)
        if i is None:
            return 0.0
        w = ops.flat_weights(self._layers[i], self._plans[i], weight_array_flat)
        plan = as_large(self._plans[i], self.reference_parity)
        run = ops.layer_jit(  # the large paths draw no noise: the key is not consumed
            plan, w, self._buffers.keeps[i].reshape(-1), np.int32(actual_stop_pos), np.int32(self._state.counts[i]),
            self._state.key, reference_parity=self.reference_parity,
        )
        if not bool(run.changed):
            return 0.0
        out = run.outcome
        self._set_count(i, int(out.count))
        self._buffers.store(i, out.keep, out.delta, out.move, w, float(out.threshold))
        return float(out.threshold)

    def precompile(self, wait: bool = False) -> None:
        """Compile the suppress operation now, in a background thread unless ``wait``.

        ``SuppressModel.link_suppress_ctrl`` calls it, so that the compilation (seconds on a
        small CPU) overlaps the training steps before the first operation. Controllers with
        the same layers share one compiled operation.
        """
        if self._warm_up is not None or not self._layers:
            return
        run = ops.compile_job(self._operation, self._layers, self._buffers.keeps, self._state.counts)
        if wait:
            self._warm_up = concurrent.futures.Future()
            run()
            self._warm_up.set_result(None)
        else:
            self._warm_up = ops.compiler().submit(run)

    def _set_count(self, i: int, count: int) -> None:
        counts = self._state.counts
        counts[i] = count
        self._state.counts = counts

    def reset_zeros(self) -> None:
        """Set the corrections to zero (the step after an operation has applied them)."""
        self._buffers.reset_zeros()

    # ------------------------------------------------------------------ for SuppressModel
    @property
    def layers(self) -> tuple[MatchedLayer, ...]:
        """The suppressed parameters, in network order."""
        return self._layers

    @property
    def plans(self) -> tuple:
        """supjax's ``LayerPlan`` of each suppressed layer (its path: exact or large)."""
        return self._plans

    @property
    def mask_buffers(self) -> tuple[tuple[Parameter, ...], tuple[Parameter, ...]]:
        """The (keep-mask, correction) ``Parameter`` buffers, one of each per suppressed layer."""
        return tuple(self._buffers.mul), tuple(self._buffers.add)

    @property
    def correction_form(self) -> CorrectionForm:
        """How the train step applies the corrections (set by ``SuppressModel``)."""
        return self._buffers.form

    def set_correction_form(self, form: CorrectionForm) -> None:
        """Choose what the correction buffers hold: ``delta / lr`` (gradient) or ``delta`` (update)."""
        self._buffers.set_form(form)

    @property
    def keep_masks(self) -> tuple[np.ndarray, ...]:
        """Host copies of the keep-masks (``True`` = kept), in network order."""
        return tuple(k.copy() for k in self._buffers.keeps)

    @property
    def suppressed_counts(self) -> tuple[int, ...]:
        """The recorded suppressed count of each layer (supjax's ``counts``)."""
        return tuple(int(c) for c in self._state.counts)
