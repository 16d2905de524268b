"""The ``frozen-slt`` command: plan, train, export, eval.

Every user error is a :class:`~frozen_slt.errors.FrozenSLTError`; ``main`` prints it as one line on
stderr and exits with status 2. A run that failed (:class:`~frozen_slt.errors.TrainingDivergedError`) or
a file that could not be written (:class:`~frozen_slt.errors.WriteFailedError`: disk full, ...) is
printed as one line too, with exit status 1.
"""

from __future__ import annotations

import argparse
import logging
import sys
import warnings
from typing import Sequence

from ..config.recipes import MODEL_RECIPES
from ..data import DATASETS
from ..errors import FrozenSLTError, TrainingDivergedError, WriteFailedError
from ..models import MODELS
from .args import HelpFormatter, add_config_flags
from .plan import PLAN_FLAGS, add_shape_flags, command_plan
from .runs import command_train
from .tickets import add_export_parser, command_eval


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="frozen-slt", description="Strong lottery tickets in partially frozen random networks.",
        formatter_class=HelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    plan = commands.add_parser(
        "plan",
        help="per-layer freeze counts and ticket size of a model, without data",
        description=f"Models: {MODELS_TEXT}. Datasets: {DATASETS_TEXT}. The input shape and class count come from "
        "the dataset (read from --data-dir for one given by import path or library class) or from --input-shape "
        "and --num-classes. A model by import path also shows the rule of each of its other parameters "
        "(docs/method.md §13).",
        formatter_class=HelpFormatter,
    )
    add_config_flags(plan, PLAN_FLAGS)
    add_shape_flags(plan)
    plan.add_argument("--json", action="store_true", help="print one JSON object instead of the table")
    plan.set_defaults(handler=command_plan)

    train = commands.add_parser(
        "train",
        help="train one ticket (or a weight-trained baseline); resumes automatically",
        description="Settings come from the defaults below (the paper's CIFAR-10 recipe), then the dataset's "
        "recipe, then the recipe of the model on that dataset, then --config, then flags, then --set. "
        f"Recipes: {recipe_summary()}. "
        f"Models: {MODELS_TEXT}. Datasets: {DATASETS_TEXT}.",
        formatter_class=HelpFormatter,
    )
    train.add_argument("--config", metavar="FILE", help="TOML, YAML or JSON file of settings")
    add_config_flags(train)
    train.add_argument("--set", action="append", metavar="KEY=VALUE", help="override any setting (repeatable)")
    train.add_argument("--out", default="runs", help="root of run directories, named by config hash (default: runs)")
    train.add_argument("--run-dir", help="use exactly this run directory instead of OUT/<config hash>")
    train.set_defaults(handler=command_train)

    add_export_parser(commands)

    add_eval_parser(commands)
    return parser


MODELS_TEXT = (f"{', '.join(MODELS)}; or torchvision:NAME, pyg:NAME, or an import path package.module:callable "
               "with --model-arg NAME=VALUE (docs/method.md §13)")
DATASETS_TEXT = (f"{', '.join(DATASETS)}; or torchvision.datasets:NAME, pyg:NAME (with --data-dir), or an import path "
                 "package.module:callable returning the splits, with --dataset-arg NAME=VALUE")


def add_eval_parser(commands) -> None:
    """The ``eval`` command: a run directory or a ticket file."""
    evaluate = commands.add_parser(
        "eval", help="re-evaluate the best ticket saved in a run directory, or a ticket file",
        description="For a run directory: recomputes val/test accuracy of the best ticket in the newest intact "
        "checkpoint, next to the recorded values; exit status 1 when that ticket is not the one result.json "
        "reports (the newest checkpoint is damaged); the run directory is never changed. For a ticket file: "
        "rebuilds the network from its seeds and stored mask and evaluates it.",
        formatter_class=HelpFormatter,
    )
    evaluate.add_argument("run", metavar="RUN_DIR|TICKET.slt", help="a run directory written by `frozen-slt train`, "
                          "or a ticket file written by `frozen-slt export`")
    evaluate.add_argument("--dataset", help="evaluate on this dataset (default: the ticket's or run's own; a ticket may "
                          "be evaluated on another of the same input shape and class count); naming a dataset by "
                          "import path here allows it")
    evaluate.add_argument("--model", help="the ticket's or run's model, when it is given by import path: reading a "
                          "file never imports code the command line does not name (docs/method.md §13)")
    evaluate.add_argument("--data-dir", help="dataset location, if it moved since training")
    evaluate.add_argument("--device", choices=("auto", "cpu", "cuda"), help="where to evaluate")
    evaluate.set_defaults(handler=command_eval)


def recipe_summary() -> str:
    """``digits (batch_size=32, epochs=20, lr=0.05); ...; cifar10 with conv6 (lr=0.01)`` for the help text."""
    settings = lambda recipe: ", ".join(f"{key}={value}" for key, value in recipe)  # noqa: E731
    parts = [f"{entry.name} ({settings(entry.recipe)})" for entry in DATASETS.values() if entry.recipe]
    parts += [f"{dataset} with {model} ({settings(recipe)})" for (dataset, model), recipe in MODEL_RECIPES.items()]
    return "; ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="frozen-slt: %(levelname)s: %(message)s")
    # PyTorch Geometric (imported for graph models and datasets) scripts a few helpers at import time and
    # PyTorch deprecates torch.jit.script: a warning about a dependency, not the user's input, which would
    # otherwise come before every graph run's output and every one-line error.
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except FrozenSLTError as error:
        print(f"frozen-slt: error: {error}", file=sys.stderr)
        return 2
    except (TrainingDivergedError, WriteFailedError) as error:
        print(f"frozen-slt: error: {error}", file=sys.stderr)
        return 1

