"""Backbone loading: a model config (conf/model/*.yaml) to a tokenizer and a causal LM, offline first.

The weights come from a shipped GGUF package or the Hugging Face cache (`survey_sim.modeling.weights`), or,
for ``tiny_random``, from a small randomly initialised model built from the config's ``arch`` (seeded), with
SmolLM2's tokenizer; for fast tests and smoke runs. Every config also states its architecture facts under
``arch`` so that LoRA targets and sizes can be checked on an empty (meta-device) skeleton without
downloading anything (`model_skeleton`).
"""

from __future__ import annotations

import importlib.util
import logging
import time
from pathlib import Path

import torch

from survey_sim.config import plain
from survey_sim.errors import ConfigError, ModelUnavailableError
from survey_sim.modeling.model_config import DTYPES, check_requirements, validate_model_config
from survey_sim.modeling.tokenizer import prepare_tokenizer
from survey_sim.modeling.weights import gguf_folder, hub_folder, smollm2_folder

log = logging.getLogger(__name__)

BITSANDBYTES_PIP = "pip install 'bitsandbytes>=0.43'   (or: pip install 'survey-sim[quant]'; needs a CUDA GPU)"


def load_tokenizer(model_cfg):
    """The model's tokenizer, offline: left padding, a pad token, the configured chat template."""
    from transformers import AutoTokenizer

    validate_model_config(model_cfg)
    check_requirements(model_cfg)
    source = model_cfg.get("source")
    if source == "tiny_random":
        folder = model_cfg.get("tokenizer_path") or smollm2_folder(model_cfg.get("cache_dir"))
    elif source == "gguf_package":
        folder = gguf_folder(model_cfg)
    else:
        folder = hub_folder(model_cfg, weights=False)
    kwargs = _remote_code_kwargs(model_cfg)
    if Path(folder).is_dir():
        kwargs["local_files_only"] = True
    else:
        kwargs["revision"] = model_cfg.get("revision")
    tokenizer = AutoTokenizer.from_pretrained(str(folder), **kwargs)
    return prepare_tokenizer(tokenizer, model_cfg)


def load_model(model_cfg):
    """The backbone (no LoRA) in model_cfg.dtype, in eval mode."""
    from transformers import AutoModelForCausalLM

    validate_model_config(model_cfg)
    check_requirements(model_cfg)
    source = model_cfg.get("source")
    if source == "tiny_random":
        return _tiny_random_model(model_cfg)
    kwargs = {"dtype": DTYPES[model_cfg.get("dtype")], **_remote_code_kwargs(model_cfg)}
    if model_cfg.get("attn_implementation"):
        kwargs["attn_implementation"] = model_cfg.get("attn_implementation")
    if model_cfg.get("device_map"):
        kwargs["device_map"] = plain(model_cfg.get("device_map"))
    if source == "gguf_package":
        folder = gguf_folder(model_cfg)
    else:
        if model_cfg.get("quantization"):
            kwargs["quantization_config"] = _bitsandbytes_config(model_cfg)
        folder = hub_folder(model_cfg, weights=True)
    if Path(folder).is_dir():
        kwargs["local_files_only"] = True
    else:
        kwargs["revision"] = model_cfg.get("revision")
    start = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(str(folder), **kwargs)
    log.info("model %r loaded from %s in %.1f s", model_cfg.get("name"), folder, time.perf_counter() - start)
    _warn_arch_mismatch(model, model_cfg)
    return model.eval()


def load_backbone(model_cfg):
    """(model, tokenizer) for a model config; checks the tokenizer's ids fit the model's embeddings."""
    tokenizer = load_tokenizer(model_cfg)
    model = load_model(model_cfg)
    n_embed = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > n_embed:
        raise ConfigError(f"model {model_cfg.get('name')!r}: the tokenizer has {len(tokenizer)} tokens but the "
                          f"model embeds only {n_embed}; survey-sim never resizes embeddings (check arch.vocab_size)")
    return model, tokenizer


def context_length(model_cfg, tokenizer=None) -> int:
    """Longest prompt (in tokens) accepted: max_length, capped by the architecture's and tokenizer's limits."""
    limits = [int(model_cfg.get("max_length"))]
    arch_max = (model_cfg.get("arch") or {}).get("max_position_embeddings")
    if arch_max:
        limits.append(int(arch_max))
    tok_max = getattr(tokenizer, "model_max_length", None)
    if tok_max and tok_max < 10**7:  # tokenizers without a limit report a huge sentinel
        limits.append(int(tok_max))
    return min(limits)


def model_skeleton(model_cfg):
    """The model built from its ``arch`` facts on the meta device: module structure, no weights, no download."""
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    arch = plain(model_cfg.get("arch") or {})
    model_type = arch.pop("model_type", None)
    if model_type not in CONFIG_MAPPING:
        raise ConfigError(f"model {model_cfg.get('name')!r}: arch.model_type={model_type!r} is not built into "
                          "transformers (remote-code architectures need their downloaded code)")
    config = AutoConfig.for_model(model_type, **arch)
    # torch's meta device rather than accelerate.init_empty_weights, which leaves tied embeddings untied.
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def check_lora_targets(model, model_cfg) -> None:
    """Raise ConfigError unless every lora.target_modules name matches a linear layer of `model`."""
    linear = sorted({name.rsplit(".", 1)[-1] for name, module in model.named_modules()
                     if isinstance(module, torch.nn.Linear)})
    missing = [t for t in model_cfg.get("lora").get("target_modules") if t not in linear]
    if missing:
        raise ConfigError(f"model {model_cfg.get('name')!r}: lora.target_modules {missing} match no linear layer; "
                          f"the model's linear layers are {linear}")


def _bitsandbytes_config(model_cfg):
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelUnavailableError(f"model {model_cfg.get('name')!r}: quantization={model_cfg.get('quantization')} "
                                    f"needs bitsandbytes, which is not installed; install it with\n  {BITSANDBYTES_PIP}")
    from transformers import BitsAndBytesConfig

    if model_cfg.get("quantization") == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_compute_dtype=DTYPES[model_cfg.get("dtype")])


def _remote_code_kwargs(model_cfg) -> dict:
    if not model_cfg.get("trust_remote_code", False):
        return {}
    log.warning("model %r: trust_remote_code=true, running the modelling code shipped with %s",
                model_cfg.get("name"), model_cfg.get("local_path") or model_cfg.get("hf_id"))
    return {"trust_remote_code": True}


def _tiny_random_model(model_cfg):
    """A randomly initialised model from ``arch``; the same seed gives the same weights."""
    from transformers import AutoConfig, AutoModelForCausalLM

    arch = plain(model_cfg.get("arch"))
    config = AutoConfig.for_model(arch.pop("model_type"), **arch)
    kwargs = {"dtype": DTYPES[model_cfg.get("dtype")]}
    if model_cfg.get("attn_implementation"):
        kwargs["attn_implementation"] = model_cfg.get("attn_implementation")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(model_cfg.get("seed") or 0))
        model = AutoModelForCausalLM.from_config(config, **kwargs)
    return model.eval()


def _warn_arch_mismatch(model, model_cfg) -> None:
    """Log where the loaded model's config differs from the arch facts written in the model config."""
    arch = plain(model_cfg.get("arch") or {})
    diffs = {k: (v, getattr(model.config, k, None)) for k, v in arch.items() if getattr(model.config, k, v) != v}
    if diffs:
        log.warning("model %r: loaded config differs from its arch facts (config value, loaded value): %s",
                    model_cfg.get("name"), diffs)
