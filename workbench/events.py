"""Typed events the training core emits, and the sinks that consume them.

The core never prints or displays: it calls ``emit(event)`` and each sink decides what to do
(append to metrics.jsonl, draw a console bar, update a notebook display, feed a widget).
A sink that raises is disabled with a warning rather than killing the run.
"""

from __future__ import annotations

import math
import sys
import time
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Protocol

from .errors import RunFolderDeleted


@dataclass
class Event:
    event: str = field(init=False, default="event")
    time: float = field(init=False, default_factory=time.time)

    def to_record(self) -> dict:
        return asdict(self)


@dataclass
class RunStarted(Event):
    run_id: str
    run_dir: str
    task: str
    model: str
    total_steps: int
    num_train: int
    device: str
    precision: str
    main_metric: str
    train_unit: str = "examples"  # packed language-model text trains on blocks, not on the texts

    def __post_init__(self):
        self.event = "started"


@dataclass
class Phase(Event):
    """A named stage outside the training loop (loading, tokenizing, baseline, saving), or with
    ``notice`` a message about the run to keep in view (a data warning, a setting adjusted), which
    the next stage does not replace."""
    name: str
    detail: str = ""
    notice: bool = False

    def __post_init__(self):
        self.event = "phase"


@dataclass
class Step(Event):
    step: int
    total_steps: int
    epoch: float
    loss: float | None
    learning_rate: float | None
    grad_norm: float | None
    samples_per_second: float | None
    tokens_per_second: float | None
    elapsed: float
    eta: float | None

    def __post_init__(self):
        self.event = "step"


@dataclass
class Evaluation(Event):
    step: int
    epoch: float | None
    split: str
    metrics: dict

    def __post_init__(self):
        self.event = "eval"


@dataclass
class CheckpointSaved(Event):
    step: int
    path: str

    def __post_init__(self):
        self.event = "checkpoint"


@dataclass
class RunFinished(Event):
    status: str
    metrics: dict
    baseline: dict
    elapsed: float
    train_seconds: float

    def __post_init__(self):
        self.event = "finished"


@dataclass
class RunFailed(Event):
    status: str
    error: str

    def __post_init__(self):
        self.event = "failed"


EVENT_TYPES = {"started": RunStarted, "phase": Phase, "step": Step, "eval": Evaluation, "checkpoint": CheckpointSaved,
               "finished": RunFinished, "failed": RunFailed}


def event_from_record(record: dict) -> Event | None:
    """The event a ``metrics.jsonl`` record was written from (None for a kind this version does not know):
    lets a reader of a run directory drive the same sinks as the run itself."""
    from dataclasses import fields

    cls = EVENT_TYPES.get(record.get("event", ""))
    if cls is None:
        return None
    event = cls(**{f.name: record.get(f.name) for f in fields(cls) if f.init})
    if isinstance(record.get("time"), (int, float)):
        event.time = record["time"]
    return event


class Sink(Protocol):
    def __call__(self, event: Event) -> None: ...


class Emitter:
    """Fans events out to sinks; a failing sink is dropped with a warning."""

    def __init__(self, sinks: list[Callable[[Event], None]] | None = None):
        self.sinks = list(sinks or [])

    def __call__(self, event: Event) -> None:
        for sink in list(self.sinks):
            try:
                sink(event)
            except Exception as e:  # a display problem must never end a training run
                self.sinks.remove(sink)
                warnings.warn(f"workbench: progress display {type(sink).__name__} disabled after an error: {e}")


class MetricsWriter:
    """Appends each event as one strict-JSON line to the run's metrics.jsonl."""

    def __init__(self, run_dir: Any):
        self.run_dir = run_dir

    def __call__(self, event: Event) -> None:
        if isinstance(event, Step) and event.loss is None:
            return  # progress ticks between logging steps are for live displays only
        try:
            self.run_dir.append_metrics(event.to_record())
        except RunFolderDeleted:
            pass  # the run stops at its next step and says why; there is nothing left to write into


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def fmt_metric(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


class ConsoleProgress:
    """A one-line progress bar with ETA on a terminal; plain timestamped lines elsewhere (CI, logs).

    Redraws at most ``interval`` seconds apart on a TTY and every ``log_interval`` seconds otherwise,
    so it costs nothing measurable next to a training step.
    """

    def __init__(self, stream=None, interval: float = 0.2, log_interval: float = 10.0):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = interval if self.tty else log_interval
        self._last = 0.0
        self._open_line = False
        self.shown_failure = False  # a failure was printed (the caller need not print it again)

    def _write(self, text: str) -> None:
        if self._open_line:
            self.stream.write("\n")
            self._open_line = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted):
            self._write(f"run {event.run_id}: {event.task} on {event.model} | {event.num_train} training {event.train_unit}, "
                        f"{event.total_steps} steps | {event.device}, {event.precision}")
        elif isinstance(event, Phase):
            self._write(f"  {event.name}{': ' + event.detail if event.detail else ''}")
        elif isinstance(event, Step):
            now = time.monotonic()
            if now - self._last < self.interval and event.step < event.total_steps:
                return
            if event.step >= event.total_steps and event.loss is None:
                return  # the last step is shown once, with the loss logged for it right after
            self._last = now
            frac = event.step / max(event.total_steps, 1)
            bar = "#" * int(frac * 30)
            loss = f"loss {event.loss:.4f}" if event.loss is not None else ""
            speed = f"{event.samples_per_second:.1f} samples/s" if event.samples_per_second else ""
            line = (f"  [{bar:<30}] {event.step}/{event.total_steps} epoch {event.epoch:.2f} {loss} {speed} "
                    f"elapsed {fmt_duration(event.elapsed)} eta {fmt_duration(event.eta)}")
            if self.tty:
                self.stream.write("\r" + line.ljust(110)[:160])
                self.stream.flush()
                self._open_line = True
            else:
                self._write(line)
        elif isinstance(event, Evaluation):
            shown = ", ".join(f"{k} {fmt_metric(v)}" for k, v in event.metrics.items()
                              if not k.endswith(("runtime", "per_second")) and k != "epoch")
            self._write(f"  eval ({event.split}) at step {event.step}: {shown}")
        elif isinstance(event, RunFailed):
            self._write(f"run {event.status}: {event.error}")
            self.shown_failure = True
