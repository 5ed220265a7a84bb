"""Every template runs headless under papermill on tiny models, through `workbench report`.

Each report starts a kernel and trains a 2-layer BERT or GPT-2 built from a config (seconds).
"""

import html
import json
import os
import re
from pathlib import Path

import nbformat
import pytest

from workbench import cli, report
from workbench.runs import RunDir

from builders import build_tiny_bert, make_ner_sentences, make_texts, ner_vocab, write_conll

TINY_TRAIN = ["-p", "epochs", "1", "-p", "learning_rate", "0.003", "-p", "max_length", "64", "-p", "batch_size", "16",
              "-p", "config", '{"train.save_checkpoints": false}']


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A project folder as cwd, and Jupyter dirs of its own so no user-level kernelspec shadows the venv's."""
    root = tmp_path_factory.mktemp("project")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("JUPYTER_DATA_DIR", str(root / ".jupyter-data"))
        mp.setenv("JUPYTER_CONFIG_DIR", str(root / ".jupyter-config"))
        mp.delenv("WORKBENCH_RUNS_DIR", raising=False)
        yield root


def run_cli(args, capsys):
    code = cli.main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def report_path(out: str) -> Path:
    return Path(re.search(r"^Report: (.+)$", out, re.M).group(1))


def assert_self_contained(page: str) -> None:
    low = page.lower()
    assert "<script" not in low and "<link" not in low
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//""", low)
    assert "script-src 'none'" in page


def images(page: str) -> int:
    return len(re.findall(r"""<img [^>]*src=["']data:image/(png|svg\+xml);base64,""", page))


@pytest.fixture(scope="module")
def classification_reports(workdir, tiny_bert, clf_csv):
    """The text-classification template run twice with the same parameters and seed."""
    args = ["report", "text_classification", "-p", "model", str(tiny_bert), "-p", "data", str(clf_csv),
            "-p", "max_train_samples", "null", "-p", "name", "tc", *TINY_TRAIN]
    dirs = []
    for _ in range(2):
        assert cli.main(args) == 0
        runs = sorted((workdir / "runs").iterdir())
        dirs.append(runs[-1])
    assert dirs[0] != dirs[1]
    return dirs


def test_text_classification_report(classification_reports):
    run_dir = classification_reports[0]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["status"] == "completed" and info["report"]["error"] is None
    page = (run_dir / "report.html").read_text()
    umask = os.umask(0)
    os.umask(umask)
    assert (run_dir / "report.html").stat().st_mode & 0o777 == 0o666 & ~umask  # shareable, not 0600
    assert_self_contained(page)
    assert 'class="wb-metrics"' in page and ">accuracy</td>" in page and "linear probe" in page
    assert images(page) >= 4  # classes, lengths, training curves, confusion matrices
    for needle in ("The question", "Duplicates and leakage", "Per class", "disagree", "Reproducibility",
                   info["config_hash"], info["data_fingerprint"]):
        assert needle in page, needle
    assert "workbench report text_classification -p" in shown_text(page)  # a command's words are blocks
    nb = nbformat.read(str(run_dir / "report.ipynb"), as_version=4)
    assert not nb.metadata.papermill.get("exception")
    assert nb.metadata.workbench.parameters["name"] == "tc"


def test_same_parameters_and_seed_give_the_same_metrics(classification_reports):
    first, second = (RunDir(d).read_eval() for d in classification_reports)
    assert first["finetuned"] == second["finetuned"] and first["baseline"] == second["baseline"]


def test_compare_runs_report(classification_reports, workdir, capsys):
    refs = json.dumps([str(d) for d in classification_reports])
    code, out, err = run_cli(["report", "compare_runs", "-p", "runs", refs, "--output", "cmp", "--no-input"],
                             capsys)
    assert code == 0, err
    page = (workdir / "cmp" / "report.html").read_text()
    assert report_path(out) == workdir / "cmp" / "report.html"
    assert_self_contained(page)
    assert all(d.name in page for d in classification_reports)
    assert "share one configuration" in page and images(page) >= 1
    assert "wb.show_comparison" not in page  # --no-input leaves the code out


def test_a_template_run_by_plain_papermill_finds_runs_in_workbench_runs_dir(classification_reports, workdir,
                                                                            monkeypatch):
    import papermill

    elsewhere = workdir / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(workdir / "runs"))  # the kernel inherits it
    out = elsewhere / "cmp.ipynb"
    papermill.execute_notebook(str(report.template_path("compare_runs")), str(out), parameters={"latest": 2},
                               kernel_name="python3", progress_bar=False, cwd=str(elsewhere))
    text = out.read_text()
    assert all(d.name in text for d in classification_reports) and not (elsewhere / "runs").exists()
    # its re-run command names the two runs it compared, not "the newest 2", which may be others later
    nb = nbformat.read(str(out), as_version=4)
    shown = "".join(o.get("data", {}).get("text/html", "") for c in nb.cells for o in c.get("outputs", []))
    command = re.sub("<[^>]+>", "", re.search(r"Re-run this report:</p><pre>(.*?)</pre>", shown).group(1))
    assert "latest" not in command and "-p runs" in command
    assert all(str(d) in html.unescape(command) for d in classification_reports[-2:])


def test_a_failing_cell_exits_non_zero_with_its_error(workdir, tiny_bert, clf_csv, capsys):
    code, out, err = run_cli(["report", "text_classification", "-p", "model", str(tiny_bert), "-p", "data",
                              str(clf_csv), "-p", "label_column", "topic"], capsys)
    assert code == 1
    assert re.search(r"error: cell In \[\d+\] failed: DataError: .*no column 'topic' \(data.label_column\)", err)
    page = report_path(out)
    assert page.is_file() and "no column" in page.read_text()  # the partial report is still written


def test_plain_papermill_gets_the_same_parameter_checks(workdir):
    import papermill
    from papermill.exceptions import PapermillExecutionError

    template = report.template_path("text_classification")
    for params, message in (({"epoch": 2}, "Unknown parameter 'epoch' (did you mean 'epochs'?)"),):
        with pytest.raises(PapermillExecutionError) as e:
            papermill.execute_notebook(str(template), str(workdir / "bad.ipynb"), parameters=params,
                                       kernel_name="python3", progress_bar=False)
        assert e.value.ename == "ParameterError" and message in e.value.evalue


def test_papermill_reads_every_declared_parameter():
    """papermill's own parser reads `name: type = value  # help` lines only with plain annotations
    (Optional[int], not int | None) and one '=': otherwise `papermill -p` warns of an unknown parameter."""
    import papermill

    templates = report.list_templates()
    assert len(templates) == 5
    for path in templates:
        name = path.stem
        declared = report.parameter_spec(name)
        seen = papermill.inspect_notebook(str(path))
        assert set(declared) <= set(seen), (name, sorted(set(declared) - set(seen)))
        assert all(seen[k]["inferred_type_name"] == declared[k]["type"] for k in declared), name


def test_domain_adaptation_report(workdir, tiny_bert, clf_csv, capsys):
    code, out, err = run_cli(["report", "domain_adaptation", "-p", "model", str(tiny_bert), "-p", "data",
                              str(clf_csv), "-p", "max_train_samples", "null", "-p", "mlm_epochs", "1",
                              "-p", "mlm_learning_rate", "0.003", "-p", "name", "da", *TINY_TRAIN,
                              "-p", "mlm_config", '{"train.max_steps": 4, "train.save_checkpoints": false}'], capsys)
    assert code == 0, err
    page_path = report_path(out)
    run_dir = page_path.parent
    assert run_dir.name.split("-")[2:4] == ["da", "adapted"]  # the report lives with the adapted classifier
    page = page_path.read_text()
    assert_self_contained(page)
    for needle in ("adapted encoder, fine-tuned", "base encoder, frozen, linear probe", "perplexity",
                   "mean-pooled embeddings"):
        assert needle in page, needle
    # the adapted classifier's baseline is a probe on the adapted encoder, and the page says so
    detail = page[page.index("The adapted classifier in detail"):]
    assert "frozen adapted encoder&#x27;s mean-pooled embeddings" in detail or \
        "frozen adapted encoder's mean-pooled embeddings" in detail
    assert "base model" not in detail[:detail.index("Reproducibility")]
    assert "RunConfig(" not in page  # no stray value printed by a set-up cell
    # the masked-LM stage trained on the texts held in the notebook: no `workbench train` line for it
    retrain = shown_text(page[page.index("Re-train a run from its saved config"):])
    assert "masked-LM: trained on data held in the notebook" in retrain
    assert retrain.count("workbench train ") == 2  # the two classifiers only
    mlm_config = (sorted((workdir / "runs").glob("*-da-mlm-*"))[-1] / "config.yaml").read_text()
    assert "masked-lm" in mlm_config
    adapted = json.loads((run_dir / "run.json").read_text())
    assert adapted["model"].endswith("model") and "-da-mlm-" in adapted["model"]


def shown_text(page: str) -> str:
    """The text a reader sees in ``page``, without its tags."""
    return html.unescape(re.sub("<[^>]+>", "", page))


@pytest.fixture(scope="module")
def ner_model(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("ner-bert"), ner_vocab())


def test_token_classification_report(workdir, ner_model, capsys):
    rows = make_ner_sentences(160)
    for words, tags in rows[:8]:  # an I- tag after O: invalid in IOB2, a note on the data
        first = next(i for i, t in enumerate(tags) if t.startswith("B-"))
        tags[first] = "I-" + tags[first][2:]
    data = write_conll(workdir / "ner.conll", rows)
    code, out, err = run_cli(["report", "token_classification", "-p", "model", str(ner_model), "-p", "data",
                              "ner.conll", "-p", "name", "ner", *TINY_TRAIN], capsys)
    assert code == 0, err
    page = report_path(out).read_text()
    assert_self_contained(page)
    assert "Per entity type" in page and ">PER</td>" in page and "seqeval" in page
    assert "Tag sequences invalid in IOB2" in page and "leakage found" not in page
    # the data file was named relative to the notebook's folder: the terminal command names it in full
    command = html.unescape(re.sub("<[^>]+>", "", re.search(r"same run from a terminal:</p>\s*<pre>(.*?)</pre>",
                                                            page).group(1)))
    assert f"data.train={data}" in command


def test_a_regression_report_shows_the_targets_spread_not_a_count_per_value(workdir, tiny_bert, capsys):
    import csv

    from builders import make_regression_rows

    data = workdir / "scores.csv"
    with open(data, "w", newline="") as f:
        csv.writer(f).writerows([("text", "label"), *make_regression_rows(150)])
    code, out, err = run_cli(["report", "text_classification", "-p", "model", str(tiny_bert), "-p", "data", str(data),
                              "-p", "name", "reg", *TINY_TRAIN[:-3],
                              "-p", "config", '{"train.save_checkpoints": false, "task_options.problem": "regression"}'],
                             capsys)
    assert code == 0, err
    page = report_path(out).read_text()
    assert "Each text gets a number (task_options.problem: regression)" in page
    assert "histogram of the target" in page and "<th>median</th>" in page
    assert "share of each label per split" not in page and ">mse</td>" in page


def test_causal_lm_report(workdir, tiny_gpt2, capsys):
    lines = [text for text, _ in make_texts(150, seed=3)]
    (workdir / "corpus.txt").write_text("\n".join(lines) + "\n")
    code, out, err = run_cli(["report", "causal_lm", "-p", "model", str(tiny_gpt2), "-p", "data", "corpus.txt",
                              "-p", "name", "clm", *TINY_TRAIN], capsys)
    assert code == 0, err
    page = report_path(out).read_text()
    assert_self_contained(page)
    assert ">perplexity</td>" in page and "Reproducibility" in page
    # the corpus has no blank lines: nothing to report under leakage; the test split counts blocks
    assert "Duplicates and leakage:</b> no exact duplicate texts" in page and "Blank lines skipped" not in page
    assert re.search(r"Test split: \d+ blocks of \d+ tokens\.", page)


def test_report_follows_its_runs_progress_and_puts_them_in_workbench_runs_dir(workdir, tiny_bert, clf_csv, capsys,
                                                                              monkeypatch):
    elsewhere = workdir / "team-runs"
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(elsewhere))
    code, out, err = run_cli(["report", "text_classification", "-p", "model", str(tiny_bert), "-p", "data",
                              str(clf_csv), "-p", "name", "env-dir", *TINY_TRAIN], capsys)
    assert code == 0, err
    (run,) = [d for d in elsewhere.iterdir() if "env-dir" in d.name]
    assert report_path(out) == run / "report.html"
    # the run's progress, read from its metrics.jsonl while the notebook ran: as `workbench train` shows it
    assert f"run {run.name}: text-classification on {tiny_bert}" in err
    assert re.search(r"\[#+ *\] \d+/\d+ epoch", err) and "eval (validation) at step" in err
    assert "  testing: " in err and "without encryption" not in err  # no kernel start-up notice
    assert run_cli(["runs", "list"], capsys)[1].count("env-dir") == 1  # where `workbench runs list` looks


def test_a_workbench_error_shows_in_the_report_as_its_message_not_a_traceback(workdir, tiny_bert, clf_csv, capsys):
    code, out, err = run_cli(["report", "text_classification", "-p", "model", str(tiny_bert), "-p", "data",
                              str(clf_csv), "-p", "label_column", "queue"], capsys)
    assert code == 1 and "DataError: " in err
    page = report_path(out)
    shown = html.unescape(re.sub("<[^>]+>", "", page.read_text()))
    assert "DataError: " in shown and "no column 'queue' (data.label_column)" in shown
    assert "Traceback" not in shown and "report_sections.py" not in shown and "data/__init__.py" not in shown
    nb = nbformat.read(str(page.parent / "report.ipynb"), as_version=4)
    (error,) = [o for c in nb.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert error.ename == "DataError" and len(error.traceback) == 1 and error.traceback[0].startswith("DataError: ")
