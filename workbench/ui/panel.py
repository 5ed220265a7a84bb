"""The control panel: a form generated from the RunConfig schema, with Start, Stop and "copy as code".

``Panel()`` (also ``workbench.panel()``) shows the main settings (task, model, data and its
columns, the main hyperparameters) and folds every other config field away under "Advanced
options"; each field's help text is its tooltip. The form's values go through the same
``resolve()`` as the magic and the CLI, so "Show as %%finetune" and "Show as CLI" print a run that
is identical to the one Start trains.

Start trains on a thread (``BackgroundRun``): the notebook stays responsive, Stop ends the run at
the next step with a resumable checkpoint, and the live view (progress, ETA, loss and metric
curves, learning rate, throughput, then the baseline comparison and confusion matrix) is drawn
by setting widget traits from that thread.
"""

from __future__ import annotations

import os
import types
import typing
from pathlib import Path
from typing import Any, Callable

import yaml

from ..config import RunConfig, flatten, resolve, schema
from ..errors import ConfigError, WorkbenchError
from ..render import MUTED
from ..runs import RunDir, default_runs_dir
from .compare import RunComparison
from .live import esc

MAIN_FIELDS = ("task", "model", "data.train", "data.text_column", "data.label_column", "name", "train.epochs",
               "train.learning_rate", "train.batch_size", "train.max_length")
SECTIONS = (("Data", "data."), ("Training", "train."), ("LoRA / PEFT", "lora."), ("Run", ""))
DATA_FIELDS = ("data.train", "data.validation", "data.test")
COLUMN_FIELDS = ("data.text_column", "data.label_column", "data.tokens_column", "data.tags_column",
                 "data.prompt_column", "data.response_column")
COLUMN_GUESSES = {
    "data.text_column": ("text", "sentence", "content", "review", "document", "body", "input"),
    "data.label_column": ("label", "labels", "category", "class", "target", "topic", "y"),
    "data.tokens_column": ("tokens", "words"),
    "data.tags_column": ("tags", "ner_tags", "labels"),
    "data.prompt_column": ("prompt", "instruction", "question", "input"),
    "data.response_column": ("response", "output", "answer", "completion"),
}
LABEL_WIDTH = "130px"


def _kind(tp: Any) -> tuple[str, bool]:
    """('bool'|'int'|'float'|'str'|'list'|'dict'|'any', optional) for a field annotation."""
    optional = False
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        optional = len(args) < len(typing.get_args(tp))
        tp = args[0] if len(args) == 1 else Any
    if tp is list or typing.get_origin(tp) is list:
        return "list", optional
    if tp is dict or typing.get_origin(tp) is dict:
        return "dict", optional
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(tp, "any"), optional


class Field:
    """One config field as a widget, converting between the widget's value and the config's."""

    def __init__(self, spec: dict, namespace: dict):
        import ipywidgets as w

        self.key = spec["key"]
        self.default = spec["default"]
        self.kind, self.optional = _kind(spec["type"])
        self.optional = self.optional or self.default is None
        label = self.key.split(".", 1)[-1].replace("_", " ") + (" data" if self.key in DATA_FIELDS else "")
        # width auto and min_width 0: the input fills its grid cell, margins included, however narrow the cell
        common = dict(description=label, tooltip=spec["help"], style={"description_width": LABEL_WIDTH},
                      layout=w.Layout(width="auto", min_width="0"))
        self.mode = "text"  # the widget holds text that get() converts; else it holds the value itself
        if spec.get("choices"):
            self.widget, self.mode = w.Dropdown(options=list(spec["choices"]), **common), "value"
        elif self.kind == "bool":
            self.widget, self.mode = w.Checkbox(indent=False, description=label, tooltip=spec["help"]), "value"
        elif self.kind == "int" and not self.optional:
            self.widget, self.mode = w.IntText(**common), "value"
        elif self.kind == "float" and not self.optional:
            self.widget, self.mode = w.FloatText(**common), "value"
        elif self.key in DATA_FIELDS or self.key in COLUMN_FIELDS or self.key == "model":
            self.widget = w.Combobox(options=self._suggestions(namespace), ensure_option=False,
                                     continuous_update=False, **common)
        else:
            self.widget = w.Text(continuous_update=False, **common)
        if self.mode == "text" and self.optional:
            self.widget.placeholder = "none"
        self.set(self.default)

    def _suggestions(self, namespace: dict) -> list[str]:
        if self.key == "model":
            return ["minilm"]
        if self.key in DATA_FIELDS:
            return (["bbc-news"] if self.key == "data.train" else []) + data_variables(namespace)
        return []

    def set(self, value: Any) -> None:
        if self.mode == "value":
            from traitlets import TraitError

            try:
                self.widget.value = value
            except TraitError:  # the widget's own type check: say it in config terms
                want = {"bool": "true or false", "int": "an integer", "float": "a number"}.get(self.kind, self.kind)
                choices = getattr(self.widget, "options", None)
                if choices:
                    want = "one of " + ", ".join(map(str, choices))
                raise WorkbenchError(f"{self.key}: expected {want}, got {value!r}.") from None
        elif value is None:
            self.widget.value = ""
        elif isinstance(value, list):
            self.widget.value = ", ".join(map(str, value))
        elif isinstance(value, dict):
            self.widget.value = yaml.safe_dump(value, default_flow_style=True).strip() if value else ""
        elif isinstance(value, (str, int, float)):
            self.widget.value = str(value)
        else:
            raise WorkbenchError(f"{self.key}: the panel takes a path or a $variable here, not a "
                                 f"{type(value).__name__}; put the object in a variable and write $name.")

    def get(self) -> Any:
        """The field's value as the config takes it (text fields: empty is none, numbers parsed, a list
        as ``a, b`` or in YAML as ``[a, b]``)."""
        if self.mode == "value":
            return self.widget.value
        text = self.widget.value.strip()
        if not text:
            return None if self.optional else ({} if self.kind == "dict" else "")
        if self.kind == "list":
            return self._list(text)
        if self.kind in ("int", "float", "dict"):
            try:
                return yaml.safe_load(text)
            except yaml.YAMLError:
                return text  # resolve() names the field and what it expected
        return text

    def _list(self, text: str) -> Any:
        """``a, b`` as written (resolve() splits it at the commas), or ``[a, b]`` read as YAML, as a
        config file writes a list."""
        if not text.startswith("["):
            return text
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{self.key}: expected a list of names, as a, b or [a, b]; got {text!r}.")
        return value


def data_variables(namespace: dict) -> list[str]:
    """``$name`` for each pandas DataFrame or datasets.Dataset in the notebook namespace."""
    names = []
    for name, obj in list(namespace.items()):
        if name.startswith("_"):
            continue
        kind = type(obj)
        if (kind.__name__ == "DataFrame" and kind.__module__.startswith("pandas")) or \
                (kind.__name__ == "Dataset" and kind.__module__.startswith("datasets")):
            names.append("$" + name)
    return sorted(names)


def data_columns(ref: Any, namespace: dict) -> list[str]:
    """Column names of a data reference (``$variable``, alias, file, folder); raises WorkbenchError."""
    from ..data import load_frame
    from ..errors import ConfigError

    if isinstance(ref, str) and ref.startswith("$"):
        name = ref[1:].strip("{}")
        if name not in namespace:
            raise ConfigError(f"data.train: no variable named '{name}' in the notebook namespace.")
        ref = namespace[name]
    if hasattr(ref, "column_names"):
        return [str(c) for c in ref.column_names]
    if hasattr(ref, "columns"):
        return [str(c) for c in ref.columns]
    return [str(c) for c in load_frame(ref, "data.train").columns]


class Panel:
    """An ipywidgets control panel for one fine-tuning run at a time, plus a comparison of past runs.

    ``config`` pre-fills the form (a dict, YAML text, a path or a RunConfig); ``namespace`` is where
    ``$name`` data references are looked up (default: the notebook's variables).
    """

    def __init__(self, config: Any = None, runs_dir: str | Path | None = None, namespace: dict | None = None):
        import ipywidgets as w

        self.namespace = namespace if namespace is not None else _notebook_namespace()
        self.fields: dict[str, Field] = {s["key"]: Field(s, self.namespace) for s in schema()}
        if config is not None:
            self.load(config)
        if runs_dir is None and os.environ.get("WORKBENCH_RUNS_DIR") \
                and self.fields["runs_dir"].get() == RunConfig.runs_dir:
            runs_dir = os.environ["WORKBENCH_RUNS_DIR"]  # where training puts runs (as resolve() does), not ./runs
        if runs_dir is not None:
            self.fields["runs_dir"].set(str(runs_dir))
        self.job: Any = None
        self.view: Any = None
        self._columns_for: Any = object()

        main = w.GridBox([self.fields[k].widget for k in MAIN_FIELDS],
                         layout=w.Layout(grid_template_columns="repeat(auto-fit, minmax(max(260px, calc(50% - 16px)), 1fr))", grid_gap="4px 16px"))
        sections = []
        for _, prefix in SECTIONS:
            keys = [k for k in self.fields if k not in MAIN_FIELDS and (
                k.startswith(prefix) if prefix else "." not in k)]
            sections.append(w.GridBox([self.fields[k].widget for k in keys], layout=w.Layout(
                grid_template_columns="repeat(auto-fit, minmax(max(260px, calc(50% - 16px)), 1fr))", grid_gap="4px 16px")))
        self.advanced = w.Accordion(children=sections, titles=tuple(f"{t} options" for t, _ in SECTIONS),
                                    selected_index=None)
        self.start_button = w.Button(description="Start", icon="play", button_style="primary",
                                     tooltip="train with these settings (on a thread: the notebook stays usable)")
        self.stop_button = w.Button(description="Stop", icon="stop", button_style="danger", disabled=True,
                                    tooltip="end the run at the next step; it keeps a resumable checkpoint")
        # "Show", not "Copy": a widget's Python side cannot reach the browser's clipboard, so the text is
        # shown, selected for the user to copy
        self.magic_button = w.Button(description="Show as %%finetune", icon="code",
                                     tooltip="show this run as a %%finetune cell", layout=w.Layout(width="auto"))
        self.cli_button = w.Button(description="Show as CLI", icon="terminal",
                                   tooltip="show this run as a workbench command line", layout=w.Layout(width="auto"))
        self.status = w.HTML()
        self.code = w.Textarea(layout=w.Layout(width="100%", display="none"), rows=6)
        self.live = w.VBox()
        self.comparison = PanelComparison(self.runs_dir)
        self.past = w.Accordion(children=[self.comparison.box], titles=("Compare past runs",), selected_index=None)

        self.start_button.on_click(lambda _: self._guard(self.start))
        self.stop_button.on_click(lambda _: self.stop())
        self.magic_button.on_click(lambda _: self._guard(lambda: self._show_as(self.copy_magic)))
        self.cli_button.on_click(lambda _: self._guard(lambda: self._show_as(self.copy_cli)))
        self.fields["data.train"].widget.observe(lambda _: self._guard(self.fill_columns), names="value")
        self.fields["task"].widget.observe(lambda _: self._guard(self.fill_columns), names="value")
        self.fields["runs_dir"].widget.observe(lambda _: self._guard(self._follow_runs_dir), names="value")

        title = w.HTML(f"<b style='font-size:115%'>Fine-tune</b> <span style='color:{MUTED}'>· settings below go "
                       "through the same config as %%finetune and the CLI</span>")
        self.widget = w.VBox([title, main, self.advanced,
                              w.HBox([self.start_button, self.stop_button, self.magic_button, self.cli_button]),
                              self.status, self.code, self.live, self.past],
                             layout=w.Layout(max_width="900px"))
        self._guard(self.fill_columns)

    # ---- values -------------------------------------------------------------------------------
    def load(self, config: Any) -> None:
        """Fill the form from a config (dict, YAML text, path, RunConfig)."""
        cfg = config if isinstance(config, RunConfig) else resolve(inline=config)
        for key, value in flatten(cfg.to_dict(portable=False)).items():
            if key in self.fields:
                self.fields[key].set(value)

    def set(self, key: str, value: Any) -> None:
        if key not in self.fields:
            from ..config import _all_keys, _suggest

            raise WorkbenchError(f"Unknown config key '{key}'.{_suggest(key, _all_keys())}")
        self.fields[key].set(value)

    def values(self) -> dict:
        """The settings that differ from the defaults, as dotted keys (what the form says)."""
        return {key: f.get() for key, f in self.fields.items() if f.get() != f.default}

    def config(self, objects: bool = True) -> RunConfig:
        """The RunConfig the form describes, built by ``resolve()``; ``objects`` resolves $variables."""
        return resolve(overrides=self.values(), objects=self.namespace if objects else None)

    def runs_dir(self) -> Path:
        """The runs folder the form names, which the comparison lists (the default one while the field is
        empty, which Start refuses by name as it refuses an empty model)."""
        return Path(self.fields["runs_dir"].get() or default_runs_dir())

    def copy_magic(self) -> str:
        self.config()  # check it first: copying a broken config helps nobody
        return self.config(objects=False).to_magic()

    def copy_cli(self) -> str:
        cfg = self.config()
        reason = cfg.no_cli_reason()
        if reason is not None:
            raise WorkbenchError(f"No command line for this run: {reason}")
        return cfg.to_cli()

    # ---- actions ------------------------------------------------------------------------------
    def start(self, wait: bool = False, sinks: list | None = None) -> Any:
        """Train the form's config on a thread; ``wait`` blocks until it ends; ``sinks`` also get the
        run's events (on the training thread). Returns the run."""
        from .background import BackgroundRun
        from .widgets import WidgetProgress

        if self.job is not None and self.job.running and self.view is not None and self.view.state.done:
            # The run has sent its last event and is only closing its files: Start is enabled from that
            # event, so a quick click lands here. Let the thread finish rather than refuse.
            self.job.wait(timeout=30, raise_error=False)
        if self.job is not None and self.job.running:
            raise WorkbenchError(f"run {self.job.id} is still training; stop it or wait for it first.")
        self.live.children = []  # the last run's view goes, also when this start stops at the config
        cfg = self.config()
        self.view = WidgetProgress(confusion=True)
        self.live.children = [self.view.box]
        self.job = BackgroundRun(cfg, sinks=[self.view, *(sinks or []), self._on_event])
        self.start_button.disabled = True
        self.stop_button.disabled = False
        self.status.value = f"<span style='color:{MUTED}'>Run <b>{esc(self.job.id)}</b> started.</span>"
        self.job.start()
        if wait:
            self.job.wait(raise_error=False)
        return self.job

    def stop(self) -> None:
        if self.job is not None and self.job.running:
            self.job.stop()
            self.stop_button.disabled = True
            if self.view is not None and self.view.state.status == "pending":
                # still loading or waiting for another run of this kernel: it ends before its first step
                self.status.value = ("<span style='color:#d97706'>Stopping before training begins (there will be "
                                     "no checkpoint to resume from)…</span>")
            else:
                self.status.value = ("<span style='color:#d97706'>Stopping at the next step (a resumable "
                                     "checkpoint is kept)…</span>")

    def wait(self, timeout: float | None = None) -> Any:
        if self.job is not None:
            self.job.wait(timeout, raise_error=False)
        return self.job

    def _on_event(self, event: Any) -> None:
        """Runs on the training thread: widget traits only."""
        if not self.view.state.done:
            return
        self.start_button.disabled = False
        self.stop_button.disabled = True
        st = self.view.state
        msg = {"completed": "finished", "interrupted": self._stopped_text(st),
               "failed": "failed: " + (st.error or "")}.get(st.status, st.status)
        end = "" if msg.endswith((".", "!", "?")) else "."  # error messages end with their own full stop
        self.status.value = f"<span>Run <b>{esc(st.run_id or self.job.id)}</b> {esc(msg)}{end}</span>"
        self.comparison.refresh()

    def _stopped_text(self, st: Any) -> str:
        """How a stopped run goes on: train.resume_from where it kept a complete checkpoint (what resume
        needs); a run stopped before that has nothing to resume."""
        run_dir = RunDir(Path(st.run_dir)) if st.run_dir else self.job.run_dir
        if run_dir.complete_checkpoints():
            return "stopped; continue it with train.resume_from=" + (st.run_id or run_dir.id)
        when = "before training began" if not st.step else "before its first checkpoint"
        return f"stopped {when}, so there is nothing to resume; start it again"

    def _follow_runs_dir(self) -> None:
        if self.runs_dir() != self.comparison.runs_dir:
            self.comparison.refresh()

    def fill_columns(self) -> None:
        """Offer the data's columns in the column pickers, and pick likely ones where the current value is absent."""
        ref = self.fields["data.train"].get()
        if not ref or ref == self._columns_for:
            return
        self._columns_for = ref
        columns = data_columns(ref, self.namespace)
        for key in COLUMN_FIELDS:
            f = self.fields[key]
            f.widget.options = columns
            if f.get() not in columns:
                guess = next((c for name in COLUMN_GUESSES[key] for c in columns if c.lower() == name), None)
                if guess is not None:
                    f.set(guess)
        self.status.value = (f"<span style='color:{MUTED}'>Data columns: {esc(', '.join(columns[:20]))}"
                             f"{' …' if len(columns) > 20 else ''}</span>")

    def _guard(self, action: Any) -> None:
        """Run a button's action; a config or data mistake becomes a red line in the panel, not a traceback."""
        try:
            action()
        except WorkbenchError as e:
            self.status.value = f"<span style='color:#c62828'>{esc(e)}</span>"

    def _show_as(self, make: Callable[[], str]) -> None:
        """The text ``make`` writes in the box to copy from; where it refuses (a run on a DataFrame has
        no command line), the box is emptied, so no earlier text is copied in its place."""
        self.code.layout.display = "none"
        self.code.value = ""
        self._show_code(make())

    def _show_code(self, text: str) -> None:
        self.code.value = text.rstrip() + "\n"
        self.code.rows = min(24, text.count("\n") + 2)
        self.code.layout.display = ""
        self.status.value = (f"<span style='color:{MUTED}'>Select the text below and copy it (Ctrl+A, Ctrl+C in "
                             "the box).</span>")

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


class PanelComparison(RunComparison):
    """The panel's "Compare past runs": at each refresh it lists the folder that ``where()`` (the form's
    runs_dir) names now."""

    def __init__(self, where: Callable[[], Path], selected: int = 3):
        self.where = where
        super().__init__(where(), selected)

    def refresh(self, selected: int | None = None) -> None:
        where = self.where()
        if where != self.runs_dir:
            # another folder: its newest runs, not the runs picked by hand in the last one
            self.runs_dir, self._chosen = where, False
        super().refresh(selected)


def _notebook_namespace() -> dict:
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        return {}
    return shell.user_ns if shell is not None else {}
