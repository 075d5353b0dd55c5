"""Landmark ground truth of the built-in dataset and the region-coverage measure of the attended squares."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from phanet.cli import main
from phanet.data.adapters.synth import landmark_table, load_synth
from phanet.data.manifest import load_manifest
from phanet.data.records import MANIFEST_COLUMNS
from phanet.errors import PhanetError
from phanet.reports.coverage import coverage_table, local_s3_squares, pinned_squares, square_covers
from phanet.synth import expressions as ex
from phanet.synth.head import LANDMARKS, Part
from phanet.synth.landmarks import LANDMARK_COLUMNS, landmark_columns
from phanet.synth.render import Scene, render_head
from phanet.synth.synthesize import head_for

SIZE = 48
ARGV = ["synth", "--preset", "kdef", "--subjects", "1", "--size", str(SIZE), "--workers", "1"]


def _point(row: pd.Series, name: str) -> tuple[float, float, int]:
    x, y, vis = landmark_columns(name)
    return float(row[x]), float(row[y]), int(row[vis])


def _mirrored(landmarks: np.ndarray) -> np.ndarray:
    """Landmarks of the horizontally flipped image: x -> 1 - x, and the subject's left and right swap."""
    swap = [LANDMARKS.index(n.replace("left", "#").replace("right", "left").replace("#", "right")) for n in LANDMARKS]
    out = landmarks[swap].copy()
    out[:, 0] = 1.0 - out[:, 0]
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """The kdef preset for 1 subject at 48 px (70 images) and its manifest."""
    out = tmp_path_factory.mktemp("kdef")
    assert main([*ARGV, "--out", str(out)]) == 0
    return out, pd.read_csv(out / "manifest.csv", dtype={"path": str, "pose": str})


@pytest.mark.slow
def test_manifest_keeps_the_common_columns_and_adds_the_landmarks(folder):
    out, table = folder
    assert tuple(table.columns) == MANIFEST_COLUMNS + LANDMARK_COLUMNS
    assert LANDMARK_COLUMNS[:3] == ("lm_left_eye_x", "lm_left_eye_y", "lm_left_eye_vis")
    assert len(LANDMARK_COLUMNS) == 3 * 8
    assert set(table[[c for c in LANDMARK_COLUMNS if c.endswith("_vis")]].stack()) <= {0, 1}
    # Readers of the common manifest ignore the extra columns.
    assert len(load_manifest(str(out))) == len(load_synth(str(out))) == 70
    assert "lm_" in (out / "README.md").read_text()


def test_frontal_landmarks_are_laid_out_like_a_face(folder):
    _, table = folder
    frontal = table[table["pose"] == "0"]
    assert len(frontal) == 14
    for _, row in frontal.iterrows():
        p = {name: _point(row, name) for name in LANDMARKS}
        assert all(vis == 1 for _, _, vis in p.values())
        assert all(0.0 < x < 1.0 and 0.0 < y < 1.0 for x, y, _ in p.values())
        # The subject's left eye is on the viewer's right.
        assert p["right_eye"][0] < p["nose"][0] < p["left_eye"][0]
        assert p["right_brow"][0] < p["nose"][0] < p["left_brow"][0]
        assert p["mouth_right"][0] < p["mouth"][0] < p["mouth_left"][0]
        assert p["left_brow"][1] < p["left_eye"][1] < p["nose"][1] < p["mouth"][1]
        assert p["right_brow"][1] < p["right_eye"][1] < p["nose"][1]
        assert abs(p["left_eye"][1] - p["right_eye"][1]) < 0.03


def test_far_side_is_hidden_at_90_degrees_in_the_manifest(folder):
    _, table = folder
    for pose, near, far in (("90", "right", "left"), ("-90", "left", "right")):
        rows = table[table["pose"] == pose]
        assert len(rows) == 14
        assert (rows[f"lm_{near}_eye_vis"] == 1).all() and (rows[f"lm_{far}_eye_vis"] == 0).all()
        assert (rows[f"lm_{near}_brow_vis"] == 1).all() and (rows[f"lm_{far}_brow_vis"] == 0).all()
        assert (rows[f"lm_mouth_{near}_vis"] == 1).all() and (rows[f"lm_mouth_{far}_vis"] == 0).all()
        assert (rows["lm_nose_vis"] == 1).all()  # the tip is on the silhouette


@pytest.mark.parametrize("subject", [1, 2, 6])
@pytest.mark.parametrize("pitch", [-20.0, 0.0, 20.0])
def test_far_eye_is_hidden_at_90_degrees(subject, pitch):
    head = head_for(0, subject, 64)
    act = ex.activations("SU", 4)
    left, right = LANDMARKS.index("left_eye"), LANDMARKS.index("right_eye")
    turned_right = render_head(head, act, 90.0, pitch, Scene.plain(), 64).landmarks
    turned_left = render_head(head, act, -90.0, pitch, Scene.plain(), 64).landmarks
    assert turned_right[left, 2] == 0.0 and turned_right[right, 2] == 1.0
    assert turned_left[right, 2] == 0.0 and turned_left[left, 2] == 1.0
    assert (render_head(head, act, 0.0, pitch, Scene.plain(), 64).landmarks[:, 2] == 1.0).all()


@pytest.mark.parametrize("yaw", [30.0, 60.0, 90.0])
def test_opposite_yaws_of_a_symmetric_head_mirror_the_landmarks(yaw):
    head = head_for(0, 3, 64, symmetric=True)
    act = ex.activations("HA", 4)
    plus = render_head(head, act, yaw, 0.0, Scene.plain(), 64).landmarks
    minus = render_head(head, act, -yaw, 0.0, Scene.plain(), 64).landmarks
    assert np.abs(_mirrored(plus) - minus).max() < 1e-4
    # Not trivially symmetric: the two views really differ.
    assert np.abs(plus[:, 0] - minus[:, 0]).max() > 0.1


@pytest.mark.parametrize("size", [48, 112])
@pytest.mark.parametrize("subject", [1, 2, 3, 6])
def test_landmarks_land_on_the_rendered_parts(subject, size):
    head = head_for(0, subject, size)
    for expression, mouth_parts in (("NE", {Part.SKIN}), ("SU", {Part.MOUTH, Part.TEETH})):
        render = render_head(head, ex.activations(expression, 4), 0.0, 0.0, Scene.plain(), size, with_parts=True)
        col, row = np.floor(render.landmarks[:, :2] * size).astype(int).T
        seen = dict(zip(LANDMARKS, render.parts[row, col], strict=True))
        assert seen["left_eye"] == Part.EYE_LEFT and seen["right_eye"] == Part.EYE_RIGHT
        assert seen["mouth"] in mouth_parts  # closed lips are skin; an open mouth shows its inside
        assert seen["nose"] == Part.SKIN


def test_landmark_table_of_streamed_and_written_data_match_the_manifest(folder):
    out, table = folder
    expected = table[["path", *LANDMARK_COLUMNS]]
    streamed = load_synth(None, preset="kdef", subjects=1, size=SIZE)
    subset = [0, 13, 69]
    pd.testing.assert_frame_equal(
        landmark_table(streamed.subset(subset)), expected.iloc[subset].reset_index(drop=True), check_dtype=False, atol=2e-5
    )
    pd.testing.assert_frame_equal(landmark_table(load_synth(str(out))), expected, check_dtype=False)


@pytest.mark.slow
def test_folder_written_before_the_landmarks_is_upgraded(tmp_path, folder):
    original, table = folder
    out = tmp_path / "old"
    assert main([*ARGV, "--out", str(out)]) == 0
    manifest = out / "manifest.csv"
    table[list(MANIFEST_COLUMNS)].to_csv(manifest, index=False)
    faces = load_synth(str(out))
    rendered = landmark_table(faces.subset([5, 40]))
    pd.testing.assert_frame_equal(
        rendered, table[["path", *LANDMARK_COLUMNS]].iloc[[5, 40]].reset_index(drop=True), check_dtype=False, atol=2e-5
    )
    (out / faces.samples[3].path).unlink()
    assert main([*ARGV, "--out", str(out)]) == 0
    assert manifest.read_bytes() == (original / "manifest.csv").read_bytes()
    assert (out / faces.samples[3].path).read_bytes() == (original / faces.samples[3].path).read_bytes()


# Region coverage. Dyadic coordinates keep the border cases exact in floating point.


def test_square_covers_counts_visible_points_inside_or_on_the_border():
    box = np.array([0.5, 0.5, 0.25])
    assert square_covers(box, [[0.75, 0.5, 1.0]])  # on the right edge
    assert square_covers(box, [[0.25, 0.25, 1.0]])  # on a corner
    assert not square_covers(box, [[0.78125, 0.5, 1.0]])
    assert not square_covers(box, [[0.5, 0.5, 0.0]])  # hidden, though at the centre
    assert square_covers(box, [[0.78125, 0.5, 1.0]], margin=0.03125)
    assert not square_covers([np.nan, 0.5, 0.25], [[0.5, 0.5, 1.0]])
    boxes = np.array([[0.5, 0.5, 0.125], [0.25, 0.25, 0.0625], [0.75, 0.75, 0.25]])
    points = np.array(
        [
            [[0.625, 0.5, 1.0], [0.0, 0.0, 1.0]],  # first point on the edge
            [[0.25, 0.25, 0.0], [0.5, 0.5, 1.0]],  # hidden point inside, visible one outside
            [[0.0, 0.0, 1.0], [1.0, 1.0, 1.0]],  # second point on the corner
        ]
    )
    assert square_covers(boxes, points).tolist() == [True, False, True]


def _landmarks_frame() -> pd.DataFrame:
    where = {
        "left_eye": (0.625, 0.375),
        "right_eye": (0.375, 0.375),
        "left_brow": (0.625, 0.25),
        "right_brow": (0.375, 0.25),
        "nose": (0.5, 0.5),
        "mouth": (0.5, 0.75),
        "mouth_left": (0.625, 0.75),
        "mouth_right": (0.375, 0.75),
    }
    rows = []
    for path in ("a.png", "b.png", "c.png", "d.png"):
        row = {"path": path}
        for name, (x, y) in where.items():
            cx, cy, cv = landmark_columns(name)
            row[cx], row[cy] = x, y
            row[cv] = 0 if path == "b.png" and name.startswith("right_") else 1
        rows.append(row)
    return pd.DataFrame(rows)


def _results_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "path": ["a.png", "b.png", "c.png", "d.png", "e.png"],
            "true_pose": [-90, -90, 0, 0, 0],
            "pose": [0, 0, 0, 0, 0],  # predicted pose: not what coverage is grouped by
            # a: the mouth; b: around the hidden right eye; c: mouth points on the bottom edge; d: nothing.
            "s2_x": [0.5, 0.375, 0.5, 0.75, 0.5],
            "s2_y": [0.75, 0.375, 0.625, 0.75, 0.5],
            "s2_l": [0.125, 0.0625, 0.125, 0.0625, 0.5],
            # a: the nose only; b: left eye on the edge, left brow on the corner; c: left eye and brow on the
            # edges; d: the mouth. e has no landmarks and is left out.
            "s3_x": [0.5, 0.5, 0.625, 0.5, 0.5],
            "s3_y": [0.5, 0.375, 0.3125, 0.75, 0.5],
            "s3_l": [0.0625, 0.125, 0.0625, 0.125, 0.5],
        }
    )


def test_coverage_table_fractions_per_pose_and_scale():
    table = coverage_table(_results_frame(), _landmarks_frame())
    assert list(table.columns) == ["pose", "scale", "images", "mouth", "eye", "brow", "any"]
    assert list(zip(table["pose"], table["scale"])) == [
        ("-90", "S2"),
        ("-90", "S3"),
        ("0", "S2"),
        ("0", "S3"),
        ("all", "S2"),
        ("all", "S3"),
    ]
    assert table["images"].tolist() == [2, 2, 2, 2, 4, 4]
    expected = [
        [0.5, 0.0, 0.0, 0.5],
        [0.0, 0.5, 0.5, 0.5],
        [0.5, 0.0, 0.0, 0.5],
        [0.5, 0.5, 0.5, 1.0],
        [0.5, 0.0, 0.0, 0.5],
        [0.25, 0.5, 0.5, 0.75],
    ]
    assert table[["mouth", "eye", "brow", "any"]].to_numpy().tolist() == expected


def test_coverage_table_without_squares_or_matching_images():
    results = _results_frame()
    results[["s3_x", "s3_y", "s3_l"]] = np.nan
    table = coverage_table(results, _landmarks_frame(), pose_column="pose")
    assert table["pose"].tolist() == ["0", "0", "all", "all"]
    s3 = table[table["scale"] == "S3"]
    assert s3["images"].tolist() == [0, 0] and s3[["mouth", "any"]].isna().all(axis=None)
    with pytest.raises(PhanetError, match="results table has no column 's2_l'"):
        coverage_table(results.drop(columns="s2_l"), _landmarks_frame())
    with pytest.raises(PhanetError, match="no image of the results table is in the landmark table"):
        coverage_table(results.assign(path="x.png"), _landmarks_frame())


def test_pinned_squares_finds_squares_at_the_end_of_their_range():
    import torch

    from phanet.models.attention import PixelAttentionNetwork, compose_boxes

    pan = PixelAttentionNetwork(4, side_min=0.3, side_max=0.6)
    # the PANs' raw outputs (a_x, a_y, a_l) of four images, S2 then S3 (S3 in S2's coordinates)
    s2_raw = torch.tensor([[0.0, 0.0, 0.0], [0.5, -0.3, 1.0], [0.0, 0.0, -9.0], [0.2, 0.1, 0.0]])
    s3_raw = torch.tensor([[9.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.3, 0.3, 0.3], [-0.5, -9.0, 9.0]])
    s2 = pan.bound(s2_raw)
    s3 = compose_boxes(s2, pan.bound(s3_raw))
    frame = pd.DataFrame(torch.cat([s2, s3], 1).numpy(), columns=["s2_x", "s2_y", "s2_l", "s3_x", "s3_y", "s3_l"])
    # the S3 squares in S2's coordinates are those the second PAN chose
    np.testing.assert_allclose(local_s3_squares(frame), pan.bound(s3_raw).numpy(), atol=1e-6)
    # S2: the third image's side at its minimum; S3: the first image's x, the fourth image's y and side
    assert pinned_squares(frame, 0.3, 0.6) == pytest.approx({"S2": 0.25, "S3": 0.5})
    frame.loc[3, ["s3_x", "s3_y", "s3_l"]] = np.nan  # left out
    assert pinned_squares(frame, 0.3, 0.6) == pytest.approx({"S2": 0.25, "S3": 1 / 3})
    # a tanh of 0.995 (raw 3) is pinned within 0.01, one of 0.96 (raw 2) is not
    near = pd.DataFrame(
        {
            "s2_x": [0.5 + 0.275 * math.tanh(3.0), 0.5 + 0.275 * math.tanh(2.0)],
            "s2_y": 0.5,
            "s2_l": 0.225,
            "s3_x": 0.5,
            "s3_y": 0.5,
            "s3_l": 0.1,
        }
    )
    assert pinned_squares(near, 0.3, 0.6)["S2"] == 0.5


def test_coverage_of_the_written_dataset(folder):
    _, manifest = folder
    mouth_x, mouth_y, _ = landmark_columns("mouth")
    results = pd.DataFrame(
        {
            "path": manifest["path"],
            "true_pose": manifest["pose"],
            "s2_x": manifest[mouth_x],
            "s2_y": manifest[mouth_y],
            "s2_l": 0.01,
            "s3_x": 0.5,
            "s3_y": 0.5,
            "s3_l": 0.5,
        }
    )
    table = coverage_table(results, manifest).set_index(["pose", "scale"])
    assert table.loc[("all", "S2"), "images"] == 70
    assert table.loc[("0", "S2"), "mouth"] == 1.0 and table.loc[("0", "S2"), "eye"] == 0.0
    assert (table.xs("S3", level="scale")[["eye", "brow", "any"]] == 1.0).all(axis=None)
