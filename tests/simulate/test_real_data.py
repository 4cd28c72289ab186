"""Measurements on the real WVS validation split with zero-shot SmolLM2 (slow; needs SURVEY_SIM_DATA).

A seeded subset of N_ITEMS validation items (all items: SURVEY_SIM_MEASURE_ITEMS=0) is predicted once for
every cyclic shift of its options. From these predictions:
(a) temperature calibration (permutations=1, as `survey_sim.run calibrate=true` fits it): T fitted on one
    half of the items, KL before/after reported on that half and on the held-out half;
(b) A-bias (first-option mass minus the human first-option mass) without and with permutation averaging.
The numbers are printed (run with -s) and written to $SURVEY_SIM_MEASURE_OUT when set.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from survey_sim.evaluation.calibration import calibrate, fit_temperature, mean_kl
from survey_sim.evaluation.orders import expand_permutations
from survey_sim.evaluation.rows import prediction_rows, split_metrics

pytestmark = [pytest.mark.slow, pytest.mark.real_data]
N_ITEMS = int(os.environ.get("SURVEY_SIM_MEASURE_ITEMS", "300"))


def _select(items, probs, base, keep):
    idx = [i for i, b in enumerate(base) if b in keep]
    return [items[i] for i in idx], probs[idx], [base[i] for i in idx]


def test_calibration_and_permutation_averaging_on_wvs_val():
    if not os.environ.get("SURVEY_SIM_DATA"):
        pytest.skip("SURVEY_SIM_DATA is not set: the real WVS data is needed")
    from hydra import compose, initialize_config_dir

    from survey_sim.data.splits import load_splits
    from survey_sim.run import CONFIG_DIR
    from survey_sim.simulate.predict import LoadedSimulator
    from survey_sim.simulate.spec import resolve_model

    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="config", overrides=[
            "data=wvs_en", "data.train_split=null", "data.test_splits=[]",
            f"max_items={N_ITEMS or 'null'}"])
    items = load_splits(cfg.data, seed=int(cfg.seed), max_items=cfg.max_items)["val"]
    expanded, base = expand_permutations(items, 26)
    probs = LoadedSimulator(resolve_model(model="smollm2_135m")).probabilities(expanded)

    # (a) calibration at permutations=1: fit on even-numbered items, report on both halves
    first = [i for i, it in enumerate(expanded) if not it.transforms]
    one_items, one_probs, one_base = [expanded[i] for i in first], probs[first], [base[i] for i in first]
    halves = {"fit": set(range(0, len(items), 2)), "held_out": set(range(1, len(items), 2))}
    t_half = fit_temperature(*_select(one_items, one_probs, one_base, halves["fit"]))
    kl = {name: {"before": mean_kl(*_select(one_items, one_probs, one_base, keep)),
                 "after": mean_kl(*_select(one_items, one_probs, one_base, keep), temperature=t_half)}
          for name, keep in halves.items()}
    full = calibrate(one_items, one_probs, one_base)

    # (b) A-bias without / with averaging over all cyclic shifts
    plain = split_metrics(prediction_rows(one_items, one_probs, one_base))
    averaged = split_metrics(prediction_rows(expanded, probs, base))
    result = {
        "n_items": len(items), "n_prompts": len(expanded), "model": "smollm2_135m (zero-shot)",
        "calibration_half_split": {"temperature": t_half, "kl": kl},
        "calibration_all_val": {"temperature": full["temperature"], "kl_before": full["val_before"]["kl"],
                                "kl_after": full["val_after"]["kl"], "jsd_before": full["val_before"]["jsd"],
                                "jsd_after": full["val_after"]["jsd"]},
        "a_bias": {"permutations_1": plain["a_bias"], "all_cyclic_shifts": averaged["a_bias"]},
        "jsd": {"permutations_1": plain["jsd"], "all_cyclic_shifts": averaged["jsd"]},
        "first_option_mass": {"permutations_1": plain["first_option_mass"],
                              "all_cyclic_shifts": averaged["first_option_mass"]},
    }
    print(json.dumps(result, indent=2))
    if os.environ.get("SURVEY_SIM_MEASURE_OUT"):
        with open(os.environ["SURVEY_SIM_MEASURE_OUT"], "w") as fh:
            json.dump(result, fh, indent=2)
    assert kl["held_out"]["after"] < kl["held_out"]["before"]
    assert abs(averaged["a_bias"]) < abs(plain["a_bias"])
    assert np.isfinite(t_half) and t_half > 0
