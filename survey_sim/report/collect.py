"""Find run folders, load the complete ones, and list the incomplete ones with the reason."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import yaml

from survey_sim.errors import ConfigError
from survey_sim.evaluation.metrics import ROW_MEANS
from survey_sim.pipeline.outputs import flat_config

log = logging.getLogger(__name__)

REQUIRED_ROW_FIELDS = ("split", "group", "question_id", "human", "pred")
# Run settings that tell runs apart in a table; runs equal on all of these (e.g. seeds) share a row.
SETTING_FIELDS = ("model", "method", "control", "loss", "data", "language", "shuffle", "shuffle_train",
                  "permutations")
# Config keys that do not change a run's results (or differ between machines): ignored when grouping runs.
# Any other key of config.yaml that differs (a learning rate, a training-set cap, ...) gets its own row.
IGNORED_CONFIG_KEYS = ("seed", "data.seed", "output_dir", "run_name", "resume", "data.root", "model.cache_dir",
                       "model.local_path", "trainer.enable_progress_bar", "trainer.log_every_n_steps",
                       "trainer.checkpoint_every_n_steps")
IGNORED_CONFIG_PREFIXES = ("logger.", "hydra.")
# Row order of the tables: baselines first, then each model's methods.
METHOD_ORDER = ("uniform", "prior", "prior_loo", "country_prior", "country_knn", "knn", "zs", "json_zs", "ft")


@dataclass
class Run:
    """A complete run folder: its metrics.json parts and predictions.jsonl as a frame."""

    path: Path
    run: dict
    splits: dict[str, dict]
    history: list[dict]
    predictions: pd.DataFrame = field(repr=False)
    config: dict = field(default_factory=dict, repr=False)  # flattened config.yaml, ignored keys removed
    validations: list[dict] = field(default_factory=list)  # metrics.json "validations" of a fine-tuning run
    anchor: dict = field(default_factory=dict)  # metrics.json "anchor" of an anchored simulator: base, rule, fits

    @property
    def settings(self) -> tuple:
        return tuple(self.run.get(k) for k in SETTING_FIELDS) + tuple(sorted(self.config.items()))

    @property
    def label(self) -> str:
        """`model / method` (or the method alone for a baseline), with ` [ctrl]` for the country-swap control."""
        model, method = self.run.get("model"), self.run.get("method", "?")
        text = f"{model} / {method}" if model else str(method)
        return text + (" [ctrl]" if self.run.get("control") else "")


@dataclass(frozen=True)
class SkippedRun:
    path: Path
    reason: str


def find_run_dirs(paths: list[str | os.PathLike]) -> list[Path]:
    """Every folder holding a config.yaml, below or at `paths`.

    Hidden folders such as .hydra are ignored, and so is everything inside a run folder (e.g. the
    `wandb/run-*/files/config.yaml` of a W&B run): runs of a sweep are subfolders of the sweep folder,
    which holds multirun.yaml, not config.yaml.
    """
    found: set[Path] = set()
    for p in map(Path, paths):
        if not p.is_dir():
            raise ConfigError(f"results folder {p} does not exist or is not a folder")
        for root, dirs, files in os.walk(p):
            if "config.yaml" in files:
                found.add(Path(root).resolve())
                dirs.clear()
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    return sorted(found)


def _read_predictions(path: Path) -> pd.DataFrame | str:
    """The prediction rows, or why they cannot be used."""
    if not path.is_file():
        return "predictions.jsonl missing"
    rows = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                return f"predictions.jsonl line {n} is not valid JSON (truncated?): {exc.msg}"
            missing = [k for k in REQUIRED_ROW_FIELDS if k not in row] if isinstance(row, dict) else ["object"]
            if missing:
                return f"predictions.jsonl line {n} lacks {', '.join(missing)}"
            if len(row["human"]) != len(row["pred"]):
                return f"predictions.jsonl line {n}: human and pred have different lengths"
            rows.append(row)
    return pd.DataFrame(rows)


def load_run(path: str | os.PathLike) -> Run | SkippedRun:
    """The run at `path`, or a `SkippedRun` saying why it is incomplete or unusable."""
    path = Path(path)
    metrics_file = path / "metrics.json"
    if not metrics_file.is_file():
        return SkippedRun(path, "no metrics.json (run unfinished or failed)")
    try:
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return SkippedRun(path, f"metrics.json is not valid JSON: {exc}")
    if not (isinstance(metrics, dict) and isinstance(metrics.get("run"), dict)
            and isinstance(metrics.get("splits"), dict) and "method" in metrics["run"]):
        return SkippedRun(path, "metrics.json lacks 'run' (with 'method') or 'splits'")
    preds = _read_predictions(path / "predictions.jsonl")
    if isinstance(preds, str):
        return SkippedRun(path, preds)
    counts = preds["split"].value_counts().to_dict() if len(preds) else {}
    for split, m in metrics["splits"].items():
        n = m.get("n_items") if isinstance(m, dict) else None
        if n is not None and counts.get(split, 0) != n:
            return SkippedRun(path, f"split {split}: metrics.json has {n} items, predictions.jsonl "
                                    f"{counts.get(split, 0)} (truncated?)")
    history = metrics.get("history") or []
    return Run(path=path, run=metrics["run"], splits=metrics["splits"], history=list(history), predictions=preds,
               config=_result_config(path / "config.yaml"), validations=list(metrics.get("validations") or []),
               anchor=dict(metrics.get("anchor") or {}))


def _result_config(path: Path) -> dict[str, str]:
    """config.yaml flattened to dotted keys (JSON-encoded values), without the keys that do not affect results."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        log.warning("%s: cannot read the run's config (%s); grouping this run by metrics.json only", path, exc)
        return {}
    flat = flat_config(data if isinstance(data, dict) else {})
    return {k: json.dumps(v, sort_keys=True, default=str) for k, v in flat.items()
            if k not in IGNORED_CONFIG_KEYS and not k.startswith(IGNORED_CONFIG_PREFIXES)}


def collect_runs(paths: list[str | os.PathLike]) -> tuple[list[Run], list[SkippedRun]]:
    """All run folders under `paths`: the complete runs and the skipped ones (each logged)."""
    runs, skipped = [], []
    for d in find_run_dirs(paths):
        result = load_run(d)
        if isinstance(result, SkippedRun):
            log.warning("skipping run %s: %s", result.path, result.reason)
            skipped.append(result)
        else:
            runs.append(result)
    return runs, skipped


ITEM_KEY = ["split", "group", "question_id", "language"]


@dataclass
class RunGroup:
    """Runs that differ only in seed (or name): one table row, their items averaged."""

    label: str
    runs: list[Run]
    _items: pd.DataFrame | None = field(default=None, repr=False)

    def items(self) -> pd.DataFrame:
        """One row per item: per-item metrics and `pred` averaged over the group's runs, `n_runs` counted."""
        if self._items is None:
            self._items = self._merge()
        return self._items

    def _merge(self) -> pd.DataFrame:
        frames = [r.predictions.assign(_run=i) for i, r in enumerate(self.runs)]
        df = pd.concat(frames, ignore_index=True)
        if "language" not in df:
            df["language"] = ""
        if len(self.runs) == 1:
            return df.drop(columns="_run").assign(n_runs=1)
        grouped = df.groupby(ITEM_KEY, sort=False, dropna=False)
        metric_cols = [m for m in ROW_MEANS if m in df]
        out = grouped.first()
        out[metric_cols] = grouped[metric_cols].mean()
        out["pred"] = grouped["pred"].agg(lambda s: list(map(float, pd.DataFrame(list(s)).mean())))
        out["n_runs"] = grouped["_run"].nunique()
        return out.drop(columns="_run").reset_index()


def group_runs(runs: list[Run]) -> list[RunGroup]:
    """Runs grouped by their settings (model, method, control, loss, ...), ordered as the paper's tables.

    Baselines come first, then models by name, each model's methods in `METHOD_ORDER`,
    the [ctrl] row after its plain row.
    Runs whose config.yaml differs in any key that affects results (not the seed; see
    IGNORED_CONFIG_KEYS) are separate groups. A group's label is the run label plus every setting
    that varies among the runs with that same label (e.g. `(loss=kl)` next to `(loss=js)`), and
    then any config key that still tells them apart (e.g. `optim.lr=0.0005`), so labels are unique.
    """
    by_label: dict[str, list[Run]] = {}
    for run in runs:
        by_label.setdefault(run.label, []).append(run)
    varying = {label: [k for k in SETTING_FIELDS[3:] if len({repr(r.run.get(k)) for r in same}) > 1]
               for label, same in by_label.items()}
    by_fields: dict[tuple, list[Run]] = {}
    for run in runs:
        by_fields.setdefault(run.settings[:len(SETTING_FIELDS)], []).append(run)
    groups: dict[tuple, RunGroup] = {}
    for run in runs:
        if run.settings not in groups:
            same = by_fields[run.settings[:len(SETTING_FIELDS)]]
            keys = sorted({k for r in same for k in r.config} - {k for k in run.config
                                                                 if all(r.config.get(k) == run.config[k] for r in same)})
            extra = [f"{k}={run.run.get(k)}" for k in varying[run.label]]
            extra += [f"{k}={run.config[k]}" for k in keys if k in run.config]  # a key it lacks: shown by the others
            groups[run.settings] = RunGroup(run.label + (f" ({', '.join(extra)})" if extra else ""), [])
        groups[run.settings].runs.append(run)

    def order(g: RunGroup) -> tuple:
        run = g.runs[0].run
        method = run.get("method")
        rank = METHOD_ORDER.index(method) if method in METHOD_ORDER else len(METHOD_ORDER)
        return (bool(run.get("model")), str(run.get("model") or ""), rank, str(method), bool(run.get("control")),
                g.label)

    return sorted(groups.values(), key=order)
