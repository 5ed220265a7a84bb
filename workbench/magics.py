"""IPython magics: ``%%finetune``, ``%finetune_runs`` and ``%finetune_compare``.

``%load_ext workbench`` registers them. The cell body of ``%%finetune`` is YAML and goes through
``workbench.config.resolve`` like every other front end: defaults, then ``--config FILE``, then
the body, then ``key=value`` words on the magic line. ``data.train: $df`` names a DataFrame (or
datasets.Dataset) in the notebook. Mistakes (bad YAML, unknown keys, bad data) raise
``FinetuneError`` (a ``UsageError``) with one message: the notebook shows it without a traceback,
and papermill fails with that message.

The parsing half (``parse_line``, ``build_config``) needs no kernel and is tested on its own.
"""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from typing import Any, Iterator

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, line_magic, magics_class, no_var_expand
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .config import RunConfig, parse_override, resolve
from .errors import WorkbenchError

class FinetuneError(UsageError):
    """A mistake in a magic's line or cell, shown as the cell's error output: one line, ``ConfigError:
    ...`` or the like, no traceback. IPython prints a plain UsageError to stderr instead, so papermill
    and nbconvert keep no error output and papermill's exception says only which cell failed."""

    def __init__(self, message: str, kind: str = "UsageError"):
        super().__init__(message)
        self.kind = kind

    @classmethod
    def of(cls, error: WorkbenchError, message: str | None = None) -> "FinetuneError":
        return cls(message if message is not None else str(error), type(error).__name__)

    def _render_traceback_(self) -> list[str]:  # IPython's hook for an exception's own rendering
        return [f"{self.kind}: {self}"]


def _take_runs_dir(words: list[str]) -> str | None:
    """The folder after ``--dir`` (as the command line names it) or ``--runs-dir`` in a magic line's words,
    removed from them (None without one)."""
    flags = [w for w in words if w in ("--dir", "--runs-dir")]
    if not flags:
        return None
    if len(flags) > 1:
        raise FinetuneError(f"Give the runs folder once; the line has {' and '.join(flags)}.")
    i = words.index(flags[0])
    if i + 1 >= len(words) or words[i + 1].startswith("--"):
        raise FinetuneError(f"{flags[0]} needs a folder: {flags[0]} runs")
    root = words[i + 1]
    del words[i:i + 2]
    return root


BODY_HELP = """
The cell body is YAML with the same keys as a config file (`workbench config` lists them all):

    %%finetune --name news
    model: minilm
    data:
      train: bbc-news          # or a file path, or $df for a DataFrame in this notebook
    train:
      epochs: 1
      max_length: 128

Precedence: defaults < --config FILE < cell body < key=value words on the magic line.
The cell ends with the test metrics against the base-model baseline and returns the Run.
--background trains on a thread (the notebook stays usable); the returned run has .stop()
and .wait(). Interrupting the kernel stops a run at the next step with a resumable
checkpoint; continue it with train.resume_from=<run id>.
"""


@magic_arguments(name="%finetune")
@argument("-h", "--help", action="store_true", help="show this help and the config keys")
@argument("-c", "--config", metavar="FILE", help="YAML config file merged under the cell body")
@argument("-n", "--name", help="a short name for the run (part of its directory name)")
@argument("--background", action="store_true",
          help="train on a thread so the notebook stays usable; the cell returns at once with a live view "
               "and a Stop button (blocks anyway under papermill, nbconvert --execute or WORKBENCH_HEADLESS=1)")
@argument("--dry-run", action="store_true", help="show the resolved config and the data report without training")
@argument("-o", "--output", metavar="VAR", help="also store the returned Run in this notebook variable")
@argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. train.epochs=2")
def _finetune_args(line: str, cell: str | None = None) -> None:
    """Fine-tune a pretrained model on your data, with live progress; the cell body is YAML config."""


def parse_line(line: str) -> Any:
    """The magic line as an argparse namespace; a bad flag raises FinetuneError."""
    try:
        args = parse_argstring(_finetune_args, line)
    except UsageError as e:  # an unknown flag: IPython's own parser
        raise FinetuneError(str(e)) from None
    for item in args.overrides:
        if "=" not in item:
            raise FinetuneError(f"'{item}' is not key=value (for example train.epochs=2). %finetune --help lists "
                             "the options.")
    return args


def help_text() -> str:
    from .cli import _config_help

    usage = _finetune_args.parser.format_help().replace("::\n\n  ", "usage: ", 1)  # IPython writes rst
    return usage.rstrip() + "\n" + BODY_HELP + "\n" + _config_help()


def nothing_given_message() -> str:
    defaults = RunConfig()
    return (f"Nothing to fine-tune: the cell gives no settings, and the defaults alone would fine-tune "
            f"{defaults.model} on all of {defaults.data.train} for {defaults.train.epochs:g} epochs (an hour or more "
            "on a CPU). Give settings in the cell body or as key=value words (%finetune --help lists them; "
            "%finetune --dry-run shows the defaults), or ask for the bundled model and corpus by name: %finetune "
            "model=minilm data.train=bbc-news train.epochs=1 (`workbench demo` trains that example from a terminal).")


def nothing_given(args: Any, body: str | None) -> bool:
    """Whether the magic names no setting at all: no --config, no key=value words, and a cell body that
    holds nothing once read as YAML (blank, or only comments). Run as it stands, that is the whole
    default run, which nobody asks for by typing ``%finetune`` alone to see how it works."""
    import yaml

    if args.config or args.overrides:
        return False
    if body is None or not body.strip():
        return True
    try:
        parsed = yaml.safe_load(body)
    except yaml.YAMLError:  # build_config says where the YAML is wrong
        return False
    return parsed is None or parsed == {}


def build_config(args: Any, body: str | None, namespace: dict | None = None) -> RunConfig:
    """``resolve(file=--config, inline=body, overrides=key=value words, objects=namespace)``."""
    overrides = list(args.overrides)
    if args.name:
        overrides.append(f"name={args.name}")
    try:
        for item in overrides:
            parse_override(item)
        return resolve(file=args.config, inline=body if body and body.strip() else None, overrides=overrides,
                       objects=namespace if namespace is not None else {})
    except WorkbenchError as e:
        raise FinetuneError.of(e, str(e).replace("the inline config", "the %%finetune cell body")) from None


def interactive() -> bool:
    """A Jupyter kernel with a person at it: not a terminal, not papermill or ``nbconvert --execute``.

    Headless executors (nbclient) send their execute requests with ``allow_stdin`` false, while
    JupyterLab and Notebook allow input, so that flag tells them apart; ``WORKBENCH_HEADLESS=1``
    forces the blocking path anywhere.
    """
    if os.environ.get("WORKBENCH_HEADLESS", "").lower() in ("1", "true", "yes"):
        return False
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:
        return False
    if shell is None or type(shell).__name__ != "ZMQInteractiveShell":
        return False
    return bool(getattr(getattr(shell, "kernel", None), "_allow_stdin", True))


@contextmanager
def interrupt_stops(stop_event: threading.Event) -> Iterator[None]:
    """While training in the cell: the first kernel interrupt asks for a clean stop (checkpoint kept),
    a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if stop_event.is_set():
            raise KeyboardInterrupt
        stop_event.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def dry_run_html(cfg: RunConfig) -> str:
    """The resolved config and what the run would train and test on."""
    from . import tasks
    from .render import augmentation_text
    from .ui.live import esc, styled

    task = tasks.get(cfg.task)(cfg)
    splits = task.load_data()
    report = splits.report
    aug = report.get("augmented")

    def count(name: str, frame: Any) -> str:  # augmented training rows: the originals and the copies
        return f"{aug['original']} + {aug['added']} {aug['method']} copies" if aug and name == "train" else str(len(frame))

    rows = "".join(
        f"<tr><td>{name}</td><td>{esc(count(name, frame))}</td>"
        f"<td>{esc((report.get('sources') or {}).get(name) or report.get(f'{name}_from') or 'split off train')}</td>"
        f"<td>{esc(_label_counts(cfg, frame))}</td></tr>" for name, frame in splits.items())
    warnings = "".join(f"<li>{esc(w)}</li>" for w in report.get("warnings") or [])
    return styled(
        f"<div><b>Dry run</b>: nothing was trained. Resolved config:</div><pre>{esc(cfg.to_yaml())}</pre>"
        "<table class='wb-data'><thead><tr><th>split</th><th>rows</th><th>from</th><th>labels</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
        + (f"<div>Augmentation: {esc(augmentation_text(aug))}.</div>" if aug else "")
        + (f"<div><b>Data warnings</b></div><ul>{warnings}</ul>" if warnings else "")
        + _terminal_line(cfg))


def _terminal_line(cfg: RunConfig) -> str:
    from .ui.live import esc

    reason = cfg.no_cli_reason()
    if reason is None:
        return f"<div>The same run from a terminal: <code>{esc(cfg.to_cli())}</code></div>"
    return f"<div>No terminal equivalent: {esc(reason)}</div>"


def _label_counts(cfg: RunConfig, frame: Any) -> str:
    col = cfg.data.label_column
    if cfg.task != "text-classification" or col not in frame.columns:
        return ""
    try:
        counts = frame[col].value_counts()
    except TypeError:  # multi-label lists are not hashable
        return "multi-label"
    shown = ", ".join(f"{k} {v}" for k, v in list(counts.items())[:12])
    return shown + (f", … ({len(counts)} classes)" if len(counts) > 12 else "")


@magics_class
class WorkbenchMagics(Magics):
    @no_var_expand
    @line_cell_magic
    def finetune(self, line: str, cell: str | None = None) -> Any:
        """Fine-tune a model; the cell body is YAML config. ``%finetune --help`` explains."""
        args = parse_line(line)
        if args.help:
            print(help_text())
            return None
        if not args.dry_run and nothing_given(args, cell):  # --dry-run with nothing shows the defaults
            raise FinetuneError(nothing_given_message())
        cfg = build_config(args, cell, self.shell.user_ns)
        if args.dry_run:
            from IPython.display import HTML, display

            try:
                display(HTML(dry_run_html(cfg)))
            except WorkbenchError as e:
                raise FinetuneError.of(e) from None
            return None
        run = self._background(cfg) if args.background and interactive() else self._blocking(cfg)
        if args.output:
            self.shell.user_ns[args.output] = run
        return run

    def _blocking(self, cfg: RunConfig) -> Any:
        from .api import Run
        from .engine.run import execute, preflight
        from .runs import RunDir
        from .ui.live import NotebookProgress

        try:
            cfg = preflight(cfg)  # a mistake found without the data leaves no failed run folder behind
        except WorkbenchError as e:
            raise FinetuneError.of(e) from None
        stop = threading.Event()
        progress = NotebookProgress(confusion=True, summary=False)
        progress.state.error_below = True  # raised as the cell's error: said once, there
        run_dir = RunDir.create(cfg.runs_dir, cfg.name, cfg.task)
        progress.state.describe(run_dir, cfg)
        try:
            with interrupt_stops(stop):
                execute(cfg, sinks=[progress], stop_event=stop, run_dir=run_dir)
        except WorkbenchError as e:
            raise FinetuneError.of(e) from None
        return Run(run_dir)

    def _background(self, cfg: RunConfig) -> Any:
        import ipywidgets as w
        from IPython.display import HTML, display

        from .events import RunFailed, RunFinished
        from .ui.background import BackgroundRun
        from .ui.live import esc
        from .ui.widgets import WidgetProgress

        cell = _cell_id(self.shell)
        earlier = _BACKGROUND.get(cell) if cell else None
        if earlier is not None and earlier[0].running:
            # re-running the cell cleared the output that held its Stop button: show that run again
            # rather than start a second one that nothing on screen could stop
            old, box = earlier
            display(HTML(f"<div><b>This cell's run {esc(old.id)} is still training</b> (below, with its Stop "
                         "button). Stop it or let it end before starting another here; to train a second "
                         "run beside it, use another cell.</div>"))
            display(box)
            return old

        view = WidgetProgress(summary=True)
        stop = w.Button(description="Stop", icon="stop", button_style="danger",
                        tooltip="end the run at the next step; it keeps a resumable checkpoint")
        settle = _SettleWhenDone(view, stop)

        def forget(event: Any) -> None:  # an ended run no longer needs finding (nor its data and widgets kept)
            if isinstance(event, (RunFinished, RunFailed)) and _BACKGROUND.get(cell, (None,))[0] is run:
                _BACKGROUND.pop(cell, None)

        try:
            run = BackgroundRun(cfg, sinks=[view, settle, *([forget] if cell else [])])
        except WorkbenchError as e:  # found before its folder was made (preflight)
            raise FinetuneError.of(e) from None
        stop.on_click(lambda _: (run.stop(), setattr(stop, "disabled", True)))
        box = w.VBox([stop, view.box])
        settle.handle = display(box, display_id=True)
        if cell:
            _BACKGROUND[cell] = (run, box)
        return run.start()

    @line_magic
    def finetune_runs(self, line: str) -> None:
        """%finetune_runs [[--dir] RUNS_DIR]: the runs with status and main test metric, newest first."""
        import shlex

        from IPython.display import HTML, display

        from .runs import default_runs_dir, list_runs
        from .ui.compare import runs_table_html

        words = shlex.split(line)
        given = _take_runs_dir(words)  # as %finetune_compare takes it, or the folder alone
        if len(words) + (given is not None) > 1:
            raise FinetuneError(f"%finetune_runs takes one runs folder, got {line.strip()}")
        root = given or (words[0] if words else default_runs_dir())
        display(HTML(runs_table_html(list_runs(root, validation=True), root)))

    @line_magic
    def finetune_compare(self, line: str) -> None:
        """%finetune_compare RUN RUN ... [--dir RUNS_DIR]: test metrics side by side and overlaid curves."""
        import shlex

        from IPython.display import HTML, display

        from .errors import RunError
        from .runs import find_run
        from .ui.compare import compare_html, compare_png
        from .ui.live import PngChart

        words = shlex.split(line)
        root = _take_runs_dir(words)
        if not words:
            raise FinetuneError("Name the runs to compare: %finetune_compare RUN RUN ... (ids, id prefixes, paths or "
                             "'latest'; %finetune_runs lists them).")
        try:
            dirs = [find_run(ref, root) for ref in words]
        except RunError as e:
            raise FinetuneError.of(e) from None
        display(HTML(compare_html(dirs)))
        display(PngChart(compare_png(dirs), "loss and validation metric against steps for "
                                             + ", ".join(d.id for d in dirs)))


# the background run each notebook cell started, by the cell's id (JupyterLab and Notebook send it),
# while it trains
_BACKGROUND: dict[str, tuple[Any, Any]] = {}


def _cell_id(shell: Any) -> str | None:
    """The id of the cell being run, from the execute request's metadata (None outside Jupyter)."""
    try:
        parent = shell.kernel.get_parent()
    except Exception:  # no kernel (a plain IPython shell, a test)
        return None
    cell = (parent.get("metadata") or {}).get("cellId") if isinstance(parent, dict) else None
    return cell if isinstance(cell, str) and cell else None


class _SettleWhenDone:
    """A background run's sink: once the run has ended, its cell's widgets (the Stop button and the live
    view) give way to plain HTML of the final state, which a saved notebook keeps (widget views need
    their kernel, and a reopened notebook has none)."""

    def __init__(self, view: Any, stop: Any):
        self.view, self.stop, self.handle, self.settled = view, stop, None, False

    def __call__(self, _event: Any) -> None:
        if not self.view.state.done or self.settled:
            return
        self.stop.disabled = True
        self.settled = True
        if self.handle is not None:
            from IPython.display import HTML

            parts = [self.view.html.value]
            parts += [x.value for x in (self.view.chart, self.view.extra) if x.layout.display != "none" and x.value]
            self.handle.update(HTML("".join(parts)))


def load_ipython_extension(ip: Any) -> None:
    WorkbenchMagics.finetune.__doc__ = help_text()  # for %finetune?
    ip.register_magics(WorkbenchMagics)
