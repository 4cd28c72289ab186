"""What a run leaves in its folder: config, predictions, metrics, provenance; all written atomically."""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

import survey_sim
from survey_sim.io import atomic_write_json, atomic_write_jsonl, atomic_write_text

LIBRARIES = ("torch", "lightning", "transformers", "peft", "hydra-core", "omegaconf", "numpy", "scipy", "pot")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_commit() -> str | None:
    """The commit of the survey-sim checkout, with '+dirty' when it has uncommitted changes."""
    repo = Path(survey_sim.__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def run_info(data_files: Iterable[Path] = ()) -> dict:
    """Package version, git commit, library versions and hashes of the data files read."""
    versions = {}
    for lib in LIBRARIES:
        try:
            versions[lib] = importlib.metadata.version(lib)
        except importlib.metadata.PackageNotFoundError:
            versions[lib] = None
    return {
        "survey_sim": survey_sim.__version__, "git_commit": git_commit(), "python": sys.version.split()[0],
        "platform": platform.platform(), "libraries": versions,
        "data_files": {str(p): file_sha256(Path(p)) for p in sorted(set(map(str, data_files)))},
    }


def flat_config(node, prefix: str = "") -> dict[str, object]:
    """A nested config (plain mappings) as {dotted.key: leaf value}."""
    if isinstance(node, Mapping):
        out: dict[str, object] = {}
        for key, value in node.items():
            out.update(flat_config(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def write_config(out_dir: Path, cfg: DictConfig) -> None:
    atomic_write_text(out_dir / "config.yaml", OmegaConf.to_yaml(cfg, resolve=True))


def write_results(out_dir: Path, rows: Iterable[Mapping], metrics: Mapping) -> None:
    """predictions.jsonl first, then metrics.json, whose presence marks a complete run."""
    atomic_write_jsonl(out_dir / "predictions.jsonl", rows)
    atomic_write_json(out_dir / "metrics.json", metrics)
