"""Config values as plain Python: one helper shared by the data and model config checks."""

from __future__ import annotations

from collections.abc import Mapping

from omegaconf import OmegaConf


def plain(value):
    """A plain Python copy of an OmegaConf node (resolved), a shallow dict copy of a mapping, else the value."""
    if OmegaConf.is_config(value):
        return OmegaConf.to_container(value, resolve=True)
    return dict(value) if isinstance(value, Mapping) else value
