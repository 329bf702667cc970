"""Config validation: schema and cross-key checks give one line naming the key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from lskd.errors import ConfigError
from lskd.plan.config import check_data_roots, validate_config

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


def test_default_config_is_valid_and_gets_defaults(config):
    validate_config(config)
    recipe = config["tasks"]["fmnist"]["teacher"]
    assert recipe["momentum"] == 0.9  # filled in through $ref from $defs.recipe
    assert config["tasks"]["fmnist"]["penultimate"]["temperatures"] is None


def test_test_config_is_valid():
    config = yaml.safe_load((REPO / ".test" / "config" / "config.yaml").read_text())
    validate_config(config)


def _set(config: dict, dotted: str, value) -> None:
    *parents, last = dotted.split(".")
    node = config
    for key in parents:
        node = node[key]
    node[last] = value


@pytest.mark.parametrize(
    ("key", "value", "named"),
    [
        ("run.epoch", 3, "run.epoch: unknown key"),
        ("tasks.fmnist.teacher.epoch", 3, "tasks.fmnist.teacher"),
        ("tasks.fmnist.data.rot", "x", "tasks.fmnist.data"),
        ("run.alphas", [0.0, 1.0], "run.alphas[1]"),
        ("run.alphas", [-0.1], "run.alphas[0]"),
        ("run.temperatures", [1, 0], "run.temperatures[1]"),
        ("run.temperatures", [], "run.temperatures"),
        ("run.seeds", [], "run.seeds"),
        ("tasks.fmnist.teacher_archs", ["resnet9000"], "tasks.fmnist.teacher_archs[0]"),
        ("tasks.fmnist.student_archs", ["mlp"], "tasks.fmnist.student_archs[0]"),
        ("tasks.fmnist.teacher.lr", "fast", "tasks.fmnist.teacher.lr"),
        ("tasks.fmnist.teacher.epochs", 0, "tasks.fmnist.teacher.epochs"),
        ("tasks.fmnist.teacher.schedule", "linear", "tasks.fmnist.teacher.schedule"),
        ("tasks.fmnist.data.dataset", "mnist", "tasks.fmnist.data.dataset"),
        (
            "tasks.fmnist.penultimate",
            {"classes": [1, 2]},
            "tasks.fmnist.penultimate.classes",
        ),
        ("run.tasks", ["cifar"], "run.tasks[0]"),
        (
            "tasks.fmnist.penultimate",
            {"temperatures": [5]},
            "tasks.fmnist.penultimate.temperatures[0]",
        ),
    ],
)
def test_bad_config_names_the_key(config, key, value, named):
    _set(config, key, value)
    with pytest.raises(ConfigError) as err:
        validate_config(config)
    message = str(err.value)
    assert named in message
    assert "\n" not in message


def test_missing_data_root_names_the_key(config, tmp_path):
    validate_config(config)
    bad = copy.deepcopy(config)
    bad["tasks"]["fmnist"]["data"]["root"] = str(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match=r"tasks\.fmnist\.data\.root: .*nowhere"):
        check_data_roots(bad)
