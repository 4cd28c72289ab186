"""Items held out of training: subgroups (`holdout_groups`) and the dev split's countries x questions."""

from __future__ import annotations

import logging

from survey_sim.data.item import SurveyItem
from survey_sim.data.transforms import country_key
from survey_sim.errors import ConfigError

log = logging.getLogger(__name__)

HELDOUT_GROUP_SPLIT = "test-unseen-group"


def hold_out_groups(splits: dict[str, list[SurveyItem]], holdout: dict, train_key: str | None,
                    val_key: str | None) -> dict[str, list[SurveyItem]]:
    """Hold subgroups out of training: `holdout` maps attribute labels to a value or a list of values (every
    attribute given must match), and optionally `countries` to a list (countries x subgroups; default every
    country). Matching training items move to the split `test-unseen-group` (held-out groups x training
    questions); matching validation items are dropped (counted, logged), so that nothing fitted or
    selected sees the held-out groups; test splits keep them (the groups on unseen questions or countries).
    ConfigError if the holdout is malformed or matches no training item.
    """
    if not isinstance(holdout, dict) or not holdout:
        raise ConfigError(f"holdout_groups must map attribute labels to values, got {holdout!r}")
    if not train_key:
        raise ConfigError("holdout_groups needs a training split (train_split) to hold groups out of")
    conditions = {str(k): {str(v) for v in (vals if isinstance(vals, list) else [vals])}
                  for k, vals in holdout.items() if k != "countries"}
    countries = holdout.get("countries")
    country_set = None if countries is None else {country_key(str(c)) for c in countries}

    def held(item: SurveyItem) -> bool:
        attrs = dict(item.attributes)
        return (bool(item.attributes) and all(attrs.get(k) in vals for k, vals in conditions.items())
                and (country_set is None or country_key(item.country) in country_set))

    out = dict(splits)
    moved = [it for it in splits[train_key] if held(it)]
    if not moved:
        present = sorted({f"{k}: {v}" for it in splits[train_key] for k, v in it.attributes})
        raise ConfigError(f"holdout_groups {holdout} matches no training item; attribute values present: "
                          f"{present or 'none (the items have no subgroup attributes)'}")
    out[train_key] = [it for it in splits[train_key] if not held(it)]
    out[HELDOUT_GROUP_SPLIT] = moved
    if val_key and val_key in splits:
        out[val_key] = [it for it in splits[val_key] if not held(it)]
        log.info("holdout_groups %s: %d validation items of the held-out groups dropped", holdout,
                 len(splits[val_key]) - len(out[val_key]))
    log.info("holdout_groups %s: %d training items moved to %s", holdout, len(moved), HELDOUT_GROUP_SPLIT)
    return out


def hold_out_dev(splits: dict[str, list[SurveyItem]]) -> None:
    """Remove from the training split every item whose (country, question) the dev split holds, in place.

    The dev split (e.g. six C1 countries on the Q1 questions) lies inside the training split's countries and
    questions; held out, it measures generalisation to new countries without touching a test split.
    """
    if not splits.get("dev") or "train" not in splits:
        return
    held = {(country_key(it.group), it.question_id) for it in splits["dev"]}
    before = len(splits["train"])
    splits["train"] = [it for it in splits["train"] if (country_key(it.group), it.question_id) not in held]
    log.info("dev split: %d items of %d countries held out of the training split (%d -> %d items)",
             before - len(splits["train"]), len({k[0] for k in held}), before, len(splits["train"]))
