"""A small synthetic survey (invented countries and questions) for demos and tests that need no data files.

Every country has a position on a few latent value dimensions; every question has loadings on those
dimensions and ordered thresholds. Answers follow an ordered-logit model,
P(answer <= k) = sigmoid(threshold_k - loading . position), so a distribution depends on both the question
(its thresholds: the question prior) and the country (its position). Distributions are sampled from a
finite number of simulated respondents, like a real survey. Everything is marked synthetic: item.source is
"synthetic-demo" and every item carries the flag "synthetic".
"""

from __future__ import annotations

import numpy as np

from survey_sim.data.item import LETTERS, SurveyItem
from survey_sim.errors import ConfigError

SOURCE = "synthetic-demo"
FLAG = "synthetic"
SPLITS = ("train", "val", "dev", "test-unseen-country", "test-unseen-question", "test-unseen-both")

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

def make_demo_survey(seed: int = 0, n_countries: int = 12, n_questions: int = 30, *, n_dims: int = 3,
                     n_respondents: int = 1000, unseen_country_frac: float = 0.25,
                     val_question_frac: float = 0.15, test_question_frac: float = 0.2,
                     n_dev_countries: int = 2) -> dict[str, list[SurveyItem]]:
    """A deterministic synthetic survey split into train, val and three unseen test splits.

    Countries are split into seen and unseen, questions into train, validation and test questions:
    train = seen countries x train questions; val = seen countries x validation questions (new questions
    about known countries, like the paper's C1 x Q2); test-unseen-country = unseen countries x train
    questions; test-unseen-question = seen countries x test questions; test-unseen-both = unseen countries
    x test questions. dev = the training items of `n_dev_countries` seen countries (they stay in train too;
    `data.dev_split=dev` takes them out of it, see `survey_sim.data.splits.hold_out_dev`).
    """
    if not 4 <= n_countries <= len(COUNTRIES):
        raise ConfigError(f"demo survey: n_countries must be in 4..{len(COUNTRIES)}, got {n_countries}")
    if not 6 <= n_questions <= len(QUESTIONS):
        raise ConfigError(f"demo survey: n_questions must be in 6..{len(QUESTIONS)}, got {n_questions}")
    if not 0 <= n_dev_countries <= n_countries - max(1, round(n_countries * unseen_country_frac)) - 1:
        raise ConfigError(f"demo survey: n_dev_countries must leave at least one training country, got "
                          f"{n_dev_countries}")
    if n_dims < 1 or n_respondents < 1:
        raise ConfigError(f"demo survey: n_dims and n_respondents must be >= 1, got {n_dims}, {n_respondents}")
    rng = np.random.default_rng(seed)

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
    unseen_c = set(c_order[:n_unseen_c].tolist())
    dev_c = set(c_order[n_unseen_c:n_unseen_c + n_dev_countries].tolist())
    val_q = set(q_order[:n_val_q].tolist())
    test_q = set(q_order[n_val_q:n_val_q + n_test_q].tolist())

    splits: dict[str, list[SurveyItem]] = {name: [] for name in SPLITS}
    for c, country in enumerate(countries):
        for q, (qid, text, options, thresholds) in enumerate(questions):
            eta = float(loadings[q] @ positions[c])
            cdf = np.append(1.0 / (1.0 + np.exp(-(thresholds - eta))), 1.0)
            probs = np.diff(cdf, prepend=0.0)
            counts = rng.multinomial(n_respondents, probs / probs.sum())
            if c in unseen_c:
                split = "test-unseen-both" if q in test_q else (None if q in val_q else "test-unseen-country")
            else:
                split = "val" if q in val_q else ("test-unseen-question" if q in test_q else "train")
            if split is None:  # unseen countries x validation questions belong to no split
                continue
            item = SurveyItem(
                group=country, question_id=qid, question=text, options=options,
                letters=tuple(LETTERS[:len(options)]), distribution=tuple(counts / n_respondents),
                language="en", split=split, source=SOURCE, n_respondents=float(n_respondents),
                ordinal=True, flags=(FLAG,))
            splits[split].append(item)
            if split == "train" and c in dev_c:
                splits["dev"].append(item.with_(split="dev"))
    return splits
