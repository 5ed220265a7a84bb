"""The Python API: ``finetune()`` and the ``Run`` handle every front end returns."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Callable

from .config import RunConfig, resolve
from .runs import ACTIVE, RunDir, find_run


class Run:
    """A run directory, with its results and the fine-tuned model at hand.

    ``metrics`` and ``baseline`` are the test-split metrics of the fine-tuned and the base model.
    """

    def __init__(self, run_dir: RunDir | str | Path):
        self.run_dir = run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
        self._model = None
        self._tokenizer = None

    @classmethod
    def load(cls, ref: str | Path, runs_dir: str | Path | None = None) -> "Run":
        return cls(find_run(ref, runs_dir))

    # -- record ---------------------------------------------------------------------------------
    @property
    def dir(self) -> Path:
        return self.run_dir.path

    @property
    def id(self) -> str:
        return self.run_dir.id

    @property
    def info(self) -> dict:
        return self.run_dir.read_info()

    @property
    def status(self) -> str:
        return self.info.get("status", "unknown")

    @property
    def evaluation(self) -> dict:
        return self.run_dir.read_eval() or {}

    @property
    def metrics(self) -> dict:
        return self.evaluation.get("finetuned", {})

    @property
    def baseline(self) -> dict:
        return self.evaluation.get("baseline", {})

    @property
    def config(self) -> RunConfig:
        return resolve(inline=self.run_dir.read_config_text() or None)

    # -- the run while it trains (in this process, another kernel or a `workbench train`) -------
    @property
    def running(self) -> bool:
        """Pending or training: run.json says so and, on this machine, its process is alive."""
        return self.status in ACTIVE

    def stop(self) -> None:
        """Ask a pending or training run to stop at its next step (it keeps a resumable checkpoint);
        nothing for a run that has ended."""
        if self.running:
            self.run_dir.request_stop()

    def wait(self, timeout: float | None = None, poll: float = 1.0) -> "Run":
        """Block until the run has ended (at once for a run that has), or ``timeout`` seconds."""
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        while self.running and (deadline is None or time.monotonic() < deadline):
            time.sleep(poll if deadline is None else max(0.0, min(poll, deadline - time.monotonic())))
        return self

    def history(self) -> list[dict]:
        records, _ = self.run_dir.read_metrics(0)
        return records

    # -- model ----------------------------------------------------------------------------------
    def _load(self):
        if self._model is None:
            from .tasks import get
            import json

            marker = self.run_dir.model_dir / "workbench.json"
            if not marker.is_file():
                from .errors import RunError

                status = self.status
                error = str(self.info.get("error") or "").rstrip(".")
                why = f" ({error})" if status == "failed" and error else ""
                raise RunError(f"run {self.id} has no saved model: its status is {status}{why}. Load a completed "
                               "run (`workbench runs list` shows each run's status).")
            try:
                info = json.loads(marker.read_text(encoding="utf-8"))
                task_cls = get(info["task"])
            except (ValueError, KeyError, TypeError) as e:  # truncated, hand-edited, or of another version
                from .errors import RunError

                raise RunError(f"{marker} cannot be read ({type(e).__name__}: {e}): it records which task saved "
                               f"the model. Copy it back from a backup of the run, or train the run again "
                               f"(its config: {self.run_dir.path / 'config.yaml'}).") from None
            from transformers import AutoTokenizer

            from .engine.run import quiet_libraries

            # no loading bars, and no MISSING report for the head an adapter-only run supplies itself
            with quiet_libraries():
                self._tokenizer = AutoTokenizer.from_pretrained(str(self.run_dir.model_dir))
                self._model = task_cls.load_trained(self.run_dir.model_dir) if hasattr(task_cls, "load_trained") \
                    else _load_trained(task_cls, self.run_dir.model_dir)
            self._task_cls, self._model_info = task_cls, info
        return self._model, self._tokenizer

    def predict(self, inputs: str | list, **kw: Any) -> Any:
        """Predictions of the fine-tuned model for one text or a list of texts (for token
        classification also a list of lists of words, already split as in the training data)."""
        single = isinstance(inputs, str)
        model, tok = self._load()
        kw.setdefault("max_length", self._model_info.get("max_length", 256))
        out = self._task_cls.predict(model, tok, [inputs] if single else list(inputs), self._model_info, **kw)
        return out[0] if single else out

    def generate(self, prompt: str | list, max_new_tokens: int = 50, **kw: Any) -> str | list[str]:
        """Continue a prompt with a causal-LM run's model (greedy unless do_sample=True is passed)."""
        model, tok = self._load()
        if not hasattr(self._task_cls, "generate"):
            from .errors import RunError

            raise RunError(f"run {self.id} is a {self._model_info.get('task')} run; generate() needs a causal-lm "
                           "run. Use predict().")
        single = isinstance(prompt, str)
        out = self._task_cls.generate(model, tok, [prompt] if single else list(prompt), self._model_info,
                                      max_new_tokens=max_new_tokens, **kw)
        return out[0] if single else out

    # -- display --------------------------------------------------------------------------------
    def __repr__(self) -> str:
        m = self.evaluation.get("main_metric")
        val = self.metrics.get(m) if m else None
        base = self.baseline.get(m) if m else None
        extra = f", {m}={val:.4f} (baseline {base:.4f})" if isinstance(val, float) and isinstance(base, float) else ""
        return f"Run({self.id!r}, status={self.status!r}{extra})"

    def _repr_html_(self) -> str:
        from .render import run_summary_html

        return run_summary_html(self.run_dir)


def in_notebook_cell() -> bool:
    """Whether this code runs in a Jupyter kernel's cell (JupyterLab, Notebook, papermill), on the
    thread that runs it: only there can a display be placed and updated."""
    import sys

    if "IPython" not in sys.modules or threading.current_thread() is not threading.main_thread():
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def default_progress() -> Callable:
    """The progress sink for a run started from code: the notebook view in a cell (as %%finetune shows
    it, confusion matrices included), else the console's."""
    if in_notebook_cell():
        from .ui.live import NotebookProgress

        return NotebookProgress(confusion=True)
    from .events import ConsoleProgress

    return ConsoleProgress()


def _load_trained(task_cls: Any, model_dir: Path):
    auto = getattr(task_cls, "auto_model_name", "AutoModelForSequenceClassification")
    import transformers

    from .engine.peft_support import is_adapter_dir, load_adapter_model

    if is_adapter_dir(model_dir):  # saved with lora.merge: false
        return load_adapter_model(getattr(transformers, auto), model_dir)
    return getattr(transformers, auto).from_pretrained(str(model_dir), use_safetensors=True)


def finetune(config: Any = None, *, sinks: list[Callable] | None = None, progress: bool | None = None,
             stop_event: threading.Event | None = None, **overrides: Any) -> Run:
    """Fine-tune from a dict, YAML text, a path or a RunConfig, and return the finished Run.

    ``overrides`` are dotted keys with ``__`` for dots (``train__epochs=1``) or plain top-level
    keys (``model="minilm"``). ``progress`` (default: on) shows the run's progress: in a notebook
    cell the live view of ``%%finetune`` (progress, curves, test metrics against the baseline), as
    HTML that papermill and nbconvert keep; elsewhere a console progress bar.
    """
    from .engine.run import execute

    flat = {k.replace("__", "."): v for k, v in overrides.items()}
    cfg = config if isinstance(config, RunConfig) and not flat else resolve(inline=config, overrides=flat or None)
    sinks = list(sinks or [])
    if progress is None or progress:
        sinks.append(default_progress())
    run_dir = execute(cfg, sinks=sinks, stop_event=stop_event)
    return Run(run_dir)
