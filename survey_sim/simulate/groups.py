"""Subgroups to simulate per country, and the steering formats and attribute definitions that describe them."""

from __future__ import annotations

from pathlib import Path

from omegaconf import OmegaConf

from survey_sim.errors import ConfigError, SurveyDataError
from survey_sim.paths import config_dir

CONF = config_dir()


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
