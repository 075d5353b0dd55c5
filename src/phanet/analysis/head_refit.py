"""What SAL and the DCML head learn on a trained PhaNet's own features, given more steps.

The trained network's HPAL (three backbones and two PANs) is frozen and run once over its training
and test subjects (evaluation mode: no square swap, the weights the checkpoint holds); then SAL and
the head are trained again from the checkpoint's values on those fixed pooled features, for
``--epochs`` passes (Adam at the run's own learning rates, SAL at its ``optim.part_lr`` multiple,
the run's weight decay, batch 32; the loss is the head's expression and pose cross-entropies, equally
weighted, as λe = λp = 0.5 in the trained runs, plus the run's bound on SAL's mean pre-activations,
``loss.sal_limit``, where it trained with one). Variants:

- ``fixed``: every face gets the trained network's mean scale weights (c the same for all faces);
  only the head learns. What per-face weights add is the difference to ``sal``.
- ``sal``: SAL and the head learn.
- ``balanced``: as ``sal``, with the expression loss weighted by the inverse frequency of each
  expression in the training subjects.

Per variant and seed: test FER and pose accuracy, the mean of the per-expression accuracies, the
accuracy per expression and per intensity (where the data have intensities), how many test faces
each variant calls each expression, and c1..c3 on the test faces (mean and std). ``--by`` also
prints the mean c per pose and per expression. The first row, ``trained``, is the network as it is.

    python benchmarks/head_refit.py runs/demo/phanet --variants fixed,sal,balanced --seeds 0,1
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from phanet.analysis.head_probe import features
from phanet.losses import balanced_class_weights, sal_limit_loss
from phanet.training.run import load_module
from phanet.training.run_folder import RunFolder

VARIANTS = ("fixed", "sal", "balanced")


def frozen_features(module, part: str) -> dict[str, torch.Tensor]:
    """Pooled HPAL features (N, scales, C) of the scales SAL fuses, labels and intensities of ``part``'s
    images through the frozen network."""
    values = features(module, part, None, augment=False)
    return {
        "pooled": torch.stack([values[f"M{s + 1}"] for s in module.model.used], 1),
        **{key: values[key] for key in ("expression", "pose", "intensity")},
    }


def _forward(sal, head, pooled: torch.Tensor, fixed: torch.Tensor | None):
    parts = list(pooled.unbind(1))
    if fixed is None:
        f, c, z = sal(parts)
    else:
        c, z = fixed.expand(pooled.shape[0], -1), None
        f = sal.weigh(parts, c)
    expression_logits, pose_logits, _ = head(f)
    return expression_logits, pose_logits, c, z


def refit(model, config, train: dict, variant: str, seed: int, epochs: int) -> tuple:
    """SAL and head copies trained on ``train``'s features as ``variant`` (one of :data:`VARIANTS`) says;
    (sal, head, fixed c or None)."""
    torch.manual_seed(seed)
    sal, head = copy.deepcopy(model.sal), copy.deepcopy(model.head)
    fixed = None
    if variant == "fixed":
        with torch.no_grad():
            fixed = sal.coefficients(list(train["pooled"].unbind(1))).mean(0)
    groups = [{"params": list(head.parameters()), "lr": config.optim.lr}]
    if fixed is None:
        groups.append({"params": list(sal.parameters()), "lr": config.optim.lr * config.optim.part_lr.get("SAL", 1.0)})
    optimizer = torch.optim.Adam(groups, weight_decay=config.optim.weight_decay)
    weight = None
    if variant == "balanced":
        counts = torch.bincount(train["expression"], minlength=head.expression.out_features).float()
        weight = balanced_class_weights(counts)
    for _ in range(epochs):
        order = torch.randperm(len(train["pooled"]))
        for start in range(0, len(order), 32):
            rows = order[start : start + 32]
            expression_logits, pose_logits, _, z = _forward(sal, head, train["pooled"][rows], fixed)
            loss = F.cross_entropy(expression_logits, train["expression"][rows], weight=weight) + F.cross_entropy(
                pose_logits, train["pose"][rows]
            )
            if z is not None and config.loss.sal_limit is not None:
                loss = loss + sal_limit_loss(z, config.loss.sal_limit)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return sal, head, fixed


def score(sal, head, fixed, test: dict, expressions: list[str]) -> tuple[dict, np.ndarray]:
    """One result row and the test faces' c (N, scales)."""
    with torch.no_grad():
        expression_logits, pose_logits, c, _ = _forward(sal, head, test["pooled"], fixed)
    said, truth = expression_logits.argmax(1).numpy(), test["expression"].numpy()
    right = said == truth
    per_class = {e: float(right[truth == k].mean() * 100) for k, e in enumerate(expressions) if (truth == k).any()}
    row = {
        "FER": float(right.mean() * 100),
        "pose": float((pose_logits.argmax(1) == test["pose"]).float().mean() * 100),
        "mean per expression": float(np.mean(list(per_class.values()))),
    }
    row.update({f"FER {e}": v for e, v in per_class.items()})
    intensity = test["intensity"].numpy()
    for level in sorted(set(intensity[intensity >= 0].tolist())):
        row[f"FER intensity {level}"] = float(right[intensity == level].mean() * 100)
    row.update({f"says {e}": int((said == k).sum()) for k, e in enumerate(expressions)})
    for i in range(c.shape[1]):
        row[f"c{i + 1}"], row[f"c{i + 1} std"] = float(c[:, i].mean()), float(c[:, i].std())
    return row, c.numpy()


def head_refit(
    run_dir: str | Path, variants: list[str], seeds: list[int], epochs: int = 30, by: bool = False
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """The result table (one row per variant and seed, ``trained`` first) and, with ``by``, the mean c
    per pose and per expression of each row (keyed ``variant seed``)."""
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"--variants: {unknown[0]!r} is not one of {', '.join(VARIANTS)}")
    folder = RunFolder(run_dir)
    module = load_module(folder.best)
    module.eval()
    model = module.model
    if getattr(model, "sal", None) is None:
        raise SystemExit(
            f"{run_dir}: the network has no joint SAL (arch {module.config.model.arch}, joint_sa {module.config.model.joint_sa})"
        )
    classes = json.loads(folder.classes_file.read_text())
    data = {part: frozen_features(module, part) for part in ("train", "test")}
    rows, by_tables = [], {}

    def record(name: str, seed: int | str, sal, head, fixed) -> None:
        row, c = score(sal, head, fixed, data["test"], classes["expressions"])
        rows.append({"variant": name, "seed": seed, **row})
        if by:
            table = pd.DataFrame(c, columns=[f"c{i + 1}" for i in range(c.shape[1])])
            table["pose"] = [classes["poses"][p] for p in data["test"]["pose"].tolist()]
            table["expression"] = [classes["expressions"][e] for e in data["test"]["expression"].tolist()]
            per_pose = table.drop(columns="expression").groupby("pose").mean().reindex(classes["poses"]).dropna()
            per_expression = table.drop(columns="pose").groupby("expression").mean().reindex(classes["expressions"]).dropna()
            by_tables[f"{name} {seed}"] = pd.concat({"pose": per_pose.T, "expression": per_expression.T}, axis=1)

    record("trained", "", model.sal, model.head, None)
    for variant in variants:
        for seed in seeds:
            record(variant, seed, *refit(model, module.config, data["train"], variant, seed, epochs))
    return pd.DataFrame(rows), by_tables
