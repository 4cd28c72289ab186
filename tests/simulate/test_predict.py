"""`survey_sim.simulate` predicts through Lightning: `trainer.predict` with the simulator's `predict_step`, with
the same probabilities as the module's forward pass over the same batches."""

from __future__ import annotations

import numpy as np
import torch

from survey_sim.evaluation.orders import expand_permutations
from survey_sim.modeling.simulator import SurveySimulator
from survey_sim.simulate.predict import LoadedSimulator
from survey_sim.simulate.questionnaire import Question
from survey_sim.simulate.spec import resolve_model


def test_probabilities_come_from_predict_step(monkeypatch):
    questions = [Question("q1", "Trust?", ("A lot", "Some", "None"), True), Question("q2", "Why?", ("X", "Y"))]
    items, _ = expand_permutations([it for q in questions for it in q.items(["Kenya", "Japan"])], 3)
    sim = LoadedSimulator(resolve_model(model="tiny_random"), batch_size=4)
    sim.module.temperature.fill_(0.7)
    steps = []
    original = SurveySimulator.predict_step

    def counted(self, batch, batch_idx, dataloader_idx=0):
        steps.append(batch_idx)
        return original(self, batch, batch_idx, dataloader_idx)

    monkeypatch.setattr(SurveySimulator, "predict_step", counted)
    probs = sim.probabilities(items)
    assert steps == list(range(len(steps))) and len(steps) >= 3
    assert next(sim.module.parameters()).device.type == sim.device.type  # left on its device after predicting

    dm = sim.datamodule(items)
    expected = np.zeros_like(probs)
    with torch.inference_mode():
        for batch in dm.predict_dataloader()[0]:
            batch = {k: v.to(sim.device) for k, v in batch.items()}
            p = sim.module(batch).exp().masked_fill(~batch["option_mask"], 0.0).cpu().numpy()
            expected[batch["index"].cpu().numpy(), : p.shape[1]] = p
    np.testing.assert_allclose(probs, expected, rtol=0, atol=1e-6)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
