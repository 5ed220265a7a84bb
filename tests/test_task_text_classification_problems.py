"""Text classification beyond one label: multi-label (sigmoid head) and regression (a numeric target)."""

import json

import pandas as pd
import pytest
import yaml

from workbench import finetune
from workbench.api import Run
from workbench.cli import main
from workbench.errors import ConfigError, DataError

from builders import make_multilabel_rows, make_regression_rows, tiny_config


def config(model, source, runs, problem, **data):
    cfg = tiny_config(model, source, runs, epochs=5)
    cfg["task_options"] = {"problem": problem}
    cfg["data"].update(data)
    return cfg


@pytest.fixture(scope="module")
def multilabel(tiny_bert, tmp_path_factory):
    root = tmp_path_factory.mktemp("multilabel")
    path = root / "topics.jsonl"
    path.write_text("".join(json.dumps({"text": t, "topics": labels}) + "\n" for t, labels in make_multilabel_rows(400)))
    cfg = config(tiny_bert, path, root / "runs", "multi-label", label_column="topics")
    cfg["train"].update(epochs=10, learning_rate=1e-2, warmup_ratio=0.1)  # a random tiny encoder needs them
    return finetune(cfg, progress=False)


@pytest.fixture(scope="module")
def regression(tiny_bert, tmp_path_factory):
    """From the command line, the problem and target column given as key=value overrides."""
    root = tmp_path_factory.mktemp("regression")
    path = root / "scores.csv"
    pd.DataFrame(make_regression_rows(240), columns=["text", "score"]).to_csv(path, index=False)
    cfg = root / "run.yaml"
    cfg.write_text(yaml.safe_dump(tiny_config(tiny_bert, path, root / "runs", epochs=5)))
    assert main(["train", str(cfg), "task_options.problem=regression", "data.label_column=score", "--quiet"]) == 0
    return Run(next((root / "runs").iterdir()))


def test_multilabel_run_scores_micro_and_macro_f1(multilabel):
    ev = multilabel.evaluation
    assert multilabel.status == "completed" and ev["main_metric"] == "f1_micro" and ev["greater_is_better"]
    fin = ev["finetuned"]
    assert set(fin) == {"subset_accuracy", "f1_micro", "f1_macro", "precision_micro", "precision_macro",
                        "recall_micro", "recall_macro"}
    assert fin["f1_micro"] > 0.8 and fin["f1_micro"] > ev["baselines"]["label_prior"]["f1_micro"] + 0.2
    assert set(ev["baselines"]) == {"linear_probe", "label_prior"}
    assert {"money", "sport", "tech", "micro avg"} <= set(ev["per_class"]["finetuned"])
    for ex in ev["examples"]:
        assert ex["finetuned"] != ex["baseline"] and isinstance(ex["label"], list)
    cfg = json.loads((multilabel.dir / "model" / "config.json").read_text())
    assert cfg["problem_type"] == "multi_label_classification"


def test_multilabel_predict_returns_a_set_of_labels(multilabel):
    out = multilabel.predict("match goal team player coach bank market shares profit price stock")
    assert set(out["labels"]) <= {"money", "sport", "tech"} and set(out["scores"]) == {"money", "sport", "tech"}
    assert "sport" in out["labels"] and "money" in out["labels"]
    for threshold in (0.5, 0.99):  # the saved threshold (0.5), or one given at predict time
        kw = {"threshold": threshold} if threshold != 0.5 else {}
        got = multilabel.predict(["match goal team", "bank market"], **kw)
        for g in got:
            assert set(g["labels"]) == {k for k, p in g["scores"].items() if p >= threshold}


def test_regression_run_reports_mse_and_pearson(regression):
    ev = regression.evaluation
    assert regression.status == "completed" and ev["main_metric"] == "mse" and ev["greater_is_better"] is False
    fin = ev["finetuned"]
    assert set(fin) == {"mse", "rmse", "mae", "pearson"}
    assert fin["pearson"] > 0.8 and fin["mse"] < ev["baselines"]["train_mean"]["mse"] / 3
    assert fin["rmse"] == pytest.approx(fin["mse"] ** 0.5)
    diffs = [abs(ex["finetuned"] - ex["baseline"]) for ex in ev["examples"]]
    assert diffs == sorted(diffs, reverse=True)  # the examples where the two models differ most
    assert 0 < ev["target"]["std"]
    assert ev["baselines"]["train_mean"]["pearson"] is None  # undefined for a constant prediction


def test_pearson_of_a_constant_prediction_is_none_without_a_warning():
    import warnings

    from workbench.metrics import regression_metrics

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert regression_metrics([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])["pearson"] is None
    assert regression_metrics([1.0, 2.5, 2.9], [1.0, 2.0, 3.0])["pearson"] > 0.9


def test_regression_predict_is_in_the_targets_units(regression):
    high, low = regression.predict(["bank market shares profit price stock bank rate trade economy",
                                     "the a of and to in on for with is was it this"])
    assert high["value"] > low["value"] + 2


def test_multilabel_csv_with_separated_labels_and_bad_rows(tiny_bert, tmp_path):
    rows = make_multilabel_rows(60)
    frame = pd.DataFrame({"text": [t for t, _ in rows], "label": ["; ".join(labels) for _, labels in rows]})
    path = tmp_path / "ml.csv"
    frame.to_csv(path, index=False)
    cfg = config(tiny_bert, path, tmp_path / "runs", "multi-label")
    cfg["task_options"]["label_separator"] = ";"
    cfg["train"]["epochs"] = 1
    run = finetune(cfg, progress=False)
    counts = run.info["data"]["labels"]  # per label, over the training split
    assert set(counts) == {"money", "sport", "tech"} and sum(counts.values()) > run.info["data"]["sizes"]["train"]
    frame.loc[4, "label"] = ""
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"ml.csv, line 6: no label in column 'label'. Label these rows or remove "
                                        r"them \(a row with none of the labels is written \[\] in the cell"):
        finetune(cfg, progress=False)
    frame.loc[4, "label"] = "[]"
    frame.to_csv(path, index=False)
    from workbench.tasks import get

    from workbench.config import resolve

    task = get("text-classification")(resolve(inline=cfg))
    assert task.load_data().report["sizes"]["train"] > 0  # "[]" is a row without labels, as the message says


def test_joined_labels_of_a_single_label_run_suggest_multi_label(tiny_bert, tmp_path):
    from workbench.config import resolve
    from workbench.tasks import get

    rows = make_multilabel_rows(60)
    frame = pd.DataFrame({"text": [t for t, _ in rows], "label": [",".join(labels) for _, labels in rows]})
    frame.to_csv(tmp_path / "ml.csv", index=False)
    cfg = config(tiny_bert, tmp_path / "ml.csv", tmp_path / "runs", "single-label")
    splits = get("text-classification")(resolve(inline=cfg)).load_data()
    hints = [w for w in splits.report["warnings"] if "task_options.problem: multi-label" in w]
    assert len(hints) == 1 and "classes hold ','" in hints[0]


def test_labels_written_as_text_in_one_file_and_numbers_in_another_are_told_apart(tiny_bert, clf_csv, tmp_path):
    from workbench.config import resolve
    from workbench.tasks import get

    train = pd.read_csv(clf_csv)
    codes = {label: i for i, label in enumerate(sorted(train["label"].unique()))}
    train["label"] = train["label"].map(codes)
    train.iloc[:100].to_csv(tmp_path / "train.csv", index=False)
    test = train.iloc[100:].copy()
    test["label"] = test["label"].astype(str)
    test.to_json(tmp_path / "test.jsonl", orient="records", lines=True)
    cfg = config(tiny_bert, tmp_path / "train.csv", tmp_path / "runs", "single-label")
    cfg["data"]["test"] = str(tmp_path / "test.jsonl")
    with pytest.raises(DataError, match=r"test split: labels '0', '1'.* never occur in train \(.*test.jsonl, lines .*\)\. "
                                        r"Train has 0 \(int\) where test has '0' \(str\): write the labels the same way"):
        get("text-classification")(resolve(inline=cfg)).load_data()


def test_regression_needs_numbers(tiny_bert, tmp_path):
    rows = make_regression_rows(40)
    frame = pd.DataFrame(rows, columns=["text", "score"])
    frame["score"] = frame["score"].astype(object)
    frame.loc[9, "score"] = "high"
    path = tmp_path / "scores.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(DataError, match=r"scores.csv, line 11: column 'score' must hold a finite number.*'high'"):
        finetune(config(tiny_bert, path, tmp_path / "runs", "regression", label_column="score"), progress=False)


def test_unknown_problem_and_option_names(tiny_bert, clf_csv, tmp_path):
    with pytest.raises(ConfigError, match="task_options.problem: 'multilabel' is not one of"):
        finetune(config(tiny_bert, clf_csv, tmp_path, "multilabel"), progress=False)
    cfg = config(tiny_bert, clf_csv, tmp_path, "multi-label")
    cfg["task_options"]["treshold"] = 0.3
    with pytest.raises(ConfigError, match="Did you mean 'threshold'"):
        finetune(cfg, progress=False)


def test_task_options_from_key_value_overrides():
    import shlex

    from workbench.config import resolve

    cfg = resolve(inline="task_options: {problem: multi-label, threshold: 0.4}",
                  overrides=["task_options.threshold=0.3", "task_options.label_separator=;"])
    assert cfg.task_options == {"problem": "multi-label", "threshold": 0.3, "label_separator": ";"}
    again = resolve(overrides=shlex.split(cfg.to_cli())[2:])  # the "copy as CLI" line round-trips
    assert again.task_options == cfg.task_options


@pytest.mark.parametrize("threshold,code", [("0.3", 0), ("1", 2), ("0", 2)])
def test_predict_threshold_takes_what_task_options_threshold_takes(multilabel, capsys, threshold, code):
    assert main(["predict", str(multilabel.dir), "money and sport", "--threshold", threshold]) == code
    if code:
        assert "give a probability between 0 and 1" in capsys.readouterr().err
