"""Attention figures from a trained model: squares on test images (Figs. 9–11) and maps (Fig. 8)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from phanet.data.classes import expression_legend
from phanet.data.records import LabeledFaces
from phanet.data.transforms import preprocess
from phanet.inference import TrainedModel
from phanet.reports.figures import attention_maps_figure, attention_squares_figure


def pick_examples(faces: LabeledFaces, count: int = 12, seed: int = 0) -> list[int]:
    """Sample indices spread over expressions and poses (round robin over the (expression, pose) cells)."""
    rng = np.random.default_rng(seed)
    cells: dict[tuple[int, int], list[int]] = {}
    for i, s in enumerate(faces.samples):
        cells.setdefault((s.expression, s.pose), []).append(i)
    keys = sorted(cells)
    rng.shuffle(keys)
    chosen: list[int] = []
    while len(chosen) < min(count, len(faces)):
        for key in keys:
            pool = [i for i in cells[key] if i not in chosen]
            if pool and len(chosen) < count:
                chosen.append(int(rng.choice(pool)))
        if all(not [i for i in cells[k] if i not in chosen] for k in keys):
            break
    return sorted(chosen, key=lambda i: (faces.samples[i].expression, faces.samples[i].pose))


def _to_image(tensor: torch.Tensor, mean: float, std: float) -> np.ndarray:
    array = (tensor.detach().float().cpu().permute(1, 2, 0).numpy() * std + mean).clip(0, 1)
    return (array * 255).round().astype(np.uint8)


def attention_figures(
    model: TrainedModel, faces: LabeledFaces, indices: list[int], out: Path, prefix: str = ""
) -> dict[str, Path]:
    """Write ``attention_squares.png`` and ``attention_maps.png`` for the samples ``indices``."""
    info = model.info
    images = [faces.load_image(i) for i in indices]
    batch = torch.stack([preprocess(image, info.input_size) for image in images])
    output = model.forward(batch, return_maps=True, return_crops=True)
    shown = [_to_image(x, info.mean, info.std) for x in batch]
    titles = []
    for i, index in enumerate(indices):
        sample = faces.samples[index]
        predicted = model.expressions[int(output.expression_logits[i].argmax())]
        pose = faces.poses[sample.pose] + "°" if sample.pose >= 0 else "?"
        titles.append(f"{faces.expressions[sample.expression]} {pose} → {predicted}")
    crops: list[list[np.ndarray | None]] | None = None
    if output.crops is not None:
        crops = [
            [_to_image(c[i], info.mean, info.std) if c is not None else None for c in output.crops] for i in range(len(indices))
        ]
    boxes = output.boxes.detach().cpu().numpy()
    codes = expression_legend(sorted(set(faces.expressions) | set(model.expressions)))
    caption = "Above each face: its true expression and yaw → the expression PhaNet predicted" + (f"\n({codes})" if codes else "")
    squares = out / f"{prefix}attention_squares.png"
    paths = {"squares": attention_squares_figure(shown, boxes, titles, squares, crops, caption=f"S2 red, S3 yellow. {caption}")}
    if output.cams is not None:
        inputs: list[list[np.ndarray | None]] = [[shown[i], *(crops[i] if crops else (None, None))] for i in range(len(indices))]
        maps = [[m[i].cpu().numpy() if m is not None else None for m in output.cams] for i in range(len(indices))]
        rows = min(6, len(indices))
        maps_path = out / f"{prefix}attention_maps.png"
        paths["maps"] = attention_maps_figure(inputs[:rows], maps[:rows], titles[:rows], maps_path, caption=caption)
    return paths
