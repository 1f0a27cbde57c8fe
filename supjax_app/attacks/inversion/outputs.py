"""The reports of :func:`~supjax_app.attacks.inversion.protocol.run_inversion`: npz, png, Markdown.

>>> from supjax_app.attacks.inversion.protocol import _demo_result
>>> inversion_markdown(_demo_result()).splitlines()[2]
'| arm | images | relative L2 (lower: closer) | SSIM (higher: closer) | evaluator confidence |'
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from supjax_app.attacks.inversion.metrics import METRICS, Interval
from supjax_app.attacks.inversion.protocol import GROUPS, InversionResult

__all__ = ["inversion_markdown", "write_inversion_outputs"]

_SHOW_PER_GROUP = 6


def _npz_arrays(result: InversionResult) -> dict[str, np.ndarray]:
    s = result.settings
    arrays = {
        "arms": np.array(result.arms),
        "reference": np.array(result.reference),
        "indices": result.indices,
        "member": result.member,
        "labels": result.labels,
        "originals": result.originals,
        "reconstructions": result.reconstructions,
        "logits": result.logits,
        "original_logits": result.original_logits,
        "dead_targets": result.dead_targets,
        **{name: result.values[name] for name in METRICS},
    }
    for name in ("iters", "seed", "n_boot", "step_size", "start_scale", "ssim_data_range"):
        arrays[name] = np.array(s[name])
    arrays["weights"] = np.array(s["weights"], dtype=np.float64)
    arrays["bounds"] = np.array(s["bounds"], dtype=np.float64)
    return arrays


def _plot(result: InversionResult, path: Path, model: int = 0) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    member = result.member[model]
    cols = np.concatenate([np.flatnonzero(member)[:_SHOW_PER_GROUP], np.flatnonzero(~member)[:_SHOW_PER_GROUP]])
    rows = [("original", result.originals[model])] + [
        (name, result.reconstructions[a, model]) for a, name in enumerate(result.arms)
    ]
    low, high = result.settings["bounds"]
    fig = Figure(figsize=(1.1 * len(cols) + 0.8, 1.15 * len(rows) + 0.4))
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(rows), len(cols), squeeze=False)
    for r, (name, imgs) in enumerate(rows):
        for c, idx in enumerate(cols):
            ax = axes[r, c]
            img = np.clip(imgs[idx], low, high)
            if img.shape[-1] == 1:
                ax.imshow(img[..., 0], cmap="gray", vmin=low, vmax=high)
            else:
                ax.imshow((img - low) / (high - low))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                group = "member" if member[idx] else "non-member"
                ax.set_title(f"{group}\n#{result.indices[model, idx]}", fontsize=7)
            if c == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.suptitle(f"Image inversion from fc1 features, model {model}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return path


def write_inversion_outputs(result: InversionResult, out_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``inversion.npz`` (arrays to recompute every metric) and ``inversion.png``; return their paths.

    The npz holds no pickled objects: ``np.load(path)`` reads it. ``inversion.png`` shows,
    for model 0, up to 6 members and 6 non-members and their reconstruction under each arm.

    >>> import tempfile, numpy as np
    >>> from supjax_app.attacks.inversion.protocol import _demo_result
    >>> npz, png = write_inversion_outputs(_demo_result(), tempfile.mkdtemp())
    >>> sorted(np.load(npz))[:4], png.name
    (['arms', 'bounds', 'confidence', 'dead_targets'], 'inversion.png')
    """
    if not isinstance(result, InversionResult):
        raise TypeError(f"result must be an InversionResult, got {type(result).__name__}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    npz = out / "inversion.npz"
    np.savez_compressed(npz, **_npz_arrays(result))
    return npz, _plot(result, out / "inversion.png")


def _fmt(i: Interval, signed: bool = False) -> str:
    f = "{:+.3f}" if signed else "{:.3f}"
    return f"{f.format(i.mean)} [{f.format(i.low)}, {f.format(i.high)}]"


def inversion_markdown(result: InversionResult) -> str:
    """A compact Markdown report: arm x members/non-members (L2, SSIM, confidence, 95 % bootstrap
    intervals) and each arm's paired difference to the reference arm.

    >>> from supjax_app.attacks.inversion.protocol import _demo_result
    >>> print(inversion_markdown(_demo_result()).splitlines()[4][:22])
    | dense | members | 0.
    """
    if not isinstance(result, InversionResult):
        raise TypeError(f"result must be an InversionResult, got {type(result).__name__}")
    s = result.settings
    n_models = result.indices.shape[0]
    group_names = {"members": "members", "nonmembers": "non-members"}
    lines = [
        f"Image inversion of fc1 features: {n_models} model(s) per arm x {s['n_members']} members + "
        f"{s['n_nonmembers']} non-members, {s['iters']} iterations, loss weights {tuple(s['weights'])}; "
        "mean [95 % bootstrap interval over (model, image)].",
        "",
        "| arm | images | relative L2 (lower: closer) | SSIM (higher: closer) | evaluator confidence |",
        "|---|---|---|---|---|",
    ]
    for name in result.arms:
        for group in GROUPS:
            cells = " | ".join(_fmt(result.summary[name][group][k]) for k in METRICS)
            lines.append(f"| {name} | {group_names[group]} | {cells} |")
    others = [name for name in result.arms if name != result.reference]
    if others:
        lines += [
            "",
            f"| arm - {result.reference} (paired) | images | relative L2 | SSIM | evaluator confidence |",
            "|---|---|---|---|---|",
        ]
        for name in others:
            for group in GROUPS:
                cells = " | ".join(_fmt(result.paired[name][group][k], signed=True) for k in METRICS)
                lines.append(f"| {name} | {group_names[group]} | {cells} |")
    conf = result.original_confidence
    lines += [
        "",
        f"Evaluator confidence on the original images: members {_fmt(conf['members'])}, "
        f"non-members {_fmt(conf['nonmembers'])}.",
    ]
    dead = int(result.dead_targets.sum())
    if dead:
        lines.append(f"{dead} (arm, model, image) targets had all-zero features (feature term not normalised).")
    return "\n".join(lines) + "\n"
