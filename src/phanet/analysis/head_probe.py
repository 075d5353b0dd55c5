"""Is what a trained PhaNet knows read out by its heads? Linear probes against the network's own classifiers.

For a run folder (its best checkpoint, its data and its subject-independent split), on the
network's features of the training and test images:

- **the head as trained**: the network's own expression and pose accuracy (evaluation mode, the
  images unaugmented);
- **linear probes**: a logistic regression per representation — each scale's pooled map M_s, the
  SAL output f (Eq. 8) and the DCML head's hidden layer — fitted on the training images and
  scored on the test images;
- **the head's classifiers refitted**: only the DCML head's two final linear layers trained again,
  on the frozen hidden features of the augmented training images (the run's flip and jitter), with
  the run's optimiser (Adam at ``optim.lr``, its weight decay), batch ``train.batch_size``, for
  ``--epochs`` epochs.

When a probe on the hidden layer reads a task better than the head that sits on that layer, or a
few epochs of the head alone on frozen features close the gap, the representation holds the
information and the joint training left the final classifier behind.

    python benchmarks/head_probe.py runs/demo/phanet
    python benchmarks/head_probe.py runs/demo/phanet --limit 3000 --epochs 5
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from phanet.data.datasets import FaceDataset
from phanet.training.module import PhaNetModule
from phanet.training.run import load_module
from phanet.workflow import resolve_eval_data

REPRESENTATIONS = ("M1", "M2", "M3", "f", "hidden")


def features(
    module: PhaNetModule, part: str, limit: int | None, augment: bool, seed: int = 0, batch_size: int = 64
) -> dict[str, torch.Tensor]:
    """Pooled maps, f, the head's hidden layer, the head's logits, the labels and the intensities of
    ``part``'s images (at most ``limit``, a fixed random subset)."""
    faces, _ = resolve_eval_data(module.config, None, None, [], part)
    dataset = FaceDataset(faces, module.config.model.input_size or module.config.model.image_size)
    order = np.random.default_rng(seed).permutation(len(dataset))[:limit]
    torch.manual_seed(seed)
    rows: dict[str, list[torch.Tensor]] = {}
    head = module.model.head
    for start in range(0, len(order), batch_size):
        chunk = order[start : start + batch_size].tolist()
        batch = module.prepare_batch(dataset.__getitems__(chunk), train=augment)
        with torch.no_grad():
            hpal = module.model.forward_features(batch["image"])
            output = module.model.forward_head(hpal)
            values = {f"M{s + 1}": pooled for s, pooled in enumerate(hpal["pooled"])}
            values.update(
                f=output.features,
                hidden=F.relu(head.fc(output.features)),
                expression_logits=output.expression_logits,
                pose_logits=output.pose_logits,
                expression=batch["expression"],
                pose=batch["pose"],
                intensity=torch.tensor([faces.samples[i].intensity for i in chunk]),
            )
        for key, value in values.items():
            rows.setdefault(key, []).append(value.float() if value.is_floating_point() else value)
    return {key: torch.cat(value) for key, value in rows.items()}


def _accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return float((logits.argmax(1) == labels).float().mean())


def probe(train: dict[str, torch.Tensor], test: dict[str, torch.Tensor]) -> list[dict]:
    """A logistic regression per representation and task: train and test accuracy."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    rows = []
    for name in REPRESENTATIONS:
        scaler = StandardScaler().fit(train[name].numpy())
        x_train, x_test = scaler.transform(train[name].numpy()), scaler.transform(test[name].numpy())
        for task in ("expression", "pose"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # convergence warnings: the score is what is reported
                model = LogisticRegression(max_iter=2000).fit(x_train, train[task].numpy())
            rows.append(
                {
                    "readout": f"probe on {name}",
                    "task": task,
                    "train": model.score(x_train, train[task].numpy()),
                    "test": model.score(x_test, test[task].numpy()),
                }
            )
    return rows


def refit_head(
    module: PhaNetModule, train: dict[str, torch.Tensor], test: dict[str, torch.Tensor], epochs: int, seed: int = 0
) -> list[dict]:
    """The head's two final classifiers trained again on frozen hidden features, one row per epoch."""
    torch.manual_seed(seed)
    head = module.model.head
    optim = module.config.optim
    layers = [head.expression, head.pose]
    optimizer = torch.optim.Adam(
        [p for layer in layers for p in layer.parameters()], lr=optim.lr, weight_decay=optim.weight_decay
    )
    hidden = train["hidden"]
    rows = []
    for epoch in range(1, epochs + 1):
        for index in torch.randperm(len(hidden)).split(module.config.train.batch_size):
            loss = F.cross_entropy(head.expression(hidden[index]), train["expression"][index]) + F.cross_entropy(
                head.pose(hidden[index]), train["pose"][index]
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            for task, layer in zip(("expression", "pose"), layers):
                rows.append(
                    {
                        "readout": f"head refitted, epoch {epoch}",
                        "task": task,
                        "train": _accuracy(layer(hidden), train[task]),
                        "test": _accuracy(layer(test["hidden"]), test[task]),
                    }
                )
    return rows


def head_probe(run: Path, limit: int | None = None, epochs: int = 5) -> pd.DataFrame:
    """Every readout of the module docstring, one row per readout and task."""
    module = load_module(run / "checkpoints" / "best.ckpt").eval()
    clean_train = features(module, "train", limit, augment=False)
    test = features(module, "test", limit, augment=False)
    rows = [
        {
            "readout": "head as trained",
            "task": task,
            "train": _accuracy(clean_train[f"{task}_logits"], clean_train[task]),
            "test": _accuracy(test[f"{task}_logits"], test[task]),
        }
        for task in ("expression", "pose")
    ]
    rows += probe(clean_train, test)
    rows += refit_head(module, features(module, "train", limit, augment=True, seed=1), test, epochs)
    return pd.DataFrame(rows)
