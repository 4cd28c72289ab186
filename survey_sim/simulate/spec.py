"""What `survey_sim.simulate` loads: a run folder, an adapter or a model config, resolved into a `ModelSpec`
(model config, prompt, adapter, temperature from calibration.json, steering, attributes, provenance)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from survey_sim.config import group_config
from survey_sim.errors import ConfigError
from survey_sim.evaluation.calibration import read_calibration
from survey_sim.modeling.anchoring import Anchor
from survey_sim.modeling.model_config import validate_model_config
from survey_sim.simulate.anchor import run_anchor
from survey_sim.simulate.groups import default_attributes, steering_format

log = logging.getLogger(__name__)

@dataclass
class ModelSpec:
    """What to load: model config, prompt template, adapter, temperature, anchor, and where each came from."""

    model_cfg: DictConfig
    prompt: str | dict = "paper"
    adapter: str | None = None
    temperature: float = 1.0
    provenance: dict = field(default_factory=dict)
    steering: dict | None = None  # the steering format of subgroup prompts (None: none)
    attributes: dict = field(default_factory=dict)  # attribute definitions of the run's data
    anchor: Anchor | None = None  # an anchored run's base and fitted rule, applied to the model's predictions


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


def _run_spec(run_dir: Path, model: str | None, prompt: str | None, calibration: bool, anchor: bool) -> ModelSpec:
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
    anchored, provenance["anchor"] = run_anchor(run_dir, cfg, metrics, anchor)
    steering = cfg.get("steering")
    attributes = data.get("attributes") or (data.get("demo") or {}).get("attributes")
    return ModelSpec(model_cfg, prompt or OmegaConf.to_container(cfg.prompt, resolve=True),
                     str(adapter) if has_adapter else None, provenance["calibration"]["temperature"], provenance,
                     steering_format("bio") if steering is None else OmegaConf.to_container(steering, resolve=True),
                     OmegaConf.to_container(attributes, resolve=True) if attributes else default_attributes(),
                     anchored)


def resolve_model(*, run: str | Path | None = None, adapter: str | None = None, model: str | None = None,
                  prompt: str | None = None, calibration: bool = True, anchor: bool = True) -> ModelSpec:
    """A ModelSpec from exactly one of: a run folder (`model` may override its model config), an adapter
    (local folder or Hugging Face id, with `model` naming its base model config), or a model config alone."""
    from survey_sim.pipeline.model_run import resolve_adapter

    if run is not None and adapter is not None:
        raise ConfigError("give either --run or --adapter, not both")
    if run is not None:
        return _run_spec(Path(run), model, prompt, calibration, anchor)
    if model is None:
        raise ConfigError("name the model: --run RUN_DIR, or --model NAME (zero-shot, or the base model of "
                          "--adapter)")
    model_cfg = _model_config(model)
    no_cal = {"applied": False, "temperature": 1.0, "reason": "no run folder (calibration is read from --run)"}
    no_anchor = {"applied": False, "reason": "no run folder (an anchor is read from --run)"}
    if adapter is not None:
        path = resolve_adapter(adapter)
        return ModelSpec(model_cfg, prompt or "paper", path, 1.0,
                         {"run": None, "method": "adapter", "calibration": no_cal, "anchor": no_anchor,
                          **_adapter_info(path),
                          "training_data": "unknown (adapter given without its run folder)"},
                         steering_format("bio"), default_attributes())
    return ModelSpec(model_cfg, prompt or "paper", None, 1.0,
                     {"run": None, "method": "zs", "adapter": None, "calibration": no_cal, "anchor": no_anchor,
                      "training_data": "none (zero-shot: no survey fine-tuning)"},
                     steering_format("bio"), default_attributes())
