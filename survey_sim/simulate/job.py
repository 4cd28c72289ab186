"""One simulation: a questionnaire asked of chosen countries (and subgroups) by one model, written to a folder."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import survey_sim
from survey_sim.data import demo
from survey_sim.data.subgroups import group_label
from survey_sim.errors import ConfigError
from survey_sim.evaluation.orders import expand_permutations
from survey_sim.modeling.simulator import MAX_OPTIONS
from survey_sim.simulate.countries import resolve_countries
from survey_sim.simulate.groups import parse_groups, steering_format
from survey_sim.simulate.outputs import CAUTION, draw_figures, write_summary, write_tables
from survey_sim.simulate.predict import LoadedSimulator, Progress
from survey_sim.simulate.questionnaire import Question, read_questionnaire
from survey_sim.simulate.reference import human_diversity_reference
from survey_sim.simulate.spec import resolve_model
from survey_sim.simulate.table import average_copies, tidy_table

log = logging.getLogger(__name__)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def simulate(questionnaire: str | Path, countries: str | Sequence[str], out: str | Path, *, language: str = "en",
             run: str | Path | None = None, adapter: str | None = None, model: str | None = None,
             prompt: str | None = None, permutations: int | None = None, calibration: bool = True,
             batch_size: int | None = None, figures: bool = True, groups: str | Path | None = None,
             steering: str | None = None, anchor: bool = True) -> dict:
    """Simulate every country x question (x subgroup of `groups`, see `parse_groups`); write the table,
    metadata, README and figures to `out`. `steering` names a steering format replacing the run's.

    `permutations`: cyclic shifts averaged per item (None: all K shifts). `anchor`: apply an anchored run's base
    and fitted rule to each shift's prediction (`survey_sim.simulate.anchor`). Returns the metadata written to
    metadata.json, with "files" listing the outputs.
    """
    if language not in ("en", "zh"):
        raise ConfigError(f"language must be 'en' or 'zh', got {language!r}")
    if permutations is not None and permutations < 1:
        raise ConfigError(f"permutations must be >= 1 (or omitted for all shifts), got {permutations}")
    questions: list[Question] = read_questionnaire(questionnaire)
    spec = resolve_model(run=run, adapter=adapter, model=model, prompt=prompt, calibration=calibration, anchor=anchor)
    demo_run = (spec.provenance.get("run_data") or {}).get("source") == "demo"
    names = resolve_countries(countries, extra=demo.COUNTRIES if demo_run else ())
    if steering is not None:
        spec.steering = steering_format(steering)
    subgroups = parse_groups(groups, spec.attributes) if groups is not None else []
    items = [it for q in questions for it in q.items(names, language, source=f"questionnaire:{Path(questionnaire).name}")]
    if subgroups:
        items = [it.with_(group=group_label(it.country, g), attributes=g) for it in items for g in subgroups]
    expanded, base = expand_permutations(items, permutations or MAX_OPTIONS)
    orders = sorted({n for n in np.bincount(base)})
    what = (f"{len(questions)} questions x {len(names)} countries x "
            f"{orders[0] if len(orders) == 1 else f'{orders[0]}-{orders[-1]}'} option orders")
    log.info("simulating %s: %d prompts", what, len(expanded))
    started = time.perf_counter()
    sim = LoadedSimulator(spec, batch_size)
    loaded = time.perf_counter()
    probs = sim.probabilities(expanded, Progress(len(expanded), what))
    if spec.anchor is not None:
        probs = spec.anchor.apply(expanded, probs, spec.anchor.bases(expanded))
    inferred = time.perf_counter()
    table = tidy_table(items, average_copies(expanded, probs, base))

    out = Path(out)
    reference, reference_note = human_diversity_reference() if figures else (None, "figures not drawn")
    cfg = spec.model_cfg
    metadata = {
        "caution": CAUTION,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "survey_sim": survey_sim.__version__,
        "model": {k: cfg.get(k) for k in ("name", "source", "hf_id", "package", "gguf_file", "local_path",
                                          "revision", "dtype") if cfg.get(k) is not None},
        "prompt": spec.prompt if isinstance(spec.prompt, str) else spec.prompt.get("name", "<custom>"),
        "language": language,
        **spec.provenance,
        "questionnaire": {"file": str(Path(questionnaire).resolve()), "sha256": _sha256(Path(questionnaire)),
                          "questions": [q.id for q in questions]},
        "countries": names,
        **({"groups": [dict(g) for g in subgroups],
            "steering": (spec.steering or {}).get("name", "none")} if subgroups else {}),
        "permutations": {"requested": permutations or "all", "per_item": sorted(set(table["n_permutations"]))},
        "uncertainty": "probability_low/high: min and max over the cyclic shifts of the option order (order "
                       "sensitivity of the model, not sampling error); equal to probability when one shift",
        "human_reference": reference_note,
        "throughput": {"prompts": len(expanded), "model_load_s": round(loaded - started, 3),
                       "inference_s": round(inferred - loaded, 3),
                       "prompts_per_s": round(len(expanded) / max(inferred - loaded, 1e-9), 3),
                       "device": str(sim.device)},
    }
    files = write_tables(out, table, metadata)
    if figures:
        files.update(draw_figures(out, table, reference, reference_note))
    metadata["files"] = {k: str(Path(v).relative_to(out)) for k, v in files.items()}
    metadata["throughput"]["total_s"] = round(time.perf_counter() - started, 3)
    write_summary(out, metadata)
    return metadata
