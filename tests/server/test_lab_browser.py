"""End to end: JupyterLab with the built labextension, driven in Debian's Chromium by Playwright.

A real server with token authentication and XSRF checks (the browser logs in with the token
like a user following the server's link), a seeded runs folder, and one template.
Set WORKBENCH_SCREENSHOTS=<folder> to keep the screenshots (docs/sidebar.png comes from here).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from lab_server import CHROMIUM, chromium_page, running_lab, template_notebook
from runs_seed import seed_runs

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

RUNNING = "20261124-150200-support-tickets-c3d4"
DONE = "20261124-101500-bbc-news-minilm-a1b2"


@pytest.fixture
def lab(tmp_path: Path):
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (make test does it)")
    root = tmp_path / "root"
    root.mkdir()
    runs = seed_runs(root / "runs")
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "text-classification.ipynb").write_text(json.dumps(template_notebook()), encoding="utf-8")
    with running_lab(tmp_path / "lab", root, templates) as server:
        server.runs = runs
        yield server


@pytest.fixture
def page(lab, tmp_path: Path):
    with chromium_page(f"{lab.url}lab?token={lab.token}", tmp_path) as page:
        page.wait_for_selector("#jp-main-dock-panel", timeout=90_000)
        yield page


def test_sidebar_detail_stop_and_launcher(lab, page, tmp_path: Path):
    from playwright.sync_api import expect

    # the sidebar lists every seeded run, newest first
    page.click('.lm-TabBar-tab[data-id="workbench-runs"]')
    rows = page.locator("li.jp-wb-run")
    expect(rows).to_have_count(5)
    expect(page.locator(".jp-wb-subheader")).to_contain_text("5 runs in runs/")
    assert rows.evaluate_all("els => els.map(e => e.dataset.status)") == \
        ["running", "completed", "failed", "interrupted", "unknown"]
    done = page.locator(f'li.jp-wb-run[data-run-id="{DONE}"]')
    expect(done).to_contain_text("bbc-news-minilm")
    expect(done).to_contain_text("accuracy 0.9685 vs 0.2135 baseline (+0.7550)")
    expect(done.locator(".jp-wb-delta")).to_have_class(re.compile(r"\bjp-wb-delta-better\b"))
    expect(done.locator("svg.jp-wb-sparkline path")).to_have_attribute("d", re.compile(r"^M[\d.]+,[\d.]+L"))
    expect(page.locator('li.jp-wb-run[data-status="failed"]')).to_contain_text("expected 2 columns")
    expect(page.locator('li.jp-wb-run[data-status="unknown"]')).to_contain_text("corrupt run.json")
    running = page.locator(f'li.jp-wb-run[data-run-id="{RUNNING}"]')
    expect(running).to_contain_text("step 61/200 (31 %)")  # run.json says 60, metrics.jsonl has step 61

    # live: the running run moves on and the sidebar follows within a few polls
    run = lab.runs["running"]
    for step in range(62, 151):
        run.append_metrics({"event": "step", "step": step, "loss": 0.2, "learning_rate": 2e-5})
    run.update_info(progress={"step": 150, "total_steps": 200, "epoch": 0.75})
    expect(running).to_contain_text("step 150/200 (75 %)", timeout=15_000)

    # polling pauses while the sidebar is hidden, and resumes when it is shown again
    polls, statuses = [], []
    page.on("request", lambda r: polls.append(r.url) if "/workbench/api/runs?" in r.url else None)
    page.on("response", lambda r: statuses.append(r.status) if "/workbench/api/runs?" in r.url else None)
    page.wait_for_timeout(4000)
    assert 304 in statuses, statuses  # an unchanged listing is not downloaded again
    page.click('.lm-TabBar-tab[data-id="filebrowser"]')
    page.wait_for_timeout(1000)
    hidden_from = len(polls)
    page.wait_for_timeout(7000)  # more than two poll intervals
    assert len(polls) == hidden_from, polls
    page.click('.lm-TabBar-tab[data-id="workbench-runs"]')
    page.wait_for_timeout(1500)
    assert len(polls) > hidden_from

    # a run's detail view: metrics vs baseline, curves, config, report in a sandboxed frame
    done.click()
    detail = page.locator(".jp-wb-detail").filter(has_text="bbc-news-minilm")
    expect(detail.locator("h1")).to_have_text("bbc-news-minilm")
    expect(detail.locator("table.jp-wb-metrics tbody tr").first).to_contain_text("accuracy0.96850.2135+0.7550")
    selected = page.locator("li.jp-wb-run.jp-mod-selected")
    expect(selected).to_have_attribute("data-run-id", DONE)
    colours = selected.evaluate("""li => {
        const css = getComputedStyle(document.body);
        const probe = document.createElement('div');
        document.body.appendChild(probe);
        const resolve = v => { probe.style.color = css.getPropertyValue(v); return getComputedStyle(probe).color; };
        const out = {background: getComputedStyle(li).backgroundColor, brand: resolve('--jp-brand-color1'),
                     inverse: resolve('--jp-ui-inverse-font-color1'),
                     texts: [...li.querySelectorAll('.jp-wb-run-name, .jp-wb-run-what, .jp-wb-delta')]
                         .map(e => getComputedStyle(e).color)};
        probe.remove();
        return out;
    }""")
    assert colours["background"] == colours["brand"], colours
    assert set(colours["texts"]) == {colours["inverse"]}, colours
    expect(detail.locator("figcaption")).to_have_text(["training loss", "accuracy during training", "learning rate"])
    expect(detail.locator("pre.jp-wb-config")).to_contain_text("task: text-classification")
    page.screenshot(path=str(tmp_path / "sidebar.png"))
    detail.get_by_role("button", name="Open report").click()
    frame = page.frame_locator('iframe[src*="/workbench/api/runs/"]')
    expect(frame.locator("h1")).to_have_text("bbc-news-minilm report")
    assert page.locator('iframe[src*="/report"]').get_attribute("sandbox") == "allow-scripts"
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Run: bbc-news-minilm").click()
    detail.get_by_role("button", name="Open report").click()  # again: the report's tab comes forward
    report_tabs = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Report: bbc-news-minilm")
    expect(report_tabs).to_have_count(1)
    expect(report_tabs).to_have_class(re.compile(r"\blm-mod-current\b"))
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Run: bbc-news-minilm").click()
    detail.get_by_role("button", name="Open notebook").click()
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")).to_contain_text("report.ipynb")

    # stop the running run from its detail view: the server writes STOP into the run directory
    running.click()
    live = page.locator(".jp-wb-detail").filter(has_text="support-tickets")
    expect(live.locator(".jp-wb-detail-progress")).to_contain_text("step 150/200")
    live.get_by_role("button", name="Stop").click()
    page.locator(".jp-Dialog").get_by_role("button", name="Stop run").click()
    expect(live.get_by_role("button", name="Stopping…")).to_be_visible()
    assert run.stop_file.exists()

    # the run is deleted while its tab is open: the tab says so and stops asking for it
    shutil.rmtree(run.path)
    expect(live.locator(".jp-wb-gone")).to_have_text(re.compile("^This run no longer exists"), timeout=15_000)
    asked = []
    page.on("request", lambda r: asked.append(r.url) if f"/workbench/api/runs/{RUNNING}" in r.url else None)
    page.wait_for_timeout(7000)
    assert not asked, asked

    # launcher card -> a new notebook from the template, opened, with %%finetune shown as YAML
    page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Launcher").click()
    card = page.locator(".jp-LauncherCard:visible", has_text="Text classification")
    card.click()
    notebook = page.locator(".jp-NotebookPanel:visible")
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")).to_contain_text(
        "text-classification.ipynb")
    assert (lab.root / "text-classification.ipynb").exists()
    cells = notebook.locator(".jp-CodeCell .cm-content")
    expect(cells).to_have_count(3)
    expect(cells.nth(1)).to_have_attribute("data-language", "yaml")
    expect(cells.nth(2)).not_to_have_attribute("data-language", "yaml")
    # the kernel starts and reports itself; the new notebook is still as saved (no "unsaved changes")
    expect(notebook.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_have_count(1, timeout=60_000)
    page.wait_for_timeout(1000)
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")
    assert "jp-mod-dirty" not in tab.get_attribute("class")
    page.screenshot(path=str(tmp_path / "notebook.png"))

    # after a reload the run tab restored behind the notebook has its run's name, not its id
    page.wait_for_timeout(1500)  # the layout is saved shortly after a change
    page.reload()
    page.wait_for_selector("#jp-main-dock-panel", timeout=90_000)
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text="Run: bbc-news-minilm")).to_have_count(
        1, timeout=30_000)
    expect(page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab", has_text=f"Run: {DONE}")).to_have_count(0)

    assert not [e for e in page.errors if "workbench" in e.lower()], page.errors
