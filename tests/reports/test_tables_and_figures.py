"""Report writers from known numbers, figures on disk, the cross-dataset class mapping."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from phanet.data.classes import canonical, cross_mapping
from phanet.reports import figures
from phanet.reports.summaries import crossval_tables, per_expression_table, table6, table8, training_columns
from phanet.reports.tables import (
    expression_pose_table,
    mean_std,
    method_table,
    per_pose_table,
    pose_range,
    to_markdown,
    write_table,
)

SUMMARIES = {
    "PhaNet": {
        "pose_classes": ["-90", "0", "90"],
        "pose_accuracy": 0.9949,
        "expression_accuracy": 0.8492,
        "expression_accuracy_per_pose": {"-90": 0.84, "0": 0.854, "90": 0.835},
    },
    "DenseNet": {
        "pose_classes": ["-90", "0", "90"],
        "pose_accuracy": 0.9445,
        "expression_accuracy": 0.8039,
        "expression_accuracy_per_pose": {"-90": 0.801, "0": 0.792, "90": 0.80},
    },
}


def test_method_and_per_pose_tables_have_the_papers_layout():
    table = method_table(SUMMARIES, {"PhaNet": "Pixel and scale attention"})
    assert table.columns.tolist() == ["Methods", "Features", "Yaw", "Acc. of pose", "Acc. of FER"]
    assert table.iloc[0].tolist() == ["PhaNet", "Pixel and scale attention", "(-90°, 90°)", 99.49, 84.92]
    markdown = to_markdown(table, bold_max=["Acc. of FER"])
    assert "| PhaNet | Pixel and scale attention | (-90°, 90°) | 99.49 | **84.92** |" in markdown
    assert "| DenseNet |  | (-90°, 90°) | 94.45 | 80.39 |" in markdown
    poses = per_pose_table(SUMMARIES)
    assert poses.columns.tolist() == ["Methods", "-90°", "0°", "90°", "Average"]
    assert poses.iloc[1].tolist()[1:] == pytest.approx([80.1, 79.2, 80.0, 80.39])
    assert pose_range(["-45", "0", "45"]) == "(-45°, 45°)" and pose_range(["front"]) == "-"


def test_expression_by_pose_table_matches_hand_counts():
    predictions = pd.DataFrame(
        {
            "true_expression": ["HA", "HA", "HA", "SA", "SA", "SA"],
            "true_pose": ["-45", "0", "0", "-45", "-45", "0"],
            "expression": ["HA", "HA", "SA", "SA", "HA", "SA"],
        }
    )
    table = expression_pose_table(predictions, ["HA", "SA"], ["-45", "0"])
    assert table.columns.tolist() == ["Exp./pose", "-45°", "0°", "Average"]
    assert table.iloc[0].tolist()[1:] == pytest.approx([100.0, 50.0, 200 / 3])
    assert table.iloc[1].tolist()[1:] == pytest.approx([50.0, 100.0, 200 / 3])
    assert table.iloc[2].tolist()[1:] == pytest.approx([200 / 3, 200 / 3, 200 / 3])


def test_write_table_writes_markdown_and_csv(tmp_path):
    table = pd.DataFrame({"Method": ["a", "b"], "Acc": [1.0, math.nan]})
    markdown = write_table(table, tmp_path / "t", "Title")
    assert markdown.startswith("**Title**")
    assert (tmp_path / "t.md").read_text().strip().endswith("| b | - |")
    assert pd.read_csv(tmp_path / "t.csv")["Acc"].tolist()[0] == 1.0


def _run(expression, pose=math.nan, setting="multi", scales=("N_S1", "H_S2", "H_S3"), joint_sa=True, metrics=None):
    return SimpleNamespace(
        summary={
            "expression_accuracy": expression,
            "pose_accuracy": pose,
            "loss_setting": setting,
            "test_subjects": ["a", "b"],
            "scales": list(scales),
            "joint_sa": joint_sa,
        },
        metrics=metrics,
    )


def test_training_columns_name_the_tested_epoch_and_its_training_accuracy():
    # Epoch 2 (counted from 1) has the best validation FER; epoch 3 equals it later and is not the one
    # kept; the first epoch is logged twice (a resume) and counts once.
    metrics = pd.DataFrame(
        {
            "epoch": [0, 0, 1, 2, 3],
            "train/expression_acc": [0.30, 0.31, 0.62, 0.70, 0.75],
            "val/expression_acc": [0.40, 0.41, 0.55, 0.55, 0.50],
            "seconds": [99.0, 30.0, 30.0, 30.0, 36.0],  # the epoch done again after a resume counts once
        }
    )
    columns = training_columns(_run(0.5, metrics=metrics))
    # Without a run folder what ended the training is unknown.
    assert columns == {"Epochs": 4, "Tested epoch": 2, "Train FER": pytest.approx(62.0), "Minutes": 2.1, "Ended by": "-"}
    untrained = training_columns(_run(0.5, metrics=pd.DataFrame({"epoch": [0], "val/expression_acc": [math.nan]})))
    assert untrained.pop("Ended by") == "-" and all(math.isnan(v) for v in untrained.values())
    unvalidated = training_columns(_run(0.5))
    assert unvalidated.pop("Ended by") == "-" and all(math.isnan(v) for v in unvalidated.values())


def test_ablation_tables_rank_measured_and_paper_rows():
    # The paper's numbers are found from each run's own configuration, whatever the row is called.
    rows = [
        ("N_S1 (No attention)", _run(0.60, scales=("N_S1",), joint_sa=False)),
        ("row b", _run(0.70, scales=("H_S2",), joint_sa=False)),
        ("row c", _run(0.65)),
    ]
    table = table6(rows, "synth")
    assert table["Acc. on synth"].tolist() == pytest.approx([60.0, 70.0, 65.0])
    assert table["rank"].tolist() == [3, 1, 2]
    assert table["paper rank"].tolist() == [3, 2, 1]
    assert table["Paper (BU-3DFE)"].tolist() == [77.79, 83.10, 84.92]
    assert table.columns.tolist()[5:] == ["Pose", "Epochs", "Tested epoch", "Train FER", "Minutes", "Ended by"]
    losses = table8([("L(e)", _run(0.5, 0.9, "e")), ("row b", _run(0.6, 0.95, "p_e"))])
    assert math.isnan(losses["Acc. on Pose"][0]) and losses["Acc. on Pose"][1] == pytest.approx(95.0)
    assert losses["Paper exp."].tolist() == [77.79, 79.34]


def test_crossval_mean_and_sample_std():
    per_fold, summary = crossval_tables({"phanet": [_run(0.8, 1.0), _run(0.9, 1.0), _run(0.7, 0.97)]})
    assert per_fold["Acc. of FER"].tolist() == pytest.approx([80.0, 90.0, 70.0])
    assert summary.iloc[0]["Acc. of FER (mean ± std)"] == "80.00 ± 10.00"
    assert mean_std([84.0]) == "84.00 ± 0.00"


def test_per_expression_table_averages_folds():
    def fold(ha, sa, overall):
        return SimpleNamespace(
            summary={
                "expression_classes": ["HA", "SA"],
                "expression_accuracy": overall,
                "expression_accuracy_per_class": {"HA": ha, "SA": sa},
            }
        )

    table = per_expression_table({"phanet": [fold(0.9, 0.5, 0.7), fold(0.7, 0.3, 0.5)]})
    assert table.columns.tolist() == ["Method", "HA", "SA", "Average"]
    assert table.iloc[0][["HA", "SA", "Average"]].tolist() == pytest.approx([80.0, 40.0, 60.0])


def _png(path):
    image = np.asarray(Image.open(path).convert("RGB"), dtype=float)
    assert image.shape[0] > 50 and image.shape[1] > 50
    assert image.std() > 5  # not blank
    return image


@pytest.mark.slow
def test_every_figure_is_written_and_not_empty(tmp_path):
    rng = np.random.default_rng(0)
    _png(figures.confusion_matrix_figure([[5, 1], [2, 7]], ["HA", "SA"], tmp_path / "cm.png", "FER"))
    _png(figures.per_pose_accuracy_figure({"PhaNet": {"-45": 0.8, "0": 0.9, "45": 0.85}}, tmp_path / "pose.png"))
    images = [rng.integers(0, 255, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    boxes = np.array([[[0.5, 0.5, 0.25], [0.4, 0.6, 0.1]]] * 3)
    crops = [[images[0], images[1]]] * 3
    _png(figures.attention_squares_figure(images, boxes, ["a", "b", "c"], tmp_path / "sq.png", crops))
    maps = [[rng.random((4, 4)), rng.random((4, 4)), rng.random((4, 4))]] * 2
    _png(figures.attention_maps_figure([[images[0], images[1], images[2]]] * 2, maps, ["a", "b"], tmp_path / "maps.png"))
    metrics = pd.DataFrame(
        {
            "epoch": [0, 1, 2],
            "train/c1": [0.5, 0.6, 0.7],
            "train/c2": [0.5, 0.55, 0.5],
            "train/c3": [0.5, 0.52, 0.6],
            "train/loss": [3.0, 2.0, 1.5],
            "val/c1": [0.5, 0.6, 0.7],
            "val/c2": [0.5, 0.5, 0.5],
            "val/c3": [0.6, 0.6, 0.6],
            "val/expression_acc": [0.3, 0.5, 0.6],
            "val/pose_acc": [0.5, 0.9, 1.0],
            "train/lambda_e": [0.75, 0.6, 0.55],
            "train/lambda_p": [0.25, 0.4, 0.45],
        }
    )
    _png(figures.scale_weights_figure(metrics, tmp_path / "fig12.png", "train"))
    _png(figures.scale_weights_figure(metrics, tmp_path / "fig13.png", "val"))
    _png(figures.task_weights_figure({"with factor": metrics}, tmp_path / "fig15.png"))
    points = rng.normal(size=(40, 2))
    labels = rng.integers(0, 3, 40)
    _png(figures.tsne_figure({"with SAL": (points, labels)}, ["A", "B", "C"], tmp_path / "tsne.png"))


def test_accuracy_axes_are_percent_from_zero_like_the_tables(tmp_path, monkeypatch):
    kept = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: kept.append(fig) or Path(path))
    metrics = pd.DataFrame(
        {
            "epoch": [0, 1],
            "train/c1": [0.5, 0.6],
            "val/c1": [0.5, 0.7],
            "val/expression_acc": [0.25, 0.5],
            "val/pose_acc": [0.5, 0.75],
            "train/lambda_e": [0.7, 0.6],
            "train/lambda_p": [0.3, 0.4],
        }
    )
    try:
        figures.per_pose_accuracy_figure({"PhaNet": {"-45": 0.8, "0": 0.9}}, tmp_path / "pose.png")
        figures.scale_weights_figure(metrics, tmp_path / "fig13.png", "val")
        figures.task_weights_figure({"run": metrics}, tmp_path / "fig15.png")
        pose, fig13, fig15 = kept
        assert pose.axes[0].get_ylim() == (0, 100)
        assert list(pose.axes[0].lines[0].get_ydata()) == [80, 90]
        weights, accuracy = fig13.axes
        assert list(weights.lines[0].get_ydata()) == [0.5, 0.7]  # c1 stays a weight in [0, 1]
        assert accuracy.get_ylim() == (0, 100) and list(accuracy.lines[0].get_ydata()) == [25, 50]
        assert "%" in accuracy.get_ylabel()
        right = fig15.axes[1]
        assert right.get_ylim() == (0, 100)
        assert [list(line.get_ydata()) for line in right.lines] == [[25, 50], [50, 75]]
    finally:
        for fig in kept:
            figures.plt.close(fig)


def test_class_names_map_across_datasets():
    assert canonical("AF") == canonical("Fear") == canonical("FE") == "fear"
    assert canonical("Angry") == canonical("AN") == "anger"
    assert canonical("scream") is None and canonical("squint") is None
    bu3dfe = ["AN", "DI", "FE", "HA", "NE", "SA", "SU"]
    multipie = ["disgust", "neutral", "scream", "smile", "squint", "surprise"]
    assert cross_mapping(multipie, bu3dfe) == {"disgust": "DI", "neutral": "NE", "smile": "HA", "surprise": "SU"}
    sfew = ["Angry", "Disgust", "Fear", "Happy", "Neutral", "Sad", "Surprise"]
    assert cross_mapping(sfew, bu3dfe) == dict(zip(sfew, bu3dfe))
    affectnet = ["Neutral", "Happy", "Sad", "Surprise", "Fear", "Disgust", "Anger", "Contempt"]
    mapping = cross_mapping(affectnet, bu3dfe)
    assert "Contempt" not in mapping and mapping["Anger"] == "AN" and len(mapping) == 7
    assert cross_mapping(multipie, bu3dfe, {"scream": "FE", "smile": None})["scream"] == "FE"
    assert "smile" not in cross_mapping(multipie, bu3dfe, {"smile": None})


def test_counts_and_class_lists_read_as_words():
    from phanet.demo import _expression_classes
    from phanet.text import plural

    assert [plural(n, "image") for n in (0, 1, 2)] == ["0 images", "1 image", "2 images"]
    assert plural(1, "image or frame", "images or frames") == "1 image or frame"
    assert _expression_classes(["AN", "DI", "FE", "HA", "NE", "SA", "SU"]) == "6 expressions × 4 intensities + neutral"
    assert _expression_classes(["HA", "SA"]) == "2 expressions"


def test_fig12_keeps_its_legend_off_the_curves_and_draws_a_cut_epoch_where_it_stopped(tmp_path, monkeypatch):
    kept = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: kept.append(fig) or Path(path))
    metrics = pd.DataFrame(
        {
            "epoch": [0, 1, 2],
            "epoch_fraction": [1.0, 1.0, 0.4],  # the time limit stopped the third epoch at 40 %
            "train/c1": [0.5, 0.6, 0.62],
            "train/c1_std": [0.05, 0.04, 0.04],
            "train/loss": [3.0, 2.0, 1.9],
        }
    )
    try:
        figures.scale_weights_figure(metrics, tmp_path / "fig12.png", "train")
        (fig,) = kept
        weights, loss = fig.axes
        assert list(loss.lines[0].get_xdata()) == [1.0, 2.0, 2.4]  # not a third full epoch
        assert list(weights.lines[0].get_xdata()) == [1.0, 2.0, 2.4]
        fig.canvas.draw()
        legend = weights.get_legend()
        labels = [text.get_text() for text in legend.get_texts()]
        assert "± one std of the weight over the faces" in labels and "time limit (train.max_minutes)" in labels
        # The legend lies below the panel: nothing drawn in the panel is under it.
        assert legend.get_window_extent().y1 < weights.get_window_extent().y0
    finally:
        for fig in kept:
            figures.plt.close(fig)


def test_figures_spell_out_the_expression_codes(tmp_path, monkeypatch):
    kept = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: kept.append(fig) or Path(path))
    try:
        figures.confusion_matrix_figure([[3, 1], [0, 4]], ["AN", "NE"], tmp_path / "cm.png")
        figures.confusion_matrix_figure([[3, 1], [0, 4]], ["-45°", "0°"], tmp_path / "pose.png")
        figures.tsne_figure({"f": (np.zeros((2, 2)), np.array([0, 1]))}, ["HA", "SU"], tmp_path / "tsne.png")
        expressions, poses, tsne = kept
        assert [t.get_text() for t in expressions.axes[0].get_xticklabels()] == ["AN anger", "NE neutral"]
        assert [t.get_text() for t in poses.axes[0].get_yticklabels()] == ["-45°", "0°"]
        assert [t.get_text() for t in tsne.axes[0].get_legend().get_texts()] == ["HA happiness", "SU surprise"]
    finally:
        for fig in kept:
            figures.plt.close(fig)
