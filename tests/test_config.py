import re

import pytest
import yaml

from workbench.config import RunConfig, flatten, parse_override, resolve, schema
from workbench.errors import ConfigError


def test_defaults_are_the_bundled_offline_ones():
    cfg = resolve()
    assert cfg.model == "minilm" and cfg.data.train == "bbc-news" and cfg.task == "text-classification"


def test_layers_apply_in_order(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  epochs: 5\n  learning_rate: 1e-4\nmodel: from-file\n")
    cfg = resolve(file=f, inline="train:\n  epochs: 2\n", overrides=["train.epochs=7", "train.batch_size=8"])
    assert cfg.train.epochs == 7.0          # override beats inline beats file
    assert cfg.train.learning_rate == 1e-4  # YAML "1e-4" (a string to PyYAML) is coerced to float
    assert cfg.train.batch_size == 8
    assert cfg.model == "from-file"
    assert cfg.train.max_length == 256      # untouched default


def test_unknown_key_suggests_the_nearest():
    with pytest.raises(ConfigError, match=r"Unknown config key 'train.epoch'.*train.epochs"):
        resolve(inline={"train": {"epoch": 3}})
    with pytest.raises(ConfigError, match=r"'train.lerning_rate'. Did you mean 'train.learning_rate'"):
        resolve(overrides=["train.lerning_rate=1e-3"])
    with pytest.raises(ConfigError, match=r"Did you mean 'model'"):
        resolve(inline="modle: minilm")


@pytest.mark.parametrize("override,message", [
    ("train.epochs=many", "expected a number"),
    ("train.batch_size=1.5", "expected an integer"),
    ("train.group_by_length=maybe", "expected true or false"),
    ("task=summarize", "not one of"),
    ("train.learning_rate=3", "out of range; it must be between 0 and 1"),
    ("train.freeze=half", "train.freeze"),
    ("lora.r=0", "lora.r: 0 is out of range; it must be at least 1"),
    ("lora.dropout=1.5", "lora.dropout: 1.5 is out of range; it must be from 0 up to"),
    ("data.augment_copies=0", "data.augment_copies: 0 is out of range; it must be from 1 to 20"),
    ("data.max_train_samples=-5", r"data.max_train_samples: -5 must be at least 1 \(or null\)"),
    ("data.max_train_samples=0", r"data.max_train_samples: 0 must be at least 1 \(or null\)"),
    ("data.max_eval_samples=-1", r"data.max_eval_samples: -1 must be at least 1 \(or null\)"),
    ("train.eval_batch_size=0", r"train.eval_batch_size: 0 must be at least 1 \(or null\)"),
    ("train.logging_steps=0", "train.logging_steps: 0 is out of range; it must be at least 1"),
    ("runs_dir=\"\"", "runs_dir: empty. Give the folder for run directories"),
])
def test_bad_values_are_named(override, message):
    with pytest.raises(ConfigError, match=message):
        resolve(overrides=[override])


def test_bad_yaml_names_the_line():
    with pytest.raises(ConfigError, match=r"line 2"):
        resolve(inline="task: text-classification\n\tmodel: minilm\n")
    with pytest.raises(ConfigError, match="mapping"):
        resolve(inline="- just\n- a list\n")


def test_yaml_is_safe_loaded():
    with pytest.raises(ConfigError):
        resolve(inline="model: !!python/object/apply:os.system ['echo hacked']\n")


def test_round_trip_through_yaml_cli_and_magic():
    cfg = resolve(inline={"model": "some/model", "train": {"epochs": 2, "learning_rate": 3e-5},
                          "data": {"label_column": "topic"}})
    assert resolve(inline=cfg.to_yaml()) == cfg
    cli = cfg.to_cli()
    assert cli.startswith("workbench train ")
    assert resolve(overrides=cli.split()[2:]) == cfg
    magic = cfg.to_magic()
    assert magic.splitlines()[0] == "%%finetune"
    assert resolve(inline=magic.split("\n", 1)[1]) == cfg
    assert yaml.safe_load(cfg.to_yaml())["train"]["epochs"] == 2.0


def test_overrides_parse_yaml_scalars():
    assert parse_override("train.epochs=2") == ("train.epochs", 2)
    assert parse_override("model=bert-base-uncased") == ("model", "bert-base-uncased")
    assert parse_override("data.validation=null") == ("data.validation", None)
    # YAML indicators on their own are the text the user typed, not an empty block scalar or anchor
    for sep in ("|", ">", "&", "!"):
        assert parse_override(f"task_options.label_separator={sep}") == ("task_options.label_separator", sep)
    assert parse_override("name=''") == ("name", "") and parse_override("name=~") == ("name", None)
    with pytest.raises(ConfigError):
        parse_override("train.epochs")


def test_trust_remote_code_needs_a_pinned_revision():
    with pytest.raises(ConfigError, match="model_revision"):
        resolve(overrides=["trust_remote_code=true"])
    assert resolve(overrides=["trust_remote_code=true", "model_revision=abc123"]).trust_remote_code


def test_every_field_has_help():
    for s in schema():
        assert s["help"], s["key"]


def test_in_memory_data_is_described_not_dumped():
    import pandas as pd

    df = pd.DataFrame({"text": ["a", "b"], "label": [0, 1]})
    cfg = resolve(inline={"data": {"train": df}})
    assert cfg.data.train is df
    assert "in-memory DataFrame" in flatten(cfg.to_dict())["data.train"]


def test_dollar_reference_resolves_from_a_namespace():
    import pandas as pd

    df = pd.DataFrame({"text": ["a"], "label": [0]})
    cfg = resolve(inline="data:\n  train: $df\n", objects={"df": df})
    assert cfg.data.train is df
    with pytest.raises(ConfigError, match="no variable named 'nope'"):
        resolve(inline="data:\n  train: $nope\n", objects={})


def test_dollar_references_work_in_any_key_on_the_body_and_the_line():
    class Run:  # what finetune() returns: a run stands for its folder
        id, dir = "20261206-101010-x-ab12", "/runs/20261206-101010-x-ab12"

    ns = {"rid": "20261206-101010-x-ab12", "lr": 3e-4, "run": Run()}
    cfg = resolve(inline="train:\n  learning_rate: $lr\n  resume_from: ${rid}\n", objects=ns)
    assert cfg.train.learning_rate == 3e-4 and cfg.train.resume_from == "20261206-101010-x-ab12"
    assert resolve(overrides=["train.resume_from=$run"], objects=ns).train.resume_from == Run.dir
    with pytest.raises(ConfigError, match=r"train.resume_from: no variable named 'gone' in the notebook namespace"):
        resolve(overrides=["train.resume_from=$gone"], objects=ns)
    # only a whole value that names a variable: a path with $ in it stays a path
    assert resolve(inline="data:\n  train: $HOME/x.csv\n", objects=ns).data.train == "$HOME/x.csv"


def test_runs_dir_env(monkeypatch):
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", "/tmp/somewhere")
    assert resolve().runs_dir == "/tmp/somewhere"
    assert resolve(overrides=["runs_dir=x"]).runs_dir == "x"
    assert resolve(inline={"runs_dir": None}).runs_dir == "/tmp/somewhere"  # a template's default parameter
    monkeypatch.delenv("WORKBENCH_RUNS_DIR")
    assert resolve(inline={"runs_dir": None}).runs_dir == "runs"


def test_dataclass_equality_default():
    assert RunConfig() == resolve()


def test_unquoted_yaml_no_is_the_word_no_where_the_choices_have_it(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  eval_strategy: no\n")  # PyYAML reads this as False
    assert resolve(file=f).train.eval_strategy == "no"
    assert resolve(overrides=["train.eval_strategy=no"]).train.eval_strategy == "no"
    assert resolve(inline="train: {eval_strategy: off}").train.eval_strategy == "no"
    with pytest.raises(ConfigError, match=r"name: expected text, got True .*quote the text"):
        resolve(overrides=["name=yes"])



def test_an_empty_label_separator_is_a_config_error():
    from workbench.tasks import get

    with pytest.raises(ConfigError, match=r"task_options.label_separator: '' must be one or more characters"):
        get("text-classification")(resolve(inline={"task_options": {"problem": "multi-label", "label_separator": ""}}))
    assert get("text-classification")(resolve(overrides=["task_options.label_separator=|"])).options[
        "label_separator"] == "|"


def test_task_options_are_checked_when_the_config_is_resolved():
    with pytest.raises(ConfigError, match=r"task_options.labl_separator: not an option of text-classification.*"
                                          r"Did you mean 'label_separator'"):
        resolve(overrides=["task_options.labl_separator=x"])
    with pytest.raises(ConfigError, match=r"task_options.problem: 'regresion' is not one of .*Did you mean 'regression'"):
        resolve(inline={"task_options": {"problem": "regresion"}})
    assert resolve(inline={"task": "causal-lm", "task_options": {"packing": True}}).task_options == {"packing": True}


@pytest.mark.parametrize("typed,meant", [
    ("train.lr", "train.learning_rate"),  # not the section 'train'
    ("lr", "train.learning_rate"),
    ("train.num_train_epochs", "train.epochs"),  # Trainer's names
    ("per_device_train_batch_size", "train.batch_size"),
    ("train.max_seq_length", "train.max_length"),
    ("data.train_file", "data.train"),
    ("train.epoch", "train.epochs"),
])
def test_unknown_keys_suggest_workbenchs_name_for_what_other_tools_call_it(typed, meant):
    with pytest.raises(ConfigError, match=rf"Unknown config key '{re.escape(typed)}'\. Did you mean '{re.escape(meant)}'\?"):
        resolve(overrides=[f"{typed}=1"])


@pytest.mark.parametrize("key", ["model", "data.train"])
def test_an_empty_model_or_training_data_is_a_config_error(key):
    """Caught with the config, before a run folder exists (a cleared form field in the panel)."""
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}: empty\. Give "):
        resolve(overrides={key: ""})


def test_settings_the_config_does_not_use_are_named_with_the_reason():
    from workbench.config import unused_settings

    assert unused_settings(resolve()) == {}
    cfg = resolve(inline={"lora": {"r": 16, "target_modules": ["query"]},
                          "train": {"lr_scheduler": "constant", "eval_steps": 50}})
    assert unused_settings(cfg) == {
        "lora.r": ("lora.enabled is false", "lora.enabled"),
        "lora.target_modules": ("lora.enabled is false", "lora.enabled"),
        "train.warmup_ratio": ("lr_scheduler constant has no warmup (constant_with_warmup has one)",
                               "train.lr_scheduler"),
        "train.eval_steps": ("train.eval_strategy is epoch, not steps", "train.eval_strategy")}
    with_lora = resolve(inline={"lora": {"enabled": True, "r": 16}, "train": {"freeze": "embeddings"}})
    assert list(unused_settings(with_lora)) == ["train.freeze"]
