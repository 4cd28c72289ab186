"""Ordinal scale metadata: the non-substantive rule, the recorded WVS questions, emd and the wasserstein loss
on scale positions (non-substantive options out, nominal questions excluded and counted, shuffling)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from survey_sim.data.batching import EncodedItem, collate
from survey_sim.data.datamodule import displayed_scale
from survey_sim.data.item import SurveyItem
from survey_sim.data.scales import (
    NOMINAL_WVS,
    NON_SUBSTANTIVE_FIRST_WVS,
    WVS_SCALES,
    non_substantive,
    positions_from_labels,
    wvs_scale,
)
from survey_sim.data.transforms import shuffle_options
from survey_sim.evaluation.metrics import emd
from survey_sim.evaluation.rows import prediction_rows, split_metrics
from survey_sim.modeling.losses import masked_log_softmax, wasserstein_loss


@pytest.mark.parametrize("label, expected", [
    ("Hard to say", True), ("Don't know", True), ("DK/Refused", True), ("Other answer", True),
    ("It is against democracy (spontaneous)", True), ("I am not [nationality]", True),
    ("Not allowed to vote", True), ("No answer", True),
    ("Don't mind", False), ("Neither agree nor disagree", False), ("Never", False), ("Not at all important", False),
    ("Other people", False), ("None at all", False)])
def test_non_substantive_rule(label, expected):
    assert non_substantive(label) is expected


def _item(qid, options, dist, language="en"):
    letters = "ABCDEFGHIJ"[:len(options)]
    return SurveyItem(group="Freedonia", question_id=qid, question="?", options=options, letters=letters,
                      distribution=dist, language=language)


def test_recorded_wvs_questions():
    assert NOMINAL_WVS == ["91", "92", "93", "152", "153", "154", "155", "156", "157"]
    assert NON_SUBSTANTIVE_FIRST_WVS == ["119", *map(str, range(241, 250))]
    q119 = wvs_scale(_item("119", ["Hard to say", "Strongly agree", "Agree", "Disagree", "Strongly disagree"],
                           [1] * 5))
    assert q119.scale == (None, 0.0, 1.0, 2.0, 3.0) and q119.ordinal
    q122_zh = wvs_scale(_item("122", ["不同意", "很难说", "同意"], [1, 1, 1], language="zh"))
    assert q122_zh.scale == (0.0, None, 1.0)  # Chinese labels: the recorded metadata by question id
    q56 = wvs_scale(_item("56", ["Better off", "Worse off", "Or about the same"], [1, 1, 1]))
    assert q56.scale == (0.0, 2.0, 1.0)
    assert not wvs_scale(_item("152", list("wxyz"), [1] * 4)).ordinal
    assert positions_from_labels(["Yes", "No", "Don't know"]) == (0.0, 1.0, None)


def test_emd_uses_the_scale_and_excludes_nominal_items():
    p, q = [0.5, 0.5, 0.0, 0.0], [0.5, 0.0, 0.0, 0.5]
    assert emd(p, q) == pytest.approx(0.5 * 2 / 3)  # half the mass moves from position 1 to 3
    # option 0 off the scale: both renormalised over options 1..3 -> p=(1,0,0), q=(0,0,1)
    assert emd(p, q, [None, 0.0, 1.0, 2.0]) == pytest.approx(1.0)
    assert emd([0.5, 0.5], [0.2, 0.8], [None, 0.0]) == 0.0  # one point on the scale
    assert emd([1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [None, 0.0, 1.0]) is None  # no human mass on the scale
    items = [_item("152", list("wxyz"), [4, 3, 2, 1]), _item("1", list("abcd"), [4, 3, 2, 1])]
    items = [wvs_scale(it) for it in items]
    rows = prediction_rows(items, np.full((2, 4), 0.25))
    assert rows[0]["emd"] is None and rows[1]["emd"] is not None
    summary = split_metrics(rows)
    assert summary["n_emd_excluded"] == 1 and summary["emd"] == pytest.approx(rows[1]["emd"])
    assert summary["jsd"] == pytest.approx((rows[0]["jsd"] + rows[1]["jsd"]) / 2)


def test_wasserstein_loss_under_shuffled_training_uses_scale_positions():
    """The loss of a shuffled item equals that of the unshuffled one (same scale, same distributions); on
    displayed positions (the old behaviour, scale=None) it does not."""
    item = _item("1", ["Very", "Rather", "Not very", "Not at all"], [0.6, 0.3, 0.1, 0.0])
    shuffled = next(it for seed in range(20) for it in shuffle_options([item], seed, 0)
                    if it.option_order != (0, 1, 2, 3) and it.option_order != (3, 2, 1, 0))
    q = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)

    def loss(it, use_scale=True):
        shown = torch.tensor([float(q[j]) for j in it.option_order], dtype=torch.float64)
        enc = EncodedItem(0, (1, 2), (5, 6, 7, 8), it.distribution, displayed_scale(it))
        batch = collate([enc], pad_id=0)
        lp = masked_log_softmax(shown.log()[None], batch["option_mask"])
        return wasserstein_loss(lp, batch["target"].double(), batch["option_mask"],
                                batch["option_scale"] if use_scale else None).item()

    assert loss(shuffled) == pytest.approx(loss(item))
    assert loss(item) == pytest.approx(emd(item.distribution, q.tolist()))
    assert loss(shuffled, use_scale=False) != pytest.approx(loss(item))


def test_wasserstein_loss_leaves_out_non_substantive_options_and_scores_nominal_items_by_tv():
    target = torch.tensor([[0.5, 0.5, 0.0], [0.2, 0.3, 0.5]], dtype=torch.float64)
    q = torch.tensor([[0.2, 0.0, 0.8], [0.5, 0.3, 0.2]], dtype=torch.float64)
    mask = torch.ones(2, 3, dtype=torch.bool)
    scale = torch.tensor([[float("nan"), 0.0, 1.0], [float("nan")] * 3])
    got = wasserstein_loss(q.log(), target, mask, scale, reduction="none")
    assert got[0].item() == pytest.approx(emd([0.5, 0.5, 0.0], [0.2, 0.0, 0.8], [None, 0.0, 1.0]))
    assert got[1].item() == pytest.approx(0.5 * (target[1] - q[1]).abs().sum().item())


def test_displaced_cost_under_shuffled_training_is_a_config_error():
    from hydra import compose, initialize_config_dir

    from survey_sim.errors import ConfigError
    from survey_sim.pipeline.preflight import check_loss_order
    from survey_sim.run import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        bad = compose(config_name="config", overrides=["loss=wasserstein", "loss.cost=squared", "shuffle.train=true"])
        fine = compose(config_name="config", overrides=["loss=wasserstein", "shuffle.train=true"])
    with pytest.raises(ConfigError, match="cost squared is over the displayed option positions"):
        check_loss_order(bad)
    check_loss_order(fine)


@pytest.mark.real_data
def test_rule_on_the_real_english_items_gives_the_recorded_questions(data_root):
    """The non-substantive rule applied to every English WVS item file gives exactly the recorded options."""
    found: dict[str, tuple[int, ...]] = {}
    for name in ("train_en.json", "valid_en.json", "test_en.json"):
        for record in json.loads((data_root / "wvs" / name).read_text(encoding="utf-8")):
            labels = [o.split(")", 1)[1] for o in record["options"]]
            skip = tuple(j for j, x in enumerate(positions_from_labels(labels)) if x is None)
            if skip:
                assert found.setdefault(str(record["id"]), skip) == skip
    recorded = {q: idx for q, (idx, _, _) in WVS_SCALES.items() if idx}
    assert found == recorded


@pytest.mark.real_data
def test_a_run_counts_and_prints_the_nominal_items(tmp_path, capsys, data_root):
    """A baseline run on WVS test items with nominal questions (Q152-Q157 are in C2-Q1): metrics.json counts
    the items without emd, the printed table says so, and predictions.jsonl has emd null for them."""
    from hydra import compose, initialize_config_dir

    from survey_sim.pipeline.job import run
    from survey_sim.run import CONFIG_DIR

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "method=uniform", "data=wvs_en", "eval_splits=[C2-Q1]", "logger=csv", f"output_dir={tmp_path}"])
    metrics = run(cfg)
    rows = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    nominal = [r for r in rows if r["split"] == "C2-Q1" and r["question_id"] in NOMINAL_WVS]
    assert nominal and all(r["emd"] is None for r in nominal)
    assert metrics["splits"]["C2-Q1"]["n_emd_excluded"] == len(nominal)
    assert f"emd not scored (nominal questions): C2-Q1 {len(nominal)} items" in capsys.readouterr().out
