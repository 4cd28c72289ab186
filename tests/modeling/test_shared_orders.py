"""One item in several option orders: its common prompt prefix is computed once, with the same predictions
(and gradients) as computing every order's whole prompt."""

from __future__ import annotations

import pytest
import torch
from test_simulator_fast_path import LORA, _model, _naive_log_probs

from survey_sim.data.batching import EncodedItem, LengthGroupedBatchSampler, collate, whole_rows
from survey_sim.modeling.lora import add_lora
from survey_sim.modeling.simulator import SurveySimulator


def _lora_model():
    model = add_lora(_model(), LORA)
    for name, p in model.named_parameters():  # non-zero B so the adapter changes the output
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    return model


def _orders(system: list[int]) -> list[EncodedItem]:
    """Four items (bases 0-3) in 3, 4, 2 and 2 orders (the stem shared, the rest differing from its first
    token), plus one item on its own."""
    g = torch.Generator().manual_seed(3)
    items = []
    for base, (stem_len, tail_len, k) in enumerate([(6, 5, 3), (9, 7, 4), (3, 4, 2), (11, 1, 2)]):
        stem = torch.randint(1, 97, (stem_len,), generator=g).tolist()
        for shift in range(k):
            tail = [1 + (base * 7 + shift) % 96] + torch.randint(1, 97, (tail_len + shift,), generator=g).tolist()
            options = torch.randperm(96, generator=g)[:k].add(1).tolist()
            items.append(EncodedItem(len(items), tuple(system + stem + tail), tuple(options),
                                     tuple([1.0 / k] * k), base=base))
    items.append(EncodedItem(len(items), tuple(system + [5, 6, 7]), (1, 2), (0.5, 0.5)))
    return items


@pytest.mark.parametrize("system", [list(range(40, 52)), []], ids=["batch-prefix", "no-batch-prefix"])
def test_collate_puts_each_items_common_tokens_into_one_prefix_row(system):
    items = _orders(system)
    batch = collate(items, pad_id=0, share_prefix=True)
    assert ("prefix_ids" in batch) == bool(system)
    assert batch["item_of_row"].tolist() == [0, 0, 0, 1, 1, 1, 1, 2, 2, 3, 3, 4]
    assert batch["item_prefix_mask"].sum(1).tolist() == [6, 9, 3, 11, 0]  # the lone item: no item prefix
    # every row, put back together, is its prompt; positions run on from the prefixes
    ids, mask, pos = whole_rows(batch)
    for row, x in enumerate(items):
        assert ids[row][mask[row].bool()].tolist() == list(x.input_ids)
        assert pos[row][mask[row].bool()].tolist() == list(range(len(x.input_ids)))
    plain = collate(items, pad_id=0)
    assert "item_prefix_ids" not in plain and "item_prefix_ids" not in collate(items[:1], 0, share_prefix=True)
    no_bases = [EncodedItem(x.index, x.input_ids, x.option_ids, x.target) for x in items]
    assert "item_prefix_ids" not in collate(no_bases, 0, share_prefix=True)


@pytest.mark.parametrize("system", [list(range(40, 52)), []], ids=["batch-prefix", "no-batch-prefix"])
def test_shared_orders_equal_whole_prompts_with_lora_in_evaluation(system):
    items = _orders(system)
    model = _lora_model()
    sim = SurveySimulator(model, loss="kl").eval()
    shared = collate(items, pad_id=0, share_prefix=True)
    assert "item_prefix_ids" in shared
    with torch.no_grad():
        fast, plain = sim(shared), sim(collate(items, pad_id=0))
        naive = _naive_log_probs(model, items)
    for row, (x, ref) in enumerate(zip(items, naive)):
        k = len(x.option_ids)
        torch.testing.assert_close(fast[row, :k], plain[row, :k], atol=1e-5, rtol=0)
        torch.testing.assert_close(fast[row, :k], ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_shared_orders_give_the_same_gradients(checkpointing):
    sim = SurveySimulator(_lora_model(), loss="kl", gradient_checkpointing=checkpointing).train()
    items = _orders(list(range(40, 52)))
    grads = []
    for batch in (collate(items, pad_id=0, share_prefix=True), collate(items, pad_id=0)):
        sim.zero_grad()
        sim.loss_fn(sim(batch), batch["target"], batch["option_mask"]).backward()
        grads.append({n: p.grad.clone() for n, p in sim.named_parameters() if p.requires_grad})
    for name, g in grads[1].items():
        torch.testing.assert_close(grads[0][name], g, atol=1e-5, rtol=1e-4, msg=name)


def test_evaluation_batches_keep_an_items_orders_together():
    bases = [0, 0, 0, None, 4, 4, 4, 4, 4, 9, 9]
    lengths = [30, 31, 30, 50, 20, 21, 22, 20, 20, 40, 40]
    sampler = LengthGroupedBatchSampler(lengths, 4, shuffle=False, bases=bases)
    batches = list(sampler)
    # longest first, whole groups while they fit; 5 orders are more than a batch of 4
    assert batches == [[3, 9, 10], [0, 1, 2], [4, 5, 6, 7], [8]]
    assert len(sampler) == len(batches)
    # training ignores bases; without bases evaluation is sorted by length as before
    assert sorted(i for b in LengthGroupedBatchSampler(lengths, 4, shuffle=True, bases=bases) for i in b) == \
        list(range(11))
    with pytest.raises(ValueError, match="2 bases for 11 items"):
        LengthGroupedBatchSampler(lengths, 4, shuffle=False, bases=[0, 0])


def test_datamodule_shares_orders_of_permutation_averaging_with_unchanged_predictions(tiny_cfg):
    """Demo items with their cyclic shifts (permutations=3) through the DataModule with and without prefix
    sharing: the same probabilities for every prompt, fewer token positions computed."""
    from survey_sim.data.datamodule import SurveyDataModule, order_bases
    from survey_sim.data.demo import make_demo_survey
    from survey_sim.evaluation.orders import expand_permutations
    from survey_sim.modeling.loading import load_backbone
    from survey_sim.modeling.prompts import PromptBuilder

    items = make_demo_survey(n_countries=4, n_questions=6)["train"][:6]
    expanded, base = expand_permutations(items, 3)
    assert order_bases(expanded) == [base.index(b) for b in base]  # every item has >= 2 options: 2-3 orders
    assert order_bases(items) == [None] * len(items)
    model, tokenizer = load_backbone(tiny_cfg)
    sim = SurveySimulator(add_lora(model, LORA), loss="kl").eval()
    builder = PromptBuilder("paper", tokenizer=tokenizer, chat_template=True)
    probs, positions = {}, {}
    for share in (True, False):
        dm = SurveyDataModule({"s": expanded}, tokenizer, builder, eval_batch_size=8, train_split=None,
                              val_split=None, eval_splits=["s"], share_prefix=share)
        dm.encode()
        out, positions[share] = {}, 0
        with torch.inference_mode():
            for batch in dm.test_dataloader()[0]:
                assert ("item_prefix_ids" in batch) == share
                positions[share] += batch["input_ids"].numel() + batch.get("item_prefix_ids", torch.empty(0)).numel()
                for i, row in zip(batch["index"].tolist(), sim(batch).exp()):
                    out[i] = row[:expanded[i].num_options]
        probs[share] = out
    assert sorted(probs[True]) == list(range(len(expanded)))
    for i in probs[False]:
        torch.testing.assert_close(probs[True][i], probs[False][i], atol=1e-5, rtol=0)
    assert positions[True] < 0.8 * positions[False]
