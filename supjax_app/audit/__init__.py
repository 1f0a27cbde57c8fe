"""``supjax audit``: membership-inference privacy audits of training recipes.

* :mod:`supjax_app.audit.core` — the API: train N models per arm on a keep matrix, attack each
  with the others as shadows, summarise (any model: ``init``, ``apply``, one optax chain per arm);
* :mod:`supjax_app.audit.training` — one arm's models (sequential, ``lax.scan`` or ``vmap``,
  a ``models`` mesh axis over several devices);
* :mod:`supjax_app.audit.arms` — the CLI's LeNet5 arms (dense, suppressed, pruned, DP-SGD,
  DP-SGD + suppression) and validation accuracy for choosing their hyperparameters;
* :mod:`supjax_app.audit.split` — pool with canaries, validation and test splits;
* DP-SGD ε: :mod:`supjax_app.dp.accounting` (shared with ``supjax train --dp``);
* :mod:`supjax_app.audit.app`, :mod:`~supjax_app.audit.cli`, :mod:`~supjax_app.audit.config` —
  the ``supjax audit`` command;
* :mod:`supjax_app.audit.report`, :mod:`~supjax_app.audit.plots`,
  :mod:`~supjax_app.audit.inversion_section` — what it writes.

>>> from supjax_app.audit import core
>>> callable(core.audit)
True
"""

__all__: list[str] = []
