"""Diversity across countries (`survey_sim.evaluation.metrics.diversity`) of the simulated questions, and of
WVS-7 training questions as the human reference."""

from __future__ import annotations

import os

import pandas as pd

from survey_sim.errors import SurveySimError
from survey_sim.evaluation.metrics import diversity
from survey_sim.paths import config_dir

_REFERENCES: dict[str | None, tuple[pd.DataFrame | None, str]] = {}


def human_diversity_reference() -> tuple[pd.DataFrame | None, str]:
    """Per WVS train question (C1 x Q1): option count and human diversity (mean pairwise 1-JSD across
    countries), read from $SURVEY_SIM_DATA; (None, reason) when the data is not available. Loaded once per
    process and data folder, then served from memory (a copy)."""
    root = os.environ.get("SURVEY_SIM_DATA")
    if root not in _REFERENCES:
        _REFERENCES[root] = _load_human_reference()
    frame, note = _REFERENCES[root]
    return (None if frame is None else frame.copy()), note


def _load_human_reference() -> tuple[pd.DataFrame | None, str]:
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    from survey_sim.data.splits import load_splits

    overrides = ["data=wvs_en", "data.val_split=null", "data.test_splits=[]"]
    try:
        if GlobalHydra.instance().is_initialized():  # called from inside a Hydra app
            cfg = compose(config_name="config", overrides=overrides)
        else:
            with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
                cfg = compose(config_name="config", overrides=overrides)
        items = load_splits(cfg.data)["train"]
    except (SurveySimError, OSError) as err:
        first = str(err).splitlines()[0]
        return None, f"no human reference: the WVS data is not available ({first})"
    rows = [{"question_id": it.question_id, "group": it.group, "human": list(it.distribution)} for it in items]
    k = {it.question_id: it.num_options for it in items}
    frame = pd.DataFrame([{"question_id": q, "n_options": k[q], "human": d["human"], "n_groups": d["n_groups"]}
                          for q, d in diversity(rows, sides=("human",)).items()])
    note = (f"human reference: WVS-7 train split (C1 x Q1: {frame['n_groups'].max()} countries, {len(frame)} "
            "questions) from $SURVEY_SIM_DATA, matched by option count")
    return frame, note


def model_diversity(table: pd.DataFrame) -> pd.DataFrame:
    """Per simulated question (in the table's order): option count and mean pairwise 1-JSD of the predictions
    across countries."""
    rows = [{"question_id": qid, "group": country, "pred": part.sort_values("option_index")["probability"].tolist()}
            for (qid, country), part in table.groupby(["question_id", "country"], sort=False)]
    per_question = diversity(rows, sides=("model",))
    n_options = {str(r["question_id"]): len(r["pred"]) for r in rows}
    records = [{"question_id": qid, "n_options": n_options[str(qid)], **per_question[str(qid)]}
               for qid in table["question_id"].unique() if str(qid) in per_question]
    return pd.DataFrame(records, columns=["question_id", "n_options", "n_groups", "model"])
