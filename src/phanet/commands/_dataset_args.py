"""Arguments that name a dataset (``--dataset``, ``--root``, ``--option``), shared by data commands."""

from __future__ import annotations

import argparse


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dataset",
        required=True,
        metavar="NAME",
        help="registered dataset: bu3dfe, multipie, kdef, affectnet, sfew, generic, ... ('phanet data list' shows all)",
    )
    parser.add_argument("--root", required=True, metavar="DIR", help="where the dataset's files are")
    parser.add_argument(
        "--option",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="adapter option, value as YAML (e.g. partition=validation, poses=[-45,0,45]); repeatable",
    )


def load_from_args(args: argparse.Namespace):
    """The :class:`LabeledFaces` named by ``--dataset``, ``--root`` and ``--option``."""
    from phanet.config import parse_options
    from phanet.data.registry import load_dataset

    return load_dataset(args.dataset, args.root, **parse_options(args.option))
