"""The built-in rendered dataset: determinism, counts, pose geometry, expressions, loaders and CLI."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from collections import Counter

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from phanet.cli import main
from phanet.data.adapters.synth import SynthFaces, load_synth
from phanet.data.io import read_image
from phanet.data.records import MISSING
from phanet.data.registry import dataset_options, load_dataset
from phanet.data.splits import subject_split
from phanet.synth import PRESETS, render
from phanet.synth import expressions as ex
from phanet.synth.head import LANDMARKS, Part, make_layout
from phanet.synth.identity import SHAPE_PARAMETERS, sample_identity
from phanet.synth.presets import sample_specs
from phanet.synth.raster import rasterize
from phanet.synth.render import Scene, render_head, skin_texture, texture_weight
from phanet.synth.settings import resolve_settings
from phanet.synth.synthesize import head_for

SIZE = 48


def _files(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """The kdef preset for 2 subjects at 48 px, written once with 1 worker and once with 2."""
    one = tmp_path_factory.mktemp("one")
    two = tmp_path_factory.mktemp("two")
    argv = ["synth", "--preset", "kdef", "--subjects", "2", "--size", str(SIZE)]
    assert main([*argv, "--workers", "1", "--out", str(one)]) == 0
    assert main([*argv, "--workers", "2", "--out", str(two)]) == 0
    return one, two


@pytest.mark.slow
def test_same_seed_gives_identical_files_whatever_the_worker_count(written):
    one, two = written
    a, b = _files(one), _files(two)
    assert sorted(a) == sorted(b)
    assert sum(name.endswith(".png") for name in a) == 2 * 7 * 5 * 2
    assert all(a[name] == b[name] for name in a)


@pytest.mark.slow
def test_other_seed_gives_other_images(tmp_path, written):
    one, _ = written
    out = tmp_path / "seed1"
    assert main(["synth", "--preset", "kdef", "--subjects", "1", "--size", str(SIZE), "--seed", "1", "--out", str(out)]) == 0
    name = "S0001/S0001_HA4_y0.png"
    assert (out / name).read_bytes() != (one / name).read_bytes()


def test_written_folder_has_manifest_card_and_settings(written):
    one, _ = written
    table = pd.read_csv(one / "manifest.csv", dtype=str, keep_default_na=False)
    assert list(table.columns)[:7] == ["path", "subject", "expression", "pose", "intensity", "yaw", "pitch"]
    assert len(table) == 140
    assert (table["face_x"] == "").all()
    assert all((one / p).is_file() for p in table["path"])
    assert Counter(table["pose"]) == {"-90": 28, "-45": 28, "0": 28, "45": 28, "90": 28}
    assert Counter(table["expression"]) == {e: 20 for e in ("AN", "DI", "FE", "HA", "NE", "SA", "SU")}
    assert set(table.loc[table["expression"] == "NE", "intensity"]) == {"0"}
    assert (table["yaw"].astype(float) == table["pose"].astype(float)).all()
    assert table["pitch"].astype(float).abs().max() <= 5.0
    settings = json.loads((one / "synth.json").read_text())
    assert (settings["preset"], settings["subjects"], settings["size"], settings["seed"]) == ("kdef", 2, SIZE, 0)
    card = (one / "README.md").read_text()
    assert "| total | 28 | 28 | 28 | 28 | 28 | 140 |" in card
    assert "| HA (happiness) | 4 | 4 | 4 | 4 | 4 | 20 |" in card
    image = read_image(one / table["path"][0])
    assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8


def test_streaming_dataset_renders_the_same_pixels_as_the_files(written):
    one, _ = written
    stream = load_dataset("synth", None, preset="kdef", subjects=2, size=SIZE)
    files = load_dataset("synth", str(one))
    assert isinstance(stream, SynthFaces) and stream.root is None
    assert [s.path for s in stream.samples] == [s.path for s in files.samples]
    assert stream.samples == files.samples
    assert stream.expressions == files.expressions == ["AN", "DI", "FE", "HA", "NE", "SA", "SU"]
    assert stream.poses == files.poses == ["-90", "-45", "0", "45", "90"]
    for i in (0, 37, 139):
        assert np.array_equal(stream.load_image(i), files.load_image(i))
    subset = stream.subset([139, 0])
    assert np.array_equal(subset.load_image(0), files.load_image(139))


def test_training_splits_work_on_both_sources(written):
    one, _ = written
    for faces in (load_dataset("synth", str(one)), load_dataset("synth", None, preset="kdef", subjects=2, size=SIZE)):
        split = subject_split(faces, val=0, test=1, seed=0, require_val=False)
        assert len(split.train) == len(split.test) == 70
        assert not set(split.subjects["train"]) & set(split.subjects["test"])
        assert faces.has_pose() and all(s.pose != MISSING for s in faces.samples)


def test_torch_dataset_items():
    from torch.utils.data import DataLoader

    from phanet.data.datasets import FaceDataset, SynthDataset, collate
    from phanet.data.transforms import to_network_input

    data = SynthDataset(preset="multipie", subjects=1, size=SIZE)
    assert isinstance(data, FaceDataset) and len(data) == 6 * 5
    item = data[7]
    sample = data.faces.samples[7]
    assert item["pixels"].shape == (SIZE, SIZE, 3) and item["pixels"].dtype == torch.uint8
    assert (int(item["expression"]), int(item["pose"]), int(item["index"])) == (sample.expression, sample.pose, 7)
    assert np.array_equal(item["pixels"].numpy(), data.faces.load_image(7))
    batch = next(iter(DataLoader(data, batch_size=4, collate_fn=collate)))
    assert batch["pixels"].shape == (4, SIZE, SIZE, 3) and batch["index"].tolist() == [0, 1, 2, 3]
    images = to_network_input(batch["pixels"])
    assert images.shape == (4, 3, SIZE, SIZE) and -1.0 <= float(images.min()) < 0 < float(images.max()) <= 1.0


@pytest.mark.slow
@pytest.mark.parametrize(
    "name, images, per_pose, neutral",
    [
        ("bu3dfe", 100 * (6 * 4 + 1) * 9, 2500, 900),
        ("kdef", 70 * 7 * 2 * 5, 980, 700),
        ("multipie", 270 * 6 * 5, 1620, 1350),
        ("continuous", 100 * (6 * 4 + 1) * 9, None, 900),
        ("affectnet", 100 * (7 * 4 + 1) * 3, None, 300),
    ],
)
def test_preset_counts(name, images, per_pose, neutral):
    faces = load_synth(None, preset=name)
    preset = PRESETS[name]
    assert len(faces) == images
    assert len(faces.subjects()) == preset.subjects
    counts = faces.counts()
    assert counts["expression"]["NE"] == neutral
    assert set(counts["subject"].values()) == {images // preset.subjects}
    if per_pose is not None:
        assert set(counts["pose"].values()) == {per_pose}
    assert len({s.path for s in faces.samples}) == images


def test_bu3dfe_classes_and_intensities():
    faces = load_synth(None, preset="bu3dfe", subjects=3)
    assert faces.expressions == ["AN", "DI", "FE", "HA", "NE", "SA", "SU"]
    assert faces.poses == ["-90", "-60", "-45", "-30", "0", "30", "45", "60", "90"]
    assert faces.subjects() == ["S0001", "S0002", "S0003"]
    by_expression = Counter((faces.expressions[s.expression], s.intensity) for s in faces.samples)
    assert by_expression[("NE", 0)] == 27
    assert all(by_expression[(e, k)] == 27 for e in ("AN", "HA", "SU") for k in (1, 2, 3, 4))


def test_continuous_pose_is_exact_and_binned():
    faces = load_synth(None, preset="continuous", subjects=4, poses=[-90, -45, 0, 45, 90])
    yaws = np.array([s.yaw for s in faces.samples])
    pitches = np.array([s.pitch for s in faces.samples])
    assert yaws.min() >= -90 and yaws.max() <= 90 and np.ptp(yaws) > 150
    assert np.abs(pitches).max() <= 15 and np.ptp(pitches) > 20
    bins = np.array([-90, -45, 0, 45, 90])
    nearest = np.abs(yaws[:, None] - bins[None, :]).argmin(1)
    assert np.array_equal(nearest, [s.pose for s in faces.samples])
    assert faces.poses == ["-90", "-45", "0", "45", "90"]
    again = load_synth(None, preset="continuous", subjects=4, poses=[-90, -45, 0, 45, 90])
    assert again.samples == faces.samples


def test_subjects_do_not_depend_on_how_many_are_generated():
    few = sample_specs(PRESETS["continuous"], 2, seed=5)
    many = sample_specs(PRESETS["continuous"], 5, seed=5)
    assert many[: len(few)] == few
    assert sample_identity(5, 2) == sample_identity(5, 2)
    assert sample_identity(5, 2) != sample_identity(5, 3) != sample_identity(6, 3)


@pytest.mark.slow
def test_identities_have_enough_independent_shape_parameters():
    assert len(SHAPE_PARAMETERS) >= 20
    values = np.array([[sample_identity(0, k).shape[n] for n in SHAPE_PARAMETERS] for k in range(1, 81)])
    assert (values.std(0) > 0).all()
    corr = np.corrcoef(values.T)
    assert np.abs(corr[np.triu_indices(len(SHAPE_PARAMETERS), 1)]).max() < 0.7


def test_symmetric_head_at_plus_30_mirrors_minus_30():
    head = head_for(0, 3, 64, symmetric=True)
    act = ex.activations("HA", 4)
    plus = render_head(head, act, 30.0, 0.0, Scene.plain(), 64).image.astype(int)
    minus = render_head(head, act, -30.0, 0.0, Scene.plain(), 64).image.astype(int)
    diff = np.abs(plus[:, ::-1] - minus)
    assert diff.mean() < 0.5
    assert np.percentile(diff, 99) <= 4
    # Not trivially symmetric: the two views really differ.
    assert np.abs(plus - minus).mean() > 10


@pytest.mark.parametrize("subject", [1, 2, 6])
@pytest.mark.parametrize("pitch", [-20.0, 0.0, 20.0])
def test_far_eye_is_hidden_at_90_degrees(subject, pitch):
    head = head_for(0, subject, 64)
    act = ex.activations("SU", 4)  # eyes wide open
    right = render_head(head, act, 90.0, pitch, Scene.plain(), 64, with_parts=True).parts
    left = render_head(head, act, -90.0, pitch, Scene.plain(), 64, with_parts=True).parts
    assert (right == Part.EYE_LEFT).sum() == 0 and (right == Part.EYE_RIGHT).sum() > 0
    assert (left == Part.EYE_RIGHT).sum() == 0 and (left == Part.EYE_LEFT).sum() > 0
    front = render_head(head, act, 0.0, pitch, Scene.plain(), 64, with_parts=True).parts
    assert (front == Part.EYE_LEFT).sum() > 0 and (front == Part.EYE_RIGHT).sum() > 0


def _pupil_window(image, landmarks, name, size, radius):
    """The grey pixels within ``radius`` pixels of pupil ``name``, with their (row, column) offsets."""
    x, y = landmarks[LANDMARKS.index(name), :2] * size
    rows, cols = np.mgrid[0:size, 0:size] + 0.5
    near = np.hypot(cols - x, rows - y) <= radius
    return image.mean(-1)[near], rows[near] - y, cols[near] - x


@pytest.mark.slow
@pytest.mark.parametrize("light_x", [-0.35, 0.35])
def test_catchlight_is_the_key_lights_reflection_on_each_cornea(light_x, monkeypatch):
    head = head_for(0, 1, 224)
    lit = dataclasses.replace(Scene.plain(), light=(light_x, 0.35, float(np.sqrt(1 - light_x**2 - 0.35**2))))
    shown = render_head(head, {}, 0.0, 0.0, lit, 224)
    monkeypatch.setattr(render, "CATCHLIGHT_GAIN", 0.0)
    plain = render_head(head, {}, 0.0, 0.0, lit, 224)
    for name in ("right_eye", "left_eye"):
        grey, dy, dx = _pupil_window(shown.image, shown.landmarks, name, 224, 5.0)  # the iris is ~6 px wide
        dark, _, _ = _pupil_window(plain.image, plain.landmarks, name, 224, 5.0)
        brightest = int(np.argmax(grey))
        assert grey[brightest] > 240 and dark.max() < 200
        # Up and towards the light, off the pupil's centre by less than the iris radius.
        assert dy[brightest] < 0 and np.sign(dx[brightest]) == np.sign(light_x)
    changed = np.abs(shown.image.astype(int) - plain.image).max(-1) > 0
    assert 2 <= changed.sum() <= 40


@pytest.mark.parametrize("expression", ["HA", "AN", "DI"])
def test_the_eyeball_shows_only_through_the_lid_opening(expression):
    """Cheeks raised (AU6) or brows lowered (AU4) move the skin over the eye; the lids slide over the
    eyeball, so each eye is seen through one opening, not also as a crescent through the skin."""
    head = head_for(0, 1, 224)
    parts = render_head(head, ex.activations(expression, 4), 0.0, 0.0, Scene.plain(), 448, with_parts=True).parts
    for part in (Part.EYE_RIGHT, Part.EYE_LEFT):
        count, _ = cv2.connectedComponents((parts == part).astype(np.uint8), connectivity=8)
        assert count - 1 == 1


def test_the_upper_lid_shades_the_eyeball_below_its_margin_wherever_the_margin_is():
    """The lid and lashes darken the eyeball in a band just below the upper lid margin; AU5 raises the
    margin and the band with it, baring lit sclera where the neutral lid's shadow was."""
    head = head_for(0, 1, 112)
    rig = head.eyes[0]
    start, stop = head.eyeballs[0]
    centre_x = 0.5 * (rig.inner_x + rig.outer_x)
    # Eyeball vertices on the vertical through the middle of the opening, on its visible front.
    ball = head.vertices[start:stop]
    column = np.flatnonzero((np.abs(ball[:, 0] - centre_x) < 1.5) & (ball[:, 2] > ball[:, 2].max() - 6.0))
    for act in ({}, {"5": (1.0, 1.0)}):
        _, albedo = ex.deform(head, act)
        upper, _ = ex.lid_margins(head, act, 0)
        u = (ball[column, 0] - rig.inner_x) / (rig.outer_x - rig.inner_x)
        margin_y = rig.inner_y + (rig.outer_y - rig.inner_y) * u + upper * ex._upper_lid_shape(u)
        ratio = albedo[start:stop][column].mean(1) / head.albedo[start:stop][column].mean(1)
        below = margin_y - ball[column, 1]
        expected = 1.0 - ex.LID_SHADOW * np.exp(-((np.clip(below, 0.0, None) / ex.LID_SHADOW_WIDTH) ** 2))
        assert np.allclose(ratio, expected, atol=0.02)
        assert ratio[below > 3 * ex.LID_SHADOW_WIDTH].min() > 0.99 and ratio[np.abs(below) < 0.5].max() < 0.5
    # AU5 lifts the margin 3.8 mm: 2 mm under the neutral margin the eyeball is lit again.
    neutral_margin = 0.5 * (rig.inner_y + rig.outer_y) + rig.upper * ex._upper_lid_shape(np.array(0.5))
    point = column[np.argmin(np.abs(neutral_margin - 2.0 - ball[column, 1]))]
    darkening = [
        ex.deform(head, act)[1][start + point].mean() / head.albedo[start + point].mean() for act in ({}, {"5": (1.0, 1.0)})
    ]
    assert darkening[0] < 0.85 < 0.97 < darkening[1]


def test_skin_texture_is_mirrored_with_the_head_and_fades_below_two_pixels():
    head = head_for(0, 3, 112, symmetric=True)
    points = head.vertices[: head.skin_count][::40]
    grain, sheen = skin_texture(head, points, 4.0)
    assert 0.88 < grain.min() < 0.99 < 1.01 < grain.max() < 1.12 and 0.005 < grain.std() < 0.05
    assert sheen.min() >= 0.0 and sheen.std() > 0.2
    mirrored = skin_texture(head, points * np.array([-1.0, 1.0, 1.0]), 4.0)
    assert np.allclose(mirrored[0], grain) and np.allclose(mirrored[1], sheen)
    # A wave of p pixels keeps what a pixel's area leaves of it, sinc(1/p), and none at 2 pixels or fewer.
    assert texture_weight(2.0) == 0.0 and texture_weight(1.0) == 0.0
    assert texture_weight(10.0) == pytest.approx(np.sin(np.pi / 10) / (np.pi / 10))
    weights = [texture_weight(p) for p in np.linspace(2.0, 12.0, 41)]
    assert np.all(np.diff(weights) > 0) and 0.0 < weights[1] < 0.15
    # At 0.5 pixel per mm (the 2.5 mm mottling spans 1.25 pixels) both textures are left out.
    flat = skin_texture(head, points, 0.5)
    assert np.all(flat[0] == 1.0) and np.all(flat[1] == 1.0)


def test_positive_yaw_turns_the_nose_to_the_right():
    head = head_for(0, 1, 64)
    xs = {}
    for yaw in (-45.0, 0.0, 45.0):
        parts = render_head(head, {}, yaw, 0.0, Scene.plain(), 64, with_parts=True).parts
        xs[yaw] = np.argwhere(parts == Part.EYE_RIGHT)[:, 1].mean() + np.argwhere(parts == Part.EYE_LEFT)[:, 1].mean()
    assert xs[-45.0] < xs[0.0] < xs[45.0]


@pytest.mark.parametrize("expression", sorted(ex.EXPRESSIONS))
def test_intensity_zero_is_neutral(expression):
    head = head_for(0, 2, SIZE)
    assert all(a == (0.0, 0.0) for a in ex.activations(expression, 0).values())
    neutral = render_head(head, ex.activations("NE", 0), 30.0, 0.0, Scene.plain(), SIZE).image
    zero = render_head(head, ex.activations(expression, 0), 30.0, 0.0, Scene.plain(), SIZE).image
    assert np.array_equal(neutral, zero)
    if expression != "NE":
        full = render_head(head, ex.activations(expression, 4), 30.0, 0.0, Scene.plain(), SIZE).image
        assert np.abs(full.astype(int) - neutral).mean() > 0.25


@pytest.mark.parametrize("expression", ["AN", "DI", "FE", "HA", "SA", "SU", "CO", "SC", "SQ"])
def test_intensity_grows_monotonically(expression):
    head = head_for(0, 4, SIZE)
    neutral, _ = ex.deform(head, {})
    moved = []
    for level in range(5):
        v, _ = ex.deform(head, ex.activations(expression, level))
        moved.append(np.abs(v - neutral).sum(1).mean())
    assert moved[0] == 0.0
    assert all(a < b for a, b in zip(moved[:-1], moved[1:], strict=True))
    # Level 1 is subtle: at most a third of the full movement.
    assert moved[1] < moved[4] / 3


def test_identity_variation_is_smaller_than_expressions():
    layouts = [make_layout(sample_identity(0, k)) for k in range(1, 61)]
    brow_sd = np.std([lay.brow_y[1] for lay in layouts])
    open_sd = np.std([lay.eye_open for lay in layouts])
    head = head_for(0, 1, SIZE)
    rig = head.eyes[1]
    brow = np.flatnonzero(
        (np.abs(head.vertices[: head.skin_count, 0] - 36) < 4)
        & (np.abs(head.vertices[: head.skin_count, 1] - head.layout.brow_y[1]) < 3)
        & (head.vertices[: head.skin_count, 2] > 60)
    )
    raised, _ = ex.deform(head, ex.activations("SU", 4))
    assert (raised[brow, 1] - head.vertices[brow, 1]).mean() > 2.5 * brow_sd
    upper_neutral, _ = ex.lid_margins(head, {}, 1)
    upper_wide, _ = ex.lid_margins(head, ex.activations("SU", 4), 1)
    assert upper_wide - upper_neutral > 4 * open_sd
    assert rig.upper > 0


def test_contempt_is_one_sided():
    act = ex.activations("CO", 4)
    assert act["14"][0] > 0 and act["14"][1] == 0
    assert all(right == left for right, left in ex.activations("HA", 3).values())


def test_rasterizer_depth_test_and_coverage():
    # Two overlapping squares: the nearer one (depth 1) wins where they overlap.
    xy = np.array([[1, 1], [7, 1], [7, 7], [1, 7], [4, 4], [10, 4], [10, 10], [4, 10]], float)
    depth = np.array([0, 0, 0, 0, 1, 1, 1, 1], float)
    colors = np.array([[1, 0, 0]] * 4 + [[0, 1, 0]] * 4, np.float32)
    tris = np.array([[0, 2, 1], [0, 3, 2], [4, 6, 5], [4, 7, 6]])
    r = rasterize(xy, depth, colors, tris, 12, 12)
    assert r.mask.sum() == 36 + 36 - 9
    assert np.allclose(r.color[5, 5], [0, 1, 0]) and np.allclose(r.color[2, 2], [1, 0, 0])
    assert not r.mask[0, 0] and r.triangle[0, 0] == -1
    # Back-facing (clockwise in a y-up frame) triangles are culled.
    assert not rasterize(xy, depth, colors, tris[:, ::-1], 12, 12).mask.any()


@pytest.mark.slow
def test_preview_writes_two_contact_sheets(tmp_path):
    target = tmp_path / "sheets" / "multipie.png"
    assert main(["synth", "--preset", "multipie", "--size", "32", "--preview", str(target)]) == 0
    sheet = read_image(target)
    identities = read_image(tmp_path / "sheets" / "multipie_identities.png")
    assert sheet.shape == (28 + 6 * 32, 28 + 5 * 32, 3)
    assert identities.shape == (4 * 32, 8 * 32, 3)


def test_the_renderer_loads_neither_torch_nor_lightning():
    """Rendering, writing a folder and contact sheets need NumPy and OpenCV, never the training stack."""
    code = (
        "import sys, phanet.synth, phanet.synth.generate, phanet.synth.landmarks, phanet.synth.preview; "
        "print('torch' in sys.modules, 'lightning' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["False", "False"], result.stderr


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--preset", "bu4dfe"], "--preset: unknown preset 'bu4dfe'"),
        (["--size", "0"], "--size: expected an image size in pixels from 32 to 1024, got 0"),
        (["--subjects", "0"], "--subjects: expected a whole number of subjects >= 1"),
        (["--preset", "continuous", "--yaw-range", "-120", "90"], "--yaw-range: expected MIN <= MAX within [-90, 90]"),
        (["--preset", "bu3dfe", "--yaw-range", "-30", "30"], "--yaw-range: only continuous presets"),
        (["--pitch-range", "-40", "10"], "--pitch-range: expected MIN <= MAX within [-30, 30]"),
        (["--preset", "continuous", "--poses", "0", "100"], "--poses: expected distinct angles within [-90, 90]"),
        (["--workers", "0"], "--workers: expected at least 1"),
        ([], "--out: give a folder"),
    ],
)
def test_bad_arguments_give_one_line_errors(argv, message, capsys, tmp_path):
    assert main(["synth", *argv] + (["--out", str(tmp_path / "out")] if argv else [])) == 2
    err = capsys.readouterr().err
    assert err.startswith("phanet synth: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_unwritable_or_foreign_output_folder(capsys, tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    assert main(["synth", "--subjects", "1", "--size", "32", "--out", str(blocker / "data")]) == 2
    err = capsys.readouterr().err
    assert f"--out: cannot write to {blocker / 'data'}" in err and err.count("\n") == 1
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    assert main(["synth", "--subjects", "1", "--size", "32", "--out", str(full)]) == 2
    assert "is not empty" in capsys.readouterr().err


def test_loader_options_are_checked():
    assert set(dataset_options("synth")) >= {"preset", "subjects", "size", "seed", "poses"}
    with pytest.raises(Exception, match=r"data.options.preset: unknown preset 'nope'"):
        load_dataset("synth", None, preset="nope")
    with pytest.raises(Exception, match=r"data.options.size: expected an image size"):
        load_dataset("synth", None, size=8)
    with pytest.raises(Exception, match=r"data.root: .* has no manifest.csv"):
        load_dataset("synth", "/")
    with pytest.raises(Exception, match="yaw: expected degrees within"):
        render_head(head_for(0, 1, SIZE), {}, 95.0, 0.0, Scene.plain(), SIZE)
    assert resolve_settings("affectnet", 3, 64, 2).preset.yaw_range == (-45.0, 45.0)


def test_folder_options_must_match(written):
    one, _ = written
    assert len(load_dataset("synth", str(one), preset="kdef", size=SIZE)) == 140
    with pytest.raises(Exception, match=r"data.options.size: .* was generated with size=48, got 64"):
        load_dataset("synth", str(one), size=64)


@pytest.mark.slow
def test_interrupted_run_resumes(tmp_path, written):
    one, _ = written
    out = tmp_path / "resume"
    argv = ["synth", "--preset", "kdef", "--subjects", "2", "--size", str(SIZE), "--out", str(out)]
    assert main(argv) == 0
    removed = sorted(out.rglob("*.png"))[::3]
    for path in removed:
        path.unlink()
    assert main(argv) == 0
    assert _files(out) == _files(one)
