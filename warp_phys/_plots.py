"""Figures of a run: loss curves, and forecasts against the truth with the context shaded."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ._evaluate import Normaliser, inference_mask, predict  # noqa: E402


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def plot_losses(history: list[dict], path: Path) -> Path:
    """Training loss and validation error per epoch (log scale)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h["train_loss"] for h in history], label="train loss")
    val = [(h["epoch"], h.get("val_mse", 1 - h.get("val_accuracy", np.nan))) for h in history
           if "val_mse" in h or "val_accuracy" in h]
    if val:
        ax.plot(*zip(*val), label="val forecast MSE" if "val_mse" in history[-1] else "val error rate")
    ax.set(xlabel="epoch", yscale="log", title="training")
    ax.legend()
    return _save(fig, path)


def plot_forecasts(model, data: dict, normaliser: Normaliser, path: Path, *, count: int = 3,
                   label: str = "model") -> Path:
    """Forecasts against truth for the first `count` trajectories of `test-id` and of the
    out-of-distribution split (`test-ood`, else `test-paper`), context shaded."""
    ood = "test-ood" if "test-ood" in data else "test-paper"
    splits = ["test-id", ood]
    d = data["test-id"].y.shape[-1]
    fig, axes = plt.subplots(len(splits) * d, count, figsize=(3.6 * count, 2.2 * len(splits) * d),
                             squeeze=False, sharex=True)
    for s, split in enumerate(splits):
        dataset = data[split]
        x = normaliser(dataset.inputs[:count]).astype(np.float32)
        n, steps, _ = x.shape
        mean = normaliser.inverse(predict(model, x, inference_mask("forecast", n, steps, dataset.context)))
        t, c = dataset.t, dataset.context
        for j in range(n):
            for i in range(d):
                ax = axes[s * d + i, j]
                ax.axvspan(t[0], t[c - 1], color="grey", alpha=0.2)
                ax.plot(t, dataset.targets[j, :, i], "k", lw=1.2, label="truth")
                ax.plot(t[1:], mean[j, :-1, i], "C1--", lw=1.2, label=label)
                params = ", ".join(f"{k}={v:.3g}" for k, v in zip(dataset.param_names, dataset.params[j]))
                ax.set_title(f"{split}: {params}", fontsize=7)
                ax.set_ylabel(dataset.state_names[i])
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_parameters(report: dict, path: Path) -> Path:
    """Inferred against true physical parameters, one panel per inferred parameter, one
    colour per test split (`report` as from `warp_phys.parameter_report`)."""
    names = report["names"]
    fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3.2), squeeze=False)
    for i, name in enumerate(names):
        ax = axes[0, i]
        for c, (split, (true, inferred)) in enumerate(report["values"].items()):
            ax.scatter(true[:, i], inferred[:, i], s=6, alpha=0.6, color=f"C{c}", label=split)
        low = min(v[:, i].min() for pair in report["values"].values() for v in pair)
        high = max(v[:, i].max() for pair in report["values"].values() for v in pair)
        ax.plot([low, high], [low, high], "k", lw=0.8)
        ax.set(xlabel=f"true {name}", ylabel=f"inferred {name}")
    axes[0, 0].legend(fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_distance(distance: np.ndarray, errors: dict[str, np.ndarray], path: Path, *,
                  title: str = "") -> Path:
    """Each test trajectory's forecast MSE against its distance from the training box, one
    colour per model, with each model's median in distance bins."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    edges = np.unique(np.quantile(distance, np.linspace(0, 1, 9)))
    for c, (model, err) in enumerate(errors.items()):
        shown = np.where(np.isfinite(err), err, np.nan)
        ax.scatter(distance, shown, s=4, alpha=0.25, color=f"C{c}")
        centres, medians = [], []
        for low, high in zip(edges[:-1], edges[1:]):
            inside = (distance >= low) & (distance <= high)
            if inside.any():
                centres.append((low + high) / 2)
                medians.append(np.nanmedian(shown[inside]))
        ax.plot(centres, medians, "-o", ms=3, color=f"C{c}", label=model)
    ax.set(xlabel="distance from the training box (in training-range widths)",
           ylabel="forecast MSE per trajectory", yscale="log", title=title)
    ax.legend(fontsize=8)
    return _save(fig, path)
