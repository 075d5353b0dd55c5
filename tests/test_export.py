"""phanet export and the ONNX Runtime backend: same numbers as PyTorch, self-contained files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
import torch
from torch import nn

from conftest import TINY
from phanet.cli import main
from phanet.config import load_config
from phanet.data.datasets import FaceDataset
from phanet.data.registry import load_dataset
from phanet.data.transforms import to_network_input
from phanet.errors import PhanetError
from phanet.export import _StaticAdaptivePool, onnx_bytes, ort_session, read_metadata
from phanet.inference import TrainedModel
from phanet.models import create_model
from phanet.models.info import OUTPUT_NAMES, ModelInfo
from phanet.predict import Predictor
from predict_helpers import astronaut_path, isolated_threads, tiny_checkpoint  # noqa: F401

pytestmark = pytest.mark.usefixtures("isolated_threads")


@pytest.fixture(scope="module")
def checkpoint(tiny_manifest, tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory, tiny_manifest)


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("onnx") / "tiny.onnx"
    assert main(["export", "--checkpoint", str(checkpoint), "--onnx", str(out)]) == 0
    return out


@pytest.mark.slow
def test_onnx_logits_match_pytorch_on_the_same_faces(checkpoint, exported, tiny_manifest):
    model = TrainedModel.from_checkpoint(checkpoint)
    faces = load_dataset("manifest", str(tiny_manifest))
    dataset = FaceDataset(faces, 32)
    images = to_network_input(dataset.__getitems__(list(range(0, len(dataset), 12)))["pixels"])  # 16 faces, every class
    reference = model.forward(images)
    outputs = dict(zip(OUTPUT_NAMES, ort_session(exported).run(list(OUTPUT_NAMES), {"images": images.numpy()})))
    assert outputs["expression_logits"].shape == (16, 4) and outputs["pose_logits"].shape == (16, 3)
    for name in OUTPUT_NAMES:
        np.testing.assert_allclose(outputs[name], getattr(reference, name).numpy(), atol=1e-4, rtol=0, err_msg=name)
    # The logits are not all alike (the comparison would be empty otherwise).
    assert np.ptp(outputs["expression_logits"], axis=0).min() > 1e-3
    # The batch axis is dynamic: one face alone gives the same numbers.
    single = ort_session(exported).run(["expression_logits"], {"images": images[:1].numpy()})[0]
    np.testing.assert_allclose(single, reference.expression_logits[:1].numpy(), atol=1e-4, rtol=0)


def test_the_onnx_file_is_self_contained(exported, checkpoint, capsys):
    model = onnx.load(str(exported))
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["phanet.expressions"]) == ["AN", "HA", "NE", "SU"]
    assert json.loads(props["phanet.poses"]) == ["-30", "0", "30"]
    assert props["phanet.input_size"] == "32" and props["phanet.arch"] == "phanet"
    assert "(value / 255 - 0.5) / 0.5" in props["phanet.input"]
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert [i.name for i in model.graph.input] == ["images"]
    assert [o.name for o in model.graph.output] == list(OUTPUT_NAMES)
    info = read_metadata(exported)
    assert info.trained_on.startswith("manifest at ") and props["phanet.mean"] == props["phanet.std"] == "0.5"
    assert info == ModelInfo(["AN", "HA", "NE", "SU"], ["-30", "0", "30"], 32, "phanet", 0.5, 0.5, info.trained_on)
    assert main(["export", "--checkpoint", str(checkpoint), "--onnx", str(exported)]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["export", "--checkpoint", str(checkpoint), "--onnx", str(exported.with_suffix(".bin"))]) == 2
    assert "ending in .onnx" in capsys.readouterr().err


@pytest.mark.slow
def test_onnx_predictors_give_the_torch_rows(checkpoint, exported, tiny_manifest):
    inputs = [astronaut_path(), *sorted(tiny_manifest.parent.glob("s04_*.png"))[:5]]
    torch_rows = Predictor.from_checkpoint(checkpoint).predict(inputs)
    for predictor in (
        Predictor.from_onnx(exported),
        Predictor.from_checkpoint(checkpoint, backend="onnx"),
        Predictor.load(exported),
    ):
        onnx_rows = predictor.predict(inputs)
        assert onnx_rows["status"].tolist() == torch_rows["status"].tolist() == ["ok"] + ["no_face"] * 5
        pd.testing.assert_frame_equal(onnx_rows, torch_rows, atol=1e-4, rtol=0, check_dtype=False)


@pytest.mark.slow
def test_predict_runs_an_onnx_file_from_the_command_line(exported, checkpoint, tmp_path):
    for source, extra in ((exported, []), (checkpoint, ["--backend", "onnx"]), (checkpoint, [])):
        out = tmp_path / f"{len(list(tmp_path.iterdir()))}.csv"
        assert (
            main(["predict", str(astronaut_path()), "--checkpoint", str(source), "--out", str(out), "--no-progress", *extra]) == 0
        )
    tables = [pd.read_csv(p) for p in sorted(tmp_path.glob("*.csv"))]
    for table in tables[1:]:
        pd.testing.assert_frame_equal(table, tables[0], atol=1e-4, rtol=0)


def test_files_that_are_not_phanet_onnx_models_are_one_line_errors(tmp_path):
    (tmp_path / "text.onnx").write_text("not a model")
    with pytest.raises(PhanetError, match="not a readable ONNX model"):
        Predictor.from_onnx(tmp_path / "text.onnx")
    (tmp_path / "empty.onnx").write_bytes(b"")  # protobuf reads it as a model with nothing in it
    with pytest.raises(PhanetError, match=r"empty.onnx: not a readable ONNX model \(an empty file\)$"):
        Predictor.from_onnx(tmp_path / "empty.onnx")
    plain = tmp_path / "plain.onnx"
    torch.onnx.export(nn.Linear(3, 2), (torch.zeros(1, 3),), str(plain), dynamo=False)
    with pytest.raises(PhanetError, match="not exported by phanet export"):
        Predictor.from_onnx(plain)
    with pytest.raises(PhanetError, match="not found"):
        Predictor.from_onnx(tmp_path / "absent.onnx")


def test_a_baseline_exports_with_nan_squares():
    config = load_config("demo", ["model.arch=densenet", "loss.setting=p_e", *TINY])
    network = create_model("densenet", expressions=["AN", "HA"], poses=["-30", "0", "30"], **config.model.arguments())
    session = ort_session(onnx_bytes(network, network.info))
    images = torch.rand(3, 3, 32, 32) * 2 - 1
    boxes, logits = session.run(["boxes", "expression_logits"], {"images": images.numpy()})
    with torch.inference_mode():
        reference = network.eval()(images)
    assert np.isnan(boxes).all() and boxes.shape == (3, 2, 3)
    np.testing.assert_allclose(logits, reference.expression_logits.numpy(), atol=1e-4, rtol=0)


@pytest.mark.parametrize("in_size,out_size", [((8, 8), (7, 7)), ((13, 11), (4, 3)), ((14, 14), (7, 7))])
def test_static_pooling_equals_adaptive_pooling(in_size, out_size):
    x = torch.randn(2, 5, *in_size)
    np.testing.assert_allclose(_StaticAdaptivePool(in_size, out_size)(x), nn.AdaptiveAvgPool2d(out_size)(x), atol=1e-6, rtol=0)
