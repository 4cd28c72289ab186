"""Anchored simulators: the model's option distribution combined with a base distribution.

The base is a baseline fitted on the training split (`prior`, `country_knn` or `uniform`); on questions it
was not trained on it is uniform. Two combination rules:

- `loglinear`: softmax(alpha * z + beta * log base), z the model's option log-probabilities (its logits up to
  a constant), alpha = 1/T the model's weight and beta the base's;
- `mixture`: w * softmax(z / T) + (1 - w) * base.

A model weight of 0 (alpha = 0 with beta = 1, or w = 0) returns the base exactly. Parameters are kept per item
group, `trained` (the question was in training) and `new`, and fitted by minimising the mean KL divergence
from the human distributions: on the dev split (held-out countries) for `trained`, on val (new questions) for
`new`, never on a test split. A fit is kept only if it beats the base out of fold by more than its own noise:
cross-validated over the fit split's clusters (countries of dev, questions of val, the units a new test
split varies), the fitted combination's held-out KL must be lower than the base's by more than one standard
error of the per-cluster differences (the one-standard-error rule: the simpler model, the base, wins ties
within noise); otherwise the group predicts the base. Training *through* the anchor uses the rule with its default parameters, so the
adapter learns the deviation from the base instead of the base itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from scipy.optimize import minimize

from survey_sim.data.item import SurveyItem
from survey_sim.errors import ConfigError
from survey_sim.modeling.losses import kl_loss, masked_log_softmax

log = logging.getLogger(__name__)

RULES = ("loglinear", "mixture")
BASES = ("prior", "country_knn", "uniform")
GROUPS = ("trained", "new")
#: The split each group's parameters are fitted on, and the item attribute its cross-validation folds group by.
FIT_SPLITS = {"trained": "dev", "new": "val"}
CV_CLUSTERS = {"trained": "group", "new": "question_id"}
CV_FOLDS = 5
#: Smallest base probability entering log(base): a base of exactly 0 would otherwise forbid an option.
BASE_FLOOR = 1e-4
BOUNDS = {"loglinear": ((0.0, 20.0), (0.0, 5.0)), "mixture": ((0.0, 1.0), (0.05, 20.0))}


def fitted_groups(a: Mapping) -> list[str]:
    """The item groups whose anchor parameters are fitted (`anchor.fit_groups`, in FIT_SPLITS order)."""
    groups = list(a.get("fit_groups", list(FIT_SPLITS)))
    unknown = sorted(set(groups) - set(FIT_SPLITS))
    if unknown or not groups:
        raise ConfigError(f"anchor.fit_groups={groups}: must be a non-empty list of {list(FIT_SPLITS)} "
                          f"(trained questions fitted on dev, new questions on val)")
    return [g for g in FIT_SPLITS if g in groups]


@dataclass(frozen=True)
class AnchorParams:
    """`loglinear`: model_weight = alpha (1/T), base_weight = beta. `mixture`: model_weight = w, temperature = T."""

    model_weight: float
    base_weight: float = 1.0
    temperature: float = 1.0

    @classmethod
    def default(cls, rule: str) -> AnchorParams:
        """The parameters training through the anchor uses: the model's logits added to log base (loglinear),
        or an even mixture."""
        return cls(model_weight=1.0) if rule == "loglinear" else cls(model_weight=0.5)

    def vector(self, rule: str) -> list[float]:
        return [self.model_weight, self.base_weight] if rule == "loglinear" else [self.model_weight, self.temperature]

    @classmethod
    def from_vector(cls, rule: str, x: Sequence[float]) -> AnchorParams:
        if rule == "loglinear":
            return cls(model_weight=float(x[0]), base_weight=float(x[1]))
        return cls(model_weight=float(x[0]), temperature=float(x[1]))


#: The parameters that return the base exactly (both rules).
BASE_ONLY = AnchorParams(model_weight=0.0, base_weight=1.0)


def combine(lm_log_probs: torch.Tensor, base: torch.Tensor, mask: torch.Tensor, rule: str,
            params: AnchorParams) -> torch.Tensor:
    """Log-probabilities [B, K] of the anchored prediction (masked entries -inf)."""
    mask = mask.bool()
    z = torch.where(mask, lm_log_probs, 0.0)
    if rule == "loglinear":
        log_base = torch.log(base.clamp_min(BASE_FLOOR))
        return masked_log_softmax(params.model_weight * z + params.base_weight * log_base, mask)
    if rule == "mixture":
        model = masked_log_softmax(z / params.temperature, mask).exp()
        mixed = params.model_weight * model + (1.0 - params.model_weight) * base
        return torch.log(mixed.clamp_min(torch.finfo(mixed.dtype).tiny)).masked_fill(~mask, float("-inf"))
    raise ConfigError(f"unknown anchor rule {rule!r}; valid: {', '.join(RULES)}")


def fit_params(lm_probs: np.ndarray, base: np.ndarray, target: np.ndarray, mask: np.ndarray, rule: str, *,
               fit_model_scale: bool = True) -> AnchorParams:
    """Parameters minimising the mean KL(human || anchored) over the given rows ([N, K] arrays, 0 outside
    `mask`). `fit_model_scale=False` keeps the model's own scale (alpha = 1 or T = 1) and fits the weight only."""
    t = {k: torch.as_tensor(v, dtype=torch.float64) for k, v in
         {"lm": np.log(np.clip(lm_probs, 1e-300, None)), "base": base, "target": target}.items()}
    m = torch.as_tensor(mask, dtype=torch.bool)

    def objective(x: np.ndarray) -> float:
        params = AnchorParams.from_vector(rule, x if fit_model_scale else _with_unit_scale(rule, x))
        return float(kl_loss(combine(t["lm"], t["base"], m, rule, params), t["target"], m))

    start = AnchorParams.default(rule).vector(rule)
    bounds = BOUNDS[rule]
    if not fit_model_scale:  # one free parameter: beta (loglinear) or w (mixture)
        start, bounds = [start[1] if rule == "loglinear" else start[0]], [bounds[1] if rule == "loglinear" else bounds[0]]
    result = minimize(objective, np.asarray(start, dtype=np.float64), method="L-BFGS-B", bounds=bounds)
    x = result.x if fit_model_scale else _with_unit_scale(rule, result.x)
    return AnchorParams.from_vector(rule, x)


def _with_unit_scale(rule: str, x: Sequence[float]) -> list[float]:
    """The full parameter vector from the one free parameter, with the model's scale at 1."""
    return [1.0, float(x[0])] if rule == "loglinear" else [float(x[0]), 1.0]


class Anchor:
    """Base distributions for items and the combination rule with its parameters per item group."""

    def __init__(self, base: str, rule: str, train_items: Sequence[SurveyItem], *, base_options: Mapping | None = None,
                 fit_model_scale: bool = True):
        if base not in BASES:
            raise ConfigError(f"unknown anchor base {base!r}; valid: {', '.join(BASES)}")
        if rule not in RULES:
            raise ConfigError(f"unknown anchor rule {rule!r}; valid: {', '.join(RULES)}")
        if not train_items:
            raise ConfigError("an anchored simulator needs the training split (its base is fitted on it)")
        # Imported here: the LightningModule imports this module, and must load without the baselines'
        # dependencies (the GPU check runs with torch, transformers, peft and lightning only).
        from survey_sim.baselines import make_baseline
        from survey_sim.baselines.prior import question_key

        self.question_key = question_key
        self.base_name, self.rule, self.fit_model_scale = base, rule, fit_model_scale
        # Training items get the leave-own-country-out prior, so that their base never holds their own answer.
        name = "prior_loo" if base == "prior" else base
        self.baseline = make_baseline(name, **dict(base_options or {})).fit(list(train_items))
        self.trained_questions = {question_key(it) for it in train_items}
        self.params = {g: AnchorParams.default(rule) for g in GROUPS}
        self.fitted: dict[str, dict] = {}

    def use_params(self, params: Mapping[str, Mapping]) -> None:
        """Take the parameters a run fitted (metrics.json "anchor" "params": group -> AnchorParams fields)."""
        unknown = sorted(set(params) - set(GROUPS))
        if unknown:
            raise ConfigError(f"anchor parameters for unknown item group(s) {unknown}; groups: {', '.join(GROUPS)}")
        self.params.update({g: AnchorParams(**dict(p)) for g, p in params.items()})

    def group(self, item: SurveyItem) -> str:
        return "trained" if self.question_key(item) in self.trained_questions else "new"

    def bases(self, items: Sequence[SurveyItem]) -> list[np.ndarray]:
        """Each item's base distribution in its current option order (uniform on new questions, by design:
        logged at info level, not as a warning)."""
        return [np.asarray(b, dtype=np.float64) for b in self.baseline.predict(list(items), warn=False)]

    def apply(self, items: Sequence[SurveyItem], lm_probs: np.ndarray, bases: Sequence[np.ndarray]) -> np.ndarray:
        """Anchored probabilities [N, width] (model probabilities `lm_probs` [N, width], options first)."""
        out = np.zeros_like(np.asarray(lm_probs, dtype=np.float64))
        for group in GROUPS:
            rows = [i for i, it in enumerate(items) if self.group(it) == group]
            if rows:
                lm, base, _, mask = _padded([items[i] for i in rows], lm_probs[rows], [bases[i] for i in rows])
                logp = combine(torch.as_tensor(np.log(np.clip(lm, 1e-300, None))), torch.as_tensor(base),
                               torch.as_tensor(mask), self.rule, self.params[group])
                out[rows, : mask.shape[1]] = logp.exp().numpy()
        return out

    def fit(self, group: str, items: Sequence[SurveyItem], lm_probs: np.ndarray, bases: Sequence[np.ndarray]) -> None:
        """Fit the parameters of `group` on its items among `items` (from the split FIT_SPLITS[group]); keep
        them only if they beat the base out of fold (`cross_validated_kl`), else predict the base."""
        rows = [i for i, it in enumerate(items) if self.group(it) == group]
        if not rows:
            raise ConfigError(f"anchor: no {group!r} item in split {FIT_SPLITS[group]!r} to fit on")
        chosen = [items[i] for i in rows]
        lm, base, target, mask = _padded(chosen, lm_probs[rows], [bases[i] for i in rows])
        clusters = [getattr(it, CV_CLUSTERS[group]) for it in chosen]
        cv_fitted, cv_base = self.cross_validated_kl(lm, base, target, mask, clusters)
        gain, se = _cluster_gain(cv_base - cv_fitted, clusters)
        fitted = fit_params(lm, base, target, mask, self.rule, fit_model_scale=self.fit_model_scale)
        use = gain > se
        self.params[group] = fitted if use else BASE_ONLY
        self.fitted[group] = {**asdict(self.params[group]), "split": FIT_SPLITS[group], "n_items": len(rows),
                              "cv_kl_fitted": float(cv_fitted.mean()), "cv_kl_base": float(cv_base.mean()),
                              "cv_gain_per_cluster": gain, "cv_gain_se": se, "model_used": use,
                              "fit_without_cv": asdict(fitted)}
        log.info("anchor (%s, base %s): %s items of %s (%d): cross-validated KL gain over the base %.5f (one "
                 "standard error %.5f): %s %s", self.rule, self.base_name, group, FIT_SPLITS[group], len(rows),
                 gain, se, "using" if use else "within noise, predicting the base, not", fitted)

    def cross_validated_kl(self, lm, base, target, mask, clusters: Sequence) -> tuple[np.ndarray, np.ndarray]:
        """Per-item held-out KL of the fitted combination and of the base alone, over CV_FOLDS folds of whole
        clusters (a fold never splits a cluster)."""
        names = sorted(set(clusters), key=str)
        fold_of = {c: i % CV_FOLDS for i, c in enumerate(names)}
        folds = np.array([fold_of[c] for c in clusters])
        t = {k: torch.as_tensor(v) for k, v in {"target": target, "mask": mask}.items()}
        fitted_kl, base_kl = np.zeros(len(clusters)), np.zeros(len(clusters))
        for fold in range(min(CV_FOLDS, len(names))):
            test, train = folds == fold, folds != fold
            params = fit_params(lm[train], base[train], target[train], mask[train], self.rule,
                                fit_model_scale=self.fit_model_scale)
            for out, p in ((fitted_kl, params), (base_kl, BASE_ONLY)):
                logp = combine(torch.as_tensor(np.log(np.clip(lm[test], 1e-300, None))), torch.as_tensor(base[test]),
                               t["mask"][test], self.rule, p)
                out[test] = kl_loss(logp, t["target"][test], t["mask"][test], reduction="none").numpy()
        return fitted_kl, base_kl

    def summary(self) -> dict:
        return {"base": self.base_name, "rule": self.rule, "fit_model_scale": self.fit_model_scale,
                "params": {g: asdict(p) for g, p in self.params.items()}, "fitted": dict(self.fitted)}


def _cluster_gain(gains: np.ndarray, clusters: Sequence) -> tuple[float, float]:
    """Mean over clusters of the per-cluster mean gain, and its standard error (0 with one cluster)."""
    names = sorted(set(clusters), key=str)
    per = np.array([gains[[c == n for c in clusters]].mean() for n in names])
    se = float(per.std(ddof=1) / np.sqrt(len(per))) if len(per) > 1 else 0.0
    return float(per.mean()), se


def _padded(items: Sequence[SurveyItem], lm_probs: np.ndarray, bases: Sequence[np.ndarray]):
    """[N, K] model probabilities, bases, human targets and masks over the items' options."""
    k = max(it.num_options for it in items)
    lm, base, target = (np.zeros((len(items), k)) for _ in range(3))
    mask = np.zeros((len(items), k), dtype=bool)
    for i, it in enumerate(items):
        n = it.num_options
        lm[i, :n], base[i, :n], target[i, :n], mask[i, :n] = lm_probs[i][:n], bases[i], it.distribution, True
    return lm, base, target, mask
