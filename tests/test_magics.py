"""%%finetune, %finetune_runs and %finetune_compare through an IPython shell, the way a notebook calls them.

Errors must arrive as one message (a UsageError the notebook shows as its error output, without a
traceback, and papermill reports).
One real run on a tiny BERT (seconds); everything else stops before training.
"""

import os
import re
import signal
import threading

import pandas as pd
import pytest
import yaml
from IPython.core.error import UsageError
from IPython.utils.capture import capture_output

from workbench.magics import FinetuneError, build_config, help_text, interactive, interrupt_stops, parse_line
from workbench.runs import list_runs

from builders import make_texts, tiny_config


@pytest.fixture(scope="module")
def ip():
    from IPython.testing.globalipapp import get_ipython

    shell = get_ipython()
    shell.extension_manager.load_extension("workbench")
    active = shell.display_formatter.active_types
    shell.display_formatter.active_types = shell.display_formatter.format_types  # HTML and PNG, like a kernel
    yield shell
    shell.display_formatter.active_types = active


def cell(ip, line: str, body: str | None = None):
    """Run a %%finetune cell like a notebook would; errors propagate (a shell that raises)."""
    result = ip.run_cell(f"%%finetune {line}\n{body}" if body else f"%finetune {line}")
    result.raise_error()
    return result.result


def body_for(model, data, runs, **train) -> str:
    cfg = tiny_config(model, data, runs, **train)
    return yaml.safe_dump(cfg, sort_keys=False)


def final_outputs(cap) -> list[dict]:
    """Display outputs as a notebook keeps them: each display_id holds its last update."""
    order, last = [], {}
    for i, out in enumerate(cap.outputs):
        key = (out.transient or {}).get("display_id") or f"plain-{i}"
        if key not in last:
            order.append(key)
        last[key] = out.data
    return [last[k] for k in order]


# ---- the parser, without a kernel ----------------------------------------------------------------

def test_parse_line_reads_flags_and_overrides():
    args = parse_line("--config base.yaml --name news --background --dry-run -o r train.epochs=2 model=minilm")
    assert (args.config, args.name, args.background, args.dry_run, args.output) == \
        ("base.yaml", "news", True, True, "r")
    assert args.overrides == ["train.epochs=2", "model=minilm"]


@pytest.mark.parametrize("line, message", [
    ("--no-such-flag", "unrecognized arguments"),
    ("train.epochs", "is not key=value"),
    ("-o", "expected one argument"),
])
def test_parse_line_errors_are_usage_errors(line, message):
    with pytest.raises(UsageError, match=message):
        parse_line(line)


def test_layers_file_then_body_then_line(tmp_path):
    file = tmp_path / "base.yaml"
    file.write_text("model: from-file\ntrain:\n  epochs: 5\n  batch_size: 4\n  seed: 1\n")
    args = parse_line(f"--config {file} --name mine train.seed=3")
    cfg = build_config(args, "model: from-body\ntrain:\n  epochs: 2\n", {})
    assert cfg.model == "from-body" and cfg.train.epochs == 2.0  # body over file
    assert cfg.train.batch_size == 4  # file over defaults
    assert cfg.train.seed == 3 and cfg.name == "mine"  # line over body


def test_dollar_reference_takes_a_dataframe_from_the_namespace():
    df = pd.DataFrame(make_texts(30), columns=["text", "label"])
    cfg = build_config(parse_line(""), "data:\n  train: $df\n", {"df": df})
    assert cfg.data.train is df


def test_help_lists_flags_body_and_every_config_key(ip, capsys):
    assert cell(ip, "--help") is None
    out = capsys.readouterr().out
    for text in ("usage: %%finetune", "--dry-run", "--background", "-o VAR", "cell body is YAML",
                 "train.learning_rate", "data.label_column", "train.resume_from"):
        assert text in out, text
    assert cell(ip, "--help", "model: ignored") is None
    assert help_text() in capsys.readouterr().out


# ---- error paths: one clear message each ---------------------------------------------------------

@pytest.mark.parametrize("line, body, message", [
    ("", "model: [unclosed\n", r"Invalid YAML in the %%finetune cell body \(line 2"),
    ("", "modle: minilm\n", "Unknown config key 'modle'. Did you mean 'model'"),
    ("", "train:\n  epochs: many\n", "train.epochs: expected a number"),
    ("", "task: translation\n", "task: 'translation' is not one of"),
    ("train.lr=1e-3", "", "Unknown config key 'train.lr'"),
    ("", "data:\n  train: $nowhere\n", "no variable named 'nowhere'"),
    ("--config /no/such/file.yaml", "", "Config file not found: /no/such/file.yaml"),
    ("", "- just\n- a list\n", "must be a YAML mapping"),
])
def test_config_errors_raise_usage_error_with_one_message(ip, line, body, message):
    with pytest.raises(UsageError, match=message):
        cell(ip, line, body)


def test_a_notebook_shows_one_line_not_a_traceback(ip, capsys):
    result = ip.run_cell("%%finetune\nmodle: minilm\n")
    assert isinstance(result.error_in_exec, UsageError)
    shown = capsys.readouterr()
    text = shown.out + shown.err
    assert "ConfigError: Unknown config key 'modle'" in text and "Traceback" not in text
    result = ip.run_cell("%%finetune --no-such-flag\nmodel: minilm\n")
    assert "UsageError: unrecognized arguments: --no-such-flag" in "".join(capsys.readouterr()) \
        and isinstance(result.error_in_exec, UsageError)


def test_papermill_reports_the_cells_message(tmp_path):
    """The message is the cell's error output, so papermill's exception carries it (IPython prints a
    plain UsageError to stderr, which left papermill's message empty)."""
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("%load_ext workbench"), nbformat.v4.new_code_cell("%%finetune\nmodle: minilm\n")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(tmp_path / "bad.ipynb"))
    with pytest.raises(PapermillExecutionError) as e:
        papermill.execute_notebook(str(tmp_path / "bad.ipynb"), str(tmp_path / "out.ipynb"), kernel_name="python3",
                                   progress_bar=False, cwd=str(tmp_path))
    assert e.value.ename == "FinetuneError" and "Unknown config key 'modle'" in e.value.evalue
    out = nbformat.read(str(tmp_path / "out.ipynb"), as_version=4)
    (error,) = [o for c in out.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert error.traceback == ["ConfigError: Unknown config key 'modle'. Did you mean 'model'?"]


def test_bad_data_in_a_dry_run_names_the_column_and_the_fix(ip, tiny_bert, clf_csv, runs_dir):
    body = body_for(tiny_bert, clf_csv, runs_dir) + "data:\n  train: {}\n  label_column: topic\n".format(clf_csv)
    with pytest.raises(UsageError, match=r"no column 'topic'.*label"):
        cell(ip, "--dry-run", body)
    assert not runs_dir.exists() or not list_runs(runs_dir)


def test_bad_data_in_a_real_run_fails_the_run_and_the_cell(ip, tiny_bert, tmp_path, runs_dir):
    data = tmp_path / "one_class.csv"
    pd.DataFrame({"text": [f"text number {i}" for i in range(40)], "label": ["a"] * 40}).to_csv(data, index=False)
    with capture_output() as cap:
        with pytest.raises(UsageError, match=r"one_class.csv: the training data has a single class"):
            cell(ip, "", body_for(tiny_bert, data, runs_dir))
    rows = list_runs(runs_dir)
    assert len(rows) == 1 and rows[0]["status"] == "failed"
    shown = final_outputs(cap)[0]["text/html"]
    assert "failed" in shown.lower() and rows[0]["id"] in shown  # the live view names the run that failed
    # and leaves the reason to the cell's error output, rather than saying it twice
    assert "single class" not in shown and "the error below says why" in shown


def test_dry_run_shows_config_and_data_without_training(ip, tiny_bert, clf_csv, runs_dir):
    with capture_output() as cap:
        assert cell(ip, "--dry-run train.epochs=7", body_for(tiny_bert, clf_csv, runs_dir)) is None
    html = final_outputs(cap)[0]["text/html"]
    assert "Dry run" in html and "epochs: 7\n" in html
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", html)
    assert cells[:2] == ["train", "144"] and cells[8:10] == ["test", "18"]
    assert "money 6" in html and "workbench train" in html
    assert not runs_dir.exists() or not list_runs(runs_dir)
    # augmented training rows: the originals and the copies, as the run reports them
    with capture_output() as cap:
        cell(ip, "--dry-run data.augment=eda data.augment_copies=2", body_for(tiny_bert, clf_csv, runs_dir))
    cells = re.findall(r"<td[^>]*>([^<]*)</td>", final_outputs(cap)[0]["text/html"])
    assert cells[0] == "train" and re.fullmatch(r"144 \+ 2\d\d eda copies", cells[1]), cells[:4]


def test_dry_run_on_a_notebook_table_gives_no_terminal_command_but_the_way_to_one(ip, tiny_bert, clf_csv, runs_dir):
    ip.user_ns["tickets"] = pd.read_csv(clf_csv)
    body = f"model: {tiny_bert}\nruns_dir: {runs_dir}\ndata:\n  train: $tickets\n"
    with capture_output() as cap:
        cell(ip, "--dry-run", body)
    html = final_outputs(cap)[0]["text/html"]
    assert "The same run from a terminal" not in html and "workbench train" not in html
    assert "No terminal equivalent: data.train is a table made in this notebook" in html
    assert "data.train=train.csv" in html


def test_compare_needs_runs_and_names_unknown_ones(ip, runs_dir):
    with pytest.raises(UsageError, match="Name the runs to compare"):
        ip.run_line_magic("finetune_compare", "")
    with pytest.raises(UsageError, match="No run 'nope'"):
        ip.run_line_magic("finetune_compare", f"nope --runs-dir {runs_dir}")


# ---- a real run ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def magic_run(ip, tiny_bert, clf_csv, tmp_path_factory):
    runs = tmp_path_factory.mktemp("magic-runs")
    ip.user_ns.pop("trained", None)
    with capture_output() as cap:
        run = cell(ip, "--name tiny -o trained train.epochs=2", body_for(tiny_bert, clf_csv, runs))
    return run, cap, runs


def test_magic_trains_and_returns_the_run(ip, magic_run):
    run, _, runs = magic_run
    assert run.status == "completed" and ip.user_ns["trained"] is run
    assert run.dir.parent == runs and "tiny" in run.id
    assert run.config.train.epochs == 2.0
    assert 0.0 <= run.metrics["accuracy"] <= 1.0 and "accuracy" in run.baseline
    summary = run._repr_html_()
    assert "fine-tuned" in summary and "baseline" in summary and str(run.dir) in summary


def test_magic_shows_final_progress_curves_and_confusion_matrix(magic_run):
    run, cap, _ = magic_run
    outputs = final_outputs(cap)
    progress, chart, confusion = outputs[:3]
    html = progress["text/html"]
    assert "completed" in html and "100%" in html and run.id in html and "val accuracy" in html
    assert "src='data:image/svg+xml;base64," in chart["text/html"] and "wb-confusion" in confusion["text/html"]
    assert sum(1 for o in cap.outputs if (o.transient or {}).get("display_id")) > 3  # it was updated in place


def test_runs_and_compare_magics_show_the_run(ip, magic_run):
    run, _, runs = magic_run
    with capture_output() as cap:
        ip.run_line_magic("finetune_runs", str(runs))
    table = cap.outputs[0].data["text/html"]
    assert run.id in table and "completed" in table and f"accuracy <b>{run.metrics['accuracy']:.4f}</b>" in table
    with capture_output() as cap:
        ip.run_line_magic("finetune_runs", f"--runs-dir {runs}")  # as %finetune_compare takes it
        ip.run_line_magic("finetune_runs", f"--dir {runs}")  # as the command line names it
    assert [o.data["text/html"] for o in cap.outputs] == [table, table]
    for line, said in ((f"--dir {runs} --runs-dir {runs}", "once"), ("latest --dir", "needs a folder")):
        with pytest.raises(FinetuneError, match=said):
            ip.run_line_magic("finetune_compare", line)
    assert not run.running and run.wait() is run  # a blocking cell's run answers as a background one does
    with capture_output() as cap:
        ip.run_line_magic("finetune_compare", f"{run.id} latest --dir {runs}")
    compare, curves = cap.outputs
    assert f"{run.metrics['accuracy']:.4f}" in compare.data["text/html"]
    assert "Same settings in every run" in compare.data["text/html"]
    assert curves.data["image/png"]


# ---- interactivity -------------------------------------------------------------------------------

def test_background_blocks_outside_an_interactive_kernel(monkeypatch):
    assert interactive() is False  # a terminal shell
    monkeypatch.setenv("WORKBENCH_HEADLESS", "1")
    assert interactive() is False


def test_first_interrupt_asks_for_a_clean_stop_second_one_interrupts():
    # The handler found on entry comes back on exit, whatever it was: a shell that starts the suite
    # as a background job hands Python an ignored SIGINT rather than default_int_handler.
    before = signal.getsignal(signal.SIGINT)
    stop = threading.Event()
    with interrupt_stops(stop):
        assert signal.getsignal(signal.SIGINT) is not before
        os.kill(os.getpid(), signal.SIGINT)
        assert stop.is_set()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is before


def test_rerunning_a_background_cell_shows_its_run_still_training_instead_of_a_second(ip, tiny_bert, clf_csv,
                                                                                      runs_dir, monkeypatch):
    """Re-running the cell clears the output that held the Stop button; the run it started is shown
    again, with that button, and no second run starts that nothing on screen could stop."""
    from workbench import magics

    class Kernel:
        cell = "cell-1"

        def get_parent(self):
            return {"metadata": {"cellId": self.cell}}

    monkeypatch.setattr(magics, "interactive", lambda: True)
    monkeypatch.setattr(ip, "kernel", Kernel(), raising=False)
    body = body_for(tiny_bert, clf_csv, runs_dir, epochs=500)
    with capture_output():
        first = cell(ip, "--background", body)
    try:
        assert first.running, (first.status, first.error)
        with capture_output() as cap:
            again = cell(ip, "--background", body)
        assert again is first
        shown = " ".join(str(o.data.get("text/html", "")) for o in cap.outputs)
        assert f"This cell's run {first.id} is still training" in shown
        # the cell's result is drawn once and stays on screen after the run ends: no state in it
        assert "was started in the background" in first._repr_html_() and "is training" not in first._repr_html_()
        assert [d.name for d in runs_dir.iterdir()] == [first.id]  # no second run was started
        Kernel.cell = "cell-2"  # another cell may start a second run: it waits for the first
        with capture_output():
            other = cell(ip, "--background", body_for(tiny_bert, clf_csv, runs_dir, epochs=1))
        assert other is not first
    finally:
        first.stop()
        first.wait(timeout=300, raise_error=False)
    assert first.status == "interrupted", (first.status, first.error)
    other.wait(timeout=300)
    assert other.status == "completed", (other.status, other.error)
    # ended runs are not kept for the kernel's lifetime (with their data and widgets)
    assert "cell-1" not in magics._BACKGROUND and "cell-2" not in magics._BACKGROUND


@pytest.mark.parametrize("background", [False, True])
def test_a_mistake_found_without_the_data_leaves_no_failed_run_folder(ip, tiny_bert, clf_csv, runs_dir, background,
                                                                      monkeypatch):
    """A freeze depth the model does not have, or a run to resume that does not exist: the cell's error
    says it, and no failed run is left to clutter %finetune_runs."""
    from workbench import magics
    from workbench.magics import FinetuneError

    monkeypatch.setattr(magics, "interactive", lambda: True)
    for train, message in (({"freeze": "layers:10"}, "train.freeze: layers:10"),
                           ({"resume_from": "no-such-run"}, "train.resume_from:")):
        with capture_output(), pytest.raises(FinetuneError, match=message):
            cell(ip, "--background" if background else "", body_for(tiny_bert, clf_csv, runs_dir, **train))
        assert not runs_dir.exists() or list(runs_dir.iterdir()) == []


# ---- nothing configured: the usage, not the default hour-long run ----------------------------------

def test_a_finetune_that_names_no_setting_shows_the_usage_and_trains_nothing(ip, tiny_bert, clf_csv, runs_dir,
                                                                             monkeypatch):
    """A bare `%finetune` (what IPython suggests for an empty `%%finetune` cell, and what a user types to
    see the usage) and a body of only comments would train the bundled MiniLM on BBC News for an hour."""
    from workbench import magics

    started = []
    monkeypatch.setattr(magics.WorkbenchMagics, "_blocking", lambda self, cfg: started.append(cfg) or "run")
    monkeypatch.setattr(magics.WorkbenchMagics, "_background", lambda self, cfg: started.append(cfg) or "run")
    for line, body in (("", None), ("--background", None), ("--name news -o r", None),
                       ("", "# TODO fill in the config\n\n"), ("--name news", "   # nothing yet\n"), ("", "{}\n")):
        with pytest.raises(FinetuneError, match=r"Nothing to fine-tune: .*%finetune --help.*"
                                                r"%finetune model=minilm data.train=bbc-news.*workbench demo") as e:
            cell(ip, line, body)
        assert e.value.kind == "UsageError"
    assert started == [] and not runs_dir.exists()
    # a dry run with nothing shows the defaults; settings on the line, in the body or in a file still run
    monkeypatch.setattr(magics, "dry_run_html", lambda cfg: started.append(cfg) or "<p>dry</p>")
    with capture_output():
        cell(ip, "--dry-run", "# only a comment\n")
    assert started.pop().model == "minilm"
    assert cell(ip, f"model={tiny_bert} data.train={clf_csv}") == "run" and started.pop().model == str(tiny_bert)
    assert cell(ip, "--name x", f"model: {tiny_bert}\n# and a comment\n") == "run" and started.pop().name == "x"
    config = runs_dir.parent / "base.yaml"
    config.write_text(f"model: {tiny_bert}\n")
    assert cell(ip, f"--config {config}", "# the file says it all\n") == "run" and started.pop().model == str(tiny_bert)
    assert started == []


# ---- %finetune_compare's chart keeps its description in an HTML export ----------------------------

def test_compare_chart_keeps_its_alt_text_in_plain_nbconvert_html(ip, tmp_path):
    import nbformat
    from nbconvert import HTMLExporter

    from workbench.runs import RunDir, atomic_write_json

    dirs = []
    for name, loss in (("a", 1.0), ("b", 0.8)):
        rd = RunDir.create(tmp_path, name, "text-classification")
        rd.update_info(name=name, task="text-classification", status="completed", main_metric="accuracy")
        atomic_write_json(rd.eval_json, {"main_metric": "accuracy", "finetuned": {"accuracy": 0.9},
                                         "baseline": {"accuracy": 0.5}})
        with open(rd.path / "metrics.jsonl", "w") as f:
            for step in (1, 2, 3):
                f.write(f'{{"event": "step", "step": {step}, "total_steps": 3, "epoch": {step / 3}, '
                        f'"loss": {loss / step}, "learning_rate": 0.001}}\n')
        dirs.append(rd)
    with capture_output() as cap:
        ip.run_line_magic("finetune_compare", f"{dirs[0].id} {dirs[1].id} --dir {tmp_path}")
    alt = f"loss and validation metric against steps for {dirs[0].id}, {dirs[1].id}"
    chart = cap.outputs[1]
    assert chart.data["image/png"] and chart.metadata["image/png"]["alt"] == alt  # JupyterLab's alt
    nb = nbformat.v4.new_notebook()
    code = nbformat.v4.new_code_cell("%finetune_compare a b")
    code.outputs = [nbformat.v4.new_output("display_data", data=o.data, metadata=o.metadata) for o in cap.outputs]
    nb.cells = [code]
    page, _ = HTMLExporter().from_notebook_node(nb)  # what `jupyter nbconvert --to html` writes
    assert f'alt="{alt}"' in page.replace("'", '"') and "No description has been provided" not in page
    assert "data:image/png;base64," in page


# ---- a model folder that does not exist is found before the run folder is made ---------------------

@pytest.mark.parametrize("background", [False, True])
def test_a_missing_model_folder_leaves_no_failed_run_folder(ip, clf_csv, runs_dir, tmp_path, background,
                                                            monkeypatch):
    from workbench import magics

    monkeypatch.setattr(magics, "interactive", lambda: True)
    missing = tmp_path / "nomodel"
    with capture_output(), pytest.raises(FinetuneError, match=rf"model: folder {missing} does not exist"):
        cell(ip, "--background" if background else "", body_for(missing, clf_csv, runs_dir))
    assert not runs_dir.exists() or list(runs_dir.iterdir()) == []
