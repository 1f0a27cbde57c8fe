"""Privacy attacks on trained models (numpy in, numbers out).

* :mod:`supjax_app.attacks.classifiers` — the legacy attack of ``supjax train``: scikit-learn
  classifiers on loss and logits, and a loss threshold.

>>> from supjax_app.attacks import classifiers
>>> classifiers.ATTACKS
('lr', 'knn', 'mlp', 'rf')
"""

__all__: list[str] = []
