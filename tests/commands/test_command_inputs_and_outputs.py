"""Outputs and inputs a hostile user controls: full disks, earlier results, flags, edited or broken
model files, and dataset folders and manifests that do not say what they seem to. Each is handled
or refused with one line and exit status 2, before any long work and without a traceback."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnx
import pandas as pd
import pytest
import torch
from onnx import TensorProto, numpy_helper
from PIL import Image
from torch import nn

import phanet.inference
from phanet.cli import build_parser, main
from phanet.data.manifest import faces_from_table
from phanet.data.registry import load_dataset
from phanet.errors import PhanetError
from phanet.evaluation import evaluate
from phanet.inference import OnnxBackend, TrainedModel, differences
from phanet.models.info import OUTPUT_NAMES
from phanet.predict import ModelInfo, Predictor
from predict_helpers import isolated_threads, untrained_checkpoint  # noqa: F401

pytestmark = pytest.mark.usefixtures("isolated_threads")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return untrained_checkpoint(tmp_path_factory.mktemp("untrained") / "tiny.ckpt")


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--onnx", str(out)]) == 0
    return out


@pytest.fixture
def face(tmp_path) -> Path:
    Image.new("RGB", (32, 32), (120, 80, 60)).save(tmp_path / "face.png")
    return tmp_path / "face.png"


def one_line_error(capsys, argv: list[str]) -> str:
    """Run the command; it must exit with 2 and one line on stderr. Returns the message after 'error: '."""
    assert main([str(a) for a in argv]) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    return lines[0].split(": error: ", 1)[1]


def no_space_left(fd: int) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def _folder_tree(root: Path, subjects: int) -> Path:
    for s in range(subjects):
        for expression in ("HA", "SA"):
            (root / expression).mkdir(parents=True, exist_ok=True)
            Image.new("RGB", (8, 8), (40 * s % 256, 90, 30)).save(root / expression / f"s{s:02d}_{expression}.png")
    return root


# ----------------------------------------------------------------------------------------- full disk

_LIMITED = """
import resource, signal, sys
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit then fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[1]), resource.RLIM_INFINITY))
from phanet.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow
def test_a_file_size_limit_leaves_the_old_manifest_and_the_rerun_is_accepted(tmp_path, capsys):
    root = _folder_tree(tmp_path / "data", subjects=30)
    old, fresh = tmp_path / "old.csv", tmp_path / "fresh.csv"
    old.write_text("path,subject,expression\n")
    command = ["data", "inspect", "--dataset", "folder", "--root", str(root), "--no-read"]
    for manifest, extra in ((old, ["--overwrite"]), (fresh, [])):
        done = subprocess.run(
            [sys.executable, "-c", _LIMITED, "1000", *command, "--manifest", str(manifest), *extra],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.strip().splitlines() == [
            f"phanet data: error: {manifest}: could not write (File too large; the old file, if any, is unchanged)"
        ]
    assert old.read_text() == "path,subject,expression\n" and not fresh.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "old.csv"]  # no temporary file left
    assert main([*command, "--manifest", str(fresh)]) == 0
    assert len(pd.read_csv(fresh)) == 60


@pytest.mark.slow
def test_a_full_disk_under_predict_evaluate_and_export_leaves_nothing_half_written(
    checkpoint, exported, tiny_manifest, face, tmp_path, monkeypatch, capsys
):
    rows, kept, evaluated, onnx_out = (tmp_path / "rows.json", tmp_path / "kept.csv", tmp_path / "eval", tmp_path / "out.onnx")
    kept.write_text("mine\n")
    # The export itself is not under test here: its bytes come from the module's export.
    monkeypatch.setattr(phanet.inference, "onnx_bytes", lambda *args, **kwargs: exported.read_bytes())
    full = "could not write (No space left on device; the old file, if any, is unchanged)"
    predict = ["predict", face, "--checkpoint", checkpoint, "--no-detect", "--no-progress"]
    evaluate_argv = [
        "evaluate",
        "--checkpoint",
        checkpoint,
        "--data",
        tiny_manifest,
        "--split",
        "all",
        "--out",
        evaluated,
        "--no-progress",
    ]
    export = ["export", "--checkpoint", checkpoint, "--onnx", onnx_out, "--no-check"]
    with monkeypatch.context() as disk:
        disk.setattr(os, "fsync", no_space_left)
        # The rows stay in the partial file, and the line says how to write them once there is room.
        for out, extra in ((rows, []), (kept, ["--overwrite"])):
            assert one_line_error(capsys, [*predict, "--out", out, *extra]) == (
                f"{out}: {full}; the rows are kept in {out}.partial: run the same command with --resume to write it"
            )
        assert one_line_error(capsys, evaluate_argv) == f"{evaluated / 'predictions.csv'}: {full}"
        assert one_line_error(capsys, export) == f"{onnx_out}: {full}"
    assert kept.read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eval", "face.png", "kept.csv", "kept.csv.partial", "rows.json.partial"]
    assert list(evaluated.iterdir()) == []
    # Nothing was left under the final names: --resume writes the kept rows.
    assert main([str(a) for a in [*predict, "--out", rows, "--resume"]]) == 0
    assert json.loads(rows.read_text())[0]["status"] == "ok" and not (tmp_path / "rows.json.partial").exists()
    assert main([str(a) for a in evaluate_argv]) == 0
    assert json.loads((evaluated / "evaluation.json").read_text())["samples"] == 8 * 4 * 3 * 2
    assert main([str(a) for a in export]) == 0 and onnx_out.read_bytes() == exported.read_bytes()


# --------------------------------------------------------------------------------- earlier results


def test_earlier_outputs_are_refused_before_any_work_and_replaced_with_overwrite(checkpoint, tiny_manifest, tmp_path, capsys):
    absent = tmp_path / "absent.ckpt"  # loading it would fail: the refusal must come first
    evaluated = tmp_path / "eval"
    evaluated.mkdir()
    (evaluated / "evaluation.json").write_text("{}")
    assert one_line_error(capsys, ["evaluate", "--checkpoint", absent, "--out", evaluated]) == (
        f"--out: {evaluated / 'evaluation.json'} already exists; choose another name or pass --overwrite to replace it"
    )
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
                str(evaluated),
                "--overwrite",
                "--no-progress",
            ]
        )
        == 0
    )
    assert json.loads((evaluated / "evaluation.json").read_text())["samples"] == 192
    root = _folder_tree(tmp_path / "data", subjects=2)
    for flag in ("--manifest", "--skipped"):
        mine = tmp_path / f"mine{flag}.csv"
        mine.write_text("mine\n")
        inspect = ["data", "inspect", "--dataset", "folder", "--no-read", flag, mine]
        assert one_line_error(capsys, [*inspect, "--root", tmp_path / "nowhere"]) == (
            f"{flag}: {mine} already exists; choose another name or pass --overwrite to replace it"
        )
        assert mine.read_text() == "mine\n"
        assert main([str(a) for a in [*inspect, "--root", root, "--overwrite"]]) == 0
        assert len(pd.read_csv(mine)) == (4 if flag == "--manifest" else 0)
    capsys.readouterr()


# ------------------------------------------------------------------------------------------- flags

LONG = "n" * 300
_NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
_NO_MPS = pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has MPS")


@pytest.mark.parametrize(
    "argv,expected",
    [
        (["predict", "{face}", "--device", "bogus"], r"--device: 'bogus' is not a device \(expected cpu, cuda, cuda:N or mps\)"),
        pytest.param(
            ["predict", "{face}", "--device", "cuda"],
            r"--device: cuda is not available on this machine \(available: cpu\)",
            marks=_NO_CUDA,
        ),
        pytest.param(
            ["evaluate", "--device", "mps"], r"--device: mps is not available on this machine \(available: cpu.*\)", marks=_NO_MPS
        ),
        (["evaluate", "--device", "cuda:99"], r"--device: cuda:99 is not available on this machine \(available: cpu.*\)"),
        (["evaluate", "--device", "meta"], r"--device: 'meta' is not supported \(expected cpu, cuda, cuda:N or mps\)"),
        (["evaluate", "--batch-size", "0"], r"--batch-size: expected 1 or more, got 0"),
        (["predict", "{face}", "--batch-size", "-3"], r"--batch-size: expected 1 or more, got -3"),
        (
            ["export", "--onnx", "{tmp}/out.onnx", "--opset", "999"],
            r"--opset: expected 20 \(PhaNet's crop-and-zoom needs AffineGrid, opset 20; the installed torch exporter "
            r"writes up to \d+\), got 999",
        ),
        (["export", "--onnx", "{tmp}/out.onnx", "--opset", "17"], r"--opset: expected 20.*, got 17"),
        (["export", "--onnx", "{tmp}/out.txt"], r"--onnx: expected a file name ending in .onnx, got .*out.txt"),
        (["export", "--onnx", "{tmp}/" + LONG + ".onnx"], r"--onnx: file name too long \(.*n…\)"),
        (["predict", "{face}", "--out", "{tmp}/" + LONG + ".csv"], r"--out: file name too long \(.*n…\)"),
        (["predict", "{face}", "--out", "{tmp}"], r"--out: expected a file name ending in .csv or .json, got .*"),
        (
            ["predict", "{face}", "--out", "{face}/rows.csv"],
            r"--out: .*face.png is a file, so .*rows.csv cannot be created in it",
        ),
        (["predict", "{face}", "--visualize", "{face}"], r"--visualize: .*face.png is a file, expected a folder"),
        (["evaluate", "--out", "{face}"], r"--out: .*face.png is a file, expected a folder"),
        (["evaluate", "--out", "{tmp}/" + LONG], r"--out: file name too long \(.*n…\)"),
        (
            ["predict", "{face}", "--device", "x" * 100_000],
            r"--device: 'x{60}…' is not a device \(expected cpu, cuda, cuda:N or mps\)",
        ),
        (["predict", "{face}", "--margin", "1e6"], r"--margin: expected a fraction of the face's size from 0 to 2, got 1e\+06"),
        (["predict", "{face}", "--margin", "nan"], r"--margin: expected a fraction of the face's size from 0 to 2, got nan"),
    ],
)
def test_flags_are_checked_before_the_model_is_loaded(argv, expected, face, tmp_path, capsys):
    # The checkpoint does not exist: a message about it would mean the flags were checked too late.
    argv = [a.format(face=face, tmp=tmp_path) for a in argv] + ["--checkpoint", str(tmp_path / "absent.ckpt")]
    message = one_line_error(capsys, argv)
    assert re.fullmatch(expected, message), message
    assert len(message) < 300


def test_prepare_checks_its_margin_before_reading_the_dataset(tmp_path, capsys):
    message = one_line_error(
        capsys, ["prepare", "--dataset", "folder", "--root", tmp_path / "nowhere", "--out", tmp_path / "out", "--margin", "-0.5"]
    )
    assert message == "--margin: expected a fraction of the face's size from 0 to 2, got -0.5"


def test_data_inspect_checks_its_output_names_first(tmp_path, capsys):
    message = one_line_error(
        capsys,
        ["data", "inspect", "--dataset", "folder", "--root", tmp_path / "nowhere", "--skipped", tmp_path / (LONG + ".csv")],
    )
    assert message.startswith("--skipped: file name too long (")


def test_every_option_of_the_output_commands_has_help():
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    inspect = next(a for a in commands["data"]._actions if a.dest == "action").choices["inspect"]
    for parser in (commands["predict"], commands["evaluate"], commands["export"], inspect):
        for action in parser._actions:
            assert action.help, (parser.prog, action.option_strings)


# --------------------------------------------------------------------------- model files and weights


def _edited(exported: Path, folder: Path, key: str, value: str | None) -> Path:
    model = onnx.load(str(exported))
    props = {p.key: p.value for p in model.metadata_props}
    if value is None:
        del props[key]
    else:
        props[key] = value
    del model.metadata_props[:]
    for name, text in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = name, text
    onnx.save(model, str(folder / "edited.onnx"))
    return folder / "edited.onnx"


@pytest.mark.parametrize(
    "key,value,problem",
    [
        (
            "phanet.expressions",
            '["AN", "HA"]',
            "metadata phanet.expressions lists 2 classes, the graph's expression_logits has 4",
        ),
        (
            "phanet.expressions",
            '["AN", "HA", "NE", ',
            """metadata phanet.expressions is not a JSON list of distinct class """
            """names (it reads '["AN", "HA", "NE", ')""",
        ),
        ("phanet.expressions", "[]", "metadata phanet.expressions is not a JSON list of distinct class names (it reads '[]')"),
        (
            "phanet.poses",
            '["-30", "-30", "0"]',
            """metadata phanet.poses is not a JSON list of distinct class names """
            """(it reads '["-30", "-30", "0"]')""",
        ),
        (
            "phanet.poses",
            '["-30", 0, "30"]',
            """metadata phanet.poses is not a JSON list of distinct class names """
            """(it reads '["-30", 0, "30"]')""",
        ),
        ("phanet.input_size", "64", "metadata phanet.input_size says 64, the graph takes images of 3 x 32 x 32"),
        ("phanet.input_size", "-32", "metadata phanet.input_size is not a positive whole number (it reads '-32')"),
        ("phanet.poses", None, "not exported by phanet export (metadata phanet.poses missing)"),
    ],
)
def test_onnx_files_with_edited_metadata_name_the_file_and_the_key(exported, face, tmp_path, capsys, key, value, problem):
    edited = _edited(exported, tmp_path, key, value)
    assert one_line_error(capsys, ["predict", face, "--checkpoint", edited, "--no-progress"]) == f"{edited}: {problem}"


def test_onnx_weights_holding_nan_are_refused_on_load(exported, face, tmp_path, capsys):
    model = onnx.load(str(exported))
    tensor = next(t for t in model.graph.initializer if t.data_type == TensorProto.FLOAT and len(t.dims) == 4)
    weights = numpy_helper.to_array(tensor).copy()
    weights.flat[7] = np.nan
    tensor.CopyFrom(numpy_helper.from_array(weights, tensor.name))
    onnx.save(model, str(tmp_path / "nan.onnx"))
    assert one_line_error(capsys, ["predict", face, "--checkpoint", tmp_path / "nan.onnx", "--no-progress"]) == (
        f"{tmp_path / 'nan.onnx'}: the model's weights hold NaN or infinite values (initializer {tensor.name!r}); "
        "it cannot be used"
    )


def test_a_checkpoint_with_nan_weights_is_refused_by_export_and_evaluate(checkpoint, tiny_manifest, tmp_path, capsys):
    payload = torch.load(checkpoint, weights_only=True)
    name = next(k for k, v in payload["state_dict"].items() if v.is_floating_point() and v.dim() == 4)
    payload["state_dict"][name][0, 0, 0, 0] = float("nan")
    broken = tmp_path / "nan.ckpt"
    torch.save(payload, broken)
    message = one_line_error(capsys, ["export", "--checkpoint", broken, "--onnx", tmp_path / "nan.onnx"])
    assert str(broken) in message and "NaN" in message, message
    message = one_line_error(
        capsys, ["evaluate", "--checkpoint", broken, "--data", tiny_manifest, "--out", tmp_path / "eval", "--no-progress"]
    )
    assert "NaN" in message, message
    assert not (tmp_path / "nan.onnx").exists() and not (tmp_path / "eval" / "evaluation.json").exists()


class _Outputs(nn.Module):
    """A stand-in network returning fixed outputs (logits of 2 expression and 2 pose classes)."""

    def __init__(self, logits: float, boxes: float) -> None:
        super().__init__()
        self.logits, self.boxes = logits, boxes

    def forward(self, images: torch.Tensor) -> SimpleNamespace:
        batch = images.shape[0]
        return SimpleNamespace(
            expression_logits=torch.full((batch, 2), self.logits),
            pose_logits=torch.full((batch, 2), self.logits),
            boxes=torch.full((batch, 2, 3), self.boxes),
            scale_weights=torch.full((batch, 3), 0.5),
            task_weights=torch.full((batch, 2), 0.5),
        )


def _backend(network: nn.Module):
    """A backend answering with the outputs of ``network``."""

    def run(images):
        output = network(torch.as_tensor(images))
        return {name: getattr(output, name).numpy() for name in OUTPUT_NAMES}

    return run


class _Session:
    """A stand-in ONNX Runtime session answering with the outputs of ``network``."""

    def __init__(self, network: nn.Module) -> None:
        self.network = network

    def run(self, names, feeds):
        output = self.network(torch.from_numpy(feeds["images"]))
        return [getattr(output, name).numpy() for name in names]


@pytest.mark.parametrize(
    "torch_side,onnx_side,expected_logits,expected_boxes",
    [
        ((1.0, np.nan), (1.0, np.nan), 0.0, 0.0),  # NaN squares on both sides: a network without attention
        ((np.nan, 0.0), (np.nan, 0.0), np.nan, 0.0),  # NaN logits on both sides are no agreement
        ((1.0, 0.0), (np.inf, 0.0), np.nan, 0.0),
        ((1.0, 0.0), (1.0, np.nan), 0.0, np.nan),  # a NaN on one side only
        ((1.0, 0.0), (1.5, 0.0), 0.5, 0.0),
    ],
)
def test_the_export_check_compares_nan_aware(torch_side, onnx_side, expected_logits, expected_boxes):
    info = ModelInfo(["AN", "HA"], ["0", "30"], 4)
    found = differences(
        TrainedModel(_backend(_Outputs(*torch_side)), info), TrainedModel(OnnxBackend(_Session(_Outputs(*onnx_side))), info)
    )
    np.testing.assert_equal([found["expression_logits"], found["boxes"]], [expected_logits, expected_boxes])


def test_an_export_with_nan_logits_is_not_written(checkpoint, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(phanet.inference, "onnx_bytes", lambda *args, **kwargs: b"model")
    monkeypatch.setattr(phanet.inference, "ort_session", lambda model: _Session(_Outputs(np.nan, np.nan)))
    out = tmp_path / "out.onnx"
    assert one_line_error(capsys, ["export", "--checkpoint", checkpoint, "--onnx", out]) == (
        f"--onnx: the exported logits are NaN or infinite on random faces, so the export cannot be checked "
        f"against PyTorch; {out} was not written"
    )
    assert not out.exists()


def test_non_finite_scores_are_a_status_and_never_an_accuracy(checkpoint, tiny_manifest):
    info = ModelInfo(["AN", "HA"], ["-30", "0"], 16, "phanet")
    table = Predictor(TrainedModel(_backend(_Outputs(np.nan, 0.5)), info), detect=False).predict(np.zeros((10, 20, 3), np.uint8))
    assert table["status"].tolist() == ["non_finite"] and table["face_w"].tolist() == [20]
    assert table[["expression", "expression_prob", "prob_AN", "pose", "c1"]].isna().all(axis=None)
    model = TrainedModel.from_checkpoint(checkpoint)
    with torch.no_grad():
        next(model.network.parameters()).fill_(float("nan"))
    faces = load_dataset("manifest", str(tiny_manifest)).subset(range(3))
    with pytest.raises(PhanetError, match=r"evaluate: the network gives NaN or infinite scores \(first for .*s00_"):
        evaluate(model, faces)


# ------------------------------------------------------------------------------------ dataset folders


def test_nothing_in_a_dataset_folder_vanishes_unreported(tmp_path, capsys):
    root = _folder_tree(tmp_path / "data", subjects=2)
    elsewhere = _folder_tree(tmp_path / "elsewhere", subjects=1)
    (root / ".DS_Store").write_bytes(b"\0")
    (root / "HA" / "._s00_HA.png").write_bytes(b"\0")  # a macOS resource fork, named like an image
    (root / "SA" / ".thumbnails").mkdir()
    (root / "SA" / ".thumbnails" / "s09_SA.png").write_bytes(b"\0")
    (root / "HA" / "s05_HA.png").symlink_to(tmp_path / "deleted.png")
    (root / "NE").symlink_to(elsewhere / "HA")  # followed: a folder assembled from links
    (root / "SA" / "again").symlink_to(root / "SA")  # a loop
    faces = load_dataset("folder", str(root))
    assert sorted(s.path for s in faces.samples) == [
        "HA/s00_HA.png",
        "HA/s01_HA.png",
        "NE/s00_HA.png",
        "SA/s00_SA.png",
        "SA/s01_SA.png",
    ]
    assert dict(faces.skipped) == {
        ".DS_Store": "hidden file",
        "HA/._s00_HA.png": "hidden file",
        "HA/s05_HA.png": "broken link (its target does not exist)",
        "SA/.thumbnails": "hidden folder, not searched",
        "SA/again": "the same folder as SA, searched once",
    }
    assert main(["data", "inspect", "--dataset", "folder", "--root", str(root), "--no-progress"]) == 0
    assert "Skipped 5 files that could not be parsed or read:" in capsys.readouterr().out


def _manifest(folder: Path, rows: list[str], header: str = "path,subject,expression,pose") -> Path:
    for name in ("a.png", "b.png"):
        Image.new("RGB", (8, 8)).save(folder / name)
    (folder / "manifest.csv").write_text("\n".join([header, *rows]) + "\n")
    return folder / "manifest.csv"


def test_duplicate_manifest_rows_are_skipped_and_counted(tmp_path):
    manifest = _manifest(tmp_path, ["a.png,s1,HA,0", "b.png,s2,SA,30", "./a.png,s1,HA,0.0", "a.png,s1,HA,0"])
    faces = load_dataset("manifest", str(manifest))
    assert [s.path for s in faces.samples] == ["a.png", "b.png"]
    assert faces.skipped == [("./a.png", "duplicate of row 2"), ("a.png", "duplicate of row 2")]


def test_rows_with_an_empty_face_box_are_skipped_and_counted(tmp_path):
    header = "path,subject,expression,pose,face_x,face_y,face_w,face_h"
    manifest = _manifest(tmp_path, ["a.png,s1,HA,0,1,2,3,0", "b.png,s2,SA,30,1,2,3,4"], header)
    faces = load_dataset("manifest", str(manifest))
    assert [s.path for s in faces.samples] == ["b.png"]
    assert faces.skipped == [("a.png", "face box of 3 x 0 pixels, nothing to crop")]


UNKNOWN_POSE = "leave the cell empty when it is unknown"
NOT_AN_INTENSITY = "is not a whole number from 0 to 9 (an expression's strength: 0 for neutral, 1-4 in BU-3DFE)"


@pytest.mark.parametrize(
    "rows,header,problem",
    [
        (
            ["a.png,s1,HA,0", "b.png,s2,SA,0", "a.png,s1,SA,0"],
            None,
            "rows 2 and 4: a.png is listed twice with different labels (expression 'HA' and 'SA')",
        ),
        (
            ["a.png,s1,HA,0", "a.png,s2,HA,0"],
            None,
            "rows 2 and 3: a.png is listed twice with different labels (subject 's1' and 's2')",
        ),
        (["a.png,s1,HA,0", "b.png,s1,nan,0"], None, "row 3: expression 'nan' is a missing or infinite value, not a class"),
        (["a.png,s1,,0"], None, "row 2: empty 'expression'"),
        (["a.png,s1,HA,NaN"], None, "row 2: pose 'NaN' is a missing or infinite value, not a class; " + UNKNOWN_POSE),
        (["a.png,s1,HA,inf"], None, "row 2: pose 'inf' is a missing or infinite value, not a class; " + UNKNOWN_POSE),
        (["a.png,s1,HA,None"], None, "row 2: pose 'None' is a missing or infinite value, not a class; " + UNKNOWN_POSE),
        (["a.png,s1,HA,0,2.5"], "path,subject,expression,pose,intensity", "row 2: intensity 2.5 " + NOT_AN_INTENSITY),
        (["a.png,s1,HA,0,-3"], "path,subject,expression,pose,intensity", "row 2: intensity -3 " + NOT_AN_INTENSITY),
        (["a.png,s1,HA,0,1e20"], "path,subject,expression,pose,intensity", "row 2: intensity 1e+20 " + NOT_AN_INTENSITY),
        (
            ["a.png,s\x001,HA,0"],
            None,
            "row 2: subject 's\\x001' holds the control character '\\x00'; is the manifest saved as UTF-8 text?",
        ),
        (
            ["a.png,s1,H\x00A,0"],
            None,
            "row 2: expression 'H\\x00A' holds the control character '\\x00'; is the manifest saved as UTF-8 text?",
        ),
        (["a.png,s1,HA,0,inf"], "path,subject,expression,pose,yaw", "row 2: yaw 'inf' is not a number"),
        (
            ["a.png,s1,HA,0,1,2,3,"],
            "path,subject,expression,pose,face_x,face_y,face_w,face_h",
            "row 2: the face box needs all of face_x, face_y, face_w, face_h (face_h empty)",
        ),
        (
            ["a.png,s1,HA,0,1,2,three,4"],
            "path,subject,expression,pose,face_x,face_y,face_w,face_h",
            "row 2: face_w 'three' is not a number",
        ),
    ],
)
def test_manifest_rows_that_cannot_be_taken_as_they_stand_are_one_line_errors(tmp_path, capsys, rows, header, problem):
    manifest = _manifest(tmp_path, rows, *([header] if header else []))
    message = one_line_error(capsys, ["data", "inspect", "--dataset", "manifest", "--root", manifest, "--no-read"])
    assert message == f"{manifest} {problem}"


def test_long_values_are_shortened_in_messages(tmp_path):
    table = pd.DataFrame([{"path": "a.png", "subject": "s1", "expression": "Q" * 100_000}])
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    with pytest.raises(PhanetError) as raised:
        faces_from_table(table, "t", tmp_path, "t.csv", expressions=["HA", "SA"])
    assert str(raised.value) == f"t.csv row 2: expression '{'Q' * 60}…' is not in the class list [HA, SA]"


def test_an_onnx_graph_that_fails_to_run_is_one_line_naming_it():
    class FailingSession:
        def run(self, names, feeds):
            raise RuntimeError("[ONNXRuntimeError] : 2 : INVALID_ARGUMENT : bad shape\nStacktrace: ...")

    with pytest.raises(PhanetError) as raised:
        OnnxBackend(FailingSession(), "model.onnx")(np.zeros((1, 3, 4, 4), np.float32))
    assert str(raised.value) == "model.onnx: ONNX Runtime cannot run it ([ONNXRuntimeError] : 2 : INVALID_ARGUMENT : bad shape)"


@pytest.mark.parametrize(
    "argv, expected",
    [
        (
            ["train", "--config", "demo", "--out", ""],
            "phanet train: error: --out: an empty value; give a name or leave the option out",
        ),
        (["train", "--config", ""], "phanet train: error: --config: an empty value; give a name or leave the option out"),
        (
            ["predict", "", "--checkpoint", "x.ckpt"],
            "phanet predict: error: INPUT: an empty value; give a name or leave the option out",
        ),
        (
            ["evaluate", "--checkpoint", "x.ckpt", "--out", ""],
            "phanet evaluate: error: --out: an empty value; give a name or leave the option out",
        ),
        (["train", "--config", "demo", "out="], "phanet train: error: config: out: expected text, got None"),
        (
            ["train", "--config", "demo", "out=' '"],
            "phanet train: error: config: out: expected the name of a run folder, got ' '",
        ),
        (
            ["synth", "--preset", "continuous", "--poses", "nan", "0", "--out", "{tmp}/s"],
            "phanet synth: error: --poses: expected distinct angles within [-90, 90], got [nan, 0.0]",
        ),
        (
            ["synth", "--preset", "continuous", "--yaw-range", "nan", "10", "--out", "{tmp}/s"],
            "phanet synth: error: --yaw-range: expected MIN <= MAX within [-90, 90] degrees, got nan, 10",
        ),
        (
            ["prepare", "--dataset", "folder", "--root", "{tmp}", "--out", "{tmp}/p", "--size", "100000"],
            "phanet prepare: error: --size: expected a crop side from 8 to 8192 pixels (the largest model.input_size), "
            "got 100000",
        ),
    ],
)
def test_empty_names_nan_angles_and_huge_crops_are_refused_at_once(argv, expected, tmp_path, capsys):
    assert main([a.format(tmp=tmp_path) for a in argv]) == 2
    err = capsys.readouterr().err.strip()
    assert err == expected and not (tmp_path / "s").exists() and not (tmp_path / "p").exists()


def test_outputs_that_are_devices_or_pipes_are_never_replaced(tmp_path, capsys):
    os.mkfifo(tmp_path / "pipe.csv")
    for target, kind in (("/dev/null", "a character device"), (str(tmp_path / "pipe.csv"), "a named pipe (FIFO)")):
        message = one_line_error(
            capsys, ["data", "inspect", "--dataset", "folder", "--root", str(tmp_path), "--manifest", target, "--overwrite"]
        )
        assert message == f"--manifest: {target} is {kind}, not a file phanet may replace"
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")


def test_a_second_prepare_into_the_same_folder_is_refused_while_the_first_runs(tmp_path, capsys):
    from phanet.files import lock_folder

    for path in ("HA/s1_a.png", "SA/s2_b.png"):
        (tmp_path / "data" / path).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (32, 32), (200, 30, 30)).save(tmp_path / "data" / path)
    out = tmp_path / "crops"
    held = lock_folder(out)  # a prepare writing it
    try:
        message = one_line_error(capsys, ["prepare", "--dataset", "folder", "--root", str(tmp_path / "data"), "--out", str(out)])
        assert message == f"--out: {out} is being written by another phanet prepare; wait for it to end"
    finally:
        os.close(held)
    assert list(out.iterdir()) == []


@pytest.mark.slow
def test_folders_named_in_another_encoding_are_printed_with_escapes_on_a_strict_terminal(tmp_path):
    """A terminal that takes only UTF-8 (``LANG=en_US.UTF-8``: Python's strict errors) is shown a folder
    named in Latin-1 with ``\\xNN`` escapes, as the tables write it; the line printing it ended the
    command with a UnicodeEncodeError traceback."""
    root = tmp_path / os.fsdecode(b"caf\xe9")
    for expression in ("HA", "SA"):
        (root / expression).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(root / expression / f"s1_{expression}.png")
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    command = [sys.executable, "-m", "phanet", "data", "inspect", "--dataset", "folder", "--root", root, "--no-read"]
    ended = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert ended.returncode == 0 and ended.stderr == "", ended.stderr[-2000:]
    assert ended.stdout.startswith(f"caf\\xe9 at {tmp_path}/caf\\xe9: 2 usable images")


@pytest.mark.parametrize(
    ("argv", "prog", "message"),
    [
        (
            ["predict", "--checkpoint", "c.ckpt", "--batch-size", "x", "a.jpg"],
            "phanet predict",
            "argument --batch-size: invalid int value: 'x'",
        ),
        (["train", "--devices"], "phanet train", "argument --devices: expected one argument"),
        (["data", "inspect"], "phanet data inspect", "the following arguments are required: --dataset, --root"),
        (["frobnicate"], "phanet", "argument COMMAND: invalid choice: 'frobnicate'"),
    ],
)
def test_an_option_the_parser_cannot_read_is_one_line_naming_it(argv, prog, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1  # no usage block above the error
    assert err.startswith(f"{prog}: error: {message}") and err.endswith(f"({prog} --help lists the options)\n")
