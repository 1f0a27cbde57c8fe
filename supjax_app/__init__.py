"""The supjax application: ``supjax train``, ``supjax audit``, ``supjax bench`` and what they need.

Everything here may use Flax, scikit-learn, matplotlib, rich and orbax; the library
(:mod:`supjax`) never imports this package.

* :mod:`supjax_app.cli` — the ``supjax`` command;
* :mod:`supjax_app.data` — data sets without downloads (digits, Fashion-MNIST, IDX folders;
  the IDX file reader is :mod:`supjax_app.idx`);
* :mod:`supjax_app.models` — the tutorial's LeNet5 in Flax and its suppression rules;
* :mod:`supjax_app.train` — ``supjax train``: dense vs suppressed, resumable, reported;
* :mod:`supjax_app.audit` — ``supjax audit``: does a defence protect privacy? (shadow models,
  LiRA, RMIA, TPR at low FPR, DP-SGD, image inversion);
* :mod:`supjax_app.attacks` — the attacks and their metrics;
* :mod:`supjax_app.bench` — ``supjax bench``: what suppression costs on this machine.

>>> import supjax_app
>>> supjax_app.__name__
'supjax_app'
"""

__all__: list[str] = []
