"""Loading through the public API: the real SmolLM2 offline, tiny random, context length, errors."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from survey_sim.errors import ConfigError, ModelUnavailableError
from survey_sim.modeling.loading import (
    context_length,
    load_backbone,
    load_model,
    load_tokenizer,
)


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
