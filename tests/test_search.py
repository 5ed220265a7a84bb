"""Hyperparameter search: optuna proposes, every trial is a workbench run ranked on validation."""

import json
from pathlib import Path

import yaml

import pytest

from workbench.cli import main
from workbench.errors import ConfigError
from workbench.tuning import check_space, parse_space_item, search

from builders import tiny_config


@pytest.mark.parametrize("text, parsed", [
    ("train.learning_rate=1e-5..1e-3:log", ("train.learning_rate", {"low": 1e-5, "high": 1e-3, "log": True})),
    ("train.epochs=1..4", ("train.epochs", {"low": 1, "high": 4, "log": False})),
    ("train.batch_size=8,16,32", ("train.batch_size", [8, 16, 32])),
    ("train.lr_scheduler=linear,cosine", ("train.lr_scheduler", ["linear", "cosine"])),
])
def test_space_items_from_the_command_line(text, parsed):
    assert parse_space_item(text) == parsed


@pytest.mark.parametrize("space, message", [
    ({"train.lerning_rate": [1e-4, 1e-3]}, "unknown config key 'train.lerning_rate'. Did you mean 'train.learning_rate'"),
    ({"train.learning_rate": {"low": 1e-3, "high": 1e-4}}, "needs numbers low < high"),
    ({"train.learning_rate": {"low": 0.0, "high": 1e-3, "log": True}}, "log scale needs low > 0"),
    ({"train.batch_size": [8]}, "at least two choices"),
    ({}, "give at least one key"),
    ({"train.learning_rate": {"low": 1e-5, "high": 1e-3, "log": "no"}}, "log must be true or false"),
])
def test_bad_spaces_are_refused_with_the_key(space, message):
    with pytest.raises(ConfigError, match=message):
        check_space(space)


def test_bad_space_text_says_how_to_write_it():
    for text in ("train.learning_rate", "train.learning_rate=a..b", "train.batch_size=8"):
        with pytest.raises(ConfigError, match="--space"):
            parse_space_item(text)


def _base(tiny_bert, clf_csv, runs):
    cfg = tiny_config(tiny_bert, clf_csv, runs, max_steps=8, eval_strategy="steps", eval_steps=4,
                      save_checkpoints=False)
    cfg["name"] = "tune"
    return cfg


def test_each_trial_is_a_run_ranked_by_its_best_validation_value(tiny_bert, clf_csv, tmp_path):
    space = {"train.learning_rate": {"low": 1e-4, "high": 3e-2, "log": True}, "train.batch_size": [8, 16]}
    result = search(_base(tiny_bert, clf_csv, tmp_path / "runs"), space, trials=3, progress=False)
    assert result.metric == "accuracy" and result.greater_is_better and len(result.trials) == 3
    for t in result.trials:
        assert 1e-4 <= t["params"]["train.learning_rate"] <= 3e-2 and t["params"]["train.batch_size"] in (8, 16)
        run_dir = tmp_path / "runs" / t["run_id"]
        info = json.loads((run_dir / "run.json").read_text())
        assert info["status"] == "completed" and info["name"] == f"tune-trial-{t['number']}"
        assert info["search"] == {"study": "tune", "trial": t["number"], "params": t["params"], "unused": [],
                                  "metric": "accuracy", "value": t["value"]}
        records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        val = [r["metrics"]["accuracy"] for r in records if r["event"] == "eval" and r["split"] == "validation"]
        assert len(val) == 2 and t["value"] == max(val)  # the best evaluation, not the last or the test split
        assert (run_dir / "config.yaml").read_text().count("baseline: false") == 1  # trials skip the baseline
    assert result.best["value"] == max(t["value"] for t in result.trials)
    assert result.best_run.id == result.best["run_id"]
    assert "best val accuracy" in repr(result) and "<table class='wb-table'>" in result._repr_html_()
    # the sampler is seeded from train.seed: the same search proposes the same settings
    again = search(_base(tiny_bert, clf_csv, tmp_path / "again"), space, trials=3, progress=False)
    assert [t["params"] for t in again.trials] == [t["params"] for t in result.trials]


def test_search_needs_validation_and_valid_values(tiny_bert, clf_csv, tmp_path):
    base = _base(tiny_bert, clf_csv, tmp_path / "runs")
    base["train"]["eval_strategy"] = "no"
    with pytest.raises(ConfigError, match="ranked by their validation metric"):
        search(base, {"train.batch_size": [8, 16]}, trials=2, progress=False)
    base["train"]["eval_strategy"] = "epoch"
    with pytest.raises(ConfigError, match="train.learning_rate"):  # 3.0 is out of range for the config
        search(base, {"train.learning_rate": {"low": 1e-4, "high": 3.0}}, trials=2, progress=False)
    assert not (tmp_path / "runs").exists()


def test_search_from_the_command_line(tiny_bert, clf_csv, tmp_path, capsys):
    code = main(["search", f"model={tiny_bert}", f"data.train={clf_csv}", f"runs_dir={tmp_path}",
                 "train.max_steps=4", "train.eval_strategy=steps", "train.eval_steps=2",
                 "--space", "train.learning_rate=1e-4..1e-2:log", "--trials", "2", "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "best val accuracy" in out and "Best: trial " in out and f"Run directory: {tmp_path}" in out
    assert len([d for d in tmp_path.iterdir() if "trial" in d.name]) == 2


def test_choices_from_the_command_line_are_recorded_as_the_runs_use_them(tiny_bert, clf_csv, tmp_path):
    # YAML reads 1e-3 (no dot) as text; the config makes it a number, and so does the trial's record
    assert main(["search", f"model={tiny_bert}", f"data.train={clf_csv}", f"runs_dir={tmp_path}",
                 "train.max_steps=2", "train.eval_strategy=steps", "train.eval_steps=2",
                 "--space", "train.learning_rate=1e-3,1e-2", "--trials", "1", "--quiet"]) == 0
    (trial,) = tmp_path.iterdir()
    recorded = json.loads((trial / "run.json").read_text())["search"]["params"]["train.learning_rate"]
    assert recorded in (0.001, 0.01) and recorded == yaml.safe_load((trial / "config.yaml").read_text())["train"]["learning_rate"]


def test_a_space_over_a_setting_the_runs_do_not_use_is_refused(tiny_bert, clf_csv, tmp_path):
    base = _base(tiny_bert, clf_csv, tmp_path / "runs")
    with pytest.raises(ConfigError, match=r"search space: lora.r has no effect here: lora.enabled is false\. "
                                          r"Set lora.enabled so that it does"):
        search(base, {"lora.r": [4, 16]}, trials=2, progress=False)
    assert not (tmp_path / "runs").exists()
    # where the space also decides it, the trials that enable it use it
    result = search(base, {"lora.r": [4, 16], "lora.enabled": [True, False]}, trials=1, progress=False)
    assert result.trials[0]["status"] == "completed"


def test_trials_whose_settings_in_effect_repeat_an_earlier_one_take_its_result_and_mark_unused_values(
        tiny_bert, clf_csv, tmp_path, capsys):
    base = _base(tiny_bert, clf_csv, tmp_path / "runs")
    # 8 is lora.r's default: a trial with LoRA off ignores it as much as 4
    result = search(base, {"lora.enabled": [True, False], "lora.r": [4, 8]}, trials=6)
    err = capsys.readouterr().err
    distinct = {(t["params"]["lora.enabled"], None if "lora.r" in t["unused"] else t["params"]["lora.r"])
                for t in result.trials}
    # at most three settings take effect (LoRA off, r 4, r 8): six trials train at most three runs
    assert len(list((tmp_path / "runs").iterdir())) == len(distinct) <= 3
    repeats = [t for t in result.trials if t["status"].startswith("same as trial ")]
    assert len(repeats) == 6 - len(distinct)
    for t in repeats:
        first = next(o for o in result.trials if o["number"] == int(t["status"].rsplit(" ", 1)[1]))
        assert t["value"] == first["value"] and t["run_id"] == first["run_id"]
        assert f"trial {t['number']}: the settings that take effect are trial {first['number']}'s" in err
    for t in result.trials:
        assert ("lora.r" in t["unused"]) == (t["params"]["lora.enabled"] is False)
    table = result.table_rows()
    column = table[0].index("lora.r")
    assert {row[column] for row in table[1:] if row[table[0].index("lora.enabled")] == "False"} <= {"not used"}


def test_a_tasks_own_options_can_be_searched(tiny_bert, clf_csv, tmp_path):
    check_space({"task_options.problem": ["single-label", "multi-label"]})
    base = _base(tiny_bert, clf_csv, tmp_path / "runs")
    # single-label runs report accuracy, multi-label ones f1_micro: no ranking across the two
    with pytest.raises(ConfigError, match=r"ranked on different metrics \(accuracy \(task_options.problem=single-"
                                          r"label\); f1_micro \(task_options.problem=multi-label\)\)"):
        search(base, {"task_options.problem": ["single-label", "multi-label"]}, trials=2, progress=False)
    with pytest.raises(ConfigError, match="task_options"):
        search(base, {"task_options.no_such_option": [1, 2]}, trials=1, progress=False)
    assert not (tmp_path / "runs").exists()


def test_the_package_exports_the_search_function():
    import workbench
    import workbench.tuning  # noqa: F401  (an imported module must not shadow the function)
    from workbench import search as exported

    assert exported is search and workbench.search is search


def test_a_metric_the_runs_do_not_report_stops_the_search_after_one_trial(tiny_bert, clf_csv, tmp_path, capsys):
    events = []
    with pytest.raises(ConfigError, match=r"search metric 'acuracy' is not among the validation metrics "
                                          r"\(.*accuracy.*\). Did you mean 'accuracy'") as e:
        search(_base(tiny_bert, clf_csv, tmp_path / "runs"), {"train.batch_size": [8, 16]}, trials=3,
               metric="acuracy", sinks=[events.append])
    import traceback

    frames = traceback.extract_tb(e.value.__traceback__)
    assert not [f for f in frames if "optuna" in f.filename], [f.filename for f in frames]
    # refused before the first trial trained (the name is checked on a few validation rows), and the
    # trial that found out is not left behind as a failed run
    assert [e.event for e in events if e.event in ("step", "eval", "failed")] == ["failed"]
    assert list((tmp_path / "runs").iterdir()) == []
    # the search's error says it once: the trial's "run failed" line is not printed before it
    assert "not a validation metric" not in capsys.readouterr().err


def test_a_trial_that_fails_on_its_own_still_says_so(tiny_bert, clf_csv, tmp_path, capsys):
    result = search(_base(tiny_bert, clf_csv, tmp_path / "runs"), {"train.freeze": ["layers:8", "layers:9"]}, trials=1)
    assert result.best is None and result.trials[0]["status"].startswith("failed: train.freeze")
    assert "run failed: train.freeze" in capsys.readouterr().err


def test_the_search_metric_picks_each_trials_best_checkpoint_too(tiny_bert, clf_csv, tmp_path):
    result = search(_base(tiny_bert, clf_csv, tmp_path / "runs"), {"train.batch_size": [8, 16]}, trials=1,
                    metric="eval_f1_macro", progress=False)
    assert result.metric == "f1_macro" and result.trials[0]["value"] is not None
    cfg = yaml.safe_load((Path(result.trials[0]["run_dir"]) / "config.yaml").read_text())
    assert cfg["train"]["metric_for_best_model"] == "f1_macro"


def test_ranges_are_integers_only_for_integer_keys():
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    from workbench.tuning import _suggest_value

    floats = [_suggest_value(study.ask(), "train.weight_decay", {"low": 0, "high": 1}) for _ in range(5)]
    ints = [_suggest_value(study.ask(), "train.batch_size", {"low": 4, "high": 32}) for _ in range(5)]
    assert all(isinstance(v, float) for v in floats) and any(0 < v < 1 for v in floats)
    assert all(isinstance(v, int) and 4 <= v <= 32 for v in ints)


def test_ctrl_c_keeps_the_trials_that_ended(tiny_bert, clf_csv, tmp_path, monkeypatch):
    import workbench.api as api

    real, calls = api.finetune, []

    def interrupted_on_the_second(*a, **kw):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(api, "finetune", interrupted_on_the_second)
    result = search(_base(tiny_bert, clf_csv, tmp_path / "runs"), {"train.batch_size": [8, 16]}, trials=4,
                    progress=False)
    assert result.interrupted and len(result.trials) == 1 and result.best is result.trials[0]


def test_failed_trials_name_their_run_and_reason(tiny_bert, clf_csv, tmp_path, recwarn):
    from workbench.runs import list_runs

    # layers the model does not have: found once the model is loaded, after the data, in the trial's folder
    space = {"lora.target_modules": [["no_such_layer"], ["nor_this_one"]]}
    base = _base(tiny_bert, clf_csv, tmp_path / "runs")
    base["lora"] = {"enabled": True}
    result = search(base, space, trials=2, progress=False)
    assert result.best is None and len(result.trials) == 2
    runs = {r["id"]: r for r in list_runs(tmp_path / "runs")}
    for t in result.trials:
        assert t["status"].startswith("failed: ") and "lora.target_modules" in t["status"], t["status"]
        assert runs[t["run_id"]]["status"] == "failed"
    # lists are choices too (optuna itself takes only plain values and warned about them)
    assert sorted(t["params"]["lora.target_modules"][0] for t in result.trials) == ["no_such_layer", "nor_this_one"]
    assert not [w for w in recwarn if "categorical distribution" in str(w.message)]
    assert "best val metric" in repr(result)
