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


# ---- text settings keep their text; numbers stay finite; splits leave data to train on -----------------

@pytest.mark.parametrize("override,key,text", [
    ("name=007", "name", "007"),                        # YAML: the integer 7
    ("name=0x1F", "name", "0x1F"),                      # YAML: 31
    ("data.label_column=010", "data.label_column", "010"),  # YAML 1.1: octal 8
    ("name=2024-01-01", "name", "2024-01-01"),          # YAML: a date
    ("name=1.50", "name", "1.50"),
    ("name=run #2", "name", "run #2"),                  # YAML: a comment after 'run'
    ("data.train=2024-01-01.csv", "data.train", "2024-01-01.csv"),
    ("data.train=007", "data.train", "007"),
    ("train.resume_from=20260101", "train.resume_from", "20260101"),
    ("name='007'", "name", "007"),                      # quoted: the text in the quotes
])
def test_a_text_setting_takes_the_text_as_typed(override, key, text):
    from workbench.config import value_at

    assert parse_override(override) == (key, text)
    assert value_at(resolve(overrides=[override]), key) == text


def test_overrides_of_numbers_flags_and_nothing_still_read_as_yaml():
    assert parse_override("train.epochs=2") == ("train.epochs", 2)
    assert parse_override("train.learning_rate=3e-5") == ("train.learning_rate", "3e-5")
    assert resolve(overrides=["train.learning_rate=3e-5"]).train.learning_rate == 3e-5
    assert parse_override("lora.enabled=true") == ("lora.enabled", True)
    assert parse_override("name=null") == ("name", None) and parse_override("data.test=~") == ("data.test", None)
    assert resolve(overrides=["name=null", "data.validation=null"]).name is None
    cfg = resolve(overrides=["train.eval_strategy=no", "lora.target_modules=query,value"])
    assert cfg.train.eval_strategy == "no" and cfg.lora.target_modules == ["query", "value"]


def test_a_number_or_date_in_a_yaml_file_for_a_text_setting_is_its_text(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("name: 2024-01-01\nmodel: 0x1F\ndata:\n  label_column: 010\n  text_column: 1.50\n"
                 "  train: 2024-01-01 10:00:00\ntrain:\n  seed: 010\n  epochs: 2\n  resume_from: 007\n")
    cfg = resolve(file=f)
    assert (cfg.name, cfg.model, cfg.data.label_column, cfg.data.text_column, cfg.data.train) == \
        ("2024-01-01", "0x1F", "010", "1.50", "2024-01-01 10:00:00")
    assert cfg.train.resume_from == "007"
    assert cfg.train.seed == 8 and cfg.train.epochs == 2.0  # number settings: YAML's numbers, as before
    assert resolve(inline="name: '007'\n").name == "007" and resolve(inline="name: null\n").name is None
    assert resolve(inline=cfg.to_yaml()) == cfg  # and back: quoted where YAML would read a number or a date
    # where the spelling is gone (a date object in a dict), the error says to quote it
    import datetime

    with pytest.raises(ConfigError, match=r'^name: expected text, got the date 2024-01-01 .*quote it, '
                                          r'name: "2024-01-01"\.$'):
        resolve(inline={"name": datetime.date(2024, 1, 1)})


def test_a_config_file_of_any_name_is_read_and_a_word_that_is_none_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "good.cfg").write_text("model: some/model\ntrain:\n  epochs: 2\n")
    for source in ("good.cfg", str(tmp_path / "good.cfg"), tmp_path / "good.cfg"):
        cfg = resolve(file=source)
        assert cfg.model == "some/model" and cfg.train.epochs == 2.0
    assert resolve(inline="good.cfg").model == "some/model"  # finetune("good.cfg")
    with pytest.raises(ConfigError, match=re.escape("'train.epochs:2' is neither a config file nor a key=value "
                                                    "setting (did you mean train.epochs=2?)")):
        resolve(file="train.epochs:2")
    with pytest.raises(ConfigError, match=r"^config file 'good' not found\. Give the path of an existing YAML file"):
        resolve(file="good")
    with pytest.raises(ConfigError, match=r"^Config file not found: missing\.yaml\.$"):
        resolve(file="missing.yaml")
    assert resolve(file="model: x").model == "x"  # YAML text still does


@pytest.mark.parametrize("override", ["train.epochs=.inf", "train.epochs=inf", "train.weight_decay=.inf",
                                      "train.weight_decay=inf", "train.warmup_ratio=-.inf", "train.epochs=nan",
                                      "lora.dropout=.nan"])
def test_a_float_setting_must_be_finite(override):
    key, _, value = override.partition("=")
    shown = "nan" if "nan" in value else "-inf" if value.startswith("-") else "inf"
    with pytest.raises(ConfigError, match=rf"^{re.escape(key)}: {shown} is not a finite number; give an ordinary "
                                          r"number"):
        resolve(overrides=[override])


def test_an_infinite_number_in_a_yaml_file_is_refused_too():
    with pytest.raises(ConfigError, match=r"^train.epochs: inf is not a finite number"):
        resolve(inline="train:\n  epochs: .inf\n")


@pytest.mark.parametrize("validation,test", [(0.6, 0.6), (0.5, 0.5), (0.9, 0.2)])
def test_validation_and_test_shares_that_leave_no_training_data_are_refused(validation, test):
    with pytest.raises(ConfigError, match=rf"^data.validation_size {validation:g} and data.test_size {test:g} add up "
                                          rf"to {validation + test:g}: both are shares of data.train"):
        resolve(overrides=[f"data.validation_size={validation}", f"data.test_size={test}"])


def test_validation_and_test_shares_below_one_or_one_of_them_given_as_a_file_are_accepted():
    cfg = resolve(overrides=["data.validation_size=0.4", "data.test_size=0.5"])
    assert (cfg.data.validation_size, cfg.data.test_size) == (0.4, 0.5)
    # with a test file only validation is split off train: test_size is not used
    assert resolve(overrides=["data.validation_size=0.6", "data.test_size=0.6", "data.test=t.csv"]).data.test == "t.csv"


def test_a_key_in_the_wrong_case_is_pointed_at_its_spelling():
    with pytest.raises(ConfigError, match=r"Unknown config key 'TRAIN.EPOCHS'. Did you mean 'train.epochs'\? Keys are lower"):
        resolve(overrides=["TRAIN.EPOCHS=1"])
    with pytest.raises(ConfigError, match=r"Unknown config key 'Model'. Did you mean 'model'\?"):
        resolve(inline={"Model": "minilm"})
