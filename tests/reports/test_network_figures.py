"""The figures that read a trained network (attended squares, maps, Fig. 14's representations) read it
through the same runner as evaluation and prediction: the same images give the same numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from phanet.data.datasets import FaceDataset
from phanet.data.registry import load_dataset
from phanet.data.transforms import to_network_input
from phanet.evaluation import evaluate
from phanet.inference import TrainedModel
from phanet.predict import Predictor
from phanet.reports.attention import attention_figures
from phanet.reports.embedding import representations
from predict_helpers import isolated_threads, tiny_checkpoint  # noqa: F401

pytestmark = pytest.mark.usefixtures("isolated_threads")


@pytest.fixture(scope="module")
def checkpoint(tiny_manifest, tmp_path_factory) -> Path:
    return tiny_checkpoint(tmp_path_factory, tiny_manifest)


@pytest.mark.slow
def test_evaluation_prediction_and_the_figures_read_the_same_rows(checkpoint, tiny_manifest, tmp_path):
    model = TrainedModel.from_checkpoint(checkpoint)
    faces = load_dataset("manifest", str(tiny_manifest)).subset(range(0, 192, 16))
    _, evaluated = evaluate(model, faces)
    predicted = Predictor(model, detect=False).predict([faces.image_path(s) for s in faces.samples])
    assert evaluated["expression"].tolist() == predicted["expression"].tolist()
    np.testing.assert_array_equal(evaluated["prob_HA"].to_numpy(np.float32), predicted["prob_HA"].to_numpy(np.float32))
    # The attention figure names each face's predicted expression after the arrow: the rows' expression.
    indices = list(range(len(faces)))
    paths = attention_figures(model, faces, indices, tmp_path)
    assert paths["squares"].stat().st_size > 0 and paths["maps"].stat().st_size > 0
    images = to_network_input(FaceDataset(faces, model.info.input_size).__getitems__(indices)["pixels"])
    output = model.forward(images)
    assert [model.expressions[int(i)] for i in output.expression_logits.argmax(1)] == evaluated["expression"].tolist()
    np.testing.assert_allclose(output.boxes[:, 1, 0].numpy(), evaluated["s3_x"].to_numpy(np.float32), rtol=0, atol=1e-6)
    # Fig. 14's f is the network's joint representation of the same faces; M_F its three pooled scales.
    features = representations(model, faces, indices)
    np.testing.assert_allclose(features["f"], output.features.numpy(), atol=1e-5)
    assert features["M_F"].shape == (len(faces), sum(f.shape[1] for f in output.scale_features))
