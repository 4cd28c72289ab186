"""Shipped prompt and model configs read without Hydra compose as Hydra composes them, inheritance included."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir

from survey_sim.config import group_config, group_options
from survey_sim.errors import ConfigError
from survey_sim.paths import config_dir

SHIPPED = [(group, name) for group in ("prompt", "model") for name in group_options(group)]


@pytest.mark.parametrize("group, name", SHIPPED)
def test_shipped_configs_read_as_hydra_composes_them(group, name):
    with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
        composed = compose(overrides=[f"+{group}={name}"])[group]
        assert group_config(group, name) == composed  # also while Hydra is initialised (inside a run)


def test_inheriting_configs_hold_only_what_differs():
    assert group_config("prompt", "paper_translated_suffix").instruction_en == group_config(
        "prompt", "paper").instruction_en
    vicuna = [group_config("model", name) for name in ("vicuna_7b", "vicuna_13b")]
    assert vicuna[0].chat_template == vicuna[1].chat_template and "USER: " in vicuna[0].chat_template
    assert group_config("model", "qwen_7b").lora == {"r": 8, "alpha": 32, "dropout": 0.05,
                                                     "target_modules": ["c_attn"]}


def test_a_file_outside_conf_inherits_the_shipped_base(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("defaults:\n  - _base_/model@_here_\n  - _self_\nname: mine\nhf_id: me/my-model\n")
    cfg = group_config("model", path)
    assert cfg.name == "mine" and cfg.source == "hub" and cfg.lora.r == 8 and "defaults" not in cfg
    path.write_text("name: mine\nsource: hub\n")  # no defaults list: the file as written
    assert group_config("model", path) == {"name": "mine", "source": "hub"}


@pytest.mark.parametrize("defaults, message", [
    ("[_base_/model]", r"'_base_/model' is not supported.*@_here_"),
    ("[{db: mysql}]", "is not supported"),
    ("[nothing_here]", "names no config"),
])
def test_unsupported_defaults_entries_are_named(tmp_path, defaults, message):
    path = tmp_path / "mine.yaml"
    path.write_text(f"defaults: {defaults}\nname: mine\n")
    with pytest.raises(ConfigError, match=message):
        group_config("model", path)


def test_unknown_name_lists_close_matches():
    with pytest.raises(ConfigError, match=r"unknown model config 'vicuna7b'; close matches: vicuna_7b.*shipped: "):
        group_config("model", "vicuna7b")
