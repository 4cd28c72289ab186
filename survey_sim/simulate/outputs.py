"""The simulation's output folder: the tidy table (CSV, Parquet, JSON), figures, metadata.json and README.md."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from survey_sim.io import atomic_write_bytes, atomic_write_json, atomic_write_text, slug
from survey_sim.simulate.reference import model_diversity

CAUTION = ("Caution: these are simulated distributions from a language model, not survey evidence; "
           "do not report them as what people in these countries think.")


def write_tables(out: Path, table: pd.DataFrame, metadata: dict) -> dict[str, Path]:
    """simulation.parquet, simulation.csv and simulation.json (the metadata with the table's records)."""
    buf = io.BytesIO()
    table.to_parquet(buf, index=False)
    return {"parquet": atomic_write_bytes(out / "simulation.parquet", buf.getvalue()),
            "csv": atomic_write_text(out / "simulation.csv", table.to_csv(index=False)),
            "json": atomic_write_json(out / "simulation.json", {"metadata": metadata,
                                                                "table": table.to_dict("records")})}


def draw_figures(out: Path, table: pd.DataFrame, reference: pd.DataFrame | None, note: str) -> dict[str, Path]:
    """figures/: one bar chart per question, one heatmap per country (or subgroup), and the diversity figure."""
    from survey_sim.simulate.plots import plot_country, plot_diversity, plot_question, save_figure

    figures_dir = out / "figures"
    files = {}
    q_used, c_used = set(), set()
    plotted = table.assign(country=table["group"])  # one bar / heatmap per country, or per subgroup
    for qid, part in plotted.groupby("question_id", sort=False):
        fig = plot_question(part, caption=CAUTION)
        files[f"question:{qid}"] = save_figure(fig, figures_dir / f"question_{slug(qid, q_used)}.png")
    for country, part in plotted.groupby("country", sort=False):
        fig = plot_country(part, caption=CAUTION)
        files[f"country:{country}"] = save_figure(fig, figures_dir / f"country_{slug(country, c_used)}.png")
    fig = plot_diversity(model_diversity(plotted), reference, note=note, caption=CAUTION)
    files["diversity"] = save_figure(fig, figures_dir / "diversity.png")
    return files


def write_summary(out: Path, metadata: dict) -> None:
    """README.md and metadata.json."""
    atomic_write_text(out / "README.md", readme(metadata))
    atomic_write_json(out / "metadata.json", metadata)


def readme(m: dict) -> str:
    """The output folder's README: provenance, settings and the caution."""
    cal = m["calibration"]
    cal_line = (f"temperature {cal['temperature']:.3f} from {cal['file']}" if cal["applied"]
                else f"none ({cal['reason']})")
    anchor = m.get("anchor") or {"applied": False, "reason": "-"}
    anchor_line = (f"base {anchor['base']} (refitted on {anchor['train_items']} training items), rule "
                   f"{anchor['rule']} with the run's fitted parameters {anchor['params']}" if anchor["applied"]
                   else f"none ({anchor['reason']})")
    data = m.get("training_data")
    data_line = data if isinstance(data, str) else f"{data.get('name')} ({data.get('source')}, {data.get('language')})"
    return "\n".join([
        "# Simulated survey answers", "", f"**{m['caution']}**", "",
        f"- model: {m['model'].get('name')} ({m['model'].get('hf_id') or m['model'].get('source')})",
        f"- adapter: {m.get('adapter') or 'none (zero-shot)'}",
        f"- run: {m.get('run') or '-'} (method {m.get('method')})",
        f"- training data: {data_line}",
        f"- calibration: {cal_line}",
        f"- anchor: {anchor_line}",
        f"- prompt: {m['prompt']}, language {m['language']}",
        (f"- option-order averaging: {m['permutations']['requested']} cyclic shifts "
         f"(per item: {m['permutations']['per_item']})"),
        f"- questionnaire: {m['questionnaire']['file']} (sha256 {m['questionnaire']['sha256'][:12]})",
        f"- countries: {', '.join(m['countries'])}",
        *([(f"- groups: {'; '.join(', '.join(f'{k}={v}' for k, v in g.items()) for g in m['groups'])} "
            f"(steering format {m['steering']})")] if m.get("groups") else []),
        f"- {m['human_reference']}",
        (f"- throughput: {m['throughput']['prompts']} prompts in {m['throughput']['inference_s']:.1f} s "
         f"({m['throughput']['prompts_per_s']:.1f} prompts/s on {m['throughput']['device']})"),
        f"- uncertainty: {m['uncertainty']}", "",
        "Files: " + ", ".join(sorted(set(m["files"].values()))), ""])
