"""`python -m survey_sim.simulate`: answer a new questionnaire for chosen countries with a simulator.

    python -m survey_sim.simulate --questionnaire my_questions.yaml --countries "Kenya,JPN,Peru" \\
        --run outputs/2025-01-01/12-00-00-smollm2_135m-ft-kl --out sim/

With `--groups "sex=female;age=18-29"` (groups separated by ";", the attributes of one group by ",", e.g.
"sex=female,age=18-29"; or a YAML/JSON file with a list of {attribute: value} mappings) each country is
simulated per subgroup, the group described by the run's steering format (conf/steering/; `--steering`
overrides it). Attribute labels and values are checked against the attribute definitions the run's data
used (conf/data/attributes/wvs7.yaml without a run).

The model is a run folder of `survey_sim.run` (its model config, prompt, adapter, calibration.json and, for an
anchored run, its base and the anchor's fitted parameters from metrics.json), a
local adapter folder or Hugging Face adapter id with `--model` naming its base model config, or a model
config alone (`--model smollm2_135m`: zero-shot). Each prediction is averaged over cyclic shifts of the
option order (all of them by default); the range across shifts is reported as an uncertainty interval.
Outputs: simulation.csv / .parquet / .json (a tidy table), metadata.json, README.md (provenance and a
caution) and PNG figures under figures/.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from survey_sim.errors import SurveySimError
from survey_sim.simulate.job import simulate
from survey_sim.simulate.outputs import CAUTION, readme


def _permutations(text: str) -> int | None:
    if text.strip().lower() == "all":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {text!r}") from None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m survey_sim.simulate",
        description="Simulate how countries would answer a new questionnaire. " + CAUTION)
    p.add_argument("--questionnaire", required=True, help="YAML, JSON or CSV file: id, text, options, ordinal")
    p.add_argument("--countries", required=True,
                   help="comma-separated names, ISO codes or named sets (C1, C2, C3, C'1), e.g. 'Kenya,JPN,C3'")
    p.add_argument("--language", default="en", choices=["en", "zh"], help="language of the prompt (default en)")
    p.add_argument("--groups", help="subgroups per country: 'sex=female;age=18-29' (';' between groups, ',' "
                                    "between one group's attributes) or a YAML/JSON list of mappings")
    p.add_argument("--steering", help="steering format of subgroup prompts (bio, qa, portray, none); "
                                      "default: the run's, else bio")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--run", help="a run folder of survey_sim.run (adapter, config, calibration.json)")
    src.add_argument("--adapter", help="a local adapter folder or a Hugging Face adapter id (needs --model)")
    p.add_argument("--model", help="model config name (conf/model/NAME.yaml) or .yaml file: zero-shot, or the "
                                   "base model of --adapter")
    p.add_argument("--prompt", help="prompt template (paper, plain); default: the run's, else paper")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--permutations", type=_permutations, default=None,
                   help="cyclic shifts of the option order averaged per item (default: all)")
    p.add_argument("--no-calibration", action="store_true", help="ignore the run folder's calibration.json")
    p.add_argument("--no-anchor", action="store_true",
                   help="an anchored run's model alone, without its base and fitted combination")
    p.add_argument("--batch-size", type=int, default=None, help="prompts per forward pass")
    p.add_argument("--no-figures", action="store_true", help="write the tables only")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.adapter and not args.model:
        print("error: --adapter needs --model (the config of the adapter's base model)", file=sys.stderr)
        return 2
    try:
        meta = simulate(args.questionnaire, args.countries, args.out, language=args.language, run=args.run,
                        adapter=args.adapter, model=args.model, prompt=args.prompt,
                        permutations=args.permutations, calibration=not args.no_calibration,
                        anchor=not args.no_anchor,
                        batch_size=args.batch_size, figures=not args.no_figures, groups=args.groups,
                        steering=args.steering)
    except SurveySimError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(readme(meta))
    print(f"outputs: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
