"""Privacy attacks on trained models (numpy in, numbers out).

* :mod:`supjax_app.attacks.classifiers` — ``supjax train``'s legacy attack: classifiers on loss and logits.
* :mod:`supjax_app.attacks.signals` — the audit's per-example signals (margin, loss) and its keep matrix.
* :mod:`supjax_app.attacks.lira` — the shadow-model membership-inference attacks LiRA and RMIA.
* :mod:`supjax_app.attacks.metrics` — ROC summaries, bootstrap intervals and epsilon lower bounds.
* :mod:`supjax_app.attacks.inversion` — the image-inversion attack on features, its metrics and protocol.

>>> from supjax_app.attacks import classifiers
>>> classifiers.ATTACKS
('lr', 'knn', 'mlp', 'rf')
"""

__all__: list[str] = []
