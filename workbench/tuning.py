"""Hyperparameter search: optuna proposes settings, each trial is an ordinary workbench run.

``transformers.Trainer.hyperparameter_search`` runs every trial inside one Trainer, outside the run
directory contract: no run directory per trial, no events for the progress views, no test metrics
against the baseline. Here optuna's sampler (TPE, seeded) proposes the values and each trial is a
complete run (``<name>-trial-<n>``) that ``workbench runs list``, the sidebar and ``compare_runs``
show like any other. Trials are ranked by the best *validation* value of the run's main metric
(``metric``, else ``train.metric_for_best_model`` where set; a given ``metric`` also picks each
trial's best checkpoint): the test split stays untouched until the chosen run is read.

A search space maps dotted config keys to a list of choices or a range::

    {"train.learning_rate": {"low": 1e-5, "high": 1e-3, "log": True},
     "train.batch_size": [8, 16, 32],
     "train.weight_decay": {"low": 0.0, "high": 0.1}}

and on the command line ``--space train.learning_rate=1e-5..1e-3:log --space train.batch_size=8,16,32``.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .config import _all_keys, _suggest, ignored_keys, parse_override, resolve, unused_settings, value_at
from .errors import ConfigError, RunError, UnknownMetric, WorkbenchError
from .events import ConsoleProgress, RunFailed
from .render import table_html


def parse_space_item(text: str) -> tuple[str, Any]:
    """``key=low..high[:log]`` (a range, sampled in integers for an integer key such as
    train.batch_size, else in floats: train.epochs=1..3 may give 2.46) or ``key=a,b,c`` (choices)."""
    if "=" not in text:
        raise ConfigError(f"--space {text!r}: write key=low..high (add :log for a log scale) or key=a,b,c.")
    key, _, spec = text.partition("=")
    key, spec = key.strip(), spec.strip()
    if ".." in spec:
        body, _, scale = spec.partition(":")
        low_text, _, high_text = body.partition("..")
        try:
            low, high = (int(x) if x.strip().lstrip("-").isdigit() else float(x) for x in (low_text, high_text))
        except ValueError:
            raise ConfigError(f"--space {text!r}: the range ends must be numbers (for example 1e-5..1e-3).") from None
        if scale not in ("", "log"):
            raise ConfigError(f"--space {text!r}: the only scale is :log.")
        return key, {"low": low, "high": high, "log": scale == "log"}
    choices = [parse_override(f"{key}={c.strip()}")[1] for c in spec.split(",") if c.strip()]
    if len(choices) < 2:
        raise ConfigError(f"--space {text!r}: give at least two choices (a,b) or a range (low..high).")
    return key, choices


def check_space(space: dict) -> dict:
    """The space with each key known to the config and each range or choice list well formed."""
    if not isinstance(space, dict) or not space:
        raise ConfigError("search space: give at least one key, e.g. {'train.learning_rate': {'low': 1e-5, "
                          "'high': 1e-3, 'log': True}}.")
    keys = _all_keys()
    for key, spec in space.items():
        # a task's own options are checked by the task, with each value the space can take (in search)
        if key not in keys and not (isinstance(key, str) and key.startswith("task_options.") and len(key) > 13):
            raise ConfigError(f"search space: unknown config key '{key}'.{_suggest(key, keys)}")
        if isinstance(spec, dict):
            low, high = spec.get("low"), spec.get("high")
            if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (low, high)) or low >= high:
                raise ConfigError(f"search space: {key} needs numbers low < high, got {spec!r}.")
            if not isinstance(spec.get("log", False), bool):
                raise ConfigError(f"search space: {key}: log must be true or false, got {spec['log']!r}.")
            if spec.get("log") and low <= 0:
                raise ConfigError(f"search space: {key} on a log scale needs low > 0, got {low!r}.")
            unknown = set(spec) - {"low", "high", "log"}
            if unknown:
                raise ConfigError(f"search space: {key} takes low, high and log, not {', '.join(sorted(unknown))}.")
        elif not (isinstance(spec, (list, tuple)) and len(spec) >= 2):
            raise ConfigError(f"search space: {key} needs a list of at least two choices or a "
                              "{'low': .., 'high': ..} range.")
    return space


def _integer_key(key: str) -> bool:
    """Whether the config key holds an integer (a range over it is sampled in integers)."""
    from .config import schema

    kind = next((s["type"] for s in schema() if s["key"] == key), None)
    return kind is int or kind == (int | None)


def _suggest_value(trial: Any, key: str, spec: Any) -> Any:
    if isinstance(spec, dict):
        low, high, log = spec["low"], spec["high"], bool(spec.get("log"))
        if _integer_key(key):
            return trial.suggest_int(key, math.ceil(low), math.floor(high), log=log)
        return trial.suggest_float(key, float(low), float(high), log=log)
    choices = list(spec)
    if all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
        return trial.suggest_categorical(key, choices)
    # optuna keeps only plain values as choices (a list of module names is not one): it picks a name
    names = [json.dumps(c, default=str) for c in choices]
    return choices[names.index(trial.suggest_categorical(key, names))]


def best_validation(run: Any, metric: str | None) -> tuple[str, float | None]:
    """The run's main metric (or ``metric``) and its best validation value (None if never evaluated)."""
    from .metrics import greater_is_better

    records = run.history()
    started = next((r for r in records if r.get("event") == "started"), {})
    name = metric or started.get("main_metric") or "loss"
    values = [r["metrics"][name] for r in records if r.get("event") == "eval" and r.get("split") == "validation"
              and isinstance((r.get("metrics") or {}).get(name), (int, float))
              and math.isfinite(r["metrics"][name])]
    if not values:
        return name, None
    return name, (max(values) if greater_is_better(name, None, True) else min(values))


@dataclass
class SearchResult:
    """The trials of one search, best first, and the best run."""
    metric: str
    # number, params, unused (the searched keys its run ignores), value, run_id, status
    trials: list[dict] = field(default_factory=list)
    interrupted: bool = False  # stopped by Ctrl-C / KeyboardInterrupt: the trials that ended are kept

    @property
    def greater_is_better(self) -> bool:
        """The metric's direction, by its name (a loss, perplexity or error improves as it falls)."""
        from .metrics import greater_is_better

        return greater_is_better(self.metric, None, True) if self.metric else True

    @property
    def best(self) -> dict | None:
        done = [t for t in self.trials if t["value"] is not None]
        if not done:
            return None
        return (max if self.greater_is_better else min)(done, key=lambda t: t["value"])

    @property
    def best_run(self) -> Any:
        from .api import Run

        best = self.best
        if best is None:
            raise RunError("no trial reached a validation evaluation; see the trials' errors "
                           "(`workbench runs list`).")
        return Run(best["run_dir"])

    def table_rows(self) -> list[tuple]:
        keys = sorted({k for t in self.trials for k in t["params"]})
        best = self.best
        rows = [("trial", *keys, f"best val {self.metric or 'metric'}", "run", "")]
        ordered = sorted(self.trials, key=lambda t: (t["value"] is None,
                                                     -(t["value"] or 0) if self.greater_is_better else t["value"] or 0))
        for t in ordered:
            rows.append((str(t["number"]), *(_param_text(t, k) for k in keys),
                         "" if t["value"] is None else f"{t['value']:.4f}", t["run_id"],
                         "best" if t is best else ("" if t["status"] == "completed" else t["status"])))
        return rows

    def __repr__(self) -> str:
        from .render import text_table

        return text_table(self.table_rows())

    def _repr_html_(self) -> str:
        rows = self.table_rows()
        return table_html(rows[0], rows[1:])


class _SearchView:
    """The search's trials as one HTML table in the cell, updated in place (kept by papermill and
    nbconvert as its last state): each trial's settings, progress, best validation value, status."""

    def __init__(self, trials: int, metric: str | None):
        from IPython.display import HTML, display

        self.trials, self.metric = trials, metric
        self.rows: list[_TrialRow] = []
        self._shown = 0.0
        self.handle = display(HTML(self.html()), display_id=True)

    def add(self, number: int, params: dict, unused: list[str]) -> "_TrialRow":
        row = _TrialRow(self, number, params, unused)
        self.rows.append(row)
        self.render()
        return row

    def render(self, now: bool = True) -> None:
        import time

        from IPython.display import HTML

        if now or time.monotonic() - self._shown > 0.5:  # steps redraw at most twice a second
            self._shown = time.monotonic()
            self.handle.update(HTML(self.html()))

    def html(self) -> str:
        from .render import MUTED

        keys = sorted({k for r in self.rows for k in r.params})
        metric = self.metric or next((r.metric for r in self.rows if r.metric), None) or "metric"
        done = sum(r.status != "running" for r in self.rows)
        rows = [[str(r.number), *("not used" if k in r.unused else _fmt(r.params.get(k)) for k in keys), r.progress(),
                 "" if r.best is None else f"{r.best:.4f}", r.status] for r in self.rows]
        return (f"<div><b>Search</b> <span style='color:{MUTED}'>{done} of {self.trials} trials ended</span></div>"
                + table_html(["trial", *keys, "progress", f"best val {metric}", "status"], rows))


class _TrialRow:
    """One trial of a _SearchView, fed by its run's events."""

    def __init__(self, view: _SearchView, number: int, params: dict, unused: list[str]):
        self.view, self.number, self.params, self.unused = view, number, params, unused
        self.step = self.total = 0
        self.metric: str | None = view.metric
        self.greater = True
        self.best: float | None = None
        self.status = "running"

    def progress(self) -> str:
        return f"step {self.step}/{self.total}" if self.total else ""

    def __call__(self, event: Any) -> None:
        from .events import Evaluation, RunFinished, RunStarted, Step
        from .metrics import greater_is_better

        if isinstance(event, RunStarted):
            self.total = event.total_steps
            self.metric = self.metric or event.main_metric
            self.greater = greater_is_better(self.metric, None, True)  # by its name (perplexity, mse: lower)
        elif isinstance(event, Step):
            self.step, self.total = event.step, event.total_steps
            self.view.render(now=False)
            return
        elif isinstance(event, Evaluation) and event.split == "validation":
            value = event.metrics.get(self.metric or "")
            if isinstance(value, (int, float)) and math.isfinite(value) and (
                    self.best is None or (value > self.best if self.greater else value < self.best)):
                self.best = float(value)
        elif isinstance(event, RunFinished):
            self.status = event.status
        elif isinstance(event, RunFailed):
            self.status = f"{event.status}: {event.error}"
        self.view.render()

    def repeats(self, earlier: dict) -> None:
        """Not trained: the settings that take effect are ``earlier``'s (a trial's record)."""
        self.best, self.status = earlier["value"], f"same as trial {earlier['number']}"
        self.view.render()

    def failed(self, error: str) -> None:
        if self.status == "running":  # a failure before the run began sends no event
            self.status = f"failed: {error}"
            self.view.render()


class _TrialConsole(ConsoleProgress):
    """The console progress of one trial, holding back the line of a failed run until the search
    knows whether the failure is the trial's own (shown) or the search's (its own error says it)."""

    def __init__(self):
        super().__init__()
        self._failure: RunFailed | None = None

    def __call__(self, event: Any) -> None:
        if isinstance(event, RunFailed):
            self._failure = event
        else:
            super().__call__(event)

    def flush_failure(self, otherwise: RunFailed | None = None) -> None:
        """Print the failure held back, or ``otherwise`` (a failure found before the run began)."""
        failure = self._failure or otherwise
        if failure is not None:
            super().__call__(failure)
            self._failure = None


def _remove_failed_trial(runs_dir: Path, trial_name: str) -> None:
    """Delete the folder of a trial that failed before training because of the search's own settings
    (it holds a config, a status and no model); other trials' folders are left alone."""
    import shutil

    from .runs import list_runs

    for r in list_runs(runs_dir):
        if r.get("name") == trial_name and r.get("status") == "failed":
            shutil.rmtree(r["path"], ignore_errors=True)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return "" if v is None else str(v)


def _param_text(trial: dict, key: str) -> str:
    """A trial's value of a searched setting, or "not used" where the trial's run ignores it (lora.r
    in a trial with LoRA off)."""
    return "not used" if key in trial.get("unused", ()) else _fmt(trial["params"].get(key))


def used_params(trial: dict) -> dict:
    """The searched settings that took effect in a trial."""
    return {k: v for k, v in trial["params"].items() if k not in trial.get("unused", ())}


def search(config: Any = None, space: dict | None = None, trials: int = 8, *, metric: str | None = None,
           progress: bool | None = None, sinks: list[Callable] | None = None, **overrides: Any) -> SearchResult:
    """Run ``trials`` fine-tuning runs with settings from ``space`` chosen by optuna; returns the
    trials ranked by their best validation value. ``config`` and ``overrides`` as for ``finetune``.
    The trials skip the base-model baseline (the same for every trial); evaluate the chosen run
    against it with ``workbench train`` on its config, or read its test metrics."""
    try:
        import optuna
    except ImportError:
        raise WorkbenchError("hyperparameter search needs optuna: pip install 'workbench[search]'.") from None
    from .api import finetune

    space = check_space(dict(space or {}))
    if trials < 1:
        raise ConfigError(f"trials: {trials!r} must be at least 1.")
    flat = {k.replace("__", "."): v for k, v in overrides.items()}
    base = resolve(inline=config, overrides=flat or None)
    metric = (metric or base.train.metric_for_best_model or "").removeprefix("eval_") or None  # Trainer's prefix
    if base.train.eval_strategy == "no":
        raise ConfigError("search: trials are ranked by their validation metric; train.eval_strategy must be "
                          "epoch or steps.")
    from . import tasks

    mains: dict[str, list[str]] = {}  # the main metric of the runs each value makes, for the ranking
    for key, spec in space.items():  # every value the space can take must make a valid config
        for value in ([spec["low"], spec["high"]] if isinstance(spec, dict) else spec):
            cfg = resolve(inline=base, overrides={key: value})
            unused = unused_settings(cfg).get(key)
            if unused and unused[1] not in space:  # every trial would train alike, whatever its value
                raise ConfigError(f"search space: {key} has no effect here: {unused[0]}. Set {unused[1]} so "
                                  f"that it does, or search other keys.")
            mains.setdefault(tasks.get(cfg.task)(cfg).main_metric, []).append(f"{key}={value}")
    if not metric and len(mains) > 1:  # task_options.problem: accuracy for one kind, f1_micro for another
        kinds = "; ".join(f"{m} ({', '.join(v)})" for m, v in mains.items())
        raise ConfigError(f"search space: its trials would be ranked on different metrics ({kinds}), which do not "
                          "compare. Search one kind of run at a time, or rank on one metric every trial reports "
                          "(--metric, or metric= in Python).")
    name = base.name or f"search-{base.task}"
    result = SearchResult(metric=metric or "")
    sampler = optuna.samplers.TPESampler(seed=base.train.seed)
    # optuna's own log would repeat each failed trial with a traceback; the trials table says it
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(direction="maximize", sampler=sampler, study_name=name)
    from .api import in_notebook_cell

    # in a notebook cell, one table of the trials updated in place rather than a console log per trial
    view = _SearchView(trials, metric) if (progress is None or progress) and in_notebook_cell() else None

    trained: dict[str, dict] = {}  # the trials trained, by the settings that took effect in them

    def objective(trial: Any) -> float:
        params = {key: _suggest_value(trial, key, spec) for key, spec in space.items()}
        # the ranking metric also picks each trial's best checkpoint, and a name the task does not
        # report fails before the first trial trains (the engine checks it on a few validation rows)
        picked = {"train.metric_for_best_model": metric} if metric else {}
        cfg = resolve(inline=base, overrides={**params, **picked, "name": f"{name}-trial-{trial.number}",
                                              "baseline": False})
        # recorded as the run uses them ('1e-3' from a command line is the number 0.001 in its config)
        params = {key: value_at(cfg, key) for key in params}
        ignored = ignored_keys(cfg)  # whatever the value: lora.r at its default is as unused with LoRA off
        unused = sorted(k for k in params if k in ignored)  # lora.r in a trial with LoRA off
        effective = json.dumps({k: v for k, v in params.items() if k not in unused}, sort_keys=True, default=str)
        shown = progress is None or progress
        row = view.add(trial.number, params, unused) if view is not None else None
        earlier = trained.get(effective)
        if earlier is not None and earlier["value"] is not None:
            # the settings that take effect are an earlier trial's, and so are seed and data: training
            # again would repeat that run, so the trial takes its result
            result.trials.append({**earlier, "number": trial.number, "params": params, "unused": unused,
                                  "status": f"same as trial {earlier['number']}"})
            if row:
                row.repeats(earlier)
            elif shown:
                print(f"trial {trial.number}: the settings that take effect are trial {earlier['number']}'s; "
                      "not trained again", file=sys.stderr)
            return earlier["value"] if result.greater_is_better else -earlier["value"]
        console = _TrialConsole() if shown and view is None else None
        try:
            run = finetune(cfg, progress=False, sinks=[*(sinks or []), *([console] if console else []),
                                                       *([row] if row else [])])
        except UnknownMetric as e:  # every trial would fail alike: one message, the search's, and no trial left
            _remove_failed_trial(Path(cfg.runs_dir), cfg.name)
            raise ConfigError(f"search metric '{metric}' is not among the validation metrics "
                              f"({', '.join(e.choices)}).{_suggest(metric, e.choices)} Set --metric (metric= in "
                              "Python, or train.metric_for_best_model) to one of them.") from None
        except WorkbenchError as e:
            if console:
                console.flush_failure(RunFailed(status="failed", error=str(e)))
            if row:
                row.failed(str(e))
            from .runs import list_runs

            # the failed trial's run directory (a failure before training leaves one, marked failed)
            mine = [r for r in list_runs(Path(cfg.runs_dir)) if r.get("name") == cfg.name]
            result.trials.append({"number": trial.number, "params": params, "unused": unused, "value": None,
                                  "run_id": mine[0]["id"] if mine else "", "run_dir": mine[0]["path"] if mine else None,
                                  "status": f"failed: {e}"})
            raise optuna.TrialPruned(str(e)) from None
        except BaseException as e:  # Ctrl-C, or an error of the libraries: say how the run ended, then stop
            if console:
                console.flush_failure()
            if row:
                row.failed("interrupted" if isinstance(e, KeyboardInterrupt) else f"{type(e).__name__}: {e}")
            raise
        used, value = best_validation(run, metric)
        if not result.metric:
            result.metric = used
        run.run_dir.update_info(search={"study": name, "trial": trial.number, "params": params, "unused": unused,
                                        "metric": used, "value": value})
        result.trials.append({"number": trial.number, "params": params, "unused": unused, "value": value,
                              "run_id": run.id, "run_dir": str(run.dir), "status": run.status})
        trained[effective] = result.trials[-1]
        if value is None:
            raise optuna.TrialPruned("no validation evaluation")
        return value if result.greater_is_better else -value

    try:
        study.optimize(objective, n_trials=trials, catch=())
    except WorkbenchError as e:  # the search's own message; optuna's frames in between say nothing more
        raise e.with_traceback(None) from None
    except KeyboardInterrupt:  # the run under way is marked interrupted by the engine; keep what ended
        result.interrupted = True
    return result

