"""Training losses between human answer distributions and the model's option distributions.

Every loss takes `log_probs` [B, K] (masked log-softmax of the option logits, see `masked_log_softmax`),
`target` [B, K] (human distribution over each item's valid options, summing to 1) and `mask` [B, K]
(True at valid options; items have different numbers of options). Masked entries of `log_probs` and
`target` may hold anything (-inf included): they never reach the value or the gradient. Each loss returns
the mean over items (`reduction="mean"`) or the per-item values (`reduction="none"`).

`label_smoothing` eps replaces the target by (1 - eps) * p + eps * uniform over the item's valid options
(for `ce`: the one-hot majority target is smoothed the same way, as in torch's cross_entropy).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Sequence
from functools import partial
from importlib.util import find_spec

import torch

from survey_sim.errors import ConfigError

#: Floor for log q: keeps -inf (a model logit of -inf) from turning 0 * log q into NaN.
LOG_FLOOR = -1e4
NAMED_COSTS = ("ordinal", "squared", "binary")


def masked_log_softmax(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Log-softmax over the valid entries of each row; masked entries are -inf (probability 0)."""
    mask = mask.bool()
    if not bool(mask.any(dim=-1).all()):
        raise ValueError("masked_log_softmax: a row has no valid option")
    return torch.log_softmax(logits.masked_fill(~mask, float("-inf")), dim=-1)


def _prepare(log_probs, target, mask, label_smoothing):
    if not (log_probs.shape == target.shape == mask.shape) or log_probs.dim() != 2:
        raise ValueError(f"log_probs {tuple(log_probs.shape)}, target {tuple(target.shape)} and mask "
                         f"{tuple(mask.shape)} must all be [batch, options]")
    mask = mask.bool()
    dtype = torch.promote_types(log_probs.dtype, torch.float32)
    log_q = torch.where(mask, log_probs.to(dtype), 0.0).clamp_min(LOG_FLOOR)
    p = torch.where(mask, target.to(dtype), 0.0)
    n = mask.sum(dim=-1, keepdim=True).to(dtype)
    if label_smoothing:
        p = (1.0 - label_smoothing) * p + label_smoothing * mask.to(dtype) / n
    return log_q, p, mask, n


def _reduce(per_item: torch.Tensor, reduction: str) -> torch.Tensor:
    if reduction == "mean":
        return per_item.mean()
    if reduction == "none":
        return per_item
    raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}")


def kl_loss(log_probs, target, mask, *, label_smoothing: float = 0.0, reduction: str = "mean"):
    """KL(human || model) = sum_i p_i (log p_i - log q_i), with 0 log 0 = 0."""
    log_q, p, _, _ = _prepare(log_probs, target, mask, label_smoothing)
    return _reduce((torch.xlogy(p, p) - p * log_q).sum(dim=-1), reduction)


def js_loss(log_probs, target, mask, *, label_smoothing: float = 0.0, reduction: str = "mean"):
    """Jensen-Shannon divergence (natural log) between human p and model q, with m = (p + q) / 2."""
    log_q, p, mask, _ = _prepare(log_probs, target, mask, label_smoothing)
    q = torch.exp(log_q) * mask
    log_p = torch.log(p)                                          # -inf where p = 0; p has no gradient
    log_m = torch.logaddexp(log_p, log_q) - math.log(2.0)       # finite wherever p > 0 or q is computed
    kl_pm = torch.xlogy(p, p) - p * log_m
    kl_qm = q * (log_q - log_m)
    return _reduce(0.5 * (kl_pm + kl_qm).sum(dim=-1), reduction)


def wasserstein_loss(log_probs, target, mask, scale: torch.Tensor | None = None, *,
                     cost: str | Sequence | torch.Tensor = "ordinal", normalize: bool = True,
                     label_smoothing: float = 0.0, reduction: str = "mean"):
    """Wasserstein-1 between p and q over each item's options on its ordinal scale.

    `scale` [B, K]: each option's scale position (NaN: a non-substantive option, left out, both distributions
    renormalised over the rest; a row of NaN: a nominal item, scored by the total variation distance, the
    Wasserstein-1 of the 0/1 cost). Without it, the valid options' displayed positions 0..n-1. For the default
    ordinal cost |x_i - x_j| this is the sum over consecutive positions of |CDF_p - CDF_q| times their gap;
    `normalize` divides by the scale's span (n - 1 for positions 0..n-1) so that it lies in [0, 1] like the
    `emd` metric. Any other `cost` (a name in NAMED_COSTS or a matrix, over displayed positions) goes through
    `wasserstein_cost_matrix_loss`.
    """
    if not (isinstance(cost, str) and cost == "ordinal"):
        return wasserstein_cost_matrix_loss(log_probs, target, mask, cost, normalize=normalize,
                                            label_smoothing=label_smoothing, reduction=reduction)
    log_q, p, mask, _ = _prepare(log_probs, target, mask, label_smoothing)
    q = torch.exp(log_q) * mask
    if scale is None:
        scale = torch.cumsum(mask.long(), dim=-1).to(p.dtype) - 1.0
    scale = scale.to(p.dtype)
    on_scale = mask & ~torch.isnan(scale)
    nominal = ~on_scale.any(dim=-1)
    # options on the scale first, by position; the others after them with no mass
    order = torch.argsort(torch.where(on_scale, scale, float("inf")), dim=-1, stable=True)
    kept = on_scale.gather(-1, order)
    x = torch.where(kept, scale.gather(-1, order), 0.0)
    p_s, q_s = torch.where(kept, p.gather(-1, order), 0.0), torch.where(kept, q.gather(-1, order), 0.0)
    p_s = p_s / p_s.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    q_s = q_s / q_s.sum(dim=-1, keepdim=True).clamp_min(1e-12)
    gaps = torch.where(kept[:, 1:], x[:, 1:] - x[:, :-1], 0.0)
    dist = ((torch.cumsum(p_s, dim=-1) - torch.cumsum(q_s, dim=-1))[:, :-1].abs() * gaps).sum(dim=-1)
    if normalize:
        span = torch.where(kept, x, float("-inf")).amax(dim=-1) - torch.where(kept, x, float("inf")).amin(dim=-1)
        dist = dist / torch.where(nominal, 1.0, span).clamp_min(1e-12)
    tv = 0.5 * (p - q).abs().sum(dim=-1)
    return _reduce(torch.where(nominal, tv, dist), reduction)


def _cost_matrix(cost, n: int, valid: torch.Tensor, row: int, dtype) -> torch.Tensor:
    pos = torch.arange(n, dtype=dtype)
    if isinstance(cost, str):
        diff = pos[:, None] - pos[None, :]
        if cost == "ordinal":
            return diff.abs()
        if cost == "squared":
            return diff ** 2
        if cost == "binary":
            return (diff != 0).to(dtype)
        raise ConfigError(f"unknown Wasserstein cost {cost!r}; named costs: {list(NAMED_COSTS)} (or a matrix)")
    full = torch.as_tensor(cost, dtype=dtype)
    if full.dim() == 3:
        full = full[row]
    k = int(valid.max()) + 1
    if full.dim() != 2 or full.shape[0] != full.shape[1] or full.shape[0] < k:
        raise ValueError(f"cost matrix of shape {tuple(full.shape)} does not cover {k} options")
    valid = valid.cpu()  # the matrix is built on the CPU; the caller moves the result to the batch's device
    return full[valid][:, valid]


def wasserstein_cost_matrix_loss(log_probs, target, mask, cost, *, normalize: bool = True,
                                 label_smoothing: float = 0.0, reduction: str = "mean"):
    """Exact optimal-transport cost between q and p (POT `ot.emd2`, differentiable in q).

    `cost` is a name in NAMED_COSTS (over the valid options' ordinal positions), a [K, K] matrix over
    option positions, or a [B, K, K] batch of them; `normalize` divides by the largest valid cost.
    """
    import ot

    log_q, p, mask, _ = _prepare(log_probs, target, mask, label_smoothing)
    out = []
    for b in range(log_q.shape[0]):
        valid = mask[b].nonzero().squeeze(-1)
        q_b = torch.exp(log_q[b, valid]).double()
        p_b = p[b, valid].double()
        m = _cost_matrix(cost, len(valid), valid, b, torch.float64).to(q_b.device)
        d = ot.emd2(q_b / q_b.sum(), p_b / p_b.sum(), m)
        if normalize and float(m.max()) > 0:
            d = d / m.max()
        out.append(d.to(log_q.dtype))
    return _reduce(torch.stack(out), reduction)


def ce_loss(log_probs, target, mask, *, label_smoothing: float = 0.0, reduction: str = "mean"):
    """Cross-entropy to the human majority option (argmax of the target; ties: the first option)."""
    log_q, p, mask, n = _prepare(log_probs, target, mask, 0.0)
    majority = torch.where(mask, p, float("-inf")).argmax(dim=-1, keepdim=True)
    nll = -log_q.gather(-1, majority).squeeze(-1)
    if label_smoothing:
        nll = (1.0 - label_smoothing) * nll - label_smoothing * log_q.sum(dim=-1) / n.squeeze(-1)
    return _reduce(nll, reduction)


# ---- the paper's variants (Cao et al., NAACL 2025, released training code), labelled `*_paper` ---------------
# Reproduced from the formulas that code evaluates per item, so that Table 7 can be rerun as published:
# it reduced a 1-D tensor of K option values with torch's kl_div(..., reduction="batchmean"), which divides
# the sum by K (the tensor's first dimension) rather than by a batch size.

def kl_paper_loss(log_probs, target, mask, *, label_smoothing: float = 0.0, reduction: str = "mean"):
    """The paper's KL: KL(human || model) / K, K the item's number of valid options."""
    log_q, p, _, n = _prepare(log_probs, target, mask, label_smoothing)
    return _reduce((torch.xlogy(p, p) - p * log_q).sum(dim=-1) / n.squeeze(-1), reduction)


def js_paper_loss(log_probs, target, mask, *, label_smoothing: float = 0.0, reduction: str = "mean"):
    """The paper's "JS": g = softmax(p) (the human probabilities softmaxed again), m = (q + g) / 2, and
    (KL(m || q) + KL(m || g)) / 2 / K: the KL directions reversed, m as the reference, divided by K."""
    log_q, p, mask, n = _prepare(log_probs, target, mask, label_smoothing)
    q = torch.exp(log_q) * mask
    log_g = torch.log_softmax(p.masked_fill(~mask, float("-inf")), dim=-1)
    g = torch.exp(log_g) * mask
    m = (q + g) / 2.0
    kl_mq = torch.where(mask, torch.xlogy(m, m) - m * log_q, 0.0)
    kl_mg = torch.where(mask, torch.xlogy(m, m) - m * log_g.clamp_min(LOG_FLOOR), 0.0)
    return _reduce(0.5 * (kl_mq + kl_mg).sum(dim=-1) / n.squeeze(-1), reduction)


def wasserstein_paper_loss(logits, target, mask, *, label_smoothing: float = 0.0, reduction: str = "mean"):
    """The paper's "Wasserstein": the L1 distance between the RAW option logits (not probabilities) and the
    human distribution, sum_i |z_i - p_i|. Takes logits, not log-probabilities (see RAW_LOGIT_LOSSES)."""
    z, p, mask, _ = _prepare(logits, target, mask, label_smoothing)
    return _reduce(((z - p).abs() * mask).sum(dim=-1), reduction)


LOSSES: dict[str, Callable] = {"kl": kl_loss, "js": js_loss, "wasserstein": wasserstein_loss, "ce": ce_loss,
                               "kl_paper": kl_paper_loss, "js_paper": js_paper_loss,
                               "wasserstein_paper": wasserstein_paper_loss}
#: Losses computed from the raw option logits [B, K] instead of the masked log-softmax.
RAW_LOGIT_LOSSES = frozenset({"wasserstein_paper"})
#: Losses that take the options' scale positions (batch "option_scale") as a fourth argument.
SCALE_LOSSES = frozenset({"wasserstein"})


def get_loss(name: str, **kwargs) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]:
    """The loss `name` with its options bound: call it as loss(log_probs, target, mask)."""
    if name not in LOSSES:
        raise ConfigError(f"unknown loss {name!r}; valid losses: {sorted(LOSSES)}")
    fn = LOSSES[name]
    accepted = [k for k, prm in inspect.signature(fn).parameters.items() if prm.kind is prm.KEYWORD_ONLY]
    unknown = sorted(set(kwargs) - set(accepted))
    if unknown:
        raise ConfigError(f"loss {name!r} has no option(s) {unknown}; its options: {accepted}")
    eps = kwargs.get("label_smoothing", 0.0)
    if not 0.0 <= float(eps) < 1.0:
        raise ConfigError(f"loss {name!r}: label_smoothing must be in [0, 1), got {eps}")
    cost = kwargs.get("cost", "ordinal")
    if isinstance(cost, str) and cost not in NAMED_COSTS:
        raise ConfigError(f"loss {name!r}: unknown cost {cost!r}; named costs: {list(NAMED_COSTS)} (or a matrix)")
    if name == "wasserstein" and not (isinstance(cost, str) and cost == "ordinal") and find_spec("ot") is None:
        raise ConfigError(f"loss {name!r} with cost {cost!r} (not the closed-form ordinal one) needs POT: "
                          "pip install 'survey-sim[ot]'")
    if not isinstance(cost, (str, torch.Tensor)):
        kwargs["cost"] = torch.as_tensor([list(r) for r in cost], dtype=torch.float64)
    return partial(fn, **kwargs)
