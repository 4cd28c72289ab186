"""Anchoring ablation from an anchored run's saved predictions, without running the model again.

    python experiments/anchor_ablation.py RUN_DIR [RUN_DIR ...] [--json out.json]

An anchored run (anchor=prior|country_knn|uniform) stores per item what the model alone predicted
(`pred_model`) and the base alone (`anchor_base`). From these this script rebuilds, per split, the mean 1-JSD
of: the base alone, the model alone, and each combination rule with its weights fitted the way the run fits
them (dev rows for trained questions, val rows for new questions; never a test split), with and without the
model's scale (temperature) fitted. Rows are in each item's original option order; the combination acts
option by option, so the order does not change it.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from scipy.spatial.distance import jensenshannon

from survey_sim.modeling.anchoring import FIT_SPLITS, AnchorParams, combine, fit_params

VARIANTS = [("loglinear", True), ("loglinear", False), ("mixture", True), ("mixture", False)]


def _arrays(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    k = max(len(r["human"]) for r in rows)
    out, mask = np.zeros((len(rows), k)), np.zeros((len(rows), k), dtype=bool)
    for i, r in enumerate(rows):
        out[i, : len(r[key])], mask[i, : len(r[key])] = r[key], True
    return out, mask


def _score(rows: list[dict], probs: np.ndarray) -> float:
    return float(np.mean([1 - jensenshannon(r["human"], p[: len(r["human"])]) for r, p in zip(rows, probs)]))


def _trained(row: dict) -> bool:
    """Whether the row's question was trained on: its base is not the uniform fallback of new questions."""
    return not np.allclose(row["anchor_base"], 1.0 / len(row["anchor_base"]))


def ablation(run_dir: Path) -> dict[str, dict[str, float]]:
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    if "pred_model" not in rows[0]:
        raise SystemExit(f"{run_dir}: not an anchored run (its predictions have no pred_model)")
    by_split: dict[str, list[dict]] = defaultdict(list)
    for r in rows:
        by_split[r["split"]].append(r)
    groups = {"trained": True, "new": False}
    table: dict[str, dict[str, float]] = {"base alone": {}, "model alone": {}}
    for split, split_rows in by_split.items():
        table["base alone"][split] = _score(split_rows, _arrays(split_rows, "anchor_base")[0])
        table["model alone"][split] = _score(split_rows, _arrays(split_rows, "pred_model")[0])
    for rule, scale in VARIANTS:
        params = {}
        for group, split in FIT_SPLITS.items():
            fit_rows = [r for r in by_split.get(split, []) if _trained(r) == groups[group]]
            if not fit_rows:
                params[group] = AnchorParams.default(rule)
                continue
            (lm, mask), (base, _), (human, _) = (_arrays(fit_rows, k) for k in ("pred_model", "anchor_base", "human"))
            params[group] = fit_params(lm, base, human, mask, rule, fit_model_scale=scale)
        name = f"{rule}, fitted weights" + (" and temperature" if scale else "")
        table[name] = {}
        for split, split_rows in by_split.items():
            probs = np.zeros(_arrays(split_rows, "human")[0].shape)
            for group, trained in groups.items():
                idx = [i for i, r in enumerate(split_rows) if _trained(r) == trained]
                if idx:
                    sub = [split_rows[i] for i in idx]
                    (lm, mask), (base, _) = _arrays(sub, "pred_model"), _arrays(sub, "anchor_base")
                    logp = combine(torch.as_tensor(np.log(np.clip(lm, 1e-300, None))), torch.as_tensor(base),
                                   torch.as_tensor(mask), rule, params[group])
                    probs[idx, : mask.shape[1]] = logp.exp().numpy()
            table[name][split] = _score(split_rows, probs)
        table[name]["params"] = {g: vars(p) for g, p in params.items()}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, help="write the tables as JSON here")
    args = parser.parse_args()
    out = {}
    for run in args.runs:
        table = ablation(run)
        out[str(run)] = table
        splits = [s for s in next(iter(table.values())) if s != "params"]
        print(f"\n{run}\n{'':<48}" + "".join(f"{s:>10}" for s in splits))
        for name, values in table.items():
            print(f"{name:<48}" + "".join(f"{values[s]:>10.4f}" for s in splits))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
