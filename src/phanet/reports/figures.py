"""Paper-style figures (PNG) computed from runs: confusion matrices, per-pose accuracy, attended
squares and attention maps, scale weights and λ over epochs, t-SNE of the joint representation."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.patches import Rectangle

from phanet.data.classes import expression_word
from phanet.files import atomic_write

#: Colours of the S1, S2, S3 squares, used in every attention figure.
SCALE_COLOURS = ("#ffffff", "#ff3b30", "#ffcc00")


def _save(fig: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    try:
        atomic_write(
            path, lambda handle: fig.savefig(handle, format=path.suffix.lstrip(".") or "png", dpi=120, bbox_inches="tight")
        )
    finally:
        plt.close(fig)
    return path


def spelled_out(classes: Sequence[str]) -> list[str]:
    """Class names with the word each expression code stands for: ``AN anger``; other names as they are."""
    return [f"{name} {expression_word(name)}" if expression_word(name) != name else name for name in classes]


def _epochs(metrics: pd.DataFrame) -> pd.Series:
    """Where each metrics row lies on an epoch axis: at the end of its epoch, or part-way into it for an
    epoch that ``train.max_minutes`` cut short (``epoch_fraction`` below 1)."""
    fraction = metrics["epoch_fraction"].fillna(1.0) if "epoch_fraction" in metrics else 1.0
    return metrics["epoch"] + fraction


def _mark_cut_epoch(ax: plt.Axes, metrics: pd.DataFrame) -> None:
    """A dotted line where a run was cut short in its last epoch, named in the legend."""
    if "epoch_fraction" in metrics and len(metrics) and metrics["epoch_fraction"].iloc[-1] < 1:
        ax.axvline(_epochs(metrics).iloc[-1], color="grey", linestyle=":", label="time limit (train.max_minutes)")


def confusion_matrix_figure(
    matrix: Sequence[Sequence[float]],
    classes: Sequence[str],
    path: str | Path,
    title: str = "",
    xlabel: str = "predicted",
    ylabel: str = "true",
) -> Path:
    """Figs. 5a, 6, 7: a row-normalised confusion matrix with the rates written in the cells."""
    counts = np.asarray(matrix, dtype=float)
    rates = counts / np.clip(counts.sum(1, keepdims=True), 1, None)
    size = max(3.5, 0.55 * len(classes) + 1.5)
    fig, ax = plt.subplots(figsize=(size, size * 0.9))
    image = ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    names = spelled_out(classes)
    ax.set_xticks(
        range(len(classes)),
        names,
        rotation=45 if max(map(len, names)) > 3 else 0,
        ha="right" if max(map(len, names)) > 3 else "center",
    )
    ax.set_yticks(range(len(classes)), names)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    for i in range(len(classes)):
        for j in range(len(classes)):
            ax.text(
                j, i, f"{rates[i, j]:.2f}", ha="center", va="center", fontsize=8, color="white" if rates[i, j] > 0.5 else "black"
            )
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def per_pose_accuracy_figure(per_pose: dict[str, dict[str, float]], path: str | Path, title: str = "") -> Path:
    """Fig. 5b: expression accuracy (%, on a 0–100 axis) under each pose, one line per method (``per_pose``
    holds fractions)."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for method, values in per_pose.items():
        poses = list(values)
        ax.plot(range(len(poses)), [100 * values[p] for p in poses], marker="o", label=method)
        ax.set_xticks(range(len(poses)), [f"{p}°" for p in poses])
    ax.set_xlabel("yaw angle")
    ax.set_ylabel("FER accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return _save(fig, path)


def _draw_square(ax: plt.Axes, box: Sequence[float], size: int, colour: str) -> None:
    x, y, half = box
    if any(math.isnan(v) for v in (x, y, half)):
        return
    ax.add_patch(
        Rectangle(
            ((x - half) * size, (y - half) * size), 2 * half * size, 2 * half * size, fill=False, edgecolor=colour, linewidth=1.6
        )
    )


def attention_squares_figure(
    images: Sequence[np.ndarray],
    boxes: np.ndarray,
    titles: Sequence[str],
    path: str | Path,
    crops: Sequence[Sequence[np.ndarray | None]] | None = None,
    columns: int = 6,
    caption: str = "",
) -> Path:
    """Figs. 9–11: the S2 (red) and S3 (yellow) squares on each image; with ``crops``, the zoomed
    S2 and S3 regions below each image. ``boxes`` is (N, 2, 3) in normalised image coordinates;
    ``caption`` is written above the panels (what their titles say)."""
    n = len(images)
    columns = min(columns, n)
    rows_per = 3 if crops is not None else 1
    grid_rows = math.ceil(n / columns) * rows_per
    fig, axes = plt.subplots(grid_rows, columns, figsize=(1.8 * columns, 1.9 * grid_rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for i, image in enumerate(images):
        r, c = (i // columns) * rows_per, i % columns
        ax = axes[r, c]
        ax.imshow(image)
        for s in range(2):
            _draw_square(ax, boxes[i, s], image.shape[0], SCALE_COLOURS[s + 1])
        ax.set_title(titles[i], fontsize=7)
        if crops is not None:
            for s in range(2):
                crop = crops[i][s]
                if crop is not None:
                    axes[r + 1 + s, c].imshow(crop)
                    axes[r + 1 + s, c].set_title(f"S{s + 2}", fontsize=7, color="black")
    if caption:
        fig.suptitle(caption, fontsize=8)
    return _save(fig, path)


def attention_maps_figure(
    images: Sequence[Sequence[np.ndarray | None]],
    maps: Sequence[Sequence[np.ndarray | None]],
    titles: Sequence[str],
    path: str | Path,
    caption: str = "",
) -> Path:
    """Fig. 8: for each sample, the input of every scale with its response map laid over it: the class
    activation map of the scale's predicted expression (its classifier's weights over the channels of the
    last convolutional map), each scaled from its own minimum (0) to its maximum (1), as the colour bar shows."""
    n = len(images)
    fig, axes = plt.subplots(n, 3, figsize=(5.4, 1.9 * n), squeeze=False)
    shown = None
    for i in range(n):
        for s in range(3):
            ax = axes[i, s]
            ax.axis("off")
            image, response = images[i][s], maps[i][s]
            if image is None or response is None:
                continue
            ax.imshow(image)
            normalised = (response - response.min()) / (np.ptp(response) + 1e-8)
            shown = ax.imshow(
                normalised,
                cmap="inferno",
                alpha=0.55,
                vmin=0,
                vmax=1,
                interpolation="bilinear",
                extent=(-0.5, image.shape[1] - 0.5, image.shape[0] - 0.5, -0.5),
            )
            ax.set_title(f"S{s + 1}" + (f" — {titles[i]}" if s == 0 else ""), fontsize=7)
    if shown is not None:
        bar = fig.colorbar(shown, ax=axes.ravel().tolist(), fraction=0.03, pad=0.02)
        bar.set_label("class activation map (per image: min 0, max 1)", fontsize=7)
        bar.ax.tick_params(labelsize=6)
    if caption:
        fig.suptitle(caption, fontsize=7)
    return _save(fig, path)


def scale_weights_figure(metrics: pd.DataFrame, path: str | Path, part: str = "train", title: str = "") -> Path:
    """Fig. 12 (``part="train"``: c1..c3 and the training loss per epoch) and Fig. 13
    (``part="val"``: c1..c3 and the FER accuracy in % on held-out data per epoch). Each weight's spread
    over the faces (± one standard deviation, ``<part>/c<i>_std``) is shaded where it was logged. An
    epoch cut short by the time limit is drawn where it stopped, part-way along the axis. The legend
    lies below the panel, where it covers no curve."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    epochs = _epochs(metrics)
    styles = ("-", "--", ":")
    shaded = False
    for i in range(3):
        column = f"{part}/c{i + 1}"
        if column in metrics and metrics[column].notna().any():
            colour = ("black", "tab:blue", "goldenrod")[i]
            ax.plot(epochs, metrics[column], styles[i], color=colour, marker=".", label=f"c{i + 1} (S{i + 1})")
            if f"{column}_std" in metrics:
                spread = metrics[f"{column}_std"].fillna(0)
                ax.fill_between(epochs, metrics[column] - spread, metrics[column] + spread, color=colour, alpha=0.15)
                shaded = True
    if shaded:
        ax.fill_between([], [], color="grey", alpha=0.3, label="± one std of the weight over the faces")
    _mark_cut_epoch(ax, metrics)
    ax.set_xlabel("epoch")
    ax.set_ylabel("scale attention weight")
    ax.set_xlim(0, max(1, math.ceil(float(epochs.max()))) if len(metrics) else 1)
    other = ax.twinx()
    second = f"{part}/loss" if part == "train" else f"{part}/expression_acc"
    if second in metrics:
        label = "training loss" if part == "train" else "FER accuracy (%)"
        values = metrics[second] if part == "train" else 100 * metrics[second]
        other.plot(epochs, values, color="tab:red", alpha=0.7, marker=".", label=label)
        other.set_ylabel(label)
        if part != "train":
            other.set_ylim(0, 100)
    lines = ax.get_legend_handles_labels()
    more = other.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=3)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    return _save(fig, path)


def task_weights_figure(runs: dict[str, pd.DataFrame], path: str | Path, title: str = "") -> Path:
    """Fig. 15: (a) λe and λp per epoch, (b) expression and pose accuracy per epoch, one style per
    run (e.g. with and without the constraint factor)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.5))
    for k, (name, metrics) in enumerate(runs.items()):
        epochs = _epochs(metrics)
        style = ("-", "--", ":")[k % 3]
        # λe wide and pale, λp narrow with markers on top: both stay visible where they coincide
        # (λe = λp = 0.5 once the constraint factor holds λp at its bound).
        left.plot(epochs, metrics["train/lambda_e"], style, color="tab:orange", linewidth=4, alpha=0.55, label=f"λe ({name})")
        left.plot(
            epochs,
            metrics["train/lambda_p"],
            style,
            color="tab:blue",
            linewidth=1.2,
            marker="o",
            markersize=2.5,
            label=f"λp ({name})",
        )
        right.plot(epochs, 100 * metrics["val/expression_acc"], style, color="tab:orange", label=f"expression ({name})")
        if "val/pose_acc" in metrics:
            right.plot(epochs, 100 * metrics["val/pose_acc"], style, color="tab:blue", label=f"pose ({name})")
    left.set_xlabel("epoch")
    left.set_ylabel("dynamic weight")
    left.set_ylim(-0.03, 1.03)  # a weight at 0 or 1 stays in view
    right.set_xlabel("epoch")
    right.set_ylabel("accuracy on validation subjects (%)")
    right.set_ylim(0, 100)
    prefix = f"{title}: " if title else ""
    for ax, caption in (
        (left, "(a) " + prefix + "λe and λp per epoch"),
        (right, "(b) " + prefix + "validation accuracy per epoch"),
    ):
        ax.grid(alpha=0.3)
        # below the panel: weights and accuracies may lie anywhere in it (at 0, 0.5 and 1 for λ)
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=2)
        ax.set_title(caption, fontsize=9)
    return _save(fig, path)


def local_squares_figure(
    runs: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], classes: Sequence[str], path: str | Path
) -> Path:
    """Where each run's PANs put their squares, by true expression: one column per run, the S2 square's
    centre in the image (top) and the S3 square's centre in the zoomed S2 square (bottom).

    ``runs``: name → (S2 squares (N, 3) in image coordinates, S3 squares (N, 3) in S2's coordinates,
    true expression indices (N,)). Marker area follows the square's side.
    """
    fig, axes = plt.subplots(2, len(runs), figsize=(3.4 * len(runs), 6.6), squeeze=False)
    colours = plt.get_cmap("tab10")
    for column, (name, (s2, s3, labels)) in enumerate(runs.items()):
        order = np.random.default_rng(0).permutation(len(labels))  # no class drawn over all the others
        dots = [colours(int(k) % 10) for k in labels[order]]
        for row, (boxes, where) in enumerate(((s2, "S2 centre in the image"), (s3, "S3 centre in the S2 square"))):
            ax = axes[row, column]
            ax.scatter(boxes[order, 0], boxes[order, 1], s=24 * boxes[order, 2] / 0.3, alpha=0.4, c=dots, linewidths=0)
            ax.set(xlim=(0, 1), ylim=(1, 0), aspect="equal", title=f"{name}\n{where}" if row == 0 else where)
            ax.tick_params(labelsize=7)
    handles = [
        plt.Line2D([], [], marker="o", linestyle="", color=colours(k % 10), label=label)
        for k, label in enumerate(spelled_out(classes))
    ]
    axes[0, -1].legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1))
    return _save(fig, path)


def tsne_figure(embeddings: dict[str, tuple[np.ndarray, np.ndarray]], classes: Sequence[str], path: str | Path) -> Path:
    """Fig. 14: 2-D t-SNE embeddings coloured by expression, one panel per representation."""
    fig, axes = plt.subplots(1, len(embeddings), figsize=(5 * len(embeddings), 4.2), squeeze=False)
    colours = plt.get_cmap("tab10")
    for ax, (name, (points, labels)) in zip(axes[0], embeddings.items()):
        for k, cls in enumerate(spelled_out(classes)):
            mask = labels == k
            ax.scatter(points[mask, 0], points[mask, 1], s=5, color=colours(k % 10), label=cls)
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[0, -1].legend(fontsize=7, markerscale=2, loc="best")
    return _save(fig, path)


def _per_scale_bands(ax: plt.Axes, table: pd.DataFrame, name: str, title: str) -> None:
    """``sal/<name><i>_mean`` ± ``_std`` over the training steps for each recorded scale i."""
    step = table["step"].to_numpy()
    for i in range(1, 4):
        if f"sal/{name}{i}_mean" in table:
            mean, std = table[f"sal/{name}{i}_mean"].to_numpy(), table[f"sal/{name}{i}_std"].to_numpy()
            ax.plot(step, mean, label=f"{name}{i}", linewidth=1)
            ax.fill_between(step, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("training step")
    ax.set_title(title)


def training_dynamics_figure(dynamics: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """The ``dynamics.csv`` of a run (``train.dynamics``): (a) gradient norm per parameter group,
    (b) which loss part drives the S1 network, (c) SAL's pre-activations z per scale (mean ± std over
    the batch) with the kink of Eq. 7's ReLU at 0, (d) the scale weights c (mean ± std) and λp. Exact
    zeros (no gradient at all) are left out of the logarithmic panels."""
    table = dynamics.sort_values("step")
    step = table["step"].to_numpy()
    fig, axes = plt.subplots(2, 2, figsize=(12, 7.5))
    ax = axes[0, 0]
    palette = plt.get_cmap("tab20")(np.arange(20))
    for k, column in enumerate(sorted(c for c in table if c.startswith("grad/") and c.count("/") == 1)):
        ax.plot(
            step,
            table[column].where(table[column] > 0),
            label=column[5:],
            linewidth=1,
            color=palette[k % len(palette)],
            linestyle=("-", "--")[k // len(palette) % 2],
        )
    ax.set_yscale("log")
    ax.set_ylabel("gradient norm (before clipping)")
    ax.set_title("(a) gradient per parameter group")
    ax = axes[0, 1]
    for column in sorted(c for c in table if c.startswith("grad/") and c.endswith("/S1_backbone") and c.count("/") == 2):
        if (table[column] > 0).any():
            ax.plot(step, table[column].where(table[column] > 0), label=column.split("/")[1], linewidth=1)
    ax.set_yscale("log")
    ax.set_ylabel("gradient norm on the S1 backbone")
    ax.set_title("(b) S1 backbone: gradient from each loss part (parts with none left out)")
    ax = axes[1, 0]
    _per_scale_bands(ax, table, "z", "(c) SAL pre-activations, batch mean ± std")
    ax.axhline(0, color="black", linewidth=0.8, linestyle=":")
    ax.set_ylabel("SAL pre-activation (W2 ReLU(W1 M_F))")
    ax = axes[1, 1]
    _per_scale_bands(ax, table, "c", "(d) scale weights c (mean ± std) and λp")
    if "lambda_p_mean" in table:
        ax.plot(step, table["lambda_p_mean"], label="λp", color="black", linestyle="--", linewidth=1)
    ax.set_ylim(-0.02, 1.02)
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6 if ax is axes[0, 0] else 7, ncol=2 if ax is axes[0, 0] else 1)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)
