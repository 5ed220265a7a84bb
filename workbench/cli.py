"""The ``workbench`` command line: train, demo, runs list/show/stop, predict, config, report, new."""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import re
import signal
import sys
import threading
from pathlib import Path

from ._version import __version__
from .engine.device import is_main_process, launched_processes
from .errors import WorkbenchError

DEMO_CONFIG = """\
task: text-classification
model: minilm
name: demo-bbc-news
data:
  train: bbc-news
  text_column: text
  label_column: label
train:
  epochs: 1
  max_length: 128
  batch_size: 16
  learning_rate: 1.0e-4
  eval_batch_size: 64
"""


def _stop_on_signals(stop) -> dict:
    """First SIGTERM or Ctrl-C: stop at the next step with a resumable checkpoint; a second one: stop now."""
    def handler(signum, frame):  # pragma: no cover - exercised through a subprocess test
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        if signum == signal.SIGINT and is_main_process():  # a launcher passes the signal to every process
            print("\nstopping at the end of this step, with a checkpoint to resume from; "
                  "Ctrl-C again stops at once", file=sys.stderr, flush=True)

    if threading.current_thread() is not threading.main_thread():
        return {}  # only the main thread may set signal handlers
    return {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}


def _restore_signals(previous: dict) -> None:
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def _config_help() -> str:
    from .config import schema

    from .tasks import task_option_defaults

    lines = ["config keys (set in a YAML file or as key=value):"]
    for s in schema():
        choices = f" [{'|'.join(s['choices'])}]" if s.get("choices") else ""
        lines.append(f"  {s['key']}{choices} (default {s['default']!r}): {s['help']}")
    lines.append("task_options of each task (task_options.NAME=value; defaults in parentheses):")
    for task, options in task_option_defaults().items():
        lines.append(f"  {task}: " + ", ".join(f"{k} ({v!r})" for k, v in options.items()))
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="workbench", description="Fine-tune pretrained Transformers on your domain.")
    p.add_argument("--version", action="version", version=f"workbench {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("train", help="fine-tune from a config file and key=value overrides",
                       epilog=_config_help() if "train" in sys.argv[1:2] else None,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("items", nargs="*", metavar="CONFIG.yaml | key=value",
                   help="a YAML config file, then overrides such as train.epochs=2")
    t.add_argument("--dry-run", action="store_true",
                   help="print the resolved config and data report, and make the checks the run makes before "
                        "training (the checkpoint to resume from, the tokenizer, max_length); don't train")
    t.add_argument("--quiet", action="store_true", help="no progress output")

    se = sub.add_parser("search", help="hyperparameter search: optuna proposes settings, each trial is a run",
                        description="Each trial is an ordinary run (<name>-trial-<n>); trials are ranked by their "
                                    "best validation value of the main metric (or --metric).")
    se.add_argument("items", nargs="*", metavar="CONFIG.yaml | key=value",
                    help="the base config, as for train")
    se.add_argument("--space", action="append", default=[], metavar="KEY=SPEC", required=True,
                    help="a range low..high (add :log for a log scale) or choices a,b,c; repeat for more keys, "
                         "e.g. --space train.learning_rate=1e-5..1e-3:log --space train.batch_size=8,16,32")
    se.add_argument("--trials", type=int, default=8, help="number of runs (default 8)")
    se.add_argument("--metric", default=None, help="validation metric to rank by (default: the task's main metric)")
    se.add_argument("--quiet", action="store_true", help="no progress output")

    d = sub.add_parser("demo", help="fine-tune the bundled MiniLM on the bundled BBC News corpus")
    d.add_argument("overrides", nargs="*", metavar="key=value")
    d.add_argument("--quiet", action="store_true")

    r = sub.add_parser("runs", help="list and inspect runs")
    r.add_argument("--dir", default=None, help="runs directory (default: $WORKBENCH_RUNS_DIR or ./runs)")
    rs = r.add_subparsers(dest="runs_command", metavar="ACTION")
    actions = [rs.add_parser("list", help="a table of runs")]
    show = rs.add_parser("show", help="config, status and final metrics vs baseline of one run")
    show.add_argument("run", help="run id, a unique part of it, a run directory, or 'latest'")
    stop = rs.add_parser("stop", help="ask a running run to stop at its next step")
    stop.add_argument("run")
    for action in actions + [show, stop]:  # `runs list --dir X` as well as `runs --dir X list`
        action.add_argument("--dir", default=argparse.SUPPRESS, help="runs directory")

    pr = sub.add_parser("predict", help="predictions of a run's fine-tuned model, one line per input",
                        description="Texts come as arguments, from --file (one per line, blank lines skipped) or, "
                                    "when neither is given, from stdin. Each input gets one line in input order: "
                                    "the label and its score, the labels above the threshold, the value, the "
                                    "entities, the tokens for each mask, or the continuation (newlines in it shown "
                                    "as \\n); --json gives one JSON object per line instead.")
    pr.add_argument("run", help="run id, a unique part of it, a run directory, or 'latest'")
    pr.add_argument("texts", nargs="*", metavar="TEXT", help="texts to predict for")
    pr.add_argument("--file", metavar="PATH", help="read the texts from a file, one per line ('-' for stdin)")
    pr.add_argument("--dir", default=None, help="runs directory (default: $WORKBENCH_RUNS_DIR or ./runs)")
    pr.add_argument("--json", action="store_true",
                    help='JSON Lines: {"input": ..., "prediction": ...} per input, as Run.predict returns it')
    pr.add_argument("--threshold", type=float, metavar="P",
                    help="multi-label runs: the probability a label needs (default: the run's threshold)")
    pr.add_argument("--top-k", type=int, metavar="K", help="masked-lm runs: candidates per mask (default 5)")
    pr.add_argument("--max-new-tokens", type=int, metavar="N",
                    help="causal-lm runs: most tokens to generate (default 50)")

    c = sub.add_parser("config", help="print the default config, or a resolved one")
    c.add_argument("items", nargs="*", metavar="CONFIG.yaml | key=value")
    c.add_argument("--format", choices=("yaml", "magic", "cli"), default="yaml")

    rep = sub.add_parser("report", help="run a template notebook headless and write report.ipynb + report.html",
                         description="Run a template with papermill and export a self-contained HTML report "
                                     "into the run directory (or --output DIR).")
    rep.add_argument("template", nargs="?", help="template name (see --list) or a notebook path")
    rep.add_argument("--list", action="store_true", help="list the templates and their parameters")
    _parameter_args(rep)
    rep.add_argument("--output", "-o", metavar="DIR", help="write report.ipynb and report.html here instead")
    rep.add_argument("--no-input", action="store_true", help="leave the code out of report.html")
    rep.add_argument("--quiet", action="store_true", help="do not show the notebook's output while it runs")
    rep.add_argument("--timeout", type=int, default=3600, metavar="SECONDS",
                     help="stop a cell that runs longer than this (default 3600)")

    new = sub.add_parser("new", help="copy a template for interactive use, with parameters filled in")
    new.add_argument("template", help="template name (see `workbench report --list`) or a notebook path")
    new.add_argument("path", help="where to write the notebook (a .ipynb path or a folder)")
    _parameter_args(new)
    new.add_argument("--force", action="store_true", help="overwrite an existing notebook")
    return p


def _parameter_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                   help="set a template parameter (typed as the template declares it)")
    p.add_argument("-f", "--parameters-file", action="append", default=[], metavar="PARAMS.yaml",
                   help="YAML mapping of parameters (before -p, which wins)")


def cmd_report(args: argparse.Namespace) -> int:
    from . import report

    if args.list:
        print(report.templates_text())
        return 0
    if not args.template:
        raise WorkbenchError("report needs a template name; `workbench report --list` shows them.")
    params = report.collect_parameters(args.template, args.parameter, args.parameters_file)
    if not args.quiet:
        print(f"running {args.template} in a notebook kernel; its output follows", file=sys.stderr, flush=True)
    result = report.run_report(args.template, params, output=args.output, no_input=args.no_input,
                               timeout=args.timeout, progress=not args.quiet)
    print(f"Report: {result.html}\nNotebook: {result.notebook}")
    if result.error:
        print(f"error: {result.error}", file=sys.stderr)
        return 1
    return 0


def _data_suffixes() -> tuple[str, ...]:
    from .data.loaders import DATA_SUFFIXES  # on use: the loaders import pandas

    return DATA_SUFFIXES


def _split_items(items: list[str]) -> tuple[str | None, list[str]]:
    from .config import config_file_problem

    file = None
    overrides = []
    for it in items:
        if "=" in it and not it.endswith((".yaml", ".yml")):
            overrides.append(it)
        elif Path(it).suffix.lower() in _data_suffixes():
            raise WorkbenchError(f"{it} looks like a data file, not a config file (YAML); give it as "
                                 f"data.train={it} (or data.validation=/data.test=).")
        elif problem := config_file_problem(it):  # a mistyped path, or key:value for key=value
            from .errors import ConfigError

            raise ConfigError(problem)
        elif file is None:
            file = it
        else:
            raise WorkbenchError(f"Only one config file can be given (got {file} and {it}); "
                                 "use key=value for the rest.")
    return file, overrides


def cmd_train(file: str | None, overrides: list[str], quiet: bool, dry_run: bool = False,
              base: str | None = None) -> int:
    from .config import resolve

    cfg = resolve(file=file, inline=base, overrides=overrides)
    if dry_run:
        return _dry_run(cfg)
    from .engine.run import execute
    from .events import ConsoleProgress
    from .render import metrics_table_text, test_size_text

    stop = threading.Event()
    previous = _stop_on_signals(stop)
    # a launch of several processes (torchrun) is one run: its main process reports it
    main_process = is_main_process()
    console = None if quiet or not main_process else ConsoleProgress()
    shown_failure = lambda: console is not None and console.shown_failure  # noqa: E731  (printed: not again)
    try:
        run_dir = execute(cfg, sinks=[console] if console else [], stop_event=stop)
    except WorkbenchError:
        if shown_failure() or not main_process:
            return 2  # the progress output has just printed the error (the main process's, in a launch)
        raise
    except KeyboardInterrupt:
        if main_process:
            print("\ninterrupted; the run is marked 'interrupted'.", file=sys.stderr)
        return 130
    finally:
        _restore_signals(previous)
    if not main_process:
        return 0
    info = run_dir.read_info()
    ev = run_dir.read_eval()
    if info.get("status") == "completed" and ev:
        print()
        print(f"Test metrics on {test_size_text(ev)} (baseline: {ev.get('baseline_method') or 'none'}):")
        print(metrics_table_text(ev))
        for name, m in (ev.get("baselines") or {}).items():
            main = ev["main_metric"]
            if main in m:
                print(f"  baseline {name}: {main} {m[main]:.4f}")
        print(f"Training time: {info.get('train_seconds', 0):.0f} s (total {info.get('elapsed_seconds', 0):.0f} s)")
    else:
        if not shown_failure():
            print(f"\nRun {info.get('status')}: {info.get('error') or ''}")
        if info.get("resume_from"):
            launcher = f" (launched as this run was, {info['processes']} processes)" if info.get("processes") else ""
            print(f"Resume with: workbench train {run_dir.config_yaml} "
                  f"train.resume_from={info['resume_from']}{launcher}")
    print(f"Run directory: {run_dir.path}")
    if info.get("status") == "interrupted":
        # A stopped run ends with 130 on its own, as an interrupted command does. In a launch of several
        # processes, 130 from the main process would make torchrun print a failure report below the
        # resume line for a stop that was asked for; the processes end with 0 and run.json says 'interrupted'.
        return 0 if launched_processes() > 1 else 130
    return 0 if info.get("status") == "completed" else 1


def cmd_search(args: argparse.Namespace) -> int:
    from .config import resolve
    from .tuning import parse_space_item, search, used_params

    file, overrides = _split_items(args.items)
    space = dict(parse_space_item(item) for item in args.space)
    result = search(resolve(file=file, overrides=overrides), space, trials=args.trials, metric=args.metric,
                    progress=not args.quiet)
    print()
    print(repr(result))
    if result.interrupted:
        print(f"interrupted after {len(result.trials)} trial(s); the run under way is marked 'interrupted'.",
              file=sys.stderr)
    best = result.best
    if best is None:
        if not result.interrupted:
            print("No trial reached a validation evaluation; the table above and `workbench runs list` show "
                  "why.", file=sys.stderr)
        return 130 if result.interrupted else 1
    settings = " ".join(f"{k}={v}" for k, v in used_params(best).items())
    print(f"Best: trial {best['number']}, validation {result.metric} {best['value']:.4f} ({settings})")
    print(f"Run directory: {best['run_dir']}")
    return 130 if result.interrupted else 0


def _dry_run(cfg) -> int:
    """What the run checks before it trains, without a run folder: the config, the model, and the run's
    own steps before training (``prepare``: the checkpoint to resume from, the data, the tokenizer on the
    data and the model's length limit), which stop a dry run where they would stop the run."""
    from .engine.run import local_paths_absolute, preflight, prepare
    from .events import Phase
    from .models import resolve_model
    from .render import augmentation_text

    print(cfg.to_yaml())  # resolve() has checked every key, task_options included
    print(f"model: {resolve_model(cfg.model)}")  # an unknown alias or a missing folder stops here (no network)
    notices: list[Phase] = []
    cfg = preflight(local_paths_absolute(cfg))
    prepared = prepare(cfg, lambda e: notices.append(e) if isinstance(e, Phase) and e.notice else None)
    splits, said = prepared.splits, {"data warning", "augmentation", "adjusted", "truncation"}
    if prepared.resume:
        print(f"resumes from: {prepared.resume}")
    for notice in notices:
        if notice.name not in said:  # settings the run would not use, a resume's changed settings
            print(f"{notice.name}: {notice.detail}")
    print("data:")
    for name, frame in splits.items():
        print(f"  {name}: {len(frame)} row{'' if len(frame) == 1 else 's'} from {frame.attrs.get('source')}")
    for w in splits.report.get("warnings", []):
        print(f"  warning: {w}")
    if splits.report.get("labels"):
        print("  labels (train): " + ", ".join(f"{k} {v}" for k, v in splits.report["labels"].items()))
    if splits.report.get("augmented"):
        print(f"  augmentation: {augmentation_text(splits.report['augmented'])}; the train rows above include "
              "them, the label counts do not")
    print("tokens:")
    for notice in notices:
        if notice.name == "adjusted":  # the run lowers it the same way and keeps it in run.json under `adjusted`
            print(f"  adjusted: {notice.detail}")
    for name, rep in prepared.task.length_report.items():
        print(f"  {name}: {len(prepared.datasets[name])} {'blocks' if rep.get('packed') else 'examples'} of up to "
              f"{cfg.train.max_length} tokens")
    for notice in notices:
        if notice.name == "truncation":
            print(f"  truncation: {notice.detail}")
    return 0


def cmd_runs_list(root: str | None) -> int:
    from .runs import default_runs_dir, list_runs, validation_text

    root_path = Path(root) if root else default_runs_dir()
    if root and not root_path.is_dir():  # a mistyped --dir is no empty runs folder
        print(f"error: no folder {root_path} (--dir). Give the runs folder, the runs_dir of the runs' config.",
              file=sys.stderr)
        return 2
    rows = list_runs(root_path, validation=True)
    if not rows:
        print(f"No runs under {root_path}." if root_path.is_dir() else
              f"No runs yet: {root_path} does not exist (runs are written there; $WORKBENCH_RUNS_DIR or --dir "
              "for another folder).")
        return 0
    table = [("id", "task", "model", "status", "main metric", "created")]
    for r in rows:
        value = r.get("value")
        base = r.get("baseline")
        metric = ""
        if isinstance(value, (int, float)):
            metric = f"{r.get('main_metric')} {value:.4f}"
            if isinstance(base, (int, float)):
                metric += f" (base {base:.4f})"
        elif text := validation_text(r):  # no test metrics: stopped, or still running
            metric = text
        problem = r.get("error") if r.get("status") in ("unknown", "failed") else r.get("eval_error")
        if problem:  # a failed run's error, or a finished run's unreadable eval.json, instead of a metric
            error = re.sub(r"^/\S*/", "", str(problem))  # a data file's name without its folders
            metric = error if len(error) <= 60 else error[:59] + "…"
        table.append((r["id"], str(r.get("task", "")), _short(str(r.get("model", ""))), str(r.get("status", "")),
                      metric, _age(r.get("created_at"))))
    from .render import text_table

    print(text_table(table))
    return 0


def _short(model: str) -> str:
    return model if len(model) <= 40 else "…" + model[-39:]


def _age(iso: object) -> str:
    if not iso:
        return ""
    if not isinstance(iso, str):  # a hand-edited run.json
        return str(iso)
    try:
        t = _dt.datetime.fromisoformat(iso)
    except ValueError:
        return iso
    return t.astimezone().strftime("%Y-%m-%d %H:%M")


def cmd_runs_show(ref: str, root: str | None) -> int:
    from .errors import RunError
    from .render import metrics_table_text, test_size_text
    from .runs import find_run

    rd = find_run(ref, root)
    try:
        info = rd.read_info()
        problem = None if isinstance(info, dict) else "run.json is not a JSON object"
    except RunError as e:  # a truncated run.json: what else the folder holds is still worth showing
        info, problem = {}, str(e)
    info = info if isinstance(info, dict) else {}
    print(f"{'run:':<13}{rd.id}")
    print(f"{'path:':<13}{rd.path}")
    if problem:
        print(f"{'run.json:':<13}{problem}")
    for k in ("task", "model", "status", "created_at", "finished_at", "device", "processes", "precision", "error"):
        if info.get(k):
            print(f"{k + ':':<13}{info[k]}")
    progress = info.get("progress") if isinstance(info.get("progress"), dict) else {}
    if info.get("status") in ("interrupted", "failed") and progress.get("step"):
        print(f"{'stopped at:':<13}step {progress['step']} of {progress.get('total_steps', '?')}")
    if info.get("status") in ("interrupted", "failed") and info.get("resume_from"):
        print(f"{'resume with:':<13}train.resume_from={info['resume_from']}")
    if info.get("early_stopped"):
        es = info["early_stopped"]
        print(f"{'early stop:':<13}at step {es.get('step')} of {es.get('max_steps')} "
              f"(no better validation result in {es.get('patience')} evaluation(s))")
    print("\nconfig:")
    try:
        config = rd.read_config_text().strip()
    except (OSError, UnicodeDecodeError) as e:
        config = ""
        print(f"  (config.yaml cannot be read: {e.strerror or type(e).__name__})")
    else:
        print("  " + config.replace("\n", "\n  ") if config else "  (no config.yaml: the run stopped before it "
              "was written)")
    ev = rd.read_eval()
    if rd.eval_problem():
        print(f"\ntest metrics: {rd.eval_problem()}")
    if ev:
        print(f"\ntest metrics ({test_size_text(ev)}) vs baseline "
              f"({ev.get('baseline_method') or 'none'}):")
        print(metrics_table_text(ev))
    return 0


# the predict options, each with the runs it applies to: (task, problem or None for any) pairs
_PREDICT_OPTIONS = {"threshold": ("--threshold", [("text-classification", "multi-label")]),
                    "top_k": ("--top-k", [("masked-lm", None)]),
                    "max_new_tokens": ("--max-new-tokens", [("causal-lm", None)])}


def cmd_predict(args: argparse.Namespace) -> int:
    import warnings

    from .api import Run
    from .errors import DataError, RunError
    from .runs import find_run

    rd = find_run(args.run, args.dir)
    info = _saved_model_info(rd)
    task, problem = info.get("task") or rd.read_info().get("task"), info.get("problem")
    kind = f"{task} ({problem})" if task == "text-classification" and problem else task
    options = {}
    for key, (flag, runs) in _PREDICT_OPTIONS.items():
        value = getattr(args, key)
        if value is None:
            continue
        if task and not any(task == t and (p is None or problem == p) for t, p in runs):
            # the task's predict would take the option and ignore it: say so instead
            wanted = " or ".join(t + (f" ({p})" if p else "") for t, p in runs)
            raise RunError(f"{flag} is for {wanted} runs; {rd.id} is a {kind} run. Leave {flag} out.")
        options[key] = value
    if "threshold" in options and not 0 < options["threshold"] < 1:  # as task_options.threshold
        raise RunError(f"--threshold {options['threshold']:g}: give a probability between 0 and 1 (0.5 turns on "
                       "the labels the model finds more likely than not).")
    for key in ("top_k", "max_new_tokens"):
        if key in options and options[key] < 1:
            raise RunError(f"{_PREDICT_OPTIONS[key][0]} {options[key]}: give a whole number of 1 or more.")

    texts = _predict_inputs(args)
    empty = [i for i, t in enumerate(texts, 1) if not t.strip()]
    if empty:
        raise DataError(f"input {empty[0]} is empty; give a text with at least one word (or leave it out).")
    run = Run(rd)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        predictions = run.predict(texts, **options)
    for w in caught:  # e.g. a prompt longer than the model's positions: one line each, without a source line
        print(f"warning: {w.message}", file=sys.stderr)
    for text, prediction in zip(texts, predictions):
        if args.json:
            print(json.dumps({"input": text, "prediction": prediction}, ensure_ascii=False))
        else:
            print(_prediction_text(task, prediction, options.get("threshold", info.get("threshold", 0.5))))
    return 0


def _saved_model_info(rd) -> dict:
    """The saved model's workbench.json (task, labels, problem, threshold); {} where there is none yet
    (Run.predict then says why the run has no model)."""
    try:
        return json.loads((rd.model_dir / "workbench.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _predict_inputs(args: argparse.Namespace) -> list[str]:
    from .errors import DataError

    if args.texts and args.file:
        raise DataError("give the texts as arguments or with --file, not both.")
    if args.texts:
        return list(args.texts)
    if args.file and args.file != "-":
        where = args.file
        try:
            data = Path(args.file).read_bytes()
        except OSError as e:
            raise DataError(f"--file {args.file}: {e.strerror or e}. Give a text file with one input per line, "
                            "or - for stdin.") from None
    elif args.file == "-" or not sys.stdin.isatty():
        where = "stdin"
        stream = getattr(sys.stdin, "buffer", None)
        data = stream.read() if stream is not None else sys.stdin.read()
    else:
        raise DataError("no input: give texts after the run (workbench predict RUN 'a text'), a file with "
                        "--file PATH (one text per line), or pipe them in on stdin.")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise DataError(f"{where} is not UTF-8 text (byte {e.start}); save it as UTF-8.") from None
    texts = [line for line in data.splitlines() if line.strip()]
    if not texts:
        raise DataError(f"{where} has no text (only blank lines or nothing); give one text per line.")
    return texts


def _prediction_text(task: str | None, p, threshold: float) -> str:
    """One line for a prediction (the JSON form has all of it)."""
    if task == "text-classification" and isinstance(p, dict):
        if "value" in p:
            return f"{p['value']:.4f}"
        if "labels" in p:  # multi-label
            scores = p.get("scores", {})
            on = [f"{label} ({scores[str(label)]:.3f})" if str(label) in scores else str(label)
                  for label in p["labels"]]
            return ", ".join(on) if on else f"(no label at or above {threshold:g})"
        return f"{p['label']} ({p['score']:.3f})"
    if task == "token-classification" and isinstance(p, list):
        if not p:
            return "(no entities)"
        return ", ".join(f"{e['entity']} {e['text']!r} ({e['score']:.3f})" for e in p)
    if task == "masked-lm" and isinstance(p, list):
        # one group of candidates per mask, best first
        return " | ".join(", ".join(f"{c['token']} ({c['score']:.3f})" for c in mask) for mask in p)
    if isinstance(p, str):  # a causal-lm continuation
        if not p.strip():  # a blank line would read as a failure
            return "(no text: the model continued with only special tokens or spaces)" if p == "" else repr(p)
        return p.replace("\r\n", "\\n").replace("\n", "\\n").replace("\r", "\\n")
    return json.dumps(p, ensure_ascii=False)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra:
        # argparse stops filling a nargs="*" positional at the first flag, so items after a flag
        # (`train model=x --quiet data.train=y`) come back unrecognised; they belong to the items
        items = "items" if args.command in ("train", "config", "search") else \
            "overrides" if args.command == "demo" else "texts" if args.command == "predict" else None
        if items is None or any(x.startswith("-") for x in extra):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        setattr(args, items, list(getattr(args, items)) + extra)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main_process = is_main_process()
    if not main_process:
        # a launch of several processes (torchrun) is one command: its main process prints and reports;
        # the others keep only their stderr, for a failure of their own
        sys.stdout = open(os.devnull, "w")
    try:
        code = _run(parser, args)
        sys.stdout.flush()  # here, so a closed pipe is met inside the handlers below, not at exit
        return code
    except WorkbenchError as e:
        if main_process:  # the same mistake stops every process of a launch: said once
            print(f"error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (`workbench runs list | head`): stop quietly, as other Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
    except OSError as e:  # a folder that is a file, no permission, a full disk: the path and the reason
        where = f" ({e.filename})" if e.filename else ""
        print(f"error: {e.strerror or e}{where}. Check the path and its permissions "
              "(runs_dir or a data path).", file=sys.stderr)
        return 2


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "train":
        file, overrides = _split_items(args.items)
        if file is None and not overrides:
            parser.error("train needs a config file or key=value settings (see `workbench train --help`)")
        return cmd_train(file, overrides, args.quiet, args.dry_run)
    if args.command == "demo":
        return cmd_train(None, list(args.overrides), args.quiet, base=DEMO_CONFIG)
    if args.command == "search":
        return cmd_search(args)
    if args.command == "runs":
        if args.runs_command == "show":
            return cmd_runs_show(args.run, args.dir)
        if args.runs_command == "stop":
            from .runs import ACTIVE, find_run

            rd = find_run(args.run, args.dir)
            status = rd.read_info().get("status")
            if status not in ACTIVE:
                print(f"error: {rd.id} is {status}; only a pending or running run can be stopped.", file=sys.stderr)
                return 1
            rd.request_stop()
            print(f"asked {rd.id} to stop at its next step")
            return 0
        return cmd_runs_list(args.dir)
    if args.command == "predict":
        return cmd_predict(args)
    if args.command == "report":
        return cmd_report(args)
    if args.command == "new":
        from . import report

        params = report.collect_parameters(args.template, args.parameter, args.parameters_file)
        path = report.new_notebook(args.template, args.path, params, force=args.force)
        print(f"Wrote {path}; open it in Jupyter and run all cells.")
        return 0
    if args.command == "config":
        from .config import resolve

        file, overrides = _split_items(args.items)
        cfg = resolve(file=file, overrides=overrides)
        print(cfg.to_yaml(comments=True) if args.format == "yaml" else cfg.to_magic() if args.format == "magic"
              else cfg.to_cli())
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
