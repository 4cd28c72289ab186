"""The option-only fast path equals the straightforward computation (full logits, then gather)."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from survey_sim.data.batching import EncodedItem, collate
from survey_sim.modeling.lora import add_lora
from survey_sim.modeling.simulator import SurveySimulator

LORA = {"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["q_proj", "v_proj"]}


def _model():
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval()


def _batch():
    g = torch.Generator().manual_seed(1)
    items = []
    for i, (n, k) in enumerate([(9, 4), (3, 2), (14, 5)]):
        ids = torch.randint(1, 97, (n,), generator=g).tolist()
        opts = torch.randperm(96, generator=g)[:k].add(1).tolist()
        target = torch.rand(k, generator=g)
        items.append(EncodedItem(i, tuple(ids), tuple(opts), tuple((target / target.sum()).tolist())))
    return items, collate(items, pad_id=0)


def _naive_log_probs(model, items):
    """One prompt at a time, no padding: full-vocabulary logits, last position, gather, softmax."""
    out = []
    for x in items:
        logits = model(input_ids=torch.tensor([x.input_ids])).logits[0, -1]
        out.append(torch.log_softmax(logits[list(x.option_ids)], -1))
    return out


@pytest.mark.parametrize("lora", [False, True])
def test_fast_path_matches_full_logits(lora):
    model = _model()
    if lora:
        model = add_lora(model, LORA)
        for name, p in model.named_parameters():  # non-zero B so the adapter changes the output
            if "lora_B" in name:
                torch.nn.init.normal_(p, std=0.5)
    sim = SurveySimulator(model, loss="kl").eval()
    items, batch = _batch()
    with torch.no_grad():
        fast = sim(batch)
        naive = _naive_log_probs(model, items)
    for row, (x, ref) in enumerate(zip(items, naive)):
        k = len(x.option_ids)
        torch.testing.assert_close(fast[row, :k], ref, atol=1e-5, rtol=0)
        assert torch.all(fast[row, k:] == float("-inf")) or torch.all(fast[row, k:].exp() == 0)


def test_training_step_updates_only_the_adapter_and_stops_on_nan():
    model = add_lora(_model(), LORA)
    sim = SurveySimulator(model, loss="kl", lr=1e-2)
    _, batch = _batch()
    opt = sim.configure_optimizers()
    frozen = {n: p.clone() for n, p in sim.named_parameters() if not p.requires_grad}
    loss = sim.training_step(batch, 0)
    loss.backward()
    opt.step()
    assert all(torch.equal(p, frozen[n]) for n, p in sim.named_parameters() if n in frozen)
    batch["target"][0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="batch 7"):
        sim.training_step(batch, 7)


def test_length_bucketing_pads_to_the_multiple_and_changes_no_prediction():
    sim = SurveySimulator(_model(), loss="kl").eval()
    items, batch = _batch()
    bucketed = collate(items, pad_id=0, pad_to_multiple=16)
    assert batch["input_ids"].shape[1] == 14 and bucketed["input_ids"].shape[1] == 16
    assert bucketed["position_ids"][:, -1].tolist() == [8, 2, 13]  # the prediction point is still last
    with torch.no_grad():
        torch.testing.assert_close(sim(bucketed), sim(batch), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="pad_to_multiple"):
        collate(items, pad_id=0, pad_to_multiple=0)


def _prefixed_items(prefix):
    g = torch.Generator().manual_seed(2)
    items = []
    for i, (n, k) in enumerate([(5, 3), (1, 2), (12, 4), (7, 5)]):
        ids = prefix + torch.randint(1, 97, (n,), generator=g).tolist()
        opts = torch.randperm(96, generator=g)[:k].add(1).tolist()
        target = torch.rand(k, generator=g)
        items.append(EncodedItem(i, tuple(ids), tuple(opts), tuple((target / target.sum()).tolist())))
    return items


def test_collate_shares_a_common_prefix_only_when_long_enough():
    prefix = list(range(40, 50))
    items = _prefixed_items(prefix)
    shared = collate(items, pad_id=0, share_prefix=True)
    assert shared["prefix_ids"].tolist() == prefix and shared["input_ids"].shape == (4, 12)
    assert shared["position_ids"][:, -1].tolist() == [14, 10, 21, 16]  # positions in the whole prompt
    assert "prefix_ids" not in collate(items[:1], pad_id=0, share_prefix=True)  # one prompt: nothing to share
    assert "prefix_ids" not in collate(_prefixed_items(prefix[:5]), pad_id=0, share_prefix=True)
    assert "prefix_ids" not in collate(items, pad_id=0)


@pytest.mark.parametrize("checkpointing", [False, True])
def test_shared_prefix_gives_the_same_predictions_and_gradients(checkpointing):
    model = add_lora(_model(), LORA)
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=0.5)
    sim = SurveySimulator(model, loss="kl", gradient_checkpointing=checkpointing)
    items = _prefixed_items(list(range(40, 52)))
    shared, plain = collate(items, pad_id=0, share_prefix=True), collate(items, pad_id=0)
    assert "prefix_ids" in shared
    sim.eval()
    with torch.no_grad():
        fast = sim(shared)
        for row, (x, ref) in enumerate(zip(items, _naive_log_probs(model, items))):
            torch.testing.assert_close(fast[row, :len(x.option_ids)], ref, atol=1e-5, rtol=0)
    sim.train()
    grads, losses = [], []
    for batch in (shared, plain):
        sim.zero_grad()
        loss = sim.loss_fn(sim(batch), batch["target"], batch["option_mask"])
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: p.grad.clone() for n, p in sim.named_parameters() if p.requires_grad})
    torch.testing.assert_close(losses[0], losses[1], atol=1e-6, rtol=0)
    for name, g in grads[1].items():
        torch.testing.assert_close(grads[0][name], g, atol=1e-5, rtol=1e-4, msg=name)


def test_option_logits_are_float32_under_bf16_autocast():
    sim = SurveySimulator(_model(), loss="kl").eval()
    _, batch = _batch()
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert sim.option_logits(batch).dtype == torch.float32  # the [B, K] read-out is not done in bf16


@pytest.mark.parametrize("remote_code", [False, True])
def test_prefix_sharing_is_off_for_models_running_their_own_code(remote_code):
    """A model with trust_remote_code runs modelling code that may not take a key/value cache object:
    its batches carry no shared prefix even with speed.share_prefix=true."""
    from hydra import compose, initialize_config_dir

    from survey_sim.modeling.loading import load_tokenizer
    from survey_sim.pipeline.job import prepare_splits
    from survey_sim.pipeline.model_run import build_datamodule
    from survey_sim.run import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "data=demo", "model=tiny_random", "method=zs", "model.chat_template=true", "speed.share_prefix=true",
            f"model.trust_remote_code={str(remote_code).lower()}", "data.demo.n_countries=4",
            "data.demo.n_questions=6"])
    splits, names = prepare_splits(cfg)
    dm, _, _ = build_datamodule(cfg, splits, names, load_tokenizer(cfg.model), train=False)
    batch = next(iter(dm.test_dataloader()[0]))
    assert ("prefix_ids" in batch) == (not remote_code)


def test_letter_mass_is_the_letters_share_of_the_full_next_token_distribution():
    """readout's letter mass equals the softmax over the whole vocabulary at the last position, summed over
    the item's option ids (computed here from the full [T, V] logits of one unpadded prompt at a time)."""
    model = _model()
    sim = SurveySimulator(model, loss="kl").eval()
    items, batch = _batch()
    with torch.no_grad():
        logits, mass = sim.readout(batch)
        torch.testing.assert_close(logits, sim.option_logits(batch))
        for row, x in enumerate(items):
            full = torch.softmax(model(input_ids=torch.tensor([x.input_ids])).logits[0, -1], -1)
            assert mass[row].item() == pytest.approx(full[list(x.option_ids)].sum().item(), abs=1e-6)


def test_raw_logit_losses_get_the_option_logits():
    """wasserstein_paper (the paper's L1 on raw logits) is computed from logits, the others from log-probs."""
    from survey_sim.modeling.losses import get_loss, masked_log_softmax

    _, batch = _batch()
    with torch.no_grad():
        for name in ("wasserstein_paper", "kl"):
            sim = SurveySimulator(_model(), loss=name).eval()
            logits = sim.option_logits(batch)
            log_probs = masked_log_softmax(logits, batch["option_mask"])
            scores = logits if name == "wasserstein_paper" else log_probs
            expected = get_loss(name)(scores, batch["target"], batch["option_mask"])
            torch.testing.assert_close(sim._loss(batch, logits, log_probs), expected)


def test_shared_prefix_is_not_run_once_per_batch_in_training_with_dropout(model_config):
    """With the shipped configs' LoRA dropout (0.05), a batch-size-1 prefix pass would give every row of the
    batch the same dropout mask on the prefix: training puts the prefix in front of every row instead, while
    evaluation (no dropout) still computes it once per batch."""
    from survey_sim.modeling.simulator import _body_and_head, has_active_dropout

    lora = model_config("smollm2_135m").lora
    assert float(lora.dropout) == 0.05
    sim = SurveySimulator(add_lora(_model(), lora), loss="kl")
    body, _ = _body_and_head(sim.backbone)
    batch_sizes = []
    body.register_forward_pre_hook(lambda m, args, kwargs: batch_sizes.append(kwargs["input_ids"].shape[0]),
                                   with_kwargs=True)
    shared = collate(_prefixed_items(list(range(40, 52))), pad_id=0, share_prefix=True)
    sim.train()
    assert has_active_dropout(body)
    sim(shared)
    assert batch_sizes == [4]
    batch_sizes.clear()
    sim.eval()
    assert not has_active_dropout(body)
    with torch.no_grad():
        sim(shared)
    assert batch_sizes == [1, 4]
    no_dropout = SurveySimulator(add_lora(_model(), {**LORA, "dropout": 0.0}), loss="kl").train()
    assert not has_active_dropout(_body_and_head(no_dropout.backbone)[0])


def test_predictions_missing_at_the_end_of_a_split_are_an_error():
    """Items 0-2 predicted of a split of 4: the last item's missing prediction is an error (the output was
    sized by the largest index seen, so a missing tail went unnoticed)."""
    from survey_sim.errors import SurveySimError

    _, batch = _batch()
    for size, error in [(3, None), (4, r"split val: predictions missing for 1 of 4 items .*\[3\]")]:
        sim = SurveySimulator(_model(), loss="kl", eval_split_names=["val"], split_sizes={"val": size}).eval()
        sim.on_test_epoch_start()
        with torch.no_grad():
            sim.test_step(batch, 0)
        if error is None:
            sim.on_test_epoch_end()
            assert sim.predictions["val"].shape == (3, 26) and sim.letter_mass["val"].shape == (3,)
        else:
            with pytest.raises(SurveySimError, match=error):
                sim.on_test_epoch_end()
