"""The control panel in a real JupyterLab, driven in Debian's Chromium: Start trains a tiny BERT on a
thread while the widgets update in the page, and Stop ends a second run at the next step. And a saved
notebook with a finished run's outputs, opened later (so untrusted), still shows its chart and tables.

Set WORKBENCH_SCREENSHOTS=<folder> to keep the screenshots (docs/panel.png comes from here).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
from pathlib import Path

import pytest

from workbench.report_sections import command_html


def _lab_server():
    """tests/server/lab_server.py, loaded by path: that folder's conftest must not shadow ours."""
    spec = importlib.util.spec_from_file_location("lab_server", Path(__file__).parent / "server" / "lab_server.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lab_server = _lab_server()

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]


def notebook(config: dict) -> dict:
    cell = {"cell_type": "code", "id": "panel", "metadata": {}, "outputs": [], "execution_count": None,
            "source": f"import workbench\n\npanel = workbench.panel(config={config!r})\npanel"}
    return {"cells": [cell], "nbformat": 4, "nbformat_minor": 5,
            "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}


@pytest.fixture
def lab(tmp_path: Path, tiny_bert: Path, clf_csv: Path):
    if not os.path.exists(lab_server.CHROMIUM):
        pytest.fail(f"{lab_server.CHROMIUM} is missing: `apt-get install -y chromium` (make test does it)")
    root = tmp_path / "root"
    root.mkdir()
    model = shutil.copytree(tiny_bert, root / "tiny-bert")
    shutil.copy(clf_csv, root / "topics.csv")
    config = {"model": str(model), "data": {"train": "topics.csv"},
              "train": {"epochs": 3, "learning_rate": 3e-3, "max_length": 64, "logging_steps": 2,
                        "warmup_ratio": 0.0}}
    (root / "panel.ipynb").write_text(json.dumps(notebook(config)), encoding="utf-8")
    templates = tmp_path / "templates"
    templates.mkdir()
    with lab_server.running_lab(tmp_path / "lab", root, templates) as server:
        yield server


def test_panel_start_and_stop_in_jupyterlab(lab, tmp_path: Path):
    from playwright.sync_api import expect

    url = f"{lab.url}lab/tree/panel.ipynb?token={lab.token}"
    with lab_server.chromium_page(url, tmp_path, viewport={"width": 1280, "height": 1500}) as page:
        page.set_default_timeout(60_000)
        # Shift+Enter before the kernel is up is dropped: wait for the status bar to say it is idle.
        expect(page.get_by_role("button", name=re.compile(r"ipykernel\) \| Idle"))).to_be_visible(timeout=120_000)
        page.locator(".jp-Notebook .jp-Cell").first.click()
        page.keyboard.press("Shift+Enter")

        panel = page.locator(".jp-OutputArea-output .widget-vbox").first
        start = panel.get_by_role("button", name="Start")
        stop = panel.get_by_role("button", name="Stop")
        expect(start).to_be_visible(timeout=120_000)
        expect(panel.locator("input").first).to_be_visible()
        expect(stop).to_be_disabled()
        expect(panel).to_contain_text("Data columns: text, label")  # filled from topics.csv

        def spill() -> list:  # the form's inputs that reach past the panel's right edge
            return panel.evaluate("""p => { const edge = p.getBoundingClientRect().right;
                return [...p.querySelectorAll('.widget-gridbox input, .widget-gridbox select')]
                    .filter(e => e.offsetParent && e.getBoundingClientRect().right > edge + 0.5)
                    .map(e => e.closest('.widget-inline-hbox').innerText.trim()); }""")

        assert spill() == []
        page.set_viewport_size({"width": 760, "height": 1500})  # a narrow window: one column
        page.wait_for_timeout(500)
        assert spill() == []
        page.set_viewport_size({"width": 1280, "height": 1500})

        start.click()
        progress = panel.locator(".wb-progress")
        expect(progress).to_contain_text("running", timeout=120_000)
        expect(stop).to_be_enabled()
        expect(panel.locator("img").first).to_be_visible(timeout=120_000)  # the live chart
        page.screenshot(path=str(tmp_path / "panel-live.png"), full_page=True)
        expect(progress).to_contain_text("completed", timeout=240_000)
        expect(progress).to_contain_text("Test metrics, fine-tuned against the baseline")
        expect(panel).to_contain_text("finished")
        expect(start).to_be_enabled()
        expect(stop).to_be_disabled()
        expect(panel.locator("table.wb-confusion")).to_have_count(2)  # fine-tuned and base model
        page.screenshot(path=str(tmp_path / "panel.png"), full_page=True)

        # A second run long enough that Stop lands while it trains (the first one takes seconds).
        epochs = panel.locator(".widget-inline-hbox", has=page.locator("label", has_text=re.compile(r"^epochs$")))
        epochs.locator("input").fill("400")
        epochs.locator("input").press("Enter")
        start.click()
        expect(progress).to_contain_text(re.compile(r"step \d+/3600 "), timeout=120_000)
        stop.click()
        expect(progress).to_contain_text("interrupted", timeout=120_000)
        expect(panel).to_contain_text("continue it with train.resume_from=")
        runs = sorted((lab.root / "runs").iterdir())
        statuses = sorted(json.loads((r / "run.json").read_text())["status"] for r in runs)
        assert statuses == ["completed", "interrupted"]
        assert not page.errors, page.errors


def finished_run_outputs(run_dir) -> list[dict]:
    """The outputs NotebookProgress leaves in a cell after a (synthetic) classification run."""
    from workbench.events import Evaluation, RunFinished, RunStarted, Step
    from workbench.runs import atomic_write_json
    from workbench.ui.live import NotebookProgress

    class Handle:
        def __init__(self, obj):
            self.obj = obj

        def update(self, obj):
            self.obj = obj

    handles: list[Handle] = []
    view = NotebookProgress(display=lambda obj: handles.append(Handle(obj)) or handles[-1], confusion=True)
    view(RunStarted(run_id=run_dir.id, run_dir=str(run_dir.path), task="text-classification", model="tiny",
                    total_steps=40, num_train=320, device="cpu", precision="fp32", main_metric="accuracy"))
    for i in range(1, 41):
        view(Step(step=i, total_steps=40, epoch=i / 20, loss=2.0 / (1 + i / 10), learning_rate=1e-4, grad_norm=None,
                  samples_per_second=8.0, tokens_per_second=900.0, elapsed=i, eta=40 - i))
        if i % 20 == 0:
            view(Evaluation(step=i, epoch=i / 20, split="validation",
                            metrics={"loss": 1.0 / (1 + i / 20), "accuracy": 0.5 + i / 100}))
    atomic_write_json(run_dir.eval_json, {
        "split": "test", "main_metric": "accuracy", "finetuned": {"accuracy": 0.9}, "baseline": {"accuracy": 0.6},
        "delta": {"accuracy": 0.3}, "confusion_matrix": {"labels": ["sport", "tech"],
                                                         "finetuned": [[9, 1], [1, 9]], "baseline": [[6, 4], [4, 6]]}})
    view(RunFinished(status="completed", metrics={"accuracy": 0.9}, baseline={"accuracy": 0.6}, elapsed=45.0,
                     train_seconds=40.0))
    return [{"output_type": "display_data", "metadata": {}, "data": {"text/html": h.obj.data}} for h in handles]


def test_a_saved_notebook_shows_the_live_chart_and_confusion_tables_untrusted(tmp_path: Path):
    """JupyterLab sanitizes the HTML of notebooks it did not execute: inline <svg> is dropped there, so
    the live chart is an <img> holding its SVG as a data URI, and the confusion matrices a styled table."""
    from playwright.sync_api import expect

    from workbench.runs import RunDir

    if not os.path.exists(lab_server.CHROMIUM):
        pytest.fail(f"{lab_server.CHROMIUM} is missing: `apt-get install -y chromium` (make test does it)")
    root = tmp_path / "root"
    root.mkdir()
    outputs = finished_run_outputs(RunDir.create(tmp_path / "runs", "saved", "text-classification"))
    control = {"output_type": "display_data", "metadata": {},
               "data": {"text/html": "<div class='inline-svg'><svg width='10' height='10'><circle r='5'/></svg></div>"}}
    command = {"output_type": "display_data", "metadata": {}, "data": {"text/html": command_html(LONG_COMMAND)}}
    cell = {"cell_type": "code", "id": "run", "metadata": {}, "execution_count": 1, "source": "%%finetune ...",
            "outputs": [*outputs, control, command]}
    nb = {"cells": [cell], "nbformat": 4, "nbformat_minor": 5,
          "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}}
    (root / "saved.ipynb").write_text(json.dumps(nb), encoding="utf-8")
    templates = tmp_path / "templates"
    templates.mkdir()
    with lab_server.running_lab(tmp_path / "lab", root, templates) as server:
        url = f"{server.url}lab/tree/saved.ipynb?token={server.token}"
        with lab_server.chromium_page(url, tmp_path, viewport={"width": 1280, "height": 1400}) as page:
            page.set_default_timeout(60_000)
            area = page.locator(".jp-Notebook .jp-OutputArea").first
            expect(area).to_contain_text("completed", timeout=120_000)
            expect(area.locator(".inline-svg")).to_have_count(1)
            assert area.locator(".inline-svg svg").count() == 0  # untrusted: the sanitizer removed inline SVG
            chart = area.locator("img[alt^='training loss']")
            expect(chart).to_be_visible()
            width = chart.evaluate("img => img.complete ? img.naturalWidth : -1")
            assert width == 768  # the SVG decoded as an image
            tables = area.locator("table.wb-confusion")
            expect(tables).to_have_count(2)
            shade = tables.first.locator("td").first.evaluate("td => getComputedStyle(td).backgroundColor")
            assert shade not in ("rgba(0, 0, 0, 0)", "transparent", "rgb(255, 255, 255)")  # the styles survived
            page.screenshot(path=str(tmp_path / "saved.png"), full_page=True)
            assert_wraps_between_words(area.locator("pre", has_text="workbench train"))
            assert not page.errors, page.errors


# a command as the reports show it: long paths, in a column narrower than the line
LONG_COMMAND = ("workbench train model=/home/analyst/projects/claims-triage/models/bert-base-claims-v3 "
                "data.train=/home/analyst/projects/claims-triage/data/claims_2026_train.csv "
                "data.text_column=description data.label_column=category train.epochs=3 train.learning_rate=5e-05")


def assert_wraps_between_words(pre) -> None:
    """The text of ``pre`` (a Playwright locator) spans several lines, each of which ends at a space:
    JupyterLab's output style breaks a <pre> anywhere, which splits an option or a path on screen."""
    breaks = pre.evaluate("""pre => {
        const walker = document.createTreeWalker(pre, NodeFilter.SHOW_TEXT), range = document.createRange();
        let text = "", top = null;
        const out = [];
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            for (let i = 0; i < node.textContent.length; i++) {
                range.setStart(node, i); range.setEnd(node, i + 1);
                const rect = range.getClientRects()[0];
                if (rect && top !== null && rect.top > top + 1) out.push(text.length);
                if (rect) top = rect.top;
                text += node.textContent[i];
            }
        }
        return out.map(i => text.slice(Math.max(0, i - 12), i) + "|" + text.slice(i, i + 12));
    }""")
    assert breaks, "the command fits one line: the check needs a narrower column"
    assert all(b.split("|")[0].endswith(" ") for b in breaks), breaks


def test_a_reports_commands_wrap_between_words(tmp_path: Path):
    """The exported report (JupyterLab's styles inside) shows a long command over lines that end at spaces."""
    import nbformat

    from workbench import report

    if not os.path.exists(lab_server.CHROMIUM):
        pytest.fail(f"{lab_server.CHROMIUM} is missing: `apt-get install -y chromium` (make test does it)")
    cell = nbformat.v4.new_code_cell("show_config(cfg)")
    cell.outputs = [nbformat.v4.new_output("display_data", data={"text/html": command_html(LONG_COMMAND)})]
    nb = nbformat.v4.new_notebook()
    nb.cells = [cell]
    page_file = tmp_path / "report.html"
    page_file.write_text(report.export_html(nb, title="commands"), encoding="utf-8")
    with lab_server.chromium_page(page_file.as_uri(), tmp_path, viewport={"width": 800, "height": 900}) as page:
        assert_wraps_between_words(page.locator("pre", has_text="workbench train"))
        assert not page.errors, page.errors
