"""``supjax bench``: the JAX figures (:mod:`supjax_app.bench.figures`) and the selection sweep
(:mod:`supjax_app.bench.selection`); MindArmour/compat figures come from ``compat_mindspore.bench``
through the ``supjax.bench`` entry-point group when that package is installed.

>>> from supjax_app.bench import figures
>>> sorted(figures.GOALS)[:2]
['compat_step_ratio', 'lenet5_operation_ms']
"""

__all__: list[str] = []
