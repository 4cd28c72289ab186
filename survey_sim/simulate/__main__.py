"""`python -m survey_sim.simulate`: answer a new questionnaire for chosen countries with a simulator.

    python -m survey_sim.simulate --questionnaire my_questions.yaml --countries "Kenya,JPN,Peru" \\
        --run outputs/2025-01-01/12-00-00-smollm2_135m-ft-kl --out sim/

With `--groups "sex=female;age=18-29"` (groups separated by ";", the attributes of one group by ",", e.g.
"sex=female,age=18-29"; or a YAML/JSON file with a list of {attribute: value} mappings) each country is
simulated per subgroup, the group described by the run's steering format (conf/steering/; `--steering`
overrides it). Attribute labels and values are checked against the attribute definitions the run's data
used (conf/data/attributes/wvs7.yaml without a run).

The model is a run folder of `survey_sim.run` (its model config, prompt, adapter and calibration.json), a
local adapter folder or Hugging Face adapter id with `--model` naming its base model config, or a model
config alone (`--model smollm2_135m`: zero-shot). Each prediction is averaged over cyclic shifts of the
option order (all of them by default); the range across shifts is reported as an uncertainty interval.
Outputs: simulation.csv / .parquet / .json (a tidy table), metadata.json, README.md (provenance and a
caution) and PNG figures under figures/.
"""

from __future__ import annotations

import argparse
import datetime as dt
import difflib
import hashlib
import io
import json
import logging
import os
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf

import survey_sim
from survey_sim.data import demo
from survey_sim.data.countries import resolve_country
from survey_sim.data.datamodule import SurveyDataModule
from survey_sim.data.item import LETTERS, SurveyItem
from survey_sim.data.subgroups import group_label
from survey_sim.errors import ConfigError, ModelUnavailableError, SurveyDataError, SurveySimError
from survey_sim.evaluation.calibration import read_calibration
from survey_sim.evaluation.rows import expand_permutations
from survey_sim.io import atomic_write_bytes, atomic_write_json, atomic_write_text
from survey_sim.modeling.config_groups import group_config
from survey_sim.modeling.loading import context_length, load_model, load_tokenizer, validate_model_config
from survey_sim.modeling.prompts import PromptBuilder
from survey_sim.modeling.simulator import MAX_OPTIONS, SurveySimulator, load_adapter
from survey_sim.paths import config_dir
from survey_sim.simulate.questionnaire import Question, read_questionnaire

log = logging.getLogger(__name__)

CONF = config_dir()
CAUTION = ("Caution: these are simulated distributions from a language model, not survey evidence; "
           "do not report them as what people in these countries think.")


# ------------------------------------------------------------------------------------------ countries

def country_sets(registry: str | Path = CONF / "data" / "registry" / "paper.yaml") -> dict[str, list[str]]:
    """The named country sets (C1, C2, C3, C'1, ...) of a split registry file."""
    return {str(k): [str(c) for c in v] for k, v in OmegaConf.load(registry).countries.items()}


def resolve_countries(spec: str | Sequence[str], extra: Sequence[str] = (),
                      sets: dict[str, list[str]] | None = None) -> list[str]:
    """Canonical country names from names, ISO codes and named sets ("Kenya,JPN,C3"), in order, deduplicated.

    `extra`: further accepted group names (a demo survey's invented countries). An unknown name is a
    ConfigError listing close matches and the named sets.
    """
    sets = country_sets() if sets is None else sets
    tokens = [t.strip() for t in (spec.split(",") if isinstance(spec, str) else spec) if str(t).strip()]
    if not tokens:
        raise ConfigError("no countries given (e.g. --countries 'Kenya,JPN,Peru' or --countries C2)")
    by_set = {k.casefold(): k for k in sets}
    by_extra = {e.casefold(): e for e in extra}
    out: list[str] = []
    for tok in tokens:
        if tok.casefold() in by_set:
            out += [resolve_country(c) for c in sets[by_set[tok.casefold()]]]
        elif tok.casefold() in by_extra:
            out.append(by_extra[tok.casefold()])
        else:
            try:
                out.append(resolve_country(tok))
            except ConfigError as err:
                near = difflib.get_close_matches(tok, list(extra) + list(sets), n=3, cutoff=0.6)
                more = f"; close matches among {'groups and ' if extra else ''}named sets: {', '.join(near)}" \
                    if near else ""
                raise ConfigError(f"{err}{more} (named sets: {', '.join(sets)})") from None
    return list(dict.fromkeys(out))


# ---------------------------------------------------------------------------------------------- model

@dataclass
class ModelSpec:
    """What to load: model config, prompt template, adapter, temperature, and where each came from."""

    model_cfg: DictConfig
    prompt: str | dict = "paper"
    adapter: str | None = None
    temperature: float = 1.0
    provenance: dict = field(default_factory=dict)
    steering: dict | None = None  # the steering format of subgroup prompts (None: none)
    attributes: dict = field(default_factory=dict)  # attribute definitions of the run's data


def _model_config(name_or_path: str) -> DictConfig:
    cfg = group_config("model", name_or_path)
    validate_model_config(cfg)
    return cfg


def _adapter_info(adapter: str) -> dict:
    config = Path(adapter) / "adapter_config.json"
    info = {"adapter": adapter,
            "adapter_source": "local folder" if Path(adapter).exists() else "Hugging Face hub"}
    if config.is_file():
        base = json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path")
        info["adapter_base_model"] = base
    return info


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _run_calibration(run_dir: Path, use: bool) -> dict:
    if not use:
        return {"applied": False, "temperature": 1.0, "reason": "--no-calibration"}
    record = read_calibration(run_dir)
    if record is None:
        return {"applied": False, "temperature": 1.0, "reason": f"{run_dir} has no calibration.json"}
    split = record.get("fit_split", "val")
    return {"applied": True, "temperature": float(record["temperature"]), "file": str(run_dir / "calibration.json"),
            "fit_split": split, "kl_before": record.get(f"{split}_before", {}).get("kl"),
            "kl_after": record.get(f"{split}_after", {}).get("kl")}


def _run_spec(run_dir: Path, model: str | None, prompt: str | None, calibration: bool) -> ModelSpec:
    if not (run_dir / "config.yaml").is_file():
        raise ConfigError(f"{run_dir} is not a run folder of survey_sim.run (no config.yaml)")
    run_dir = run_dir.absolute()
    cfg = OmegaConf.load(run_dir / "config.yaml")
    model_cfg = _model_config(model) if model else cfg.model
    validate_model_config(model_cfg)
    adapter = run_dir / "adapter"
    has_adapter = (adapter / "adapter_config.json").is_file()
    metrics = _read_json(run_dir / "metrics.json")
    if not metrics:
        log.warning("run folder %s has no metrics.json: the run did not finish", run_dir)
    method = (metrics.get("run") or {}).get("method") or cfg.method.get("name")
    data = cfg.get("data") or {}
    run_data = {"name": data.get("name"), "source": data.get("source"), "language": data.get("language"),
                "train_split": data.get("train_split"), "val_split": data.get("val_split"),
                "files": _read_json(run_dir / "run_info.json").get("data_files", {})}
    provenance = {
        "run": str(run_dir), "run_complete": bool(metrics), "method": method,
        "loss": (metrics.get("run") or {}).get("loss"),
        "training_data": run_data if cfg.method.get("train") else "none (zero-shot run: no survey fine-tuning)",
        "run_data": run_data, "calibration": _run_calibration(run_dir, calibration),
        **(_adapter_info(str(adapter)) if has_adapter else {"adapter": None}),
    }
    steering = cfg.get("steering")
    attributes = data.get("attributes") or (data.get("demo") or {}).get("attributes")
    return ModelSpec(model_cfg, prompt or OmegaConf.to_container(cfg.prompt, resolve=True),
                     str(adapter) if has_adapter else None, provenance["calibration"]["temperature"], provenance,
                     steering_format("bio") if steering is None else OmegaConf.to_container(steering, resolve=True),
                     OmegaConf.to_container(attributes, resolve=True) if attributes else default_attributes())


def resolve_model(*, run: str | Path | None = None, adapter: str | None = None, model: str | None = None,
                  prompt: str | None = None, calibration: bool = True) -> ModelSpec:
    """A ModelSpec from exactly one of: a run folder (`model` may override its model config), an adapter
    (local folder or Hugging Face id, with `model` naming its base model config), or a model config alone."""
    from survey_sim.pipeline.model_run import resolve_adapter

    if run is not None and adapter is not None:
        raise ConfigError("give either --run or --adapter, not both")
    if run is not None:
        return _run_spec(Path(run), model, prompt, calibration)
    if model is None:
        raise ConfigError("name the model: --run RUN_DIR, or --model NAME (zero-shot, or the base model of "
                          "--adapter)")
    model_cfg = _model_config(model)
    no_cal = {"applied": False, "temperature": 1.0, "reason": "no run folder (calibration is read from --run)"}
    if adapter is not None:
        path = resolve_adapter(adapter)
        return ModelSpec(model_cfg, prompt or "paper", path, 1.0,
                         {"run": None, "method": "adapter", "calibration": no_cal, **_adapter_info(path),
                          "training_data": "unknown (adapter given without its run folder)"},
                         steering_format("bio"), default_attributes())
    return ModelSpec(model_cfg, prompt or "paper", None, 1.0,
                     {"run": None, "method": "zs", "adapter": None, "calibration": no_cal,
                      "training_data": "none (zero-shot: no survey fine-tuning)"},
                     steering_format("bio"), default_attributes())


# --------------------------------------------------------------------------------------------- groups

def steering_format(name: str) -> dict | None:
    """The shipped steering format conf/steering/NAME.yaml as a run composes it (None for none)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import MissingConfigException

    from survey_sim.modeling.prompts import resolve_steering

    shipped = sorted(p.stem for p in (CONF / "steering").glob("*.yaml"))
    if name not in shipped:
        raise ConfigError(f"unknown steering format {name!r}; shipped: {', '.join(shipped)}")
    try:
        with initialize_config_dir(config_dir=str(CONF / "steering"), version_base="1.3"):
            cfg = compose(config_name=name)
    except MissingConfigException as err:
        raise ConfigError(f"steering format {name!r}: {err}") from None
    return resolve_steering(OmegaConf.to_container(cfg, resolve=True))


def default_attributes() -> dict:
    """The WVS-7 attribute definitions (conf/data/attributes/wvs7.yaml)."""
    return OmegaConf.to_container(OmegaConf.load(CONF / "data" / "attributes" / "wvs7.yaml"), resolve=True)


def parse_groups(spec: str | Path, attributes: dict) -> list[tuple[tuple[str, str], ...]]:
    """Subgroups from "sex=female;age=18-29,sex=male" (";" between groups, "," between one group's
    attributes) or from a YAML/JSON file holding a list of {label: value} mappings; each label and value
    must be one of the attribute definitions' (`label` and value words or band names)."""
    from survey_sim.data.subgroups import parse_attribute

    known = {}
    for name, definition in attributes.items():
        attribute = parse_attribute(name, definition)
        known[attribute.label] = attribute.levels
    path = Path(str(spec))
    if path.suffix.lower() in (".yaml", ".yml", ".json") and path.is_file():
        try:
            records = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        except (OSError, ValueError) as err:
            raise ConfigError(f"cannot read groups file {path}: {err}") from None
        if not isinstance(records, list) or not all(isinstance(r, dict) and r for r in records):
            raise SurveyDataError("expected a list of {attribute: value} mappings", file=str(path))
        groups = [tuple((str(k), str(v)) for k, v in r.items()) for r in records]
    else:
        groups = []
        for text in str(spec).split(";"):
            pairs = [p.strip() for p in text.split(",") if p.strip()]
            if not pairs:
                continue
            if any("=" not in p for p in pairs):
                raise ConfigError(f"group {text.strip()!r}: expected attribute=value pairs separated by ','")
            groups.append(tuple((k.strip(), v.strip()) for k, v in (p.split("=", 1) for p in pairs)))
    if not groups:
        raise ConfigError(f"no groups in {str(spec)!r} (e.g. --groups 'sex=female;age=18-29')")
    for group in groups:
        labels = [label for label, _ in group]
        if len(set(labels)) != len(labels):
            raise ConfigError(f"group {dict(group)}: an attribute appears twice")
        for label, value in group:
            if label not in known:
                raise ConfigError(f"group {dict(group)}: unknown attribute {label!r}; known: {sorted(known)}")
            if value not in known[label]:
                raise ConfigError(f"group {dict(group)}: {label} has no value {value!r}; values: "
                                  f"{list(known[label])}")
    return list(dict.fromkeys(groups))


class LoadedSimulator:
    """A loaded backbone (+ adapter) and its tokenizer and prompt builder, predicting option distributions."""

    def __init__(self, spec: ModelSpec, batch_size: int | None = None):
        self.spec = spec
        cfg = spec.model_cfg
        self.tokenizer = load_tokenizer(cfg)
        self.builder = PromptBuilder(spec.prompt, tokenizer=self.tokenizer, chat_template=bool(cfg.chat_template),
                                     steering=spec.steering, family=cfg.get("paper_chat_format"))
        self.batch_size = int(batch_size or cfg.eval_batch_size)
        backbone = load_model(cfg)
        if spec.adapter is not None:
            try:
                backbone = load_adapter(backbone, spec.adapter, trainable=False)
            except (OSError, ValueError) as err:
                raise ModelUnavailableError(
                    f"cannot load adapter {spec.adapter!r}: it is neither a local adapter folder nor a Hugging "
                    f"Face adapter id that can be downloaded now ({type(err).__name__}: {err})") from err
        self.module = SurveySimulator(backbone, eval_split_names=["simulate"], val_split=None)
        self.module.temperature.fill_(float(spec.temperature))
        self.module.eval()
        if cfg.get("device_map"):
            self.device = next(backbone.parameters()).device
        else:
            self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
            self.module.to(self.device)

    def probabilities(self, items: Sequence[SurveyItem], progress: Progress | None = None) -> np.ndarray:
        """[N, 26] option probabilities of each item (its current option order), at the spec's temperature.

        Prompt prefixes are shared (one item's option orders computed together, see `collate`) unless the
        model runs its own (remote) code; `progress` is told the prompts done after every batch."""
        cfg = self.spec.model_cfg
        dm = SurveyDataModule({"simulate": list(items)}, self.tokenizer, self.builder, eval_batch_size=self.batch_size,
                              max_length=context_length(cfg, self.tokenizer), train_split=None,
                              val_split=None, eval_splits=["simulate"],
                              share_prefix=not cfg.get("trust_remote_code"))
        dm.encode()
        out = np.full((len(items), MAX_OPTIONS), np.nan)
        done = 0
        with torch.inference_mode():
            for batch in dm.test_dataloader()[0]:
                batch = {k: v.to(self.device) for k, v in batch.items()}
                probs = self.module(batch).exp().masked_fill(~batch["option_mask"], 0.0).float().cpu().numpy()
                out[batch["index"].cpu().numpy(), : probs.shape[1]] = probs
                done += len(probs)
                if progress is not None:
                    progress.update(done)
        missing = np.flatnonzero(np.isnan(out[:, 0]))
        if len(missing):
            raise SurveySimError(f"no prediction for {len(missing)} prompt(s), e.g. item {int(missing[0])}")
        return np.nan_to_num(out, nan=0.0)


class Progress:
    """Logs the prompts done out of `total` (described by `what`, e.g. "10 questions x 5 countries x 2-5
    orders"), the rate and the time left: at most every `every` seconds, and when all are done."""

    def __init__(self, total: int, what: str, every: float = 10.0):
        self.total, self.what, self.every = total, what, every
        self.start = self.last = time.perf_counter()

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if done < self.total and now - self.last < self.every:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        left = f", about {(self.total - done) / rate:.0f} s left" if done < self.total else ""
        log.info("simulated %d of %d prompts (%s): %.1f prompts/s%s", done, self.total, self.what, rate, left)


# ---------------------------------------------------------------------------------------------- table

def average_copies(items: Sequence[SurveyItem], probs: np.ndarray, base: Sequence[int]) -> list[dict]:
    """Per base item: the copies' predictions in original order, their mean, min, max and std."""
    grouped: dict[int, list[np.ndarray]] = {}
    for item, p, b in zip(items, probs, base):
        grouped.setdefault(b, []).append(np.asarray(item.to_original_order(p[: item.num_options])))
    out = []
    for b in sorted(grouped):
        copies = np.stack(grouped[b])
        mean = copies.mean(axis=0)
        out.append({"mean": mean / mean.sum(), "low": copies.min(axis=0), "high": copies.max(axis=0),
                    "std": copies.std(axis=0), "n": len(copies)})
    return out


def tidy_table(items: Sequence[SurveyItem], stats: Sequence[dict]) -> pd.DataFrame:
    """One row per (country, question, option): probability, permutation interval and per-item summaries."""
    records = []
    for item, s in zip(items, stats):
        p = s["mean"]
        top = int(np.argmax(p))
        entropy = float(-(p[p > 0] * np.log2(p[p > 0])).sum())
        for j, label in enumerate(item.options):
            records.append({
                "country": item.country, "group": item.group, "question_id": item.question_id,
                "question": item.question, **{f"attribute:{k}": v for k, v in item.attributes},
                "option_index": j, "letter": LETTERS[j], "option": label, "probability": float(p[j]),
                "probability_low": float(s["low"][j]), "probability_high": float(s["high"][j]),
                "probability_std": float(s["std"][j]), "predicted_majority": item.options[top],
                "majority_probability": float(p[top]), "entropy_bits": entropy,
                "n_permutations": int(s["n"]), "ordinal": bool(item.ordinal), "language": item.language})
    return pd.DataFrame.from_records(records)


# ------------------------------------------------------------------------------------ human reference

_REFERENCES: dict[str | None, tuple[pd.DataFrame | None, str]] = {}


def human_diversity_reference() -> tuple[pd.DataFrame | None, str]:
    """Per WVS train question (C1 x Q1): option count and human diversity (mean pairwise 1-JSD across
    countries), read from $SURVEY_SIM_DATA; (None, reason) when the data is not available. Loaded once per
    process and data folder, then served from memory (a copy)."""
    root = os.environ.get("SURVEY_SIM_DATA")
    if root not in _REFERENCES:
        _REFERENCES[root] = _load_human_reference()
    frame, note = _REFERENCES[root]
    return (None if frame is None else frame.copy()), note


def _load_human_reference() -> tuple[pd.DataFrame | None, str]:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from survey_sim.data.splits import load_splits
    from survey_sim.evaluation.metrics import diversity

    overrides = ["data=wvs_en", "data.val_split=null", "data.test_splits=[]"]
    try:
        if GlobalHydra.instance().is_initialized():  # called from inside a Hydra app
            cfg = compose(config_name="config", overrides=overrides)
        else:
            with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
                cfg = compose(config_name="config", overrides=overrides)
        items = load_splits(cfg.data)["train"]
    except (SurveySimError, OSError) as err:
        first = str(err).splitlines()[0]
        return None, f"no human reference: the WVS data is not available ({first})"
    rows = [{"question_id": it.question_id, "group": it.group, "human": list(it.distribution),
             "pred": list(it.distribution)} for it in items]
    k = {it.question_id: it.num_options for it in items}
    frame = pd.DataFrame([{"question_id": q, "n_options": k[q], "human": d["human"], "n_groups": d["n_groups"]}
                          for q, d in diversity(rows).items()])
    note = (f"human reference: WVS-7 train split (C1 x Q1: {frame['n_groups'].max()} countries, {len(frame)} "
            "questions) from $SURVEY_SIM_DATA, matched by option count")
    return frame, note


def model_diversity(table: pd.DataFrame) -> pd.DataFrame:
    """Per simulated question: option count and mean pairwise 1-JSD of the predictions across countries."""
    from survey_sim.evaluation.metrics import mean_pairwise_jsd

    records = []
    for qid, group in table.groupby("question_id", sort=False):
        dists = [g.sort_values("option_index")["probability"].to_numpy() for _, g in group.groupby("country")]
        if len(dists) >= 2:
            records.append({"question_id": qid, "n_options": len(dists[0]), "n_groups": len(dists),
                            "model": mean_pairwise_jsd(dists, f"question {qid}")})
    return pd.DataFrame(records, columns=["question_id", "n_options", "n_groups", "model"])


# ------------------------------------------------------------------------------------------- simulate

def _slug(text: str, used: set[str]) -> str:
    """A file-name-safe form of `text`, made unique within `used` (which it joins)."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "x"
    name, n = base, 1
    while name in used:
        n += 1
        name = f"{base}_{n}"
    used.add(name)
    return name


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def simulate(questionnaire: str | Path, countries: str | Sequence[str], out: str | Path, *, language: str = "en",
             run: str | Path | None = None, adapter: str | None = None, model: str | None = None,
             prompt: str | None = None, permutations: int | None = None, calibration: bool = True,
             batch_size: int | None = None, figures: bool = True, groups: str | Path | None = None,
             steering: str | None = None) -> dict:
    """Simulate every country x question (x subgroup of `groups`, see `parse_groups`); write the table,
    metadata, README and figures to `out`. `steering` names a steering format replacing the run's.

    `permutations`: cyclic shifts averaged per item (None: all K shifts). Returns the metadata written to
    metadata.json, with "files" listing the outputs.
    """
    from survey_sim.simulate.plots import plot_country, plot_diversity, plot_question, save_figure

    if language not in ("en", "zh"):
        raise ConfigError(f"language must be 'en' or 'zh', got {language!r}")
    if permutations is not None and permutations < 1:
        raise ConfigError(f"permutations must be >= 1 (or omitted for all shifts), got {permutations}")
    questions: list[Question] = read_questionnaire(questionnaire)
    spec = resolve_model(run=run, adapter=adapter, model=model, prompt=prompt, calibration=calibration)
    demo_run = (spec.provenance.get("run_data") or {}).get("source") == "demo"
    names = resolve_countries(countries, extra=demo.COUNTRIES if demo_run else ())
    if steering is not None:
        spec.steering = steering_format(steering)
    subgroups = parse_groups(groups, spec.attributes) if groups is not None else []
    items = [it for q in questions for it in q.items(names, language, source=f"questionnaire:{Path(questionnaire).name}")]
    if subgroups:
        items = [it.with_(group=group_label(it.country, g), attributes=g) for it in items for g in subgroups]
    expanded, base = expand_permutations(items, permutations or MAX_OPTIONS)
    orders = sorted({n for n in np.bincount(base)})
    what = (f"{len(questions)} questions x {len(names)} countries x "
            f"{orders[0] if len(orders) == 1 else f'{orders[0]}-{orders[-1]}'} option orders")
    log.info("simulating %s: %d prompts", what, len(expanded))
    started = time.perf_counter()
    sim = LoadedSimulator(spec, batch_size)
    loaded = time.perf_counter()
    probs = sim.probabilities(expanded, Progress(len(expanded), what))
    inferred = time.perf_counter()
    table = tidy_table(items, average_copies(expanded, probs, base))

    out = Path(out)
    figures_dir = out / "figures"
    reference, reference_note = human_diversity_reference() if figures else (None, "figures not drawn")
    cfg = spec.model_cfg
    metadata = {
        "caution": CAUTION,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "survey_sim": survey_sim.__version__,
        "model": {k: cfg.get(k) for k in ("name", "source", "hf_id", "package", "gguf_file", "local_path",
                                          "revision", "dtype") if cfg.get(k) is not None},
        "prompt": spec.prompt if isinstance(spec.prompt, str) else spec.prompt.get("name", "<custom>"),
        "language": language,
        **spec.provenance,
        "questionnaire": {"file": str(Path(questionnaire).resolve()), "sha256": _sha256(Path(questionnaire)),
                          "questions": [q.id for q in questions]},
        "countries": names,
        **({"groups": [dict(g) for g in subgroups],
            "steering": (spec.steering or {}).get("name", "none")} if subgroups else {}),
        "permutations": {"requested": permutations or "all", "per_item": sorted(set(table["n_permutations"]))},
        "uncertainty": "probability_low/high: min and max over the cyclic shifts of the option order (order "
                       "sensitivity of the model, not sampling error); equal to probability when one shift",
        "human_reference": reference_note,
        "throughput": {"prompts": len(expanded), "model_load_s": round(loaded - started, 3),
                       "inference_s": round(inferred - loaded, 3),
                       "prompts_per_s": round(len(expanded) / max(inferred - loaded, 1e-9), 3),
                       "device": str(sim.device)},
    }
    files = {}
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    files["parquet"] = atomic_write_bytes(out / "simulation.parquet", buf.getvalue())
    files["csv"] = atomic_write_text(out / "simulation.csv", table.to_csv(index=False))
    files["json"] = atomic_write_json(out / "simulation.json", {"metadata": metadata,
                                                                 "table": table.to_dict("records")})
    if figures:
        q_used, c_used = set(), set()
        plotted = table.assign(country=table["group"])  # one bar / heatmap per country, or per subgroup
        for qid, part in plotted.groupby("question_id", sort=False):
            fig = plot_question(part, caption=CAUTION)
            files[f"question:{qid}"] = save_figure(fig, figures_dir / f"question_{_slug(qid, q_used)}.png")
        for country, part in plotted.groupby("country", sort=False):
            fig = plot_country(part, caption=CAUTION)
            files[f"country:{country}"] = save_figure(fig, figures_dir / f"country_{_slug(country, c_used)}.png")
        fig = plot_diversity(model_diversity(plotted), reference, note=reference_note, caption=CAUTION)
        files["diversity"] = save_figure(fig, figures_dir / "diversity.png")
    metadata["files"] = {k: str(Path(v).relative_to(out)) for k, v in files.items()}
    metadata["throughput"]["total_s"] = round(time.perf_counter() - started, 3)
    atomic_write_text(out / "README.md", _readme(metadata))
    atomic_write_json(out / "metadata.json", metadata)
    return metadata


def _readme(m: dict) -> str:
    cal = m["calibration"]
    cal_line = (f"temperature {cal['temperature']:.3f} from {cal['file']}" if cal["applied"]
                else f"none ({cal['reason']})")
    data = m.get("training_data")
    data_line = data if isinstance(data, str) else f"{data.get('name')} ({data.get('source')}, {data.get('language')})"
    return "\n".join([
        "# Simulated survey answers", "", f"**{m['caution']}**", "",
        f"- model: {m['model'].get('name')} ({m['model'].get('hf_id') or m['model'].get('source')})",
        f"- adapter: {m.get('adapter') or 'none (zero-shot)'}",
        f"- run: {m.get('run') or '-'} (method {m.get('method')})",
        f"- training data: {data_line}",
        f"- calibration: {cal_line}",
        f"- prompt: {m['prompt']}, language {m['language']}",
        (f"- option-order averaging: {m['permutations']['requested']} cyclic shifts "
         f"(per item: {m['permutations']['per_item']})"),
        f"- questionnaire: {m['questionnaire']['file']} (sha256 {m['questionnaire']['sha256'][:12]})",
        f"- countries: {', '.join(m['countries'])}",
        *([(f"- groups: {'; '.join(', '.join(f'{k}={v}' for k, v in g.items()) for g in m['groups'])} "
            f"(steering format {m['steering']})")] if m.get("groups") else []),
        f"- {m['human_reference']}",
        (f"- throughput: {m['throughput']['prompts']} prompts in {m['throughput']['inference_s']:.1f} s "
         f"({m['throughput']['prompts_per_s']:.1f} prompts/s on {m['throughput']['device']})"),
        f"- uncertainty: {m['uncertainty']}", "",
        "Files: " + ", ".join(sorted(set(m["files"].values()))), ""])


# ------------------------------------------------------------------------------------------------ CLI

def _permutations(text: str) -> int | None:
    if text.strip().lower() == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {text!r}") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m survey_sim.simulate",
        description="Simulate how countries would answer a new questionnaire. " + CAUTION)
    p.add_argument("--questionnaire", required=True, help="YAML, JSON or CSV file: id, text, options, ordinal")
    p.add_argument("--countries", required=True,
                   help="comma-separated names, ISO codes or named sets (C1, C2, C3, C'1), e.g. 'Kenya,JPN,C3'")
    p.add_argument("--language", default="en", choices=["en", "zh"], help="language of the prompt (default en)")
    p.add_argument("--groups", help="subgroups per country: 'sex=female;age=18-29' (';' between groups, ',' "
                                    "between one group's attributes) or a YAML/JSON list of mappings")
    p.add_argument("--steering", help="steering format of subgroup prompts (bio, qa, portray, none); "
                                      "default: the run's, else bio")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--run", help="a run folder of survey_sim.run (adapter, config, calibration.json)")
    src.add_argument("--adapter", help="a local adapter folder or a Hugging Face adapter id (needs --model)")
    p.add_argument("--model", help="model config name (conf/model/NAME.yaml) or .yaml file: zero-shot, or the "
                                   "base model of --adapter")
    p.add_argument("--prompt", help="prompt template (paper, plain); default: the run's, else paper")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--permutations", type=_permutations, default=None,
                   help="cyclic shifts of the option order averaged per item (default: all)")
    p.add_argument("--no-calibration", action="store_true", help="ignore the run folder's calibration.json")
    p.add_argument("--batch-size", type=int, default=None, help="prompts per forward pass")
    p.add_argument("--no-figures", action="store_true", help="write the tables only")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.adapter and not args.model:
        print("error: --adapter needs --model (the config of the adapter's base model)", file=sys.stderr)
        return 2
    try:
        meta = simulate(args.questionnaire, args.countries, args.out, language=args.language, run=args.run,
                        adapter=args.adapter, model=args.model, prompt=args.prompt,
                        permutations=args.permutations, calibration=not args.no_calibration,
                        batch_size=args.batch_size, figures=not args.no_figures, groups=args.groups,
                        steering=args.steering)
    except SurveySimError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(_readme(meta))
    print(f"outputs: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
