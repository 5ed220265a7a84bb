"""What the report templates' cells call: parameter checks, the data summary, results, reproducibility.

A front end (it displays through IPython); the training core never imports it. Every string that
comes from the user or the data is escaped before it reaches HTML, and every chart is a PNG, so
a report survives papermill and ``nbconvert --to html`` with no widget state and no network.
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import html
import json
import math
import shlex
from pathlib import Path
from typing import Any

from .config import is_stand_in
from .errors import ConfigError, WorkbenchError
from .paths import list_templates, templates_dir
from .render import (fmt_delta, fmt_parameters, fmt_seconds, metric_rows, metrics_table_html, table_html,
                     test_size_text)
from .runs import RunDir

RUN_MIMETYPE = "application/vnd.workbench.run+json"
KERNEL_NAMES = {"In", "Out", "exit", "quit", "get_ipython", "open"}
JSON_TYPES = {type(None): "None", bool: "bool", int: "int", float: "float", str: "str", list: "list",
              dict: "dict"}
EXAMPLE_TEXT_CHARS = 300


class ParameterError(ConfigError):
    """A template parameter that is not declared, or whose value has the wrong type."""


# ---- parameters ----------------------------------------------------------------------------------

def template_path(template: str | Path) -> Path:
    """A template by name (``text_classification``, ``text-classification``) or by notebook path."""
    p = Path(template)
    if p.suffix == ".ipynb":
        if p.is_file():
            return p
        raise ParameterError(f"Template notebook not found: {p}.")
    candidate = templates_dir() / f"{str(template).replace('-', '_')}.ipynb"
    if candidate.is_file():
        return candidate
    names = [t.stem for t in list_templates()]
    close = difflib.get_close_matches(str(template).replace("-", "_"), names, n=1, cutoff=0.5)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    raise ParameterError(f"No template named '{template}'.{hint} Templates: {', '.join(names) or '(none)'} "
                         "(`workbench report --list` shows their parameters).")


def parameter_spec(template: str | Path) -> dict[str, dict]:
    """The template's parameters cell: ``{name: {name, type, default, help, value}}`` in order."""
    from .server.templates import TemplateError, declared_parameters, read_notebook

    path = template_path(template)
    try:
        nb = read_notebook(path)
    except TemplateError as e:
        raise ParameterError(str(e)) from None
    spec = {}
    for p in declared_parameters(nb):
        try:
            value = ast.literal_eval(p["default"]) if p["default"] is not None else None
        except (ValueError, SyntaxError):
            value = p["default"]
        spec[p["name"]] = {**p, "value": value}
    return spec


def allowed_types(annotation: str | None) -> set[str] | None:
    """JSON type names an annotation such as ``int | None`` or ``list[str]`` admits; None admits any."""
    if not annotation:
        return None
    try:
        node = ast.parse(annotation, mode="eval").body
    except SyntaxError:
        return None
    out: set[str] = set()

    def walk(n: ast.AST) -> bool:
        if isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr):
            return walk(n.left) and walk(n.right)
        if isinstance(n, ast.Constant) and n.value is None:
            out.add("None")
            return True
        if isinstance(n, ast.Name) and n.id in JSON_TYPES.values():
            out.add(n.id)
            return True
        if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name):
            if n.value.id == "Optional":
                out.add("None")
                return walk(n.slice)
            if n.value.id in ("list", "dict"):
                out.add(n.value.id)
                return True
        return False

    return out if walk(node) else None


def type_matches(value: Any, allowed: set[str] | None) -> bool:
    if allowed is None:
        return is_json_value(value)
    kind = JSON_TYPES.get(type(value))
    if kind is None or not is_json_value(value):
        return False
    return kind in allowed or (kind == "int" and "float" in allowed)


def is_json_value(value: Any, depth: int = 0) -> bool:
    if depth > 20:
        return False
    if value is None or isinstance(value, (bool, int, str)):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(is_json_value(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and is_json_value(v, depth + 1) for k, v in value.items())
    return False


def example_value(annotation: str | None, name: str) -> str:
    allowed = allowed_types(annotation) or set()
    for kind, sample in (("int", "2"), ("float", "0.5"), ("bool", "true"), ("list", "'[\"a\", \"b\"]'"),
                         ("dict", "'{\"key\": 1}'"), ("str", "text")):
        if kind in allowed:
            if kind in ("list", "dict"):  # papermill's -p passes text; its -y reads YAML
                return f"-p {name} {sample} with workbench report, -y '{name}: {sample.strip(chr(39))}' with papermill"
            return f"-p {name} {sample}"
    return f"-p {name} VALUE"


def _unknown_message(names: list[str], spec: dict, template: str) -> str:
    parts = []
    for n in names:
        close = difflib.get_close_matches(n, list(spec), n=1, cutoff=0.6)
        parts.append(f"'{n}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    return (f"Unknown parameter{'s' if len(names) > 1 else ''} {', '.join(parts)} for template {template}. "
            f"It declares: {', '.join(spec)}. Papermill only warns about unknown names; this report stops "
            "so a typo cannot silently fall back to a default.")


def check_values(values: dict, spec: dict, template: str, examples: bool = True) -> None:
    """Names must be declared and values of the declared JSON type; raises ParameterError listing all.

    ``examples`` adds how to pass each value on the command line (off for JSON requests)."""
    unknown = [n for n in values if n not in spec]
    if unknown:
        raise ParameterError(_unknown_message(unknown, spec, template))
    problems = []
    for name, value in values.items():
        annotation = spec[name].get("type")
        if not type_matches(value, allowed_types(annotation)):
            want = annotation or "a JSON value (text, number, true/false, null, list or mapping)"
            problems.append(f"'{name}' must be {want}, got {value!r} ({type(value).__name__})"
                            + (f"; for example {example_value(annotation, name)}" if examples else ""))
    if problems:
        raise ParameterError(f"Bad parameter value{'s' if len(problems) > 1 else ''} for template {template}: "
                             + "; ".join(problems) + ".")


def injected_names(namespace: dict) -> set[str] | None:
    """Names set by the parameters papermill injected in this kernel (its cell starts '# Parameters').

    Read from the kernel's input history, so names created later in an interactive session are
    never mistaken for parameters; None when there is no history to read.
    """
    history = namespace.get("In")
    if not isinstance(history, list):
        return None
    for source in reversed(history[:-1]):
        if isinstance(source, str) and source.lstrip().startswith("# Parameters"):
            try:
                tree = ast.parse(source)
            except SyntaxError:
                return set()
            return {t.id for node in tree.body if isinstance(node, ast.Assign)
                    for t in node.targets if isinstance(t, ast.Name)}
    return set()


def check_parameters(namespace: dict, template: str) -> dict:
    """Validate the notebook's parameters against the template's declaration; return ``{name: value}``.

    Call it in the cell right after the parameters cell: papermill only warns on unknown names and
    never checks types, so ``-p epoch 3`` or ``-p epochs three`` would otherwise run with defaults.
    """
    show_workbench_errors_as_one_line()
    spec = parameter_spec(template)
    injected = injected_names(namespace) or set()
    unknown = sorted(n for n in injected if n not in spec)
    if unknown:
        raise ParameterError(_unknown_message(unknown, spec, template))
    missing = [n for n in spec if n not in namespace]
    if missing:
        raise ParameterError(f"Parameters {', '.join(missing)} are not defined: run the parameters cell first.")
    values = {n: namespace[n] for n in spec}
    check_values(values, spec, template)
    return values


# parameters that always name a folder, made by the run if it is not there yet: read from the folder the
# notebook runs in, like any relative path (`workbench report -p runs_dir myruns` writes to ./myruns)
FOLDER_PARAMETERS = ("runs_dir",)


def rebase_local_paths(params: dict, rebase: Any, keep: Any = None) -> dict:
    """``params`` with each relative path passed through ``rebase`` (a function of the path as written):
    a string that names a file or folder that exists from the current folder (or a glob that matches
    one), as a whole value, a list item or a mapping's value at any depth (``runs``' run folders,
    ``config``'s ``data.test``), and a folder parameter (``runs_dir``) even before it exists. Absolute
    paths, ``~`` paths, run ids, bundled aliases (``minilm``, ``bbc-news``, read before any folder of
    that name) and text that names nothing here are kept; so is a path, other than a folder parameter's,
    for which ``keep(path)`` is true."""
    import glob
    import os

    from .data.loaders import ALIASES as DATA_ALIASES
    from .models import ALIASES as MODEL_ALIASES

    def local(text: str, folder: bool) -> bool:
        if not text or os.path.isabs(text) or text.startswith("~") or text in MODEL_ALIASES or text in DATA_ALIASES:
            return False
        if folder:
            return True
        return (os.path.exists(text) or bool(glob.glob(text))) and not (keep is not None and keep(text))

    def walk(value: Any, folder: bool = False) -> Any:
        if isinstance(value, str):
            return rebase(value) if local(value, folder) else value
        if isinstance(value, list):
            return [walk(v) for v in value]
        if isinstance(value, dict):
            return {k: walk(v) for k, v in value.items()}
        return value

    return {name: walk(value, name in FOLDER_PARAMETERS) for name, value in params.items()}


def show_workbench_errors_as_one_line() -> None:
    """From here on, a cell of this kernel that fails with a workbench error (``WorkbenchError``: a
    ``ConfigError``, ``DataError``, ``ModelError``, ...) shows its one-line message as its error output,
    as ``%%finetune`` does, not a traceback through workbench's own code: the message names the key,
    file or column and the fix, and report.html is read by people who never open the code. Any other
    exception keeps its traceback. ``check_parameters`` calls it, so every template does; it acts in a
    Jupyter kernel only (papermill's, JupyterLab's), and leaves alone a handler the notebook set itself
    (``set_custom_exc``)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if not _in_kernel(shell) or getattr(shell, "custom_exceptions", ()) not in ((), (WorkbenchError,)):
        return
    shell.set_custom_exc((WorkbenchError,), _one_line_error)


def _in_kernel(shell: Any) -> bool:
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _one_line_error(shell: Any, etype: type, value: BaseException, tb: Any, tb_offset: Any = None) -> list[str]:
    """IPython's custom exception handler: show the error as ``Name: message`` (no traceback). The
    kernel's error reply (ename, evalue, this one line) is what papermill and nbconvert keep."""
    stb = [f"{etype.__name__}: {value}"]
    shell._showtraceback(etype, value, stb)
    return stb


def changed_parameters(params: dict, template: str) -> dict:
    """The parameters that differ from the template's defaults (what a reproduce command needs)."""
    spec = parameter_spec(template)
    return {k: v for k, v in params.items() if k not in spec or spec[k]["value"] != v}


# ---- small display helpers -----------------------------------------------------------------------

def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def show_html(text: str) -> None:
    from IPython.display import HTML, display

    display(HTML(text))


def show_png(png: bytes, alt: str) -> None:
    """A chart as a plain PNG output; ``alt`` describes it for readers who cannot see it."""
    from IPython.display import display

    from .ui.live import png_image

    display(png_image(png, alt))


# ---- the question and the data -------------------------------------------------------------------

def show_question(question: str, cfg: Any) -> None:
    data = cfg.data.train if isinstance(cfg.data.train, str) else "in-memory data"
    problem = (cfg.task_options or {}).get("problem") if cfg.task == "text-classification" else None
    note = {
        "multi-label": "Each text may carry several labels (task_options.problem: multi-label): scores are over "
                       "labels, and the floor is the label prior rather than the most common class.",
        "regression": "Each text gets a number (task_options.problem: regression): scores are errors (mse, rmse, "
                      "mae; lower is better) and Pearson's r, the floor is the training mean, and the per-class "
                      "tables and confusion matrix do not apply.",
    }.get(problem or "")
    show_html(f"<blockquote style='font-size:110%'>{esc(question)}</blockquote>"
              f"<p>Task <b>{esc(cfg.task)}</b>, base model <code>{esc(cfg.model)}</code>, "
              f"data <code>{esc(data)}</code>.</p>" + (f"<p>{esc(note)}</p>" if note else ""))


def _token_lengths(cfg: Any, frame: Any, tokenizer: Any) -> list[int]:
    d = cfg.data
    if cfg.task == "token-classification":
        words = [list(w) for w in frame[d.tokens_column]]
        enc = tokenizer(words, is_split_into_words=True, truncation=False, verbose=False)
    elif cfg.task == "causal-lm" and d.prompt_column in frame.columns and d.response_column in frame.columns:
        texts = (frame[d.prompt_column].astype(str) + frame[d.response_column].astype(str)).tolist()
        enc = tokenizer(texts, truncation=False, verbose=False)
    else:
        enc = tokenizer(frame[d.text_column].astype(str).tolist(), truncation=False, verbose=False)
    return [len(x) for x in enc["input_ids"]]


def _summary_stats(values: list[float]) -> list[Any]:
    import numpy as np

    v = np.asarray(values, dtype=float)
    if not v.size:
        return [0, None, None, None, None, None]
    return [int(v.size), float(v.mean()), float(v.std()), float(v.min()), float(np.median(v)), float(v.max())]


def _class_counts(cfg: Any, frame: Any) -> dict[str, int] | None:
    d = cfg.data
    if cfg.task == "text-classification" and d.label_column in frame.columns:
        counts: dict[str, int] = {}
        for v in frame[d.label_column]:
            for label in (v if isinstance(v, (list, tuple)) else [v]):
                counts[str(label)] = counts.get(str(label), 0) + 1
        return counts
    if cfg.task == "token-classification" and d.tags_column in frame.columns:
        counts = {}
        for tags in frame[d.tags_column]:
            for tag in tags:
                tag = str(tag)
                if tag != "O":
                    kind = tag.split("-", 1)[-1]
                    counts[kind] = counts.get(kind, 0) + 1
        return counts
    return None


def data_summary(cfg: Any) -> dict:
    """Load the data exactly as the run will, and show sizes, classes, lengths, truncation and leakage.

    Returns the figures shown (sizes, per-split counts, length statistics, warnings).
    """
    from . import tasks
    from .models import load_tokenizer
    from .plots import distribution_png, length_histogram_png

    task = tasks.get(cfg.task)(cfg)
    splits = task.load_data()
    tokenizer = load_tokenizer(cfg)
    task.tokenize(splits, tokenizer)  # the engine's own truncation figures, per split
    lengths = {name: _token_lengths(cfg, frame, tokenizer) for name, frame in splits.items()}
    regression = getattr(task, "options", {}).get("problem") == "regression"
    counts = {} if regression else {name: _class_counts(cfg, frame) for name, frame in splits.items()}
    report = splits.report
    rows = []
    for name, frame in splits.items():
        rep = task.length_report.get(name, {})
        cut = rep.get("truncated", 0)
        trunc = "packed into blocks (nothing cut)" if rep.get("packed") else \
            f"{cut} ({rep.get('truncated_fraction', 0):.1%})"
        rows.append([name, len(frame), rep.get("tokens_before", sum(lengths[name])),
                     f"{rep.get('length_mean', 0.0):.1f}", int(rep.get("length_p90", 0)), rep.get("length_max", 0),
                     trunc, (report.get("sources") or {}).get(name) or report.get(f"{name}_from", "split off train")])
    show_html(table_html(["split", "examples", "tokens", "mean length", "p90 length", "longest",
                          f"cut at max_length {cfg.train.max_length}", "from"], rows))
    if regression:  # a number per text: its spread per split, not a count per value
        from .plots import value_histogram_png

        values = {name: [float(v) for v in frame[cfg.data.label_column]] for name, frame in splits.items()}
        stats = [[name] + _summary_stats(v) for name, v in values.items()]
        show_html(table_html(["split", "examples", "mean", "std", "min", "median", "max"], stats))
        show_png(value_histogram_png(values, f"target ({cfg.data.label_column})"),
                 f"histogram of the target '{cfg.data.label_column}' per split")
    if any(counts.values()):
        what = "entity-tagged word" if cfg.task == "token-classification" else "label"
        labels = sorted({k for c in counts.values() if c for k in c}, key=str)
        show_html(table_html([what] + [n for n, c in counts.items() if c],
                             [[k] + [c.get(k, 0) for c in counts.values() if c] for k in labels]))
        show_png(distribution_png({n: c for n, c in counts.items() if c}, what), f"share of each {what} per split")
    show_png(length_histogram_png(lengths, cfg.train.max_length),
             f"histogram of example lengths in tokens per split; max_length {cfg.train.max_length}")
    # invalid tag sequences are about the annotation, not duplicates or leakage: a heading of their own
    sequences = _tag_sequence_notes(report)
    findings = [w for w in report.get("warnings") or [] if w not in sequences]
    for key, n in (report.get("dropped") or {}).items():
        if n:
            findings.append(f"{n} rows dropped ({key.replace('_', ' ')})")
    shared = _shared_with_train(splits, cfg.data.text_column)
    if findings:
        show_html("<p><b>Duplicates and leakage found:</b></p><ul>"
                  + "".join(f"<li>{esc(f)}</li>" for f in findings) + "</ul>"
                  + ("<p>No validation or test text also occurs in train.</p>" if shared == 0 else ""))
    else:
        show_html("<p><b>Duplicates and leakage:</b> no exact duplicate texts inside a split, and no "
                  "validation or test text that also occurs in train.</p>")
    # blank lines only separate the documents of a text file: a note, not a finding
    blank = [f"{n} in {key}" for key, n in (report.get("blank_lines_skipped") or {}).items() if n]
    if blank:
        show_html(f"<p>Blank lines skipped (they separate text, they are not documents): {esc(', '.join(blank))}.</p>")
        findings += [f"{n} blank lines skipped in {key}" for key, n in report["blank_lines_skipped"].items() if n]
    if sequences:
        show_html(f"<p><b>Tag sequences invalid in {esc(report.get('scheme') or 'the tag scheme')}:</b></p><ul>"
                  + "".join(f"<li>{esc(w)}</li>" for w in sequences) + "</ul>")
        findings += sequences
    return {"sizes": {n: len(f) for n, f in splits.items()}, "counts": counts, "lengths": task.length_report,
            "warnings": findings}


def _tag_sequence_notes(report: dict) -> list[str]:
    """The warnings of the token-classification task about sentences whose tags break the scheme (one
    per split, counted in ``invalid_tag_sequences``)."""
    found = report.get("invalid_tag_sequences") or {}
    from .tasks.token_classification import invalid_sequences_head

    heads = tuple(invalid_sequences_head(name, n.get("sentences")) for name, n in found.items() if isinstance(n, dict))
    return [w for w in report.get("warnings") or [] if heads and str(w).startswith(heads)]


def _shared_with_train(splits: Any, column: str) -> int | None:
    """How many validation and test texts (as they will be scored) also occur in train; None if not text data."""
    if column not in splits.train.columns:
        return None

    def key(v: Any) -> str:  # the data checks' own notion of "the same text": whitespace and case ignored
        return " ".join(str(v).split()).lower()

    train = set(splits.train[column].map(key))
    return sum(int(f[column].map(key).isin(train).sum()) for f in (splits.validation, splits.test))


def command_html(command: str) -> str:
    """A shell command to copy, as a block whose lines break between its words. JupyterLab's output style
    breaks a <pre> anywhere (``word-break: break-all``), and a browser's own rule breaks after any hyphen,
    both of which split a path or an option on screen; each word is an inline block, so lines break at
    the spaces, and only a word longer than the whole line wraps inside."""
    import shlex

    word = "<span style='display: inline-block; max-width: 100%; overflow-wrap: anywhere'>{}</span>"
    return f"<pre>{' '.join(word.format(esc(shlex.quote(w))) for w in shlex.split(command))}</pre>"


def show_config(cfg: Any) -> None:
    """What differs from the defaults, the whole resolved config (folded), and the same run as a CLI line."""
    changed = [[k, v if isinstance(v, str) else json.dumps(v, default=str)] for k, v in cfg.diff().items()]
    from .engine.run import local_paths_absolute

    # the notebook's local files by absolute path, as the run's config.yaml names them: a terminal may
    # be in another folder
    command = local_paths_absolute(cfg).to_cli() if not cfg.in_memory_data() else ""
    show_html("<p>Settings that differ from the defaults:</p>" + table_html(["config key", "value"], changed, left=True)
              + f"<details><summary>The whole resolved config</summary><pre>{esc(cfg.to_yaml())}</pre></details>"
              + (f"<p>The same run from a terminal:</p>{command_html(command)}" if not cfg.in_memory_data()
                 else "<p>Its data are a table made in this notebook, so the run has no terminal equivalent; "
                      "the notebook is the recipe.</p>"))


# ---- training ------------------------------------------------------------------------------------

def mark_run(run_dir: RunDir, role: str = "primary") -> None:
    """A hidden output naming the run directory, so ``workbench report`` knows where the report belongs."""
    from IPython.display import display

    display({RUN_MIMETYPE: {"run_id": run_dir.id, "run_dir": str(Path(run_dir.path).resolve()), "role": role}},
            raw=True)


def train(cfg: Any, role: str = "primary") -> Any:
    """Fine-tune ``cfg`` with live progress in this cell; the run directory is marked before training,
    so a failed run still gets its report. Returns the finished :class:`workbench.api.Run`."""
    from .api import Run
    from .engine.run import execute, preflight
    from .ui.live import NotebookProgress

    cfg = preflight(cfg)  # a mistake found without the data stops here, before a run folder is made
    run_dir = RunDir.create(cfg.runs_dir, cfg.name, cfg.task)
    mark_run(run_dir, role)
    execute(cfg, sinks=[NotebookProgress()], run_dir=run_dir)
    run = Run(run_dir)
    if run.status != "completed":
        raise ConfigError(f"run {run.id} ended {run.status}: {run.info.get('error') or 'no error recorded'}")
    return run


def history(run: Any) -> list[dict]:
    return run.run_dir.read_metrics(0)[0]


def show_curves(runs: dict[str, Any]) -> None:
    """Training loss and validation metrics against steps, one line per run."""
    from .plots import curves_png

    show_png(curves_png({name: history(run) for name, run in runs.items()}),
             "training loss and validation metrics against steps for " + ", ".join(runs))


# ---- results -------------------------------------------------------------------------------------

def show_results(run: Any, starting_model: str = "base model") -> dict:
    """Test metrics of the fine-tuned model against the base-model baseline, with deltas.

    ``starting_model`` names the weights the run started from where they are not the base model
    (the domain-adaptation report's classifier starts from the adapted encoder, and so does its
    baseline).
    """
    ev = run.evaluation
    if not ev:
        raise ConfigError(f"run {run.id} has no eval.json; it did not finish ({run.status}).")
    main = ev.get("main_metric")
    better = "higher" if ev.get("greater_is_better", True) else "lower"
    method = (ev.get("baseline_method") or "none").replace("base model", starting_model) \
        .replace("base encoder", starting_model)
    show_html(f"<p>Test split: {esc(test_size_text(ev))}. Main metric <b>{esc(main)}</b> "
              f"({better} is better). Baseline: {esc(method)}.</p>"
              + metrics_table_html(ev))
    others = ev.get("baselines") or {}
    if len(others) > 1 or (others and main not in ev.get("baseline", {})):
        rows = [[name.replace("_", " "), m.get(main), (ev["finetuned"].get(main) - m[main])
                 if isinstance(m.get(main), (int, float)) and isinstance(ev["finetuned"].get(main), (int, float))
                 else None] for name, m in others.items()]
        show_html("<p>Every baseline on the same test split:</p>"
                  + table_html(["baseline", main, "fine-tuned minus baseline"],
                               [[r[0], r[1], fmt_delta(r[2])] for r in rows]))
    return ev


def _report_rows(report: dict, base: dict | None) -> list[list[Any]]:
    rows = []
    for name, m in report.items():
        if not isinstance(m, dict) or name in ("accuracy",):
            continue
        b = (base or {}).get(name) or {}
        f1 = m.get("f1-score", m.get("f1"))
        bf1 = b.get("f1-score", b.get("f1"))
        support = m.get("support", m.get("number"))
        rows.append([name, m.get("precision"), m.get("recall"), f1, bf1,
                     fmt_delta(f1 - bf1) if isinstance(f1, (int, float)) and isinstance(bf1, (int, float)) else "",
                     int(support) if isinstance(support, (int, float)) else support])
    return rows


def show_details(run: Any, max_examples: int = 8, baseline: str = "base model") -> None:
    """Per-class (or per-entity) table, confusion matrix, and test examples where the models disagree.

    ``baseline`` names the baseline's model where it is not the base model (see ``show_results``)."""
    ev = run.evaluation
    tables = ev.get("per_class") or ev.get("per_entity") or {}
    if tables.get("finetuned"):
        what = "entity type" if run.info.get("task") == "token-classification" else "class"
        show_html(f"<h4>Per {what}</h4>" + table_html(
            [what, "precision", "recall", "F1", "baseline F1", "F1 delta", "support"],
            _report_rows(tables["finetuned"], tables.get("baseline"))))
    if ev.get("confusion_matrix"):
        from .plots import confusion_png

        show_html("<h4>Confusion matrix (test split)</h4>")
        show_png(confusion_png(ev, with_baseline="baseline" in ev["confusion_matrix"]),
                 f"confusion matrices of the fine-tuned model and the {baseline} on the test split")
    examples = (ev.get("examples") or [])[:max_examples]
    if examples:
        keys = [k for k in examples[0] if k not in ("finetuned", "baseline")]
        header = [k.replace("_", " ") for k in keys] + ["fine-tuned model", baseline]
        rows = [[_short(ex.get(k)) for k in keys] + [_short(ex.get("finetuned")), _short(ex.get("baseline"))]
                for ex in examples]
        show_html(f"<h4>Test examples where the fine-tuned model and the {esc(baseline)} disagree</h4>"
                  + table_html(header, rows))
    elif ev:
        show_html(f"<p>The fine-tuned model and the {esc(baseline)} agree on every test example shown.</p>")


def _short(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        value = "; ".join(map(str, value)) or "(none)"
    if isinstance(value, str) and len(value) > EXAMPLE_TEXT_CHARS:
        return value[:EXAMPLE_TEXT_CHARS] + "…"
    return value


# ---- reproducibility -----------------------------------------------------------------------------

def _file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def reproduce_commands(template: str, params: dict) -> dict[str, str]:
    """The exact commands that re-run this report: workbench, plain papermill."""
    import os

    # local files and folders by absolute path (the report's folder, the kernel's, is where they were read
    # from), as the "same run from a terminal" line names them: the commands work from any folder
    changed = rebase_local_paths(changed_parameters(params, template), os.path.abspath)
    path = template_path(template).resolve()
    try:
        shown = str(path.relative_to(Path.cwd().resolve()))
    except ValueError:  # an installed template: its full path
        shown = str(path)
    wb = ["workbench", "report", path.stem]
    pm = ["papermill", shown, "report.ipynb", "-k", "python3"]
    for k, v in changed.items():
        text = v if isinstance(v, str) else json.dumps(v)
        wb += ["-p", k, text]
        pm += (["-r", k, v] if isinstance(v, str) else ["-y", f"{k}: {json.dumps(v)}"])
    return {"workbench": shlex.join(wb), "papermill": shlex.join(pm)}


def _hardware_text(hw: Any) -> str:
    if isinstance(hw, dict):
        return ", ".join(f"{k} {v}" for k, v in hw.items() if v not in (None, "", [], {}))
    return "" if hw is None else str(hw)


def show_reproducibility(runs: dict[str, Any], template: str, params: dict) -> dict:
    """Config hash, data fingerprint, seed, versions, hardware, git commit, and the command to re-run."""
    facts: list[tuple[str, Any]] = [
        ("run directory", lambda run, info: str(run.dir)),
        ("config hash", lambda run, info: info.get("config_hash")),
        ("data fingerprint", lambda run, info: info.get("data_fingerprint")),
        ("seed", lambda run, info: run.config.train.seed),
        ("device, precision", lambda run, info: f"{info.get('device', '?')}, {info.get('precision', '?')}"),
        ("hardware", lambda run, info: _hardware_text(info.get("hardware"))),
        ("git commit", lambda run, info: info.get("git_commit") or "(not in a git repository)"),
        ("status", lambda run, info: info.get("status")),
    ]
    infos = {label: run.info for label, run in runs.items()}
    rows = [[what] + [get(run, infos[label]) for label, run in runs.items()] for what, get in facts]
    versions = {}
    for run in runs.values():
        versions.update(run.info.get("versions") or {})
    path = template_path(template)
    cmds = reproduce_commands(template, params)
    show_html(table_html([""] + list(runs), rows, left=True)
              + "<p>Package versions: " + ", ".join(f"{esc(k)} {esc(v)}" for k, v in sorted(versions.items()))
              + f"</p><p>Template <code>{esc(path.name)}</code> (sha256 {esc(_file_sha256(path))}).</p>"
              + f"<p>Re-run this report:</p>{command_html(cmds['workbench'])}"
              + f"<p>or with papermill alone:</p>{command_html(cmds['papermill'])}"
              + "<p>Re-train a run from its saved config:</p>"
              + "".join(command_html(shlex.join(['workbench', 'train', str(run.dir / 'config.yaml')]))
                        if not _in_memory(run) else
                        f"<p>{esc(label)}: trained on data held in the notebook, so its config.yaml names no "
                        "file to train from again; re-run this report instead.</p>"
                        for label, run in runs.items()))
    return {"commands": cmds, "versions": versions}


def _in_memory(run: Any) -> bool:
    """Whether the run trained on a DataFrame or Dataset (config.yaml holds a stand-in, not a path)."""
    data = run.config.data
    return any(is_stand_in(v) for v in (data.train, data.validation, data.test))


# ---- comparing runs ------------------------------------------------------------------------------

def load_runs(refs: list, latest: int, runs_dir: str | None = None) -> dict[str, Any]:
    """Runs by id or directory, or the ``latest`` newest completed runs under ``runs_dir`` (None:
    ``$WORKBENCH_RUNS_DIR``, else runs/); keyed by a short label."""
    from .api import Run
    from .runs import default_runs_dir, find_run, list_runs

    runs_dir = str(runs_dir or default_runs_dir())

    if refs:
        found = [Run(find_run(str(r), runs_dir)) for r in refs]
    else:
        rows = [r for r in list_runs(runs_dir) if r.get("status") == "completed"][:latest]
        if not rows:
            raise ConfigError(f"No completed runs under {runs_dir}. Train some first (`workbench demo`, "
                              "`workbench report text_classification`), or pass -p runs_dir DIR.")
        found = [Run(Path(r["path"])) for r in rows]
    out: dict[str, Any] = {}
    for run in found:
        label = str(run.info.get("name") or run.id)
        out[label if label not in out else run.id] = run
    return out


def show_comparison(runs: dict[str, Any]) -> list[list[Any]]:
    """One row per run: status, main metric of the fine-tuned model, its baseline and the delta."""
    rows = []
    for label, run in runs.items():
        info, ev = run.info, run.evaluation
        main = ev.get("main_metric") or info.get("main_metric")
        value = (ev.get("finetuned") or {}).get(main)
        base = (ev.get("baseline") or {}).get(main)
        delta = value - base if isinstance(value, (int, float)) and isinstance(base, (int, float)) else None
        rows.append([label, info.get("task"), info.get("model"), info.get("status"), main, value, base,
                     fmt_delta(delta), test_size_text(ev) if ev else None, fmt_seconds(info.get("train_seconds")),
                     fmt_parameters(info.get("parameters"))])
    # trainable parameters: what sets LoRA and frozen runs apart from full fine-tuning, and their cost
    show_html(table_html(["run", "task", "model", "status", "main metric", "fine-tuned", "baseline", "delta",
                          "test split", "training s", "trainable parameters"], rows))
    tasks = [run.info.get("task") for run in runs.values()]
    metrics = metric_rows([(t, run.evaluation) for t, run in zip(tasks, runs.values())])
    if metrics:
        show_html("<p>Every test metric of the fine-tuned models" + (", per task:" if len(set(tasks)) > 1 else ":")
                  + "</p>" + table_html(["metric"] + list(runs), [
                      [label] + [(run.evaluation.get("finetuned") or {}).get(k) if t == task else None
                                 for t, run in zip(tasks, runs.values())] for label, k, task in metrics]))
    return rows


def config_diff(runs: dict[str, Any]) -> dict[str, list]:
    """``{dotted key: [value per run]}`` for the config keys on which the runs differ (a setting that a
    run does not use, such as lora.r with LoRA off, is no difference there)."""
    return _config_diff(runs)[0]


def _config_diff(runs: dict[str, Any]) -> tuple[dict[str, list], dict[str, list]]:
    """The differing settings, and per setting why each run does not use it (None where it does)."""
    from .render import setting_differences

    return setting_differences([run.run_dir for run in runs.values()], absent="(absent)")


def show_config_diff(runs: dict[str, Any]) -> dict[str, list]:
    from .render import fmt_setting_values

    diff, unused = _config_diff(runs)
    if not diff:
        show_html("<p>The runs share one configuration.</p>")
        return diff
    labels = list(runs)
    rows = [[k] + ["not used" if why else text for text, why in zip(fmt_setting_values(values), unused[k])]
            for k, values in diff.items()]
    notes = [f"{k} in {', '.join(lab for lab, why in zip(labels, whys) if why)}: "
             f"{next(why for why in whys if why)}" for k, whys in unused.items() if any(whys)]
    show_html(table_html(["config key"] + labels, rows, left=True)
              + (f"<p>Not used by a run, so no difference there: {esc('; '.join(notes))}.</p>" if notes else ""))
    return diff


# ---- domain adaptation ---------------------------------------------------------------------------

def domain_corpus(clf_cfg: Any, domain_text: str | None) -> Any:
    """Unlabeled text for masked-LM adaptation, with no text of the classifier's evaluation splits.

    ``None`` takes the texts of the classification training split. Given domain text, any text
    that is also in the classification validation or test split is removed (and counted): an
    encoder that has read the test texts would make the comparison look better than it is.
    """
    import pandas as pd

    from . import tasks
    from .config import resolve

    col = clf_cfg.data.text_column
    splits = tasks.get(clf_cfg.task)(clf_cfg).load_data()
    if domain_text is None:
        corpus = pd.DataFrame({col: splits.train[col].astype(str).tolist()})
        show_html(f"<p>Domain text: the {len(corpus)} texts of the classification training split "
                  "(labels unused; no validation or test text).</p>")
        return corpus
    mlm = resolve(inline={"task": "masked-lm", "model": clf_cfg.model,
                          "data": {"train": domain_text, "text_column": col}})
    task = tasks.get("masked-lm")(mlm)
    frame = task.load_data()
    texts = [t for _, f in frame.items() for t in f[col].astype(str)]
    held_out = {t.strip() for _, f in (("validation", splits.validation), ("test", splits.test))
                for t in f[col].astype(str)}
    kept = [t for t in texts if t.strip() not in held_out]
    removed = len(texts) - len(kept)
    show_html(f"<p>Domain text: {len(kept)} texts from <code>{esc(domain_text)}</code>"
              + (f"; <b>{removed} texts that also occur in the classification validation or test split were "
                 "removed</b> so the adapted encoder never reads them" if removed else
                 "; none of them occurs in the classification validation or test split") + ".</p>")
    return pd.DataFrame({col: kept})


def show_adaptation(mlm_run: Any, adapted: Any, base: Any) -> list[list[Any]]:
    """Base and adapted encoder, each as a frozen probe and fine-tuned, on the same classification test split."""
    mlm_ev, a_ev, b_ev = mlm_run.evaluation, adapted.evaluation, base.evaluation
    main = b_ev.get("main_metric", "accuracy")
    ref = (b_ev.get("finetuned") or {}).get(main)

    def row(label: str, value: Any) -> list[Any]:
        delta = value - ref if isinstance(value, (int, float)) and isinstance(ref, (int, float)) else None
        return [label, value, fmt_delta(delta)]

    rows = [row("base encoder, frozen, linear probe", (b_ev.get("baseline") or {}).get(main)),
            row("adapted encoder, frozen, linear probe", (a_ev.get("baseline") or {}).get(main)),
            row("base encoder, fine-tuned", ref),
            row("adapted encoder, fine-tuned", (a_ev.get("finetuned") or {}).get(main))]
    same = b_ev.get("num_examples") == a_ev.get("num_examples")
    show_html(f"<p>Classification on the same test split ({esc(b_ev.get('num_examples'))} texts"
              + ("" if same else f" and {esc(a_ev.get('num_examples'))}: the splits differ, compare with care")
              + f"); delta against the fine-tuned base encoder.</p>"
              + table_html(["model", main, "delta"], rows))
    ppl_main = mlm_ev.get("main_metric", "perplexity")
    show_html(f"<p>Masked-LM {esc(ppl_main)} on held-out domain text ({esc(test_size_text(mlm_ev))}), "
              f"lower is better. Baseline: {esc(mlm_ev.get('baseline_method') or 'the base model')}.</p>"
              + metrics_table_html(mlm_ev))
    return rows
