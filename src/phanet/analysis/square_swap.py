"""Does the S3 square show S3 a region, or pass on the expression by where it is? Squares swapped between faces.

For a run folder's evaluated PhaNet (its best checkpoint and the test images of its
``evaluation/predictions.csv``), S3's own classifier (p(e|s) of Eq. 2 at the third scale) is read
with three kinds of S3 square; each face keeps its own S2 square:

- **own**: the face's own S3 square;
- **donor d**: the S3 square (in S2's coordinates) of another test face of the same pan whose
  expression is d, for each expression d;
- **mean**: the mean S3 square of the chosen faces, the same for every face.

If the square is placed per face on what shows the expression, S3 reads a face best with its own
square and about as well with the square of another face of its expression, and worse with the square
of another expression. If instead the square's place or size codes the expression (as when the PANs
could run to the ends of their range), S3 says the donor's expression: the *donor leak* is how often
S3 says d with a d-face's square, minus how often it says d with the face's own square, over faces
whose expression is not d.

    python benchmarks/square_swap.py runs/demo/phanet
    python benchmarks/square_swap.py runs/cv3/fold1/phanet --images 500
    python benchmarks/square_swap.py runs/demo/phanet --faces squares.png --face-expressions SA,AN,HA

``--faces FIG`` also draws the S2 (red) and S3 (yellow) squares of one test subject's faces at the
highest intensity: a row per expression of ``--face-expressions``, a column per yaw of ``--face-yaws``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from phanet.data.datasets import FaceDataset
from phanet.training.run import load_module
from phanet.training.run_folder import RunFolder
from phanet.workflow import load_faces


def _s3_predictions(module, dataset: FaceDataset, squares: torch.Tensor | None, batch_size: int):
    """S3's predicted expression per face, and the local squares used, (N,) and (N, 2, 3)."""
    predictions, local = [], []
    for start in range(0, len(dataset), batch_size):
        rows = list(range(start, min(start + batch_size, len(dataset))))
        batch = module.prepare_batch(dataset.__getitems__(rows), train=False)
        given = None if squares is None else squares[rows]
        with torch.no_grad():
            hpal = module.model.forward_features(batch["image"], squares=given)
        predictions.append(hpal["logits"][2].argmax(1))
        local.append(hpal["local_boxes"])
    return torch.cat(predictions).numpy(), torch.cat(local)


def square_swap(
    run_dir: str | Path, images: int | None = None, seed: int = 0, batch_size: int = 50
) -> tuple[pd.DataFrame, dict[str, float]]:
    """The swap table and its summary for the PhaNet in ``run_dir`` (see the module's text).

    Table: one row per true expression r (and ``all``): ``faces``, S3's accuracy with its ``own``
    square, with the square of a face of each expression d (a column per d; NaN where no face of d
    shares a pan with a face of r), and with the ``mean`` square. Summary: ``own``, ``same`` (donors
    of the face's own expression), ``other`` (donors of another expression) and ``mean`` accuracy,
    ``donor_says_donor`` and ``own_says_donor`` (how often S3 names the donor's expression d with the
    d-face's square, and with the face's own square, over faces not of d) and ``donor_leak`` (their
    difference)."""
    folder = RunFolder(run_dir)
    module = load_module(folder.best)
    module.eval()
    if module.model.num_computed < 3:
        raise SystemExit(f"{run_dir}: the network has no S3 square (scales {module.config.model.scales})")
    classes = json.loads(folder.classes_file.read_text())["expressions"]
    table = pd.read_csv(folder.path / "evaluation" / "predictions.csv")
    rng = np.random.default_rng(seed)
    table = table.iloc[np.sort(rng.permutation(len(table))[:images])].reset_index(drop=True)
    faces = load_faces(module.config)
    where = {sample.path: i for i, sample in enumerate(faces.samples)}
    missing = [p for p in table["path"] if p not in where]
    if missing:
        raise SystemExit(f"{run_dir}: {len(missing)} test images are not in the run's dataset, e.g. {missing[0]}")
    dataset = FaceDataset(
        faces.subset([where[p] for p in table["path"]]), module.config.model.input_size or module.config.model.image_size
    )
    truth = np.array([classes.index(e) for e in table["true_expression"]])
    pose = table["true_pose"].astype(str).to_numpy()

    own, local = _s3_predictions(module, dataset, None, batch_size)
    said = {"own": own}
    has_donor = {}
    for d in range(len(classes)):
        donors = np.full(len(table), -1)
        for i in range(len(table)):
            pool = np.flatnonzero((truth == d) & (pose == pose[i]) & (np.arange(len(table)) != i))
            if len(pool):
                donors[i] = rng.choice(pool)
        has_donor[d] = donors >= 0
        squares = local.clone()
        squares[has_donor[d], 1] = local[donors[has_donor[d]], 1]
        said[d], _ = _s3_predictions(module, dataset, squares, batch_size)
    squares = local.clone()
    squares[:, 1] = local[:, 1].mean(0)
    said["mean"], _ = _s3_predictions(module, dataset, squares, batch_size)

    rows = []
    for name, chosen in [*((c, truth == r) for r, c in enumerate(classes)), ("all", np.ones(len(table), bool))]:
        row = {"expression": name, "faces": int(chosen.sum()), "own": float(np.mean(own[chosen] == truth[chosen]))}
        for d, c in enumerate(classes):
            pick = chosen & has_donor[d]
            row[c] = float(np.mean(said[d][pick] == truth[pick])) if pick.any() else float("nan")
        row["mean"] = float(np.mean(said["mean"][chosen] == truth[chosen]))
        rows.append(row)
    hits = {"same": [], "other": [], "donor_says_donor": [], "own_says_donor": []}
    for d in range(len(classes)):
        same, other = has_donor[d] & (truth == d), has_donor[d] & (truth != d)
        hits["same"].append(said[d][same] == truth[same])
        hits["other"].append(said[d][other] == truth[other])
        hits["donor_says_donor"].append(said[d][other] == d)
        hits["own_says_donor"].append(own[other] == d)
    summary = {
        "own": float(np.mean(own == truth)),
        **{k: float(np.mean(np.concatenate(v))) for k, v in hits.items()},
        "mean": float(np.mean(said["mean"] == truth)),
    }
    summary["donor_leak"] = summary["donor_says_donor"] - summary["own_says_donor"]
    return pd.DataFrame(rows), summary


def faces_figure(run_dir: str | Path, path: str | Path, expressions: list[str], yaws: list[str]) -> Path:
    """The S2 and S3 squares of ``predictions.csv`` on one test subject's faces (the first subject with
    every expression and yaw at its highest intensity): rows ``expressions``, columns ``yaws``."""
    from phanet.reports.figures import attention_squares_figure

    folder = RunFolder(run_dir)
    module = load_module(folder.best)
    table = pd.read_csv(folder.path / "evaluation" / "predictions.csv").set_index("path")
    faces = load_faces(module.config)
    chosen: dict[str, dict[tuple[str, str], int]] = {}
    for i, sample in enumerate(faces.samples):
        if sample.path in table.index:
            key = (faces.expressions[sample.expression], faces.poses[sample.pose])
            best = chosen.setdefault(sample.subject, {}).get(key)
            if best is None or sample.intensity > faces.samples[best].intensity:
                chosen[sample.subject][key] = i
    wanted = [(e, p) for e in expressions for p in yaws]
    subject = next((s for s in sorted(chosen) if all(k in chosen[s] for k in wanted)), None)
    if subject is None:
        raise SystemExit(f"{run_dir}: no test subject has every expression of {expressions} at every yaw of {yaws}")
    rows = [chosen[subject][k] for k in wanted]
    boxes = np.stack(
        [
            table.loc[faces.samples[i].path, ["s2_x", "s2_y", "s2_l", "s3_x", "s3_y", "s3_l"]].to_numpy(dtype=float).reshape(2, 3)
            for i in rows
        ]
    )
    titles = [f"{e} {p}°" for e, p in wanted]
    return attention_squares_figure([faces.load_image(i) for i in rows], boxes, titles, path, columns=len(yaws))
