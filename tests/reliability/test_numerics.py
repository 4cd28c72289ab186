"""Numerical safety: half-precision overflow in the option logits, zeros in human and predicted distributions,
non-finite predictions, and a diverging training run stopped with a message naming the batch."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from reliability_helpers import FT, run_in_process
from transformers import LlamaConfig, LlamaForCausalLM

from survey_sim.data.batching import EncodedItem, collate
from survey_sim.data.item import SurveyItem
from survey_sim.errors import SurveySimError
from survey_sim.evaluation.rows import prediction_rows, split_metrics
from survey_sim.modeling.simulator import NonFiniteLossError, SurveySimulator
from survey_sim.report.collect import collect_runs

VOCAB = 97


def _model(dtype=torch.float32) -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=64, num_hidden_layers=1,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                      tie_word_embeddings=False)
    return LlamaForCausalLM(cfg).to(dtype).eval()


def _batch(targets) -> dict:
    g = torch.Generator().manual_seed(1)
    items = [EncodedItem(i, tuple(torch.randint(1, VOCAB, (7 + i,), generator=g).tolist()),
                         tuple(range(10, 10 + len(t))), tuple(t)) for i, t in enumerate(targets)]
    return collate(items, pad_id=0)


def test_option_logits_do_not_overflow_in_float16():
    """Half-precision hidden states times output rows exceed float16's range (65504); the logits are formed in
    float32 and stay finite and exact."""
    model = _model(torch.float16)
    batch = _batch([(0.5, 0.3, 0.2)])
    with torch.no_grad():
        model.model.norm.weight.fill_(60.0)          # hidden states of size ~60 at the last position
        hidden = model.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                             position_ids=batch["position_ids"]).last_hidden_state[:, -1]
        for k, option in enumerate(batch["option_ids"][0].tolist()):  # rows aligned with it: |dot| ~ 64 * 60 * 60
            model.lm_head.weight[option] = hidden[0].sign() * (60.0 - 10 * k)
        rows = model.lm_head.weight[batch["option_ids"]]
        assert torch.isinf(torch.einsum("bh,bkh->bk", hidden, rows)).all()  # what float16 arithmetic gives
        exact = torch.einsum("bh,bkh->bk", hidden.double(), rows.double())
    sim = SurveySimulator(model)
    logits = sim.option_logits(batch)
    assert logits.dtype == torch.float32 and torch.isfinite(logits).all()
    torch.testing.assert_close(logits.double(), exact, rtol=1e-6, atol=0)
    assert torch.isfinite(sim(batch)).all()


def test_zeros_in_human_and_predicted_distributions_give_finite_loss_gradients_and_metrics():
    """Near one-hot predictions underflow to exact zeros; human targets have zero shares. Nothing becomes NaN."""
    targets = [(1.0, 0.0, 0.0), (0.0, 0.0, 1.0), (0.0, 0.5, 0.5, 0.0)]
    batch = _batch(targets)
    sim = SurveySimulator(_model(), loss="kl")
    sim.temperature.fill_(1e-6)                      # logits / T: differences of ~1e6, exp underflows to 0
    for name in ("kl", "js", "wasserstein", "ce"):
        sim.loss_fn = SurveySimulator(_model(), loss=name).loss_fn
        sim.zero_grad()
        log_probs = sim(batch)
        probs = log_probs.exp().masked_fill(~batch["option_mask"], 0)
        assert (probs[batch["option_mask"]] == 0).any()  # the case under test: exact zeros
        loss = sim.loss_fn(log_probs, batch["target"], batch["option_mask"])
        loss.backward()
        grads = [p.grad for p in sim.parameters() if p.grad is not None]
        assert torch.isfinite(loss) and grads and all(torch.isfinite(g).all() for g in grads), name

    items = [SurveyItem(group="Japan", question_id=str(i), question="Q?", options=[f"o{j}" for j in range(len(t))],
                        letters="ABCD"[:len(t)], distribution=t, split="test", source="test")
             for i, t in enumerate(targets)]
    rows = prediction_rows(items, [p[:len(t)].tolist() for p, t in zip(probs.detach(), targets)])
    summary = split_metrics(rows)
    assert all(math.isfinite(v) for v in summary.values())
    assert all(math.isfinite(r[k]) for r in rows for k in ("jsd", "js_divergence", "emd", "tv"))


def test_non_finite_predictions_name_the_item():
    item = SurveyItem(group="Japan", question_id="7", question="Q?", options=["a", "b"], letters="AB",
                      distribution=(0.5, 0.5), split="C1-Q3", source="test")
    with pytest.raises(SurveySimError, match=r"split C1-Q3, item 0 \('Japan', question '7'\): the predicted "
                                             r"distribution \[nan, 0.5\] is not finite"):
        prediction_rows([item], [[np.nan, 0.5]])


def test_diverging_training_stops_with_the_batch_named(tmp_path):
    """A float16 model with a far too large learning rate: after one step its activations overflow to inf
    and the loss is NaN; the run stops instead of training on, leaving an incomplete run folder."""
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError) as info:
        run_in_process(out, *FT, "model.dtype=float16", "optim.lr=1e4", "trainer.max_steps=6")
    message = str(info.value)
    assert "training loss is nan at epoch 0, step 1, batch 1 (items [" in message
    assert message.endswith("stopping instead of training on")
    assert not (out / "metrics.json").exists()
    runs, skipped = collect_runs([tmp_path])
    assert not runs and [s.path for s in skipped] == [out.resolve()]
