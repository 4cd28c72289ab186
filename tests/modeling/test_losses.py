"""Losses against direct formulas, scipy and POT; masking, extreme logits and zero targets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import ot
import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from survey_sim.errors import ConfigError
from survey_sim.modeling.losses import (
    LOSSES,
    RAW_LOGIT_LOSSES,
    ce_loss,
    get_loss,
    js_loss,
    js_paper_loss,
    kl_loss,
    kl_paper_loss,
    masked_log_softmax,
    wasserstein_cost_matrix_loss,
    wasserstein_loss,
    wasserstein_paper_loss,
)

CONF = Path(__file__).resolve().parents[2] / "conf" / "loss"
K = 8
SIZES = [2, 3, 4, 5, 8, 6, 7, 8]


def batch(seed=0, zeros=True, scale=2.0):
    """Random logits/targets, one row per entry of SIZES (valid options first, then padding)."""
    g = torch.Generator().manual_seed(seed)
    b = len(SIZES)
    mask = torch.arange(K)[None, :] < torch.tensor(SIZES)[:, None]
    mask[5] = torch.tensor([True, True, False, True, True, False, True, True])  # a hole inside one row
    logits = torch.randn(b, K, generator=g, dtype=torch.float64) * scale
    raw = torch.rand(b, K, generator=g, dtype=torch.float64)
    if zeros:
        raw[torch.rand(b, K, generator=g) < 0.3] = 0.0
        raw[:, 0] += 0.05  # every row keeps some mass
    target = torch.where(mask, raw, 0.0)
    target = target / target.sum(-1, keepdim=True)
    return logits, target, mask


def rows(log_probs, target, mask):
    """Per row: (q, p) numpy arrays over the valid options only."""
    for b in range(mask.shape[0]):
        v = mask[b]
        yield log_probs[b, v].exp().detach().numpy(), target[b, v].numpy()


def test_masked_log_softmax():
    logits, _, mask = batch()
    lp = masked_log_softmax(logits, mask)
    assert torch.allclose(lp.exp().sum(-1), torch.ones(len(SIZES), dtype=torch.float64))
    assert torch.all(lp[~mask] == float("-inf")) and torch.all(lp.exp()[~mask] == 0)
    assert torch.allclose(lp[0, :2], torch.log_softmax(logits[0, :2], -1))
    with pytest.raises(ValueError, match="no valid option"):
        masked_log_softmax(logits[:1], torch.zeros(1, K, dtype=torch.bool))


def test_kl_matches_the_formula():
    logits, target, mask = batch()
    lp = masked_log_softmax(logits, mask)
    expected = [entropy(p, q) for q, p in rows(lp, target, mask)]  # sum p log(p / q)
    assert torch.allclose(kl_loss(lp, target, mask, reduction="none"), torch.tensor(expected, dtype=torch.float64))
    assert kl_loss(lp, target, mask).item() == pytest.approx(np.mean(expected))


def test_js_matches_scipy():
    logits, target, mask = batch()
    lp = masked_log_softmax(logits, mask)
    expected = [jensenshannon(p, q) ** 2 for q, p in rows(lp, target, mask)]
    assert np.allclose(js_loss(lp, target, mask, reduction="none").numpy(), expected)


@pytest.mark.parametrize("normalize", [True, False])
def test_wasserstein_matches_pot(normalize):
    logits, target, mask = batch()
    lp = masked_log_softmax(logits, mask)
    got = wasserstein_loss(lp, target, mask, normalize=normalize, reduction="none").numpy()
    for b, (q, p) in enumerate(rows(lp, target, mask)):
        n = len(p)
        pos = np.arange(n, dtype=np.float64)
        scale = (n - 1) if normalize else 1.0
        assert got[b] == pytest.approx(ot.wasserstein_1d(pos, pos, q, p, p=1) / scale)
        assert got[b] == pytest.approx(ot.emd2(q / q.sum(), p, np.abs(pos[:, None] - pos[None, :])) / scale)


def test_cost_matrix_wasserstein():
    logits, target, mask = batch()
    lp = masked_log_softmax(logits, mask)
    closed = wasserstein_loss(lp, target, mask, reduction="none")
    by_name = wasserstein_cost_matrix_loss(lp, target, mask, "ordinal", reduction="none")
    assert torch.allclose(closed, by_name, atol=1e-8)
    # squared cost: POT directly; a [K, K] matrix over option positions; a batch of matrices
    pos = np.arange(K, dtype=np.float64)
    sq = (pos[:, None] - pos[None, :]) ** 2
    full = wasserstein_loss(lp, target, mask, cost=sq.tolist(), normalize=False, reduction="none")
    batched = wasserstein_cost_matrix_loss(lp, target, mask, torch.tensor(sq).expand(len(SIZES), K, K),
                                           normalize=False, reduction="none")
    assert torch.allclose(full, batched)
    for b, (q, p) in enumerate(rows(lp, target, mask)):
        idx = mask[b].nonzero().squeeze(-1).numpy()
        assert full[b].item() == pytest.approx(ot.emd2(q / q.sum(), p, sq[np.ix_(idx, idx)]))
    # the named squared cost counts valid options as consecutive positions: differs only in the holed row
    named = wasserstein_loss(lp, target, mask, cost="squared", normalize=False, reduction="none")
    assert torch.allclose(named[:5], full[:5]) and not torch.isclose(named[5], full[5])


def test_ce_matches_torch():
    logits, target, mask = batch()
    lp = masked_log_softmax(logits, mask)
    majority = torch.where(mask, target, -1.0).argmax(-1)
    expected = F.cross_entropy(logits.masked_fill(~mask, float("-inf")), majority)
    assert ce_loss(lp, target, mask).item() == pytest.approx(expected.item())
    smoothed = []
    for b in range(len(SIZES)):  # torch smooths over all classes given: pass only the valid ones
        valid_index = mask[b, : majority[b]].sum().view(1)
        smoothed.append(F.cross_entropy(logits[b, mask[b]][None], valid_index, label_smoothing=0.1))
    smoothed = torch.stack(smoothed)
    assert torch.allclose(ce_loss(lp, target, mask, label_smoothing=0.1, reduction="none"), smoothed)


def test_ce_ties_go_to_the_first_option():
    mask = torch.ones(1, 3, dtype=torch.bool)
    lp = torch.log(torch.tensor([[0.2, 0.5, 0.3]]))
    target = torch.tensor([[0.1, 0.45, 0.45]])
    assert ce_loss(lp, target, mask).item() == pytest.approx(-np.log(0.5))


def test_label_smoothing_mixes_in_the_uniform_over_valid_options():
    logits, target, mask = batch()
    lp = masked_log_softmax(logits, mask)
    n = mask.sum(-1, keepdim=True)
    smoothed = 0.8 * target + 0.2 * mask / n
    for name in ("kl", "js", "wasserstein"):
        assert torch.allclose(LOSSES[name](lp, target, mask, label_smoothing=0.2), LOSSES[name](lp, smoothed, mask))


@pytest.mark.parametrize("name", sorted(LOSSES))
@pytest.mark.parametrize("scale", [2.0, 50.0])
def test_gradients_are_finite_and_ignore_masked_entries(name, scale):
    logits, target, mask = batch(seed=3, zeros=True, scale=1.0)
    logits = (torch.sign(logits) * scale).float().requires_grad_()  # logits of exactly +-scale
    loss = get_loss(name)(masked_log_softmax(logits, mask), target.float(), mask)
    loss.backward()
    assert torch.isfinite(loss) and torch.all(torch.isfinite(logits.grad))
    assert torch.all(logits.grad[~mask] == 0)
    assert logits.grad[mask].abs().sum() > 0


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_masked_values_do_not_matter(name):
    logits, target, mask = batch(seed=5)
    loss_fn = get_loss(name)
    results = []
    for fill_lp, fill_t in [(float("-inf"), 0.0), (float("nan"), 7.0), (3.0, -1.0)]:
        lp = masked_log_softmax(logits, mask).detach().masked_fill(~mask, fill_lp).requires_grad_()
        loss = loss_fn(lp, target.masked_fill(~mask, fill_t), mask)
        loss.backward()
        assert torch.isfinite(loss) and torch.all(lp.grad[~mask] == 0)
        results.append((loss.detach(), lp.grad[mask]))
    for loss, grad in results[1:]:
        assert torch.equal(loss, results[0][0]) and torch.equal(grad, results[0][1])


def test_perfect_prediction_is_zero_loss():
    _, target, mask = batch(zeros=False)
    lp = torch.log(target).masked_fill(~mask, float("-inf"))
    for name in ("kl", "js", "wasserstein"):
        assert abs(LOSSES[name](lp, target, mask).item()) < 1e-12


def test_registry_and_configs():
    assert sorted(LOSSES) == ["ce", "js", "js_paper", "kl", "kl_paper", "wasserstein", "wasserstein_paper"]
    with pytest.raises(ConfigError, match=r"unknown loss 'mse'.*\['ce', 'js', 'js_paper', 'kl', 'kl_paper'"):
        get_loss("mse")
    with pytest.raises(ConfigError, match=r"loss 'kl' has no option\(s\) \['normalize'\]"):
        get_loss("kl", normalize=True)
    with pytest.raises(ConfigError, match="label_smoothing must be in"):
        get_loss("js", label_smoothing=1.0)
    with pytest.raises(ConfigError, match="unknown cost 'cubic'"):
        get_loss("wasserstein", cost="cubic")
    logits, target, mask = batch()
    lp = masked_log_softmax(logits, mask)
    files = sorted(CONF.glob("*.yaml"))
    assert {f.stem for f in files} == set(LOSSES)
    for f in files:
        cfg = OmegaConf.to_container(OmegaConf.load(f))
        assert cfg["name"] == f.stem and cfg["label_smoothing"] == 0.0
        value = get_loss(**cfg)(lp, target, mask)
        assert value.item() == pytest.approx(LOSSES[f.stem](lp, target, mask).item())


# ---- the paper code's variants, against the published formulas written per item with torch's kl_div ----------

def _paper_items(seed):
    """Per item of a random batch: valid logits z, human percentages, and the batch tensors."""
    logits, target, mask = batch(seed=seed)
    items = [(logits[b, mask[b]], target[b, mask[b]] * 100) for b in range(len(SIZES))]
    return items, logits, target, mask


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kl_paper_is_the_papers_batchmean_kl_of_one_item(seed):
    items, logits, target, mask = _paper_items(seed)
    # the formula as published: kl_div(log_softmax(z), percent / 100, reduction="batchmean") on a 1-D tensor
    expected = torch.stack([F.kl_div(F.log_softmax(z, -1), pct / 100, reduction="batchmean") for z, pct in items])
    got = kl_paper_loss(masked_log_softmax(logits, mask), target, mask, reduction="none")
    assert torch.allclose(got, expected, atol=1e-12)
    assert torch.allclose(got * mask.sum(-1), kl_loss(masked_log_softmax(logits, mask), target, mask, reduction="none"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_js_paper_softmaxes_the_target_and_reverses_the_kl(seed):
    items, logits, target, mask = _paper_items(seed)
    expected = []
    for z, pct in items:
        q, g = F.softmax(z, -1), F.softmax(pct / 100, -1)
        m = 0.5 * (q + g)
        expected.append(0.5 * (F.kl_div(q.log(), m, reduction="batchmean") + F.kl_div(g.log(), m, reduction="batchmean")))
    got = js_paper_loss(masked_log_softmax(logits, mask), target, mask, reduction="none")
    assert torch.allclose(got, torch.stack(expected), atol=1e-12)
    assert not torch.allclose(got, js_loss(masked_log_softmax(logits, mask), target, mask, reduction="none"))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_wasserstein_paper_is_l1_between_raw_logits_and_target(seed):
    items, logits, target, mask = _paper_items(seed)
    expected = torch.stack([torch.norm(z - pct / 100, p=1) for z, pct in items])
    got = wasserstein_paper_loss(logits, target, mask, reduction="none")
    assert torch.allclose(got, expected, atol=1e-12)
    # not invariant to a shift of the logits, unlike any loss of the distribution
    assert not torch.allclose(wasserstein_paper_loss(logits + 1.0, target, mask), got.mean())
    assert RAW_LOGIT_LOSSES == {"wasserstein_paper"}

