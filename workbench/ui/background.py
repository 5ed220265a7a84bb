"""A run on a training thread, so the notebook stays responsive and Stop can reach it.

The kernel's main thread keeps handling messages (button clicks, other cells) while
``Trainer.train()`` runs here. The thread never prints or displays; its sinks set widget
traits. Stop sets the core's ``stop_event``: the run ends at the next step with status
``interrupted`` and a complete checkpoint that ``train.resume_from`` continues from.
"""

from __future__ import annotations

import threading
from typing import Callable

from ..api import Run
from ..config import RunConfig
from ..runs import RunDir


class BackgroundRun(Run):
    """A ``Run`` whose training is under way on a thread: ``stop()``, ``wait()``, ``running``."""

    def __init__(self, cfg: RunConfig, sinks: list[Callable] | None = None):
        from ..engine.run import preflight

        cfg = preflight(cfg)  # a mistake found without the data leaves no failed run folder behind
        super().__init__(RunDir.create(cfg.runs_dir, cfg.name, cfg.task))
        self.cfg = cfg
        self.sinks = list(sinks or [])
        for sink in self.sinks:
            if hasattr(sink, "state"):
                sink.state.describe(self.run_dir, cfg)
        self.stop_event = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._work, name=f"workbench-{self.id}", daemon=True)

    def start(self) -> "BackgroundRun":
        self.thread.start()
        return self

    def _work(self) -> None:
        from ..engine.run import execute

        try:
            execute(self.cfg, sinks=self.sinks, stop_event=self.stop_event, run_dir=self.run_dir)
        except BaseException as e:  # recorded in run.json by execute; kept here for wait() to re-raise
            self.error = e

    @property
    def running(self) -> bool:
        return self.thread.is_alive()

    def stop(self) -> None:
        """Ask the run to stop at the next training step (it keeps a resumable checkpoint)."""
        self.stop_event.set()

    def wait(self, timeout: float | None = None, raise_error: bool = True) -> "BackgroundRun":
        """Block until the run ends; re-raises its error unless ``raise_error`` is false."""
        self.thread.join(timeout)
        if raise_error and self.error is not None and not self.running:
            raise self.error
        return self

    def __repr__(self) -> str:
        if self.running:
            return f"BackgroundRun({self.id!r}, running)"
        return super().__repr__()

    def _repr_html_(self) -> str:
        if self.running:
            from .live import esc

            # drawn once, when the cell ends, and never redrawn: it says what was started, not a state
            # that the run's end would make wrong (the live view above it shows the state)
            return (f"<div>Run <b>{esc(self.id)}</b> was started in the background; the view above follows it. "
                    "<code>.stop()</code> ends it early (with a resumable checkpoint once it trains) and "
                    "<code>.wait()</code> blocks until it ends.</div>")
        return super()._repr_html_()
