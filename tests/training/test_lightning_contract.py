"""What the training code takes from Lightning (and the export from torch) beyond the plain API: each
assumption as a test, so that an upgrade that breaks one fails here with its name instead of deep in
a run. The package uses no private Lightning name; the one private torch name is the exporter's
highest opset."""

from __future__ import annotations

import ast
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, EMAWeightAveraging, ModelCheckpoint, Timer

import phanet
from phanet.training.callbacks import RunCheckpoint, WeightAverage, run_checkpoints
from phanet.training.module import MONITOR
from phanet.training.run_folder import RunFolder, epochs_without_better, training_seconds
from phanet.training.stopping import PatienceStop

SRC = Path(phanet.__file__).parent


def test_no_private_lightning_name_is_used():
    """No ``lightning...._name`` import and no ``trainer._x`` / ``module._trainer``-style access."""
    found = []
    for path in SRC.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.ImportFrom)
                and node.module
                and node.module.startswith("lightning")
                and (
                    any(part.startswith("_") for part in node.module.split("."))
                    or any(alias.name.startswith("_") for alias in node.names)
                )
            ):
                found.append(f"{path.name}: from {node.module} import ...")
            if isinstance(node, ast.Attribute) and node.attr in (
                "_trainer",
                "_evaluate_stopping_criteria",
                "_run_early_stopping_check",
                "_last_lr",
            ):
                found.append(f"{path.name}:{node.lineno}: .{node.attr}")
    assert found == []


def test_callback_states_keep_the_keys_of_lightnings_own_callbacks(tmp_path):
    """Run folders of every version hold early stopping and checkpoint states under Lightning's keys."""
    stopping = PatienceStop(MONITOR, patience=3)
    assert stopping.state_key == EarlyStopping(monitor=MONITOR, mode="max").state_key
    assert stopping.state_key.startswith("EarlyStopping")
    best, last = run_checkpoints(RunFolder(tmp_path))
    assert isinstance(best, RunCheckpoint)
    assert (
        best.state_key
        == ModelCheckpoint(
            dirpath=best.dirpath,
            filename="best",
            monitor=MONITOR,
            mode="max",
            save_top_k=1,
            auto_insert_metric_name=False,
            enable_version_counter=False,
        ).state_key
    )
    assert last.state_key.startswith("ModelCheckpoint{")
    stopping.wait_count = 2
    payload = {"callbacks": {stopping.state_key: stopping.state_dict()}}
    assert epochs_without_better(payload) == 2


def test_the_weight_average_is_lightnings_ema_and_survives_pickling():
    """The same update and schedule as ``EMAWeightAveraging`` and its state's key, in an object that
    ``ddp_spawn`` can pickle (Lightning's own holds a closure)."""
    import pickle

    ours, theirs = WeightAverage(0.9), EMAWeightAveraging(decay=0.9)
    assert ours.state_key == theirs.state_key
    for step in (0, 1, 7):
        assert ours.should_update(step_idx=step) == theirs.should_update(step_idx=step) is True
    assert ours.should_update(epoch_idx=0) == theirs.should_update(epoch_idx=0) is False
    average, weight = torch.tensor([1.0, -2.0]), torch.tensor([3.0, 0.0])
    copy = pickle.loads(pickle.dumps(ours))
    expected = torch.tensor([0.9 * 1.0 + 0.1 * 3.0, 0.9 * -2.0])
    for update in (ours._kwargs["avg_fn"], copy._kwargs["avg_fn"], theirs._kwargs["avg_fn"]):
        assert torch.allclose(update(average, weight, 1), expected)


def test_the_checkpoint_holds_what_resume_and_training_end_read(tmp_path):
    class Tiny(L.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(4, 2)), batch_size=2)
    trainer = L.Trainer(
        max_epochs=1,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        callbacks=[Timer()],
        accelerator="cpu",
    )
    trainer.fit(Tiny(), data)
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    payload = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert {"epoch", "loops", "optimizer_states", "callbacks", "state_dict"} <= set(payload)
    assert training_seconds(payload) > 0


def test_the_torch_exporter_still_names_its_highest_opset():
    from torch.onnx import _constants

    assert _constants.ONNX_TORCHSCRIPT_EXPORTER_MAX_OPSET >= 20
