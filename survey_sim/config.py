"""Configs read outside a Hydra run: shipped config groups composed as Hydra does, config nodes as plain values.

A config may inherit others through its defaults list, as Hydra composes it: entries name configs of the same
group folder (`paper`; `_base_/model@_here_` for one in a subfolder, merged into the config's own node) and
`_self_`, the config itself (last when not listed). Hydra composes the same files the same way
(tests/test_config.py); this reader also works inside a running Hydra app and on files outside
conf/.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from survey_sim.errors import ConfigError
from survey_sim.paths import config_dir

SELF = "_self_"
HERE = "@_here_"


def group_options(group: str) -> list[str]:
    """The names of a group's shipped configs (conf/<group>/NAME.yaml)."""
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def group_config(group: str, name_or_path: str | os.PathLike) -> DictConfig:
    """A config of `group` by shipped name or as a .yaml file, its defaults list merged in (entries name configs
    of conf/<group>/); ConfigError naming close matches for an unknown name."""
    path = Path(name_or_path)
    folder = config_dir() / group
    if path.suffix in (".yaml", ".yml") and path.is_file():
        return _compose(path, folder)
    shipped = group_options(group)
    if str(name_or_path) not in shipped:
        near = difflib.get_close_matches(str(name_or_path), shipped, n=3)
        hint = f"; close matches: {', '.join(near)}" if near else ""
        raise ConfigError(f"unknown {group} config {str(name_or_path)!r}{hint}; shipped: {', '.join(shipped)} "
                          "(or give a .yaml file)")
    return _compose(folder / f"{name_or_path}.yaml", folder)


def _compose(path: Path, folder: Path) -> DictConfig:
    """The config in `path` merged over its defaults, in the order listed."""
    cfg = OmegaConf.load(path)
    defaults = list(cfg.pop("defaults", None) or [])
    if SELF not in defaults:
        defaults.append(SELF)
    merged = OmegaConf.create()
    for entry in defaults:
        name = entry.removesuffix(HERE) if isinstance(entry, str) else "@"
        if "@" in name or ("/" in name and not entry.endswith(HERE)):
            raise ConfigError(f"{path}: defaults entry {entry!r} is not supported; name a config of {folder} "
                              f"(one in a subfolder with {HERE}) or {SELF}")
        base = folder / f"{name}.yaml"
        if entry != SELF and not base.is_file():
            raise ConfigError(f"{path}: defaults entry {entry!r} names no config ({base} does not exist)")
        merged = OmegaConf.merge(merged, cfg if entry == SELF else _compose(base, folder))
    return merged


def plain(value):
    """A plain Python copy of an OmegaConf node (resolved), a shallow dict copy of a mapping, else the value."""
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return dict(value) if isinstance(value, Mapping) else value
