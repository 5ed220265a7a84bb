"""Reports: run a template notebook headless with papermill, then export a self-contained HTML page.

``workbench report TEMPLATE -p NAME VALUE`` and ``workbench new TEMPLATE PATH`` land here. A front
end: the training core never imports this module (papermill and nbconvert load on use).

Parameters are injected the safe way (``workbench.server.templates.instantiate``): names must be
declared in the template's parameters cell and values are JSON, written as Python literals, so
no value can become code. The executed ``report.ipynb`` and ``report.html`` go into the run
directory the notebook trained (or ``--output DIR``); a failing cell still leaves both, and the
error of that cell is what the command reports.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import WorkbenchError
from .paths import PACKAGE_DIR, list_templates
from .report_sections import (RUN_MIMETYPE, ParameterError, allowed_types, check_values, example_value,
                              parameter_spec, rebase_local_paths, template_path)
from .runs import RunDir, atomic_write_text, default_runs_dir

KERNEL = "python3"
DEFAULT_TIMEOUT = 3600  # seconds per cell; a real run on 2 CPU cores takes minutes, a hung kernel forever
HTML_TEMPLATE_DIR = PACKAGE_DIR / "report_html"
HTML_TEMPLATE = "workbench_report"


class ReportError(WorkbenchError):
    """A report that could not be made; ``path`` points at what was written anyway."""

    def __init__(self, message: str, path: Path | None = None):
        super().__init__(message)
        self.path = path


@dataclass
class ReportResult:
    notebook: Path
    html: Path | None
    run_dirs: list[dict] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


# ---- parameters from the command line ------------------------------------------------------------

def parse_cli_value(name: str, text: str, annotation: str | None) -> Any:
    """``-p NAME VALUE`` text -> a value of the declared type (``str`` parameters keep the text as is)."""
    allowed = allowed_types(annotation)
    if allowed is None:
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text
    low = text.strip().lower()
    if "None" in allowed and low in ("none", "null", "~"):
        return None
    if "bool" in allowed and low in ("true", "false", "yes", "no", "on", "off", "1", "0"):
        return low in ("true", "yes", "on", "1")
    if "int" in allowed:
        try:
            return int(text)
        except ValueError:
            pass
    if "float" in allowed:
        try:
            return float(text)
        except ValueError:
            pass
    if allowed & {"list", "dict"}:
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = None
        if isinstance(value, (list, dict)):
            return value
    if "str" in allowed:
        return text
    json_note = " (lists and mappings are written as JSON)" if allowed & {"list", "dict"} else ""
    none_note = "; null for none" if "None" in allowed else ""
    raise ParameterError(f"-p {name} {text}: '{name}' is declared {annotation}, and {text!r} is not one; "
                         f"for example {example_value(annotation, name)}{json_note}{none_note}.")


def collect_parameters(template: str | Path, pairs: list[tuple[str, str]] | None = None,
                       files: list[str] | None = None) -> dict:
    """Parameters from ``-f params.yaml`` files, then ``-p NAME VALUE`` pairs (later wins), checked."""
    spec = parameter_spec(template)
    name = template_path(template).stem
    values: dict[str, Any] = {}
    for f in files or []:
        path = Path(f)
        if not path.is_file():
            raise ParameterError(f"-f {f}: file not found.")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f" (line {mark.line + 1})" if mark else ""
            raise ParameterError(f"-f {f}: invalid YAML{where}: {getattr(e, 'problem', e)}.") from None
        if data is None:
            continue
        if not isinstance(data, dict):
            raise ParameterError(f"-f {f}: expected a mapping of parameter names to values, "
                                 f"got {type(data).__name__}.")
        values.update({str(k): v for k, v in data.items()})
    for key, text in pairs or []:
        if key not in spec:
            values[key] = text  # reported as unknown below, with the declared names
        else:
            values[key] = parse_cli_value(key, text, spec[key].get("type"))
    check_values(values, spec, name)
    return values


# ---- running -------------------------------------------------------------------------------------

def prepared_notebook(template: str | Path, parameters: dict) -> dict:
    """The template with parameters injected after its parameters cell, and where it came from."""
    from .server.templates import instantiate, read_notebook

    path = template_path(template)
    nb = instantiate(read_notebook(path), parameters)
    meta = nb.setdefault("metadata", {})
    meta["kernelspec"] = {"name": KERNEL, "display_name": "Python 3 (ipykernel)", "language": "python"}
    meta.setdefault("workbench", {}).update({"template": path.stem, "parameters": parameters})
    return nb


def run_markers(nb: Any) -> list[dict]:
    """Run directories the notebook announced (``report_sections.mark_run``), in order."""
    found = []
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) or []:
            data = out.get("data") or {}
            if RUN_MIMETYPE in data and isinstance(data[RUN_MIMETYPE], dict):
                found.append(data[RUN_MIMETYPE])
    return found


def _primary(markers: list[dict]) -> Path | None:
    if not markers:
        return None
    chosen = next((m for m in markers if m.get("role") == "primary"), markers[-1])
    path = Path(str(chosen.get("run_dir", "")))
    return path if (path / "run.json").is_file() else None


def failed_cell_error(nb: Any) -> str | None:
    """'In [n]: Name: message' for the first cell whose output is an error."""
    for cell in nb.get("cells", []):
        for out in cell.get("outputs", []) or []:
            if out.get("output_type") == "error":
                count = cell.get("execution_count")
                return f"cell In [{count}] failed: {out.get('ename')}: {out.get('evalue')}"
    return None


def _check_kernel() -> None:
    """Warn when the python3 kernel would not be this interpreter (a user-level kernelspec shadows it)."""
    try:
        from jupyter_client.kernelspec import KernelSpecManager

        spec = KernelSpecManager().get_kernel_spec(KERNEL)
    except Exception as e:  # no kernelspec at all: papermill reports it with its own message
        print(f"warning: no '{KERNEL}' kernel found ({e}); install ipykernel in this environment.", file=sys.stderr)
        return
    exe = spec.argv[0] if spec.argv else ""
    if exe not in ("python", "python3") and Path(exe).resolve() != Path(sys.executable).resolve():
        print(f"warning: the '{KERNEL}' kernel at {spec.resource_dir} runs {exe}, not {sys.executable}; the "
              "report may not see this environment's packages. Remove that kernelspec or set JUPYTER_PATH.",
              file=sys.stderr)


class RunFollower:
    """While a report's notebook runs, the progress of each run it starts, read from the runs' own
    ``metrics.jsonl`` (the run-directory contract) and shown by the console progress of ``workbench
    train``: the notebook itself draws its progress as HTML, which a terminal cannot show."""

    def __init__(self, root: Path, stream: Any = None, interval: float = 1.0):
        import threading

        from .events import ConsoleProgress

        self.root, self.interval = root, interval
        self.sink = ConsoleProgress(stream or sys.stderr)
        self.known = set(self._dirs())  # runs made before the report are not followed
        self.offsets: dict[Path, int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="workbench-report-progress", daemon=True)

    def _dirs(self) -> list[Path]:
        try:
            return sorted(d for d in self.root.iterdir() if d.is_dir())
        except OSError:  # not made yet
            return []

    def poll(self) -> None:
        from .events import event_from_record

        for d in self._dirs():
            if d in self.known:
                continue
            records, self.offsets[d] = RunDir(d).read_metrics(self.offsets.get(d, 0))
            for record in records:
                try:
                    event = event_from_record(record)
                    if event is not None:
                        self.sink(event)
                except (TypeError, ValueError):  # a record of another version's shape: not shown
                    continue

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll()

    def __enter__(self) -> "RunFollower":
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.poll()  # what was written after the last poll


# the kernel's own start-up notices (ipykernel 7 warns that a local kernel talks over unencrypted
# TCP) are not the report's business; its errors still show, and the notebook's output is untouched
KERNEL_ARGS = ["--IPKernelApp.log_level=ERROR"]


def with_environment_defaults(template: str | Path, parameters: dict | None) -> dict:
    """``parameters`` plus ``runs_dir`` from ``$WORKBENCH_RUNS_DIR`` where the template declares a
    ``runs_dir`` the caller left unset (as the command line and ``finetune`` do, so a report finds and
    writes runs where ``workbench runs list`` looks)."""
    parameters = dict(parameters or {})
    env = os.environ.get("WORKBENCH_RUNS_DIR")
    if env and "runs_dir" not in parameters and "runs_dir" in parameter_spec(template):
        parameters["runs_dir"] = env
    return parameters


def run_report(template: str | Path, parameters: dict | None = None, output: str | Path | None = None,
               no_input: bool = False, timeout: int = DEFAULT_TIMEOUT, cwd: str | Path | None = None,
               progress: bool = False) -> ReportResult:
    """Execute ``template`` with ``parameters`` and write report.ipynb and report.html.

    The destination is ``output`` if given, else the run directory the notebook marked as its
    primary run, else ``reports/<template>-<time>/``. A failing cell gives a result whose
    ``error`` names that cell; both files are still written.
    """
    import nbformat
    import papermill
    from papermill.exceptions import PapermillExecutionError

    parameters = with_environment_defaults(template, parameters)
    check_values(parameters, parameter_spec(template), template_path(template).stem)
    name = template_path(template).stem
    cwd = Path(cwd or Path.cwd()).resolve()
    _check_kernel()
    staging = Path(tempfile.mkdtemp(prefix=f"workbench-report-{name}-"))
    try:
        source = staging / "input.ipynb"
        executed = staging / "report.ipynb"
        nbformat.write(nbformat.from_dict(prepared_notebook(template, parameters)), str(source))
        error = None
        try:
            # progress: the notebook's printed output, and its runs' progress from their run directories,
            # on stderr (papermill's cell bar would say nothing during the one long training cell)
            streams = {"stdout_file": sys.stderr, "stderr_file": sys.stderr} if progress else {}
            runs_root = Path(str(parameters.get("runs_dir") or parameter_spec(template).get("runs_dir", {})
                                 .get("value") or default_runs_dir()))
            with RunFollower(runs_root if runs_root.is_absolute() else cwd / runs_root) if progress \
                    else contextlib.nullcontext():
                papermill.execute_notebook(str(source), str(executed), parameters=None, kernel_name=KERNEL,
                                           execution_timeout=timeout, cwd=str(cwd), progress_bar=False,
                                           log_output=False, request_save_on_cell_execute=True,
                                           extra_arguments=KERNEL_ARGS, **streams)
        except PapermillExecutionError as e:
            error = f"cell In [{e.exec_count}] failed: {e.ename}: {e.evalue}"
        except Exception as e:  # dead kernel, timeout, missing kernelspec: still export what ran
            error = f"{type(e).__name__}: {e}"
        if not executed.is_file():
            raise ReportError(f"the notebook did not start: {error}")
        nb = nbformat.read(str(executed), as_version=4)
        error = error or failed_cell_error(nb)
        markers = run_markers(nb)
        dest = Path(output) if output else _primary(markers)
        if dest is None:
            stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
            dest = cwd / "reports" / f"{name}-{stamp}"
        dest = dest if dest.is_absolute() else cwd / dest
        dest.mkdir(parents=True, exist_ok=True)
        notebook_path = dest / "report.ipynb"
        atomic_write_text(notebook_path, nbformat.writes(nb))
        html_path = dest / "report.html"
        atomic_write_text(html_path, export_html(nb, no_input=no_input, title=_title(nb, name)))
        _shareable(notebook_path, html_path)
        for marker in markers:
            run_dir = Path(str(marker.get("run_dir", "")))
            if (run_dir / "run.json").is_file():
                RunDir(run_dir).update_info(report={"template": name, "notebook": str(notebook_path),
                                                    "html": str(html_path), "error": error})
        return ReportResult(notebook=notebook_path, html=html_path, run_dirs=markers, error=error)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _shareable(*paths: Path) -> None:
    """Reports are for handing on: readable by others as the umask allows (temp files start at 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    for p in paths:
        os.chmod(p, 0o666 & ~mask)


def _title(nb: Any, default: str) -> str:
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "markdown":
            first = str(cell.get("source", "")).strip().splitlines()[:1]
            if first and first[0].startswith("#"):
                return first[0].lstrip("#").strip()
    return default


def export_html(nb: Any, no_input: bool = False, title: str | None = None) -> str:
    """One self-contained HTML page: no external scripts or styles, images as data URIs.

    nbconvert's lab template with its CDN script tags removed and a Content-Security-Policy that
    forbids any script or network load; text outputs are escaped by nbconvert, and the report
    sections escape every user string in their HTML.
    """
    import copy

    from nbconvert import HTMLExporter

    nb = copy.deepcopy(nb)
    for cell in nb.get("cells", []):  # run markers are for `workbench report`, not for readers
        if cell.get("outputs"):
            cell["outputs"] = [o for o in cell["outputs"] if RUN_MIMETYPE not in (o.get("data") or {})]
    if title:
        nb.setdefault("metadata", {})["title"] = title
    exporter = HTMLExporter(template_name=HTML_TEMPLATE, extra_template_basedirs=[str(HTML_TEMPLATE_DIR)],
                            embed_images=True, exclude_input=no_input, exclude_input_prompt=no_input,
                            exclude_output_prompt=no_input)
    body, _ = exporter.from_notebook_node(nb)
    return body


# ---- new notebook from a template ----------------------------------------------------------------

def new_notebook(template: str | Path, path: str | Path, parameters: dict | None = None,
                 force: bool = False) -> Path:
    """Copy a template for interactive use, parameters injected (papermill's ``--prepare-only``)."""
    import nbformat
    import papermill

    target = Path(path)
    if target.suffix != ".ipynb":
        target = target / f"{template_path(template).stem}.ipynb" if target.is_dir() else \
            target.with_suffix(".ipynb")
    if target.exists() and not force:
        raise ReportError(f"{target} already exists; choose another path or pass --force to overwrite it.")
    # runs_dir stays the template's None: the notebook reads $WORKBENCH_RUNS_DIR where it runs, not here
    parameters = dict(parameters or {})
    check_values(parameters, parameter_spec(template), template_path(template).stem)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Jupyter runs a notebook in its own folder: a file named from here is named from there instead, also
    # inside a list or a mapping (compare_runs' runs, config's data.test), and runs_dir even before it
    # exists (`workbench report -p runs_dir myruns` would use ./myruns too). A path that names a file
    # from the notebook's folder as well is kept as written.
    parameters = rebase_local_paths(
        parameters, lambda p: os.path.relpath(os.path.abspath(p), os.path.abspath(target.parent)),
        keep=lambda p: (target.parent / p).exists())
    with tempfile.TemporaryDirectory(prefix="workbench-new-") as tmp:
        source = Path(tmp) / "input.ipynb"
        nb = prepared_notebook(template, parameters)
        nb.setdefault("metadata", {}).update(_kernel_as_jupyter_writes_it())  # papermill keeps it
        nbformat.write(nbformat.from_dict(nb), str(source))
        papermill.execute_notebook(str(source), str(target), parameters=None, kernel_name=KERNEL,
                                   prepare_only=True, progress_bar=False)
    return target


def _kernel_as_jupyter_writes_it() -> dict:
    """The notebook metadata of the kernel as Jupyter writes it when the kernel starts (so that a new
    notebook opens unchanged); none where no such kernel is installed."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    from .server.templates import kernel_metadata

    try:
        return kernel_metadata(KERNEL, KernelSpecManager().get_kernel_spec(KERNEL))
    except NoSuchKernel:
        return {}


# ---- listing -------------------------------------------------------------------------------------

def describe_templates() -> list[dict]:
    from .server.templates import describe

    return [describe(p) for p in list_templates()]


def templates_text() -> str:
    lines = []
    for t in describe_templates():
        lines.append(f"{t['name']}: {t['title']}")
        if t["description"]:
            lines.append(f"    {t['description']}")
        for p in t["parameters"]:
            kind = f": {p['type']}" if p.get("type") else ""
            lines.append(f"    -p {p['name']}{kind} = {p['default']}" + (f"  # {p['help']}" if p["help"] else ""))
        lines.append("")
    return "\n".join(lines).rstrip() or "No templates found."
