"""Countries to simulate: names, ISO codes and the split registry's named country sets (C1, C2, C3, C'1)."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

from omegaconf import OmegaConf

from survey_sim.data.countries import resolve_country
from survey_sim.errors import ConfigError
from survey_sim.paths import config_dir


def country_sets(registry: str | Path | None = None) -> dict[str, list[str]]:
    """The named country sets (C1, C2, C3, C'1, ...) of a split registry file (default: the paper's)."""
    registry = config_dir() / "data" / "registry" / "paper.yaml" if registry is None else registry
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
