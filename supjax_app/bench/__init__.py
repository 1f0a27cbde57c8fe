"""``supjax bench``, one module per concern:

* :mod:`~supjax_app.bench.timing`: repeat counts, timed samples, interleaved rounds, paired ratios;
* :mod:`~supjax_app.bench.operation`: one jitted suppress operation ready to time;
* :mod:`~supjax_app.bench.figures`: the JAX figures (step overhead, LeNet5 operation, selection
  ratio), and :func:`~supjax_app.bench.figures.mindspore_figures`, which finds the
  MindArmour/compat figures of ``compat_mindspore.bench`` through the ``supjax.bench``
  entry-point group when that package is installed;
* :mod:`~supjax_app.bench.runs`: what a user waits for (compiling the train step, the fit loop,
  a whole ``supjax train --quick`` with a cold and a warm compilation cache);
* :mod:`~supjax_app.bench.report`: the goals (:data:`~supjax_app.bench.report.FIGURES` registers
  a figure measured by one function), the JSON report and its table;
* :mod:`~supjax_app.bench.cli`: the command line (``supjax bench``);
* :mod:`~supjax_app.bench.selection`: the ``kth_smallest`` sweep
  (``python -m supjax_app.bench.selection``).

>>> from supjax_app.bench import report
>>> sorted(report.GOALS)[:3]
['compat_step_ratio', 'compile_ratio', 'lenet5_operation_ms']
"""

__all__: list[str] = []
