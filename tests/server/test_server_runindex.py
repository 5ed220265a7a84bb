"""The run index behind the listing: bounded sparklines, bounded metric reads, and confinement."""

from __future__ import annotations

import json
import os

import pytest

from runs_seed import seed_runs
from workbench.runs import RunDir
from workbench.server.runindex import SKETCH_BUCKETS, LossSketch, RunIndex, read_metrics_chunk, resolve_run


def test_loss_sketch_stays_bounded_and_keeps_the_shape():
    sketch = LossSketch()
    n = 100_000
    for i in range(n):
        sketch.add(2.0 - 1.5 * i / n)
    assert len(sketch.buckets) < SKETCH_BUCKETS
    points = sketch.points()
    assert len(points) == 48
    assert points == sorted(points, reverse=True)
    assert abs(points[0] - 1.98) < 0.02 and abs(points[-1] - 0.52) < 0.02
    sketch.add(100.0)
    assert sketch.points()[-1] > points[-1]  # a new value is seen, not a stale cached curve


def test_metrics_reads_are_bounded_and_skip_an_oversized_line(tmp_path):
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    lines = [json.dumps({"event": "step", "step": i, "loss": 1.0}) for i in range(100)]
    giant = json.dumps({"event": "step", "note": "x" * 5000})
    run.metrics_jsonl.write_text("\n".join(lines[:50] + [giant] + lines[50:]) + "\n", encoding="utf-8")
    offset, seen, calls = 0, [], 0
    while True:
        chunk = read_metrics_chunk(run, offset, max_bytes=1024)
        calls += 1
        seen += chunk["records"]
        offset = chunk["offset"]
        if not chunk["more"]:
            break
    assert offset == run.metrics_jsonl.stat().st_size
    assert [r["step"] for r in seen if "step" in r] == list(range(100))
    assert {"event": "oversized_line"} in seen
    assert calls > 5


def test_sibling_prefix_and_symlinks_out_are_not_runs(tmp_path):
    runs = seed_runs(tmp_path / "runs")
    evil = tmp_path / "runs-evil" / "20260101-000000-evil"
    evil.mkdir(parents=True)
    (evil / "run.json").write_text("{}", encoding="utf-8")
    os.symlink(evil, tmp_path / "runs" / "20260101-000000-link")
    os.symlink(runs["completed"].path, tmp_path / "runs" / "20260101-000000-alias")
    root = tmp_path / "runs"
    assert resolve_run(root, "../runs-evil/20260101-000000-evil") is None
    assert resolve_run(root, "20260101-000000-link") is None
    alias = resolve_run(root, "20260101-000000-alias")
    assert alias is not None and alias.id == runs["completed"].id  # a link inside the root is the run itself
    ids = [row["id"] for row in RunIndex(root).rows()]
    assert len(ids) == len(set(ids)) == 5


def test_page_reads_sparklines_only_for_its_runs(tmp_path):
    seed_runs(tmp_path / "runs")
    index = RunIndex(tmp_path / "runs")
    page = index.page(offset=0, limit=2)
    assert [len(r["loss_sparkline"]) > 0 for r in page["runs"]] == [True, True]
    assert len(index._sketches) == 2


def test_runs_without_test_metrics_show_their_latest_validation_value(tmp_path):
    """A running or stopped run has no eval.json: the listing gives its main metric's latest
    validation value instead (the sidebar says it as such); the CLI's listing reads the same."""
    from workbench.runs import list_runs, validation_text

    runs = seed_runs(tmp_path / "runs")
    index = RunIndex(tmp_path / "runs")
    rows = {r["id"]: r for r in index.rows()}
    assert rows[runs["running"].id]["validation"] == {"value": 0.635, "step": 60}
    assert rows[runs["interrupted"].id]["validation"] == {"value": 0.56, "step": 40}
    assert "validation" not in rows[runs["completed"].id]  # its test metrics are the figure
    assert "validation" not in rows[runs["failed"].id]  # failed before its first evaluation
    listed = {r["id"]: r for r in list_runs(tmp_path / "runs", validation=True)}
    for key in ("running", "interrupted", "completed", "failed"):
        assert listed[runs[key].id].get("validation") == rows[runs[key].id].get("validation"), key
    assert validation_text(listed[runs["interrupted"].id]) == "validation perplexity 0.5600 at step 40"
    # only the file's tail is read: a cut first line is left out, an evaluation after it is found
    data = runs["interrupted"].metrics_jsonl.read_bytes()
    after_eval = len(data) - data.rindex(b'{"event": "eval"')  # the last evaluation's line and what follows it
    assert runs["interrupted"].last_validation("perplexity", tail_bytes=after_eval + 5) == {"value": 0.56, "step": 40}
    assert runs["interrupted"].last_validation("perplexity", tail_bytes=after_eval - 5) is None


def test_cli_and_notebook_listings_show_the_validation_value_of_runs_without_test_metrics(tmp_path, capsys):
    from workbench.cli import main
    from workbench.runs import list_runs
    from workbench.ui.compare import runs_table_html

    runs = seed_runs(tmp_path / "runs")
    assert main(["runs", "--dir", str(tmp_path / "runs"), "list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "validation perplexity 0.5600 at step 40" in lines[runs["interrupted"].id]
    assert "validation accuracy 0.6350 at step 60" in lines[runs["running"].id]
    assert "accuracy 0.9685 (base 0.2135)" in lines[runs["completed"].id]
    assert "DataError" in lines[runs["failed"].id]
    html = runs_table_html(list_runs(tmp_path / "runs", validation=True))
    assert "validation perplexity 0.5600 at step 40 · <span" in html  # and why it stopped
    assert "step 60/200 · validation accuracy 0.6350 at step 60" in html


def test_a_running_rows_step_is_never_behind_its_logged_steps(tmp_path):
    """run.json's progress is written every few seconds, metrics.jsonl at every logging step: the
    listing takes the later of the two, so a row never reads "step 1 ... validation at step 40"."""
    runs = seed_runs(tmp_path / "runs")
    runs["running"].update_info(progress={"step": 1, "total_steps": 200, "epoch": 0.01})
    runs["interrupted"].update_info(progress={"step": 1, "total_steps": 300, "epoch": 0.0})
    rows = {r["id"]: r for r in RunIndex(tmp_path / "runs").rows()}
    running = rows[runs["running"].id]
    assert running["progress"]["step"] >= running["validation"]["step"] == 60
    assert running["progress"]["total_steps"] == 200
    assert rows[runs["interrupted"].id]["progress"]["step"] == 1  # a finished run's record stays as written


def test_a_killed_run_reads_as_far_as_it_got(tmp_path):
    """A run killed between two writes of run.json's progress: its row has the last logged step, and
    its last sign of work is when metrics.jsonl was last written (the detail tab's duration)."""
    import socket
    import subprocess
    import sys

    runs = seed_runs(tmp_path / "runs")
    killed = runs["running"]
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    killed.update_info(pid=gone.pid, host=socket.gethostname(), updated_at="2000-01-01T00:00:00+00:00",
                       progress={"step": 1, "total_steps": 200, "epoch": 0.01})
    row = {r["id"]: r for r in RunIndex(tmp_path / "runs").rows()}[killed.id]
    assert row["status"] == "failed" and row["process_ended"] is True
    logged = max(r["step"] for r in killed.read_metrics(0)[0] if isinstance(r.get("step"), int))
    assert logged > 1 and row["progress"]["step"] == logged  # the last step metrics.jsonl logged, not 1
    mtime = os.stat(killed.metrics_jsonl).st_mtime
    assert row["updated_at"] == killed.read_info()["updated_at"] > "2000-01-01"
    import datetime as dt
    assert dt.datetime.fromisoformat(row["updated_at"]).timestamp() == pytest.approx(mtime, abs=1)


def test_a_malformed_eval_json_loses_its_figures_not_the_runs_row(tmp_path):
    runs = seed_runs(tmp_path / "runs")
    done = runs["completed"]
    done.eval_json.write_text('{"main_metric": "accuracy", "finetuned": {"accuracy": "0.7"}, "baseline": [1, 2]}')
    row = {r["id"]: r for r in RunIndex(tmp_path / "runs").rows()}[done.id]
    assert row["status"] == "completed" and row["name"] == "bbc-news-minilm" and row["created_at"]
    assert row["value"] is None and row["baseline"] is None
    assert row["eval_error"] == "eval.json: baseline is not an object"
    done.eval_json.write_text("[1, 2]")
    row = {r["id"]: r for r in RunIndex(tmp_path / "runs").rows()}[done.id]
    assert row["status"] == "completed" and row["eval_error"] == "eval.json is not a JSON object"


def test_a_half_written_last_line_is_not_more_to_read(tmp_path):
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    lines = "".join(json.dumps({"event": "step", "step": i, "loss": 1.0}) + "\n" for i in range(40))
    run.metrics_jsonl.write_text(lines + '{"event": "step", "st', encoding="utf-8")
    complete = len(lines.encode())
    chunk = read_metrics_chunk(run, 0)
    assert len(chunk["records"]) == 40 and chunk["offset"] == complete and chunk["more"] is False
    again = read_metrics_chunk(run, chunk["offset"])
    assert again["records"] == [] and again["offset"] == complete and again["more"] is False
    # cut by the cap: more until every complete line was returned, and never for the partial one
    offset, calls, seen = 0, 0, []
    while True:
        part = read_metrics_chunk(run, offset, max_bytes=256)
        calls += 1
        seen += part["records"]
        assert part["offset"] > offset or not part["more"]
        offset = part["offset"]
        if not part["more"]:
            break
    assert offset == complete and [r["step"] for r in seen] == list(range(40))
    assert calls <= complete // 256 + 2
    with open(run.metrics_jsonl, "a", encoding="utf-8") as f:
        f.write('ep": 40, "loss": 0.5}\n')
    done = read_metrics_chunk(run, offset)
    assert [r["step"] for r in done["records"]] == [40] and done["more"] is False


def test_an_unreadable_eval_json_says_why_in_the_row(tmp_path):
    runs = seed_runs(tmp_path / "runs")
    done = runs["completed"]
    done.eval_json.write_text("{broken", encoding="utf-8")
    row = {r["id"]: r for r in RunIndex(tmp_path / "runs").rows()}[done.id]
    assert row["status"] == "completed" and row.get("value") is None
    assert row["eval_error"].startswith("eval.json cannot be read (Expecting property name")
    done.eval_json.unlink()
    done.eval_json.mkdir()  # RunDir raises on this one rather than naming it
    row = {r["id"]: r for r in RunIndex(tmp_path / "runs").rows()}[done.id]
    assert row["eval_error"] == "eval.json cannot be read (Is a directory)"
    assert str(tmp_path) not in json.dumps(row)
    done.eval_json.rmdir()
    row = {r["id"]: r for r in RunIndex(tmp_path / "runs").rows()}[done.id]
    assert row["status"] == "completed" and "eval_error" not in row  # no eval.json (yet) is no error


def test_a_run_started_from_a_notebook_leads_back_to_it(tmp_path, monkeypatch):
    import sys
    import types

    from workbench.engine.run import _notebook

    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    assert _notebook() == {}  # not under Jupyter Server
    nb = tmp_path / "work" / "tickets.ipynb"
    nb.parent.mkdir()
    nb.write_text("{}")
    monkeypatch.setenv("JPY_SESSION_NAME", str(nb))
    monkeypatch.setitem(sys.modules, "ipykernel", types.ModuleType("ipykernel"))
    assert _notebook() == {"notebook": str(nb)}  # as Jupyter Server names it to the kernel

    runs = seed_runs(tmp_path / "runs")
    done, failed, other = runs["completed"], runs["failed"], runs["interrupted"]
    (done.path / "report.ipynb").unlink(missing_ok=True)  # a report's own notebook comes first
    done.update_info(notebook=str(nb))
    failed.update_info(notebook="work/tickets.ipynb")  # a path from the server's root
    other.update_info(notebook=str(tmp_path.parent / "elsewhere.ipynb"))  # outside the root: no link
    rows = {r["id"]: r for r in RunIndex(tmp_path / "runs", contents_root=tmp_path).rows()}
    assert rows[done.id]["notebook"] == rows[failed.id]["notebook"] == "work/tickets.ipynb"
    assert rows[other.id]["notebook"] is None
    nb.unlink()  # moved or deleted since
    rows = {r["id"]: r for r in RunIndex(tmp_path / "runs", contents_root=tmp_path).rows()}
    assert rows[done.id]["notebook"] is None


def test_run_folders_with_any_name_are_listed_as_the_cli_lists_them(tmp_path):
    """A run folder renamed in Lab's file browser (spaces, accents, a leading underscore) stays a run."""
    from workbench.runs import list_runs

    runs = seed_runs(tmp_path / "runs")
    root = tmp_path / "runs"
    names = ["best run (v2)", "légal-ünï", "_kept", "日本語 run"]
    for name in names:
        (root / name).mkdir()
        (root / name / "run.json").write_bytes(runs["completed"].run_json.read_bytes())
    listed = {row["id"] for row in RunIndex(root).rows()}
    assert set(names) <= listed
    assert listed == {row["id"] for row in list_runs(root)}
    for name in names:
        assert resolve_run(root, name).id == name
    for bad in ("", ".", "..", ".hidden", "a/b", "a\\b", "a\x00b", "x" * 256):
        assert resolve_run(root, bad) is None


def test_files_linked_out_of_the_run_folder_are_not_read(tmp_path):
    from workbench.server.runindex import read_config_text, read_eval

    runs = seed_runs(tmp_path / "runs")
    root = tmp_path / "runs"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "m.jsonl").write_text('{"event": "step", "step": 1, "loss": 9.5, "note": "SECRET"}\n')
    (outside / "c.yaml").write_text("secret: SECRET\n")
    (outside / "e.json").write_text(json.dumps({"finetuned": {"accuracy": 0.123}, "main_metric": "accuracy"}))
    (outside / "r.json").write_text(runs["completed"].run_json.read_text())
    run = runs["completed"]
    for name, target in (("metrics.jsonl", "m.jsonl"), ("config.yaml", "c.yaml"), ("eval.json", "e.json")):
        (run.path / name).unlink(missing_ok=True)
        os.symlink(outside / target, run.path / name)
    with pytest.raises(PermissionError, match="outside the run folder"):
        read_metrics_chunk(run, 0)
    assert read_config_text(run) == ""
    evaluation, problem = read_eval(run)
    assert evaluation is None and "outside the run folder" in problem
    row = RunIndex(root).row(run)
    assert "SECRET" not in json.dumps(row) and row.get("value") != 0.123 and "outside" in row["eval_error"]
    assert row["loss_sparkline"] == []
    # a run.json linked from elsewhere makes no run
    other = root / "20260101-000000-linked-json"
    other.mkdir()
    os.symlink(outside / "r.json", other / "run.json")
    assert resolve_run(root, other.name) is None


def test_one_runs_metrics_read_does_not_hold_up_another_run(tmp_path):
    """The first read of a long metrics.jsonl takes seconds: it waits on its own run's lock only."""
    import threading

    runs = seed_runs(tmp_path / "runs")
    index = RunIndex(tmp_path / "runs")
    slow, other = runs["completed"], runs["failed"]
    done = threading.Event()
    with index._sketch_lock(slow.id):  # as while the slow run's file is being read
        thread = threading.Thread(target=lambda: (index.row(other), done.set()), daemon=True)
        thread.start()
        assert done.wait(10), "a row of another run waited for the slow run's read"
    assert index.row(slow)["id"] == slow.id


def test_a_stop_request_never_brings_a_deleted_run_folder_back(tmp_path):
    import shutil

    runs = seed_runs(tmp_path / "runs")
    run = runs["running"]
    shutil.rmtree(run.path)
    with pytest.raises(FileNotFoundError):
        run.request_stop()
    assert not run.path.exists()


def test_metrics_lines_that_are_no_json_object_are_corrupt_lines(tmp_path):
    run = RunDir(tmp_path / "r")
    run.path.mkdir()
    run.metrics_jsonl.write_text('[1, 2]\n"text"\nnull\n{"event": "step", "step": 1, "loss": 1.0}\n')
    records = read_metrics_chunk(run, 0)["records"]
    assert records == [{"event": "corrupt_line"}] * 3 + [{"event": "step", "step": 1, "loss": 1.0}]
