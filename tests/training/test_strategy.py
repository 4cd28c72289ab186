"""A model its device_map placed is left where it is: trained and evaluated in place, never moved by Lightning."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

from survey_sim.training.strategy import InPlaceStrategy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "reliability"))
from reliability_helpers import FT, run_in_process


def test_in_place_strategy_does_not_move_a_placed_model():
    model = torch.nn.Linear(2, 2, device="meta")  # any move would fail or change the device
    strategy = InPlaceStrategy(torch.device("cpu"), placed=True)
    strategy.connect(model)
    strategy.model_to_device()
    assert next(model.parameters()).device.type == "meta"


def test_a_device_mapped_model_fine_tunes_in_place(tmp_path):
    run_in_process(tmp_path / "run", *FT, "trainer.max_steps=4", "model.device_map=cpu")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert [h["step"] for h in metrics["history"]][-1] == 3 and metrics["splits"]
