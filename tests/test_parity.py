"""One intent, four front ends, one config: the panel, the %%finetune magic, the CLI and the Python API
all hand the training core the same RunConfig (captured where the core would start training).
"""

import shlex

import pytest
import yaml

import workbench.engine.run as engine
from workbench import cli, finetune
from workbench.config import RunConfig, resolve
from workbench.ui.panel import Panel

INTENT_YAML = """
name: parity
model: models/tiny
data:
  train: data/topics.csv
  text_column: sentence
  label_column: topic
  duplicates: drop
train:
  epochs: 2
  max_steps: 40
  learning_rate: 3.0e-4
  batch_size: 8
  max_length: 96
  lr_scheduler: cosine
lora:
  enabled: true
  r: 4
  target_modules: [query, value]
"""


class Captured(Exception):
    pass


@pytest.fixture
def captured(monkeypatch, runs_dir):
    """Replaces the core's execute(): records the config it was given and stops there."""
    configs: list[RunConfig] = []

    def execute(cfg, sinks=None, stop_event=None, run_dir=None):
        configs.append(cfg)
        raise Captured

    monkeypatch.setattr(engine, "execute", execute)
    # the intent names a model folder that is not there: the front ends' preflight, which checks it
    # before a run folder is made, passes the config through unchanged (no resume_from, no freeze)
    monkeypatch.setattr(engine, "preflight", lambda cfg: cfg)
    return configs


def via_panel() -> Panel:
    """The intent typed into the form, widget by widget."""
    panel = Panel(namespace={})
    typed = {"name": "parity", "model": "models/tiny", "data.train": "data/topics.csv",
             "data.text_column": "sentence", "data.label_column": "topic", "data.duplicates": "drop",
             "train.epochs": 2, "train.max_steps": "40", "train.learning_rate": 3e-4, "train.batch_size": 8,
             "train.max_length": 96, "train.lr_scheduler": "cosine", "lora.enabled": True, "lora.r": 4,
             "lora.target_modules": "query, value"}
    for key, value in typed.items():
        panel.fields[key].widget.value = value
    return panel


def test_panel_magic_cli_and_api_build_identical_configs(captured, runs_dir):
    from IPython.testing.globalipapp import get_ipython

    panel = via_panel()
    job = panel.start(wait=True)
    assert isinstance(job.error, Captured)

    ip = get_ipython()
    ip.extension_manager.load_extension("workbench")
    with pytest.raises(Captured):
        ip.run_cell_magic("finetune", "", INTENT_YAML)

    words = ["train", "name=parity", "model=models/tiny", "data.train=data/topics.csv", "data.text_column=sentence",
             "data.label_column=topic", "data.duplicates=drop", "train.epochs=2", "train.max_steps=40",
             "train.learning_rate=3e-4", "train.batch_size=8", "train.max_length=96", "train.lr_scheduler=cosine",
             "lora.enabled=true", "lora.r=4", "lora.target_modules=[query,value]"]
    with pytest.raises(Captured):
        cli.main(words)

    with pytest.raises(Captured):
        finetune(yaml.safe_load(INTENT_YAML), progress=False)

    panel_cfg, magic_cfg, cli_cfg, api_cfg = captured
    reference = panel_cfg.to_dict()
    assert reference["runs_dir"] == str(runs_dir)  # WORKBENCH_RUNS_DIR reaches every front end
    for cfg in (magic_cfg, cli_cfg, api_cfg):
        assert cfg.to_dict() == reference
        assert cfg.hash() == panel_cfg.hash()
    assert panel_cfg.lora.target_modules == ["query", "value"] and panel_cfg.train.max_steps == 40


def test_copied_code_runs_the_same_config(captured, runs_dir):
    """What "Show as %%finetune" and "Show as CLI" print starts the run the form describes."""
    from IPython.testing.globalipapp import get_ipython

    panel = via_panel()
    expected = panel.config().to_dict()
    magic = panel.copy_magic()
    line, _, body = magic.partition("\n")
    ip = get_ipython()
    ip.extension_manager.load_extension("workbench")
    with pytest.raises(Captured):
        ip.run_cell_magic("finetune", line.removeprefix("%%finetune").strip(), body)
    words = shlex.split(panel.copy_cli())
    assert words[:2] == ["workbench", "train"]
    with pytest.raises(Captured):
        cli.main(words[1:])
    assert [c.to_dict() for c in captured] == [expected, expected]


def test_a_form_filled_from_a_config_gives_that_config(runs_dir):
    original = resolve(inline=INTENT_YAML)
    panel = Panel(config=INTENT_YAML, namespace={})
    assert panel.config().to_dict() == original.to_dict()
