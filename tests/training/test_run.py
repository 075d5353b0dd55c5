"""Training runs end to end: run folder, checkpoints, resume after a kill, DDP, schedules, bad input."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pandas as pd
import pytest
import torch

from conftest import TINY, tiny_overrides
from phanet.cli import main
from phanet.config import dump_yaml, load_config
from phanet.data.datasets import FaceDataset
from phanet.data.registry import load_dataset
from phanet.data.splits import subject_folds, subject_split
from phanet.errors import PhanetError
from phanet.inference import TrainedModel
from phanet.reports.summaries import ended_by
from phanet.training.module import PhaNetModule
from phanet.training.optim import patience_floor, step_plateau
from phanet.training.phases import PAN_INIT, WARMUP, PhaseSchedule
from phanet.training.run import load_module, train
from phanet.training.run_folder import RunFolder, training_end
from phanet.training.stopping import PatienceStop


def _phanet(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "phanet", *args], capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture(scope="module")
def trained_run(tiny_manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "tiny"
    config = load_config("demo", tiny_overrides(tiny_manifest, out, "train.epochs=2"))
    return train(config, progress=False)


@pytest.mark.slow
def test_a_run_folder_holds_config_split_metrics_and_atomic_checkpoints(trained_run):
    run = trained_run.run_dir
    assert {p.name for p in run.iterdir()} >= {"config.yaml", "split.json", "classes.json", "metrics.csv", "checkpoints"}
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    metrics = pd.read_csv(run / "metrics.csv")
    assert metrics["epoch"].tolist() == [0, 1]
    for column in (
        "train/loss",
        "train/expression",
        "train/pose",
        "train/scale1",
        "train/scale2",
        "train/scale3",
        "train/rank2",
        "train/rank3",
        "train/factor",
        "train/lambda_e",
        "train/lambda_p",
        "train/c1",
        "train/c2",
        "train/c3",
        "train/expression_acc",
        "train/pose_acc",
        "val/expression_acc",
        "val/pose_acc",
        "val/loss",
        "lr",
    ):
        assert column in metrics.columns, column
        assert metrics[column].notna().all(), column
    assert ((metrics["train/lambda_e"] >= metrics["train/lambda_p"]) & (metrics["train/lambda_p"] >= 0)).all()
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 1
    assert last["hyper_parameters"]["expressions"] == ["AN", "HA", "NE", "SU"]
    assert last["hyper_parameters"]["poses"] == ["-30", "0", "30"]
    best = torch.load(run / "checkpoints" / "best.ckpt", weights_only=True)
    assert abs(trained_run.best_score - metrics["val/expression_acc"].max()) < 1e-6
    assert best["state_dict"].keys() == last["state_dict"].keys()
    split = json.loads((run / "split.json").read_text())
    assert len(split["val"]) == 2 and len(split["test"]) == 2 and len(split["train"]) == 4
    assert not list(run.rglob("*.tmp"))


def test_evaluate_reports_accuracy_per_pose_and_confusion_matrices(trained_run, tmp_path, capsys):
    out = tmp_path / "eval"
    assert main(["evaluate", "--checkpoint", str(trained_run.best_checkpoint), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "expression accuracy per pose" in printed
    result = json.loads((out / "evaluation.json").read_text())
    predictions = pd.read_csv(out / "predictions.csv")
    assert result["samples"] == len(predictions) == 2 * 4 * 3 * 2  # 2 test subjects
    assert set(predictions["subject"]) == set(json.loads((trained_run.run_dir / "split.json").read_text())["test"])
    cm = result["confusion_expression"]
    assert len(cm) == 4 and sum(map(sum, cm)) == result["samples"]
    accuracy = (predictions["expression"] == predictions["true_expression"]).mean()
    assert abs(result["expression_accuracy"] - accuracy) < 1e-9
    assert abs(sum(cm[i][i] for i in range(4)) / result["samples"] - accuracy) < 1e-9
    assert set(result["expression_accuracy_per_pose"]) == {"-30", "0", "30"}
    for pose, value in result["expression_accuracy_per_pose"].items():
        rows = predictions[predictions["true_pose"].astype(str) == pose]
        assert abs(value - (rows["expression"] == rows["true_expression"]).mean()) < 1e-9
    assert len(result["confusion_pose"]) == 3
    per_class = (predictions["expression"] == predictions["true_expression"]).groupby(predictions["true_expression"]).mean()
    assert result["expression_accuracy_per_class"] == pytest.approx(per_class.to_dict())
    assert result["expression_accuracy_mean_per_class"] == pytest.approx(per_class.mean())
    assert f"expression accuracy per expression (%; mean {100 * per_class.mean():.2f})" in printed


@pytest.mark.slow
def test_tiny_phanet_overfits_sixteen_images():
    from phanet.config import LossConfig
    from phanet.data.transforms import preprocess
    from phanet.losses import phanet_loss
    from phanet.models.phanet import PhaNet
    from tiny_data import draw

    torch.manual_seed(0)
    labels = [(i % 4, (i // 4) % 3, i // 5) for i in range(16)]
    images = torch.stack([preprocess(draw(e, p, s, 32), 32) for e, p, s in labels])
    expression = torch.tensor([e for e, _, _ in labels])
    pose = torch.tensor([p for _, p, _ in labels])
    model = PhaNet(
        ["AN", "HA", "NE", "SU"],
        ["-30", "0", "30"],
        32,
        backbone={"depth": 10, "growth_rate": 6, "stem_pool": False},
        attention={"hidden": 16, "grid": 2},
        sal_hidden=8,
        head_hidden=32,
    )
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        output = model(images)
        loss = phanet_loss(output, expression, pose, LossConfig()).total
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        predicted = model(images).expression_logits.argmax(1)
    assert torch.equal(predicted, expression)


@pytest.mark.slow
def test_demo_recipe_keeps_s1_and_every_scale_weight_learning():
    """The choices of the demo preset (SAL gate, the bound on SAL's mean pre-activation, optimiser) on the
    tiny overfit problem: S1's expression loss falls and the scale weights leave 0.5 with gradient still
    flowing."""
    from phanet.data.transforms import preprocess
    from phanet.losses import phanet_loss
    from tiny_data import draw

    torch.manual_seed(0)
    config = load_config("demo", [*TINY, "model.input_size=null"])
    module = PhaNetModule(config.to_dict(), ["AN", "HA", "NE", "SU"], ["-30", "0", "30"])
    optimizer = module.configure_optimizers()[0]["optimizer"]
    labels = [(i % 4, (i // 4) % 3, i // 5) for i in range(16)]
    images = torch.stack([preprocess(draw(e, p, s, 32), 32) for e, p, s in labels])
    expression = torch.tensor([e for e, _, _ in labels])
    pose = torch.tensor([p for _, p, _ in labels])
    s1 = []
    for _ in range(60):
        output = module.model(images)
        terms = phanet_loss(output, expression, pose, module.config.loss)
        s1.append(float(terms.terms["scale1"].detach()))
        optimizer.zero_grad()
        terms.total.backward()
        optimizer.step()
    assert "sal_limit" in terms.terms  # the preset's bound is part of the loss
    assert s1[-1] < 0.5 * s1[0]
    weights = output.scale_weights.detach()
    # every weight moved well off its start and differs from image to image (at a tenth of SAL's rate and
    # without the bound, the preset before: 0.005 off and a spread of 0.0006)
    assert (weights - 0.5).abs().mean(0).min() > 0.1
    assert weights.std(0).min() > 0.005
    assert ((weights > 0.01) & (weights < 0.99)).all()  # and none saturated: each still gets gradient
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in module.model.sal.fc2.parameters())


@pytest.mark.slow
def test_resume_after_a_kill_finishes_every_epoch_once(tiny_manifest, tmp_path):
    out = tmp_path / "killed"
    args = ["train", "--config", "demo", *tiny_overrides(tiny_manifest, out, "train.epochs=4"), "--no-progress"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "phanet", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    metrics = out / "metrics.csv"
    deadline = time.time() + 240
    while time.time() < deadline:
        if metrics.exists() and len(pd.read_csv(metrics)) >= 2:
            break
        assert process.poll() is None, "training ended before it could be interrupted"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done = len(pd.read_csv(metrics))
    assert 2 <= done < 4
    assert (out / "checkpoints" / "last.ckpt").exists()
    torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)

    result = _phanet("train", "--out", str(out), "--resume", "--no-progress")
    assert result.returncode == 0, result.stderr[-2000:]
    table = pd.read_csv(metrics)
    assert table["epoch"].tolist() == [0, 1, 2, 3]
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == 3
    assert (out / "checkpoints" / "best.ckpt").exists()
    torch.load(out / "checkpoints" / "best.ckpt", weights_only=True)
    assert not list(out.rglob("*.tmp"))


@pytest.mark.slow
def test_tiny_ddp_training_with_two_cpu_processes(tiny_manifest, tmp_path):
    out = tmp_path / "ddp"
    # no warm-up: the PAN initialisation's steps run under DDP too
    result = _phanet(
        "train",
        "--config",
        "demo",
        *tiny_overrides(tiny_manifest, out, "train.epochs=1", "train.pan_init.warmup_epochs=0", "train.sync_batchnorm=true"),
        "--accelerator",
        "cpu",
        "--devices",
        "2",
        "--strategy",
        "ddp",
        "--no-progress",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)["pan_init"]["steps"] == 3
    assert (out / "checkpoints" / "last.ckpt").exists()
    assert len(pd.read_csv(out / "metrics.csv")) == 1
    module = load_module(out / "checkpoints" / "last.ckpt")
    assert module.config.train.strategy == "ddp" and module.config.train.devices == "2"
    # the synchronised layers are BatchNorm2d again in the checkpoint's network
    assert module.config.train.sync_batchnorm
    assert {type(m).__name__ for m in module.modules() if "Norm" in type(m).__name__} == {"BatchNorm2d"}


@pytest.mark.parametrize("schedule", ["alternating", "joint"])
def test_schedules_freeze_the_right_parameters(schedule, tiny_manifest, tmp_path):
    """Each phase's loss reaches exactly the parameters that phase trains: frozen ones take no part in
    the backward pass and get no gradient at all."""
    from phanet.losses import pan_init_loss, phanet_loss

    config = load_config("demo", tiny_overrides(tiny_manifest, tmp_path / schedule, f"train.schedule={schedule}"))
    module = PhaNetModule(config.to_dict(), ["AN", "HA", "NE", "SU"], ["-30", "0", "30"])
    module.pan_init_steps = config.train.pan_init.steps  # initialisation done
    faces = load_dataset("manifest", str(tiny_manifest))
    batch = module.prepare_batch(FaceDataset(faces, 32).__getitems__(list(range(8))), train=False)
    pans = {id(p) for p in module.attention_parameters()}
    sal = {id(p) for p in module.model.parameter_groups()["SAL"]}
    expected = {
        "joint": ("total", True, True),
        "classification": ("classification", False, True),
        "ranking": ("ranking", True, False),
        "warmup": ("classification", False, True),
        "pan_init": ("pan_init", True, False),
    }
    phases = [module.phase_of(0), module.phase_of(1), WARMUP, PAN_INIT]
    assert [p.name for p in phases[:2]] == (["joint", "joint"] if schedule == "joint" else ["classification", "ranking"])
    for phase in phases:
        module.zero_grad(set_to_none=True)
        with module.frozen(module.frozen_in(phase)):
            if phase.loss == "pan_init":
                output = module.model(batch["image"], return_maps=True, map_classes=batch["expression"])
                loss = pan_init_loss(output)
            else:
                output = module.model(batch["image"])
                terms = phanet_loss(output, batch["expression"], batch["pose"], module.config.loss)
                loss = getattr(terms, phase.loss)
            assert phase.loss == expected[phase.name][0]
            loss.backward()
        assert all(p.requires_grad for p in module.parameters())  # every flag restored
        got = {id(p) for p in module.parameters() if p.grad is not None}
        _, pan_moves, others_move = expected[phase.name]
        assert (pans <= got) == pan_moves and bool(pans & got) == pan_moves, phase  # all PANs or none
        others = {id(p) for p in module.parameters()} - pans
        assert bool(others & got) == others_move, phase
        if phase.name == "warmup":
            assert sal <= got  # held only with train.pan_init.hold_sal


@pytest.mark.parametrize("enabled, warmup, steps", [(False, 0, 2), (False, 1, 2), (True, 0, 2), (True, 1, 2), (True, 1, 0)])
def test_phases_follow_the_pan_initialisation_settings(enabled, warmup, steps):
    """``train.pan_init.enabled: false``: no warm-up, no initialisation; enabled: ``warmup`` epochs of
    warm-up, then exactly ``steps`` initialisation steps, then the schedule (also with 0 steps). The
    module's optimisers follow: the initialisation's own Adam over the PANs alone when it runs."""
    overrides = [
        *TINY,
        f"train.pan_init.enabled={str(enabled).lower()}",
        f"train.pan_init.warmup_epochs={warmup}",
        f"train.pan_init.steps={steps}",
    ]
    config = load_config("demo", overrides)
    schedule = PhaseSchedule.from_config(config.train, has_attention=True)
    seen, done = [], 0
    for epoch in range(3):
        for batch_idx in range(2):
            phase = schedule.phase(epoch, batch_idx, done)
            seen.append(phase.name)
            done += phase.name == "pan_init"
    if not enabled:
        assert seen == ["joint"] * 6
    else:
        assert seen == ["warmup"] * (2 * warmup) + ["pan_init"] * steps + ["joint"] * (6 - 2 * warmup - steps)
    module = PhaNetModule(config.to_dict(), ["AN", "HA"], ["0"])
    assert module.phases == schedule
    optimizers = module.configure_optimizers()
    assert len(optimizers) == (2 if enabled else 1)
    if enabled:
        assert optimizers[1]["optimizer"].param_groups[0]["params"] == module.attention_parameters()


@pytest.mark.slow
def test_pan_initialisation_trains_the_pans_alone_and_survives_resume(tiny_manifest, tmp_path):
    """Through the Trainer, under bf16 autocast: the initialisation steps move the PANs and nothing else,
    their count is kept in the checkpoint, and a resumed run neither repeats nor skips them."""
    out = tmp_path / "init"
    overrides = (
        "train.epochs=1",
        "train.dynamics=1",
        "train.pan_init.warmup_epochs=0",
        "train.pan_init.steps=2",
        "train.precision=bf16-mixed",
    )
    config = load_config("demo", tiny_overrides(tiny_manifest, out, *overrides))
    train(config, progress=False)
    table = pd.read_csv(out / "dynamics.csv")
    assert table["phase"].tolist()[:3] == ["pan_init", "pan_init", "joint"]
    init = table[table["phase"] == "pan_init"]
    assert (init["update/PAN_S2"] > 0).all() and (init["update/PAN_S3"] > 0).all()
    assert (init["update/S1_backbone"] == 0).all() and (init["update/SAL"] == 0).all()
    assert (init["grad/pan_init/PAN_S2"] > 0).all() and (init["grad/pan_init/S1_backbone"] == 0).all()
    assert (init["lr"] == config.train.pan_init.lr).all()
    last = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["pan_init"]["steps"] == 2 and math.isfinite(last["pan_init"]["loss"])
    assert len(last["optimizer_states"]) == 2
    more = load_config("demo", tiny_overrides(tiny_manifest, out, *overrides[1:], "train.epochs=2"))
    train(more, resume=True, progress=False)
    table = pd.read_csv(out / "dynamics.csv")
    assert (table[table["epoch"] == 1]["phase"] == "joint").all()


def test_subject_independent_splits_and_folds(tiny_manifest):
    faces = load_dataset("manifest", str(tiny_manifest))
    split = subject_split(faces, val=0.25, test=2, seed=3)
    parts = [set(faces.samples[i].subject for i in getattr(split, p)) for p in ("train", "val", "test")]
    assert [len(p) for p in parts] == [4, 2, 2]
    assert not (parts[0] & parts[1]) and not (parts[0] & parts[2]) and not (parts[1] & parts[2])
    assert len(split.train) + len(split.val) + len(split.test) == len(faces)
    assert subject_split(faces, val=0.25, test=2, seed=3) == split
    folds = subject_folds(faces, k=4, seed=0)
    tested = [s for _, test in folds for s in {faces.samples[i].subject for i in test}]
    assert sorted(tested) == faces.subjects()
    for train_idx, test_idx in folds:
        assert not {faces.samples[i].subject for i in train_idx} & {faces.samples[i].subject for i in test_idx}


# --- bad input: one clear line, exit status 2 -------------------------------------------------


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    return err


def test_unknown_and_ill_typed_config_keys(capsys, tiny_manifest, tmp_path):
    base = ["train", "--config", "demo", *tiny_overrides(tiny_manifest, tmp_path / "x")]
    assert "unknown key model.depthh" in _error(capsys, [*base, "model.depthh=3"])
    assert "train.epochs: expected an integer" in _error(capsys, [*base, "train.epochs=many"])
    assert "loss.setting: expected one of" in _error(capsys, [*base, "loss.setting=everything"])


def test_missing_image_and_unknown_label_name_the_row(capsys, tiny_manifest, tmp_path):
    table = pd.read_csv(tiny_manifest)
    broken = tmp_path / "broken"
    broken.mkdir()
    table.loc[5, "path"] = "nowhere.png"
    table["path"] = [str(tiny_manifest.parent / p) if p != "nowhere.png" else p for p in table["path"]]
    table.to_csv(broken / "manifest.csv", index=False)
    base = ["train", "--config", "demo", *tiny_overrides(broken / "manifest.csv", tmp_path / "x")]
    err = _error(capsys, base)
    assert "row 7" in err and "nowhere.png" in err and "not found" in err
    table.loc[5, "path"] = table.loc[4, "path"]
    table.loc[5, "expression"] = "XX"
    table.to_csv(broken / "manifest.csv", index=False)
    err = _error(capsys, [*base, "data.options={expressions: [AN, HA, NE, SU]}"])
    assert "row 7" in err and "'XX'" in err and "class list" in err


def test_empty_split_and_existing_run_folder(capsys, tiny_manifest, trained_run, tmp_path):
    err = _error(
        capsys,
        ["train", "--config", "demo", *tiny_overrides(tiny_manifest, tmp_path / "x"), "data.split.val=4", "data.split.test=4"],
    )
    assert "train split is empty" in err
    err = _error(capsys, ["train", "--config", "demo", *tiny_overrides(tiny_manifest, trained_run.run_dir)])
    assert "already holds files" in err and "--resume" in err


def test_incompatible_checkpoint_and_resume(capsys, tiny_manifest, trained_run, tmp_path):
    err = _error(
        capsys,
        [
            "train",
            "--config",
            "demo",
            *tiny_overrides(tiny_manifest, trained_run.run_dir),
            "model.backbone.growth_rate=8",
            "--resume",
        ],
    )
    assert "model.backbone.growth_rate" in err and "differs" in err
    payload = torch.load(trained_run.last_checkpoint, weights_only=True)
    payload["hyper_parameters"]["config"]["model"]["backbone"]["growth_rate"] = 8
    torch.save(payload, tmp_path / "other.ckpt")
    err = _error(capsys, ["evaluate", "--checkpoint", str(tmp_path / "other.ckpt")])
    assert "does not match its config" in err
    (tmp_path / "junk.ckpt").write_text("not a checkpoint")
    assert "not a readable checkpoint" in _error(capsys, ["evaluate", "--checkpoint", str(tmp_path / "junk.ckpt")])


def test_nan_loss_stops_with_the_step(capsys, tiny_manifest, tmp_path):
    err = _error(
        capsys,
        [
            "train",
            "--config",
            "demo",
            *tiny_overrides(tiny_manifest, tmp_path / "nan"),
            "optim.lr=1e30",
            "train.gradient_clip=0",
            "train.pan_init.enabled=false",
            "--no-progress",
        ],
    )
    assert "training step" in err and "loss is nan" in err.lower()


@pytest.mark.slow
def test_training_dynamics_record_what_each_part_receives(tiny_manifest, tmp_path):
    out = tmp_path / "dyn"
    config = load_config(
        "demo",
        tiny_overrides(
            tiny_manifest,
            out,
            "train.epochs=2",
            "train.dynamics=1",
            "train.pan_init.warmup_epochs=1",
            "train.pan_init.hold_sal=true",
        ),
    )
    train(config, progress=False)
    table = pd.read_csv(out / "dynamics.csv")
    steps_per_epoch = pd.read_csv(out / "metrics.csv")["step"].iloc[0]
    assert table["step"].tolist() == list(range(2 * steps_per_epoch))
    assert table["phase"].tolist() == ["warmup"] * steps_per_epoch + ["pan_init"] * 3 + ["joint"] * (steps_per_epoch - 3)
    init = table[table["phase"] == "pan_init"]
    table = table[table["phase"] != "pan_init"]
    warm, joint = table[table["epoch"] == 0], table[table["epoch"] == 1]
    # Frozen in the warm-up (with hold_sal, SAL too): no gradient, no update.
    assert (warm["update/PAN_S2"] == 0).all() and (warm["update/SAL"] == 0).all() and (warm["grad/PAN_S3"] == 0).all()
    assert (joint["update/PAN_S2"] > 0).all() and (joint["update/SAL"] > 0).all()
    assert (init["update/S2_backbone"] == 0).all() and (init["update/PAN_S3"] > 0).all()
    # Which loss part can reach which part of the network (Eq. 3, 4, 9): exact zeros where no path exists.
    assert (table["grad/scale1/S2_backbone"] == 0).all() and (table["grad/scale1/S1_classifier"] > 0).all()
    assert (table["grad/expression/S1_classifier"] == 0).all() and (table["grad/pose/head_expression"] == 0).all()
    assert (table["grad/rank2/S1_classifier"] == 0).all()  # the coarser probability is a fixed reference
    assert (table["grad/scale2/S1_backbone"] == 0).all() and (table["grad/rank3/S2_backbone"] == 0).all()  # detached
    assert (table["grad/scale3/S3_classifier"] > 0).all() and (table["grad/scale2/S3_backbone"] == 0).all()
    # The S1 classifier has one source, so its total gradient is that part's.
    assert (table["grad/S1_classifier"] - table["grad/scale1/S1_classifier"]).abs().max() < 1e-5
    # Held during the warm-up: PANs and SAL do not move, every other part does.
    assert (warm["update/PAN_S2"] == 0).all() and (warm["update/SAL"] == 0).all()
    assert (warm["update/S1_backbone"] > 0).all() and (joint["update/SAL"] > 0).all()
    first = table.iloc[0]  # W_2 = 0 at the start: z is SAL's bias (0, the sigmoid gate) for every sample
    assert config.model.sal_form == "sigmoid"
    for i in (1, 2, 3):
        assert first[f"sal/z{i}_mean"] == 0 and first[f"sal/z{i}_std"] == 0 and first[f"sal/z{i}_positive"] == 0
        assert first[f"sal/c{i}_mean"] == 0.5
    assert ((table["lambda_p_mean"] >= 0) & (table["lambda_p_mean"] <= 0.5)).all()
    # The PANs start at the centred middle-sized square (zero raw outputs), far from their bounds.
    for s in (2, 3):
        assert first[f"pan/S{s}_ax_mean"] == 0 and first[f"pan/S{s}_al_std"] == 0 and first[f"pan/S{s}_pinned"] == 0
    assert table["pan/S3_pinned"].between(0, 1).all()


def _untrainable(tiny_manifest, out, *overrides: str):
    """A learning rate too small to change any prediction, halved after every epoch without a better
    validation accuracy."""
    return load_config(
        "demo",
        tiny_overrides(
            tiny_manifest,
            out,
            "optim.lr=1e-12",
            "optim.scheduler=plateau",
            "optim.plateau_patience=0",
            "optim.lr_decay=0.5",
            *overrides,
        ),
    )


@pytest.mark.slow
def test_plateau_schedule_and_early_stopping_follow_the_validation_accuracy(tiny_manifest, tmp_path):
    # The validation accuracy never improves after the first epoch, so the plateau schedule decays at
    # every epoch and early stopping ends the run.
    out = tmp_path / "plateau"
    config = _untrainable(tiny_manifest, out, "train.epochs=6", "train.early_stop=2", "train.chance_margin=null")
    result = train(config, progress=False)
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics["epoch"].tolist() == [0, 1, 2]
    assert metrics["val/expression_acc"].nunique() == 1
    assert metrics["lr"].tolist() == pytest.approx([1e-12, 5e-13, 2.5e-13])
    assert result.best_score == pytest.approx(metrics["val/expression_acc"].iloc[0])
    # Resumed as it is, the stopped run has nothing to train and says which setting would go on.
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"}
    again = train(config, resume=True, progress=False)
    assert again.finished == (
        f"{out} had already stopped early after epoch 3 of 6 (2 epochs without a better "
        "validation FER accuracy, train.early_stop 2); nothing was trained. To train on, "
        "resume with train.early_stop above 2 (0 turns early stopping off)"
    )
    assert again.best_score == result.best_score
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and p.name != ".lock"} == before
    assert RunFolder(out).ended_by() == "early_stop" and ended_by(out) == "early stopping"
    # Early stopping ended it before any larger epoch limit could, and the plateau schedule does not depend
    # on the limit: under 12 epochs it is the same finished run. Not under 3 (its own epochs), nor with
    # more patience, which would have trained on.
    folder = RunFolder(out)
    assert folder.difference(load_config(out / "config.yaml", ["train.epochs=12"]), budget=True) is None
    assert (
        folder.difference(load_config(out / "config.yaml", ["train.epochs=3"]), budget=True)
        == "train.epochs (6 in the run, 3 now)"
    )
    assert (
        folder.difference(load_config(out / "config.yaml", ["train.epochs=12", "train.early_stop=3"]), budget=True)
        == "train.epochs (6 in the run, 12 now)"
    )
    # More patience: one more epoch without improvement ends it again (the patience is the new one).
    more = load_config(out / "config.yaml", ["train.early_stop=3"])
    assert train(more, resume=True, progress=False).finished is None
    assert pd.read_csv(out / "metrics.csv")["epoch"].tolist() == [0, 1, 2, 3]
    assert ended_by(out) == "early stopping"
    # Under a budget of 4 epochs and no early stopping, the same run ended by its epochs.
    _rewrite(out / "config.yaml", "train.epochs=4", "train.early_stop=0")
    assert RunFolder(out).ended_by() == "epochs" and ended_by(out) == "epoch limit (4)"
    # Without a time cap (train.max_minutes null) the words are the same.
    _rewrite(out / "config.yaml", "train.max_minutes=null")
    assert ended_by(out) == "epoch limit (4)"


def _rewrite(config_file, *overrides: str) -> None:
    dump_yaml(load_config(config_file, list(overrides)), config_file)


def test_training_end_names_the_setting_that_left_nothing_to_train():
    train_settings = SimpleNamespace(epochs=10, early_stop=3, max_minutes=5.0)

    def payload(epoch, wait, seconds):
        return {
            "epoch": epoch,
            "callbacks": {
                "EarlyStopping{'monitor': 'val/expression_acc'}": {"wait_count": wait},
                "Timer": {"time_elapsed": {"train": seconds}},
            },
        }

    assert training_end(payload(9, 0, 0.0), train_settings) == "epochs"  # epoch 9 is the 10th
    assert training_end(payload(5, 3, 0.0), train_settings) == "early_stop"
    assert training_end(payload(5, 2, 300.0), train_settings) == "max_minutes"
    assert training_end(payload(5, 2, 299.0), train_settings) is None
    # Each setting turned off ends nothing; a payload without callback states has only its epochs.
    unlimited = SimpleNamespace(epochs=10, early_stop=0, max_minutes=None)
    assert training_end(payload(5, 3, 1e6), unlimited) is None
    assert training_end({"epoch": 9}, unlimited) == "epochs" and training_end({"epoch": 8}, unlimited) is None


def test_patience_counts_only_once_validation_has_left_chance():
    # Chance is the largest expression's share of the validation set: 4 of 10 here, plus the margin.
    assert patience_floor([4, 3, 3], 0.05) == pytest.approx(0.45)
    assert patience_floor([4, 3, 3], None) is None and patience_floor([0, 0, 0], 0.05) is None
    scores = [0.30, 0.45, 0.40, 0.44, 0.50, 0.49, 0.48, 0.47, 0.46]
    # The plateau schedule (patience 1): three epochs at chance keep the rate; counting starts at 0.50,
    # and the second epoch after it without a better score lowers the rate, and so does the fourth.
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.1, patience=1)
    rates = []
    for score in scores:
        step_plateau(scheduler, score, 0.45)
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates == pytest.approx([1, 1, 1, 1, 1, 1, 0.1, 0.1, 0.01])
    assert scheduler.best == 0.50 and scheduler.last_epoch == len(scores)
    # Counted from the first epoch, the same scores lower it after the third.
    plain = torch.optim.lr_scheduler.ReduceLROnPlateau(
        torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), mode="max", factor=0.1, patience=1
    )
    step_plateau(plain, 0.30, None), step_plateau(plain, 0.45, None), step_plateau(plain, 0.40, None)
    assert plain.optimizer.param_groups[0]["lr"] == 1
    step_plateau(plain, 0.44, None)
    assert plain.optimizer.param_groups[0]["lr"] == pytest.approx(0.1)
    # Early stopping (patience 2) the same way: never while at chance, then after two worse epochs.
    stopping = PatienceStop("val/expression_acc", patience=2)
    stopping.floor = 0.45
    assert [stopping.decide(score) for score in scores[:7]] == [False] * 6 + [True]
    assert stopping.best_score == pytest.approx(0.50)
    stopping = PatienceStop("val/expression_acc", patience=2)
    assert [stopping.decide(score) for score in scores[:4]] == [False, False, False, True]
    assert PatienceStop("val/expression_acc", patience=2).decide(math.nan)


@pytest.mark.slow
def test_a_network_at_chance_keeps_its_rate_and_is_not_stopped(tiny_manifest, tmp_path):
    # The same untrainable run as above with a chance margin no accuracy can pass: every epoch runs and
    # the learning rate stays.
    out = tmp_path / "chance"
    config = _untrainable(tiny_manifest, out, "train.epochs=4", "train.early_stop=1", "train.chance_margin=1")
    train(config, progress=False)
    metrics = pd.read_csv(out / "metrics.csv")
    assert metrics["epoch"].tolist() == [0, 1, 2, 3]
    assert metrics["lr"].tolist() == pytest.approx([1e-12] * 4)


@pytest.mark.slow
def test_balanced_class_weights_come_from_the_training_subjects_and_stay_with_the_checkpoint(tiny_manifest, tmp_path):
    # Half of the HA images left out: the training split's classes are no longer balanced.
    rows = pd.read_csv(tiny_manifest)
    rows = rows.drop(rows.index[rows["expression"].eq("HA")][::2])
    manifest = tiny_manifest.parent / "fewer_happy.csv"
    rows.to_csv(manifest, index=False)
    out = tmp_path / "balanced"
    config = load_config("demo", tiny_overrides(manifest, out, "train.epochs=1", "loss.class_weights=balanced"))
    train(config, progress=False)
    split = json.loads((out / "split.json").read_text())
    used = rows[rows["subject"].isin(split["train"])]
    counts = [int((used["expression"] == e).sum()) for e in ["AN", "HA", "NE", "SU"]]
    assert counts[1] < counts[0] == counts[2] == counts[3]
    module = load_module(out / "checkpoints" / "best.ckpt")
    assert module.hparams["class_counts"] == counts
    expected = [sum(counts) / (4 * n) for n in counts]
    assert module.class_weights.tolist() == pytest.approx(expected)
    assert module.class_weights[1] > 1 > module.class_weights[0]
    # Without the counts a balanced module cannot be built; the default needs none.
    with pytest.raises(PhanetError, match="loss.class_weights: balanced weights need the training set's count"):
        PhaNetModule(config.to_dict(), ["AN", "HA", "NE", "SU"], ["-30", "0", "30"])
    assert PhaNetModule(load_config("demo", TINY).to_dict(), ["AN", "HA"], ["0"]).class_weights is None


@pytest.mark.slow
def test_head_probe_reads_the_same_network_as_evaluate(trained_run):
    """``phanet.analysis.head_probe``: the head-as-trained row is the network's own accuracy on the test
    split (what ``evaluate`` reports), a probe row per representation and task, the refit per epoch."""
    from phanet.analysis.head_probe import REPRESENTATIONS, head_probe
    from phanet.evaluation import evaluate
    from phanet.workflow import resolve_eval_data

    table = head_probe(trained_run.run_dir, epochs=2)
    model = TrainedModel.from_checkpoint(trained_run.best_checkpoint)
    summary, _ = evaluate(model, resolve_eval_data(model.config, None, None, [], "test")[0])
    head = table[table["readout"] == "head as trained"].set_index("task")["test"]
    assert head["expression"] == pytest.approx(summary["expression_accuracy"], abs=1e-6)  # float32 mean
    assert head["pose"] == pytest.approx(summary["pose_accuracy"], abs=1e-6)
    assert table["readout"].tolist() == ["head as trained"] * 2 + [f"probe on {r}" for r in REPRESENTATIONS for _ in range(2)] + [
        f"head refitted, epoch {e}" for e in (1, 2) for _ in range(2)
    ]
    assert table[["train", "test"]].stack().between(0, 1).all()


@pytest.mark.slow
def test_square_swap_reads_s3_with_its_own_and_other_faces_squares(trained_run, tmp_path):
    """``phanet.analysis.square_swap``: the own-square accuracy is S3's own classifier on the test faces,
    one row per expression and ``all``, the leak the difference of its two rates."""
    import shutil

    import matplotlib.pyplot as plt

    from phanet.analysis.square_swap import faces_figure, square_swap
    from phanet.evaluation import evaluate
    from phanet.training.run_folder import RunFolder
    from phanet.workflow import resolve_eval_data

    run = tmp_path / "run"
    shutil.copytree(trained_run.run_dir, run)
    module = load_module(RunFolder(run).best)
    faces = resolve_eval_data(module.config, None, None, [], "test")[0]
    RunFolder(run).write_evaluation(*evaluate(TrainedModel.from_checkpoint(RunFolder(run).best), faces))
    table, summary = square_swap(run)
    classes = ["AN", "HA", "NE", "SU"]
    assert table["expression"].tolist() == [*classes, "all"]
    assert table["faces"].iloc[:-1].sum() == table["faces"].iloc[-1] == len(faces)
    dataset = FaceDataset(faces, module.config.model.input_size or module.config.model.image_size)
    images = module.prepare_batch(dataset.__getitems__(list(range(len(faces)))), train=False)["image"]
    with torch.no_grad():
        s3 = module.model(images).scale_logits[2].argmax(1)
    truth = torch.tensor([classes.index(faces.expressions[s.expression]) for s in faces.samples])
    assert summary["own"] == pytest.approx(float((s3 == truth).float().mean()))
    assert table.set_index("expression").loc["all", "own"] == pytest.approx(summary["own"])
    assert summary["donor_leak"] == pytest.approx(summary["donor_says_donor"] - summary["own_says_donor"])
    values = table.drop(columns=["expression", "faces"]).stack()
    assert values.between(0, 1).all() and len(values) > 0
    figure = faces_figure(run, tmp_path / "faces.png", ["AN", "HA"], ["-30", "30"])
    assert min(plt.imread(figure).shape[:2]) > 100
    with pytest.raises(SystemExit, match="no test subject has every expression"):
        faces_figure(run, tmp_path / "none.png", ["AN"], ["-90"])


@pytest.mark.slow
def test_head_refit_scores_the_network_as_trained_and_refits_sal_and_the_head(trained_run):
    """``phanet.analysis.head_refit``: the ``trained`` row is the network's own test accuracy; ``fixed``
    gives every face the same c; each row says an expression for every test face; a refit trains
    copies and leaves the network's own SAL and head untouched."""
    from phanet.analysis.head_refit import frozen_features, head_refit, refit
    from phanet.workflow import resolve_eval_data

    module = load_module(trained_run.best_checkpoint)
    module.eval()
    table, by = head_refit(trained_run.run_dir, ["fixed", "sal", "balanced"], [0], epochs=2, by=True)
    assert table["variant"].tolist() == ["trained", "fixed", "sal", "balanced"]
    test = resolve_eval_data(module.config, None, None, [], "test")[0]
    dataset = FaceDataset(test, module.config.model.input_size or module.config.model.image_size)
    batch = module.prepare_batch(dataset.__getitems__(list(range(len(test)))), train=False)
    with torch.no_grad():
        out = module.model(batch["image"])
    trained = table.iloc[0]
    assert trained["FER"] == pytest.approx(float((out.expression_logits.argmax(1) == batch["expression"]).float().mean() * 100))
    assert trained["pose"] == pytest.approx(float((out.pose_logits.argmax(1) == batch["pose"]).float().mean() * 100))
    assert trained["c1"] == pytest.approx(float(out.scale_weights[:, 0].mean()), abs=1e-5)
    says = [c for c in table.columns if c.startswith("says ")]
    assert (table[says].sum(axis=1) == len(test)).all()
    fixed = table.set_index("variant").loc["fixed"]
    assert fixed[["c1 std", "c2 std", "c3 std"]].max() < 1e-6
    assert table[["FER", "pose", "mean per expression"]].stack().between(0, 100).all()
    assert set(by) == {"trained ", "fixed 0", "sal 0", "balanced 0"}
    assert list(by["sal 0"]["pose"].columns) == ["-30", "0", "30"]
    before = {k: v.clone() for k, v in module.model.state_dict().items()}
    sal, head, _ = refit(module.model, module.config, frozen_features(module, "test"), "sal", 0, 1)
    assert all(torch.equal(v, before[k]) for k, v in module.model.state_dict().items())
    assert not torch.equal(head.expression.weight, module.model.head.expression.weight)
    assert not torch.equal(sal.fc2.bias, module.model.sal.fc2.bias)
    # The refit keeps the run's bound on SAL's mean pre-activations: held near 0, they end nearer.
    features = frozen_features(module, "train")
    from phanet.experiments import variant

    mean_z = {}
    for name, limit in (("free", None), ("bounded", 1e-3)):
        config = variant(module.config, {"loss.sal_limit": limit})
        sal, _, _ = refit(module.model, config, features, "sal", 0, 3)
        with torch.no_grad():
            mean_z[name] = sal.pre_activations(list(features["pooled"].unbind(1))).mean(0).abs().sum().item()
    assert mean_z["bounded"] < mean_z["free"]
    with pytest.raises(SystemExit, match="not one of"):
        head_refit(trained_run.run_dir, ["other"], [0], epochs=1)


def test_gradient_clipping_by_part_leaves_the_other_parts_alone():
    """``train.gradient_clip_by: part``: a part whose gradient norm exceeds the threshold is scaled to it;
    the other parts keep their gradients exactly (by ``network`` all would shrink together)."""
    from types import SimpleNamespace

    module = PhaNetModule(
        load_config("demo", [*TINY, "train.gradient_clip=5", "train.gradient_clip_by=part"]).to_dict(), ["AN", "HA"], ["0"]
    )
    optimizer = torch.optim.SGD(module.parameters(), lr=0.1)
    module._trainer = SimpleNamespace(optimizers=[optimizer])
    torch.manual_seed(0)
    for p in module.parameters():
        p.grad = torch.randn_like(p) * 1e-3
    pan = module.attention_parameters()
    for p in pan[:1]:
        p.grad = torch.full_like(p, 100.0)
    before = {id(p): p.grad.clone() for p in module.parameters()}
    module.on_before_optimizer_step(optimizer)
    pan_s2 = module._parts["PAN_S2"]
    assert float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in pan_s2]))) == pytest.approx(
        5.0, rel=1e-4
    )
    for name, parameters in module._parts.items():
        if name != "PAN_S2":
            assert all(torch.equal(p.grad, before[id(p)]) for p in parameters), name


@pytest.mark.slow
def test_weight_averaging_checkpoints_the_average_and_resumes_it(tiny_manifest, tmp_path, monkeypatch):
    """With ``train.ema``: the checkpoints' weights (what validation, evaluation and prediction use) are
    the exponential moving average of the weights after each optimiser step, computed here by hand;
    the raw weights are kept beside them, a resumed run trains on from the raw weights and carries
    the average on from where it was."""
    decay = 0.7
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    starts: list[dict[str, torch.Tensor]] = []

    def state(module: PhaNetModule) -> dict[str, torch.Tensor]:
        return {k: v.detach().clone() for k, v in module.state_dict().items()}

    monkeypatch.setattr(
        PhaNetModule,
        "on_train_batch_end",
        lambda self, *args: snapshots.__setitem__(self.global_step, state(self)),
        raising=False,
    )
    monkeypatch.setattr(PhaNetModule, "on_train_start", lambda self: starts.append(state(self)), raising=False)

    def run(epochs: int, resume: bool = False) -> dict:
        snapshots.clear()
        config = load_config(
            "demo", tiny_overrides(tiny_manifest, tmp_path / "ema", f"train.epochs={epochs}", f"train.ema={decay}")
        )
        train(config, resume=resume, progress=False)
        return torch.load(tmp_path / "ema" / "checkpoints" / "last.ckpt", weights_only=True)

    def averaged(start: dict[str, torch.Tensor] | None, keys: list[str]) -> dict[str, torch.Tensor]:
        steps = [snapshots[step] for step in sorted(snapshots)]
        expected = {k: (steps[0] if start is None else start)[k].clone() for k in keys}
        for weights in steps[(start is None) :]:
            for k in keys:
                expected[k] = decay * expected[k] + (1 - decay) * weights[k]
        return expected

    first = run(1)
    first_steps = max(snapshots)
    assert sorted(snapshots) == list(range(1, first_steps + 1)) and first_steps > 2  # one per optimiser step
    floating = [k for k, v in first["state_dict"].items() if v.is_floating_point()]
    raw = snapshots[first_steps]
    for k, value in averaged(None, floating).items():
        torch.testing.assert_close(first["state_dict"][k], value, rtol=1e-5, atol=1e-6)
        assert torch.equal(first["current_model_state"][k], raw[k])
    moved = [k for k in floating if not torch.equal(first["state_dict"][k], raw[k])]
    assert len(moved) > len(floating) // 2
    module = load_module(tmp_path / "ema" / "checkpoints" / "last.ckpt")
    assert all(torch.equal(module.state_dict()[k], first["state_dict"][k]) for k in floating)

    second = run(2, resume=True)
    assert sorted(snapshots) == list(range(first_steps + 1, first_steps + len(snapshots) + 1))  # epoch 2's steps
    assert all(torch.equal(starts[-1][k], first["current_model_state"][k]) for k in floating)
    for k, value in averaged(first["state_dict"], floating).items():
        torch.testing.assert_close(second["state_dict"][k], value, rtol=1e-5, atol=1e-6)


def test_square_swap_reads_the_old_face_pans_option_as_face_yaws():
    """The script's own option: read from ``benchmarks/square_swap.py`` itself, which stays off ``sys.path``."""
    import runpy

    from conftest import REPO
    from phanet.compat import PhanetDeprecationWarning

    parse = runpy.run_path(str(REPO / "benchmarks" / "square_swap.py"))["parse_arguments"]
    assert parse(["run"]).face_yaws == "-60,-45,45,60" and parse(["run", "--face-yaws", "0"]).face_yaws == "0"
    with pytest.warns(
        PhanetDeprecationWarning,
        match=r"^benchmarks/square_swap.py: the option '--face-pans' is now "
        r"called '--face-yaws'; the old name stops working in phanet 0.3$",
    ):
        assert parse(["run", "--face-pans=-30,30"]).face_yaws == "-30,30"
