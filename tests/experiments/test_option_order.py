"""Option-order handling: A-bias of the option shown first, shuffled training items, permutation averaging."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from survey_sim.data.item import SurveyItem
from survey_sim.data.transforms import apply_transforms, cyclic_shift, permute_options
from survey_sim.evaluation.orders import expand_permutations
from survey_sim.evaluation.rows import prediction_rows
from survey_sim.report.tables import Cell, Table, TableRow


def _item(qid="Q1", group="Germany", split="test"):
    return SurveyItem(group=group, question_id=qid, question="How much?", options=("a lot", "some", "little"),
                      letters=("A", "B", "C"), distribution=(0.5, 0.3, 0.2), split=split)


def test_a_bias_is_measured_at_the_option_shown_first():
    item = _item()
    shown = permute_options(item, [2, 0, 1], "shuffle:2,0,1")  # shown: (A) little, (B) a lot, (C) some
    [row] = prediction_rows([shown], [[1.0, 0.0, 0.0]])        # all mass on the first SHOWN option
    assert row["pred"] == pytest.approx([0.0, 0.0, 1.0])       # original order: 'little'
    assert row["first_option_mass"] == pytest.approx(1.0)
    assert row["a_bias"] == pytest.approx(1.0 - 0.2)           # minus the human share of 'little'
    [plain] = prediction_rows([item], [[1.0, 0.0, 0.0]])
    assert plain["a_bias"] == pytest.approx(0.5)


def test_permutation_averaging_removes_a_pure_position_bias():
    """A model that always puts 0.7 on the first shown option: averaged over all K shifts it is uniform."""
    items, base = expand_permutations([_item()], 3)
    assert [it.option_order[0] for it in items] == [0, 1, 2]
    [row] = prediction_rows(items, [[0.7, 0.2, 0.1]] * 3, base)
    assert row["n_permutations"] == 3
    np.testing.assert_allclose(row["pred"], [1 / 3] * 3)
    assert row["a_bias"] == pytest.approx(1 / 3 - 0.5)  # at the first option of the unshifted copy
    [single] = prediction_rows(items[:1], [[0.7, 0.2, 0.1]])
    assert single["a_bias"] == pytest.approx(0.7 - 0.5)
    shifted = cyclic_shift(_item(), 1)
    assert shifted.options == ("some", "little", "a lot")


def test_shuffled_training_items_keep_epoch_zero_order_across_builds():
    """shuffle.train: the data transforms draw epoch 0's seeded order (the same in every build)."""
    items = [_item(f"Q{i}", split="train") for i in range(30)]
    cfg = OmegaConf.create({"seed": 3, "control": False, "shuffle": {"train": True, "eval": False}})
    first = apply_transforms({"train": items, "val": items}, cfg)
    again = apply_transforms({"train": items, "val": items}, cfg)
    assert [it.option_order for it in first["train"]] == [it.option_order for it in again["train"]]
    assert {it.option_order for it in first["train"]} != {(0, 1, 2)}  # really shuffled
    assert all(it.option_order == (0, 1, 2) for it in first["val"])  # evaluation untouched
    for it in first["train"]:  # the target moves with its option
        np.testing.assert_allclose(it.to_original_order(it.distribution), [0.5, 0.3, 0.2])


def _train_epochs(epochs: int, seen: int):
    """Per training item (by index): the target of each of `seen` epochs, from the real DataModule."""
    from hydra import compose, initialize_config_dir

    from survey_sim.modeling.loading import load_tokenizer
    from survey_sim.pipeline.job import prepare_splits
    from survey_sim.pipeline.model_run import build_datamodule

    with initialize_config_dir(config_dir=str(Path(__file__).resolve().parents[2] / "conf"), version_base="1.3"):
        cfg = compose("config", overrides=["data=demo", "model=tiny_random", "max_items=40", "shuffle.train=true",
                                           f"trainer.max_epochs={epochs}", "output_dir=unused"])
    splits, names = prepare_splits(cfg)
    dm, _, _ = build_datamodule(cfg, splits, names, load_tokenizer(cfg.model), train=True)
    loader = dm.train_dataloader()
    targets = {}
    for epoch in range(seen):
        loader.batch_sampler.sampler.set_epoch(epoch)
        for batch in loader:
            for row, index in enumerate(batch["index"].tolist()):
                k = int(batch["option_mask"][row].sum())
                targets.setdefault(index, []).append(tuple(round(v, 6) for v in batch["target"][row, :k].tolist()))
    return targets


def test_shuffled_training_redraws_the_option_order_every_epoch():
    targets = _train_epochs(epochs=3, seen=4)
    assert len(targets) == 40 and all(len(t) == 4 for t in targets.values())
    changed = sum(t[1] != t[0] or t[2] != t[0] for t in targets.values())
    assert changed >= 30  # a new order per epoch for (nearly) every item (K! >= 6 orders)
    assert all(sorted(t[0]) == sorted(t[1]) == sorted(t[2]) for t in targets.values())  # same shares, moved
    assert all(t[3] == t[0] for t in targets.values())  # epoch 3 reuses version 0 (3 versions)
    assert targets == _train_epochs(epochs=3, seen=4)  # seeded
    single = _train_epochs(epochs=1, seen=2)
    assert all(t[0] == t[1] for t in single.values())  # one epoch: one order, nothing re-drawn


def test_report_marks_the_a_bias_closest_to_zero_as_best():
    rows = [TableRow(label, 1, {"C1-Q3": Cell(value)}) for label, value in (("x", 0.3), ("y", -0.05), ("z", 0.1))]
    table = Table("a_bias", ["C1-Q3"], rows, 0)
    assert table.higher_is_better is None and table.best("C1-Q3") == -0.05
