"""Metrics of subgroup items: per attribute value, and model vs human differences between groups.

Prediction rows of subgroup items carry `country` and `attributes` ({label: value in words}). Two items
differ only in one attribute when they share country, question, language and every other attribute: such a
pair (e.g. women vs men aged 18-29 in Japan on one question) is a between-group difference. For each pair
the difference of the mean answer position (sum_i i p_i / (K-1), in [0, 1]; meaningful on ordinal scales)
and the total variation distance are taken for the humans and for the model: a simulator that knows the
groups reproduces the human differences (points on the diagonal of the report's figure).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from itertools import combinations

import numpy as np

from survey_sim.evaluation.metrics import aggregate


def has_attributes(rows: Iterable[Mapping]) -> bool:
    return any(row.get("attributes") for row in rows)


def attribute_metrics(rows: Iterable[Mapping]) -> dict[str, dict]:
    """Mean metrics (with n_items) per attribute value, keyed 'label=value' (e.g. 'sex=female')."""
    tagged = [{**row, "_value": f"{label}={value}"} for row in rows
              for label, value in (row.get("attributes") or {}).items()]
    return aggregate(tagged, by="_value") if tagged else {}


def _position(p) -> float:
    p = np.asarray(p, dtype=np.float64)
    return float(np.dot(p, np.arange(p.size)) / max(p.size - 1, 1))


def _tv(p, q) -> float:
    return float(0.5 * np.abs(np.asarray(p, dtype=np.float64) - np.asarray(q, dtype=np.float64)).sum())


def difference_points(rows: Iterable[Mapping]) -> list[dict]:
    """One point per pair of items that differ only in one attribute: the attribute, the two values, and
    the human and model differences (`human_diff`/`model_diff`: mean position of the first value's
    distribution minus the second's; `human_tv`/`model_tv`: total variation between the two)."""
    cells: dict[tuple, list[Mapping]] = defaultdict(list)
    for row in rows:
        attrs = row.get("attributes") or {}
        for label in attrs:
            others = tuple(sorted((k, v) for k, v in attrs.items() if k != label))
            cells[(row.get("split"), row.get("country"), str(row["question_id"]), row.get("language"), label,
                   others)].append(row)
    points = []
    for (split, country, qid, _, label, _), group in sorted(cells.items(), key=lambda kv: str(kv[0])):
        by_value = sorted(group, key=lambda r: str(r["attributes"][label]))
        for a, b in combinations(by_value, 2):
            if len(a["human"]) != len(b["human"]):
                continue
            points.append({
                "split": split, "country": country, "question_id": qid, "attribute": label,
                "values": f"{a['attributes'][label]} vs {b['attributes'][label]}",
                "human_diff": _position(a["human"]) - _position(b["human"]),
                "model_diff": _position(a["pred"]) - _position(b["pred"]),
                "human_tv": _tv(a["human"], b["human"]), "model_tv": _tv(a["pred"], b["pred"]),
            })
    return points


def difference_summary(points: Iterable[Mapping]) -> dict[str, dict]:
    """Per attribute: pairs, the correlation of model and human differences (None under 3 pairs or without
    variation), their mean absolute error, mean |difference| and mean TV of humans and of the model."""
    by_attr: dict[str, list[Mapping]] = defaultdict(list)
    for p in points:
        by_attr[p["attribute"]].append(p)
    out = {}
    for label, pts in sorted(by_attr.items()):
        human = np.array([p["human_diff"] for p in pts])
        model = np.array([p["model_diff"] for p in pts])
        corr = None
        if len(pts) >= 3 and human.std() > 0 and model.std() > 0:
            corr = float(np.corrcoef(human, model)[0, 1])
        out[label] = {"n_pairs": len(pts), "corr": corr, "mae": float(np.abs(model - human).mean()),
                      "human_abs_diff": float(np.abs(human).mean()), "model_abs_diff": float(np.abs(model).mean()),
                      "human_tv": float(np.mean([p["human_tv"] for p in pts])),
                      "model_tv": float(np.mean([p["model_tv"] for p in pts]))}
    return out


def group_metrics(rows: Iterable[Mapping]) -> dict:
    """metrics.json's per-group block of one split: `by_value` (attribute_metrics) and `differences`
    (difference_summary); empty when the rows have no attributes."""
    rows = list(rows)
    if not has_attributes(rows):
        return {}
    return {"by_value": attribute_metrics(rows), "differences": difference_summary(difference_points(rows))}
