"""JSON routes under ``<base_url>/workbench/api/`` for the JupyterLab sidebar and launcher.

Every verb is ``@tornado.web.authenticated`` and ``@authorized``; ``APIHandler`` adds jupyter_server's
XSRF and origin checks for cookie-authenticated requests. Responses are strict JSON
(non-finite numbers become null). What the server adds names folders from the Jupyter root (null
outside it), never by the server's absolute path; a run's own files (run.json, config.yaml,
metrics.jsonl) are passed on as written, with the paths the run recorded.

  GET  info                      version, the runs directory shown and the largest page of runs
  GET  runs?offset=&limit=       one page of run summaries, newest first (ETag: unchanged pages are a 304)
  GET  runs/<id>                 one run: summary, run.json, config.yaml text, eval.json, metric directions
  GET  runs/<id>/metrics?offset= complete metrics.jsonl records from a byte offset (incremental)
  POST runs/<id>/stop            write the run's STOP file
  GET  runs/<id>/report          report.html, sandboxed by its Content-Security-Policy
  GET  templates                 the template notebooks
  POST notebooks                 a new notebook from a template: {template, path, parameters}
"""

from __future__ import annotations

import asyncio
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import tornado.web
from jupyter_core.utils import ensure_async
from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler, JupyterHandler
from jupyter_server.utils import url_escape, url_path_join
from traitlets import Int, Unicode
from traitlets.config import Configurable

from .. import _onednn
from .._version import __version__
from ..paths import templates_dir as default_templates_dir
from ..runs import ACTIVE, RunDir, default_runs_dir, dumps_strict
from .runindex import (RunIndex, confined_file, lab_path, metric_directions, read_config_text, read_eval,
                       read_metrics_chunk, resolve_run)
from .templates import TemplateError, describe, instantiate, kernel_metadata, read_notebook

AUTH_RESOURCE = "workbench"


class WorkbenchServer(Configurable):
    """Settings of the workbench server extension (``c.WorkbenchServer.<name>`` in jupyter_server_config)."""

    runs_dir = Unicode(
        "", config=True,
        help="Runs directory shown in the sidebar. A relative path is taken from the server's root "
             "directory. Empty: $WORKBENCH_RUNS_DIR, else runs/.")
    templates_dir = Unicode(
        "", config=True, help="Folder of template notebooks (*.ipynb). Empty: the templates bundled with workbench.")
    page_size = Int(100, config=True, help="Runs per page when a request gives no limit.")
    max_page_size = Int(1000, config=True, help="Largest page of runs one request may ask for.")


@dataclass
class State:
    root_dir: Path
    runs_root: Path
    templates_root: Path
    index: RunIndex
    settings: WorkbenchServer


class _Base(APIHandler):
    auth_resource = AUTH_RESOURCE

    @property
    def wb(self) -> State:
        return self.settings["workbench"]

    def reply(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(dumps_strict(obj))

    def int_argument(self, name: str, default: int, lo: int, hi: int) -> int:
        raw = self.get_query_argument(name, None)
        if raw is None or raw == "":
            return default
        # plain ASCII digits only: Python's int() also takes "1_0" and other scripts' digits
        if not re.fullmatch(r"-?[0-9]{1,19}", raw):
            raise tornado.web.HTTPError(400, f"'{name}' must be an integer between {lo} and {hi}")
        value = int(raw)
        if not lo <= value <= hi:
            raise tornado.web.HTTPError(400, f"'{name}' must be between {lo} and {hi}")
        return value

    def run_or_404(self, run_id: str) -> RunDir:
        run = resolve_run(self.wb.runs_root, run_id)
        if run is None:
            shown = run_id if len(run_id) <= 120 else run_id[:117] + "..."
            raise tornado.web.HTTPError(404, f"no run '{shown}' in the runs folder")
        return run


class InfoHandler(_Base):
    """``runs_dir`` is the runs folder relative to the Jupyter root, as Lab's file browser names it.

    A runs folder outside the root has no such name: ``runs_dir`` is then null and
    ``runs_dir_outside_root`` true, rather than the server's absolute path.
    """

    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        wb = self.wb
        shown = lab_path(wb.runs_root, wb.root_dir)
        self.reply({"version": __version__, "runs_dir": shown, "runs_dir_outside_root": shown is None,
                    "runs_dir_exists": wb.runs_root.is_dir(), "max_limit": wb.settings.max_page_size})


class RunsHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        conf = self.wb.settings
        offset = self.int_argument("offset", 0, 0, 10**9)
        limit = self.int_argument("limit", conf.page_size, 1, conf.max_page_size)
        page = await asyncio.to_thread(self.wb.index.page, offset, limit)
        page["max_limit"] = conf.max_page_size
        page["runs_dir_exists"] = self.wb.runs_root.is_dir()
        self.reply(page)


def _run_detail(index: RunIndex, run: RunDir) -> dict:
    detail: dict[str, Any] = {"run": index.row(run), "info": None, "config": "", "eval": None}
    try:
        info = run.read_info()
        detail["info"] = info if isinstance(info, dict) else None
    except Exception:
        pass  # the summary row already carries the error
    detail["config"] = read_config_text(run)
    detail["eval"], problem = read_eval(run)
    if problem:  # as a corrupt run.json is reported: in the summary row, beside what could be read
        detail["run"]["eval_error"] = problem
    detail["greater_is_better"] = metric_directions(detail["eval"])
    return detail


class RunHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        run = self.run_or_404(run_id)
        self.reply(await asyncio.to_thread(_run_detail, self.wb.index, run))


class MetricsHandler(_Base):
    """Complete records of metrics.jsonl from byte ``offset`` on (see ``read_metrics_chunk``).

    A client keeps the returned ``offset`` and asks from it next time. ``more`` true means the
    size cap cut this reply short: ask again at once. ``more`` false means every complete record
    written so far was returned; a half-written last line is left for a later request, so a
    client of a live run waits for its next poll, and one of a finished run stops.
    """

    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        run = self.run_or_404(run_id)
        offset = self.int_argument("offset", 0, 0, 2**62)
        try:
            chunk = await asyncio.to_thread(read_metrics_chunk, run, offset)
        except OSError as e:  # a folder in its place, no permission on a shared disk: say which file, and why
            where = lab_path(run.metrics_jsonl, self.wb.root_dir) or f"the folder of run {run.id}"
            raise tornado.web.HTTPError(409, f"{run.metrics_jsonl.name} of this run cannot be read "
                                             f"({e.strerror or type(e).__name__}): {where}") from None
        self.reply(chunk)


class StopHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def post(self, run_id: str) -> None:
        run = self.run_or_404(run_id)
        try:
            status = run.read_info().get("status")
        except Exception:
            raise tornado.web.HTTPError(409, "run.json cannot be read; the run cannot be stopped from here") from None
        if status not in ACTIVE:
            raise tornado.web.HTTPError(409, f"the run is {status}; only pending or running runs can be stopped")
        try:
            await asyncio.to_thread(run.request_stop)
        except FileNotFoundError:  # deleted since the lookup: writing STOP must not bring the folder back
            raise tornado.web.HTTPError(404, f"no run '{run.id}' in the runs folder") from None
        self.log.info("workbench: stop requested for run %s", run.id)
        self.reply({"id": run.id, "stop_requested": True}, status=202)


class ReportHandler(JupyterHandler):
    """report.html under a CSP sandbox, like jupyter_server's own file handler for HTML."""

    auth_resource = AUTH_RESOURCE

    @property
    def content_security_policy(self) -> str:
        return "; ".join([
            super().content_security_policy,
            "sandbox allow-scripts",
            "default-src 'none'",
            "img-src data: blob:",
            "style-src 'unsafe-inline' data:",
            "font-src data:",
            "script-src 'unsafe-inline'",
        ])

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        # the reason itself ("this run has no report"), not Jupyter's generic page for a missing URL
        exc = kwargs.get("exc_info", (None, None))[1]
        reason = getattr(exc, "log_message", None) or self._reason
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(f"{status_code}: {reason}\n")

    @tornado.web.authenticated
    @authorized
    async def get(self, run_id: str) -> None:
        self.check_xsrf_cookie()
        wb: State = self.settings["workbench"]
        run = resolve_run(wb.runs_root, run_id)
        path = confined_file(run, "report.html") if run is not None else None
        if path is None:
            raise tornado.web.HTTPError(404, "this run has no report")
        body = await asyncio.to_thread(path.read_bytes)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Cache-Control", "no-store")
        self.finish(body)


class TemplatesHandler(_Base):
    @tornado.web.authenticated
    @authorized
    async def get(self) -> None:
        self.reply({"templates": await asyncio.to_thread(list_templates, self.wb.templates_root)})


def list_templates(root: Path) -> list[dict]:
    out = []
    for path in sorted(Path(root).glob("*.ipynb")):
        try:
            out.append(describe(path))
        except TemplateError as e:
            out.append({"name": path.stem, "title": path.stem, "description": "", "parameters": [],
                        "error": str(e)})
    return out


def _template_path(root: Path, name: Any) -> Path:
    if not isinstance(name, str):
        raise tornado.web.HTTPError(400, "'template' must be a template name")
    by_name = {p.stem: p for p in Path(root).glob("*.ipynb")}
    if name not in by_name:
        raise tornado.web.HTTPError(404, f"no template named '{name}'" if len(name) < 100 else "no such template")
    return by_name[name]


def _api_dir(path: Any) -> str:
    """A contents-API directory path, refusing anything that could leave the root."""
    if path is None:
        return ""
    if not isinstance(path, str):
        raise tornado.web.HTTPError(400, "'path' must be a string")
    if "\\" in path or "\x00" in path or ".." in PurePosixPath(path).parts:
        raise tornado.web.HTTPError(400, "'path' must be a folder inside the server root")
    # "sub/./" and "sub//x" name the folders Lab's file browser calls "sub" and "sub/x"
    return "/".join(part for part in path.split("/") if part not in ("", "."))


def _check_types(template: Path, parameters: Any) -> None:
    """The values against the types the template declares (as ``workbench new`` checks them)."""
    from ..report_sections import ParameterError, check_values, parameter_spec

    if isinstance(parameters, dict) and parameters:
        try:
            check_values(parameters, parameter_spec(template), template.stem, examples=False)
        except ParameterError as e:
            raise TemplateError(str(e)) from None


class NotebooksHandler(_Base):
    async def _describe_kernel(self, nb: dict) -> None:
        """The notebook's kernel as JupyterLab writes it once the kernel starts, so that the new
        notebook opens saved rather than changed."""
        meta = nb.setdefault("metadata", {})
        name = (meta.get("kernelspec") or {}).get("name") or "python3"
        try:
            spec = await ensure_async(self.kernel_spec_manager.get_kernel_spec(name))
        except Exception:  # no such kernel here: JupyterLab asks which one, and the notebook changes anyway
            return
        meta.update(kernel_metadata(name, spec))

    @tornado.web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.get_json_body()
        if not isinstance(body, dict):
            raise tornado.web.HTTPError(400, "expected a JSON object {template, path, parameters}")
        template = _template_path(self.wb.templates_root, body.get("template"))
        directory = _api_dir(body.get("path"))
        cm = self.contents_manager
        if not await ensure_async(cm.dir_exists(directory)):
            raise tornado.web.HTTPError(404, "no such folder")
        if directory and not cm.allow_hidden and await ensure_async(cm.is_hidden(directory)):
            # refused before writing, as the contents API's PUT does (its save would write, then 404)
            raise tornado.web.HTTPError(400, f"'{directory}' is a hidden folder; choose another folder "
                                             "(or start the server with --ContentsManager.allow_hidden=True)")
        try:
            nb = instantiate(await asyncio.to_thread(read_notebook, template), body.get("parameters"))
            _check_types(template, body.get("parameters"))
        except TemplateError as e:
            raise tornado.web.HTTPError(400, str(e)) from None
        await self._describe_kernel(nb)
        name = await ensure_async(cm.increment_filename(f"{template.stem}.ipynb", directory, insert="-"))
        path = f"{directory}/{name}" if directory else name
        model = await ensure_async(cm.save({"type": "notebook", "format": "json", "content": nb}, path))
        self.log.info("workbench: created %s from template %s", path, template.stem)
        # escaped as jupyter_server's contents handler does: a raw non-Latin-1 name is no valid header
        self.set_header("Location", url_path_join(self.base_url, "api", "contents", url_escape(model["path"])))
        self.reply({"path": model["path"], "name": model["name"], "template": template.stem}, status=201)


def _resolve_dir(configured: str, root_dir: Path, fallback: Path) -> Path:
    path = Path(os.path.expanduser(configured)) if configured else fallback
    return path if path.is_absolute() else root_dir / path


def setup_handlers(server_app: Any) -> State:
    """Register the routes on ``server_app`` and return the shared state they use."""
    conf = WorkbenchServer(parent=server_app)
    root_dir = Path(os.path.expanduser(server_app.root_dir)).resolve()
    runs_root = _resolve_dir(conf.runs_dir, root_dir, default_runs_dir())
    templates_root = _resolve_dir(conf.templates_dir, root_dir, default_templates_dir())
    state = State(root_dir=root_dir, runs_root=runs_root, templates_root=templates_root,
                  index=RunIndex(runs_root, contents_root=root_dir), settings=conf)
    # kernels this server starts inherit its environment: a notebook anywhere under the root (a
    # template's or a %%finetune cell's run, whose relative default would be the notebook's own
    # folder) then writes and finds runs where the sidebar looks
    os.environ["WORKBENCH_RUNS_DIR"] = str(runs_root)
    # but not workbench's oneDNN setting, which is for processes that train (see workbench._onednn)
    _onednn.release_for_children()
    web_app = server_app.web_app
    web_app.settings["workbench"] = state
    base = url_path_join(web_app.settings["base_url"], "workbench", "api")
    run = r"/runs/([^/]+)"
    routes = [
        (r"/info", InfoHandler),
        (r"/runs", RunsHandler),
        (run, RunHandler),
        (run + r"/metrics", MetricsHandler),
        (run + r"/stop", StopHandler),
        (run + r"/report", ReportHandler),
        (r"/templates", TemplatesHandler),
        (r"/notebooks", NotebooksHandler),
    ]
    web_app.add_handlers(".*$", [(base + pattern, handler) for pattern, handler in routes])
    server_app.log.info("workbench: runs from %s", runs_root)
    return state


__all__ = ["WorkbenchServer", "setup_handlers"]
