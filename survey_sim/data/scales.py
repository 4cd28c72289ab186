"""Ordinal metadata of survey questions: which options lie on the scale, in which order, and which
questions have no scale at all (nominal). Distances (`emd`, the `wasserstein` loss) use it.

Rule for non-substantive options (`non_substantive`), from an English option label, case-insensitive: the
label says the respondent gives no position on the scale: "hard to say", "don't know" / "do not know",
"not sure", "can't say" / "cannot say" / "can't choose", "no answer", "refused", "not applicable", "other" /
"other answer", "not allowed to vote", a spontaneous answer outside the read-out scale ("... (spontaneous)"),
or a placeholder refusal of the question's premise ("I am not [nationality]"). A middle category that is a
position ("Neither agree nor disagree", "Don't mind", "Fair") is substantive.

WVS-7 questions (`WVS_SCALES`), recorded from the English option texts of the paper's item files by the rule
above (`tests/data/test_scales.py` re-derives them from the real files) and from the WVS-7 questionnaire,
so that Chinese items, whose labels the rule cannot read, get the same metadata by question id:

- non-substantive options (original option index): Q111 "Other answer"; Q119 "Hard to say" (listed first,
  as the paper's (X)); Q122-Q129 "Hard to say" (between "Disagree" and "Agree"); Q221-Q222 "Not allowed to
  vote"; Q241-Q249 "It is against democracy (spontaneous)" (the paper's (X), listed first); Q254 "I am not
  [nationality]".
- nominal questions: Q91-Q93 (knowledge questions: countries, cities, organisations' aims) and Q152-Q157
  (the most important of four national goals: unordered alternatives).
- an order that is not the listed one: Q56 "Better off", "Worse off", "Or about the same" (scale: better,
  same, worse).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence

from survey_sim.data.item import SurveyItem

log = logging.getLogger(__name__)

NON_SUBSTANTIVE = re.compile(
    r"hard to say|\bdon'?t know\b|\bdo not know\b|\bnot sure\b|\bcan'?t say\b|\bcannot say\b|\bcan'?t choose\b"
    r"|\bno answer\b|\brefused?\b|\bnot applicable\b|^other( answer)?$|\bnot allowed to vote\b"
    r"|\(spontaneous\)|^i am not \[", re.IGNORECASE)


def non_substantive(label: str) -> bool:
    """Whether an English option label is a non-substantive answer (see the module's rule)."""
    return bool(NON_SUBSTANTIVE.search(label.strip()))


def positions_from_labels(labels: Sequence[str]) -> tuple[float | None, ...]:
    """Scale positions 0, 1, ... of the substantive options in their listed order; None for the others."""
    out, next_position = [], 0
    for label in labels:
        if non_substantive(label):
            out.append(None)
        else:
            out.append(float(next_position))
            next_position += 1
    return tuple(out)


def _qids(*spans: tuple[int, int]) -> list[str]:
    return [str(q) for a, b in spans for q in range(a, b + 1)]


#: question id -> (non-substantive original option indices, nominal, scale order of the substantive
#: options when not the listed one: the listed substantive options' positions)
WVS_SCALES: dict[str, tuple[tuple[int, ...], bool, tuple[int, ...] | None]] = {
    "111": ((2,), False, None),
    "119": ((0,), False, None),
    **{q: ((1,), False, None) for q in _qids((122, 129))},
    **{q: ((3,), False, None) for q in _qids((221, 222))},
    **{q: ((0,), False, None) for q in _qids((241, 249))},
    "254": ((4,), False, None),
    **{q: ((), True, None) for q in _qids((91, 93), (152, 157))},
    "56": ((), False, (0, 2, 1)),
}
NOMINAL_WVS = sorted((q for q, (_, nominal, _) in WVS_SCALES.items() if nominal), key=int)
NON_SUBSTANTIVE_FIRST_WVS = sorted((q for q, (idx, _, _) in WVS_SCALES.items() if 0 in idx), key=int)


def wvs_scale(item: SurveyItem) -> SurveyItem | None:
    """The item with its scale metadata: English labels by the rule (plus WVS_SCALES' nominal flag and
    order), other languages by WVS_SCALES alone; None when the recorded metadata does not fit the item's
    options (another questionnaire version)."""
    skip, nominal, order = WVS_SCALES.get(str(item.question_id), ((), False, None))
    k = item.num_options
    if item.language == "en":
        original = [item.options[item.option_order.index(j)] for j in range(k)]
        skip = tuple(j for j, label in enumerate(original) if non_substantive(label))
    substantive = [j for j in range(k) if j not in skip]
    ranks = order if order is not None else range(len(substantive))
    if len(ranks) != len(substantive) or max(skip, default=0) >= k or len(substantive) < 2:
        return None
    scale: list[float | None] = [None] * k
    for j, rank in zip(substantive, ranks):
        scale[j] = float(rank)
    return item.with_(scale=tuple(scale), ordinal=not nominal)


def with_wvs_scales(items: Iterable[SurveyItem], where: str = "") -> list[SurveyItem]:
    """Every item with its scale metadata (`wvs_scale`); an item it does not fit keeps positions 0..K-1 and
    is counted in a warning."""
    out, misfits = [], []
    for item in items:
        annotated = wvs_scale(item)
        if annotated is None:
            misfits.append(item.question_id)
        out.append(annotated or item)
    if misfits:
        log.warning("%s: the recorded scale metadata does not fit the options of %d item(s) (questions %s); "
                    "their distances use positions 0..K-1 in the listed order", where or "items", len(misfits),
                    sorted(set(misfits))[:10])
    return out
