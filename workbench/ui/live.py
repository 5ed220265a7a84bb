"""Live progress in a notebook that is also the record of the run.

``NotebookProgress`` is an events sink: ``finetune(cfg, sinks=[NotebookProgress()], progress=False)``.
It shows two outputs, each created once with ``display(..., display_id=True)`` and updated in place:
an HTML block (progress bar with ETA, loss, learning rate, throughput, a table of evaluations, and
at the end the test metrics against the baseline) and, once training begins, a chart of the loss and
metric curves (an SVG image in HTML, see ``workbench.ui.charts``; a run that fails before it leaves no
empty chart output); classification runs add their confusion matrices as an
HTML table at the end. Papermill (nbclient) applies those updates to the stored outputs, so the
executed notebook and its ``nbconvert --to html`` export show the final state as plain HTML: no
widget state, no script, no network.

Cost is bounded: the HTML is redrawn at most ``1 / interval`` times a second, and the chart at
most every ``chart_interval`` seconds and never more often than keeps its drawing time under
``chart_budget`` of the wall time (a slow machine draws less often, not more expensively).
``ui_seconds`` counts the time spent here, so the overhead can be measured on any run.

``LiveState`` folds events into what a display needs; the widget panel renders the same HTML
and chart from it.
"""

from __future__ import annotations

import html
import os
import time
from pathlib import Path
from typing import Any

from ..events import (CheckpointSaved, Evaluation, Event, Phase, RunFailed, RunFinished, RunStarted, Step,
                      fmt_duration)
from ..render import FAINT, MUTED, fmt, fmt_delta, metrics_table_html
from ..runs import RunDir

STATUS_COLORS = {"running": "#2f7ed8", "completed": "#1a7f37", "failed": "#c62828", "interrupted": "#d97706",
                 "pending": "#888888"}
# Validation metrics that are bookkeeping, not results.
_NOISE = ("runtime", "samples_per_second", "steps_per_second", "epoch")


CELL_STYLE = "padding:2px 14px 2px 0;text-align:left;vertical-align:top;border-bottom:1px solid #e3e3e3"


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def styled(fragment: str) -> str:
    """Inline table styles: a notebook output, a widget and an exported page each style tables differently,
    and a <style> block would be dropped from an untrusted notebook."""
    return (fragment.replace("<table class=", "<table style='border-collapse:collapse;margin:6px 0' class=")
            .replace("<th>", f"<th style='{CELL_STYLE};color:{MUTED};font-weight:600'>")
            .replace("<td>", f"<td style='{CELL_STYLE}'>")
            .replace("<td style='color", f"<td style='{CELL_STYLE};color"))


class LiveState:
    """What a live display knows about a run, folded from its events (no I/O, no display)."""

    def __init__(self) -> None:
        self.records: list[dict] = []  # the same objects metrics.jsonl holds, for the charts
        self.run_id: str | None = None
        self.run_dir: str | None = None
        self.task = self.model = self.device = self.precision = ""
        self.main_metric: str | None = None
        self.num_train = 0
        self.status = "pending"
        self.phase = "starting"
        self.step = 0
        self.total_steps = 0
        self.epoch = 0.0
        self.loss: float | None = None
        self.learning_rate: float | None = None
        self.samples_per_second: float | None = None
        self.tokens_per_second: float | None = None
        self.elapsed = 0.0
        self.eta: float | None = None
        self.evals: list[dict] = []
        self.checkpoint: str | None = None
        self.error: str | None = None
        self.warnings: list[str] = []
        self.error_below = False  # the cell's own error output says why the run failed (the magic's)
        self.finished: RunFinished | None = None
        self.version = 0        # bumps on every change, so views redraw only when something changed
        self.curve_version = 0  # bumps when a point is added to the curves

    def describe(self, run_dir: Any, cfg: Any) -> None:
        """Name the run before its first event (a run that fails while loading data still shows which)."""
        self.run_id, self.run_dir = run_dir.id, str(run_dir.path)
        self.task, self.model = cfg.task, cfg.model

    @property
    def done(self) -> bool:
        return self.status in ("completed", "failed", "interrupted")

    def update(self, event: Event) -> None:
        self.version += 1
        if isinstance(event, Step):
            self.step, self.total_steps, self.epoch = event.step, event.total_steps, event.epoch
            self.elapsed, self.eta = event.elapsed, event.eta
            self.samples_per_second = event.samples_per_second or self.samples_per_second
            self.tokens_per_second = event.tokens_per_second or self.tokens_per_second
            self.phase = "training"
            if event.loss is not None:
                self.loss, self.learning_rate = event.loss, event.learning_rate
                self.records.append(event.to_record())
                self.curve_version += 1
        elif isinstance(event, Evaluation):
            self.evals.append({"step": event.step, "epoch": event.epoch, "train_loss": self.loss,
                               **{k: v for k, v in event.metrics.items() if not k.endswith(_NOISE)}})
            self.records.append(event.to_record())
            self.curve_version += 1
        elif isinstance(event, Phase):
            if event.notice:  # kept in view, not replaced by the next phase
                self.warnings.append(f"{event.name}: {event.detail}")
            else:
                self.phase = f"{event.name}: {event.detail}" if event.detail else event.name
        elif isinstance(event, RunStarted):
            self.run_id, self.run_dir, self.task, self.model = event.run_id, event.run_dir, event.task, event.model
            self.device, self.precision, self.num_train = event.device, event.precision, event.num_train
            self.main_metric, self.total_steps = event.main_metric, event.total_steps
            self.status, self.phase = "running", "training"
            self.records.append(event.to_record())
        elif isinstance(event, CheckpointSaved):
            self.checkpoint = event.path
        elif isinstance(event, RunFinished):
            self.status, self.finished, self.phase = event.status, event, "finished"
            self.elapsed = event.train_seconds or self.elapsed
            self.eta = 0.0
        elif isinstance(event, RunFailed):
            self.status, self.error, self.phase = event.status, event.error, event.status

    # ---- HTML ---------------------------------------------------------------------------------
    def evaluation(self) -> dict:
        """eval.json of a finished run (with per-class tables), else what the finish event carried."""
        if self.run_dir:
            ev = RunDir(Path(self.run_dir)).read_eval()
            if ev:
                return ev
        if self.finished is None:
            return {}
        fin, base = self.finished.metrics, self.finished.baseline
        return {"finetuned": fin, "baseline": base, "main_metric": self.main_metric,
                "delta": {k: fin[k] - base[k] for k in fin
                          if isinstance(fin.get(k), (int, float)) and isinstance(base.get(k), (int, float))}}

    def progress_html(self, summary: bool = True) -> str:
        frac = self.step / self.total_steps if self.total_steps else (1.0 if self.status == "completed" else 0.0)
        color = STATUS_COLORS.get(self.status, "#2f7ed8")
        # a run that failed before it started names its task and model only where the front end said them
        # (``describe``); blanks ("· on ·") say nothing
        what = " ".join(p for p in (esc(self.task), f"on <code>{esc(self.model)}</code>" if self.model else "") if p)
        head = (f"<b>{esc(self.run_id or 'new run')}</b>" + (f" &middot; {what}" if what else "")
                + (f" &middot; {esc(self.device)}, {esc(self.precision)}" if self.device else "")
                + f" &middot; <span style='color:{color}'><b>{esc(self.status)}</b></span>")
        timing = (f"{frac:.0%} &middot; step {self.step}/{self.total_steps} &middot; epoch {self.epoch:.2f} &middot; "
                  f"{fmt_duration(self.elapsed)} elapsed"
                  + ("" if self.done else f" &middot; ETA {fmt_duration(self.eta)}"))
        bar = (f"<div style='display:flex;align-items:center;gap:10px;margin:4px 0'>"
               f"<div style='width:320px;height:12px;background:#e6e6e6;border-radius:6px;overflow:hidden'>"
               f"<div style='width:{frac * 100:.1f}%;height:100%;background:{color}'></div></div>"
               f"<span>{timing}</span></div>")
        stats = [("train loss", fmt(self.loss)), ("learning rate", f"{self.learning_rate:.2e}"
                                                  if self.learning_rate is not None else ""),
                 ("samples/s", f"{self.samples_per_second:.1f}" if self.samples_per_second else ""),
                 ("tokens/s", f"{self.tokens_per_second:,.0f}" if self.tokens_per_second else "")]
        stats_html = ("<table class='wb-live'><tr>" + "".join(f"<th>{k}</th>" for k, _ in stats) + "</tr><tr>"
                      + "".join(f"<td>{v}</td>" for _, v in stats) + "</tr></table>")
        if self.status == "failed" and not self.step and not self.evals:
            # failed before training (data, model or options): the reason alone, no empty bar and table
            return styled(f"<div class='wb-progress'>{head}{self.outcome_html(summary)}</div>")
        parts = [f"<div class='wb-progress'>{head}{bar}"]
        if not self.done and self.phase != "training":
            parts.append(f"<div style='color:{MUTED}'>{esc(self.phase)}…</div>")
        parts.append(stats_html)
        parts.append(self.evals_html())
        if self.warnings:
            more = len(self.warnings) - 10
            parts.append("<div style='color:#b45309'>" + "<br>".join(esc(w) for w in self.warnings[:10])
                         + (f"<br>… and {more} more (run.json, metrics.jsonl)" if more > 0 else "") + "</div>")
        parts.append(self.outcome_html(summary))
        parts.append("</div>")
        return styled("".join(parts))

    def evals_html(self) -> str:
        if not self.evals:
            return ""
        keys: list[str] = []
        for e in self.evals:
            keys += [k for k in e if k not in ("step", "epoch", "train_loss") and k not in keys]
        head = "".join(f"<th>{esc(k)}</th>" for k in ["step", "epoch", "train loss"] + [f"val {k}" for k in keys])
        rows = "".join("<tr>" + "".join(f"<td>{esc(fmt(v))}</td>" for v in
                                        [e["step"], f"{e['epoch'] or 0.0:.2f}", e["train_loss"]]
                                        + [e.get(k) for k in keys]) + "</tr>" for e in self.evals)
        return f"<table class='wb-evals'><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"

    def outcome_html(self, summary: bool = True) -> str:
        """How the run ended: test metrics against the baseline (``summary``), or why it stopped."""
        where = ""
        if self.run_dir:
            where = f"<div style='font-size:90%'>Run directory: {run_dir_link(self.run_dir)}</div>"
        if self.status == "completed" and not summary:
            return where
        if self.status == "completed":
            ev = self.evaluation()
            method = ev.get("baseline_method")
            return ("<div><b>Test metrics, fine-tuned against the baseline</b>"
                    + (f" ({esc(method)})" if method else "") + "</div>" + metrics_table_html(ev) + where)
        if self.status == "interrupted":
            resume = ""
            if self.run_dir:
                info = _read_info(self.run_dir)
                if info.get("resume_from"):
                    resume = (f"<div>Resumable checkpoint: <code>{esc(info['resume_from'])}</code>; continue with "
                              f"<code>train.resume_from={esc(info['resume_from'])}</code></div>")
            return (f"<div style='color:{STATUS_COLORS['interrupted']}'><b>Stopped</b> at step {self.step}: "
                    f"{esc(self.error)}</div>{resume}{where}")
        if self.status == "failed":
            why = "the error below says why" if self.error_below else esc(self.error)
            return f"<div style='color:{STATUS_COLORS['failed']}'><b>Failed:</b> {why}</div>{where}"
        return ""

    def chart_svg(self) -> str:
        from .charts import curves_svg

        return curves_svg(self.records)


def _read_info(run_dir: str) -> dict:
    try:
        return RunDir(Path(run_dir)).read_info()
    except Exception:  # a display must render even if run.json is being replaced
        return {}


def run_dir_link(run_dir: str) -> str:
    """A relative link to the run directory when it lies under the notebook's folder, else its path."""
    path = Path(run_dir)
    try:
        rel = os.path.relpath(path.resolve(), Path.cwd())
    except ValueError:  # another drive on Windows
        rel = str(path)
    if rel.startswith(".."):
        return f"<code>{esc(path)}</code>"
    return f"<a href='{esc(Path(rel).as_posix())}' target='_blank'><code>{esc(Path(rel).as_posix())}</code></a>"


class LiveView:
    """An events sink that folds events into a ``LiveState`` and redraws a view of it, throttled.

    Subclasses say where the HTML, the chart (an SVG image tag) and the confusion matrices' HTML go
    (``put_html``, ``put_chart``, ``put_extra``);
    this class decides when: the HTML at most every ``interval`` seconds, the chart at most every
    ``chart_interval`` seconds and only as often as keeps chart drawing under ``chart_budget`` of
    the time, and both at once when the run ends. ``ui_seconds`` is the time spent in here.
    ``summary`` puts the test metrics against the baseline at the end; ``confusion`` adds the
    confusion matrices of classification runs.
    """

    def __init__(self, interval: float = 0.2, chart_interval: float = 3.0, chart_budget: float = 0.004,
                 confusion: bool = False, summary: bool = True):
        self.summary = summary
        self.interval = interval
        self.chart_interval = chart_interval
        self.chart_budget = chart_budget
        self.confusion = confusion
        self.state = LiveState()
        self.ui_seconds = 0.0
        self.html_updates = 0
        self.chart_updates = 0
        self._last_html = float("-inf")
        self._last_chart = float("-inf")
        self._chart_cost = 0.0
        self._chart_version = -1

    def __call__(self, event: Event) -> None:
        t0 = time.perf_counter()
        try:
            self.state.update(event)
            self.render(final=isinstance(event, (RunFinished, RunFailed)))
        finally:
            self.ui_seconds += time.perf_counter() - t0

    def render(self, final: bool = False) -> None:
        now = time.monotonic()
        if final or now - self._last_html >= self.interval:
            self.put_html(self.state.progress_html(self.summary))
            self._last_html = now
            self.html_updates += 1
        wait = max(self.chart_interval, self._chart_cost / self.chart_budget if self.chart_budget else 0.0)
        if final and not self.state.curve_version and self.state.status == "failed":
            self.put_chart("")  # no curves will come: no promise of them either
        drawable = self.state.curve_version >= 2 or final and self.state.curve_version  # one point draws no line
        if drawable and self.state.curve_version != self._chart_version and (final or now - self._last_chart >= wait):
            t0 = time.perf_counter()
            from .charts import svg_img

            self.put_chart(svg_img(self.state.chart_svg(), CHART_ALT))
            self._chart_cost = time.perf_counter() - t0
            self._chart_version = self.state.curve_version
            self._last_chart = time.monotonic()
            self.chart_updates += 1
        if final and self.confusion and self.state.status == "completed":
            ev = self.state.evaluation()
            if (ev.get("confusion_matrix") or {}).get("finetuned"):
                from .charts import confusion_html

                self.put_extra(confusion_html(ev, with_baseline=True))

    def put_html(self, text: str) -> None:
        raise NotImplementedError

    def put_chart(self, tag: str) -> None:
        raise NotImplementedError

    def put_extra(self, text: str) -> None:
        raise NotImplementedError


CHART_ALT = "training loss and validation metric against steps"
CHART_PLACEHOLDER = f"<div style='color:{FAINT}'>Loss and metric curves appear after the first logged steps.</div>"
CHART_NONE = f"<div style='color:{FAINT}'>No curves: the run ended before its first logged step.</div>"


class NotebookProgress(LiveView):
    """Draws the run into the current cell with ``display(..., display_id=True)`` and updates it in place.

    Call it from the thread that runs the cell (the blocking path: papermill, templates, the
    magic); a training thread must not display (``workbench.ui.widgets.WidgetProgress`` is for that).
    ``display`` replaces ``IPython.display.display`` (it must return an object with ``update``).
    """

    def __init__(self, interval: float = 0.2, chart_interval: float = 3.0, chart_budget: float = 0.004,
                 confusion: bool = False, summary: bool = True, display: Any = None):
        super().__init__(interval, chart_interval, chart_budget, confusion, summary)
        self._display = display
        self._html_handle: Any = None
        self._chart_handle: Any = None

    def _show(self, obj: Any) -> Any:
        if self._display is not None:
            return self._display(obj)
        from IPython.display import display

        return display(obj, display_id=True)

    def put_html(self, text: str) -> None:
        from IPython.display import HTML

        if self._html_handle is None:
            self._html_handle = self._show(HTML(text))
        else:
            self._html_handle.update(HTML(text))
        if self._chart_handle is None and self.state.status == "running":
            # the curves' place is made once training begins, right below the progress: a run that fails
            # before (data, model, options, the common case) leaves no empty output behind
            self._chart_handle = self._show(HTML(CHART_PLACEHOLDER))

    def put_chart(self, tag: str) -> None:
        from IPython.display import HTML

        if self._chart_handle is None:
            if tag:
                self._chart_handle = self._show(HTML(tag))
            return
        # a run that failed after training began but before its first logged step: say so, rather than
        # keep a promise of curves or leave an empty output
        self._chart_handle.update(HTML(tag or CHART_NONE))

    def put_extra(self, text: str) -> None:
        from IPython.display import HTML

        self._show(HTML(text))


def png_image(png: bytes, alt: str) -> Any:
    from IPython.display import Image

    return Image(data=png, format="png", metadata={"alt": alt})


class PngChart:
    """A PNG chart as a cell output that keeps its description wherever it is shown: ``image/png`` with
    the alt in its metadata (as ``png_image``; the report page reads it), and the same image as an HTML
    ``<img>`` with a data URI and that alt, which plain ``jupyter nbconvert --to html`` shows (it reads
    no image metadata, and prefers the HTML)."""

    def __init__(self, png: bytes, alt: str):
        self.png, self.alt = png, alt

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> tuple[dict, dict]:
        import base64

        data = base64.b64encode(self.png).decode()
        tag = f"<img src='data:image/png;base64,{data}' alt='{esc(self.alt)}' style='max-width:100%;height:auto'>"
        return {"image/png": data, "text/html": tag, "text/plain": self.alt}, {"image/png": {"alt": self.alt}}
