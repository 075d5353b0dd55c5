"""Subject-independent splits and folds with the paper's protocol sizes (the dataset presets)."""

from __future__ import annotations

import pytest

from dataset_trees import make_affectnet_csv_tree, make_bu3dfe_tree, make_kdef_tree, make_multipie_tree
from phanet.config import load_config
from phanet.data.registry import load_dataset
from phanet.data.splits import subject_folds, subject_split


def preset_split(name, root):
    config = load_config(name, [f"data.root={root}"])
    faces = load_dataset(config.data.dataset, config.data.root, **config.data.options)
    s = config.data.split
    return faces, subject_split(faces, s.val, s.test, s.seed, s.test_subjects)


def subjects_of(faces, indices):
    return {faces.samples[i].subject for i in indices}


def assert_disjoint(faces, split):
    parts = [subjects_of(faces, getattr(split, p)) for p in ("train", "val", "test")]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
    assert sorted(split.train + split.val + split.test) == list(range(len(faces)))


@pytest.mark.parametrize("name", ["bu3dfe", "kdef", "multipie", "affectnet", "sfew"])
def test_presets_are_valid_configs(name):
    config = load_config(name, ["data.root=/data"])
    assert config.data.dataset == name and config.data.root == "/data"


def test_bu3dfe_protocol_75_training_persons_25_test(tmp_path):
    subjects = [f"F{i:04d}" for i in range(1, 57)] + [f"M{i:04d}" for i in range(1, 45)]
    make_bu3dfe_tree(tmp_path, subjects=subjects, expressions=("NE", "HA"), intensities=(4,), yaws=(0, 45), size=8)
    faces, split = preset_split("bu3dfe", tmp_path)
    assert len(faces.subjects()) == 100
    assert (len(split.subjects["train"]), len(split.subjects["val"]), len(split.subjects["test"])) == (60, 15, 25)
    assert len(split.test) == 25 * 4 and len(split.train) + len(split.val) == 75 * 4
    assert_disjoint(faces, split)
    again = preset_split("bu3dfe", tmp_path)[1]
    assert again.subjects == split.subjects


def test_kdef_protocol_keeps_both_sessions_of_a_person_together(tmp_path):
    subjects = [f"F{i:02d}" for i in range(1, 36)] + [f"M{i:02d}" for i in range(1, 36)]
    make_kdef_tree(tmp_path, subjects=subjects, expressions=("NE",), angles=("S", "FR"), size=8)
    faces, split = preset_split("kdef", tmp_path)
    assert (len(split.subjects["train"]), len(split.subjects["val"]), len(split.subjects["test"])) == (45, 11, 14)
    assert_disjoint(faces, split)
    for part in ("train", "val", "test"):
        sessions = {faces.samples[i].path[0] for i in getattr(split, part)}
        assert sessions == {"A", "B"}
    tested = {faces.samples[i].subject: 0 for i in range(len(faces))}
    for train, test in subject_folds(faces, 5, seed=1):
        assert not subjects_of(faces, train) & subjects_of(faces, test)
        for subject in subjects_of(faces, test):
            tested[subject] += 1
    assert set(tested.values()) == {1}


def test_multipie_protocol_fractions(tmp_path):
    make_multipie_tree(tmp_path, subjects=[f"{i:03d}" for i in range(1, 26)], cameras=("05_1",), size=8)
    faces, split = preset_split("multipie", tmp_path)
    assert (len(split.subjects["train"]), len(split.subjects["val"]), len(split.subjects["test"])) == (16, 4, 5)
    assert_disjoint(faces, split)


def test_affectnet_protocol_trains_on_the_training_partition(tmp_path):
    make_affectnet_csv_tree(tmp_path, per_class=5, codes=range(8), size=8)
    faces, split = preset_split("affectnet", tmp_path)
    assert (len(split.train), len(split.val), len(split.test)) == (36, 4, 0)
    assert_disjoint(faces, split)
