"""Write ``reference/``: two tiny checkpoints and what ``phanet evaluate`` and ``phanet predict`` print and
write for them, the rows that ``tests/test_reference.py`` asks every later version to reproduce.

Run it with the version whose numbers are the reference (the files here were written by phanet 0.1.0
before the inference code was restructured)::

    OMP_NUM_THREADS=1 python tests/data/make_reference.py tests/data/reference

The checkpoints keep what loading needs (config, class lists, weights), not the optimiser's state.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from conftest import TINY  # noqa: E402
from tiny_data import make_tiny_dataset  # noqa: E402

KEEP = ("epoch", "global_step", "pytorch-lightning_version", "hyper_parameters", "state_dict", "pan_init")
METHODS = {"phanet": ["model.input_size=64"], "densenet": ["model.arch=densenet", "loss.setting=p_e"]}


def phanet(*args: str, cwd: Path) -> str:
    done = subprocess.run([sys.executable, "-m", "phanet", *args], cwd=cwd, capture_output=True, text=True, check=True)
    return done.stdout


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    work = out / "work"
    manifest = make_tiny_dataset(work / "data", subjects=8, size=32, variants=2)
    for method, extra in METHODS.items():
        run = work / method
        phanet("train", "--config", "demo", "--out", str(run), "--no-progress", "data.dataset=manifest",
               f"data.root={manifest}", "data.options={}", *TINY, *extra, "train.epochs=4",
               "train.pan_init.warmup_epochs=1", cwd=out)
        payload = torch.load(run / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)
        checkpoint = out / f"{method}.ckpt"
        torch.save({key: payload[key] for key in KEEP if key in payload}, checkpoint)
        printed = phanet("evaluate", "--checkpoint", checkpoint.name, "--data", "work/data/manifest.csv", "--split",
                         "test", "--out", f"{method}_evaluation", "--no-progress", cwd=out)
        (out / f"{method}_evaluate.txt").write_text(printed)
        phanet("predict", "work/data/s00_AN_-30_0.png", "work/data/s03_SU_30_1.png",
               "work/data/s05_HA_0_0.png", "--checkpoint", checkpoint.name, "--no-detect",
               "--out", f"{method}_predict.csv", "--no-progress", cwd=out)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
