"""Figures of a run: loss curves, forecasts against the truth with the context shaded, and
the weight-space figures of `warp_phys.analysis`. Every axis says what it shows and in
which units."""

from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import sympy as sp  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.colors import LogNorm, Normalize  # noqa: E402
from matplotlib.patches import Patch  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ._evaluate import predict  # noqa: E402
from ._normalise import Normaliser  # noqa: E402
from ._tasks import Forecast  # noqa: E402


def save_figure(fig, path: Path) -> Path:
    """Save `fig` to `path` (through a temporary file) and close it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    tmp.replace(path)
    return path


def _spans_decades(values) -> bool:
    """Log scale only where it is possible (all positive) and needed (a factor of 10 or more)."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    return bool(values.size) and values.min() > 0 and values.max() >= 10 * values.min()


def plot_losses(history: list[dict], path: Path) -> Path:
    """Training loss (top, in the model's normalised units) and the validation score
    (bottom: forecast MSE in the data's units, or accuracy for classification) per epoch,
    on their own axes; log scales where the values span decades; the best epoch (the one
    whose checkpoint is kept) marked on both."""
    fig, (ax_loss, ax_val) = plt.subplots(2, 1, figsize=(6.5, 5.2), sharex=True,
                                          layout="constrained")
    classify = any("val_accuracy" in h for h in history)
    train = [(h["epoch"], h["train_loss"]) for h in history
             if np.isfinite(h.get("train_loss", np.nan))]
    key = "val_accuracy" if classify else "val_mse"
    val = [(h["epoch"], h[key]) for h in history if key in h and np.isfinite(h[key])]
    naive = [(h["epoch"], h["val_naive_mse"]) for h in history
             if not classify and np.isfinite(h.get("val_naive_mse", np.nan))]

    if train:
        ax_loss.plot(*zip(*train), "C0", lw=1.2, marker="o" if len(train) < 30 else None, ms=3,
                     label="training loss")
    loss_unit = "cross-entropy" if classify else "normalised units"
    ax_loss.set(ylabel=f"training loss ({loss_unit})",
                yscale="log" if _spans_decades([v for _, v in train]) else "linear")

    if val:
        ax_val.plot(*zip(*val), "C1", lw=1.2, marker="o" if len(val) < 30 else None, ms=3,
                    label="validation accuracy" if classify else "validation MSE (forecast window)")
    if naive:  # the same validation set every epoch: one level
        ax_val.axhline(naive[-1][1], color="0.45", ls="--", lw=1,
                       label=f"naive forecast (last context value): {naive[-1][1]:.3g}")
    if classify:
        ax_val.set(ylabel="validation accuracy (fraction correct)", ylim=(-0.02, 1.02))
    else:
        shown = [v for _, v in val + naive]
        ax_val.set(ylabel="validation MSE (data units)",
                   yscale="log" if _spans_decades(shown) else "linear")
    for ax in (ax_loss, ax_val):
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax_loss.tick_params(labelbottom=True)
    recorded = [e for e, _ in train + val]
    if recorded and max(recorded) - min(recorded) < 2:  # a run of one or two epochs
        ax_loss.set_xlim(min(recorded) - 1, max(recorded) + 1)

    title = "training"
    if val:
        # The checkpoint kept is the first epoch with the best validation score.
        epochs, scores = np.array([e for e, _ in val]), np.array([v for _, v in val])
        at = int(np.argmax(scores) if classify else np.argmin(scores))
        best, score = int(epochs[at]), scores[at]
        for ax in (ax_loss, ax_val):
            ax.axvline(best, color="C3", ls=":", lw=1.2)
        ax_val.plot([best], [score], "*", color="C3", ms=11, zorder=3,
                    label=f"best epoch {best}: {score:.3g}")
        title = f"training: best epoch {best} of {max(e for e, _ in train + val)}"
    elif not history:
        ax_val.text(0.5, 0.5, "no epoch was recorded", ha="center", va="center",
                    transform=ax_val.transAxes)
    else:
        ax_val.text(0.5, 0.5, "no validation score was recorded", ha="center", va="center",
                    transform=ax_val.transAxes)
    ax_loss.set_title(title)
    for ax in (ax_loss, ax_val):
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_forecasts(model, data: dict, normaliser: Normaliser, path: Path, *, count: int = 3,
                   label: str = "model") -> Path:
    """Forecasts against truth for the first `count` trajectories of `test-id` and of the
    out-of-distribution split (`test-ood`, else `test-paper`, if `data` has one), context
    shaded."""
    splits = ["test-id"] + [s for s in ("test-ood", "test-paper") if s in data][:1]
    d = data["test-id"].y.shape[-1]
    fig, axes = plt.subplots(len(splits) * d, count, figsize=(3.6 * count, 2.3 * len(splits) * d),
                             squeeze=False, sharex=True)
    for s, split in enumerate(splits):
        dataset = data[split]
        x = normaliser(dataset.inputs[:count]).astype(np.float32)
        n, steps, _ = x.shape
        mean = normaliser.inverse(predict(model, x, Forecast().inference_mask(n, steps, dataset.context)))
        c = dataset.context
        times = dataset.extras.get("times", np.broadcast_to(dataset.t, dataset.y.shape[:2]))
        for j in range(count):
            for i in range(d):
                ax = axes[s * d + i, j]
                ax.set(xlabel="time t", ylabel=f"{dataset.state_names[i]} (data units)")
                ax.tick_params(labelbottom=True)
                if j >= n:  # fewer trajectories than panels
                    ax.text(0.5, 0.5, "no trajectory", ha="center", va="center",
                            transform=ax.transAxes)
                    continue
                t = times[j]  # its own sample times (irregular sampling), else the grid
                ax.axvspan(t[0], t[c - 1], color="grey", alpha=0.2)
                ax.plot(t, dataset.targets[j, :, i], "k", lw=1.2)
                ax.plot(t[1:], mean[j, :-1, i], "C1--", lw=1.2)
                params = ", ".join(f"{k}={v:.3g}"
                                   for k, v in zip(dataset.param_names, dataset.params[j]))
                ax.set_title(f"{split} #{j}: {params}", fontsize=7)
    handles = [plt.Line2D([], [], color="k", lw=1.2, label="truth"),
               plt.Line2D([], [], color="C1", ls="--", lw=1.2, label=f"{label} forecast"),
               Patch(color="grey", alpha=0.2, label="context (model reads the truth)")]
    axes[0, 0].legend(handles=handles, fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_parameters(report: dict, path: Path) -> Path:
    """Inferred against true physical parameters, one panel per inferred parameter, one
    colour per test split (`report` as from `warp_phys.parameter_report`)."""
    names = report["names"]
    summary = report.get("summary", {})
    fig, axes = plt.subplots(1, len(names), figsize=(3.4 * len(names), 3.4), squeeze=False)
    for i, name in enumerate(names):
        ax = axes[0, i]
        for c, (split, (true, inferred)) in enumerate(report["values"].items()):
            r2 = summary.get(split, {}).get(name, {}).get("r2")
            ax.scatter(true[:, i], inferred[:, i], s=6, alpha=0.6, color=f"C{c}",
                       label=split if r2 is None else f"{split} (R^2 = {r2:.3f})")
        low = min(v[:, i].min() for pair in report["values"].values() for v in pair)
        high = max(v[:, i].max() for pair in report["values"].values() for v in pair)
        ax.plot([low, high], [low, high], "k", lw=0.8, label="inferred = true")
        ax.set(xlabel=f"true {name}", ylabel=f"inferred {name}", title=name)
        ax.legend(fontsize=6)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_terms(recovered, path: Path) -> Path:
    """Each learned unknown term against its recovered expression, one panel per term,
    over its first input (`warp_phys.recover_term`)."""
    fig, axes = plt.subplots(1, len(recovered), figsize=(4.2 * len(recovered), 3.4),
                             squeeze=False)
    for ax, term in zip(axes[0], recovered):
        inputs, values = term.samples
        order = np.argsort(inputs[:, 0])
        fitted = sp.lambdify(term.inputs, term.expression, modules="numpy")(*inputs.T)
        fitted = np.broadcast_to(np.asarray(fitted, float), values.shape)
        ax.scatter(inputs[:, 0], values, s=3, alpha=0.4, label="learned network")
        ax.plot(inputs[order, 0], fitted[order], "k", lw=1, label="recovered expression")
        ax.set(xlabel=term.inputs[0].name, ylabel=term.name,
               title=f"{term.name}: misfit {term.relative_error:.1%}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return save_figure(fig, path)


def plot_distance(distance: np.ndarray, errors: dict[str, np.ndarray], path: Path, *,
                  title: str = "") -> Path:
    """Each test trajectory's forecast MSE against its distance from the training box, one
    colour per model, with each model's median in distance bins."""
    fig, ax = plt.subplots(figsize=(6.5, 4))
    edges = np.unique(np.quantile(distance, np.linspace(0, 1, 9)))
    for c, (model, err) in enumerate(errors.items()):
        shown = np.where(np.isfinite(err) & (err > 0), err, np.nan)
        ax.scatter(distance, shown, s=4, alpha=0.25, color=f"C{c}")
        centres, medians = [], []
        for low, high in zip(edges[:-1], edges[1:]):
            inside = (distance >= low) & (distance <= high) & np.isfinite(shown)
            if inside.any():
                centres.append((low + high) / 2)
                medians.append(np.median(shown[inside]))
        ax.plot(centres, medians, "-o", ms=3, color=f"C{c}", label=f"{model} (median per bin)")
    ax.set(xlabel="distance from the training box (in training-range widths)",
           ylabel="forecast MSE per trajectory (data units)", yscale="log",
           title=title or "forecast error against distance from the training box")
    ax.legend(fontsize=8, title="dots: one trajectory each", title_fontsize=7)
    return save_figure(fig, path)


# ------------------------------------------------------------------------------ weight space
# These take the arrays of `warp_phys.analysis` and return figures; nothing is saved.


# Counts of points per cell, from light to dark grey (white would vanish into the page).
_GREYS = matplotlib.colors.ListedColormap(plt.cm.Greys(np.linspace(0.15, 0.7, 128)))


def _picked(n: int, count: int) -> np.ndarray:
    """`count` indices spread evenly over `n` sequences (all of them when n <= count)."""
    if n <= count:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max(count, 1)).round().astype(int))


def pca_figure(pca, trajectories: dict, *, count: int = 32):
    """Weight trajectories on the first two principal axes (PC1 against tau when there is
    one axis), one row per split. Grey shading is the density of every step of every
    sequence of the split; on it at most `count` sequences per split (spread evenly over
    the split) are drawn as lines, coloured by time in the first column and by each true
    parameter in the others, on colour scales shared by the rows so out-of-distribution
    values stand out. An x marks each drawn sequence's first step."""
    splits = list(trajectories)
    first = trajectories[splits[0]]
    names = ["tau"] + list(first.param_names)
    fig, axes = plt.subplots(len(splits), len(names), figsize=(3.3 * len(names), 3.0 * len(splits)),
                             squeeze=False, sharex=True, sharey=True, layout="constrained")
    scores = {s: pca.transform(t.theta) for s, t in trajectories.items()}
    two = scores[splits[0]].shape[-1] >= 2
    planes = {}
    for split, traj in trajectories.items():
        xs = scores[split][..., 0]
        planes[split] = (xs, scores[split][..., 1] if two else np.broadcast_to(traj.tau, xs.shape))
    every_x = np.concatenate([p[0].ravel() for p in planes.values()])
    every_y = np.concatenate([p[1].ravel() for p in planes.values()])
    bins = [np.linspace(every_x.min(), every_x.max() + 1e-12, 61),
            np.linspace(every_y.min(), every_y.max() + 1e-12, 61)]
    ranges = [(min(t.params[:, i].min() for t in trajectories.values()),
               max(t.params[:, i].max() for t in trajectories.values()))
              for i in range(len(names) - 1)]
    tau_norm = Normalize(0, max(float(t.tau.max()) for t in trajectories.values()))
    norms = [tau_norm] + [Normalize(low, high if high > low else low + 1) for low, high in ranges]
    cmaps = ["plasma"] + ["viridis"] * (len(names) - 1)
    x_label = f"PC1 ({pca.explained_variance_ratio[0]:.0%} of variance)"
    y_label = (f"PC2 ({pca.explained_variance_ratio[1]:.0%} of variance)" if two
               else "tau (normalised time)")
    for r, split in enumerate(splits):
        traj, (xs, ys) = trajectories[split], planes[split]
        n, steps = xs.shape
        pick = _picked(n, count)
        density, *_ = np.histogram2d(xs.ravel(), ys.ravel(), bins=bins)
        density = np.ma.masked_equal(density.T, 0)
        lines = np.stack([xs[pick], ys[pick]], axis=-1)  # (m, S, 2)
        for c, name in enumerate(names):
            ax = axes[r, c]
            if density.count():
                ax.pcolormesh(bins[0], bins[1], density, cmap=_GREYS, zorder=0, rasterized=True,
                              norm=LogNorm(1, max(density.max(), 2)))
            if c == 0:  # colour along each line by tau: one segment per step
                segments = np.stack([lines[:, :-1], lines[:, 1:]], axis=2).reshape(-1, 2, 2)
                values = np.broadcast_to(traj.tau[:-1], (len(pick), steps - 1)).ravel()
            else:
                segments, values = lines, traj.params[pick, c - 1]
            collection = LineCollection(segments, array=values, cmap=cmaps[c], norm=norms[c],
                                        lw=0.6, alpha=0.9, zorder=2)
            collection.set_gid("trajectories")
            ax.add_collection(collection)
            ax.scatter(lines[:, 0, 0], lines[:, 0, 1], marker="x", s=12, c="k", lw=0.6, zorder=3)
            if r == 0:
                label = "tau (normalised time)" if c == 0 else f"true {name}"
                fig.colorbar(plt.cm.ScalarMappable(norms[c], cmaps[c]), ax=axes[:, c], shrink=0.8,
                             aspect=40, location="bottom", label=label)
            ax.set_title(f"{split}: {len(pick)} of {n} sequences, colour: {name}", fontsize=7)
            ax.set_xlabel(x_label, fontsize=7)
            ax.set_ylabel(y_label, fontsize=7)
    total = {s: trajectories[s].theta.shape[0] for s in splits}
    steps = first.theta.shape[1]
    fig.suptitle(
        f"Weight trajectories on the training PCA axes: lines are at most {count} sequences per "
        f"split (of {', '.join(f'{v} {s}' for s, v in total.items())}), x = first step;\n"
        f"grey density = every one of the {steps} kept steps of every sequence of the split",
        fontsize=9)
    return fig


def probe_figure(result: dict):
    """R^2 of the linear probe (`warp_phys.analysis.probe`) against the number of principal
    components it reads, one panel per split, one line per parameter. The region R^2 <= 0
    (no better than predicting the training mean) is shaded; values below -1 are drawn at
    -1 as downward triangles."""
    splits = list(result["r2"])
    fig, axes = plt.subplots(1, len(splits), figsize=(3.9 * len(splits), 3.6), squeeze=False,
                             sharey=True, layout="constrained")
    lowest = min(float(np.nanmin(r)) if np.isfinite(r).any() else 0.0
                 for r in result["r2"].values())
    bottom = max(-1.0, min(lowest, 0.0) - 0.05)
    bottom = min(bottom, -0.25)  # so the shaded region shows even when every R^2 is positive
    components = np.asarray(result["components"])
    for ax, split in zip(axes[0], splits):
        r2 = result["r2"][split]
        ax.axhspan(bottom - 1, 0, color="C3", alpha=0.12, lw=0, zorder=0)
        ax.axhline(0, color="C3", lw=0.8)
        ax.axhline(1, color="0.6", lw=0.6, ls=":")
        for i, name in enumerate(result["names"]):
            shown = np.maximum(r2[:, i], bottom)
            ax.plot(components, shown, "-o", ms=3, color=f"C{i}", label=name)
            clipped = r2[:, i] < bottom
            if clipped.any():
                ax.plot(components[clipped], shown[clipped], "v", ms=6, color=f"C{i}")
        note = "R^2 <= 0 (shaded): no better than\npredicting the training mean"
        if np.any(r2 < bottom):
            note += f"\nv: below {bottom:g}, drawn at the edge"
        ax.text(0.03, 0.04, note, transform=ax.transAxes, fontsize=7, color="C3", va="bottom")
        ax.set(xlabel="principal components read (leading j)",
               ylabel="R^2 of the true parameter", ylim=(bottom, 1.05),
               title=f"{split}, theta at step {result['step']}")
        ax.set_xscale("log")
        ax.set_xticks(components, [str(j) for j in components])
        ax.minorticks_off()
    fig.legend(*axes[0, 0].get_legend_handles_labels(), loc="outside right center", fontsize=7,
               title="parameter", title_fontsize=7)
    fig.suptitle("Linear probe: true parameters from the leading principal components of theta "
                 "(1 = fully predicted)", fontsize=9)
    return fig


def weights_figure(trajectories, correlation: np.ndarray, *, count: int = 6, sequences: int = 3):
    """Left: the `count` weights that vary most, against tau, for the first `sequences`
    sequences (one colour per weight, one line style per sequence), the context shaded.
    Right: the correlation of every weight with tau (the paper's readout figure)."""
    fig, (ax, ax_corr) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [3, 2]})
    theta = trajectories.theta
    top = np.argsort(theta.var(axis=(0, 1)))[::-1][:count]
    context_tau = trajectories.tau[np.searchsorted(trajectories.steps, trajectories.context - 1)]
    ax.axvspan(trajectories.tau[0], context_tau, color="grey", alpha=0.2)
    for s, style in zip(range(min(sequences, len(theta))), ["-", "--", ":"]):
        for c, j in enumerate(top):
            ax.plot(trajectories.tau, theta[s, :, j], style, color=f"C{c}", lw=1,
                    label=f"theta[{j}]" if s == 0 else None)
    ax.set(xlabel="tau (normalised time)", ylabel="weight value theta[j]",
           title=f"{trajectories.split}: the {count} weights that vary most "
           "(line style: sequence; grey: context)")
    ax.legend(fontsize=6, ncol=2)
    ax_corr.hist(correlation, bins=np.linspace(-1, 1, 41), color="C0")
    ax_corr.set(xlabel="correlation of theta[j] with tau (Pearson r)", ylabel="number of weights",
                title=f"{np.mean(np.abs(correlation) > 0.9):.0%} of weights have |r| > 0.9")
    fig.tight_layout()
    return fig


def matrices_figure(matrices: dict):
    """A - I and B (what training changed; A starts at the identity, B at zero) and the
    eigenvalues of A against the unit circle."""
    A, B, eig = matrices["A"], matrices["B"], matrices["eigenvalues"]
    fig, (ax_a, ax_b, ax_e) = plt.subplots(1, 3, figsize=(13, 4.2),
                                           gridspec_kw={"width_ratios": [4, 1.3, 3]})
    delta = A - np.eye(len(A))
    bound = np.abs(delta).max() or 1.0
    image = ax_a.imshow(delta, cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
    fig.colorbar(image, ax=ax_a, shrink=0.8, label="entry of A - I")
    ax_a.set(title=f"A - I  ({len(A)} x {len(A)})", xlabel="column j (theta_k[j])",
             ylabel="row i (theta_k+1[i])")
    bound = np.abs(B).max() or 1.0
    image = ax_b.imshow(B, cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto",
                        interpolation="nearest")
    fig.colorbar(image, ax=ax_b, shrink=0.8, label="entry of B")
    ax_b.set(title=f"B  ({B.shape[0]} x {B.shape[1]})", xlabel="input x_k[j]",
             ylabel="row i (theta_k+1[i])")
    ax_b.set_xticks(np.arange(B.shape[1]))
    circle = np.exp(1j * np.linspace(0, 2 * np.pi, 200))
    ax_e.plot(circle.real, circle.imag, "k", lw=0.6, label="unit circle")
    ax_e.scatter(eig.real, eig.imag, s=5, alpha=0.6, label="eigenvalues")
    ax_e.set(aspect="equal", xlabel="Re(lambda)", ylabel="Im(lambda)",
             title=f"eigenvalues of A (largest |lambda| = {np.abs(eig).max():.4f})")
    ax_e.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig
