"""What a model config (conf/model/*.yaml) may say: its keys and values, checked without weights or network."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping

import torch

from survey_sim.config import plain
from survey_sim.errors import ConfigError, ModelUnavailableError

SOURCES = ("gguf_package", "hub", "tiny_random")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
QUANTIZATIONS = (None, "8bit", "4bit")
# Every key a model config may have (keys starting with "_", e.g. Hydra's, are ignored).
MODEL_KEYS = frozenset({
    "name", "source", "hf_id", "package", "pip_spec", "gguf_file", "local_path", "revision", "cache_dir",
    "tokenizer_path", "seed", "chat_template", "trust_remote_code", "dtype", "quantization", "device_map",
    "attn_implementation", "max_length", "batch_size", "eval_batch_size", "lora", "arch", "requires",
    "paper_chat_format",
})
LORA_KEYS = ("r", "alpha", "dropout", "target_modules")


def validate_model_config(model_cfg) -> None:
    """Cheap schema checks of a model config (no weights, no network); raises ConfigError naming the key."""
    if not isinstance(model_cfg, Mapping):
        raise ConfigError(f"model config must be a mapping, got {type(model_cfg).__name__}")
    name = model_cfg.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError("model config: 'name' must be a non-empty string")
    where = f"model {name!r}"
    unknown = sorted(k for k in model_cfg if k not in MODEL_KEYS and not str(k).startswith("_"))
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; valid keys: {sorted(MODEL_KEYS)}")
    source = model_cfg.get("source")
    if source not in SOURCES:
        raise ConfigError(f"{where}: source={source!r} is not one of {list(SOURCES)}")
    if model_cfg.get("dtype") not in DTYPES:
        raise ConfigError(f"{where}: dtype={model_cfg.get('dtype')!r} is not one of {list(DTYPES)}")
    quant = model_cfg.get("quantization")
    if quant not in QUANTIZATIONS:
        raise ConfigError(f"{where}: quantization={quant!r} is not one of {list(QUANTIZATIONS)}")
    if quant is not None and source != "hub":
        raise ConfigError(f"{where}: quantization={quant!r} applies to source=hub only, not {source!r}")
    if quant is not None and not model_cfg.get("device_map"):
        raise ConfigError(f"{where}: quantization={quant!r} needs a device_map (e.g. model.device_map=auto), "
                          "since bitsandbytes places the weights on the GPU while loading")
    if source == "hub" and not (model_cfg.get("hf_id") or model_cfg.get("local_path")):
        raise ConfigError(f"{where}: source=hub needs hf_id (a Hugging Face model id) or local_path")
    if source == "gguf_package":
        for key in ("package", "gguf_file"):
            if not model_cfg.get(key):
                raise ConfigError(f"{where}: source=gguf_package needs '{key}'")
    if source == "tiny_random" and not (model_cfg.get("arch") or {}).get("model_type"):
        raise ConfigError(f"{where}: source=tiny_random needs arch.model_type and the architecture sizes")
    template = model_cfg.get("chat_template")
    if not isinstance(template, (bool, str)) or template == "":
        raise ConfigError(f"{where}: chat_template must be true, false or a Jinja template string")
    if not isinstance(model_cfg.get("trust_remote_code", False), bool):
        raise ConfigError(f"{where}: trust_remote_code must be true or false")
    for key in ("max_length", "batch_size", "eval_batch_size"):
        value = model_cfg.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{where}: {key} must be a positive integer, got {value!r}")
    _validate_lora(model_cfg.get("lora"), where)


def _validate_lora(lora, where: str) -> None:
    if lora is None or not hasattr(lora, "get"):
        raise ConfigError(f"{where}: lora must be a mapping with keys {list(LORA_KEYS)}")
    missing = [k for k in LORA_KEYS if lora.get(k) is None]
    if missing:
        raise ConfigError(f"{where}: lora is missing {missing}; needs {list(LORA_KEYS)}")
    if not isinstance(lora.get("r"), int) or lora.get("r") < 1:
        raise ConfigError(f"{where}: lora.r must be a positive integer, got {lora.get('r')!r}")
    if not isinstance(lora.get("alpha"), (int, float)) or lora.get("alpha") <= 0:
        raise ConfigError(f"{where}: lora.alpha must be a positive number, got {lora.get('alpha')!r}")
    if not isinstance(lora.get("dropout"), (int, float)) or not 0 <= lora.get("dropout") < 1:
        raise ConfigError(f"{where}: lora.dropout must lie in [0, 1), got {lora.get('dropout')!r}")
    targets = lora.get("target_modules")
    if isinstance(targets, str) or not targets or not all(isinstance(t, str) and t for t in targets):
        raise ConfigError(f"{where}: lora.target_modules must be a non-empty list of module names, "
                          f"got {targets!r}")


def check_requirements(model_cfg) -> None:
    """The Python modules that `requires` lists (module name -> pip requirement; e.g. what a model's remote
    code imports) must be installed: else ModelUnavailableError with the pip command, before any download."""
    requires = plain(model_cfg.get("requires") or {})
    missing = {module: spec for module, spec in requires.items() if importlib.util.find_spec(module) is None}
    if missing:
        raise ModelUnavailableError(
            f"model {model_cfg.get('name')!r} needs the Python module(s) {sorted(missing)}, not installed: "
            f"pip install {' '.join(repr(spec) for spec in missing.values())}")
