"""Respondent attributes that define subgroups within a country (sex, age band, education, settlement, ...).

An attribute is read from one column of a respondent file and maps each respondent to a value in words:
- categorical: `values` maps answer codes to words; several codes may share a word (grouped levels);
- banded: `edges` are increasing lower bounds of bands over a number (an age): edges [18, 30, 50] give the
  bands "18-29", "30-49" and "50+"; values below the first edge belong to no band.

Missing (empty) and negative codes, codes without a word and numbers below the first band are no value:
such a respondent is left out of the attribute's groups (a counted skip), never a group of its own.
Attributes are declared in config (`attributes` of conf/data/wvs_raw.yaml) as
{name: {column, label, values | edges}}; `label` is the word used in item names (default: the name).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise

import numpy as np

from survey_sim.errors import ConfigError

NO_VALUE = -1


@dataclass(frozen=True)
class Attribute:
    """One grouping attribute: its config name, file column, word for item names and its values."""

    name: str
    column: str
    label: str
    values: tuple[tuple[int, str], ...] = ()  # (code, value in words), categorical attributes
    edges: tuple[float, ...] = ()  # increasing band lower bounds, banded attributes

    @property
    def levels(self) -> tuple[str, ...]:
        """The attribute's values in words, in order (codes' order or band order), each once."""
        if self.edges:
            return tuple(band_labels(self.edges))
        return tuple(dict.fromkeys(word for _, word in self.values))

    def level_of(self, codes: np.ndarray) -> np.ndarray:
        """Index into `levels` of each code (float array, NaN for empty), NO_VALUE where there is none."""
        codes = np.asarray(codes, dtype=np.float64)
        out = np.full(codes.shape, NO_VALUE, dtype=np.int64)
        valid = np.isfinite(codes) & (codes >= 0)
        if self.edges:
            band = np.searchsorted(np.asarray(self.edges), codes, side="right") - 1
            out[valid & (band >= 0)] = band[valid & (band >= 0)]
            return out
        index = {word: i for i, word in enumerate(self.levels)}
        for code, word in self.values:
            out[valid & (codes == code)] = index[word]
        return out


def band_labels(edges: Sequence[float]) -> list[str]:
    """Words of the bands of integer lower bounds: [18, 30, 50] -> ["18-29", "30-49", "50+"]."""
    def fmt(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else f"{x:g}"

    labels = []
    for lo, hi in pairwise(edges):
        whole = float(lo).is_integer() and float(hi).is_integer()
        labels.append(f"{fmt(lo)}-{fmt(hi - 1)}" if whole else f"{fmt(lo)}-<{fmt(hi)}")
    labels.append(f"{fmt(edges[-1])}+")
    return labels


def check_edges(name: str, edges) -> tuple[float, ...]:
    """Band edges as floats; ConfigError unless a non-empty, strictly increasing list of finite numbers."""
    if isinstance(edges, (str, bytes)) or not isinstance(edges, Sequence) or not edges:
        raise ConfigError(f"attribute {name!r}: edges must be a non-empty list of numbers, got {edges!r}")
    values = []
    for e in edges:
        if isinstance(e, bool) or not isinstance(e, (int, float)) or not math.isfinite(e):
            raise ConfigError(f"attribute {name!r}: edge {e!r} is not a finite number (edges {list(edges)})")
        values.append(float(e))
    if any(b <= a for a, b in pairwise(values)):
        raise ConfigError(f"attribute {name!r}: edges {list(edges)} are not strictly increasing")
    return tuple(values)


def parse_attribute(name: str, spec: Mapping) -> Attribute:
    """One attribute from its config mapping; ConfigError naming the attribute and field when malformed."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"attribute {name!r}: expected a mapping with column and values or edges, got {spec!r}")
    unknown = set(spec) - {"column", "label", "values", "edges"}
    if unknown:
        raise ConfigError(f"attribute {name!r}: unknown field(s) {sorted(unknown)}")
    column = spec.get("column")
    if not isinstance(column, str) or not column.strip():
        raise ConfigError(f"attribute {name!r}: column must be a column name, got {column!r}")
    label = spec.get("label", name)
    if not isinstance(label, str) or not label.strip():
        raise ConfigError(f"attribute {name!r}: label must be a non-empty string, got {label!r}")
    has_values, has_edges = spec.get("values") is not None, spec.get("edges") is not None
    if has_values == has_edges:
        raise ConfigError(f"attribute {name!r}: give exactly one of values (code: word) or edges (bands)")
    if has_edges:
        return Attribute(name, column.strip(), label.strip(), edges=check_edges(name, spec["edges"]))
    values = spec["values"]
    if not isinstance(values, Mapping) or not values:
        raise ConfigError(f"attribute {name!r}: values must be a non-empty mapping code: word, got {values!r}")
    pairs = []
    for code, word in values.items():
        try:
            number = int(code)
        except (TypeError, ValueError):
            raise ConfigError(f"attribute {name!r}: code {code!r} is not an integer") from None
        if number < 0:
            raise ConfigError(f"attribute {name!r}: code {number} is negative (negative codes are missing answers)")
        if not isinstance(word, str) or not word.strip():
            raise ConfigError(f"attribute {name!r}: code {number} needs a value in words, got {word!r}")
        pairs.append((number, word.strip()))
    return Attribute(name, column.strip(), label.strip(), values=tuple(pairs))


def select_attributes(config: Mapping, group_by: Sequence[str]) -> list[Attribute]:
    """The attributes named in `group_by`, in that order, from the config's attribute mapping."""
    names = [str(n).strip() for n in group_by]
    if any(not n for n in names) or len(set(names)) != len(names):
        raise ConfigError(f"group_by {list(group_by)}: names must be non-empty and distinct")
    unknown = [n for n in names if n not in config]
    if unknown:
        raise ConfigError(f"unknown attribute(s) {unknown} in group_by; defined attributes: {sorted(config)}")
    return [parse_attribute(n, config[n]) for n in names]


def group_label(country: str, attributes: Sequence[tuple[str, str]]) -> str:
    """The name of a subgroup: 'Japan | sex: female, age: 18-29' (the country alone without attributes)."""
    if not attributes:
        return country
    return f"{country} | " + ", ".join(f"{label}: {value}" for label, value in attributes)


def kish_effective_n(weight_sum: np.ndarray, weight_square_sum: np.ndarray) -> np.ndarray:
    """Kish's effective sample size (sum w)^2 / sum w^2 (0 where there are no weights)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        n = np.where(weight_square_sum > 0, weight_sum ** 2 / weight_square_sum, 0.0)
    return n
