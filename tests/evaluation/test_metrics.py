"""Metrics against scipy, their edge cases, aggregation, diversity and bootstrap intervals."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import wasserstein_distance

from survey_sim.evaluation.metrics import (
    METRICS,
    accuracy,
    aggregate,
    diversity,
    emd,
    emd_paper_code,
    item_metrics,
    js_divergence,
    jsd,
    tv,
)


def random_pairs(n=40, seed=0):
    rng = np.random.default_rng(seed)
    for i in range(n):
        k = int(rng.integers(2, 12))
        p, q = rng.dirichlet(np.ones(k)), rng.dirichlet(np.ones(k) * 0.5)
        if i % 3 == 0:
            p[rng.integers(k)] = 0.0
            p /= p.sum()
        yield p, q


def test_against_scipy():
    for p, q in random_pairs():
        k = len(p)
        pos = np.arange(k)
        assert jsd(p, q) == pytest.approx(1 - jensenshannon(p, q))
        assert js_divergence(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2)
        assert emd(p, q) == pytest.approx(wasserstein_distance(pos, pos, u_weights=p, v_weights=q) / (k - 1))
        assert emd_paper_code(p, q) == pytest.approx(wasserstein_distance(p, q))
        assert tv(p, q) == pytest.approx(0.5 * np.abs(p - q).sum())
        assert 0 <= emd(p, q) <= 1 and 0 <= js_divergence(p, q) <= 1 and 0 <= jsd(p, q) <= 1


def test_identical_and_opposite():
    p = np.array([0.0, 0.3, 0.7, 0.0])
    m = item_metrics(p, p)
    assert m["jsd"] == 1.0 and m["emd"] == 0.0 and m["js_divergence"] == 0.0 and m["tv"] == 0.0
    assert m["accuracy"] == 1.0 and m["a_bias"] == 0.0
    a, z = np.eye(5)[0], np.eye(5)[4]
    m = item_metrics(a, z)
    assert m["emd"] == pytest.approx(1.0) and m["tv"] == pytest.approx(1.0)
    assert m["js_divergence"] == pytest.approx(1.0) and m["jsd"] == pytest.approx(1 - math.sqrt(math.log(2)))
    assert m["accuracy"] == 0.0 and m["first_option_mass"] == 0.0 and m["a_bias"] == -1.0
    assert emd(np.eye(5)[0], np.eye(5)[1]) == pytest.approx(0.25)


def test_zeros_give_no_nan():
    cases = [([1.0, 0.0, 0.0], [0.0, 0.0, 1.0]), ([0.5, 0.5, 0.0], [0.0, 0.5, 0.5]), ([0.0, 1.0], [0.0, 1.0])]
    for p, q in cases:
        assert all(np.isfinite(v) for v in item_metrics(p, q).values())


def test_item_metrics_fields_and_a_bias():
    p, q = [0.2, 0.5, 0.3], [0.4, 0.35, 0.25]
    m = item_metrics(p, q)
    assert tuple(m) == METRICS
    assert m["first_option_mass"] == pytest.approx(0.4) and m["a_bias"] == pytest.approx(0.2)
    assert m["accuracy"] == 0.0
    shown_first = item_metrics(p, q, first_index=2)
    assert shown_first["first_option_mass"] == pytest.approx(0.25) and shown_first["a_bias"] == pytest.approx(-0.05)


def test_accuracy_human_ties_go_to_the_first_option():
    assert item_metrics([0.4, 0.4, 0.2], [0.5, 0.1, 0.4])["accuracy"] == 1.0
    assert item_metrics([0.4, 0.4, 0.2], [0.1, 0.5, 0.4])["accuracy"] == 0.0


def test_accuracy_of_tied_predictions_is_shared():
    """A uniform prediction scores 1/K (random tie-breaking), not 1 whenever the first option is the majority."""
    assert item_metrics([0.6, 0.3, 0.1], [1 / 3] * 3)["accuracy"] == pytest.approx(1 / 3)
    assert item_metrics([0.6, 0.3, 0.1], [0.4, 0.4, 0.2])["accuracy"] == pytest.approx(0.5)
    assert item_metrics([0.1, 0.3, 0.6], [0.4, 0.4, 0.2])["accuracy"] == 0.0


def test_accuracy_takes_lists_and_validates_like_the_other_metrics():
    assert accuracy([0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]) == 0.0
    assert accuracy([1, 2, 3, 4], [1, 2, 3, 4]) == 1.0
    with pytest.raises(ValueError, match="q \\(predicted\\) must be finite"):
        accuracy([0.5, 0.5], [np.nan, 1.0])
    with pytest.raises(ValueError, match="p has 2 options, q has 3"):
        accuracy([0.5, 0.5], [0.2, 0.3, 0.5])


def test_inputs_are_normalised_and_validated():
    assert jsd([2, 2], [1, 3]) == pytest.approx(jsd([0.5, 0.5], [0.25, 0.75]))
    with pytest.raises(ValueError, match="p has 2 options, q has 3"):
        jsd([0.5, 0.5], [0.2, 0.3, 0.5])
    with pytest.raises(ValueError, match="q \\(predicted\\) must be finite"):
        emd([0.5, 0.5], [np.nan, 1.0])
    with pytest.raises(ValueError, match="non-negative"):
        tv([1.5, -0.5], [0.5, 0.5])


def rows_for(groups, questions, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for g in groups:
        for qid, k in questions.items():
            p, q = rng.dirichlet(np.ones(k)), rng.dirichlet(np.ones(k))
            out.append({"split": "val" if g == "Chile" else "train", "group": g, "question_id": qid,
                        "human": p.tolist(), "pred": q.tolist(), **item_metrics(p, q)})
    return out


def test_aggregate():
    rows = rows_for(["Chile", "Japan", "Kenya"], {"1": 4, "2": 2})
    total = aggregate(rows)
    assert total["n_items"] == 6 and set(total) == {"n_items", *METRICS}
    assert total["jsd"] == pytest.approx(np.mean([r["jsd"] for r in rows]))
    by_split = aggregate(rows, by="split")
    assert list(by_split) == ["train", "val"] and by_split["val"]["n_items"] == 2
    assert by_split["val"]["emd"] == pytest.approx(np.mean([r["emd"] for r in rows if r["group"] == "Chile"]))
    by_both = aggregate(rows, by=("group", "question_id"))
    assert len(by_both) == 6 and by_both[("Japan", "2")]["n_items"] == 1
    with pytest.raises(KeyError, match="row 0 has no key.*country"):
        aggregate(rows, by="country")


def test_diversity():
    rows = rows_for(["Chile", "Japan", "Kenya"], {"1": 4, "2": 2}) + rows_for(["Peru"], {"3": 3})
    div = diversity(rows)
    assert list(div) == ["1", "2"]  # question 3 has one group only
    one = [r for r in rows if r["question_id"] == "1"]
    pairs = list(combinations(one, 2))
    assert div["1"]["n_groups"] == 3
    assert div["1"]["human"] == pytest.approx(np.mean([1 - jensenshannon(a["human"], b["human"]) for a, b in pairs]))
    assert div["1"]["model"] == pytest.approx(np.mean([1 - jensenshannon(a["pred"], b["pred"]) for a, b in pairs]))
    same = [{"question_id": "9", "group": g, "human": [0.1, 0.9], "pred": [0.5, 0.5]} for g in "ab"]
    assert diversity(same)["9"]["model"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="question 9: groups have different numbers of options"):
        diversity(same + [{"question_id": "9", "group": "c", "human": [1, 0, 0], "pred": [1, 0, 0]}])



def test_mean_pairwise_jsd_is_the_mean_of_jsd_over_all_pairs():
    from survey_sim.evaluation.metrics import jsd, mean_pairwise_jsd

    dists = np.random.default_rng(0).dirichlet(np.ones(5), size=7)
    dists[0] = [1.0, 0.0, 0.0, 0.0, 0.0]  # zeros in a distribution
    expected = np.mean([jsd(a, b) for a, b in combinations(dists, 2)])
    assert mean_pairwise_jsd(dists * 3.0) == pytest.approx(expected, abs=1e-12)  # unnormalised rows too
    with pytest.raises(ValueError, match="question q: needs at least 2"):
        mean_pairwise_jsd(dists[:1], "question q")
    with pytest.raises(ValueError, match="non-negative"):
        mean_pairwise_jsd([[0.5, 0.5], [-0.1, 1.1]])
