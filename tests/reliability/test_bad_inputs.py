"""Bad input at the run command: every mistake fails before any model is loaded, with a specific message.

Each case runs `survey_sim.pipeline.job.run` on a config composed as `python -m survey_sim.run` composes it,
with model loading replaced by a failure, so an error raised after loading could not pass. The sources'
own record-level checks are tested in tests/data; here they are reached through a run.
"""

from __future__ import annotations

import json
import re

import pytest
from hydra.errors import MissingConfigException
from reliability_helpers import compose_run, paper_data, paper_record, run_in_process, write_paper_files

from survey_sim.errors import ConfigError, SurveyDataError, TokenizerError

ZS = ["model=tiny_random", "logger=csv", "method=zs", "max_items=4", "trainer.accelerator=cpu"]
DEMO = ["data=demo", *ZS]


@pytest.fixture(autouse=True)
def no_model(monkeypatch):
    """Loading a model fails the test: every error below must come first."""
    def refuse(*args, **kwargs):
        raise AssertionError("the model was loaded before the configuration error was reported")

    monkeypatch.setattr("survey_sim.pipeline.model_run.load_model", refuse)


def fails(tmp_path, *overrides, error=ConfigError, match: str):
    with pytest.raises(error) as info:
        run_in_process(tmp_path / "run", *overrides)
    assert re.search(match, str(info.value)), str(info.value)
    assert not (tmp_path / "run" / "metrics.json").exists()
    return str(info.value)


# ---- names ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("group", "listed"), [("model", "tiny_random"), ("loss", "wasserstein"), ("method", "prior"),
                                               ("data", "demo"), ("logger", "csv"), ("prompt", "plain")])
def test_unknown_group_option_lists_the_available_ones(group, listed):
    with pytest.raises(MissingConfigException) as info:
        compose_run(*DEMO, f"{group}=nonexistent")
    message = str(info.value)
    assert f"Could not find '{group}/nonexistent'" in message
    assert f"Available options in '{group}'" in message and f"\t{listed}\n" in message


def test_unknown_key_is_refused_by_hydra():
    with pytest.raises(Exception, match=r"Could not override 'trainer.max_step'"):
        compose_run(*DEMO, "trainer.max_step=3")


@pytest.mark.parametrize(("override", "match"), [
    ("loss.name=kld", r"unknown loss 'kld'; valid losses: \['ce', 'js'"),
    ("method.name=fine_tune", r"unknown method 'fine_tune'; valid: zs, ft, .*prior"),
    ("logger.name=tensorboard", r"unknown logger 'tensorboard'; valid: wandb, csv"),
    ("eval_splits=[test-unseen-planet]", (r"evaluation split\(s\) \['test-unseen-planet'\] unknown; available: "
                                          r"\['test-unseen-both', 'test-unseen-country', .*'train', 'val'\]")),
    ("data.test_splits=[test-unseen-planet]", (r"data config 'demo': unknown split\(s\) \['test-unseen-planet'\]; "
                                               r"valid split names: train, val, test-unseen-country")),
    ("model.source=ollama", (r"model 'tiny_random': source='ollama' is not one of \['gguf_package', 'hub', "
                             r"'tiny_random'\]")),
    ("model.lora.target_modules=[]", r"lora.target_modules must be a non-empty list"),
    ("seed=abc", r"seed must be an integer, got 'abc'"),
    ("permutations=0", r"permutations must be >= 1, got 0"),
])
def test_unknown_names_and_bad_values(tmp_path, override, match):
    fails(tmp_path, *DEMO, override, match=match)


@pytest.mark.parametrize(("override", "match"), [
    ("trainer.checkpoint_every_n_steps=0", r"trainer.checkpoint_every_n_steps must be an integer >= 1, got 0"),
    ("trainer.max_steps=-5", r"trainer.max_steps must be an integer >= -1, got -5"),
    ("trainer.accumulate_grad_batches=0", r"trainer.accumulate_grad_batches must be an integer >= 1"),
    ("optim.lr=0", r"optim.lr must be a finite number > 0, got 0"),
    ("optim.lr=nan", r"optim.lr must be a finite number > 0, got nan"),
    ("optim.weight_decay=-0.1", r"optim.weight_decay must be a finite number >= 0"),
    ("optim.schedule=step", r"optim.schedule='step' is not one of \['constant', 'linear', 'cosine'\]"),
    ("trainer.precision=fp8", r"trainer.precision='fp8' is not one of null \(automatic\), 32-true, bf16-mixed"),
    ("speed.share_prefix=no", r"speed.share_prefix must be true or false, got 'no'"),
    ("trainer=fsdp", r"trainer=fsdp needs CUDA GPUs .* trainer.accelerator='cpu' on this machine is not a GPU"),
    ("trainer=ddp model.device_map=auto", (r"model.device_map places the model itself.* trainer.strategy=ddp would "
                                          r"place or shard it again")),
    ("data.train_split=null", r"method 'ft' trains, but data config 'demo' has no train_split"),
    ("loss.label_smoothing=1.5", r"loss 'kl': label_smoothing must be in \[0, 1\), got 1.5"),
    ("+loss.temperature=2", r"loss 'kl' has no option\(s\) \['temperature'\]; its options: \['label_smoothing'"),
    ("loss=wasserstein loss.cost=euclid", r"loss 'wasserstein': unknown cost 'euclid'; named costs: \['ordinal'"),
    ("trainer.selection.monitor=val/jsdd", (r"trainer.selection.monitor='val/jsdd' is not logged by validation "
                                            r"\(validation splits loaded: \['val'\]\); valid: selection/jsd, "
                                            r"val/loss, val/jsd")),
    ("trainer.selection.monitor=dev/jsd", (r"monitor='dev/jsd' is not logged by validation \(validation splits "
                                           r"loaded: \['val'\]")),
    ("trainer.selection.mode=min", (r"trainer.selection.mode=min would keep the worst selection/jsd \(higher is "
                                    r"better\): set trainer.selection.mode=max")),
    ("trainer.selection.monitor=val/emd", r"mode=max would keep the worst val/emd \(lower is better\): set .*mode=min"),
    ("trainer.selection.mode=maximum", r"trainer.selection.mode must be 'min' or 'max', got 'maximum'"),
    ("trainer.selection.early_stopping_patience=0", r"early_stopping_patience must be an integer >= 1, got 0"),
])
def test_training_settings(tmp_path, override, match):
    fails(tmp_path, "data=demo", *ZS, "method=ft", *override.split(), match=match)


# ---- the model's limits: found by tokenizing every prompt before the model is loaded ------------------------
def test_prompt_longer_than_the_context(tmp_path):
    fails(tmp_path, *DEMO, "model.max_length=16", error=TokenizerError,
          match=r"split val, item 0 \('.+', question '.+'\): the prompt has \d+ tokens, longer than the "
                r"model's context of 16")


def test_option_letter_that_is_not_one_token(tmp_path):
    # SmolLM2's tokenizer merges a trailing space with the letter (" A" is one token)
    fails(tmp_path, *DEMO, "prompt.answer_prefix_en='Answer: '", error=TokenizerError,
          match=r"split val, item 0 .*tokenizer '.*smollm2.*', letter 'A' after 'Answer: ': the letter merges "
                r"with the text before it")


# ---- splits and data files -------------------------------------------------------------------------------
def test_split_empty_after_filtering(tmp_path):
    root = write_paper_files(tmp_path / "data")
    fails(tmp_path, *ZS, *paper_data(root), "data.test_splits=[C2-Q2]",
          match=r"data config 'wvs_en': split 'C2-Q2' is empty after filtering: countries C2 \(Egypt, .*\) x "
                r"questions Q2 of the wvs survey")


def test_data_root_not_set(tmp_path, monkeypatch):
    monkeypatch.delenv("SURVEY_SIM_DATA", raising=False)
    message = fails(tmp_path, *ZS, "data=wvs_en", match=r"SURVEY_SIM_DATA")
    assert "build-wvs" in message and "data=demo" in message  # the ways to get data


def test_data_file_missing(tmp_path):
    root = write_paper_files(tmp_path / "data")
    (root / "wvs" / "valid_en.json").unlink()
    fails(tmp_path, *ZS, *paper_data(root), match=r"data file\(s\) not found: .*wvs/valid_en.json")


def test_unknown_country_in_the_split_registry(tmp_path):
    root = write_paper_files(tmp_path / "data")
    fails(tmp_path, *ZS, *paper_data(root), "data.registry.countries.C2=[Kenya,Wakanda]",
          match=r"split registry 'paper': .*unknown country 'Wakanda'")


BAD_FILES = {  # case: (write_paper_files arguments, expected message)
    "malformed JSON": ({"raw_train": '[{"id": 1,'}, r"wvs/train_en.json: not valid JSON"),
    "negative share": ({"train_extra": [paper_record("Japan", "4", "train", dist=(-5.0, 50.0, 55.0))]},
                       r"record 6, field 'options_dist': .*negative"),
    "letter without option": ({"train_extra": [paper_record("Japan", "4", "train", options_dist={"A": 5, "E": 9})]},
                              r"record 6, field 'options_dist': .*'E'"),
    "duplicate item": ({"train_extra": [paper_record("Japan", "1", "train")]},
                       r"record 6, field 'id': duplicate item for country 'Japan', question '1', .*\(first at record 0\)"),
    "27 options": ({"train_extra": [paper_record("Japan", "4", "train",
                                                 options=[f"(A)option {i}" for i in range(27)])]},
                   r"record 6, field 'options'"),
    "unknown country": ({"train_extra": [paper_record("Narnia", "4", "train")]},
                        r"record 6, field 'instruction': unknown country 'Narnia'"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_data_file(tmp_path, case):
    kwargs, match = BAD_FILES[case]
    root = write_paper_files(tmp_path / "data", **kwargs)
    message = fails(tmp_path, *ZS, *paper_data(root), error=SurveyDataError, match=match)
    assert f"file {root / 'wvs' / 'train_en.json'}" in message


def test_all_zero_distribution_is_a_counted_skip_not_an_error(tmp_path, caplog):
    root = write_paper_files(tmp_path / "data", train_extra=[paper_record("Japan", "4", "train", dist=(0, 0, 0))])
    metrics = run_in_process(tmp_path / "run", *paper_data(root), "logger=csv", "method=prior")
    assert metrics["splits"]["C1-Q3"]["n_items"] == 2
    assert re.search(r"train_en.json: skipped 1 record\(s\): record 6: distribution is all zeros", caplog.text)


# ---- adapters and resuming -------------------------------------------------------------------------------
def test_adapter_path_that_is_no_adapter(tmp_path):
    fails(tmp_path, *DEMO, f"adapter_path={tmp_path / 'missing'}", match=r"adapter_path=.*missing is not a folder")
    (tmp_path / "not_a_run").mkdir()
    fails(tmp_path, *DEMO, f"adapter_path={tmp_path / 'not_a_run'}",
          match=r"neither .*not_a_run/adapter_config.json nor .*not_a_run/adapter/adapter_config.json exists")


def test_resume_with_a_different_config(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    config = compose_run("data=demo", *ZS, "method=ft", f"output_dir={out}")
    from omegaconf import OmegaConf

    (out / "config.yaml").write_text(OmegaConf.to_yaml(config, resolve=True))
    fails(tmp_path, "data=demo", *ZS, "method=ft", "resume=true", "optim.lr=0.01",
          match=r"resume=true in .*run, but the config differs from the run's config.yaml in 1 key\(s\): "
                r"optim.lr: 0.0001 -> 0.01")


@pytest.mark.parametrize("held", ["metrics.json", "checkpoints/last.ckpt"])
def test_new_run_into_the_folder_of_another(tmp_path, held):
    (tmp_path / "run" / held).parent.mkdir(parents=True, exist_ok=True)
    (tmp_path / "run" / held).write_text("{}")
    with pytest.raises(ConfigError, match=rf"output folder .*run already holds a run \({held}\); continue it "
                                          r"with resume=true, or give a new folder"):
        run_in_process(tmp_path / "run", *DEMO)
    assert (tmp_path / "run" / held).read_text() == "{}"


def test_messages_name_the_file_record_and_field(tmp_path):
    """The error object carries file, record and field for programs (not only in its text)."""
    root = write_paper_files(tmp_path / "data", train_extra=[paper_record("Narnia", "4", "train")])
    with pytest.raises(SurveyDataError) as info:
        run_in_process(tmp_path / "run", *ZS, *paper_data(root))
    assert (info.value.file, info.value.record, info.value.field) == (str(root / "wvs" / "train_en.json"), 6,
                                                                      "instruction")
    assert json.loads((root / "wvs" / "train_en.json").read_text())[6]["instruction"].startswith("How would")
