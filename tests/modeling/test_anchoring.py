"""Anchored simulators: the combination rules, their fitting, and the runs that use them (demo survey)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch

from survey_sim.data.demo import make_demo_survey
from survey_sim.errors import ConfigError
from survey_sim.modeling.anchoring import Anchor, AnchorParams, combine, fit_params

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
from reliability_helpers import run_in_process

RULES = ("loglinear", "mixture")


def _random_case(seed: int, b: int = 6, k: int = 5):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(b, k, dtype=torch.bool)
    mask[0, 3:] = False  # an item with 3 options
    lm = torch.log_softmax(torch.randn(b, k, generator=g, dtype=torch.float64).masked_fill(~mask, -torch.inf), -1)
    base = torch.rand(b, k, generator=g, dtype=torch.float64).masked_fill(~mask, 0.0)
    return lm, base / base.sum(-1, keepdim=True), mask


@pytest.mark.parametrize("rule", RULES)
def test_anchored_predictions_are_distributions(rule):
    lm, base, mask = _random_case(0)
    for params in (AnchorParams.default(rule), AnchorParams(0.3, 2.0, 0.5), AnchorParams(1.0, 0.0, 3.0)):
        probs = combine(lm, base, mask, rule, params).exp()
        assert torch.all(probs[~mask] == 0) and torch.all(probs >= 0)
        assert probs.sum(-1) == pytest.approx(torch.ones(len(probs), dtype=torch.float64), abs=1e-12)


@pytest.mark.parametrize("rule", RULES)
def test_a_model_weight_of_zero_returns_the_base(rule):
    lm, base, mask = _random_case(1)
    probs = combine(lm, base, mask, rule, AnchorParams(model_weight=0.0, base_weight=1.0)).exp()
    assert probs.numpy() == pytest.approx(base.numpy(), abs=1e-12)


def test_loglinear_with_defaults_adds_the_model_logits_to_log_base():
    lm, base, mask = _random_case(2)
    expected = torch.softmax((lm + base.log()).masked_fill(~mask, -torch.inf), -1)
    assert combine(lm, base, mask, "loglinear", AnchorParams.default("loglinear")).exp().numpy() == \
        pytest.approx(expected.numpy(), abs=1e-12)


@pytest.mark.parametrize("rule", RULES)
def test_fitting_recovers_a_useless_model_as_weight_zero(rule):
    """When the model's distribution is noise and the targets are the base, the fitted model weight is ~0."""
    rng = np.random.default_rng(0)
    n, k = 300, 4
    base = rng.dirichlet(np.ones(k), size=n)
    lm = rng.dirichlet(np.ones(k) * 0.3, size=n)
    params = fit_params(lm, base, base, np.ones((n, k), dtype=bool), rule)
    assert params.model_weight == pytest.approx(0.0, abs=0.02)


def test_fitting_uses_a_model_that_knows_the_answers():
    rng = np.random.default_rng(1)
    n, k = 300, 4
    target = rng.dirichlet(np.ones(k), size=n)
    base = np.full((n, k), 1 / k)
    params = fit_params(target, base, target, np.ones((n, k), dtype=bool), "loglinear")
    assert params.model_weight == pytest.approx(1.0, abs=0.05)


class _Encoder:
    """A stand-in sentence encoder: countries embedded by a fixed random vector per name."""

    def encode(self, texts):
        out = np.stack([np.random.default_rng(abs(hash(t)) % 2**32).normal(size=8) for t in texts])
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_anchor_bases_leave_the_items_own_country_out():
    splits = make_demo_survey()
    anchor = Anchor("prior", "loglinear", splits["train"])
    item = splits["train"][0]
    others = [it for it in splits["train"] if it.question_id == item.question_id and it.group != item.group]
    expected = np.mean([it.distribution for it in others], axis=0)
    assert anchor.bases([item])[0] == pytest.approx(expected, abs=1e-12)
    assert anchor.group(item) == "trained" and anchor.group(splits["val"][0]) == "new"
    assert anchor.bases([splits["val"][0]])[0] == pytest.approx(np.full(splits["val"][0].num_options,
                                                                       1 / splits["val"][0].num_options))


def test_an_anchor_needs_training_items_and_known_names():
    with pytest.raises(ConfigError, match="needs the training split"):
        Anchor("prior", "loglinear", [])
    with pytest.raises(ConfigError, match="unknown anchor base 'knn'.*prior, country_knn, uniform"):
        Anchor("knn", "loglinear", make_demo_survey()["train"])
    with pytest.raises(ConfigError, match="unknown anchor rule 'product'"):
        Anchor("prior", "product", make_demo_survey()["train"])


ANCHORED = ["data=demo", "model=tiny_random", "logger=csv", "method=ft", "max_items=16", "model.batch_size=4",
            "trainer.max_steps=4", "trainer.enable_progress_bar=false", "trainer.accelerator=cpu",
            "data.dev_split=dev", "anchor=prior"]


def test_anchored_run_fits_on_dev_and_val_only(tmp_path):
    """The fitted weights come from dev (trained questions) and val (new questions): changing a test split's
    human answers (here: which items it holds) leaves them unchanged."""
    a = run_in_process(tmp_path / "a", *ANCHORED)
    b = run_in_process(tmp_path / "b", *ANCHORED, "data.max_items_per_split={train: 16, val: 16, dev: 16, "
                       "test-unseen-country: 3, test-unseen-question: 5, test-unseen-both: 16}")
    fitted = a["anchor"]["fitted"]
    assert {g: f["split"] for g, f in fitted.items()} == {"trained": "dev", "new": "val"}
    assert fitted == b["anchor"]["fitted"]
    assert a["splits"]["test-unseen-country"]["n_items"] == 16 and b["splits"]["test-unseen-country"]["n_items"] == 3
    # every prediction is a distribution, and the rows keep what the model and the base said
    for line in (tmp_path / "a" / "predictions.jsonl").read_text().splitlines():
        row = json.loads(line)
        for key in ("pred", "pred_model", "anchor_base"):
            assert sum(row[key]) == pytest.approx(1.0, abs=1e-6) and min(row[key]) >= 0


def test_a_group_left_out_of_fit_groups_keeps_its_training_parameters(tmp_path):
    """anchor.fit_groups=[trained]: dev fits the trained questions' weights; new questions keep alpha = beta = 1,
    so their predictions are those before the fit, and no val split is needed for the fit."""
    m = run_in_process(tmp_path / "run", *ANCHORED, "anchor.fit_groups=[trained]")
    assert set(m["anchor"]["fitted"]) == {"trained"}
    assert m["anchor"]["params"]["new"] == asdict(AnchorParams.default("loglinear"))
    for metric in ("jsd", "emd", "accuracy"):
        assert m["splits"]["test-unseen-question"][metric] == pytest.approx(
            m["before_anchor_fit"]["test-unseen-question"][metric], abs=1e-9)
    from survey_sim.report import build_report

    build_report([tmp_path / "run"], tmp_path / "report", n_boot=0)
    assert "| new | not fitted | 1.000 | 1.000 | 1.000 | - | yes | - |" in (tmp_path / "report" / "report.md").read_text()
    with pytest.raises(ConfigError, match=r"anchor.fit_groups=\['old'\]: must be a non-empty list of "
                                          r"\['trained', 'new'\]"):
        run_in_process(tmp_path / "bad", *ANCHORED, "anchor.fit_groups=[old]")
    assert not (tmp_path / "bad").exists()  # refused by the config checks, before the run folder is made


def test_fitting_without_a_dev_split_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="anchor.fit=true fits the anchor's weights on dev.*data.dev_split.*"
                                          "anchor.fit_groups"):
        run_in_process(tmp_path / "run", *[o for o in ANCHORED if o != "data.dev_split=dev"])


def test_every_shipped_experiment_composes():
    from reliability_helpers import compose_run

    names = sorted(p.stem for p in (Path(__file__).resolve().parents[2] / "conf" / "experiment").glob("*.yaml"))
    assert {"demo", "recipe_cpu"} <= set(names)
    for name in names:
        cfg = compose_run(f"experiment={name}")
        assert cfg.method.name and cfg.model.name, name
    recipe = compose_run("experiment=recipe_cpu")
    assert recipe.data.dev_split == "dev" and recipe.anchor.base == "country_knn" and recipe.anchor.train_through
