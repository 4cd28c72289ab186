"""Lightning keeps submodule modes, and Hugging Face loads models in eval mode: training must still run with
LoRA dropout on, and evaluation with it off."""

import lightning as L
from torch.utils.data import DataLoader

from survey_sim.data.batching import EncodedItem, collate
from survey_sim.modeling.lora import add_lora
from survey_sim.modeling.simulator import SurveySimulator
from tests.modeling.test_simulator_fast_path import _model


class _ModeProbe(L.Callback):
    def __init__(self):
        self.seen = {"train": set(), "test": set()}

    def _record(self, stage, module):
        self.seen[stage] |= {m.training for n, m in module.named_modules() if n.endswith("lora_dropout.default")}

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        self._record("train", module)

    def on_test_batch_start(self, trainer, module, batch, batch_idx, dataloader_idx=0):
        self._record("test", module)


def test_lora_dropout_is_on_in_training_and_off_in_evaluation(tmp_path):
    model = add_lora(_model().eval(), {"r": 4, "alpha": 8, "dropout": 0.5, "target_modules": ["q_proj"]})
    model.eval()  # as from_pretrained leaves it
    items = [EncodedItem(i, (5, 6, 7 + i), (10, 11), (0.3, 0.7)) for i in range(4)]
    batches = DataLoader([collate(items[:2], pad_id=0), collate(items[2:], pad_id=0)], batch_size=None)
    sim = SurveySimulator(model, loss="kl", eval_split_names=["val"], evaluate_fn=lambda split, probs, mass: {})
    probe = _ModeProbe()
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[probe])
    trainer.fit(sim, train_dataloaders=batches)
    trainer.test(sim, dataloaders=batches, verbose=False)
    assert probe.seen == {"train": {True}, "test": {False}}
