"""Temperature calibration: one temperature T dividing the option logits, fitted on the validation split.

T minimises the mean KL(human || predicted) over validation items, with predictions made exactly as the
run makes them: softmax(logits / T) per (possibly cyclically shifted) copy of an item, mapped back to the
original option order and averaged over the copies (`survey_sim.evaluation.orders`). Log-probabilities at
T = 1 serve as logits (they differ from the logits by a per-copy constant, which the softmax ignores). The
fit is a bounded 1-D search over log T. The result is stored as calibration.json in the run folder;
`survey_sim.simulate` applies it.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy.optimize import minimize_scalar

from survey_sim.data.item import SurveyItem
from survey_sim.errors import ConfigError, SurveyDataError
from survey_sim.evaluation.orders import OptionOrders
from survey_sim.evaluation.rows import prediction_rows, split_metrics
from survey_sim.io import atomic_write_json, read_text

log = logging.getLogger(__name__)

FILE = "calibration.json"
BOUNDS = (0.05, 20.0)
_TINY = 1e-45  # float32 probabilities below this are 0: clamp before taking logs


class _Prepared:
    """Arrays of a split's copies for fast evaluation at many temperatures."""

    def __init__(self, items: Sequence[SurveyItem], probs, base: Sequence[int] | None):
        probs = np.asarray(probs, dtype=np.float64)
        n = len(items)
        n_base = n if base is None else len(base)
        if probs.ndim != 2 or len(probs) != n or n_base != n:
            raise ValueError(f"{n} items, predictions of shape {probs.shape}, {n_base} base indices")
        self.orders = OptionOrders(items, base)
        self.logp = np.where(self.orders.valid, np.log(np.clip(self.orders.padded(probs), _TINY, None)), -np.inf)
        self.human = self.orders.original([it.distribution for it in items])[self.orders.first]

    def tempered(self, temperature: float) -> np.ndarray:
        """[N, width] the copies' probabilities (current option order) at `temperature`."""
        z = self.logp / temperature
        z = z - z.max(axis=1, keepdims=True)
        q = np.where(self.orders.valid, np.exp(z), 0.0)
        return q / q.sum(axis=1, keepdims=True)

    def predictions(self, temperature: float) -> np.ndarray:
        """[n_base, K] averaged predictions in original order at `temperature`."""
        return self.orders.mean(self.tempered(temperature))

    def kl(self, temperature: float) -> float:
        """Mean over base items of KL(human || prediction), in nats."""
        q = self.predictions(temperature)
        p = self.human
        terms = np.where(p > 0, p * (np.log(np.clip(p, 1e-300, None)) - np.log(np.clip(q, 1e-300, None))), 0.0)
        return float(terms.sum(axis=1).mean())


def tempered(items: Sequence[SurveyItem], probs, temperature: float) -> np.ndarray:
    """The copies' probabilities [N, width] (current option order) recomputed at `temperature`."""
    return _Prepared(items, probs, None).tempered(temperature)


def mean_kl(items: Sequence[SurveyItem], probs, base: Sequence[int] | None = None,
            temperature: float = 1.0) -> float:
    """Mean KL(human || averaged prediction at `temperature`) over base items (nats)."""
    return _Prepared(items, probs, base).kl(temperature)


def fit_temperature(items: Sequence[SurveyItem], probs, base: Sequence[int] | None = None,
                    bounds: tuple[float, float] = BOUNDS) -> float:
    """The temperature in `bounds` minimising the mean KL of the averaged predictions (bounded search on log T)."""
    lo, hi = bounds
    if not 0 < lo < 1 < hi:
        raise ConfigError(f"temperature bounds must satisfy 0 < low < 1 < high, got {bounds}")
    if not len(items):
        raise ConfigError("cannot fit a temperature on an empty split")
    prep = _Prepared(items, probs, base)
    res = minimize_scalar(lambda u: prep.kl(math.exp(u)), bounds=(math.log(lo), math.log(hi)),
                          method="bounded", options={"xatol": 1e-4})
    temperature = math.exp(float(res.x))
    # the bounded search never evaluates the end points themselves: keep T = 1 unless it is really better
    return temperature if prep.kl(temperature) < prep.kl(1.0) else 1.0


def split_summary(items: Sequence[SurveyItem], probs, base: Sequence[int] | None, temperature: float) -> dict:
    """The split's metrics (as in metrics.json) and mean KL at `temperature`."""
    rows = prediction_rows(items, tempered(items, probs, temperature), base)
    return {**split_metrics(rows), "kl": mean_kl(items, probs, base, temperature)}


def calibrate(items: Sequence[SurveyItem], probs, base: Sequence[int] | None = None, *,
              split: str = "val", bounds: tuple[float, float] = BOUNDS) -> dict:
    """Fit T on one split's predictions at T = 1; returns the calibration record with metrics before/after."""
    temperature = fit_temperature(items, probs, base, bounds)
    n_base = len(set(base)) if base is not None else len(items)
    result = {
        "temperature": temperature, "objective": "kl", "fit_split": split, "n_items": n_base,
        "n_copies": len(items), "bounds": list(bounds),
        f"{split}_before": split_summary(items, probs, base, 1.0),
        f"{split}_after": split_summary(items, probs, base, temperature),
    }
    log.info("calibration on %s (%d items): T = %.3f, KL %.4f -> %.4f", split, n_base, temperature,
             result[f"{split}_before"]["kl"], result[f"{split}_after"]["kl"])
    result["at_bound"] = not bounds[0] * 1.01 < temperature < bounds[1] / 1.01
    if result["at_bound"]:
        log.warning("calibration on %s: T = %.3f is at the search bound %s; the predictions carry little "
                    "information about the validation targets (T -> large flattens them to uniform)",
                    split, temperature, list(bounds))
    return result


def calibrate_module(trainer, module, datamodule, items: Sequence[SurveyItem], base: Sequence[int],
                     out_dir: Path) -> dict:
    """Validate at T = 1 (unless the module's validation predictions are current at T = 1), fit T on the
    validation predictions, set `module.temperature` and write calibration.json (rank 0). Later test passes
    of `module` use the fitted temperature."""
    split = datamodule.val_split
    if split is None:
        raise ConfigError("calibrate=true needs a validation split (data.val_split)")
    module.temperature.fill_(1.0)
    if split not in module.current_predictions():  # else: the validation at the end of training, at T = 1
        trainer.validate(module, datamodule=datamodule, verbose=False)
    result = calibrate(items, module.predictions[split].numpy(), base, split=split)
    module.temperature.fill_(result["temperature"])
    if trainer.is_global_zero:
        write_calibration(out_dir, result)
    return result


def write_calibration(out_dir: str | Path, result: dict) -> Path:
    return atomic_write_json(Path(out_dir) / FILE, result)


def read_calibration(run_dir: str | Path) -> dict | None:
    """The calibration record of a run folder, or None when it has none; SurveyDataError if malformed."""
    path = Path(run_dir) / FILE
    if not path.exists():
        return None
    try:
        record = json.loads(read_text(path))
    except json.JSONDecodeError as err:
        raise SurveyDataError(f"not valid JSON: {err}", file=str(path)) from None
    t = record.get("temperature") if isinstance(record, dict) else None
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) or t <= 0:
        raise SurveyDataError(f"temperature must be a positive number, got {t!r}", file=str(path),
                              field="temperature")
    return record
