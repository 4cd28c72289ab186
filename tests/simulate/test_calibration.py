"""Temperature calibration: recovers a known temperature, through permutation copies too; file handling."""

from __future__ import annotations

import numpy as np
import pytest

from survey_sim.data.item import LETTERS, SurveyItem
from survey_sim.errors import SurveyDataError
from survey_sim.evaluation.calibration import (
    calibrate,
    fit_temperature,
    mean_kl,
    read_calibration,
    tempered,
    write_calibration,
)
from survey_sim.evaluation.orders import expand_permutations


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def _synthetic(true_t: float, n: int = 60, seed: int = 0):
    """Items whose human distribution is softmax(logits / true_t); predictions softmax(logits) at T = 1."""
    rng = np.random.default_rng(seed)
    items, probs = [], np.zeros((n, 26))
    for i in range(n):
        k = int(rng.integers(2, 7))
        logits = rng.normal(0, 2.0, k)
        items.append(SurveyItem(group=f"g{i % 5}", question_id=f"q{i}", question="Q?",
                                options=tuple(f"o{j}" for j in range(k)), letters=tuple(LETTERS[:k]),
                                distribution=tuple(_softmax(logits / true_t))))
        probs[i, :k] = _softmax(logits)
    return items, probs


@pytest.mark.parametrize("true_t", [0.5, 1.0, 2.5])
def test_fit_recovers_the_temperature(true_t):
    items, probs = _synthetic(true_t)
    t = fit_temperature(items, probs)
    assert t == pytest.approx(true_t, rel=2e-3)
    assert mean_kl(items, probs, temperature=t) <= mean_kl(items, probs) + 1e-12


def test_fit_through_cyclic_copies_maps_back_to_the_original_order():
    """Each copy's prediction is the original's rotated (an order-invariant model): fitting on the copies
    gives the same temperature, and KL is measured against the original-order human distribution."""
    items, probs = _synthetic(2.0, n=30, seed=1)
    expanded, base = expand_permutations(items, 26)
    copy_probs = np.zeros((len(expanded), 26))
    for row, (it, b) in enumerate(zip(expanded, base)):
        copy_probs[row, : it.num_options] = probs[b, list(it.option_order)]
    assert fit_temperature(expanded, copy_probs, base) == pytest.approx(2.0, rel=2e-3)
    assert mean_kl(expanded, copy_probs, base) == pytest.approx(mean_kl(items, probs))


def test_calibrate_record_and_file_roundtrip(tmp_path):
    items, probs = _synthetic(0.6, n=20, seed=2)
    record = calibrate(items, probs)
    assert record["val_after"]["kl"] < record["val_before"]["kl"]
    assert record["val_after"]["jsd"] > record["val_before"]["jsd"]
    assert record["n_items"] == 20 and record["objective"] == "kl"
    sharp = tempered(items, probs, 0.5)
    assert np.allclose(sharp.sum(axis=1), 1.0) and (sharp.max(axis=1) > probs.max(axis=1)).all()
    write_calibration(tmp_path, record)
    assert read_calibration(tmp_path)["temperature"] == pytest.approx(record["temperature"])
    assert read_calibration(tmp_path / "nothing") is None
    (tmp_path / "calibration.json").write_text('{"temperature": -1}')
    with pytest.raises(SurveyDataError, match="field 'temperature'"):
        read_calibration(tmp_path)
    (tmp_path / "calibration.json").write_bytes('{"note": "café", "temperature": 1.5}'.encode("latin-1"))
    with pytest.raises(SurveyDataError, match="calibration.json: not UTF-8 text"):
        read_calibration(tmp_path)


def test_uninformative_predictions_hit_the_bound_and_say_so(caplog):
    """Confident predictions unrelated to uniform-ish targets: T runs to the upper bound (flattening)."""
    items, probs = _synthetic(1.0, n=30, seed=3)
    flat = [it.with_(distribution=(1.0,) * it.num_options) for it in items]
    record = calibrate(flat, probs, bounds=(0.1, 10.0))
    assert record["temperature"] == pytest.approx(10.0, rel=0.01) and record["at_bound"]
    assert "at the search bound" in caplog.text
    assert not calibrate(items, probs)["at_bound"]
