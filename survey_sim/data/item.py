"""`SurveyItem`: one (group, question) with its options and the human answer distribution."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from survey_sim.errors import SurveyDataError

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class SurveyItem:
    """One survey question asked of one group, with the human answer distribution.

    `distribution` is aligned with `options` and `letters` and sums to 1 (it is
    normalised on construction). `prompt_group` is the country named in the prompt:
    it equals `country` unless a country-swap control replaced it. `option_order[i]`
    is the index, in the original item, of the option now at position i (identity
    unless the options were shuffled), so predictions can be mapped back.
    `transforms` records every transform applied, in order.

    A subgroup item (respondents of one country sharing attribute values, e.g. women aged 18-29) has
    `attributes`, the (attribute, value) pairs in words, and a `group` naming country and attributes
    (`survey_sim.data.subgroups.group_label`); `country` is the country (it equals `group` for a country
    item). `n_respondents` counts the respondents with a valid answer; `n_effective` is the effective
    sample size of the distribution (Kish's, under weights; the count when unweighted; None if unknown).
    `country_distribution` is a subgroup item's whole-country distribution over the ORIGINAL option order
    (normalised; transforms leave it as it is), or None.
    Scale metadata (used by `emd` and the `wasserstein` loss): `ordinal` says whether the options form an
    ordered scale (False: nominal, no distances); `scale[j]` is the scale position of ORIGINAL option j, or
    None for a non-substantive option ("Hard to say", "Don't know", ...) that lies outside the scale;
    empty means positions 0..K-1 in the original order. Indexed by original option, it needs no change
    when transforms reorder the options.
    """

    group: str
    question_id: str
    question: str
    options: tuple[str, ...]
    letters: tuple[str, ...]
    distribution: tuple[float, ...]
    language: str = "en"
    split: str = ""
    source: str = ""
    n_respondents: float | None = None
    ordinal: bool = True
    prompt_group: str = ""
    option_order: tuple[int, ...] = ()
    transforms: tuple[str, ...] = ()
    flags: tuple[str, ...] = field(default=())
    country: str = ""
    attributes: tuple[tuple[str, str], ...] = ()
    n_effective: float | None = None
    country_distribution: tuple[float, ...] | None = None
    scale: tuple[float | None, ...] = field(default=())

    def __post_init__(self) -> None:
        where = f"item ({self.group!r}, question {self.question_id!r})"

        def fail(msg: str, fld: str) -> None:
            raise SurveyDataError(f"{where}: {msg}", field=fld)

        set_ = object.__setattr__
        set_(self, "options", tuple(self.options))
        set_(self, "letters", tuple(self.letters))
        set_(self, "transforms", tuple(self.transforms))
        set_(self, "flags", tuple(self.flags))
        set_(self, "attributes", tuple((str(k), str(v)) for k, v in self.attributes))
        if not self.country:
            set_(self, "country", self.group)
        if not str(self.group).strip():
            fail("group is empty", "group")
        if not str(self.question_id).strip():
            fail("question id is empty", "question_id")
        k = len(self.options)
        if k < 2:
            fail(f"needs at least 2 options, got {k}", "options")
        if k > len(LETTERS):
            fail(f"has {k} options, more than the {len(LETTERS)} letters available", "options")
        if any(not str(o).strip() for o in self.options):
            fail("an option label is empty", "options")
        if len(self.letters) != k:
            fail(f"{len(self.letters)} letters for {k} options", "letters")
        if len(set(self.letters)) != k:
            fail(f"duplicate option letters {self.letters}", "letters")
        if any(len(x) != 1 or x not in LETTERS for x in self.letters):
            fail(f"option letters must be single capital letters, got {self.letters}", "letters")
        if len(self.distribution) != k:
            fail(f"distribution has {len(self.distribution)} values for {k} options", "distribution")
        dist = tuple(float(p) for p in self.distribution)
        if any(not math.isfinite(p) for p in dist):
            fail(f"distribution has a non-finite value {dist}", "distribution")
        if any(p < 0 for p in dist):
            fail(f"distribution has a negative value {dist}", "distribution")
        total = sum(dist)
        if total <= 0:
            fail("distribution sums to zero", "distribution")
        set_(self, "distribution", tuple(p / total for p in dist))
        if self.language not in ("en", "zh"):
            fail(f"unknown language {self.language!r} (expected 'en' or 'zh')", "language")
        if self.n_respondents is not None and not self.n_respondents >= 0:
            fail(f"respondent count must be >= 0, got {self.n_respondents}", "n_respondents")
        if self.country_distribution is not None:
            whole = tuple(float(p) for p in self.country_distribution)
            if len(whole) != k or any(not math.isfinite(p) or p < 0 for p in whole) or sum(whole) <= 0:
                fail(f"country_distribution {whole} is not a distribution over the {k} options",
                     "country_distribution")
            set_(self, "country_distribution", tuple(p / sum(whole) for p in whole))
        if self.n_effective is not None and not self.n_effective >= 0:
            fail(f"effective sample size must be >= 0, got {self.n_effective}", "n_effective")
        if not self.prompt_group:
            set_(self, "prompt_group", self.country)
        order = tuple(int(i) for i in self.option_order) if self.option_order else tuple(range(k))
        if sorted(order) != list(range(k)):
            fail(f"option_order {order} is not a permutation of 0..{k - 1}", "option_order")
        set_(self, "option_order", order)
        scale = tuple(None if x is None else float(x) for x in self.scale)
        if scale and len(scale) != k:
            fail(f"scale has {len(scale)} positions for {k} options", "scale")
        if any(x is not None and not math.isfinite(x) for x in scale):
            fail(f"scale has a non-finite position {scale}", "scale")
        set_(self, "scale", scale)

    def scale_positions(self) -> tuple[float | None, ...]:
        """Scale position of each option in the ORIGINAL order (None: non-substantive)."""
        return self.scale or tuple(float(j) for j in range(self.num_options))

    @property
    def num_options(self) -> int:
        return len(self.options)

    @property
    def key(self) -> tuple[str, str, str]:
        """(group, question id, language): unique within a split."""
        return (self.group, self.question_id, self.language)

    def with_(self, **changes) -> SurveyItem:
        """A copy with fields changed (validated again)."""
        return replace(self, **changes)

    def to_original_order(self, probs):
        """Map a distribution over the current option order back to the original order."""
        out = [0.0] * self.num_options
        for pos, orig in enumerate(self.option_order):
            out[orig] = float(probs[pos])
        return out
