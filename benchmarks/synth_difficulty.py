"""How hard is the built-in dataset? Quick proxies trained on some subjects, tested on held-out ones.

Not the paper's baseline (the DenseNet-40 run belongs to the training code): a linear classifier on
downsampled grey pixels and a small CNN (four conv blocks, expression and pose heads) trained for a
fixed number of epochs. The expression accuracy should sit clearly above chance and clearly below 100 %,
and pose should be easy.

    PYTHONPATH=src python benchmarks/synth_difficulty.py [--subjects 40] [--size 64] [--epochs 30]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from phanet.data.registry import load_dataset
from phanet.synth.generate import generate
from phanet.synth.settings import resolve_settings


def load_arrays(folder: Path, settings) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    if not (folder / "manifest.csv").is_file():
        generate(folder, settings)
    faces = load_dataset("synth", str(folder))
    images = np.stack([faces.load_image(i) for i in range(len(faces))])
    labels = {
        "expression": np.array([s.expression for s in faces.samples]),
        "pose": np.array([s.pose for s in faces.samples]),
        "intensity": np.array([s.intensity for s in faces.samples]),
        "subject": np.array([int(s.subject[1:]) for s in faces.samples]),
    }
    return images, labels


class SmallCNN(nn.Module):
    def __init__(self, expressions: int, poses: int):
        super().__init__()

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(), nn.MaxPool2d(2))

        self.features = nn.Sequential(
            block(3, 16), block(16, 32), block(32, 64), block(64, 96), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        self.expression = nn.Linear(96, expressions)
        self.pose = nn.Linear(96, poses)

    def forward(self, x):
        f = self.features(x)
        return self.expression(f), self.pose(f)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="bu3dfe")
    parser.add_argument("--subjects", type=int, default=40)
    parser.add_argument("--test-subjects", type=int, default=10)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=float, default=30.0, help="CNN training budget in epochs")
    parser.add_argument("--input", type=int, default=40, help="CNN input side (images are area-downsampled)")
    parser.add_argument("--cache", default=None, help="folder for the rendered images (default: a temporary one)")
    args = parser.parse_args()
    torch.manual_seed(0)
    settings = resolve_settings(args.preset, args.subjects, args.size, 0, prefix="--")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.cache) if args.cache else Path(tmp) / "data"
        start = time.perf_counter()
        images, labels = load_arrays(folder, settings)
        seconds = time.perf_counter() - start
        print(f"{len(images)} images of {args.subjects} subjects at {args.size} px ({seconds:.0f} s)")
    test = labels["subject"] > args.subjects - args.test_subjects
    train = ~test
    n_expr = int(labels["expression"].max()) + 1
    n_pose = int(labels["pose"].max()) + 1
    print(
        f"train {train.sum()} images / {args.subjects - args.test_subjects} subjects, "
        f"test {test.sum()} / {args.test_subjects} held-out subjects; chance {100 / n_expr:.1f} % (expression)"
    )

    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    grey = (
        np.stack([cv2.resize(cv2.cvtColor(im, cv2.COLOR_RGB2GRAY), (24, 24), interpolation=cv2.INTER_AREA) for im in images])
        .reshape(len(images), -1)
        .astype(np.float32)
    )
    scaler = StandardScaler().fit(grey[train])
    for task in ("expression", "pose"):
        clf = LogisticRegression(max_iter=300, C=0.05).fit(scaler.transform(grey[train]), labels[task][train])
        acc = (clf.predict(scaler.transform(grey[test])) == labels[task][test]).mean()
        print(f"linear on 24x24 grey pixels: {task} accuracy {100 * acc:.1f} %")

    x = torch.from_numpy(images.transpose(0, 3, 1, 2).copy()).float().div_(255.0)
    x = nn.functional.interpolate(x, size=(args.input, args.input), mode="area")
    ye = torch.from_numpy(labels["expression"])
    yp = torch.from_numpy(labels["pose"])
    model = SmallCNN(n_expr, n_pose)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    idx = np.flatnonzero(train)
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    steps = 0
    total_steps = int(args.epochs * train.sum() / 64)
    model.train()
    while steps < total_steps:
        batch = torch.from_numpy(rng.choice(idx, 64, replace=False))
        pe, pp = model(x[batch])
        loss = nn.functional.cross_entropy(pe, ye[batch]) + nn.functional.cross_entropy(pp, yp[batch])
        opt.zero_grad()
        loss.backward()
        opt.step()
        steps += 1
    model.eval()
    with torch.no_grad():
        te = torch.from_numpy(np.flatnonzero(test))
        outs = [model(x[te[i : i + 256]]) for i in range(0, len(te), 256)]
        pred_e = torch.cat([o[0] for o in outs]).argmax(1).numpy()
        pred_p = torch.cat([o[1] for o in outs]).argmax(1).numpy()
    exp_ok = pred_e == labels["expression"][test]
    pose_ok = pred_p == labels["pose"][test]
    seconds = time.perf_counter() - start
    print(
        f"small CNN on {args.input}x{args.input} ({args.epochs:g} epochs, {steps} steps, {seconds:.0f} s): "
        f"expression accuracy {100 * exp_ok.mean():.1f} %, pose accuracy {100 * pose_ok.mean():.1f} %"
    )
    for level in sorted(set(labels["intensity"][test])):
        sel = labels["intensity"][test] == level
        print(f"  intensity {level}: expression accuracy {100 * exp_ok[sel].mean():.1f} % ({sel.sum()} images)")


if __name__ == "__main__":
    main()
