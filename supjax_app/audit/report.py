"""The audit's report: ``report.json`` (every number), ``report.md`` (one row per arm), ``scores.npz``.

>>> main_attack(("loss", "lira_online"))
'lira_online'
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from supjax_app.audit.config import AuditConfig
from supjax_app.audit.core import AuditResult
from supjax_app.audit.split import AuditData

__all__ = ["CONTROL_TPR", "build_report", "main_attack", "markdown", "write_outputs"]

#: The dense (control) arm must reach this TPR at 1 % FPR under LiRA for the setting to "leak".
CONTROL_TPR = 0.05

_PACKAGES = ("supjax", "jax", "jaxlib", "optax", "flax", "numpy", "scipy", "scikit-learn", "dp-accounting")


def main_attack(attacks: Sequence[str]) -> str:
    """The attack the summary table reports: LiRA online when run, else the first one.

    >>> main_attack(("loss",))
    'loss'
    """
    return "lira_online" if "lira_online" in attacks else attacks[0]


def _versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def _legacy(result: AuditResult, data: AuditData, seed: int, quick: bool) -> dict[str, Any]:
    """Today's ``supjax train`` attack (LR/KNN/MLP/RF and a loss threshold; LR only with ``--quick``) on model 0."""
    from supjax_app.attacks.classifiers import ATTACKS, membership_inference

    out = {}
    member = result.keep[0]
    for name, outcome in result.outcomes.items():
        logits = outcome.pool_logits[0]
        rep = membership_inference(logits[member], data.y_pool[member], logits[~member], data.y_pool[~member],
                                   attacks=("lr",) if quick else ATTACKS, seed=seed)
        out[name] = {attack: r["auc"] for attack, r in rep.items()}
    return out


def build_report(cfg: AuditConfig, data: AuditData, chosen: Mapping[str, Any], result: AuditResult,
                 epsilons: Mapping[str, Any], inversion: Any, timings: Mapping[str, float]) -> dict[str, Any]:
    """Every number of the audit as a JSON-ready dict (configuration and versions included)."""
    arms = {}
    for name, outcome in result.outcomes.items():
        arms[name] = {
            "settings": outcome.settings,
            "test_accuracy": {"mean": float(outcome.test_accuracy.mean()), "std": float(outcome.test_accuracy.std()),
                              "per_model": outcome.test_accuracy.tolist()},
            "train_accuracy": {"mean": float(outcome.train_accuracy.mean()), "per_model": outcome.train_accuracy.tolist()},
            "zeros": {"mean": float(outcome.zeros.mean()), "per_model": outcome.zeros.tolist()},
            "train_seconds": outcome.seconds,
            "epsilon": epsilons.get(name),
            "attacks": result.metrics[name],
        }
    attack = main_attack(cfg.attacks)
    control = None
    if "dense" in arms:
        tpr = arms["dense"]["attacks"][attack]["all"].get("tpr@0.01")
        control = {"attack": attack, "dense_tpr@0.01": tpr, "goal": CONTROL_TPR,
                   "leaks": None if tpr is None else bool(tpr >= CONTROL_TPR)}
    report = {
        "config": cfg.to_json(),
        "versions": _versions(),
        "data": {"name": data.name, "pool": int(len(data.y_pool)), "canaries": int(data.canary.sum()),
                 "validation": int(len(data.y_val)), "test": int(len(data.y_test))},
        "hyperparameters": json.loads(json.dumps(chosen, default=float)),
        "main_attack": attack,
        "control": control,
        "arms": arms,
        "accountant": "dp-accounting: RDP (RdpAccountant) and PLD (PLDAccountant; only from noise multiplier 0.3 up, "
                      "below it too slow), Poisson-subsampled Gaussian at "
                      "rate batch/|smallest training set|, delta = 1/pool; training used shuffled fixed-size batches "
                      "(the usual approximation of Poisson sampling)",
        "epsilon_lower_bound": "ln(TPR_lower / FPR_upper) (or the complementary form, whichever is larger) with "
                               "Clopper-Pearson 95 % bounds at the threshold giving FPR 1 %",
        "timings": dict(timings),
    }
    if cfg.legacy:
        report["legacy_auc"] = _legacy(result, data, cfg.seed, cfg.quick)
    if inversion is not None:
        report["inversion"] = inversion["summary"]
    return report


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f} %"


def _ci(m: Mapping[str, Any], key: str, pct: bool = True) -> str:
    lo, hi = m[f"{key}_ci"]
    return f"{_pct(m[key])} [{_pct(lo)}, {_pct(hi)}]" if pct else f"{m[key]:.3f} [{lo:.3f}, {hi:.3f}]"


def markdown(report: Mapping[str, Any]) -> str:
    """``report.md``: the summary table (one row per arm), then every attack with intervals."""
    attack = report["main_attack"]
    lines = [f"# supjax audit: {report['data']['name']}", ""]
    c = report["config"]
    lines += [f"{c['models']} models per arm, each trained on a random half of a pool of {report['data']['pool']} "
              f"examples ({report['data']['canaries']} canaries with a wrong label), {c['epochs']} epochs, batch "
              f"{c['batch_size']}; every model attacked in turn with the other {c['models'] - 1} as shadows. "
              f"Summary attack: `{attack}`. Intervals: bootstrap 95 %.", ""]
    if report.get("control"):
        ctl = report["control"]
        verdict = "leaks (control met)" if ctl["leaks"] else "does NOT leak enough (control not met)"
        lines += [f"Control: the dense arm reaches TPR {_pct(ctl['dense_tpr@0.01'])} at 1 % FPR under `{ctl['attack']}` "
                  f"(goal >= {_pct(ctl['goal'])}): the setting {verdict}.", ""]
    fprs = c["fpr_targets"]
    head = ["arm", "test acc", "zeros", "eps (RDP/PLD)", "AUC"] + [f"TPR@{100 * f:g}%" for f in fprs] + ["canary TPR@1%"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, arm in report["arms"].items():
        m = arm["attacks"][attack]["all"]
        can = arm["attacks"][attack]["canaries"]
        eps = arm["epsilon"]
        row = [name, f"{100 * arm['test_accuracy']['mean']:.2f} ± {100 * arm['test_accuracy']['std']:.2f} %",
               _pct(arm["zeros"]["mean"]), "-" if not eps else f"{eps['rdp']:.3g} / " + (
                   "-" if eps["pld"] is None else f"{eps['pld']:.3g}"),
               f"{m['auc']:.3f}"] + [_pct(m[f"tpr@{f:g}"]) for f in fprs] + [
               "-" if can is None or "tpr@0.01" not in can else _pct(can["tpr@0.01"])]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Every attack (pooled over targets; intervals bootstrap 95 %)", ""]
    head = ["arm", "attack", "AUC", "advantage"] + [f"TPR@{100 * f:g}%" for f in fprs] + ["eps lower bound"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, arm in report["arms"].items():
        for att, mm in arm["attacks"].items():
            m = mm["all"]
            lines.append("| " + " | ".join([name, att, _ci(m, "auc", False), _ci(m, "advantage")] +
                                           [_ci(m, f"tpr@{f:g}") for f in fprs] +
                                           [f"{m['epsilon_lower_bound']:.2f}"]) + " |")
    if report.get("legacy_auc"):
        attacks = list(next(iter(report["legacy_auc"].values())))
        lines += ["", "## Legacy attack of `supjax train` (model 0 of each arm, AUC)", "",
                  "| arm | " + " | ".join(attacks) + " |", "|---|" + "---|" * len(attacks)]
        for name, aucs in report["legacy_auc"].items():
            lines.append(f"| {name} | " + " | ".join(f"{aucs[a]:.3f}" for a in attacks) + " |")
    hp = report["hyperparameters"]
    lines += ["", "## Hyperparameters (chosen on the validation split)", "", f"learning rates: {hp['lr']}"]
    if "dp" in hp:
        dp = hp["dp"]
        lines.append(f"DP-SGD noise multiplier {dp['noise_multiplier']}, learning rate {hp['lr']['dpsgd']}: the most "
                     f"private of the grid whose validation accuracy is at least the suppressed arm's minus one "
                     f"point ({'matched' if dp['matched'] else 'NONE of the grid matched: the most accurate one'}); "
                     f"validation accuracy by noise and learning rate: {dp['validation_accuracy_by_noise_and_lr']}")
    lines += ["", f"Accountant: {report['accountant']}.", f"Empirical epsilon: {report['epsilon_lower_bound']}.", ""]
    t = report["timings"]
    lines.append(f"Wall time: {t['total_s']:.0f} s (hyperparameter search {t['tuning_s']:.0f} s; training per arm: " +
                 ", ".join(f"{n} {a['train_seconds']:.0f} s" for n, a in report["arms"].items()) + ").")
    return "\n".join(lines) + "\n"


def write_outputs(report: Mapping[str, Any], result: AuditResult, data: AuditData, inversion: Any,
                  out: Path) -> list[Path]:
    """Write ``report.json``, ``report.md``, ``scores.npz``, the PNG plots and the inversion files."""
    from supjax_app.audit.plots import write_plots

    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "report.json", out / "report.md", out / "scores.npz"]
    paths[0].write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    md = markdown(report)
    if inversion is not None:
        md += "\n## Inversion attack\n\n" + inversion["markdown"]
    paths[1].write_text(md, encoding="utf-8")
    arrays = {f"{arm}/{attack}": s for arm, by in result.scores.items() for attack, s in by.items()}
    arrays.update({f"{arm}/pool_logits": o.pool_logits for arm, o in result.outcomes.items()})
    np.savez_compressed(paths[2], keep=result.keep, canary=result.canary, labels=data.y_pool,
                        true_labels=data.y_pool_true, pool_index=data.pool_index, **arrays)
    paths += write_plots(report, result, out)
    if inversion is not None:
        from supjax_app.audit.inversion_section import write_inversion

        paths += write_inversion(inversion, out)
    return paths
