"""A small synthetic survey (invented countries and questions) for demos and tests that need no data files.

Every country has a position on a few latent value dimensions; every question has loadings on those
dimensions and ordered thresholds. Answers follow an ordered-logit model,
P(answer <= k) = sigmoid(threshold_k - loading . position), so a distribution depends on both the question
(its thresholds: the question prior) and the country (its position). Distributions are sampled from a
finite number of simulated respondents, like a real survey. Everything is marked synthetic: item.source is
"synthetic-demo" and every item carries the flag "synthetic".

With `group_by` (attribute names of conf/data/attributes/wvs7.yaml: sex, age_band, education,
settlement), the survey is drawn respondent by respondent instead (`make_demo_respondents`): each
respondent has a sex, an age, an education level and a settlement, coded as in WVS-7 (Q260, Q262, Q275,
H_URBRURAL, with some missing codes), a design weight and answers from the same ordered logit with known
subgroup effects added to the country's position (`SUBGROUP_EFFECT_SD`). The WVS builder
(`survey_sim.data.sources.wvs_raw.items_from_respondents`) turns the rows into one item per (country,
subgroup, question), and `DemoRespondents.true_distribution` gives each cell's expected distribution, the
truth a builder must recover.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from survey_sim.data.item import LETTERS, SurveyItem
from survey_sim.errors import ConfigError

SOURCE = "synthetic-demo"
FLAG = "synthetic"
SPLITS = ("train", "val", "test-unseen-country", "test-unseen-question", "test-unseen-both")
DEV_SPLIT = "dev"  # returned only with n_dev_countries > 0: it repeats training items

# Invented country names (none is a real country).
COUNTRIES = (
    "Avaloria", "Brevania", "Caldoria", "Dunmark", "Estoria", "Falkreach", "Gorvania", "Halvoria",
    "Istrava", "Jorvik Isles", "Kelmaria", "Lunestra", "Morvania", "Norvaland", "Ostravia", "Pellucia",
    "Quorinth", "Rastovia", "Sylvandor", "Tarvonia",
)

AGREE4 = ("Strongly agree", "Agree", "Disagree", "Strongly disagree")
AGREE5 = ("Strongly agree", "Agree", "Neither agree nor disagree", "Disagree", "Strongly disagree")
IMPORTANT = ("Very important", "Rather important", "Not very important", "Not at all important")
JUSTIFIABLE = ("Always justifiable", "Sometimes justifiable", "Never justifiable")
CONFIDENCE = ("A great deal", "Quite a lot", "Not very much", "None at all")
OFTEN = ("Very often", "Often", "Sometimes", "Rarely", "Never")

# (question template, ordinal answer scale from one pole to the other, topics)
QUESTION_BANK = (
    ("How much do you agree with this statement: {}?", AGREE4, (
        "people should help their neighbours", "tradition matters more than innovation",
        "children should obey their parents", "most strangers can be trusted",
        "hard work usually brings success", "the rich should pay more tax")),
    ("How much do you agree with this statement: {}?", AGREE5, (
        "religion should guide public life", "immigrants enrich the culture",
        "protecting the environment comes before economic growth", "elections in this country are fair",
        "science will make life better", "private ownership of business should increase")),
    ("How important is {} in your life?", IMPORTANT, (
        "family", "friends", "leisure time", "politics", "work", "religion", "learning new skills")),
    ("Can {} always be justified, sometimes be justified, or never be justified?", JUSTIFIABLE, (
        "claiming benefits one is not entitled to", "avoiding a fare on public transport",
        "divorce", "cheating on taxes", "accepting a bribe")),
    ("How much confidence do you have in {}?", CONFIDENCE, (
        "the police", "the courts", "the national press", "the armed forces", "charities",
        "the local council", "large companies", "universities")),
    ("How often do you {}?", OFTEN, (
        "discuss politics with friends", "think about the meaning of life", "volunteer for a good cause",
        "worry about the future of the country", "attend local festivals", "save part of your income")),
)
QUESTIONS = tuple((template.format(topic), scale) for template, scale, topics in QUESTION_BANK
                  for topic in topics)

# Standard deviation of each question's subgroup effects on the logit scale: being female, 20 years of
# age, one education level up (of three), living in a rural place.
SUBGROUP_EFFECT_SD = 0.7
EDUCATION_CODE_PROBS = (0.04, 0.12, 0.16, 0.25, 0.06, 0.07, 0.18, 0.10, 0.02)  # ISCED 0..8
MISSING_RATE = 0.02  # missing attribute codes (-1, -2) and "don't know" answers (-1)
WEIGHTS = ("ones", "skewed")


@dataclass(frozen=True)
class _Design:
    """Countries, questions and split membership of a demo survey (shared by the item and respondent forms)."""

    countries: list[str]
    positions: np.ndarray  # [country, dim]
    questions: list[tuple[str, str, tuple[str, ...], np.ndarray]]  # (id, text, options, thresholds)
    loadings: np.ndarray  # [question, dim]
    unseen_c: set[int]
    val_q: set[int]
    test_q: set[int]

    def split_of(self, c: int, q: int) -> str | None:
        """The split of (country c, question q); unseen countries x validation questions belong to none."""
        if c in self.unseen_c:
            return "test-unseen-both" if q in self.test_q else (None if q in self.val_q else "test-unseen-country")
        return "val" if q in self.val_q else ("test-unseen-question" if q in self.test_q else "train")


def _design(rng: np.random.Generator, n_countries: int, n_questions: int, n_dims: int, unseen_country_frac: float,
            val_question_frac: float, test_question_frac: float) -> _Design:
    if not 4 <= n_countries <= len(COUNTRIES):
        raise ConfigError(f"demo survey: n_countries must be in 4..{len(COUNTRIES)}, got {n_countries}")
    if not 6 <= n_questions <= len(QUESTIONS):
        raise ConfigError(f"demo survey: n_questions must be in 6..{len(QUESTIONS)}, got {n_questions}")
    if n_dims < 1:
        raise ConfigError(f"demo survey: n_dims must be >= 1, got {n_dims}")
    country_idx = rng.permutation(len(COUNTRIES))[:n_countries]
    countries = [COUNTRIES[i] for i in sorted(country_idx)]
    positions = rng.normal(0.0, 1.0, size=(n_countries, n_dims))

    question_idx = rng.permutation(len(QUESTIONS))[:n_questions]
    loadings = rng.normal(0.0, 0.7, size=(n_questions, n_dims))
    loadings[:, 0] += 1.0  # questions lean the same way on the first dimension: a country main effect
    shifts = rng.normal(0.0, 1.0, size=n_questions)  # the question prior: where the answers centre
    questions = []
    for q in range(n_questions):
        text, options = QUESTIONS[question_idx[q]]
        gaps = rng.uniform(0.8, 1.8, size=len(options) - 1)
        thresholds = np.cumsum(gaps) - gaps.sum() / 2 + shifts[q]
        questions.append((f"D{q + 1}", text, options, thresholds))

    n_unseen_c = max(1, round(n_countries * unseen_country_frac))
    n_val_q = max(1, round(n_questions * val_question_frac))
    n_test_q = max(1, round(n_questions * test_question_frac))
    c_order, q_order = rng.permutation(n_countries), rng.permutation(n_questions)
    return _Design(countries, positions, questions, loadings, set(c_order[:n_unseen_c].tolist()),
                   set(q_order[:n_val_q].tolist()), set(q_order[n_val_q:n_val_q + n_test_q].tolist()))


def _answer_probs(thresholds: np.ndarray, eta: np.ndarray) -> np.ndarray:
    """Ordered-logit answer probabilities [..., K] for latent positions `eta` [...]."""
    eta = np.asarray(eta, dtype=np.float64)[..., None]
    cdf = 1.0 / (1.0 + np.exp(-(thresholds - eta)))
    cdf = np.concatenate([cdf, np.ones(eta.shape)], axis=-1)
    probs = np.diff(cdf, prepend=0.0, axis=-1)
    return probs / probs.sum(axis=-1, keepdims=True)


def make_demo_survey(seed: int = 0, n_countries: int = 12, n_questions: int = 30, *, n_dims: int = 3,
                     n_respondents: int = 1000, unseen_country_frac: float = 0.25,
                     val_question_frac: float = 0.15, test_question_frac: float = 0.2,
                     group_by: Sequence[str] = (), attributes: Mapping | None = None, weighted: bool = False,
                     weights: str = "skewed", min_cell: int = 100, n_dev_countries: int = 0
                     ) -> dict[str, list[SurveyItem]]:
    """A deterministic synthetic survey split into train, val and three unseen test splits.

    Countries are split into seen and unseen, questions into train, validation and test questions:
    train = seen countries x train questions; val = seen countries x validation questions (new questions
    about known countries, like the paper's C1 x Q2); test-unseen-country = unseen countries x train
    questions; test-unseen-question = seen countries x test questions; test-unseen-both = unseen countries
    x test questions. With `n_dev_countries` > 0 also dev = the training items of the first `n_dev_countries`
    training countries by name (they stay in train too; `data.dev_split=dev` takes them out of it, see
    `survey_sim.data.holdouts.hold_out_dev`).

    With `group_by` (names in `attributes`, a mapping of attribute definitions), `n_respondents` per country
    are drawn (`make_demo_respondents`) and each item is one (country, subgroup, question) cell built by the
    WVS builder (`weighted`: with the design weights; cells under `min_cell` respondents are skipped).
    """
    if n_respondents < 1:
        raise ConfigError(f"demo survey: n_respondents must be >= 1, got {n_respondents}")
    if group_by:
        return _with_dev(_subgroup_survey(
            make_demo_respondents(seed, n_countries, n_questions, n_dims=n_dims, n_respondents=n_respondents,
                                  unseen_country_frac=unseen_country_frac, val_question_frac=val_question_frac,
                                  test_question_frac=test_question_frac, weights=weights),
            group_by, attributes, weighted, min_cell), n_dev_countries)
    rng = np.random.default_rng(seed)
    design = _design(rng, n_countries, n_questions, n_dims, unseen_country_frac, val_question_frac,
                     test_question_frac)
    splits: dict[str, list[SurveyItem]] = {name: [] for name in SPLITS}
    for c, country in enumerate(design.countries):
        for q, (qid, text, options, thresholds) in enumerate(design.questions):
            probs = _answer_probs(thresholds, float(design.loadings[q] @ design.positions[c]))
            counts = rng.multinomial(n_respondents, probs)
            split = design.split_of(c, q)
            if split is None:
                continue
            splits[split].append(SurveyItem(
                group=country, question_id=qid, question=text, options=options,
                letters=tuple(LETTERS[:len(options)]), distribution=tuple(counts / n_respondents),
                language="en", split=split, source=SOURCE, n_respondents=float(n_respondents),
                ordinal=True, flags=(FLAG,)))
    return _with_dev(splits, n_dev_countries)


def _with_dev(splits: dict[str, list[SurveyItem]], n_dev_countries: int) -> dict[str, list[SurveyItem]]:
    """`splits` with the dev split (when n_dev_countries > 0): the training items of the first
    `n_dev_countries` training countries by name."""
    seen = sorted({it.country for it in splits["train"]})
    if not 0 <= n_dev_countries < len(seen):
        raise ConfigError(f"demo survey: n_dev_countries must be in 0..{len(seen) - 1} (leaving a training "
                          f"country), got {n_dev_countries}")
    if n_dev_countries:
        dev = set(seen[:n_dev_countries])
        splits[DEV_SPLIT] = [it.with_(split=DEV_SPLIT) for it in splits["train"] if it.country in dev]
    return splits


@dataclass(frozen=True)
class DemoRespondents:
    """Respondent rows of a demo survey in the WVS-7 layout, with what generated them.

    `frame`: B_COUNTRY (codes 1..n, named by `country_names`), W_WEIGHT, Q260 (sex: 1 male, 2 female),
    Q262 (age in years), Q275 (ISCED 0-8), H_URBRURAL (1 urban, 2 rural), and QD<k> per question (codes
    1..K; -1 don't know). `book`: the questions as `read_questionnaire` gives them. `probs[q]`: each
    respondent's answer probabilities [respondent, K] for question index q.
    """

    frame: pd.DataFrame
    book: list[dict]
    country_names: dict[int, str]
    probs: list[np.ndarray]
    design: _Design

    def true_distribution(self, mask, question_id: str, weighted: bool = False) -> np.ndarray:
        """The expected answer distribution of the respondents in `mask` (a boolean row mask): the mean
        (W_WEIGHT-weighted when `weighted`) of their answer probabilities, among those who answer (the
        "don't know" answers are drawn independently of the respondent)."""
        q = [b["id"] for b in self.book].index(question_id)
        mask = np.asarray(mask, dtype=bool)
        w = self.frame["W_WEIGHT"].to_numpy() if weighted else np.ones(len(self.frame))
        return (self.probs[q][mask] * w[mask, None]).sum(axis=0) / w[mask].sum()


def make_demo_respondents(seed: int = 0, n_countries: int = 12, n_questions: int = 30, *, n_dims: int = 3,
                          n_respondents: int = 1000, unseen_country_frac: float = 0.25,
                          val_question_frac: float = 0.15, test_question_frac: float = 0.2,
                          weights: str = "skewed") -> DemoRespondents:
    """`n_respondents` synthetic respondents per country with known subgroup effects (see the module doc).

    Respondent r of country c answers question q by the ordered logit with position
    loading_q . position_c + b_q . x_r, where x_r = (female, (age - 45) / 20, education level - 1 (0, 1, 2
    for the three ISCED groups), rural) and b_q ~ Normal(0, SUBGROUP_EFFECT_SD) per question. `weights`:
    "ones" (every W_WEIGHT 1) or "skewed" (rural respondents weigh about 3.5 times urban ones, with
    log-normal noise; mean 1 per country), so weighted and unweighted country distributions differ.
    """
    if weights not in WEIGHTS:
        raise ConfigError(f"demo survey: weights must be one of {WEIGHTS}, got {weights!r}")
    if n_respondents < 1:
        raise ConfigError(f"demo survey: n_respondents must be >= 1, got {n_respondents}")
    design = _design(np.random.default_rng(seed), n_countries, n_questions, n_dims, unseen_country_frac,
                     val_question_frac, test_question_frac)
    rng = np.random.default_rng([seed, 17])
    n = n_respondents * n_countries
    country = np.repeat(np.arange(n_countries), n_respondents)
    female = rng.random(n) < 0.5
    age = rng.integers(18, 86, size=n)
    education = rng.choice(len(EDUCATION_CODE_PROBS), size=n, p=EDUCATION_CODE_PROBS)
    level = np.select([education <= 2, education <= 4], [0, 1], 2)
    rural = rng.random(n) < 0.35
    covariates = np.stack([female, (age - 45) / 20.0, level - 1.0, rural], axis=1).astype(np.float64)
    effects = rng.normal(0.0, SUBGROUP_EFFECT_SD, size=(n_questions, covariates.shape[1]))
    if weights == "skewed":
        w = np.where(rural, 2.0, 0.6) * rng.lognormal(0.0, 0.3, size=n)
        w /= np.bincount(country, weights=w)[country] / n_respondents
    else:
        w = np.ones(n)

    def with_missing(codes: np.ndarray, missing: tuple[int, ...]) -> np.ndarray:
        out = codes.astype(np.int64)
        gone = rng.random(n) < MISSING_RATE
        out[gone] = rng.choice(missing, size=int(gone.sum()))
        return out

    columns = {"B_COUNTRY": country + 1, "W_WEIGHT": w, "Q260": with_missing(np.where(female, 2, 1), (-1, -2)),
               "Q262": with_missing(age, (-2, -5)), "Q275": with_missing(education, (-1, -2)),
               "H_URBRURAL": with_missing(np.where(rural, 2, 1), (-5,))}
    book, probs = [], []
    for q, (qid, text, options, thresholds) in enumerate(design.questions):
        p = _answer_probs(thresholds, (design.positions[country] * design.loadings[q]).sum(axis=1)
                          + covariates @ effects[q])
        answers = (p.cumsum(axis=1) < rng.random((n, 1))).sum(axis=1) + 1
        answers = np.minimum(answers, len(options))
        answers[rng.random(n) < MISSING_RATE] = -1
        columns[f"Q{qid}"] = answers
        probs.append(p)
        book.append({"id": qid, "split": "", "question": text, "options": options,
                     "letters": tuple(LETTERS[:len(options)]), "flags": (FLAG,)})
    return DemoRespondents(pd.DataFrame(columns), book, {i + 1: c for i, c in enumerate(design.countries)},
                           probs, design)


def _subgroup_survey(respondents: DemoRespondents, group_by: Sequence[str], attributes: Mapping | None,
                     weighted: bool, min_cell: int) -> dict[str, list[SurveyItem]]:
    """The demo's (country, subgroup, question) items from its respondent rows, in the demo's splits."""
    from survey_sim.data.sources.wvs_raw import items_from_respondents
    from survey_sim.data.subgroups import select_attributes

    if not attributes:
        raise ConfigError("demo survey: group_by needs the attribute definitions (data.demo.attributes)")
    result = items_from_respondents(
        respondents.frame, respondents.book, "en", file="synthetic demo respondents", source=SOURCE,
        weighted=weighted, group_by=select_attributes(attributes, group_by), min_cell=min_cell,
        country_names=respondents.country_names)
    design = respondents.design
    qindex = {b["id"]: i for i, b in enumerate(respondents.book)}
    splits: dict[str, list[SurveyItem]] = {name: [] for name in SPLITS}
    for item in result.items:
        split = design.split_of(design.countries.index(item.country), qindex[item.question_id])
        if split is not None:
            splits[split].append(item.with_(split=split))
    return splits
