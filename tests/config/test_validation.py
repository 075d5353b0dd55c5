"""Bad settings are refused with one line naming the field or option, exit status 2, before anything
is written: every number of the config, the YAML file, the device settings and ``--out``."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import typing

import pytest
import torch

from conftest import tiny_overrides
from phanet.checks import SHOWN
from phanet.cli import main
from phanet.config import MAX_SEED, Config, Interval, load_config
from phanet.errors import PhanetError


def _numeric_fields(cls: type = Config, prefix: str = "") -> list[tuple[str, dataclasses.Field, type, bool]]:
    """Every int and float field of the config with its dotted key, number type and whether it is a list."""
    found = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            found += _numeric_fields(tp, f"{prefix}{f.name}.")
            continue
        tp = ([a for a in typing.get_args(tp) if a is not type(None)] or [tp])[0]
        is_list = typing.get_origin(tp) is list
        kind = typing.get_args(tp)[0] if is_list else tp
        if kind in (int, float):
            found.append((f"{prefix}{f.name}", f, kind, is_list))
    return found


def _outside(interval: Interval, kind: type) -> list[str]:
    """Values just outside ``interval`` (and NaN and infinity for a float), as YAML."""
    step = 1 if kind is int else 0.5
    values = [interval.low - step if interval.low_closed else interval.low]
    if interval.high < float("inf"):
        values.append(interval.high + step if interval.high_closed else interval.high)
    return [str(int(v)) if kind is int else repr(v) for v in values] + ([".nan", ".inf"] if kind is float else [])


BAD_NUMBERS = [
    pytest.param(key, f"[{value}]" if is_list else value, id=f"{key}={value}")
    for key, f, kind, is_list in _numeric_fields()
    for value in _outside(f.metadata["range"], kind)
]


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def train_args(tiny_manifest, tmp_path):
    out = tmp_path / "run"
    return out, ["train", "--config", "demo", *tiny_overrides(tiny_manifest, out), "--no-progress"]


def test_every_number_of_the_config_has_an_interval():
    fields = _numeric_fields()
    assert len(fields) >= 40
    missing = [key for key, f, _, _ in fields if not isinstance(f.metadata.get("range"), Interval)]
    assert missing == []


@pytest.mark.parametrize("key, value", BAD_NUMBERS)
def test_a_number_outside_its_interval_names_the_field_and_writes_nothing(key, value, train_args, capsys):
    out, argv = train_args
    err = _error(capsys, [*argv, f"{key}={value}"])
    assert f"config: {key}" in err and "expected" in err
    assert not out.exists()


@pytest.mark.parametrize(
    "override, message",
    [
        ("optim.lr=.nan", "optim.lr: expected a number in (0, inf), got nan"),
        ("optim.lr=-.inf", "optim.lr: expected a number in (0, inf), got -inf"),
        ("model.attention.grid=0", "model.attention.grid: expected an integer from 1 to 64, got 0"),
        ("model.backbone.growth_rate=0", "model.backbone.growth_rate: expected an integer from 1 to 4096, got 0"),
        ("model.backbone.dropout=2", "model.backbone.dropout: expected a number in [0, 1), got 2.0"),
        ("seed=-1", f"seed: expected an integer from 0 to {MAX_SEED}, got -1"),
        ("seed=12345678901234567890", f"seed: expected an integer from 0 to {MAX_SEED}, got 12345678901234567890"),
        (f"seed={MAX_SEED + 1}", f"seed: expected an integer from 0 to {MAX_SEED}"),
        ("train.pan_init.steps=-1", "train.pan_init.steps: expected an integer from 0 to"),
        ("train.gradient_clip=-0.1", "train.gradient_clip: expected a number in [0, inf), got -0.1"),
        ("optim.milestones=[0.5, .nan]", "optim.milestones[1]: expected a number in [0, inf), got nan"),
        ("optim.part_lr={SAL: .inf}", "optim.part_lr.SAL: expected a positive multiplier, got inf"),
        ("optim.lr=1" + "0" * 400, "optim.lr: expected a number"),
        ("model.backbone.depth=1", "model.backbone.depth: expected an integer from 4 to 1000, got 1"),
        ("model.backbone.depth=41", "model.backbone.depth: expected 3n+4"),
        ("data.split.val=2.5", "data.split.val: expected a fraction in [0, 1) or a whole number of subjects"),
        ("model.attention.side_min=0.8", "model.attention: expected side_min <= side_max"),
    ],
)
def test_values_that_used_to_crash_later(override, message, train_args, capsys):
    out, argv = train_args
    assert message in _error(capsys, [*argv, override])
    assert not out.exists()


def test_plateau_schedule_needs_a_decay_below_one(train_args, capsys):
    out, argv = train_args
    err = _error(capsys, [*argv, "optim.scheduler=plateau", "optim.lr_decay=1"])
    assert "optim.lr_decay: the plateau schedule needs a factor below 1" in err


def test_a_yaml_file_that_is_not_utf8_is_named(tmp_path, train_args, capsys):
    config = tmp_path / "latin1.yaml"
    config.write_bytes("seed: 0\nout: caf\xe9\n".encode("latin-1"))
    out, argv = train_args
    err = _error(capsys, ["train", "--config", str(config), *argv[3:]])
    assert f"--config: {config} is not UTF-8 text (byte 0xe9 at position 16)" in err
    assert not out.exists()


def test_long_user_values_are_shortened_in_messages(train_args, capsys):
    out, argv = train_args
    huge = "x" * 100_000
    for override in (f"optim.lr={huge}", f"{huge}=1", f"model.scales=[{huge}]", f"train.precision={huge}"):
        err = _error(capsys, [*argv, override])
        assert "x" * (SHOWN - 2) + "…" in err and len(err) < 400, err[:400]
    assert not out.exists()


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--precision", "7-bit"], "train.precision (--precision): '7-bit' cannot be used (Precision '7-bit' is invalid"),
        (["--devices", "0"], "train.devices (--devices): '0' cannot be used"),
        (["--strategy", "bogus"], "train.strategy (--strategy): 'bogus' cannot be used (You selected an invalid strategy name"),
        (["--accelerator", "bogus"], "train.accelerator (--accelerator): 'bogus' cannot be used (You selected an invalid"),
        (
            ["--strategy", "fsdp"],
            "train.strategy (--strategy): 'fsdp' is not supported: training freezes parameter groups by phase",
        ),
        (["--strategy", "deepspeed_stage_2"], "train.strategy (--strategy): 'deepspeed_stage_2' is not supported"),
        pytest.param(
            ["--accelerator", "gpu"],
            "train.accelerator (--accelerator): 'gpu' cannot be used",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU"),
        ),
    ],
)
def test_device_settings_lightning_refuses_name_the_option_before_the_run_folder(flags, message, train_args, capsys):
    out, argv = train_args
    assert message in _error(capsys, [*argv, *flags])
    assert not out.exists()


def test_out_naming_a_file_or_a_too_long_name(tmp_path, tiny_manifest, capsys):
    file = tmp_path / "notes.txt"
    file.write_text("mine")
    err = _error(capsys, ["train", "--config", "demo", *tiny_overrides(tiny_manifest, file)])
    assert f"--out: {file} is a file, expected a folder" in err
    assert file.read_text() == "mine"
    long = tmp_path / ("r" * 300)
    err = _error(capsys, ["train", "--config", "demo", *tiny_overrides(tiny_manifest, long)])
    assert "--out: file name too long" in err
    assert list(tmp_path.iterdir()) == [file]


def test_a_mistyped_preset_is_reported_before_pytorch_loads():
    code = (
        "import sys; from phanet.cli import main; status = main(['train', '--config', 'demoo']); "
        "print(status, 'torch' in sys.modules, 'lightning' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["2", "False", "False"]
    assert "--config: demoo is neither a preset" in result.stderr and "Traceback" not in result.stderr
    with pytest.raises(PhanetError, match=r"^config: demoo is neither a preset \(affectnet, bu3dfe, demo, "):
        load_config("demoo")  # the library names its parameter, the command its flag


def test_train_help_is_complete(capsys):
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "with --resume the default is the run's own OUT/config.yaml" in text
    assert '"model.scales=[N_S1,H_S2]"' in text
    assert "--no-progress no progress bar: one line per epoch instead" in text


def test_a_mapping_setting_is_replaced_not_merged():
    # An override names the whole set of multipliers: the one it gives replaces the preset's.
    assert load_config("demo").optim.part_lr == {}
    assert load_config("demo", ["optim.part_lr={SAL: 0.1}"]).optim.part_lr == {"SAL": 0.1}
    assert load_config("demo", ["optim.part_lr={SAL: 0.1}", "optim.part_lr={}"]).optim.part_lr == {}
    assert load_config("demo", ["optim.part_lr={SAL: 0.1}", "optim.part_lr={PAN_S2: 0.5}"]).optim.part_lr == {"PAN_S2": 0.5}
    # one dotted key sets that multiplier and keeps the others
    assert load_config("demo", ["optim.part_lr={PAN_S2: 0.5}", "optim.part_lr.SAL=1"]).optim.part_lr == {"PAN_S2": 0.5, "SAL": 1}
    # config sections still merge: one key changed, the others kept
    merged = load_config("demo", ["optim={lr: 0.002}"]).optim
    assert merged.lr == 0.002 and merged.name == "adam" and merged.plateau_patience == 2


def test_a_dotted_key_into_a_mapping_changes_one_entry_and_a_whole_value_replaces_it(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text("optim: {part_lr: {SAL: 0.1, PAN_S2: 2}}\ndata: {dataset: synth, options: {preset: kdef, subjects: 4}}\n")
    one = load_config(["demo", base], ["optim.part_lr.SAL=1", "data.options.subjects=10"])
    assert one.optim.part_lr == {"SAL": 1, "PAN_S2": 2} and one.data.options == {"preset": "kdef", "subjects": 10}
    whole = load_config(["demo", base], ["optim.part_lr={SAL: 1}", "data.options={preset: bu3dfe}"])
    assert whole.optim.part_lr == {"SAL": 1} and whole.data.options == {"preset": "bu3dfe"}
    assert load_config(["demo", base], ["optim.part_lr={}"]).optim.part_lr == {}


@pytest.mark.parametrize(
    "source, overrides, message",
    [
        ("demo", "train.epochs=1", "overrides: expected a list of KEY=VALUE strings, got str 'train.epochs=1'"),
        ("demo", [1], "overrides: expected a list of KEY=VALUE strings, got int 1"),
        ("demo", ["train.epochs=1", None], "overrides: expected a list of KEY=VALUE strings, got None"),
        (42, None, "source: expected a preset name, a YAML file or a list of these, got int 42"),
        (["demo", None], None, "source: expected a preset name, a YAML file or a list of these, got None"),
    ],
)
def test_load_config_names_the_argument_it_cannot_use(source, overrides, message):
    with pytest.raises(PhanetError) as raised:
        load_config(source, overrides)
    assert str(raised.value) == message
