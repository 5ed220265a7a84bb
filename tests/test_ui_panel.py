"""The widget control panel: built from the schema, filled like a user would, Start/Stop on a tiny BERT.

Three short runs: one to completion, one stopped with the Stop button, and its resumption.
"""

import json
import threading
import time

import pandas as pd
import pytest

from workbench.config import resolve, schema
from workbench.events import Step
from workbench.magics import build_config, parse_line
from workbench.runs import COMPLETE_MARKER, default_runs_dir
from workbench.ui.panel import MAIN_FIELDS, Panel

from builders import make_texts

PNG = b"\x89PNG"


@pytest.fixture(scope="module")
def frame():
    return pd.DataFrame(make_texts(180), columns=["sentence", "topic"])


def filled(tiny_bert, runs, frame) -> Panel:
    """A panel filled in as a user would: model path, a DataFrame variable, a few hyperparameters."""
    panel = Panel(runs_dir=runs, namespace={"df": frame, "not_data": 3})
    panel.fields["model"].widget.value = str(tiny_bert)
    panel.fields["data.train"].widget.value = "$df"
    panel.fields["train.epochs"].widget.value = 2
    panel.fields["train.learning_rate"].widget.value = 3e-3
    panel.fields["train.max_length"].widget.value = 64
    panel.fields["train.logging_steps"].widget.value = 5
    panel.fields["train.warmup_ratio"].widget.value = 0.0
    return panel


@pytest.fixture(scope="module")
def completed(tiny_bert, frame, tmp_path_factory):
    runs = tmp_path_factory.mktemp("panel-runs")
    panel = filled(tiny_bert, runs, frame)
    t0 = time.monotonic()
    panel.start_button.click()
    returned_after = time.monotonic() - t0
    busy = (panel.start_button.disabled, panel.stop_button.disabled)
    panel.wait(timeout=300)
    return panel, returned_after, busy


def test_form_is_generated_from_the_schema(tmp_path):
    panel = Panel(runs_dir=tmp_path, namespace={})
    specs = {s["key"]: s for s in schema()}
    assert set(panel.fields) == set(specs)
    for key, field in panel.fields.items():
        assert field.widget.tooltip == specs[key]["help"]
        if specs[key]["choices"]:
            assert list(field.widget.options) == list(specs[key]["choices"])
    main = panel.widget.children[1].children
    assert [w for w in main] == [panel.fields[k].widget for k in MAIN_FIELDS]
    assert panel.advanced.selected_index is None  # advanced options folded away
    advanced = {w for box in panel.advanced.children for w in box.children}
    assert advanced == {f.widget for k, f in panel.fields.items() if k not in MAIN_FIELDS}
    assert panel.values() == {"runs_dir": str(tmp_path)}  # an untouched form is the defaults


def test_the_panel_trains_and_compares_where_workbench_runs_dir_says(tmp_path, monkeypatch):
    """A notebook in a subfolder of a Jupyter server (which sets WORKBENCH_RUNS_DIR for its kernels):
    the form's runs folder and the comparison are the environment's, not ./runs."""
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "team-runs"))
    panel = Panel(namespace={})
    assert panel.fields["runs_dir"].get() == str(tmp_path / "team-runs")
    assert panel.comparison.runs_dir == tmp_path / "team-runs"
    assert Panel(runs_dir=tmp_path / "x", namespace={}).comparison.runs_dir == tmp_path / "x"  # said outright


def test_column_pickers_are_filled_from_the_data(tiny_bert, frame, clf_csv, tmp_path):
    panel = filled(tiny_bert, tmp_path, frame)
    assert "$df" in panel.fields["data.train"].widget.options and "$not_data" not in \
        panel.fields["data.train"].widget.options
    assert list(panel.fields["data.text_column"].widget.options) == ["sentence", "topic"]
    assert panel.fields["data.text_column"].get() == "sentence"
    assert panel.fields["data.label_column"].get() == "topic"
    panel.fields["data.train"].widget.value = str(clf_csv)
    assert panel.fields["data.text_column"].get() == "text" and panel.fields["data.label_column"].get() == "label"
    panel.fields["data.train"].widget.value = str(tmp_path / "missing.csv")
    assert "file not found" in panel.status.value and "missing.csv" in panel.status.value


def test_show_as_magic_and_cli_describe_the_same_run(tiny_bert, frame, clf_csv, tmp_path):
    panel = filled(tiny_bert, tmp_path, frame)
    panel.magic_button.click()
    magic = panel.code.value
    assert magic.startswith("%%finetune\n") and "train: $df" in magic and panel.code.layout.display == ""
    line, _, body = magic.partition("\n")
    assert build_config(parse_line(line.removeprefix("%%finetune")), body, {"df": frame}).to_dict() == \
        panel.config().to_dict()
    panel.cli_button.click()
    assert "cannot" in panel.status.value and "to_csv" in panel.status.value  # a DataFrame has no CLI form
    assert panel.code.value == "" and panel.code.layout.display == "none"  # not the cell shown before
    panel.fields["data.train"].widget.value = str(clf_csv)
    panel.cli_button.click()
    assert panel.code.value.startswith("workbench train ") and f"data.train={clf_csv}" in panel.code.value


def test_bad_settings_show_in_the_panel_not_as_a_traceback(tiny_bert, frame, tmp_path):
    panel = filled(tiny_bert, tmp_path, frame)
    panel.fields["train.max_steps"].widget.value = "many"
    import ipywidgets

    panel.live.children = [ipywidgets.HTML("the last run's view")]
    panel.start_button.click()
    assert "train.max_steps: expected an integer" in panel.status.value
    assert panel.job is None and not panel.start_button.disabled
    assert panel.live.children == ()  # no run's view stays behind a start that did not happen


def test_start_trains_on_a_thread_and_the_widgets_show_it(completed):
    panel, returned_after, busy = completed
    assert returned_after < 5.0  # the click returns while training goes on
    assert busy == (True, False)  # Start disabled, Stop enabled while it runs
    run = panel.job
    assert not run.running and run.status == "completed" and run.error is None
    assert (panel.start_button.disabled, panel.stop_button.disabled) == (False, True)
    html = panel.view.html.value
    assert "completed" in html and "100%" in html and "learning rate" in html and "samples/s" in html
    assert "Test metrics" in html and f"{run.metrics['accuracy']:.4f}" in html
    assert "src='data:image/svg+xml;base64," in panel.view.chart.value and "wb-confusion" in panel.view.extra.value
    assert "finished" in panel.status.value
    assert run.id in str(panel.comparison.select.options) and bytes(panel.comparison.chart.value).startswith(PNG)
    # Throttled, not timed (the wall clock of a 1-second run says nothing): at most one HTML update per
    # 0.2 s and one chart per 3 s of the run, plus the final ones.
    seconds = json.loads((run.dir / "run.json").read_text())["train_seconds"] + 30  # set-up and test phases
    view = panel.view
    assert 1 <= view.html_updates <= 2 + seconds / view.interval
    assert 1 <= view.chart_updates <= 2 + seconds / view.chart_interval


class Gate:
    """Holds the training thread at a step until the test has pressed Stop."""

    def __init__(self, at: int):
        self.at, self.reached, self.release = at, threading.Event(), threading.Event()

    def __call__(self, event):
        if isinstance(event, Step) and event.step >= self.at and not self.reached.is_set():
            self.reached.set()
            self.release.wait(60)


def test_stop_leaves_a_resumable_checkpoint_and_resume_continues(completed, tiny_bert, frame):
    full = completed[0].job
    panel = filled(tiny_bert, full.dir.parent, frame)
    gate = Gate(at=3)
    panel.start(sinks=[gate])
    assert gate.reached.wait(120)
    panel.stop_button.click()
    gate.release.set()
    stopped = panel.wait(timeout=120)
    info = stopped.info
    assert stopped.status == "interrupted" and info["error"] == "stopped on request"
    checkpoint = info["resume_from"]
    assert checkpoint and (stopped.dir / "checkpoints").exists()
    assert json.loads(open(f"{checkpoint}/trainer_state.json").read())["global_step"] == 4
    assert open(f"{checkpoint}/{COMPLETE_MARKER}").read()
    assert "Stopped" in panel.view.html.value and f"train.resume_from={checkpoint}" in panel.view.html.value
    assert f"train.resume_from={stopped.id}" in panel.status.value

    panel.set("train.resume_from", stopped.id)
    resumed = panel.start(wait=True)
    assert resumed.status == "completed"
    steps = {r["step"]: r for r in resumed.history() if r["event"] == "step"}
    reference = {r["step"]: r for r in full.history() if r["event"] == "step"}
    assert min(steps) > 4 and max(steps) == max(reference)  # continued from step 4, not restarted
    assert {r["total_steps"] for r in steps.values()} == {r["total_steps"] for r in reference.values()} == {18}
    for s in set(steps) & set(reference):  # the schedule picked up where it stopped
        assert steps[s]["learning_rate"] == pytest.approx(reference[s]["learning_rate"], rel=1e-6)
    assert resolve(inline=resumed.run_dir.read_config_text()).train.resume_from == stopped.id


def test_start_right_after_the_last_event_starts_a_new_run(completed, tiny_bert, frame, monkeypatch):
    """Start is enabled by the run's last event while its thread still closes up; a click then must
    wait for that thread and start the next run, not report the first one as still training."""
    full = completed[0].job
    panel = filled(tiny_bert, full.dir.parent, frame)
    panel.fields["train.epochs"].widget.value = 1
    closing = threading.Event()
    slow_refresh = panel.comparison.refresh

    def refresh():  # runs on the training thread after Start is re-enabled
        closing.set()
        time.sleep(1.5)
        slow_refresh()

    monkeypatch.setattr(panel.comparison, "refresh", refresh)
    first = panel.start()
    assert closing.wait(120) and first.running and not panel.start_button.disabled
    panel.start_button.click()
    assert "still training" not in panel.status.value, panel.status.value
    second = panel.job
    assert second is not first and second.id != first.id
    panel.wait(timeout=120)
    assert (first.status, second.status) == ("completed", "completed")


def test_setting_a_field_to_a_value_of_the_wrong_kind_names_the_key(tmp_path):
    from workbench.errors import WorkbenchError

    panel = Panel(runs_dir=str(tmp_path))
    for key, value, message in [("train.epochs", "abc", "train.epochs: expected a number, got 'abc'"),
                                ("task", "summarize", "task: expected one of text-classification, "),
                                ("train.group_by_length", "x", "train.group_by_length: expected true or false")]:
        with pytest.raises(WorkbenchError, match=message):
            panel.set(key, value)
    with pytest.raises(WorkbenchError, match="Unknown config key 'train.epoch'. Did you mean 'train.epochs'"):
        panel.set("train.epoch", 2)


def test_the_comparison_selects_completed_runs_not_failed_attempts(completed, tmp_path):
    import shutil

    from workbench.runs import RunDir
    from workbench.ui.compare import RunComparison

    panel = completed[0]
    done = panel.job.run_dir.path
    root = tmp_path / "runs"
    root.mkdir()
    shutil.copytree(done, root / done.name)
    for i in range(3):  # newer than the completed run, as typos and wrong columns leave them
        failed = RunDir.create(root, f"typo{i}", "text-classification")
        failed.set_status("failed", error="no column 'lbl'")
    view = RunComparison(root)
    assert len(view.select.options) == 4
    assert view.select.value == (str(root / done.name),)


def test_the_comparison_follows_new_runs_until_runs_are_picked_by_hand(completed, tmp_path):
    """A run finished after the panel opened is compared at the next refresh; a selection made by
    hand is kept."""
    import shutil

    from workbench.ui.compare import RunComparison

    done = completed[0].job.run_dir.path
    root = tmp_path / "runs"
    root.mkdir()
    shutil.copytree(done, root / "20260101-000000-old-0001")
    view = RunComparison(root, selected=1)
    assert view.select.value == (str(root / "20260101-000000-old-0001"),)
    shutil.copytree(done, root / "20270101-000000-new-0002")  # newer
    view.refresh()
    assert view.select.value == (str(root / "20270101-000000-new-0002"),)
    view.select.value = (str(root / "20260101-000000-old-0001"),)  # picked by hand
    shutil.copytree(done, root / "20280101-000000-newer-0003")
    view.refresh()
    assert view.select.value == (str(root / "20260101-000000-old-0001"),)


def test_a_run_stopped_before_training_is_not_offered_for_resuming(completed, tiny_bert, frame):
    """A second panel's run waits while the first trains (one run per kernel at a time); stopped while it
    waits, it has no checkpoint, so the panel must not tell the user to resume it."""
    runs = completed[0].job.dir.parent
    first, second = filled(tiny_bert, runs, frame), filled(tiny_bert, runs, frame)
    gate = Gate(at=1)
    first.start(sinks=[gate])
    try:
        assert gate.reached.wait(120)
        second.start()
        deadline = time.monotonic() + 60
        while not any(w.startswith("waiting") for w in second.view.state.warnings) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert any(w.startswith("waiting") for w in second.view.state.warnings), second.view.state.warnings
        second.stop_button.click()
        assert "before training begins" in second.status.value
        waited = second.wait(timeout=60)
        assert not waited.running and waited.status == "interrupted"
        assert waited.run_dir.complete_checkpoints() == []
        assert "train.resume_from" not in second.status.value
        assert "stopped before training began, so there is nothing to resume; start it again." in second.status.value
    finally:
        first.stop()
        gate.release.set()
        first.wait(timeout=120)
    assert first.job.run_dir.complete_checkpoints()  # stopped while training: it keeps one, and says so
    assert f"continue it with train.resume_from={first.job.id}." in first.status.value


def test_the_comparison_lists_the_runs_dir_the_form_names_now(completed, tmp_path):
    import shutil

    done = completed[0].job.run_dir.path
    other = tmp_path / "other-runs"
    other.mkdir()
    shutil.copytree(done, other / done.name)
    panel = Panel(runs_dir=tmp_path / "first-runs", namespace={})
    assert panel.comparison.select.options == ()
    panel.fields["runs_dir"].widget.value = str(other)  # typed into the form after the panel opened
    panel.comparison.refresh_button.click()
    assert panel.comparison.runs_dir == other
    assert [path for _, path in panel.comparison.select.options] == [str(other / done.name)]
    assert panel.comparison.select.value == (str(other / done.name),) and "wb-compare" in panel.comparison.table.value


def test_the_picker_tells_apart_runs_that_share_a_name(completed, tmp_path):
    import shutil

    from workbench.runs import RunDir

    root = tmp_path / "runs"
    root.mkdir()
    done = root / "20200101-000000-done-0001"
    shutil.copytree(completed[0].job.run_dir.path, done)
    stopped = [RunDir.create(root, "pstop", "text-classification") for _ in range(2)]
    for rd in stopped:
        rd.update_info(name="pstop", status="interrupted", error="stopped on request")
    RunDir.create(root, "solo", "text-classification").update_info(name="solo", status="interrupted")
    panel = Panel(runs_dir=root, namespace={})
    texts = {path: text for text, path in panel.comparison.select.options}
    assert len(set(texts.values())) == len(texts) == 4
    for rd in stopped:  # named by id, as the comparison's columns and curves name runs that share a name
        assert texts[str(rd.path)] == f"{rd.id} · interrupted"
    assert any(text.startswith("solo · ") for text in texts.values())  # a name of its own stays
    assert panel.comparison.select.value == (str(done),)
    panel.comparison.select.value = (str(stopped[0].path), str(done))  # picked by hand
    panel.comparison.refresh()
    assert set(panel.comparison.select.value) == {str(stopped[0].path), str(done)}
    assert [t for t, _ in panel.comparison.select.options] == [texts[p] for _, p in panel.comparison.select.options]


def test_list_fields_take_commas_or_a_yaml_list(tmp_path):
    panel = Panel(runs_dir=tmp_path, namespace={})
    field = panel.fields["lora.target_modules"]
    for text in ("query, value", "[query, value]", "  [ query, 'value' ] "):
        field.widget.value = text
        assert panel.config().lora.target_modules == ["query", "value"], text
    for text in ("[query, value", "[1, 2]", "[query, [value]]"):
        field.widget.value = text
        panel.status.value = ""
        panel.magic_button.click()
        assert "lora.target_modules: expected a list of names, as a, b or [a, b]" in panel.status.value, text
        assert "<br" not in panel.status.value and "Traceback" not in panel.status.value


def test_an_empty_runs_dir_field_is_refused_by_name_not_the_working_folder(tiny_bert, frame, tmp_path, monkeypatch):
    """As an emptied model or data field: a red line naming the field, and no run folder among the
    working folder's files."""
    work = tmp_path / "notebooks"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("WORKBENCH_RUNS_DIR", raising=False)
    panel = filled(tiny_bert, tmp_path / "runs", frame)
    panel.fields["runs_dir"].widget.value = "  "
    panel.start_button.click()
    assert "runs_dir: empty" in panel.status.value and panel.job is None
    assert list(work.iterdir()) == []
    assert panel.comparison.runs_dir == default_runs_dir()  # the comparison lists the default folder meanwhile


def test_workbench_ui_is_reachable_after_a_plain_import():
    """docs/notebook.md writes `workbench.ui.Panel(...)` after `import workbench`, in a fresh kernel."""
    import subprocess
    import sys

    code = "import sys, workbench; print(workbench.ui.Panel.__name__, 'ipywidgets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["Panel", "False"]  # and still light: the widgets load with the first panel


def test_a_model_folder_that_does_not_exist_is_refused_before_a_run_folder_is_made(tiny_bert, frame, tmp_path):
    runs = tmp_path / "runs"
    panel = filled(tiny_bert, runs, frame)
    panel.fields["model"].widget.value = str(tmp_path / "nomodel")
    panel.start_button.click()
    assert f"model: folder {tmp_path / 'nomodel'} does not exist" in panel.status.value
    assert panel.job is None and not panel.start_button.disabled
    assert not runs.exists() or list(runs.iterdir()) == []  # no failed run left in the comparison's list
