"""Training checkpoints that survive a kill: atomic writes, safe loading, and the random state.

A checkpoint holds the adapter weights, the optimizer and scheduler state, Lightning's loop position,
the DataModule's data position (`SurveyDataModule.state_dict`) and, through `RandomState`, torch's random
generators. Resuming from it (`resume=true`) therefore continues the run as if it had never stopped.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.plugins.io import TorchCheckpointIO

from survey_sim.io import atomic_writer

# Lightning warns on every mid-epoch resume unless the DataLoader itself is stateful; SurveyDataModule keeps
# and restores the data position instead (its state_dict), so the warning does not apply.
warnings.filterwarnings("ignore", message="You're resuming from a checkpoint that ended before the epoch ended")


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside its target, fsyncs it and renames it into place;
    reads checkpoints with `torch.load(weights_only=True)`.

    Lightning's own writer stages the file in the system temp folder and moves it, which is a copy (not
    atomic) whenever that folder is on another file system than the run folder, as on most clusters.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options")
        with atomic_writer(path) as fh:
            torch.save(checkpoint, fh)

    def load_checkpoint(self, path, map_location: Any | None = None, weights_only: bool | None = None) -> dict:
        """Always weights_only=True: survey-sim checkpoints hold tensors and plain values, nothing to unpickle."""
        return super().load_checkpoint(path, map_location=map_location or (lambda storage, loc: storage),
                                       weights_only=True)


class RandomState(Callback):
    """Keeps torch's CPU and CUDA random generators in each checkpoint and restores them on resume, so that
    dropout after a resume draws the numbers it would have drawn in an uninterrupted run."""

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"cpu": torch.get_rng_state()}
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        torch.set_rng_state(state_dict["cpu"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state_dict["cuda"])

