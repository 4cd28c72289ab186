"""Item transforms: country-swap control, option shuffling, cyclic shifts, language selection.

Random transforms are deterministic per item: the generator is seeded from the configured seed mixed with
a stable hash of the item's key (never Python's salted `hash`), so an item gets the same transform
whatever its position or the other items. Every transform is recorded in `item.transforms`.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

from survey_sim.data.countries import canonical_country
from survey_sim.data.item import SurveyItem
from survey_sim.errors import ConfigError, SurveyDataError

log = logging.getLogger(__name__)


def stable_seed(*parts) -> int:
    """A 64-bit integer from `parts`, the same in every process and Python version."""
    text = "\x1f".join(str(p) for p in parts)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8"), digest_size=8).digest(), "big")


def _rng(seed: int, salt: str, item: SurveyItem) -> random.Random:
    return random.Random(stable_seed(seed, salt, *item.key))


def country_key(name: str) -> str:
    """The canonical country name, or the name itself for a group that is no country (the demo's)."""
    try:
        return canonical_country(name)
    except SurveyDataError:
        return name.strip()


def country_swap(items: Iterable[SurveyItem], countries: Sequence[str], seed: int) -> list[SurveyItem]:
    """The paper's [ctrl]: each prompt names a random other country of `countries`; the target is unchanged."""
    pool = sorted(set(countries))
    out = []
    for item in items:
        own = country_key(item.country)
        others = [c for c in pool if country_key(c) != own]
        if not others:
            raise ConfigError(f"country swap: no country other than {item.country!r} in the pool {pool}")
        other = _rng(seed, "country_swap", item).choice(others)
        out.append(item.with_(prompt_group=other, transforms=(*item.transforms, f"country_swap:{other}")))
    return out


def permute_options(item: SurveyItem, perm: Sequence[int], record: str) -> SurveyItem:
    """The item with the option now at position i taken from position perm[i]; letters stay in place."""
    perm = [int(p) for p in perm]
    if sorted(perm) != list(range(item.num_options)):
        raise ValueError(f"{perm} is not a permutation of 0..{item.num_options - 1}")
    return item.with_(
        options=tuple(item.options[p] for p in perm),
        distribution=tuple(item.distribution[p] for p in perm),
        option_order=tuple(item.option_order[p] for p in perm),
        transforms=(*item.transforms, record))


def shuffle_options(items: Iterable[SurveyItem], seed: int, epoch: int = 0) -> list[SurveyItem]:
    """Each item's options and distribution in a random order (the letters keep their positions).

    The order is drawn over the item's original options, from (seed, item key) and, for epoch > 0, the
    epoch: training re-draws it each epoch (see SurveyDataModule), whatever order the item holds now."""
    out = []
    for item in items:
        order = list(range(item.num_options))
        salt = "shuffle" if epoch == 0 else f"shuffle@{epoch}"
        _rng(seed, salt, item).shuffle(order)
        now = {original: position for position, original in enumerate(item.option_order)}
        record = "shuffle:" + ",".join(map(str, order)) + (f"@epoch{epoch}" if epoch else "")
        out.append(permute_options(item, [now[o] for o in order], record))
    return out


def cyclic_shift(item: SurveyItem, shift: int) -> SurveyItem:
    """The item with its options rotated: position i holds the option at position (i + shift) mod K."""
    k = item.num_options
    return permute_options(item, [(i + shift) % k for i in range(k)], f"cyclic_shift:{shift % k}")


# An option or question left in a Latin script (English) inside a translation.
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


def translate_items(items: Iterable[SurveyItem], entries: Mapping[str, Mapping], language: str
                    ) -> tuple[list[SurveyItem], Counter]:
    """Items in `language` from a translated questionnaire {question id: {question, options, letters}}.

    An item is translated only when its question has an entry with the same option letters and every
    text is really translated (an option or question identical to the English one and written in Latin
    letters counts as untranslated); otherwise it is left out and its reason counted.
    """
    out, reasons = [], Counter()
    for item in items:
        entry = entries.get(item.question_id)
        if entry is None:
            reasons["question not in the translated questionnaire"] += 1
            continue
        letters, options = tuple(entry["letters"]), tuple(entry["options"])
        if letters != item.letters:
            reasons[f"option letters differ ({''.join(letters)} vs {''.join(item.letters)})"] += 1
            continue
        texts = [(entry["question"], item.question), *zip(options, item.options)]
        if any(new.strip() == old.strip() and _LATIN_WORD.search(new) for new, old in texts):
            reasons["options or question left untranslated"] += 1
            continue
        out.append(item.with_(question=entry["question"], options=options, language=language,
                              flags=(*item.flags, *entry.get("flags", ()))))
    return out, reasons


def select_language(items_en: Iterable[SurveyItem], items_lang: Iterable[SurveyItem], language: str
                    ) -> tuple[list[SurveyItem], dict]:
    """For each English item, its version in `language` (same group, question and option letters).

    An item without one is skipped and counted, never kept in English. The returned item keeps the
    English item's split, target, source and transforms and takes the translation's texts. The report
    has the counts and the skipped question ids.
    """
    items_en = list(items_en)
    if language == "en":
        return items_en, {"language": "en", "requested": len(items_en), "selected": len(items_en),
                          "skipped": 0, "skipped_questions": {}}
    by_key = {}
    for it in items_lang:
        if it.language == language:
            by_key.setdefault((country_key(it.group), it.question_id), it)
    out, skipped = [], Counter()
    for item in items_en:
        tr = by_key.get((country_key(item.group), item.question_id))
        if tr is None or tr.letters != item.letters:
            skipped[item.question_id] += 1
            continue
        out.append(item.with_(question=tr.question, options=tr.options, language=language,
                              flags=tuple(dict.fromkeys((*item.flags, *tr.flags)))))
    report = {"language": language, "requested": len(items_en), "selected": len(out),
              "skipped": sum(skipped.values()), "skipped_questions": dict(skipped)}
    if skipped:
        log.info("language %s: %d of %d items have no translation and were skipped (%d questions)",
                 language, report["skipped"], len(items_en), len(skipped))
    return out, report


def role_flag(value, key: str) -> bool:
    """A bool, or one entry of a {train: bool, eval: bool} mapping."""
    if isinstance(value, Mapping):
        return bool(value.get(key, False))
    return bool(value)


def apply_transforms(splits: Mapping[str, list[SurveyItem]], settings: Mapping) -> dict[str, list[SurveyItem]]:
    """The run's transforms, seeded by settings["seed"]: `control` (bool or {train, eval}) swaps countries,
    drawing from `control_countries` (default: every group of the splits); `shuffle` ({train, eval})
    shuffles options. The language is chosen when loading (see `load_splits`)."""
    get = settings.get
    seed = int(get("seed") or 0)
    control, shuffle = get("control") or False, get("shuffle") or {}
    pool = list(get("control_countries") or sorted({it.country for v in splits.values() for it in v}))
    out = {}
    for name, items in splits.items():
        role = "train" if name == "train" else "eval"
        items = list(items)
        if role_flag(control, role):
            items = country_swap(items, pool, seed)
        if role_flag(shuffle, role):
            items = shuffle_options(items, seed)
        out[name] = items
    return out
