"""Networks by name: every registered network builds from plain keyword arguments, carries its
ModelInfo and names its parameter groups; a config becomes those arguments in one place."""

from __future__ import annotations

import ast
import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import phanet
from phanet.config import ModelConfig, load_config
from phanet.models import create_model, list_models, register_model
from phanet.models.info import MEAN, PAPER_EXPRESSIONS, PAPER_POSES, STD
from phanet.models.phanet import ATTENTION_DEFAULTS, PART_NAMES, PhaNet

SRC = Path(phanet.__file__).parent
TINY = {
    "backbone": {"depth": 10, "growth_rate": 6, "stem_pool": False},
    "attention": {"hidden": 16, "grid": 2},
    "sal_hidden": 8,
    "head_hidden": 32,
}


def test_every_table6_row_and_every_baseline_is_registered():
    assert list_models() == sorted(
        [
            "phanet",
            "phanet_n_s1",
            "phanet_h_s2",
            "phanet_h_s3",
            "phanet_n_s1_h_s2",
            "phanet_n_s1_h_s3",
            "phanet_h_s2_h_s3",
            "phanet_n_s1_h_s2_h_s3",
            "densenet",
            "densenet40",
            "vgg19",
            "hog_fc",
        ]
    )
    for name, scales, joint_sa in (
        ("phanet", ["N_S1", "H_S2", "H_S3"], True),
        ("phanet_h_s3", ["H_S3"], False),
        ("phanet_n_s1_h_s2", ["N_S1", "H_S2"], False),
    ):
        model = create_model(name, image_size=32, **TINY)
        assert [("N_S1", "H_S2", "H_S3")[i] for i in model.used] == scales and (model.sal is not None) == joint_sa


def test_create_model_with_defaults_is_the_papers_configuration():
    model = phanet.create_model("phanet", image_size=64)
    assert isinstance(model, PhaNet) and model.image_size == 64
    assert model.info.input_size == 64 and (model.info.mean, model.info.std) == (MEAN, STD)
    assert model.info.expressions == list(PAPER_EXPRESSIONS) and model.info.poses == list(PAPER_POSES)
    dense = phanet.create_model("densenet40")
    assert dense.backbone.num_features == 16 + 3 * 12 * 12 and dense.info.arch == "densenet"
    assert dense.info.input_size == 224
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 3, 64, 64))
    assert out.expression_logits.shape == (1, 7) and out.pose_logits.shape == (1, 9)


def test_an_unknown_name_or_setting_is_refused_with_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown model 'resnet' \(registered: densenet, densenet40, "):
        create_model("resnet")
    with pytest.raises(ValueError, match=r"unknown attention setting 'grids' \(known: hidden, grid, "):
        create_model("phanet", attention={"grids": 2})

    def another(**kwargs):
        return PhaNet(**kwargs)

    another.__name__ = "phanet"
    with pytest.raises(ValueError, match="^a model named 'phanet' is already registered$"):
        register_model(another)


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"expressions": None}, "expressions must be a list of class names, got NoneType"),
        ({"expressions": []}, "expressions must be a list of non-empty class names, got none"),
        ({"expressions": ["HA", 3]}, "expressions must be a list of non-empty class names, got the name 3"),
        ({"poses": "0"}, "poses must be a list of class names, got str"),
        ({"poses": ["0", "0"]}, "poses names a class twice: '0'"),
        ({"image_size": 0}, "image_size must be a positive whole number of pixels, got 0"),
        ({"image_size": 64.0}, "image_size must be a positive whole number of pixels, got 64.0"),
        ({"image_size": 64, "input_size": 100}, "input_size 100 must be a multiple of image_size 64"),
        ({"backbone": {"growth_rate": 0}}, "growth_rate must be a whole number of at least 1, got 0"),
        ({"backbone": {"depth": "40"}}, "depth must be a whole number of at least 4, got '40'"),
    ],
)
@pytest.mark.parametrize("name", ["phanet", "densenet"])
def test_arguments_a_network_cannot_take_are_one_line_naming_them(name, arguments, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        create_model(name, **arguments)


def test_a_network_larger_than_the_free_memory_is_refused_before_it_is_allocated(monkeypatch):
    import phanet.runtime

    # 10**6 new maps a layer: some 10**16 weights, refused from their count on the meta device
    with pytest.raises(ValueError, match=r"^model 'phanet' with these arguments holds [\d.e+]+ TB of weights, more than"):
        create_model("phanet", backbone={"growth_rate": 10**6})
    tiny = create_model("phanet", image_size=32, **TINY)
    weights = 4 * sum(p.numel() for p in tiny.parameters()) + 4 * sum(b.numel() for b in tiny.buffers())
    monkeypatch.setattr(phanet.runtime, "available_memory", lambda: weights - 1)  # one byte short
    with pytest.raises(ValueError, match=r"more than the [\d.]+ [kM]B this machine has free$"):
        create_model("phanet", image_size=32, **TINY)
    monkeypatch.setattr(phanet.runtime, "available_memory", lambda: weights)
    assert create_model("phanet", image_size=32, **TINY).info.input_size == 32


def test_the_config_defaults_are_the_constructors_defaults():
    """A config's network and ``create_model`` with no arguments are the same network: the defaults are
    written twice (the config's dataclasses, the constructors), and this test keeps them equal."""
    arguments = ModelConfig().arguments()
    signature = inspect.signature(PhaNet)
    for name, value in arguments.items():
        default = signature.parameters[name].default
        if name == "attention":
            assert value == ATTENTION_DEFAULTS
        elif name == "backbone":
            dense = inspect.signature(phanet.models.densenet.DenseNet).parameters
            assert value == {key: dense[key].default for key in value}
        elif name == "scales":
            assert tuple(value) == default
        else:
            assert value == default or (name == "input_size" and value is None), name


@pytest.mark.parametrize("arch", ["phanet", "densenet", "vgg19", "hog_fc"])
def test_a_config_builds_its_network_through_the_registry(arch):
    config = load_config(
        "demo",
        [
            f"model.arch={arch}",
            "loss.setting=p_e",
            "model.image_size=32",
            "model.input_size=64",
            "model.backbone.depth=10",
            "model.width=0.125",
        ],
    )
    model = create_model(arch, expressions=["AN", "HA"], poses=["0"], **config.model.arguments())
    assert model.info.input_size == 64 and model.info.arch == arch
    with torch.no_grad():
        out = model.eval()(torch.randn(2, 3, 64, 64))
    assert out.expression_logits.shape == (2, 2) and out.pose_logits.shape == (2, 1)


def test_phanet_names_its_parts_and_every_parameter_is_in_one():
    model = create_model("phanet", image_size=32, **TINY)
    groups = model.parameter_groups()
    assert tuple(groups) == PART_NAMES
    assert sum(len(ps) for ps in groups.values()) == len(list(model.parameters()))
    assert all(p is q for p, q in zip(groups["PAN_S3"], model.pans[1].parameters()))
    assert all(p is q for p, q in zip(groups["SAL"], model.sal.parameters()))
    without_sal = create_model("phanet_n_s1_h_s2", image_size=32, **TINY).parameter_groups()
    assert "SAL" not in without_sal and "PAN_S3" not in without_sal and "S3_backbone" not in without_sal
    dense = create_model("densenet", image_size=32, backbone={"depth": 10}).parameter_groups()
    assert list(dense) == ["backbone", "expression", "pose"]


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


def test_the_models_import_nothing_of_the_config_and_the_leaf_imports_nothing():
    for path in (SRC / "models").glob("*.py"):
        assert not any(name.startswith("phanet.config") for name in _imports(path)), path.name
    assert {name for name in _imports(SRC / "models" / "info.py") if name != "__future__"} == {"dataclasses"}
    code = "import sys, phanet.models, phanet.models.info; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
