"""One name per thing: configs, run folders and datasets written with the names of earlier versions still load."""

from __future__ import annotations

import json

import pytest

from dataset_trees import write_image
from phanet.compat import DATASET_OPTIONS, PATTERN_GROUPS, PhanetDeprecationWarning
from phanet.config import config_from_dict, load_config
from phanet.data.registry import dataset_options, load_dataset
from phanet.errors import PhanetError


def test_every_adapter_names_its_pose_classes_poses():
    for dataset, renames in DATASET_OPTIONS.items():
        options = dataset_options(dataset)
        assert "poses" in options and not set(renames) & set(options), dataset
    assert "poses" in dataset_options("generic")


@pytest.mark.parametrize(
    "dataset, old, value",
    [
        ("bu3dfe", "pans", [-45, 0, 45]),
        ("kdef", "angles", {"S": 0}),
        ("multipie", "cameras", "all"),
        ("affectnet", "pose_bins", [-30, 0, 30]),
        ("synth", "bins", [-45, 0, 45]),
    ],
)
def test_old_option_names_are_read_as_poses(dataset, old, value):
    with pytest.warns(
        PhanetDeprecationWarning,
        match=rf"^data.options.{old} is now called data.options.poses; "
        r"the old name stops working in phanet 0.3$",
    ):
        config = config_from_dict({"data": {"dataset": dataset, "options": {old: value, "seed": 1}}})
    assert config.data.options == {"poses": value, "seed": 1}


def test_old_model_source_size_is_read_as_input_size():
    with pytest.warns(PhanetDeprecationWarning, match="^model.source_size is now called model.input_size"):
        config = load_config("demo", ["model.source_size=240"])
    assert config.model.input_size == 240 and config.input_size == 240
    with pytest.raises(
        PhanetError,
        match=r"^config: model.source_size: an old name of model.input_size; "
        r"give only model.input_size$",
    ):
        config_from_dict({"model": {"source_size": 128, "input_size": 128}})


def test_an_option_of_another_dataset_is_not_renamed():
    # `pans` means nothing to KDEF: the adapter rejects it instead of the config reading it as poses
    config = config_from_dict({"data": {"dataset": "kdef", "options": {"pans": [0]}}})
    assert config.data.options == {"pans": [0]}


def test_library_call_with_an_old_option_name_says_the_new_one(tmp_path):
    with pytest.raises(PhanetError, match=r"^data.options.pans: now called data.options.poses \(known: "):
        load_dataset("bu3dfe", str(tmp_path), pans=[0])


@pytest.mark.slow
def test_synth_folder_written_with_bins_still_loads(tmp_path):
    from phanet.cli import main

    folder = tmp_path / "synth"
    assert (
        main(
            [
                "synth",
                "--preset",
                "continuous",
                "--subjects",
                "1",
                "--size",
                "32",
                "--poses",
                "-45",
                "0",
                "45",
                "--out",
                str(folder),
            ]
        )
        == 0
    )
    settings = json.loads((folder / "synth.json").read_text())
    assert settings["poses"] == [-45.0, 0.0, 45.0] and "bins" not in settings
    settings["bins"] = settings.pop("poses")
    (folder / "synth.json").write_text(json.dumps(settings))
    faces = load_dataset("synth", str(folder), poses=[45, 0, -45])
    assert faces.poses == ["-45", "0", "45"] and len(faces) == (6 * 4 + 1) * 9
    with pytest.raises(PhanetError, match=r"data.options.poses: .* was generated with poses=\[-45.0, 0.0, 45.0\]"):
        load_dataset("synth", str(folder), poses=[-30, 30])


#: BU-3DFE views in a folder per yaw, as a user's pattern written with the old group name reads them.
OLD_FOLDER_PATTERN = r"(?P<pan>[+-]?\d+)/(?P<subject>[FM]\d{4})_(?P<expression>[A-Z]{2})(?P<intensity>\d{2})\.png$"


def _views_per_yaw_folder(root):
    for yaw in (-30, 0, 30):
        write_image(root / f"{yaw}" / "M0002_SU03.png")


def test_bu3dfe_pattern_with_the_old_group_pan_reads_the_yaw(tmp_path):
    assert PATTERN_GROUPS == {"bu3dfe": {"pan": "yaw"}}
    _views_per_yaw_folder(tmp_path)
    with pytest.warns(
        PhanetDeprecationWarning,
        match=r"^data.options.pattern: the named group 'pan' is now called 'yaw'; "
        r"the old name stops working in phanet 0.3$",
    ):
        faces = load_dataset("bu3dfe", str(tmp_path), pattern=OLD_FOLDER_PATTERN, poses=None)
    assert faces.poses == ["-30", "0", "30"]
    assert sorted((faces.poses[s.pose], s.path) for s in faces.samples) == [
        ("-30", "-30/M0002_SU03.png"),
        ("0", "0/M0002_SU03.png"),
        ("30", "30/M0002_SU03.png"),
    ]
    # a back-reference to the old group is renamed with it: the yaw repeated in the file name
    write_image(tmp_path / "45" / "M0002_SU03_45.png")
    repeated = r"(?P<pan>\d+)/(?P<subject>M\d{4})_(?P<expression>SU)(?P<intensity>\d{2})_(?P=pan)\.png$"
    with pytest.warns(PhanetDeprecationWarning, match="the named group 'pan' is now called 'yaw'"):
        faces = load_dataset("bu3dfe", str(tmp_path), pattern=repeated, poses=None)
    assert [(faces.poses[s.pose], s.path) for s in faces.samples] == [("45", "45/M0002_SU03_45.png")]


def test_bu3dfe_pattern_with_both_group_names_is_refused(tmp_path):
    _views_per_yaw_folder(tmp_path)
    both = OLD_FOLDER_PATTERN.replace(r"\.png$", r"_(?P<yaw>\d+)\.png$")
    with pytest.raises(
        PhanetError,
        match=r"^data.options.pattern: the named group 'pan' is an old name of 'yaw'; "
        r"give only 'yaw'$",
    ):
        load_dataset("bu3dfe", str(tmp_path), pattern=both)


def test_the_command_line_prints_an_old_pattern_group_as_one_warning_line(tmp_path, capsys):
    from phanet.cli import main

    _views_per_yaw_folder(tmp_path)
    assert (
        main(
            [
                "data",
                "inspect",
                "--dataset",
                "bu3dfe",
                "--root",
                str(tmp_path),
                "--no-read",
                "--option",
                f"pattern={OLD_FOLDER_PATTERN}",
                "--option",
                "poses=[-30, 0, 30]",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "phanet: warning: data.options.pattern: the named group 'pan' is now called 'yaw'; "
        "the old name stops working in phanet 0.3"
    ]
    assert "3 usable images" in captured.out


def test_the_command_line_prints_an_old_name_as_one_warning_line(tmp_path, capsys):
    from phanet.cli import main

    assert main(["train", "--config", "demo", "model.source_size=240", "data.dataset=nope", "--out", str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "phanet: warning: model.source_size is now called model.input_size; the old name stops working in phanet 0.3",
        "phanet train: error: data.dataset: unknown dataset 'nope' (expected one of affectnet, bu3dfe, folder, "
        "generic, kdef, manifest, multipie, sfew, synth)",
    ]
