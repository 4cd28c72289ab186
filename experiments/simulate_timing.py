"""Wall time of whole `python -m survey_sim.simulate` calls from one or more checkouts, runs alternating.

    python experiments/simulate_timing.py --repos /path/to/old-checkout . --runs 3 --out timing.json -- \\
        --questionnaire experiments/questionnaires/ten_questions.yaml --countries Kenya,JPN,Peru,Germany,Brazil \\
        --model smollm2_135m

Each round runs the same simulate command once per checkout (the process's working directory and PYTHONPATH
set to it, so it imports that checkout's code), in turn, so that load from other processes falls on every
checkout alike. Reports each run's wall time (process start to exit), the simulate metadata's throughput when
the checkout writes it, the mean per checkout and the ratio of each checkout's mean to the last one's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from survey_sim.io import atomic_write_json


def run_once(repo: Path, simulate_args: list[str], out: Path) -> dict:
    """One simulate process from `repo` writing to `out`: its wall time and metadata throughput."""
    env = {**os.environ, "PYTHONPATH": str(repo)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "survey_sim.simulate", *simulate_args, "--out", str(out)],
                          cwd=repo, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"simulate from {repo} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    meta = json.loads((out / "metadata.json").read_text(encoding="utf-8"))
    return {"wall_s": round(wall, 2), "throughput": meta.get("throughput"),
            "prompts": sum(1 for _ in open(out / "simulation.csv", encoding="utf-8")) - 1}


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    ours, simulate_args = (argv[:argv.index("--")], argv[argv.index("--") + 1:]) if "--" in argv else (argv, [])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repos", nargs="+", required=True, help="checkouts to time (the last one is the reference)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", required=True, help="JSON file with every run")
    args = p.parse_args(ours)
    repos = [Path(r).resolve() for r in args.repos]
    work = Path(args.out).with_suffix("")
    runs: dict[str, list[dict]] = {str(r): [] for r in repos}
    for i in range(args.runs):
        for repo in repos:
            result = run_once(repo, simulate_args, work / f"{repo.name}-{i}")
            runs[str(repo)].append(result)
            print(f"run {i} {repo}: {result['wall_s']:.1f} s, throughput {result['throughput']}", flush=True)
    mean = {r: sum(x["wall_s"] for x in v) / len(v) for r, v in runs.items()}
    reference = mean[str(repos[-1])]
    summary = {"simulate_args": simulate_args, "runs": runs, "mean_wall_s": mean,
               "ratio_to_last": {r: m / reference for r, m in mean.items()},
               "loadavg_1min_end": os.getloadavg()[0]}
    atomic_write_json(Path(args.out), summary)
    for r, m in mean.items():
        print(f"{r}: mean {m:.1f} s over {args.runs} runs ({m / reference:.2f}x the last)")
    return summary


if __name__ == "__main__":
    main()
