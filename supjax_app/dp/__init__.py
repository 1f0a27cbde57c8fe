"""``supjax train --dp``: DP-SGD with per-example gradients, and DP-SGD + suppression in one optax chain.

* :mod:`supjax_app.dp.accounting` — ε of DP-SGD with ``dp-accounting`` (RDP, PLD), the noise
  multiplier for a target ε, the default δ (shared with ``supjax audit``);
* :mod:`supjax_app.dp.sgd` — per-example L2 clipping, the noisy aggregate (an optax
  transformation), Poisson batches with a fixed compiled shape;
* :mod:`supjax_app.dp.train` — the jitted per-example step and the Poisson-sampled loop;
* :mod:`supjax_app.dp.config`, :mod:`~supjax_app.dp.cli`, :mod:`~supjax_app.dp.app`,
  :mod:`~supjax_app.dp.report` — the command, its checks and its report;
* :mod:`supjax_app.dp.select` — hyperparameters chosen on a validation split.

>>> from supjax_app.dp import accounting
>>> accounting.default_delta(60000)
1e-05
"""

__all__: list[str] = []
