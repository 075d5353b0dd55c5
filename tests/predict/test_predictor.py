"""phanet predict and the Predictor API: parity with evaluate, detection, colour order, odd files, videos."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from phanet.cli import main
from phanet.data.datasets import FaceDataset
from phanet.data.faces import crop_face, crop_square
from phanet.data.io import read_image
from phanet.data.registry import load_dataset
from phanet.data.transforms import preprocess, to_network_input
from phanet.errors import PhanetError
from phanet.evaluation import evaluate
from phanet.inference import TrainedModel
from phanet.predict import ModelInfo, Predictor, array_to_rgb, columns, draw_predictions
from phanet.results import PIXEL_SQUARE_COLUMNS, face_rows, pixel_squares, prediction_columns
from phanet.training.run_folder import read_predictions
from predict_helpers import astronaut, astronaut_path, isolated_threads, tiny_checkpoint  # noqa: F401

pytestmark = pytest.mark.usefixtures("isolated_threads")

CLASSES = (["AN", "HA", "NE", "SU"], ["-30", "0", "30"])


@pytest.fixture(scope="module")
def checkpoint(tiny_manifest, tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory, tiny_manifest)


@pytest.fixture(scope="module")
def predictor(checkpoint) -> Predictor:
    return Predictor.from_checkpoint(checkpoint)


def _predict_cli(*args: str) -> int:
    return main(["predict", *map(str, args), "--no-progress"])


def _without_file(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns="file").reset_index(drop=True)


def _assert_full_row(row: pd.Series, expressions: list[str], poses: list[str]) -> None:
    assert row["status"] == "ok" and row["frame"] == -1 and row["face"] == 0
    for name in columns(expressions, poses):
        assert not pd.isna(row[name]), name
    assert math.isclose(sum(row[f"prob_{e}"] for e in expressions), 1.0, abs_tol=1e-5)
    assert math.isclose(sum(row[f"pose_prob_{p}"] for p in poses), 1.0, abs_tol=1e-5)
    assert row["expression_prob"] == max(row[f"prob_{e}"] for e in expressions)
    assert row["prob_" + row["expression"]] == row["expression_prob"]
    assert row["pose_prob_" + str(row["pose"])] == row["pose_prob"]
    assert math.isclose(row["lambda_e"] + row["lambda_p"], 1.0, abs_tol=1e-6) and row["lambda_e"] >= row["lambda_p"]
    assert all(0 < row[c] < 1 for c in ("c1", "c2", "c3"))


# ------------------------------------------------------------------------------- parity with evaluate


@pytest.mark.slow
def test_predict_on_a_folder_reproduces_evaluate(checkpoint, tiny_manifest, tmp_path, capsys):
    evaluated_dir, predicted_csv = tmp_path / "eval", tmp_path / "predicted.csv"
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(checkpoint),
                "--data",
                str(tiny_manifest),
                "--split",
                "all",
                "--out",
                str(evaluated_dir),
            ]
        )
        == 0
    )
    assert _predict_cli(tiny_manifest.parent, "--checkpoint", checkpoint, "--no-detect", "--out", predicted_csv) == 0
    summary = json.loads((evaluated_dir / "evaluation.json").read_text())
    evaluated = pd.read_csv(evaluated_dir / "predictions.csv")
    predicted = pd.read_csv(predicted_csv)
    predicted["path"] = [Path(f).name for f in predicted["file"]]
    merged = evaluated.merge(predicted, on="path", suffixes=("_eval", "_predict"), validate="one_to_one")
    assert len(merged) == len(evaluated) == len(predicted) == 8 * 4 * 3 * 2
    assert (predicted["status"] == "ok").all() and (predicted["face_source"] == "whole_image").all()
    assert (merged["expression_eval"] == merged["expression_predict"]).all()
    assert (merged["pose_eval"].astype(str) == merged["pose_predict"].astype(str)).all()
    for name in ("prob_AN", "prob_HA", "prob_NE", "prob_SU", "pose_prob_-30", "pose_prob_0", "pose_prob_30", "c3"):
        np.testing.assert_allclose(merged[f"{name}_eval"], merged[f"{name}_predict"], atol=1e-5)
    accuracy = (merged["expression_predict"] == merged["true_expression"]).mean()
    assert accuracy == pytest.approx(summary["expression_accuracy"], abs=1e-12)
    assert "192 images or frames, 192 faces" in capsys.readouterr().out


def test_evaluate_and_predict_without_detection_give_the_same_rows(checkpoint, tiny_manifest, tmp_path):
    manifest = pd.read_csv(tiny_manifest)
    subset = manifest.iloc[::5].copy()  # 39 images, every class, in manifest order
    subset["path"] = [str(tiny_manifest.parent / p) for p in subset["path"]]
    subset.to_csv(tmp_path / "subset.csv", index=False)
    assert (
        main(
            [
                "evaluate",
                "--checkpoint",
                str(checkpoint),
                "--data",
                str(tmp_path / "subset.csv"),
                "--split",
                "all",
                "--out",
                str(tmp_path / "eval"),
                "--batch-size",
                "16",
                "--no-progress",
            ]
        )
        == 0
    )
    assert (
        _predict_cli(
            *subset["path"], "--checkpoint", checkpoint, "--no-detect", "--batch-size", "16", "--out", tmp_path / "predicted.csv"
        )
        == 0
    )
    evaluated = read_predictions(tmp_path / "eval" / "predictions.csv")
    predicted = pd.read_csv(tmp_path / "predicted.csv", dtype={"expression": str, "pose": str})
    shared = prediction_columns(*CLASSES)
    assert list(evaluated.columns) == ["index", "path", "subject", "true_expression", "true_pose", *shared]
    assert list(predicted.columns) == columns(*CLASSES) and columns(*CLASSES)[-len(shared) :] == shared
    assert evaluated["path"].tolist() == predicted["file"].tolist() == subset["path"].tolist()
    assert evaluated["expression"].tolist() == predicted["expression"].tolist()
    assert evaluated["pose"].tolist() == predicted["pose"].tolist()
    # The same batches through the same step: equal to the last bit of the float32 outputs.
    numbers = [c for c in shared if c not in ("expression", "pose") and c not in PIXEL_SQUARE_COLUMNS]
    np.testing.assert_array_equal(evaluated[numbers].to_numpy(np.float32), predicted[numbers].to_numpy(np.float32))
    assert np.ptp(predicted["prob_HA"]) > 1e-3  # the rows are not all alike
    assert ((predicted["s3_l"] > 0) & (predicted["s3_l"] < predicted["s2_l"]) & (predicted["s2_l"] < 0.5)).all()
    # Evaluation reads its images at the network's size, so only prediction knows the squares in pixels:
    # here the whole 32 x 32 image is the input.
    assert evaluated[list(PIXEL_SQUARE_COLUMNS)].isna().all(axis=None)
    for scale in ("s2", "s3"):
        x, y, half = (predicted[f"{scale}_{k}"].to_numpy() for k in ("x", "y", "l"))
        corners = predicted[[f"{scale}_{k}" for k in ("x0", "y0", "x1", "y1")]].to_numpy()
        np.testing.assert_allclose(corners, 32 * np.stack([x - half, y - half, x + half, y + half], 1), rtol=1e-6)


def test_the_shared_step_computes_probabilities_and_pixel_squares_and_blanks_non_finite_faces():
    info = ModelInfo(["AN", "HA"], ["-30", "0", "30"], 8, "phanet")

    def backend(images: np.ndarray) -> dict[str, np.ndarray]:
        assert images.shape == (2, 3, 8, 8)
        return {
            "expression_logits": np.array([[0.0, math.log(3.0)], [0.0, -np.inf]], np.float32),
            "pose_logits": np.log(np.array([[1, 2, 1], [1, 1, 1]], np.float32)),
            "boxes": np.array([[[0.5, 0.5, 0.25], [0.5, 0.25, 0.125]], [[0.5, 0.5, 0.5]] * 2], np.float32),
            "scale_weights": np.array([[0.5, 0.25, 1.0]] * 2, np.float32),
            "task_weights": np.array([[0.75, 0.25]] * 2, np.float32),
        }

    rows = face_rows(backend, np.zeros((2, 3, 8, 8), np.float32), info, [(10, 20, 100, 50), (0, 0, 8, 8)])
    assert list(rows.columns) == prediction_columns(info.expressions, info.poses)
    first = rows.iloc[0]
    assert first["expression"] == "HA" and first["pose"] == "0"
    np.testing.assert_allclose(first[["prob_AN", "prob_HA", "expression_prob"]].tolist(), [0.25, 0.75, 0.75], atol=1e-6)
    np.testing.assert_allclose(first[["pose_prob_-30", "pose_prob_0", "pose_prob_30"]].tolist(), [0.25, 0.5, 0.25], atol=1e-6)
    # S2 = centre (0.5, 0.5), half side 0.25 of a 100 x 50 region at (10, 20); S3 = (0.5, 0.25), half side 0.125.
    assert first[list(PIXEL_SQUARE_COLUMNS)].tolist() == [35, 32.5, 85, 57.5, 47.5, 26.25, 72.5, 38.75]
    assert first[["s3_x", "s3_y", "s3_l", "c2", "lambda_p"]].tolist() == [0.5, 0.25, 0.125, 0.25, 0.25]
    # An infinite logit leaves finite probabilities, but its arg-max is no prediction: the row stays blank.
    assert rows.iloc[1].isna().all()
    assert face_rows(backend, np.zeros((2, 3, 8, 8), np.float32), info)[list(PIXEL_SQUARE_COLUMNS)].isna().all(axis=None)
    np.testing.assert_array_equal(
        pixel_squares(np.array([[[0.5, 0.5, 0.5], [0.25, 0.75, 0.25]]]), np.array([[0, 0, 40, 20]])),
        [[0, 0, 40, 20, 0, 10, 20, 20]],
    )


def test_library_errors_name_the_parameter_and_commands_their_flag(checkpoint, predictor, tiny_manifest, tmp_path, capsys):
    for kwargs, message in (
        ({"batch_size": 0}, "batch_size: expected 1 or more, got 0"),
        ({"min_face": 0}, "min_face: expected 1 or more pixels, got 0"),
        ({"margin": -0.1}, "margin: expected a fraction of the face's size from 0 to 2, got -0.1"),
    ):
        with pytest.raises(PhanetError) as raised:
            Predictor(predictor.model, **kwargs)
        assert str(raised.value) == message
    with pytest.raises(PhanetError, match=r"^every_nth_frame: expected 1 or more, got 0$"):
        predictor.predict(astronaut_path(), every_nth_frame=0)
    with pytest.raises(PhanetError, match=r"^backend: expected torch or onnx, got 'tf'$"):
        Predictor.from_checkpoint(checkpoint, backend="tf")
    with pytest.raises(PhanetError, match=r"^path: .*absent.onnx not found$"):
        Predictor.load(tmp_path / "absent.onnx")
    with pytest.raises(PhanetError, match=r"^batch_size: expected 1 or more, got 0$"):
        evaluate(TrainedModel.from_checkpoint(checkpoint), load_dataset("manifest", str(tiny_manifest)), batch_size=0)
    assert _predict_cli(astronaut_path(), "--checkpoint", checkpoint, "--min-face", "0") == 2
    assert capsys.readouterr().err.strip() == "phanet predict: error: --min-face: expected 1 or more pixels, got 0"
    assert _predict_cli(astronaut_path(), "--checkpoint", tmp_path / "absent.onnx") == 2
    assert capsys.readouterr().err.strip() == f"phanet predict: error: --checkpoint: {tmp_path / 'absent.onnx'} not found"


def test_predict_feeds_the_network_exactly_what_evaluation_feeds_it(checkpoint, tiny_manifest):
    predictor = Predictor.from_checkpoint(checkpoint, detect=False, batch_size=8)
    recorded: list[np.ndarray] = []
    inner = predictor.model.backend
    predictor.model.backend = lambda images: (recorded.append(images.copy()), inner(images))[1]
    faces = load_dataset("manifest", str(tiny_manifest))
    predictor.predict([faces.image_path(s) for s in faces.samples[:8]])
    dataset = FaceDataset(faces, predictor.info.input_size)
    assert len(recorded) == 1 and recorded[0].shape == (8, 3, 32, 32)
    evaluated = to_network_input(dataset.__getitems__(list(range(8)))["pixels"])
    np.testing.assert_array_equal(recorded[0], evaluated.numpy())


@pytest.mark.slow
def test_detected_faces_are_cropped_as_phanet_prepare_crops_them(predictor, tmp_path):
    prepare = pytest.importorskip("phanet.data.prepare")
    from phanet.data.records import LabeledFaces, Sample

    source = tmp_path / "src"
    source.mkdir()
    Image.open(astronaut_path()).save(source / "astronaut.png")
    faces = LabeledFaces("photo", ["AN"], [], [Sample("astronaut.png", "s0", 0)], root=source)
    size = predictor.info.input_size
    prepared = prepare.prepare_faces(faces, tmp_path / "prepared", {"dataset": "test"}, size=size, margin=0.2, progress=False)
    crop = read_image(prepared.out / "images" / "astronaut.png")
    recorded: list[np.ndarray] = []
    inner = predictor.model.backend
    predictor.model.backend = lambda images: (recorded.append(images.copy()), inner(images))[1]
    try:
        predictor.predict(source / "astronaut.png")
    finally:
        predictor.model.backend = inner
    np.testing.assert_array_equal(recorded[0][0], preprocess(crop, size).numpy())


def test_the_crop_square_is_the_one_crop_face_cuts():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (120, 90, 3), dtype=np.uint8)
    padded = np.zeros((520, 490, 3), dtype=np.uint8)
    padded[200:320, 200:290] = image
    for box in [(10, 20, 30, 40), (0.5, 3.2, 17.9, 12.1), (70, 100, 30, 30), (-5, -8, 40, 25)]:
        for margin in (0.0, 0.2, 0.45):
            x0, y0, w, h = (int(v) for v in crop_square(box, margin))
            assert w == h
            np.testing.assert_array_equal(
                crop_face(image, box, margin, None), padded[200 + y0 : 200 + y0 + h, 200 + x0 : 200 + x0 + w]
            )


# ---------------------------------------------------------------------------------- real photographs


@pytest.mark.slow
def test_a_real_photograph_gives_a_full_row_with_the_squares_inside_the_face(predictor):
    table = predictor.predict(astronaut_path())
    assert list(table.columns) == columns(*CLASSES)
    row = table.iloc[0]
    _assert_full_row(row, *CLASSES)
    assert row["file"] == str(astronaut_path()) and row["face_source"] == "yunet"
    # Eileen Collins' face in astronaut.png lies around x 175..270, y 60..165.
    assert 150 < row["face_x"] + row["face_w"] / 2 < 290 and 50 < row["face_y"] + row["face_h"] / 2 < 170
    assert 60 < row["face_w"] < 160
    x0, y0, side, _ = crop_square((row["face_x"], row["face_y"], row["face_w"], row["face_h"]), 0.2)
    for scale in ("s2", "s3"):
        left, top, right, bottom = (row[f"{scale}_{k}"] for k in ("x0", "y0", "x1", "y1"))
        assert x0 - 1e-6 <= left < right <= x0 + side + 1e-6 and y0 - 1e-6 <= top < bottom <= y0 + side + 1e-6
        assert right - left == pytest.approx(bottom - top)
    assert row["s2_x0"] <= row["s3_x0"] and row["s3_x1"] <= row["s2_x1"] + 1e-6  # S3 is cut from S2


@pytest.mark.slow
def test_no_face_and_unreadable_files_get_status_rows_and_the_run_goes_on(predictor, tmp_path):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((200, 240, 3), 128, np.uint8)).save(blank)
    text = tmp_path / "notes.jpg"
    text.write_text("this is not a picture\n")
    table = predictor.predict([blank, text, astronaut_path()])
    assert table["status"].tolist() == ["no_face", "unreadable", "ok"]
    assert table["face"].tolist() == [-1, -1, 0] and table["frame"].tolist() == [-1, -1, -1]
    assert table.loc[:1, "expression":].isna().all().all()


@pytest.mark.slow
def test_the_cli_writes_status_rows_to_csv_and_json(checkpoint, tmp_path):
    text = tmp_path / "in" / "broken.jpg"
    text.parent.mkdir()
    text.write_text("not an image")
    Image.open(astronaut_path()).save(tmp_path / "in" / "astronaut.png")
    assert _predict_cli(tmp_path / "in", "--checkpoint", checkpoint, "--out", tmp_path / "r.csv") == 0
    assert _predict_cli(tmp_path / "in", "--checkpoint", checkpoint, "--out", tmp_path / "r.json") == 0
    csv = pd.read_csv(tmp_path / "r.csv", keep_default_na=False, dtype=str)
    rows = json.loads((tmp_path / "r.json").read_text())
    assert list(csv.columns) == list(rows[0]) == columns(*CLASSES)
    assert [r["status"] for r in rows] == csv["status"].tolist() == ["ok", "unreadable"]
    assert rows[1]["expression"] is None and rows[1]["face_x"] is None and rows[1]["frame"] == -1
    assert csv.loc[1, "expression"] == "" and csv.loc[1, "frame"] == "-1"
    assert rows[0]["prob_HA"] == pytest.approx(float(csv.loc[0, "prob_HA"]), abs=1e-9)


def test_missing_paths_and_unopenable_videos_are_one_line_errors(checkpoint, tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert _predict_cli(astronaut_path(), tmp_path / "absent.png", "--checkpoint", checkpoint, "--out", out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"phanet predict: error: {tmp_path / 'absent.png'}: no such file or folder"]
    assert not out.exists()
    video = tmp_path / "clip.mp4"
    video.write_text("not a video")
    assert _predict_cli(video, "--checkpoint", checkpoint, "--out", out) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(video) in err[0] and "cannot be opened as a video" in err[0]
    assert not out.exists()
    with pytest.raises(PhanetError, match="no such file"):
        Predictor.from_checkpoint(checkpoint).predict(tmp_path / "absent.png")


@pytest.mark.slow
def test_existing_outputs_are_not_overwritten_without_overwrite(checkpoint, tmp_path, capsys):
    out = tmp_path / "r.csv"
    out.write_text("mine\n")
    assert _predict_cli(astronaut_path(), "--checkpoint", checkpoint, "--out", out) == 2
    assert out.read_text() == "mine\n" and "--overwrite" in capsys.readouterr().err
    assert _predict_cli(astronaut_path(), "--checkpoint", checkpoint, "--out", tmp_path / "r.txt") == 2
    assert ".csv or .json" in capsys.readouterr().err
    assert _predict_cli(astronaut_path(), "--checkpoint", checkpoint, "--out", out, "--overwrite") == 0
    assert pd.read_csv(out)["status"].tolist() == ["ok"]


# ------------------------------------------------------------------------------ colour order and formats


@pytest.mark.slow
def test_file_rgb_array_and_bgr_frame_give_the_same_row(predictor):
    skimage_data = pytest.importorskip("skimage.data")
    from_file = predictor.predict(str(astronaut_path()))
    from_rgb = predictor.predict(skimage_data.astronaut())
    bgr = cv2.imread(str(astronaut_path()))  # OpenCV decodes to BGR
    from_bgr = predictor.predict(bgr, color="bgr")
    from_pil = predictor.predict(Image.open(astronaut_path()))
    assert from_rgb["file"].tolist() == ["<array 0>"] and from_pil["file"].tolist() == ["<image 0>"]
    for other in (from_rgb, from_bgr, from_pil):
        pd.testing.assert_frame_equal(_without_file(from_file), _without_file(other))
    swapped = predictor.predict(bgr)  # a BGR frame taken for RGB: the mix-up the colour argument prevents
    assert not np.allclose(swapped["prob_AN"], from_file["prob_AN"], atol=1e-6)


@pytest.mark.slow
def test_an_exif_rotated_jpeg_is_read_upright(predictor, tmp_path):
    upright = np.ascontiguousarray(astronaut()[:, 64:448])  # 512 high, 384 wide
    Image.fromarray(upright).save(tmp_path / "upright.jpg", quality=95)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to display": the pixels are stored turned 90° anticlockwise
    Image.fromarray(np.ascontiguousarray(np.rot90(upright))).save(tmp_path / "rotated.jpg", quality=95, exif=exif)
    whole = predictor.predict([tmp_path / "upright.jpg", tmp_path / "rotated.jpg"], detect=False)
    assert whole["face_w"].tolist() == [384, 384] and whole["face_h"].tolist() == [512, 512]
    detected = predictor.predict([tmp_path / "upright.jpg", tmp_path / "rotated.jpg"])
    assert detected["status"].tolist() == ["ok", "ok"]  # a face on its side would not be found
    boxes = detected[["face_x", "face_y", "face_w", "face_h"]].to_numpy()
    np.testing.assert_allclose(boxes[0], boxes[1], atol=4)


@pytest.mark.slow
def test_grayscale_16_bit_and_rgba_pngs(predictor, tmp_path):
    rgb = astronaut()
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    Image.fromarray(gray).save(tmp_path / "gray8.png")
    Image.fromarray(gray.astype(np.uint16) * 257).save(tmp_path / "gray16.png")
    Image.fromarray(np.dstack([rgb, np.full(gray.shape, 255, np.uint8)])).save(tmp_path / "opaque.png")
    alpha = np.dstack([rgb, np.tile(np.linspace(120, 255, 512).astype(np.uint8), (512, 1))])
    Image.fromarray(alpha).save(tmp_path / "translucent.png")
    assert Image.open(tmp_path / "gray16.png").mode.startswith("I")
    table = predictor.predict([tmp_path / n for n in ("gray8.png", "gray16.png", "opaque.png", "translucent.png")])
    assert table["status"].tolist() == ["ok"] * 4
    pd.testing.assert_frame_equal(_without_file(table.iloc[[0]]), _without_file(table.iloc[[1]]))
    pd.testing.assert_frame_equal(_without_file(table.iloc[[2]]), _without_file(predictor.predict(rgb)))
    # In memory: a 16-bit array converts as the 16-bit file does, a BGRA array as RGBA.
    pd.testing.assert_frame_equal(_without_file(predictor.predict(gray.astype(np.uint16) * 257)), _without_file(table.iloc[[0]]))
    pd.testing.assert_frame_equal(
        _without_file(predictor.predict(np.ascontiguousarray(alpha[:, :, [2, 1, 0, 3]]), color="bgr")),
        _without_file(table.iloc[[3]]),
    )


def test_array_inputs_are_checked():
    assert array_to_rgb(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert array_to_rgb(np.zeros((4, 5, 1), np.uint8)).shape == (4, 5, 3)
    np.testing.assert_array_equal(array_to_rgb(np.array([[[1, 2, 3]]], np.uint8), "bgr"), [[[3, 2, 1]]])
    with pytest.raises(PhanetError, match="uint8, uint16 or floating-point"):
        array_to_rgb(np.zeros((4, 5, 3), bool))
    with pytest.raises(PhanetError, match="NaN or infinite"):
        array_to_rgb(np.full((4, 5, 3), np.nan, np.float32))
    # Floating-point pictures hold 0 to 1 (scikit-image, matplotlib), or 0 to 255 when a value exceeds 1.
    np.testing.assert_array_equal(array_to_rgb(np.array([[0.0, 0.5, 1.0]], np.float32))[0, :, 0], [0, 128, 255])
    np.testing.assert_array_equal(array_to_rgb(np.array([[0.0, 2.0, 255.0]]))[0, :, 0], [0, 2, 255])
    with pytest.raises(PhanetError, match="shape"):
        array_to_rgb(np.zeros((4, 5, 2), np.uint8))
    with pytest.raises(PhanetError, match="'rgb' or 'bgr'"):
        array_to_rgb(np.zeros((4, 5, 3), np.uint8), "rbg")


def test_batching_does_not_change_the_rows(checkpoint, tiny_manifest):
    paths = sorted(tiny_manifest.parent.glob("s01_*_0.png"))[:8]
    one = Predictor.from_checkpoint(checkpoint, batch_size=1).predict(paths, detect=False)
    many = Predictor.from_checkpoint(checkpoint, batch_size=3).predict(paths, detect=False)
    assert len(one) == len(paths) == 8
    pd.testing.assert_frame_equal(one, many, atol=1e-5, rtol=0)


# -------------------------------------------------------------------------------------------- videos


def _write_video(path: Path, frames: list[np.ndarray]) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5.0, frames[0].shape[1::-1])
    for frame in frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def _decoded_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            return frames
        frames.append(frame)


def test_video_rows_carry_frame_indices_and_every_nth_frame(predictor, tiny_manifest, tmp_path):
    images = [cv2.resize(read_image(p), (64, 64)) for p in sorted(tiny_manifest.parent.glob("s00_*_0.png"))[:7]]
    video = tmp_path / "clip.avi"
    _write_video(video, images)
    decoded = _decoded_frames(video)
    assert len(decoded) == 7
    table = predictor.predict(video, detect=False, every_nth_frame=3)
    assert table["frame"].tolist() == [0, 3, 6] and (table["file"] == str(video)).all()
    assert (table["status"] == "ok").all() and table["face_w"].tolist() == [64] * 3
    frames = predictor.predict([decoded[i] for i in (0, 3, 6)], detect=False, color="bgr")
    pd.testing.assert_frame_equal(_without_file(table.drop(columns="frame")), _without_file(frames.drop(columns="frame")))
    assert predictor.predict(video, detect=False)["frame"].tolist() == list(range(7))


def test_folders_are_searched_recursively_and_broken_videos_in_them_are_rows(predictor, tiny_manifest, tmp_path):
    nested = tmp_path / "a" / "b"
    nested.mkdir(parents=True)
    _write_video(
        nested / "clip.avi", [cv2.resize(read_image(p), (64, 64)) for p in sorted(tiny_manifest.parent.glob("s01_*_0.png"))[:4]]
    )
    (tmp_path / "a" / "broken.mp4").write_text("not a video")
    (tmp_path / "a" / "notes.txt").write_text("not an input")
    Image.fromarray(read_image(next(tiny_manifest.parent.glob("s02_*.png")))).save(tmp_path / "face.png")
    table = predictor.predict(tmp_path, detect=False, every_nth_frame=2)
    files = [Path(f).relative_to(tmp_path).as_posix() for f in table["file"]]
    assert files == ["a/b/clip.avi", "a/b/clip.avi", "a/broken.mp4", "face.png"]
    assert table["frame"].tolist() == [0, 2, -1, -1]
    assert table["status"].tolist() == ["ok", "ok", "unreadable", "ok"]


# ----------------------------------------------------------------------------------------- drawings


@pytest.mark.slow
def test_visualize_draws_the_box_and_squares_and_refuses_to_overwrite(checkpoint, predictor, tiny_manifest, tmp_path, capsys):
    images = [cv2.resize(read_image(p), (64, 64)) for p in sorted(tiny_manifest.parent.glob("s03_*_0.png"))[:3]]
    _write_video(tmp_path / "clip.avi", images)
    (tmp_path / "broken.jpg").write_text("no")
    drawn = tmp_path / "drawn"
    inputs = [astronaut_path(), tmp_path / "clip.avi", tmp_path / "broken.jpg"]
    assert _predict_cli(*inputs, "--checkpoint", checkpoint, "--visualize", drawn, "--every-nth-frame", "2") == 0
    assert sorted(p.name for p in drawn.iterdir()) == ["astronaut.png", "clip_frame000000.jpg", "clip_frame000002.jpg"]
    picture = read_image(drawn / "astronaut.png")
    assert picture.shape == (512, 512, 3)
    row = predictor.predict(astronaut_path()).iloc[0]

    def colour_at(x: float, y: float) -> np.ndarray:
        return picture[int(round(y)), int(round(x))].astype(int)

    green, red, yellow = np.array([40, 220, 80]), np.array([230, 40, 40]), np.array([250, 220, 0])
    assert np.abs(colour_at(row["face_x"] + row["face_w"] / 2, row["face_y"] + row["face_h"]) - green).max() < 40
    assert np.abs(colour_at(row["s2_x0"], (row["s2_y0"] + row["s2_y1"]) / 2) - red).max() < 40
    assert np.abs(colour_at((row["s3_x0"] + row["s3_x1"]) / 2, row["s3_y1"]) - yellow).max() < 40
    assert "drawn: 3 images" in capsys.readouterr().out
    assert _predict_cli(astronaut_path(), "--checkpoint", checkpoint, "--visualize", drawn) == 2
    assert "not empty" in capsys.readouterr().err
    assert _predict_cli(astronaut_path(), "--checkpoint", checkpoint, "--visualize", drawn, "--overwrite") == 0


def test_small_images_are_enlarged_for_drawing_and_status_rows_are_labelled():
    image = np.zeros((32, 48, 3), np.uint8)
    row = {
        "status": "ok",
        "face_x": 0,
        "face_y": 0,
        "face_w": 48,
        "face_h": 32,
        "expression": "HA",
        "expression_prob": 0.9,
        "pose": "-30",
        "s2_x0": 8,
        "s2_y0": 4,
        "s2_x1": 24,
        "s2_y1": 20,
        "s3_x0": math.nan,
        "s3_y0": math.nan,
        "s3_x1": math.nan,
        "s3_y1": math.nan,
    }
    canvas = draw_predictions(image, [row])
    assert canvas.shape == (256, 384, 3)
    assert (canvas[:, :, 0] > 200).any()  # the red S2 square
    assert draw_predictions(image, [{"status": "no_face"}]).any()
