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


TABLE_COLUMNS = ("jsd", "emd", "accuracy", "a_bias", "ceiling_jsd", "ceiling_emd")
LETTER_MASS_COLUMNS = (*TABLE_COLUMNS, "letter_mass")


def format_table(split_metrics: Mapping[str, Mapping[str, float]],
                 columns: tuple[str, ...] = TABLE_COLUMNS) -> str:
    """A plain-text table of metrics per split; the noise-ceiling columns are followed by a note on the N used."""
    widths = [max(10, len(c) + 2) for c in columns]
    head = f"{'split':<22}{'n':>6}" + "".join(f"{c:>{w}}" for c, w in zip(columns, widths))
    lines = [head, "-" * len(head)]
    for split, m in split_metrics.items():
        cells = "".join(f"{m[c]:>{w}.4f}" if c in m and m[c] is not None else f"{'-':>{w}}"
                        for c, w in zip(columns, widths))
        lines.append(f"{split:<22}{int(m.get('n_items', 0)):>6}{cells}")
    assumed = {s: m for s, m in split_metrics.items() if m.get("ceiling_n_assumed")}
    if any(c.startswith("ceiling_") for c in columns) and assumed:
        n = next(iter(assumed.values()))["assumed_n"]
        lines.append(f"ceiling: expected score of the true distribution against a sample of each item's N; "
                     f"N={n:,.0f} ASSUMED for {sum(int(m['ceiling_n_assumed']) for m in assumed.values())} "
                     "items without a respondent count")
    return "\n".join(lines)


def format_comparison(before: Mapping[str, Mapping[str, float]], after: Mapping[str, Mapping[str, float]],
                      metric: str = "jsd") -> str:
    """Per split: a metric before and after training, and the change."""
    head = f"{'split':<22}{'before':>10}{'after':>10}{'change':>10}"
    lines = [head, "-" * len(head)]
    for split, m in after.items():
        if split in before:
            b, a = before[split][metric], m[metric]
            lines.append(f"{split:<22}{b:>10.4f}{a:>10.4f}{a - b:>+10.4f}")
    return "\n".join(lines)


def format_baselines(model: Mapping[str, Mapping[str, float]], baselines: Mapping[str, Mapping[str, Mapping]],
                     metric: str = "jsd") -> str:
    """Per split: the run's metric beside each baseline's, the best trivial baseline (uniform or prior) and
    the run minus it."""
    names = [b for b in baselines if b != "best_trivial"]
    head = f"{'split':<22}{'model':>10}" + "".join(f"{b:>13}" for b in names) + f"{'best trivial':>20}{'model - best':>14}"
    lines = [head, "-" * len(head)]
    for split, m in model.items():
        best = baselines["best_trivial"].get(split)
        if best is None:
            continue
        cells = "".join(f"{baselines[b][split][metric]:>13.4f}" for b in names)
        lines.append(f"{split:<22}{m[metric]:>10.4f}{cells}{best['baseline']:>11} {best[metric]:>8.4f}"
                     f"{m[metric] - best[metric]:>+14.4f}")
    return "\n".join(lines)
