"""Each dataset adapter feeds a (tiny) training run end to end; pose-less samples train and evaluate."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from conftest import TINY
from dataset_trees import make_affectnet_csv_tree, make_bu3dfe_tree, make_kdef_tree, make_multipie_tree, make_sfew_tree
from phanet.cli import main
from phanet.config import load_config
from phanet.data.registry import load_dataset
from phanet.training.run import train

pytestmark = pytest.mark.slow

TREES = {
    "kdef": lambda root: make_kdef_tree(root, subjects=("F01", "F02", "M01", "M02"), expressions=("AN", "HA", "SU")),
    "bu3dfe": lambda root: make_bu3dfe_tree(
        root, subjects=("F0001", "F0002", "M0001", "M0002"), expressions=("HA", "NE", "SU"), intensities=(4,), yaws=(-45, 0, 45)
    ),
    "multipie": lambda root: make_multipie_tree(root, subjects=("001", "002", "003", "004"), cameras=("13_0", "05_1", "04_1")),
}


def tiny(name: str, root, out, *extra: str):
    return load_config(
        name, [f"data.root={root}", f"out={out}", *TINY, "data.split.val=1", "data.split.test=1", "train.epochs=1", *extra]
    )


@pytest.fixture(scope="module")
def trained_tree(tmp_path_factory):
    """``trained_tree(name)``: the tree of ``name`` and its one-epoch run, written when first asked for
    (the cross-dataset test evaluates the kdef run of the tree test)."""
    runs = {}

    def get(name: str):
        if name not in runs:
            root = tmp_path_factory.mktemp(name) / name
            TREES[name](root)
            runs[name] = root, train(tiny(name, root, root.parent / "run"), progress=False)
        return runs[name]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(TREES))
def test_training_on_each_multi_view_tree(trained_tree, name):
    root, result = trained_tree(name)
    metrics = pd.read_csv(result.run_dir / "metrics.csv")
    assert metrics[["train/expression", "train/pose", "val/pose_acc"]].notna().all().all()
    classes = json.loads((result.run_dir / "classes.json").read_text())
    faces = load_dataset(name, str(root))
    assert (classes["expressions"], classes["poses"]) == (faces.expressions, faces.poses)


@pytest.mark.slow
def test_affectnet_with_pose_labels_for_some_images_only(tmp_path):
    root = tmp_path / "affectnet"
    make_affectnet_csv_tree(root, per_class=5, size=40)
    faces = load_dataset("affectnet", str(root))
    lines = ["file, frame, face_id, timestamp, confidence, success, pose_Rx, pose_Ry"]
    lines += [
        f"{s.path}, 1, 0, 0, 0.9, 1, 0.0, {math.radians((i % 5 - 2) * 20):.4f}" for i, s in enumerate(faces.samples) if i % 3
    ]
    (tmp_path / "openface.csv").write_text("\n".join(lines) + "\n")
    config = tiny(
        "affectnet",
        root,
        tmp_path / "run",
        "data.split.test=0",
        "data.split.val=0.2",
        f"data.options.openface_csv={tmp_path / 'openface.csv'}",
    )
    result = train(config, progress=False)
    metrics = pd.read_csv(result.run_dir / "metrics.csv")
    assert metrics[["train/loss", "train/pose", "train/pose_acc"]].notna().all().all()
    assert math.isfinite(metrics["train/pose"].iloc[-1]) and metrics["train/pose"].iloc[-1] > 0


@pytest.mark.slow
def test_affectnet_without_poses_and_sfew_cross_dataset(tmp_path, trained_tree):
    root = tmp_path / "affectnet"
    make_affectnet_csv_tree(root, per_class=5, size=40)
    result = train(tiny("affectnet", root, tmp_path / "run", "data.split.test=0", "data.split.val=0.2"), progress=False)
    assert pd.read_csv(result.run_dir / "metrics.csv")["train/pose"].eq(0).all()
    _, kdef = trained_tree("kdef")
    make_sfew_tree(tmp_path / "sfew", per_class=2)
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(kdef.run_dir / "checkpoints" / "best.ckpt"),
                "--data",
                str(tmp_path / "sfew"),
                "--dataset",
                "sfew",
                "--out",
                str(tmp_path / "eval"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert report["data"]["dataset"] == "sfew" and report["data"]["samples"] == 28


@pytest.mark.slow
def test_training_on_prepared_crops(tmp_path):
    make_kdef_tree(tmp_path / "kdef", subjects=("F01", "F02", "M01", "M02"), expressions=("AN", "HA"), size=40)
    assert (
        main(
            [
                "prepare",
                "--dataset",
                "kdef",
                "--root",
                str(tmp_path / "kdef"),
                "--out",
                str(tmp_path / "crops"),
                "--size",
                "32",
                "--no-face",
                "center",
            ]
        )
        == 0
    )
    config = tiny("kdef", tmp_path / "crops", tmp_path / "run", "data.dataset=generic", "data.options={}")
    result = train(config, progress=False)
    classes = json.loads((result.run_dir / "classes.json").read_text())
    assert classes["expressions"] == ["AN", "DI", "FE", "HA", "NE", "SA", "SU"]
