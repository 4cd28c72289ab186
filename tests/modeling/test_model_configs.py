"""Model configs: every shipped one valid, composed through Hydra, checked without downloading weights; a
broken one refused with the key and the problem named (`validate_model_config`)."""

from __future__ import annotations

import time
from pathlib import Path

import huggingface_hub.constants
import pytest
from hydra import compose, initialize_config_dir

from survey_sim.errors import ConfigError, ModelUnavailableError
from survey_sim.modeling.loading import (
    check_lora_targets,
    context_length,
    load_model,
    load_tokenizer,
    model_skeleton,
)
from survey_sim.modeling.model_config import validate_model_config

CONF = Path(__file__).resolve().parents[2] / "conf"
NAMES = sorted(p.stem for p in (CONF / "model").glob("*.yaml"))
HUB = ["distil_qwen_14b", "distil_qwen_32b", "distil_qwen_7b", "llama3_8b_base", "llama3_8b_instruct", "qwen_7b",
       "vicuna_13b", "vicuna_7b"]
# Published parameter counts (billions): the arch facts must reproduce them.
PARAMS_B = {"smollm2_135m": 0.135, "vicuna_7b": 6.74, "vicuna_13b": 13.0, "llama3_8b_base": 8.03,
            "llama3_8b_instruct": 8.03, "distil_qwen_7b": 7.62, "distil_qwen_14b": 14.8, "distil_qwen_32b": 32.8,
            "tiny_random": 0.0032}
REMOTE_CODE = {"qwen_7b"}  # architectures whose modelling code ships with the weights


def test_the_paper_models_are_all_shipped():
    assert set(NAMES) == set(HUB) | {"smollm2_135m", "tiny_random"}


@pytest.mark.parametrize("name", NAMES)
def test_config_is_valid_and_composes_through_hydra(name, model_config):
    cfg = model_config(name)
    validate_model_config(cfg)
    assert cfg.name == name
    assert cfg.lora.r == 8 and cfg.lora.alpha == 32 and cfg.lora.dropout == 0.05
    assert cfg.trust_remote_code == (name in REMOTE_CODE)
    assert cfg.dtype == ("bfloat16" if name in HUB else "float32")
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        composed = compose(overrides=[f"+model={name}"])  # the `model` group alone, as the run composes it
    assert composed.model == cfg


@pytest.mark.parametrize("name", [n for n in NAMES if n not in REMOTE_CODE])
def test_lora_targets_exist_in_a_skeleton_built_from_the_arch_facts(name, model_config):
    cfg = model_config(name)
    model = model_skeleton(cfg)
    assert next(model.parameters()).device.type == "meta"  # no weights were materialised
    check_lora_targets(model, cfg)
    n_params = sum(p.numel() for p in model.parameters()) / 1e9
    assert n_params == pytest.approx(PARAMS_B[name], rel=0.03)
    assert model.config.vocab_size == cfg.arch.vocab_size
    assert context_length(cfg) <= cfg.arch.max_position_embeddings


def test_remote_code_architecture_is_reported_not_guessed(model_config):
    cfg = model_config("qwen_7b")
    with pytest.raises(ConfigError, match="not built into transformers"):
        model_skeleton(cfg)


def test_missing_lora_target_lists_the_linear_layers(model_config):
    cfg = model_config("vicuna_7b")
    cfg.lora.target_modules = ["q_proj", "c_attn"]
    with pytest.raises(ConfigError, match=r"\['c_attn'\] match no linear layer.*'v_proj'"):
        check_lora_targets(model_skeleton(cfg), cfg)


@pytest.fixture
def empty_hf_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return tmp_path / "hub"


@pytest.mark.parametrize("name", HUB)
def test_hub_model_offline_fails_fast_naming_the_id(name, model_config, empty_hf_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = model_config(name)
    cfg.requires = None  # checked first (tests/modeling/test_loading.py); here: the hub
    for load in (load_model, load_tokenizer):
        start = time.perf_counter()
        with pytest.raises(ModelUnavailableError) as err:
            load(cfg)
        assert time.perf_counter() - start < 5
        message = str(err.value)
        assert repr(cfg.hf_id) in message and "HF_HUB_OFFLINE is set" in message
        assert f"huggingface-cli download {cfg.hf_id}" in message and "model.local_path=" in message


def test_unreachable_hub_fails_fast_without_offline_mode(model_config, empty_hf_cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: refused at once
    start = time.perf_counter()
    with pytest.raises(ModelUnavailableError, match=r"'lmsys/vicuna-7b-v1\.5'.*cannot reach http://127\.0\.0\.1:9"):
        load_model(model_config("vicuna_7b"))
    assert time.perf_counter() - start < 5


def test_missing_local_path_is_named(model_config, tmp_path):
    cfg = model_config("llama3_8b_instruct")
    cfg.local_path = str(tmp_path / "nowhere")
    with pytest.raises(ModelUnavailableError, match="local_path=.*nowhere is not a folder"):
        load_model(cfg)


def _broken(cfg, key, value):
    cfg[key] = value
    return cfg


@pytest.mark.parametrize("key,value,message", [
    ("source", "gguf", r"source='gguf' is not one of \['gguf_package', 'hub', 'tiny_random'\]"),
    ("dtype", "fp32", r"dtype='fp32' is not one of \['float32', 'bfloat16', 'float16'\]"),
    ("quantization", "3bit", r"quantization='3bit' is not one of \[None, '8bit', '4bit'\]"),
    ("quantization", "8bit", "applies to source=hub only"),
    ("batch_size", 0, "batch_size must be a positive integer"),
    ("chat_template", "", "chat_template must be true, false or a Jinja template string"),
    ("lora", {"r": 8, "alpha": 32, "dropout": 0.05}, r"lora is missing \['target_modules'\]"),
    ("lora", {"r": 8, "alpha": 32, "dropout": 0.05, "target_modules": "q_proj"}, "non-empty list"),
    ("max_lenght", 10, r"unknown key\(s\) \['max_lenght'\]"),
])
def test_validate_model_config_names_the_problem(smollm2_cfg, key, value, message):
    with pytest.raises(ConfigError, match=message):
        validate_model_config(_broken(smollm2_cfg, key, value))


def test_validate_hub_config_needs_an_id(model_config):
    cfg = model_config("vicuna_7b")
    cfg.hf_id = None
    with pytest.raises(ConfigError, match="needs hf_id"):
        validate_model_config(cfg)
    cfg.quantization = "8bit"
    cfg.hf_id = "lmsys/vicuna-7b-v1.5"
    with pytest.raises(ConfigError, match="needs a device_map"):
        validate_model_config(cfg)
