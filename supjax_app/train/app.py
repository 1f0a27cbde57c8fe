"""``supjax train``: a dense LeNet5 and a suppressed one, same seed and data, then a report.

>>> from supjax_app.train.config import TrainConfig
>>> cfg = TrainConfig(epochs=0)
>>> try:
...     run(cfg)
... except ValueError as err:
...     print(err)
--epochs must be an integer in [1, 1000], got 0
"""

from __future__ import annotations

import json
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Sequence

import jax
import numpy as np
import optax

from supjax_app.data import Dataset, load_dataset
from supjax.layers import LayerRule
from supjax.schedule import SuppressSchedule
from supjax.transform import find_suppress_state, suppress
from supjax_app.train.checkpoint import Checkpointer
from supjax_app.train.config import TrainConfig
from supjax_app.train.loop import History, TrainState, fit, init_state, make_predict, make_train_step
from supjax_app.train.membership import attack_split, evaluate_membership
from supjax_app.models import init_params, lenet5_for, lenet5_rules
from supjax_app.train.report import (
    RUNS,
    check_masks_hold,
    model_size,
    print_table,
    run_summary,
    write_json,
    write_markdown,
    zero_fractions,
)

__all__ = [
    "load_data",
    "make_optimizer",
    "run",
]


def load_data(config: TrainConfig) -> Dataset:
    """The data set ``config`` names, cut to ``train_size``/``test_size`` (seeded subsets).

    Raises ``FileNotFoundError`` (saying how to get the data) when it is not on disk.

    >>> ds = load_data(TrainConfig(data="digits", train_size=100, test_size=50, seed=0))
    >>> ds.name, ds.x_train.shape, ds.x_test.shape, ds.num_classes
    ('digits', (100, 8, 8, 1), (50, 8, 8, 1), 10)
    """
    key = config.data.strip().lower().replace("_", "-")
    if key == "digits" and config.data_dir is not None:
        raise ValueError(
            "--data-dir cannot be used with --data digits (bundled with scikit-learn); "
            "pass --data fashion-mnist or another name with --data-dir"
        )
    kwargs = {"seed": config.seed} if key == "digits" else {}
    ds = load_dataset(config.data, config.data_dir, **kwargs)
    rng = np.random.default_rng([config.seed, 1])

    def cut(x: np.ndarray, y: np.ndarray, size: int | None) -> tuple[np.ndarray, np.ndarray]:
        if size is None or size >= len(x):
            return x, y
        idx = np.sort(rng.choice(len(x), size, replace=False))
        return x[idx], y[idx]

    x_train, y_train = cut(ds.x_train, ds.y_train, config.train_size)
    x_test, y_test = cut(ds.x_test, ds.y_test, config.test_size)
    return ds._replace(x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)


def make_optimizer(
    run_name: str, lr: float, rules: Sequence[LayerRule], schedule: SuppressSchedule, seed: int
) -> optax.GradientTransformation:
    """Plain SGD for ``"dense"``; ``chain(sgd(lr), suppress(...))`` for ``"suppressed"``.

    ``suppress`` goes last: it edits the final updates, so suppressed weights land on
    exactly 0 (``w + (-w)``) whatever the optimizer, while the gradient form
    (``suppress_gradients``) divides the correction by ``lr`` and multiplies it back, which
    can leave a rounding residue and only works with plain SGD.

    >>> import jax.numpy as jnp
    >>> schedule, params = SuppressSchedule.from_steps(1, 100, 10), {"w": jnp.ones(4)}
    >>> dense, suppressed = (make_optimizer(name, 0.05, [LayerRule("w")], schedule, seed=0) for name in RUNS)
    >>> states = [find_suppress_state(tx.init(params), missing_ok=True) for tx in (dense, suppressed)]
    >>> states[0], states[1].keep_masks[0].tolist()
    (None, [True, True, True, True])
    """
    if run_name == "dense":
        return optax.sgd(lr)
    if run_name == "suppressed":
        return optax.chain(optax.sgd(lr), suppress(rules, schedule, seed=seed))
    raise ValueError(f"run_name must be one of {RUNS}, got {run_name!r}")


class _Hooks:
    """Progress bar updates and checkpoint saves for :func:`~supjax_app.train.loop.fit`."""

    def __init__(self, progress: Any, task: Any, label: str, epochs: int,
                 checkpointer: Checkpointer | None, meta: dict[str, Any]) -> None:
        self.progress, self.task, self.label, self.epochs = progress, task, label, epochs
        self.checkpointer, self.meta = checkpointer, meta

    def on_step(self, step: int) -> None:
        self.progress.update(self.task, completed=step)

    def on_epoch(self, epoch: int, test_accuracy: float) -> None:
        self.progress.update(
            self.task, description=f"{self.label} epoch {epoch}/{self.epochs} test acc {test_accuracy:.1%}"
        )

    def on_checkpoint(self, step: int, state: TrainState, history: History) -> None:
        if self.checkpointer is not None:
            self.checkpointer.save(step, state, {**self.meta, "history": history.to_json()})


def _resume(
    checkpointer: Checkpointer, config: TrainConfig, state: TrainState, console: Any
) -> tuple[TrainState, History, int | None]:
    latest = checkpointer.latest_step()
    if latest is None:
        if config.resume:
            console.print(f"[yellow]no checkpoint in {checkpointer.directory}: starting from step 0[/]")
        return state, History(), None
    if not config.resume:
        raise ValueError(
            f"--checkpoint-dir {checkpointer.directory.parent} already holds checkpoints "
            f"(latest step {latest}); pass --resume to continue that run or choose an empty directory"
        )
    expected = json.loads(json.dumps(config.training_fields()))
    saved = checkpointer.meta(latest).get("config", {})
    if saved != expected:
        diff = ", ".join(f"{k}={saved.get(k)!r} (now {expected[k]!r})" for k in sorted(expected)
                         if saved.get(k) != expected[k])
        raise ValueError(
            f"--resume: the checkpoints in {checkpointer.directory} were written with other "
            f"options: {diff}; pass the same options or choose another --checkpoint-dir"
        )
    restored, meta = checkpointer.restore(state, latest)
    console.print(f"resumed {checkpointer.directory.name} from step {latest}")
    return restored, History.from_json(meta["history"]), latest


def _checkpoint_dir(config: TrainConfig) -> Path | None:
    if config.checkpoint_dir is not None:
        return Path(config.checkpoint_dir)
    if config.resume or config.checkpoint_every is not None:
        return Path(config.out) / "checkpoints"
    return None


def _train_one(
    name: str, config: TrainConfig, state: TrainState, train_step: Any,
    predict: Any, ds: Dataset, watch: Sequence[str], checkpointer: Checkpointer | None,
    every: int | None, console: Any,
) -> tuple[TrainState, History, int | None]:
    """Train one run (resuming it from its checkpoints when asked), with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    history, resumed_from = History(), None
    if checkpointer is not None:
        state, history, resumed_from = _resume(checkpointer, config, state, console)
    steps_per_epoch = len(ds.x_train) // config.batch_size
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), console=console) as progress:
        done = f" test acc {history.test_accuracy[-1]:.1%}" if history.test_accuracy else ""
        task = progress.add_task(f"{name} epoch {int(state.epoch)}/{config.epochs}{done}",
                                 total=config.epochs * steps_per_epoch, completed=int(state.step))
        if not history.finished:
            meta = {"run": name, "config": config.training_fields()}
            hooks = _Hooks(progress, task, name, config.epochs, checkpointer, meta)
            state, history = fit(
                state, train_step, predict,
                ds.x_train, ds.y_train, ds.x_test, ds.y_test,
                epochs=config.epochs, batch_size=config.batch_size, watch=watch,
                history=history, checkpoint_every=every, hooks=hooks,
            )
    return state, history, resumed_from


def _compile_step(train_step: Any, state: TrainState, batch: tuple[np.ndarray, np.ndarray]) -> None:
    """Compile ``train_step`` for ``state`` and batches shaped like ``batch`` into JAX's cache."""
    train_step.lower(state, *batch).compile()


def _warn_skips(sup: Any, watch: Sequence[str], console: Any) -> None:
    """Say which layers had operations skipped because they held NaN or Inf weights."""
    if sup is None:
        return
    for path, skips in zip(watch, np.asarray(sup.nonfinite_skips)):
        if skips:
            console.print(f"[yellow]warning: {path} held NaN/Inf weights: {int(skips)} operations skipped it[/]")


def _evaluate(
    state: TrainState, history: History, resumed_from: int | None, predict: Any, ds: Dataset,
    watch: Sequence[str], members: np.ndarray, nonmembers: np.ndarray, config: TrainConfig,
) -> dict[str, Any]:
    """Attack a trained model and summarise its run for the report."""
    t_eval = time.perf_counter()
    mia, roc = evaluate_membership(
        predict, state.params, ds.x_train, ds.y_train, ds.x_test, ds.y_test,
        members, nonmembers, config.attacks, config.seed,
    )
    train_acc = float(np.mean(np.argmax(predict(state.params, ds.x_train), -1) == ds.y_train))
    extra: dict[str, Any] = {"resumed_from_step": resumed_from}
    sup = find_suppress_state(state.opt_state, missing_ok=True)
    if sup is not None:
        extra["mask_sparsity"] = {p: float(np.mean(~np.asarray(m))) for p, m in zip(watch, sup.keep_masks)}
        extra["target_sparsity"] = float(sup.sparsity)
        extra["operations"] = int(sup.operations)
        extra["nonfinite_skips"] = {p: int(n) for p, n in zip(watch, np.asarray(sup.nonfinite_skips))}
    extra["model_size"] = model_size(state.params, sup, watch)
    return run_summary(
        accuracy=history.test_accuracy[-1],
        train_accuracy=train_acc,
        sparsity=zero_fractions(state.params, watch),
        membership=mia,
        roc=roc,
        history=history.to_json(),
        seconds=history.seconds,
        eval_seconds=time.perf_counter() - t_eval,
        extra=extra,
    )


def run(config: TrainConfig, console: Any = None) -> dict[str, Any]:
    """Train, attack and report; return the report (also written to ``config.out``).

    >>> import io, os, tempfile
    >>> from rich.console import Console
    >>> cfg = TrainConfig(epochs=2, train_size=200, test_size=100, attacks=("lr",), attack_size=50,
    ...                   out=tempfile.mkdtemp())
    >>> report = run(cfg, console=Console(file=io.StringIO()))  # doctest: +SKIP
    >>> sorted(report["suppressed"]["membership_inference"]), sorted(os.listdir(cfg.out))  # doctest: +SKIP
    (['loss_threshold', 'lr'], ['accuracy.png', 'report.json', 'report.md', 'roc.png', 'sparsity.png'])
    """
    config.validate()
    from rich.console import Console

    from supjax_app.train.plots import write_plots

    console = console or Console()
    t0 = time.perf_counter()
    ds = load_data(config)
    n_train = len(ds.x_train)
    if config.batch_size > n_train:
        raise ValueError(f"--batch-size must be an integer in [1, {n_train}] (the training samples), got {config.batch_size}")
    steps_per_epoch = n_train // config.batch_size
    schedule = config.schedule(steps_per_epoch)
    model = lenet5_for(ds.x_train.shape[1:], ds.num_classes)

    def apply_fn(params: Any, x: Any, rng: Any) -> Any:
        del rng  # LeNet5 has no dropout
        return model.apply({"params": params}, x)

    loop_key = jax.random.PRNGKey(config.seed)
    params0 = init_params(model, ds.x_train.shape[1:], config.seed)
    rules = lenet5_rules()
    watch = [str(r.pattern) for r in rules]
    predict = make_predict(apply_fn)
    members, nonmembers = attack_split(n_train, len(ds.x_test), config.attack_size, config.seed)
    ckpt_root = _checkpoint_dir(config)
    every = config.checkpoint_every or (steps_per_epoch if ckpt_root is not None else None)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    console.print(
        f"supjax train: {ds.name} ({n_train} train / {len(ds.x_test)} test), {config.epochs} epochs x "
        f"{steps_per_epoch} steps, suppression from epoch {config.resolved_start_epoch()} "
        f"({schedule.mask_times} operations, sparse_end {config.sparse_end})"
    )

    # The later runs' train steps compile in a worker thread while the first run trains, and
    # each model is attacked in another while the next one trains (XLA's compile is mostly
    # single-threaded, scikit-learn's attacks too): same results, shorter wall time on 2 cores.
    txs = {name: make_optimizer(name, config.lr, rules, schedule, config.seed) for name in RUNS}
    train_steps = {name: make_train_step(apply_fn, txs[name], watch) for name in RUNS}
    batch = (ds.x_train[: config.batch_size], ds.y_train[: config.batch_size])
    pending: dict[str, Future] = {}
    with ThreadPoolExecutor(max_workers=1) as compiler, ThreadPoolExecutor(max_workers=1) as pool:
        compiled = {
            name: compiler.submit(
                _compile_step, train_steps[name], init_state(params0, txs[name], loop_key, config.seed), batch
            )
            for name in RUNS[1:]
        }
        for name in RUNS:
            state = init_state(params0, txs[name], loop_key, config.seed)
            checkpointer = Checkpointer(ckpt_root / name) if ckpt_root is not None else None
            if name in compiled:
                compiled[name].result()  # the step is in JAX's cache now: the run will not compile it
            try:
                state, history, resumed_from = _train_one(
                    name, config, state, train_steps[name], predict, ds, watch, checkpointer, every, console
                )
            finally:
                if checkpointer is not None:
                    checkpointer.close()
            console.print(f"{name}: test accuracy {history.test_accuracy[-1]:.2%}; membership inference queued")
            _warn_skips(find_suppress_state(state.opt_state, missing_ok=True), watch, console)
            check_masks_hold(state.params, find_suppress_state(state.opt_state, missing_ok=True), rules)
            pending[name] = pool.submit(
                _evaluate, state, history, resumed_from, predict, ds, watch, members, nonmembers, config
            )
        runs = {name: future.result() for name, future in pending.items()}

    report = {
        "dataset": ds.name,
        "data": {
            "train_size": n_train,
            "test_size": int(len(ds.x_test)),
            "image_shape": list(ds.x_train.shape[1:]),
            "num_classes": int(ds.num_classes),
            "attack_members": int(len(members)),
            "attack_nonmembers": int(len(nonmembers)),
        },
        "config": {
            **config.to_json(),
            "start_epoch": config.resolved_start_epoch(),
            "mask_times": schedule.mask_times,
            "steps_per_epoch": steps_per_epoch,
            "checkpoint_dir": str(ckpt_root) if ckpt_root is not None else None,
            "checkpoint_every": every,
            "schedule": {
                "start_step": schedule.start_step,
                "end_step": schedule.end_step,
                "final_step": schedule.final_step,
                "interval": schedule.interval,
            },
            "optimizer": "optax.chain(optax.sgd(lr), supjax.suppress(layers, schedule, seed=seed))",
        },
        "model": {
            "name": "LeNet5",
            "conv1_padding": model.conv1_padding,
            "conv2_padding": model.conv2_padding,
            "parameters": int(sum(np.size(x) for x in jax.tree_util.tree_leaves(params0))),
        },
        "layers": [
            {"path": str(r.pattern), "is_add_noise": r.is_add_noise, "is_lower_clip": r.is_lower_clip,
             "min_num": r.min_num}
            for r in rules
        ],
        **runs,
    }
    report["seconds"] = time.perf_counter() - t0
    plots = write_plots(report, out)
    report["seconds"] = time.perf_counter() - t0
    write_json(report, out / "report.json")
    write_markdown(report, out / "report.md", [p.name for p in plots])
    print_table(report, console)
    console.print(f"report: {out / 'report.json'}, {out / 'report.md'}, plots: "
                  + ", ".join(p.name for p in plots))
    return report
