"""``supjax train --dp``: non-private dense, DP-SGD dense and DP-SGD + suppression, one report.

The three LeNet5 models share the seed, initial weights and data. DP-SGD's noise multiplier
comes from ``--epsilon`` (calibrated with dp-accounting's RDP accountant for the run's steps,
sampling rate and δ) or from ``--noise-multiplier``; both accountants report ε afterwards
(PLD only from noise multiplier :data:`~supjax_app.dp.accounting.PLD_MIN_NOISE` up, where it
is fast enough). DP + suppressed is ``chain(<DP-SGD>, supjax.suppress(...))``: suppression
reads only the privatised update, the params and its own state, so it is post-processing and
the DP-SGD ε holds for it unchanged.

>>> privacy(DPConfig(noise_multiplier=1.0, epochs=2, batch_size=100), n=1000)["noise_multiplier"]
1.0
>>> try:
...     privacy(DPConfig(delta=0.01, epochs=2, batch_size=100), n=1000)
... except ValueError as err:
...     print(err)
--delta must be a number in (0, 1/n] = (0, 0.001] for n = 1000 training examples, got 0.01
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import numpy as np
import optax

import supjax

from supjax_app.dp.accounting import PLD_MIN_NOISE, epsilons, noise_multiplier_for_epsilon
from supjax_app.dp.average import check_decay, make_averager, masked_like
from supjax_app.dp.config import DPConfig
from supjax_app.dp.report import MODELS, model_size, write_markdown
from supjax_app.dp.train import dp_optimizer, suppressed_clipping, train_dp
from supjax_app.host import cpu_description
from supjax_app.malloc import malloc_description
from supjax_app.models import init_params, lenet5_for, lenet5_rules
from supjax_app.train.loop import fit, init_state, make_predict, make_train_step

__all__ = [
    "privacy",
    "run",
    "train_models",
]


def privacy(config: DPConfig, n: int) -> dict[str, Any]:
    """The DP-SGD setting for ``n`` training examples: q, steps, δ, noise multiplier, ε (RDP/PLD).

    Raises ``ValueError`` naming the option for bad input (before any training).
    """
    config.validate_for(n)
    q = config.batch_size / n
    steps = config.epochs * (n // config.batch_size)
    delta = config.resolved_delta(n)
    target = config.target_epsilon()
    sigma = (float(config.noise_multiplier) if target is None
             else noise_multiplier_for_epsilon(target, q, steps, delta, accountant="rdp"))
    return {"sampling_rate": q, "steps": steps, "delta": delta, "target_epsilon": target,
            "noise_multiplier": sigma, "clip": config.clip, "epsilon": epsilons(sigma, q, steps, delta)}


def _apply(model: Any) -> Callable[[Any, Any], Any]:
    return lambda params, x: model.apply({"params": params}, x)


def _accuracy(predict: Callable, params: Any, x: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(predict(params, x), -1) == y))


def train_models(config: DPConfig, x_train: np.ndarray, y_train: np.ndarray, x_eval: np.ndarray,
                 y_eval: np.ndarray, num_classes: int, models: Sequence[str] = MODELS,
                 log: Callable[[str], None] = print,
                 on_model: Callable[[str, dict[str, Any]], None] | None = None,
                 parallel: bool = False, score_decays: Sequence[float] = ()) -> dict[str, Any]:
    """Train ``models`` (names from :data:`~supjax_app.dp.report.MODELS`) and score them on ``(x_eval, y_eval)``.

    Returns ``{"privacy": privacy(config, n), "models": {name: summary}}``; each summary has
    ``test_accuracy`` (on the eval set), ``epsilon``, ``zeros`` per kernel, ``size``, ``seconds``.
    ``on_model(name, summary)`` is called as each model is done. ``parallel`` trains the models
    in threads side by side (the same results; on a shared machine, a larger share of it).
    The DP models release their moving average of decay ``config.ema_decay`` when it is set;
    ``score_decays`` are more decays whose averages are only scored. With any decay, a DP
    model's summary has ``accuracy_by_average`` (``"last"`` for the last iterate, then one per decay).
    """
    n = len(x_train)
    priv = privacy(config, n)
    model = lenet5_for(x_train.shape[1:], num_classes, activation=config.activation)
    apply = _apply(model)
    params0 = init_params(model, x_train.shape[1:], config.seed)
    rules = lenet5_rules(upper_bound=config.upper_bound)
    watch = [str(r.pattern) for r in rules]
    predict = make_predict(lambda p, x, rng: apply(p, x))
    schedule = config.schedule(n // config.batch_size)
    decays = tuple(dict.fromkeys(([] if config.ema_decay is None else [float(config.ema_decay)])
                                 + [check_decay("score_decays", d) for d in score_decays]))
    out: dict[str, Any] = {}
    lock = threading.Lock()

    def one(name: str) -> None:
        t0 = time.perf_counter()
        exported, released, by_average = None, None, None
        if name == "non_private_dense":
            tx = optax.sgd(config.reference_lr, momentum=0.9)
            state = init_state(params0, tx, jax.random.PRNGKey(config.seed), config.seed)
            step = make_train_step(lambda p, x, rng: apply(p, x), tx, watch)
            state, _ = fit(state, step, lambda p, x: np.zeros((len(x), 1)), x_train, y_train, x_eval[:1], y_eval[:1],
                           epochs=config.epochs, batch_size=config.reference_batch_size)
            params, info, eps = jax.device_get(state.params), {}, {"rdp": None, "pld": None}
        elif name in ("dp_dense", "dp_suppressed"):
            tx = dp_optimizer(config.lr, config.momentum, config.clip, priv["noise_multiplier"], config.batch_size,
                              config.seed, rules=rules if name == "dp_suppressed" else None, schedule=schedule)
            grad_mask = suppressed_clipping(rules) if name == "dp_suppressed" and config.masked_clipping else None
            init_averages, update_averages = make_averager(decays)
            averaging = {"state": init_averages(params0), "averages": ()}

            def average(p: Any) -> None:
                averaging["averages"], averaging["state"] = update_averages(averaging["state"], p)

            params, opt_state, info = train_dp(apply, params0, tx, x_train, y_train, epochs=config.epochs,
                                               batch_size=config.batch_size, seed=config.seed, log=log, label=name,
                                               grad_mask=grad_mask, on_step=average if decays else None)
            info["masked_clipping"] = grad_mask is not None
            if decays:
                averages = averaging["averages"]
                if name == "dp_suppressed":  # the average gets the zeros suppression released
                    keep = supjax.keep_mask_tree(params, supjax.find_suppress_state(opt_state), rules)
                    averages = [masked_like(a, keep) for a in averages]
                averaged = {d: jax.device_get(a) for d, a in zip(decays, averages)}
                by_average = {"last": _accuracy(predict, params, x_eval, y_eval)} | {
                    f"ema {d:g}": _accuracy(predict, a, x_eval, y_eval) for d, a in averaged.items()}
                if config.ema_decay is not None:
                    params = averaged[float(config.ema_decay)]
            released = config.released()
            eps = priv["epsilon"]
            if name == "dp_suppressed":  # the library's export: suppressed kernels as BCOO
                exported = supjax.export_sparse(params, opt_state, rules)[1]
        else:
            raise ValueError(f"models must be from {MODELS}, got {name!r}")
        leaves = {str(r.pattern): np.asarray(params[p.split("/")[0]]["kernel"]) for r, p in zip(rules, watch)}
        out[name] = {
            "test_accuracy": _accuracy(predict, params, x_eval, y_eval),
            "epsilon": eps,
            "zeros": {p: float(np.mean(v == 0)) for p, v in leaves.items()},
            "size": model_size(params),
            "export_sparse": None if exported is None else {
                "dense_bytes": exported.dense_bytes, "sparse_bytes": exported.sparse_bytes,
                "layers": {r.path: {"kept": r.kept, "sparse_bytes": r.sparse_bytes} for r in exported.layers}},
            "seconds": time.perf_counter() - t0,
            "released": released,
            "accuracy_by_average": by_average,
            "training": {k: v for k, v in info.items() if k != "train_loss"},
        }
        log(f"{name}: accuracy {out[name]['test_accuracy']:.2%} in {out[name]['seconds']:.0f} s")
        if on_model is not None:
            with lock:
                on_model(name, out[name])

    # side by side: JAX releases the GIL while it computes (one thread per model)
    with ThreadPoolExecutor(max_workers=len(models) if parallel else 1) as pool:
        for future in [pool.submit(one, name) for name in models]:
            future.result()
    return {"privacy": priv, "models": out, "schedule": _schedule_json(schedule)}


def _schedule_json(schedule: supjax.SuppressSchedule) -> dict[str, Any]:
    return {"start_step": schedule.start_step, "end_step": schedule.end_step, "mask_times": schedule.mask_times,
            "stop_after_end": schedule.stop_after_end}


def _notes(config: DPConfig, priv: dict[str, Any]) -> list[str]:
    notes = [
        "Post-processing: supjax.suppress reads only the privatised, aggregated DP-SGD update, the "
        "parameters and its own state, never the data; so chain(<DP-SGD>, supjax.suppress(...)) releases "
        "a function of the DP-SGD output and keeps its (ε, δ).",
        ("Masked clipping (DP + suppressed): each per-example gradient is multiplied by the suppression "
         "keep-masks before it is clipped, so the clipping norm goes to the kept weights only. The masks "
         "depend only on earlier privatised updates and the public schedule, so every step is still a "
         "Gaussian mechanism of sensitivity clip with the same noise: the same ε."
         if config.masked_clipping else
         "Clipping (DP + suppressed): on the whole per-example gradient, suppressed coordinates included "
         "(--masked-clipping clips the kept ones only)."),
        f"Sampling: Poisson (each example joins a step independently with probability q = "
        f"{priv['sampling_rate']:.5f}), padded to the smallest of a few compiled shapes that holds it "
        "and masked (padded rows add zero): the mechanism dp-accounting's PoissonSampledDpEvent "
        "accounts for (no shuffling approximation).",
        "Noise multiplier calibrated with the RDP accountant (the PLD ε is tighter, i.e. lower)"
        if priv["target_epsilon"] is not None else "Noise multiplier given by --noise-multiplier",
        f"PLD ε is computed only for noise multipliers >= {PLD_MIN_NOISE} (below, PLD takes minutes and GBs; "
        "the RDP ε is an upper bound just the same).",
        "The non-private dense reference: SGD with momentum 0.9, learning rate "
        f"{config.reference_lr}, batch {config.reference_batch_size}, shuffled, same epochs; not tuned.",
        "No membership-inference attacks in --dp mode (see supjax audit for those).",
    ]
    if config.ema_decay is not None:
        notes.insert(2, f"Parameter averaging (--ema-decay {config.ema_decay:g}): each DP model is released as the "
                        "debiased moving average of its iterates (optax.ema); the suppressed model's average is "
                        "multiplied by its final keep-masks, so it has the same zeros. The accountant bounds the "
                        "whole sequence of privatised updates, so any function of the iterates keeps the same "
                        "(ε, δ). The table also gives the last iterate's accuracy.")
    return notes


def _command(config: DPConfig) -> str:
    return "supjax " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:] else "supjax train --dp"


def run(config: DPConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Load the data, train the three models, write ``report.json`` and ``report.md`` to ``config.out``.

    Raises ``ValueError`` naming the option before any training for bad input, and
    ``FileNotFoundError`` when the data set is not on disk.
    """
    from supjax_app.train.app import load_data
    from supjax_app.train.config import TrainConfig

    config.validate()
    log = log or (lambda msg: print(msg, flush=True))
    t0 = time.perf_counter()
    ds = load_data(TrainConfig(data=config.data, data_dir=config.data_dir, train_size=config.train_size,
                               test_size=config.test_size, seed=config.seed))
    priv = privacy(config, len(ds.x_train))  # bad --delta / --batch-size fail here, before training
    log(f"supjax train --dp: {ds.name} ({len(ds.x_train)} train / {len(ds.x_test)} test), {priv['steps']} steps, "
        f"q {priv['sampling_rate']:.5f}, noise multiplier {priv['noise_multiplier']:.4f}, δ {priv['delta']:g}, "
        f"ε RDP {priv['epsilon']['rdp']:.3f}")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    schedule = config.schedule(len(ds.x_train) // config.batch_size)
    report: dict[str, Any] = {
        "dataset": ds.name,
        "command": _command(config),
        "data": {"train_size": int(len(ds.x_train)), "test_size": int(len(ds.x_test))},
        "config": config.to_json(),
        "privacy": priv,
        "schedule": _schedule_json(schedule),
        "settings": {
            "epochs": config.epochs, "batch size (expected, Poisson)": config.batch_size, "lr": config.lr,
            "momentum": config.momentum, "clip": config.clip, "activation": config.activation,
            "noise multiplier": round(priv["noise_multiplier"], 4), "delta": priv["delta"], "steps": priv["steps"],
            "sparse_end": config.sparse_end, "upper_bound": config.upper_bound,
            "masked_clipping": config.masked_clipping,
            "released": config.released(),
            "end_epoch": config.resolved_end_epoch(),
            "suppression steps": f"{schedule.start_step}..{schedule.end_step}, {schedule.mask_times} operations"
            + (", then masks held (no operation after end_epoch)" if schedule.stop_after_end else ""),
        },
        "models": {},
        "notes": _notes(config, priv),
    }
    done: dict[str, Any] = {}

    def write(name: str | None = None, summary: dict[str, Any] | None = None) -> None:
        if name is not None:
            done[name] = summary
        report["models"] = {m: done[m] for m in MODELS if m in done}  # the table's order
        report["finished"] = len(done) == len(MODELS)
        report["seconds"] = time.perf_counter() - t0
        report["settings"]["wall time s"] = round(report["seconds"], 1)
        report["host"] = {"cpus": os.cpu_count(), "cpu": cpu_description(), "malloc": malloc_description(),
                          "load_average": list(os.getloadavg())}
        (out / "report.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        if report["models"]:
            write_markdown(report, out / "report.md")

    # the private models first: a run cut short still reports them
    train_models(config, ds.x_train, ds.y_train, ds.x_test, ds.y_test, ds.num_classes,
                 models=("dp_suppressed", "dp_dense", "non_private_dense"), log=log, on_model=write,
                 parallel=not config.quick)
    write()
    log(f"report: {out / 'report.json'}, {out / 'report.md'}")
    return report
