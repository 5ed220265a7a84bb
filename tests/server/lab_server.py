"""Start a real JupyterLab on a seeded folder, with the freshly built labextension, and stop it again."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

REPO = Path(__file__).resolve().parents[2]
LABEXTENSION = REPO / "workbench" / "labextension"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]


def _cell(kind: str, source: str, tags: list[str] | None = None) -> dict:
    cell = {"cell_type": kind, "id": secrets.token_hex(4), "metadata": {"tags": tags} if tags else {}, "source": source}
    if kind == "code":
        cell.update(outputs=[], execution_count=None)
    return cell


def template_notebook() -> dict:
    """A small template: a heading, a parameters cell, a %%finetune cell and a plain code cell."""
    return {
        "cells": [
            _cell("markdown", "# Text classification\n\nFine-tune a classifier on labelled texts and compare it with "
                             "the base model."),
            _cell("code", 'model = "minilm"  # bundled alias or hub id\nepochs = 1\n', tags=["parameters"]),
            _cell("code", "%%finetune\ntask: text-classification\nmodel: minilm\ntrain:\n  epochs: 1\n"),
            _cell("code", "print(model, epochs)\n"),
        ],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
                     "language_info": {"name": "python", "codemirror_mode": {"name": "ipython", "version": 3},
                                       "mimetype": "text/x-python", "file_extension": ".py"}},
        "nbformat": 4, "nbformat_minor": 5,
    }


@contextmanager
def chromium_page(url: str, shots_from: Path, viewport: dict | None = None) -> Iterator:
    """A Playwright page in Debian's Chromium opened at ``url``; page errors collect in ``page.errors``.

    On exit the PNGs under ``shots_from`` are copied to $WORKBENCH_SCREENSHOTS when it is set.
    """
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=viewport or {"width": 1400, "height": 900})
            page.set_default_timeout(30_000)
            page.errors = []
            page.on("pageerror", lambda e: page.errors.append(str(e)))
            page.goto(url)
            yield page
        finally:
            shots = os.environ.get("WORKBENCH_SCREENSHOTS")
            if shots:
                Path(shots).mkdir(parents=True, exist_ok=True)
                for png in Path(shots_from).glob("*.png"):
                    shutil.copy(png, Path(shots) / png.name)
            browser.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Lab:
    def __init__(self, url: str, token: str, root: Path, process: subprocess.Popen, log: Path):
        self.url, self.token, self.root, self.process, self.log = url, token, root, process, log

    def api(self, path: str) -> dict:
        req = urllib.request.Request(self.url + path, headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            return json.loads(r.read())


@contextmanager
def running_lab(workdir: Path, root: Path, templates: Path, timeout: float = 90) -> Iterator[Lab]:
    """JupyterLab serving ``root`` with the workbench server extension and the built labextension.

    Jupyter's config, data, runtime and settings folders live under ``workdir``, so nothing of
    the user's own setup leaks in; the server is terminated on exit whatever happens.
    """
    if not (LABEXTENSION / "package.json").exists():
        raise RuntimeError(f"{LABEXTENSION} is not built; `make test` builds it (or `cd extension && jlpm build`).")
    extensions = workdir / "labextensions"
    extensions.mkdir(parents=True)
    (extensions / "workbench-lab").symlink_to(LABEXTENSION, target_is_directory=True)
    config_dir = workdir / "config"
    config_dir.mkdir()
    token = secrets.token_hex(16)
    port = _free_port()
    config = {
        "ServerApp": {"jpserver_extensions": {"workbench.server": True}, "root_dir": str(root),
                      "port": port, "ip": "127.0.0.1", "open_browser": False, "allow_root": True},
        "IdentityProvider": {"token": token},
        "LabApp": {"extra_labextensions_path": [str(extensions)], "news_url": None, "check_for_updates_class":
                   "jupyterlab.NeverCheckForUpdate"},
        "LabServerApp": {"workspaces_dir": str(workdir / "workspaces"), "user_settings_dir": str(workdir / "settings")},
        "WorkbenchServer": {"templates_dir": str(templates)},
    }
    (config_dir / "jupyter_server_config.json").write_text(json.dumps(config), encoding="utf-8")
    news = workdir / "settings" / "@jupyterlab" / "apputils-extension" / "notification.jupyterlab-settings"
    news.parent.mkdir(parents=True)
    news.write_text(json.dumps({"fetchNews": "false"}), encoding="utf-8")  # no "Jupyter news?" toast
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config_dir), "JUPYTER_RUNTIME_DIR": str(workdir / "runtime"),
           "JUPYTERLAB_SETTINGS_DIR": str(workdir / "settings"), "JUPYTERLAB_WORKSPACES_DIR": str(workdir / "workspaces"),
           "JUPYTER_PLATFORM_DIRS": "1", "WORKBENCH_RUNS_DIR": "runs"}
    log = workdir / "jupyterlab.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "jupyterlab"], cwd=root, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    lab = Lab(f"http://127.0.0.1:{port}/", token, root, process, log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {process.returncode}:\n{log.read_text()[-3000:]}")
            try:
                lab.api("api/status")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"JupyterLab did not start in {timeout} s:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield lab
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
