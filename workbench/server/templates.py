"""Template notebooks for the launcher: what each offers, and a fresh copy with parameters injected.

Injection follows papermill's ``--prepare-only``: a code cell tagged ``injected-parameters``
right after the cell tagged ``parameters``. Unlike papermill, names must be declared in the
template's parameters cell and values must be JSON (rendered as Python literals), so a request
can never smuggle code into the notebook.
"""

from __future__ import annotations

import ast
import copy
import json
import math
import re
import sys
import uuid
from pathlib import Path
from typing import Any

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_MAX_DEPTH = 20


class TemplateError(ValueError):
    """A request the templates cannot serve; the message is safe to show the user."""


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def _tags(cell: dict) -> list[str]:
    tags = (cell.get("metadata") or {}).get("tags") or []
    return [t for t in tags if isinstance(t, str)]


def read_notebook(path: Path) -> dict:
    try:
        nb = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise TemplateError(f"template {Path(path).name} cannot be read: {type(e).__name__}") from None
    if not isinstance(nb, dict) or not isinstance(nb.get("cells"), list):
        raise TemplateError(f"template {Path(path).name} is not a notebook")
    return nb


def parameters_cell_index(nb: dict) -> int | None:
    for i, cell in enumerate(nb["cells"]):
        if isinstance(cell, dict) and cell.get("cell_type") == "code" and "parameters" in _tags(cell):
            return i
    return None


def declared_parameters(nb: dict) -> list[dict]:
    """Names assigned in the ``parameters`` cell, with their default expression and trailing comment."""
    index = parameters_cell_index(nb)
    if index is None:
        return []
    source = _source(nb["cells"][index])
    try:
        tree = ast.parse(source)
    except SyntaxError as e:  # listed with this error rather than as a template without parameters
        raise TemplateError(f"the parameters cell is not valid Python (line {e.lineno}: {e.msg}); "
                            "fix the template") from None
    lines = source.splitlines()
    found: dict[str, dict] = {}
    for node in tree.body:
        targets: list[ast.expr] = []
        value = None
        annotation = None
        if isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            targets, value = [node.target], node.value
            annotation = ast.get_source_segment(source, node.annotation)
        for target in targets:
            if isinstance(target, ast.Name):
                line = lines[node.lineno - 1] if node.lineno - 1 < len(lines) else ""
                comment = line.split("#", 1)[1].strip() if "#" in line else ""
                found[target.id] = {"name": target.id,
                                    "default": ast.get_source_segment(source, value) if value is not None else None,
                                    "help": comment, "type": annotation}
    return list(found.values())


def describe(path: Path) -> dict:
    """Name, title, description and parameters of one template, for the launcher."""
    nb = read_notebook(path)
    meta = (nb.get("metadata") or {}).get("workbench") or {}
    title = meta.get("title") if isinstance(meta, dict) else None
    description = meta.get("description") if isinstance(meta, dict) else None
    for cell in nb["cells"]:
        if isinstance(cell, dict) and cell.get("cell_type") == "markdown":
            text = _source(cell).strip()
            if not text:
                continue
            first, _, rest = text.partition("\n")
            if not title and first.startswith("#"):
                title = first.lstrip("#").strip()
            if not description:
                body = rest if first.startswith("#") else text
                paragraph = body.strip().split("\n\n", 1)[0].strip()
                description = " ".join(paragraph.split())[:300] or None
            break
    return {
        "name": path.stem,
        "title": title or path.stem.replace("_", " ").replace("-", " ").capitalize(),
        "description": description or "",
        "parameters": declared_parameters(nb),
    }


def python_literal(value: Any, depth: int = 0) -> str:
    """A Python literal for a JSON value; anything else is refused."""
    if depth > _MAX_DEPTH:
        raise TemplateError("parameter value is nested too deeply")
    if value is None or isinstance(value, bool) or isinstance(value, int):
        return repr(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise TemplateError("parameter values must be finite numbers")
        return repr(value)
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(python_literal(v, depth + 1) for v in value) + "]"
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise TemplateError("parameter dictionaries must have string keys")
        return "{" + ", ".join(f"{k!r}: {python_literal(v, depth + 1)}" for k, v in value.items()) + "}"
    raise TemplateError(f"parameter values must be JSON values, not {type(value).__name__}")


def instantiate(nb: dict, parameters: dict | None) -> dict:
    """A clean copy of a template notebook (no outputs), with ``parameters`` injected if any."""
    nb = copy.deepcopy(nb)
    for cell in nb["cells"]:
        if isinstance(cell, dict) and cell.get("cell_type") == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    nb["cells"] = [c for c in nb["cells"] if not (isinstance(c, dict) and "injected-parameters" in _tags(c))]
    if not parameters:
        return nb
    if not isinstance(parameters, dict):
        raise TemplateError("parameters must be an object of name: value")
    declared = {p["name"] for p in declared_parameters(nb)}
    for name in parameters:
        if not isinstance(name, str) or not _IDENTIFIER.match(name):
            raise TemplateError(f"'{name}' is not a valid parameter name")
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            raise TemplateError(f"unknown parameter '{name}' (this template declares: {known})")
    lines = ["# Parameters"] + [f"{name} = {python_literal(value)}" for name, value in parameters.items()]
    cell: dict[str, Any] = {"cell_type": "code", "execution_count": None,
                            "metadata": {"tags": ["injected-parameters"]}, "outputs": [],
                            "source": "\n".join(lines) + "\n"}
    if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) >= (4, 5):
        cell["id"] = uuid.uuid4().hex[:8]
    index = parameters_cell_index(nb)
    nb["cells"].insert(0 if index is None else index + 1, cell)
    return nb


def same_python(argv: list[str]) -> bool:
    """Whether a kernel spec's command runs this process's Python (jupyter_client runs a bare
    python, python3 or python3.X as sys.executable)."""
    if not argv:
        return False
    bare = {"python", f"python{sys.version_info[0]}", "python{}.{}".format(*sys.version_info[:2])}
    try:
        return argv[0] in bare or Path(argv[0]).resolve() == Path(sys.executable).resolve()
    except OSError:
        return False


def kernel_metadata(name: str, spec: Any) -> dict:
    """A notebook's ``kernelspec`` and, for a kernel of this process's Python, ``language_info`` as
    JupyterLab writes them once the kernel reports itself (ipykernel's own values): a notebook made
    with them opens unchanged instead of asking to be saved."""
    meta: dict = {"kernelspec": {"display_name": spec.display_name, "language": spec.language, "name": name}}
    if same_python(spec.argv):
        try:
            from ipykernel.ipkernel import IPythonKernel
        except ImportError:  # a spec for a kernel this Python cannot run: Jupyter will say so
            return meta
        meta["language_info"] = dict(IPythonKernel.language_info)
    return meta
