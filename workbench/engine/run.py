"""One fine-tuning run, top to bottom.

    config -> run directory -> data -> tokenizer/model -> baseline -> Trainer -> test -> save

Front ends call ``execute()``; it never prints or displays. Progress leaves as events, and the
record is the run directory (see ``workbench.runs``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import socket
import subprocess
import threading
import time
import traceback
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

from .. import tasks
from ..config import RunConfig, unused_settings, value_at
from ..data import fingerprint
from ..errors import ConfigError, RunError, RunFolderDeleted, UnknownMetric, WorkbenchError
from ..events import Emitter, MetricsWriter, Phase, RunFailed, RunFinished, RunStarted
from ..models import apply_freeze, check_freeze_layers, count_parameters, load_tokenizer, max_positions, resolve_model
from ..render import augmentation_text, test_size_text
from ..runs import (ACTIVE, COMPLETE_MARKER, RunDir, atomic_write_json, atomic_write_text, find_run, list_runs, now_iso,
                    read_json_object)
from .device import choose_device, choose_precision, hardware, launched_processes, versions
from .trainer import EventBridge, trainer_class, training_arguments


def execute(cfg: RunConfig, sinks: list[Callable] | None = None, stop_event: threading.Event | None = None,
            run_dir: RunDir | None = None) -> RunDir:
    """Run ``cfg`` to the end and return its run directory (status completed, failed or interrupted).

    Errors are recorded in run.json and re-raised; KeyboardInterrupt leaves status ``interrupted``.
    """
    cfg = local_paths_absolute(cfg)
    launched = launched_processes()
    if launched > 1:  # torchrun / accelerate launch: one run, its folder made by the main process
        cfg, run_dir = _share_run(cfg, run_dir)
        if isinstance(run_dir, FollowerRunDir):
            return _follow(cfg, run_dir, stop_event)
    if run_dir is None:  # front ends that make the folder first (to show it) call preflight themselves
        cfg = preflight(cfg)
    run_dir = run_dir or RunDir.create(cfg.runs_dir, cfg.name, cfg.task)
    emit = Emitter([MetricsWriter(run_dir), *(sinks or [])])
    atomic_write_text(run_dir.config_yaml, cfg.to_yaml())
    run_dir.pin()  # from here on, a folder at its path without this config.yaml is not this run's
    run_dir.update_info(id=run_dir.id, name=cfg.name or run_dir.id, task=cfg.task, model=cfg.model,
                        status="pending", created_at=now_iso(), pid=os.getpid(), host=socket.gethostname(),
                        config_hash=cfg.hash(), versions=versions(), hardware=hardware(), git_commit=_git_commit(),
                        **_notebook(), **({"processes": launched} if launched > 1 else {}))
    for sink in sinks or []:  # views that name the run from the start: one failing on its data still says which
        describe = getattr(getattr(sink, "state", None), "describe", None)
        if callable(describe):
            describe(run_dir, cfg)
    try:
        with _one_run_at_a_time(run_dir, emit, stop_event) as started:
            if started:
                with quiet_libraries():
                    _train(cfg, run_dir, emit, stop_event)
    except RunFolderDeleted as e:
        emit(RunFailed(status="interrupted", error=str(e)))  # nothing to record it in
        if run_dir.path.is_dir() and run_dir.gone():
            # a folder made anew at its path after the deletion (a checkpoint save in between) holds only
            # what this run wrote since: the user deleted the run, so it goes too
            import shutil

            shutil.rmtree(run_dir.path, ignore_errors=True)
        raise
    except KeyboardInterrupt:
        ckpts = run_dir.complete_checkpoints()  # one saved before the interrupt continues the run
        run_dir.set_status("interrupted", error="interrupted by the user (KeyboardInterrupt or SIGTERM)",
                           resume_from=str(ckpts[-1]) if ckpts else None)
        emit(RunFailed(status="interrupted", error="interrupted by the user"))
        raise
    except WorkbenchError as e:
        run_dir.set_status("failed", error=str(e))
        emit(RunFailed(status="failed", error=str(e)))
        raise
    except Exception as e:
        run_dir.set_status("failed", error=f"{type(e).__name__}: {e}")
        atomic_write_text(run_dir.path / "error.txt", traceback.format_exc())
        emit(RunFailed(status="failed", error=f"{type(e).__name__}: {e}"))
        raise
    finally:
        # a stop request is answered once the run has ended, however it ended (one asked for after the
        # last step has nothing left to stop); the record of it is the status
        run_dir.stop_file.unlink(missing_ok=True)
    if launched > 1:
        _results_written()
    return run_dir


# ---- runs launched as several processes (torchrun, accelerate launch) ----------------------------

class FollowerRunDir(RunDir):
    """The run folder as a process other than the main one sees it: every process trains, evaluates
    and tests (Trainer spreads the batches and gathers the predictions), and the main process alone
    writes run.json, metrics.jsonl, checkpoints' markers, eval.json and the model."""

    def pin(self) -> None:
        pass

    def update_info(self, **changes: Any) -> dict:
        return changes

    def request_stop(self) -> None:
        pass


def _share_run(cfg: RunConfig, run_dir: RunDir | None) -> tuple[RunConfig, RunDir]:
    """The main process checks the config and makes the run folder; the others get both from it
    (the same resolved config, ``latest`` included), or its error, rather than waiting for it."""
    import torch.distributed as dist
    from accelerate import PartialState

    PartialState()  # joins the launcher's process group, as Trainer would at its start
    if not dist.is_initialized():
        raise RunError(f"this process was launched as one of {launched_processes()} (WORLD_SIZE), but it could "
                       "not join their process group; start it with torchrun or accelerate launch.")
    if dist.get_rank() == 0:
        try:
            cfg = preflight(cfg) if run_dir is None else cfg
            run_dir = run_dir or RunDir.create(cfg.runs_dir, cfg.name, cfg.task)
        except BaseException as e:
            dist.broadcast_object_list([("error", f"{type(e).__name__}: {e}")], src=0)
            raise
        dist.broadcast_object_list([(cfg, str(run_dir.path))], src=0)
        return cfg, run_dir
    box: list[Any] = [None]
    dist.broadcast_object_list(box, src=0)
    if box[0][0] == "error":
        raise RunError(f"the main process of this launch stopped before the run began: {box[0][1]}")
    return box[0][0], FollowerRunDir(Path(box[0][1]))


def _follow(cfg: RunConfig, run_dir: FollowerRunDir, stop_event: threading.Event | None) -> RunDir:
    """A process other than the main one: the same training, no events and no writes of its own."""
    emit = Emitter([])
    with quiet_libraries():
        _train(cfg, run_dir, emit, stop_event)
    _results_written()
    return RunDir(run_dir.path)


def _results_written() -> None:
    """Every process of a launch waits here for the main one to have written the results and the model,
    so that each returns the finished run (a script reading ``run.metrics`` reads them in any process).
    Only a run that ended without an error gets here; where the main process fails instead, it exits
    and the launcher ends the others."""
    import torch.distributed as dist

    if dist.is_initialized():
        dist.barrier()


def local_paths_absolute(cfg: RunConfig) -> RunConfig:
    """``cfg`` with its local files and folders (model, data, resume_from, runs_dir) named by absolute
    path, so that the run's config.yaml, and a %%finetune cell copied from it, re-run from any folder
    (a notebook's kernel works in the notebook's own folder). Aliases, hub ids and in-memory data are
    left as they are; a relative path that exists nowhere is left for the run to report."""
    import glob
    from dataclasses import replace

    from ..data.loaders import ALIASES as DATA_ALIASES
    from ..models import ALIASES as MODEL_ALIASES

    def absolute(ref: Any, aliases: Any = ()) -> Any:
        if not isinstance(ref, str) or not ref or ref in aliases:
            return ref
        path = Path(ref).expanduser()
        if path.is_absolute() or not (path.exists() or glob.glob(ref)):
            return ref
        return os.path.abspath(path)

    data = replace(cfg.data, **{split: absolute(getattr(cfg.data, split), DATA_ALIASES)
                                for split in ("train", "validation", "test")})
    return replace(cfg, model=absolute(cfg.model, MODEL_ALIASES), data=data,
                   train=replace(cfg.train, resume_from=absolute(cfg.train.resume_from)),
                   runs_dir=os.path.abspath(Path(cfg.runs_dir).expanduser()))


def _adjust(cfg: RunConfig, run_dir: RunDir | None, emit: Callable, key: str, value: Any, why: str) -> None:
    """Change one setting the run cannot use as given, say so, and keep config.yaml the config that ran
    (run.json's ``adjusted`` keeps what was asked)."""
    section, name = key.split(".")
    asked = getattr(getattr(cfg, section), name)
    setattr(getattr(cfg, section), name, value)
    emit(Phase("adjusted", f"{key}: {asked} -> {value}: {why}", notice=True))
    if run_dir is None:  # a dry run: said, nothing to record
        return
    adjusted = {**(run_dir.read_info().get("adjusted") or {}), key: {"asked": asked, "used": value, "why": why}}
    if not isinstance(run_dir, FollowerRunDir):
        atomic_write_text(run_dir.config_yaml, cfg.to_yaml())
    run_dir.update_info(adjusted=adjusted, config_hash=cfg.hash())


# Trainer and accelerate keep process-wide state (accelerate's AcceleratorState, reset when a Trainer
# is made): a second run training in the same process at the same time (a background cell beside
# the panel) broke the first. Runs of one process therefore train one after the other.
_TRAINING = threading.Lock()
_training_run: str | None = None  # the id of the run that holds it


@contextmanager
def _one_run_at_a_time(run_dir: RunDir, emit: Emitter, stop_event: threading.Event | None):
    """Wait, pending and stoppable, while another run of this process trains; yields whether this run
    may start (False: it was stopped while it waited)."""
    global _training_run
    if not _TRAINING.acquire(blocking=False):
        emit(Phase("waiting", f"run {_training_run or '?'} is training in this process; "
                              "this run starts when it ends (runs of one kernel train one at a time)", notice=True))
        while not _TRAINING.acquire(timeout=0.5):
            if _stopped_before_training(run_dir, emit, stop_event, "while it waited for another run"):
                yield False
                return
    _training_run = run_dir.id
    try:
        yield True
    finally:
        _training_run = None
        _TRAINING.release()


def _stopped_before_training(run_dir: RunDir, emit: Emitter, stop_event: threading.Event | None, where: str) -> bool:
    """A stop asked for while the run is still pending (data, baseline: minutes on a large model) ends
    it at the next stage rather than after its first training steps."""
    if not ((stop_event is not None and stop_event.is_set()) or run_dir.stop_file.exists()):
        return False
    error = f"stopped on request before training, {where}"
    run_dir.set_status("interrupted", error=error)
    emit(RunFailed(status="interrupted", error=error))
    return True


def _unit(task: Any, split: str) -> str:
    """What a split's rows are once tokenized: examples, or blocks of packed language-model text."""
    rep = (getattr(task, "length_report", None) or {}).get(split, {})
    return f"blocks of {rep.get('max_length')} tokens" if rep.get("packed") else "examples"


def truncation_notices(reports: dict, max_length: int) -> list[str]:
    """What cutting at ``max_length`` did to each split: the training texts lose what they do not fit,
    and a validation or test split is scored only on what fits."""
    notices = []
    for split, rep in reports.items():
        if not rep.get("truncated"):
            continue
        share = 1 - rep["tokens_kept"] / max(rep["tokens_before"], 1)
        head = (f"{rep['truncated']} of {rep['examples']} {'training' if split == 'train' else split} texts are "
                f"longer than max_length {max_length} tokens and were cut ({share:.0%} of the split's tokens)")
        if split == "train":
            notices.append(head)
        elif rep.get("truncated_words"):
            notices.append(f"{head}: its metrics count the {rep['truncated_words']} words past the cut as untagged; "
                           "raise train.max_length to score them")
        else:
            notices.append(f"{head}: its metrics score only what fits; raise train.max_length to score more")
    return notices


def _notebook() -> dict:
    """``{"notebook": path}`` for a run started from a notebook's kernel under Jupyter Server, which
    names the notebook to its kernels (JPY_SESSION_NAME: an absolute path, or one from the server's
    root); the sidebar's "Open notebook" leads back to it. {} elsewhere."""
    import sys

    path = os.environ.get("JPY_SESSION_NAME")
    if not path or not path.endswith(".ipynb") or "ipykernel" not in sys.modules:
        return {}
    return {"notebook": path}


def preflight(cfg: RunConfig) -> RunConfig:
    """The checks that need neither the data nor the model's weights, made before a run folder exists,
    so a mistake in them leaves no failed run behind: the model (a local folder that does not exist or
    is no model folder, an unknown name while the Hub is off), the checkpoint to resume from and whether
    it continues this task and model, and the depth of ``train.freeze: layers:N``. Returns ``cfg`` with
    ``train.resume_from: latest`` pinned to the run it means now (the new run's folder would be the
    latest one once made, and its config.yaml then says which run it continued)."""
    from ..config import resolve

    resolve_model(cfg.model)  # reads no weights and asks no network: aliases, folders and hub ids by name
    resume = resume_checkpoint(cfg)
    if resume:
        check_resume_source(cfg, resume)
        if cfg.train.max_steps and cfg.train.max_steps > 0:
            _check_steps_left(cfg, resume, n_train=0)  # the end step needs no data when max_steps sets it
        if cfg.train.resume_from == "latest":
            cfg = resolve(inline=cfg, overrides={"train.resume_from": resume.parent.parent.name})
    check_freeze_layers(cfg)
    return cfg


@dataclasses.dataclass
class Prepared:
    """What the run has before training: its task, the checked splits, the tokenizer and the tokens."""

    task: Any
    splits: Any
    tokenizer: Any
    datasets: dict
    resume: Path | None


def prepare(cfg: RunConfig, emit: Callable, run_dir: RunDir | None = None) -> Prepared:
    """The run's steps before training, each with its checks: the checkpoint to resume from, the data,
    the tokenizer and the tokens. Notices (data warnings, a setting adjusted, truncation) go to ``emit`` as
    phases. A run records what it found in its folder; without ``run_dir`` (``workbench train --dry-run``)
    nothing is written, and the same checks stop it at the same places."""
    task = tasks.get(cfg.task)(cfg)
    task.emit = emit  # a task reports its own long stages (a baseline that trains a head) as phases
    # checked first (again, where a front end made the folder after its preflight): a wrong path fails
    # before minutes of data and baseline work
    resume = resume_checkpoint(cfg, this_run=run_dir)
    if resume:
        check_resume_source(cfg, resume)
        changed = resume_differences(cfg, resume)
        if changed:
            emit(Phase("resume warning", f"these settings differ from the checkpoint's run, and training continues "
                                         f"from its step with the new ones: {'; '.join(changed)}", notice=True))
        if run_dir is not None:
            # the run it continues, for listings and the sidebar (the interrupted run and this one share a name)
            run_dir.update_info(resumed_from={"run": resume.parent.parent.name, "checkpoint": str(resume),
                                              "step": _checkpoint_step(resume)},
                                **({"resume_differences": changed} if changed else {}))

    check_freeze_layers(cfg)  # against the model's config.json, before the data and the baseline
    unused = unused_settings(cfg)
    if unused:
        emit(Phase("unused settings", "; ".join(f"{k} {value_at(cfg, k)} is not used: {why}"
                                                for k, (why, _) in unused.items()), notice=True))

    # 1. data: load, check, split (errors here name file, column and rows)
    emit(Phase("loading data", str(cfg.data.train) if isinstance(cfg.data.train, str) else "in-memory data"))
    splits = task.load_data()
    emit(Phase("data", ", ".join(f"{n} {len(f)}" for n, f in splits.items())))
    for warning in splits.report["warnings"]:
        emit(Phase("data warning", warning, notice=True))
    if splits.report.get("augmented"):
        emit(Phase("augmentation", augmentation_text(splits.report["augmented"]), notice=True))

    # 2. tokenizer and tokens (no padding here: the collator pads each batch to its longest text)
    resolve_model(cfg.model)
    tokenizer = load_tokenizer(cfg)
    limit = max_positions(cfg, tokenizer)
    if limit and cfg.train.max_length > limit:
        # longer sequences would index past the model's position table (a RuntimeError mid-run)
        _adjust(cfg, run_dir, emit, "train.max_length", limit,
                f"the model takes at most {limit} tokens per sequence (its position embeddings)")
    datasets = task.tokenize(splits, tokenizer)
    for detail in truncation_notices(task.length_report, cfg.train.max_length):
        emit(Phase("truncation", detail, notice=True))
    if run_dir is not None:
        data_info = {**splits.report, "fingerprint": fingerprint(splits, [c for c in (
            cfg.data.text_column, cfg.data.label_column, cfg.data.tokens_column, cfg.data.tags_column,
            cfg.data.prompt_column, cfg.data.response_column)]), "lengths": task.length_report}
        run_dir.update_info(data=data_info, data_fingerprint=data_info["fingerprint"], main_metric=task.main_metric)
    if resume:
        check_resume_labels(task, resume)
        _check_steps_left(cfg, resume, len(datasets["train"]))
    return Prepared(task, splits, tokenizer, datasets, resume)


def _train(cfg: RunConfig, run_dir: RunDir, emit: Emitter, stop_event: threading.Event | None) -> None:
    from transformers import EarlyStoppingCallback, set_seed

    t_start = time.monotonic()
    set_seed(cfg.train.seed)
    prepared = prepare(cfg, emit, run_dir)
    task, splits, tokenizer, datasets, resume = (prepared.task, prepared.splits, prepared.tokenizer,
                                                 prepared.datasets, prepared.resume)

    if _stopped_before_training(run_dir, emit, stop_event, "after loading and tokenizing the data"):
        return
    device = choose_device()
    precision = choose_precision(cfg.train.precision, device)
    if cfg.train.precision not in ("auto", precision):
        emit(Phase("precision", f"train.precision {cfg.train.precision} is not available on this {device}; "
                                f"training in {precision}", notice=True))
    task.pad_to_multiple_of = 8 if device == "cuda" else None

    # 3. baseline: the base model on the same test split, before any training
    baseline: dict = {}
    if cfg.baseline:
        from ..tasks._common import BaselineStopped, stops_baseline

        emit(Phase("baseline", "evaluating the base model on the test split"))
        try:
            with stops_baseline(lambda: (stop_event is not None and stop_event.is_set()) or run_dir.stop_file.exists()):
                baseline = task.baseline(splits, tokenizer, datasets, device, precision)
        except BaselineStopped:
            _stopped_before_training(run_dir, emit, stop_event, "while evaluating the base model")
            return
        if _stopped_before_training(run_dir, emit, stop_event, "after evaluating the base model"):
            return

    # 4. the model to fine-tune
    model = task.load_model()
    apply_freeze(model, cfg.train.freeze)
    model = _maybe_peft(cfg, task, model)
    total, trainable = count_parameters(model)
    if trainable == 0:
        raise ConfigError(f"train.freeze: {cfg.train.freeze!r} leaves no trainable parameters in this model "
                          "(its output layer shares weights with the frozen embeddings). Use 'embeddings' or "
                          "'layers:N', or lora.enabled: true.")

    has_eval = len(datasets["validation"]) > 0
    args = training_arguments(cfg, task, run_dir, device, precision, has_eval)
    bridge = EventBridge(emit, run_dir, stop_event, tokens_per_epoch=int(sum(datasets["train"]["length"])),
                         num_train=len(datasets["train"]))
    callbacks: list = [bridge.callback]
    if cfg.train.early_stopping_patience and args.load_best_model_at_end:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=cfg.train.early_stopping_patience))
    trainer = trainer_class()(
        model=model, args=args, train_dataset=datasets["train"],
        eval_dataset=datasets["validation"] if has_eval else None,
        processing_class=tokenizer, data_collator=task.collator(tokenizer),
        compute_metrics=task.compute_metrics,
        preprocess_logits_for_metrics=task.preprocess_logits_for_metrics,
        callbacks=callbacks,
    )
    trainer.sparse_prediction = task.sparse_prediction
    _drop_library_progress(trainer)
    if cfg.train.metric_for_best_model and args.eval_strategy != "no":  # evaluated: it picks, ranks or stops on it
        check_best_metric(trainer, datasets["validation"], cfg.train.metric_for_best_model)

    run_dir.set_status("running", device=device, precision=precision,
                       parameters={"total": total, "trainable": trainable})
    emit(RunStarted(run_id=run_dir.id, run_dir=str(run_dir.path), task=cfg.task, model=cfg.model,
                    total_steps=_total_steps(args, len(datasets["train"])), num_train=len(datasets["train"]),
                    device=device if launched_processes() == 1 else f"{device} × {launched_processes()} processes",
                    precision=precision, main_metric=task.main_metric,
                    train_unit=_unit(task, "train")))

    # 5. train
    t_train = time.monotonic()
    if resume:
        source = read_json_object(resume.parent.parent / "run.json") or {}
        ended = " (that run had completed; training goes on past its end)" if source.get("status") == "completed" \
            else ""
        emit(Phase("resuming", f"{resume}{ended}", notice=bool(ended)))
    try:
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    except Exception as e:
        if run_dir.gone():
            raise RunFolderDeleted(run_dir.path) from None
        unused = _unused_parameters(e, trainer.model)
        if unused is not None:
            raise RunError(f"the model has trainable parameters its loss does not use{unused}, and the processes of "
                           "this launch wait for a gradient of every trainable parameter at each step. Set "
                           "train.find_unused_parameters=true: each step then looks for the parameters left "
                           "without one.") from e
        raise
    if bridge.folder_deleted:
        raise RunFolderDeleted(run_dir.path)
    train_seconds = time.monotonic() - t_train
    run_dir.update_info(progress={"step": trainer.state.global_step, "total_steps": trainer.state.max_steps,
                                  "epoch": round(trainer.state.epoch or 0.0, 4)})  # where training ended
    stopper = next((c for c in callbacks if isinstance(c, EarlyStoppingCallback)), None)
    if stopper is not None and stopper.early_stopping_patience_counter >= stopper.early_stopping_patience \
            and trainer.state.global_step < trainer.state.max_steps:  # patience ran out before the last step
        state = trainer.state
        best = f"; best {args.metric_for_best_model} {state.best_metric:.4f}" if state.best_metric is not None else ""
        detail = (f"no better validation {args.metric_for_best_model} in {stopper.early_stopping_patience} "
                  f"evaluation(s): stopped at step {state.global_step} of {state.max_steps}{best}")
        if state.best_model_checkpoint:  # loaded back at the end (load_best_model_at_end, which it needs)
            detail += f"; the test uses the best checkpoint, {Path(state.best_model_checkpoint).name}"
        emit(Phase("early stopping", detail, notice=True))
        run_dir.update_info(early_stopped={"step": state.global_step, "max_steps": state.max_steps,
                                           "patience": stopper.early_stopping_patience})
    if bridge.nonfinite_step is not None:
        raise RunError(f"training loss became non-finite (NaN or inf) at step {bridge.nonfinite_step}; stopped "
                       "before writing a checkpoint. Lower train.learning_rate or use precision: fp32.")
    if bridge.stopped:
        ckpts = run_dir.complete_checkpoints()
        run_dir.set_status("interrupted", error="stopped on request",
                           resume_from=str(ckpts[-1]) if ckpts else None)
        emit(RunFailed(status="interrupted", error="stopped on request"))
        return

    # 6. test: the fine-tuned model on the same split as the baseline
    # packed language-model text is scored in blocks, not in the texts the data table counts
    unit = _unit(task, "test")
    emit(Phase("testing", f"{len(datasets['test'])} test {unit}"))
    result = task.evaluate(trainer, datasets, splits, baseline)
    metrics = result.pop("metrics")
    base = baseline.get("baseline", {})
    evaluation = {
        "split": "test",
        "num_examples": len(datasets["test"]),
        "example_unit": unit,
        "main_metric": task.main_metric,
        "greater_is_better": task.greater_is_better,
        "finetuned": metrics,
        "baseline": base,
        "delta": {k: metrics[k] - base[k] for k in metrics
                  if isinstance(metrics.get(k), (int, float)) and isinstance(base.get(k), (int, float))},
        "baselines": baseline.get("baselines", {}),
        "baseline_method": baseline.get("baseline_method"),
        **result,
    }
    if isinstance(run_dir, FollowerRunDir):  # the main process writes the results and the model
        return
    atomic_write_json(run_dir.eval_json, evaluation)

    # 7. save the final model, its tokenizer and a model card
    emit(Phase("saving", str(run_dir.model_dir)))
    _save_model(cfg, task, trainer, tokenizer, run_dir, evaluation)
    elapsed = time.monotonic() - t_start
    run_dir.set_status("completed", error=None, train_seconds=round(train_seconds, 2),
                       elapsed_seconds=round(elapsed, 2),
                       metrics={task.main_metric: metrics.get(task.main_metric),
                                "baseline": base.get(task.main_metric)})
    emit(RunFinished(status="completed", metrics=metrics, baseline=base, elapsed=elapsed,
                     train_seconds=train_seconds))


def check_best_metric(trainer: Any, validation: Any, name: str) -> None:
    """Fail before training when ``train.metric_for_best_model`` names no validation metric of the task.

    Trainer would raise only at the first evaluation, after an epoch of training; the names come from
    the task's own metrics on a few validation rows (``predict`` fires no evaluation events).
    """
    out = trainer.predict(validation.select(range(min(8, len(validation)))), metric_key_prefix="eval")
    names = [k.removeprefix("eval_") for k in out.metrics
             if k.startswith("eval_") and not k.endswith(("_runtime", "_per_second", "_preparation_time"))]
    if name.removeprefix("eval_") not in names:
        raise UnknownMetric(f"train.metric_for_best_model: {name!r} is not a validation metric of this task; "
                            f"choose one of {', '.join(names)} (or leave it unset for the task's main metric).",
                            name, names)


# settings that may change on resume without changing what is trained or how
_RESUME_FREE = ("name", "runs_dir", "baseline", "train.resume_from", "train.logging_steps", "train.save_checkpoints")


def _unused_parameters(error: Exception, model) -> str | None:
    """For DDP's error about parameters that got no gradient (find_unused_parameters off): the names of
    those parameters as ``" (a, b)"`` ("" where torch did not list them); None for any other error."""
    text = str(error)
    if not isinstance(error, RuntimeError) or "find_unused_parameters=True" not in text:
        return None
    # "Parameter indices which did not receive grad for rank 0: 41 42", indices into the trainable
    # parameters in the order DDP registers them (that of named_parameters)
    found = re.search(r"did not receive grad for rank \d+: ([\d ]+)", text)
    if not found:
        return ""
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    picked = [names[int(i)] for i in found.group(1).split() if int(i) < len(names)]
    more = f" and {len(picked) - 5} more" if len(picked) > 5 else ""
    return f" ({', '.join(picked[:5])}{more})" if picked else ""


def resume_differences(cfg: RunConfig, checkpoint: Path) -> list[str]:
    """``key: old -> new`` for the settings of ``cfg`` that differ from those of the run that wrote
    ``checkpoint`` (its config.yaml), other than names, folders and logging."""
    from ..config import flatten, resolve

    source = checkpoint.parent.parent / "config.yaml"
    try:
        before = flatten(local_paths_absolute(resolve(file=source)).to_dict())
    except (OSError, WorkbenchError):
        return []
    now = flatten(cfg.to_dict())
    changed = [f"{k}: {before.get(k)} -> {now.get(k)}" for k in sorted(set(before) | set(now))
               if k not in _RESUME_FREE and before.get(k) != now.get(k)]
    # a step takes a batch from each process: with another number of them, epochs count other steps
    had = (read_json_object(checkpoint.parent.parent / "run.json") or {}).get("processes") or 1
    now_processes = launched_processes()
    if had != now_processes:
        changed.append(f"processes: {had} -> {now_processes} (a step takes a batch in each process, so an epoch "
                       "is another number of steps)")
    return changed


def resume_checkpoint(cfg: RunConfig, this_run: RunDir | None = None) -> Path | None:
    """The checkpoint ``train.resume_from`` names: a checkpoint folder, or a run's latest complete one
    (``latest``: of the newest run other than ``this_run``)."""
    ref = cfg.train.resume_from
    if not ref:
        return None
    if ref == "latest":
        ref = str(_latest_resumable(cfg, this_run))
    path = Path(ref)
    if path.is_dir() and (path / "trainer_state.json").exists():
        if not (path / COMPLETE_MARKER).exists():
            raise ConfigError(f"train.resume_from: {path} has no {COMPLETE_MARKER} marker, so it may be half "
                              "written. Pick an earlier checkpoint of the same run.")
        return path
    try:
        run = RunDir(path) if (path / "run.json").exists() else find_run(ref, cfg.runs_dir)
    except RunError as e:
        raise ConfigError(f"train.resume_from: {e}") from None
    ckpts = run.complete_checkpoints()
    if not ckpts:
        raise ConfigError(f"train.resume_from: run {run.id} has no complete checkpoint to resume from "
                          "(it stopped before its first save, or ran with train.save_checkpoints: false).")
    return ckpts[-1]


def _latest_resumable(cfg: RunConfig, this_run: RunDir | None) -> Path:
    """The run ``train.resume_from: latest`` means: the newest earlier run of this task and model that
    ended with training left to do (stopped, or failed after a checkpoint), or else the newest such run
    that completed (to train it further). A run still going, a run of another task or model, and a run
    with no complete checkpoint are passed over, so the newest folder being a failed start does not hide
    the interrupted run before it."""
    rows = [r for r in list_runs(Path(cfg.runs_dir)) if this_run is None or r["id"] != this_run.id]
    if not rows:
        raise ConfigError(f"train.resume_from: latest: there is no earlier run under {cfg.runs_dir}.")
    same = [r for r in rows if r.get("task") == cfg.task and r.get("model") == cfg.model
            and r.get("status") not in ACTIVE]
    with_ckpt = [r for r in same if RunDir(Path(r["path"])).complete_checkpoints()]
    left = [r for r in with_ckpt if r.get("status") != "completed"]
    if left or with_ckpt:
        return Path((left or with_ckpt)[0]["path"])
    why = (f"none of the {len(rows)} earlier runs is a {cfg.task} run of model {cfg.model}" if not same
           else f"none of the {len(same)} earlier {cfg.task} runs of model {cfg.model} has a complete checkpoint "
                "(they stopped before their first save, or ran with train.save_checkpoints: false)")
    raise ConfigError(f"train.resume_from: latest: {why} under {cfg.runs_dir}. Name a run id or a checkpoint "
                      "folder instead, or train without train.resume_from.")


# what fixes the shapes of a model's weights, under the names transformers' configs use
_SHAPE_KEYS = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
               "intermediate_size", "n_embd", "n_layer", "n_head", "dim", "n_layers")


def check_resume_source(cfg: RunConfig, checkpoint: Path) -> None:
    """A checkpoint continues the task and the model it started: another task's or another model's
    weights would fail to load only after the data and the baseline, with a size-mismatch traceback."""
    from ..config import resolve

    run = checkpoint.parent.parent
    try:
        before = resolve(file=run / "config.yaml")
    except (OSError, WorkbenchError):
        before = None
    if before is not None and before.task != cfg.task:
        raise ConfigError(f"train.resume_from: {checkpoint.name} of run {run.name} was trained for task "
                          f"{before.task}, and this run is {cfg.task}; a run continues only the task it started. "
                          f"Set task: {before.task} to continue it, or train a new run without train.resume_from.")
    saved = read_json_object(checkpoint / "config.json")
    local = Path(resolve_model(cfg.model))
    model = read_json_object(local / "config.json") if local.is_dir() else None
    if saved and model:
        differ = [f"{k} {saved[k]} against {model[k]}" for k in _SHAPE_KEYS
                  if k in saved and k in model and saved[k] != model[k]]
        if differ:
            started = f" (it started from {before.model})" if before is not None else ""
            raise ConfigError(f"train.resume_from: {checkpoint.name} of run {run.name} holds another model than "
                              f"model {cfg.model}{started}: {'; '.join(differ)}. Set model to the one the run "
                              "started from, or train a new run without train.resume_from.")


def check_resume_labels(task: Any, checkpoint: Path) -> None:
    """The checkpoint's output layer has one unit per label it was trained for (one for regression);
    data with other labels would not load into it, or would read its units as the wrong labels."""
    saved = read_json_object(checkpoint / "config.json")
    info = task.model_info() if hasattr(task, "model_info") else {}
    names = info.get("labels", info.get("tags"))
    if not saved or not isinstance(saved.get("id2label"), dict) or \
            (names is None and info.get("problem") != "regression"):
        return
    had = [str(saved["id2label"][k]) for k in sorted(saved["id2label"], key=int)]
    if names is None:
        if len(had) == 1:
            return
        now, wanted = "a number per text (regression)", "one output"
    else:
        now, wanted = ", ".join(map(str, names)), f"{len(names)} labels"
        if had == [str(v) for v in names]:
            return
    raise ConfigError(f"train.resume_from: {checkpoint.name} of run {checkpoint.parent.parent.name} was trained for "
                      f"{', '.join(had) if len(had) > 1 else 'one output (regression)'}; this run's data need "
                      f"{wanted} ({now}). A run continues only with the labels it started with: give it the same "
                      "labels (and task_options.problem), or train a new run without train.resume_from.")


def _checkpoint_step(checkpoint: Path) -> int | None:
    state = read_json_object(checkpoint / "trainer_state.json")
    step = state.get("global_step") if state else None
    return step if isinstance(step, int) else None


def _check_steps_left(cfg: RunConfig, checkpoint: Path, n_train: int) -> None:
    """A checkpoint already at the last step these settings train to would train nothing and test the
    old weights again under a new run's name: say so before the baseline's work."""
    step = _checkpoint_step(checkpoint)
    if step is None:
        return  # Trainer reads the state itself and says what is wrong with it
    t = cfg.train
    total = _total_steps(SimpleNamespace(max_steps=t.max_steps, per_device_train_batch_size=t.batch_size,
                                         gradient_accumulation_steps=t.gradient_accumulation_steps,
                                         num_train_epochs=t.epochs), n_train)
    if step < total:
        return
    per_epoch = _total_steps(SimpleNamespace(max_steps=None, per_device_train_batch_size=t.batch_size,
                                             gradient_accumulation_steps=t.gradient_accumulation_steps,
                                             num_train_epochs=1), n_train)
    more = (f"raise train.max_steps (now {t.max_steps})" if t.max_steps and t.max_steps > 0
            else f"raise train.epochs (now {t.epochs:g}; one epoch is {per_epoch} steps)")
    raise ConfigError(f"train.resume_from: {checkpoint} is at step {step}, and these settings end training at step "
                      f"{total}, so nothing is left to train. To train it further, {more}; to use the trained "
                      f"model as it is, open its run ({checkpoint.parent.parent.name}).")


def _total_steps(args: Any, n_train: int) -> int:
    if args.max_steps and args.max_steps > 0:
        return int(args.max_steps)
    # each process of a launch takes its own batches: a step trains on one from each
    per_epoch = -(-n_train // (args.per_device_train_batch_size * args.gradient_accumulation_steps
                               * launched_processes()))
    return int(max(1, math.ceil(per_epoch * args.num_train_epochs)))  # as Trainer counts them


def _maybe_peft(cfg: RunConfig, task: Any, model: Any) -> Any:
    if not cfg.lora.enabled:
        return model
    from .peft_support import wrap_with_peft

    return wrap_with_peft(cfg, task, model)


def _save_model(cfg: RunConfig, task: Any, trainer: Any, tokenizer: Any, run_dir: RunDir, evaluation: dict) -> None:
    staging = run_dir.path / ".model-staging"
    model = trainer.model
    if cfg.lora.enabled and cfg.lora.merge and hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(str(staging), safe_serialization=True)
    if cfg.lora.enabled and not cfg.lora.merge:  # adapter weights only: keep the config that rebuilds the head
        model.get_base_model().config.save_pretrained(str(staging))
    tokenizer.save_pretrained(str(staging))
    info = {"task": cfg.task, "base_model": cfg.model, "max_length": cfg.train.max_length,
            **getattr(task, "model_info", lambda: {})()}
    atomic_write_json(staging / "workbench.json", info)
    task.save_extras(staging)
    atomic_write_text(staging / "README.md", model_card(cfg, run_dir, evaluation))
    if run_dir.model_dir.exists():
        import shutil

        shutil.rmtree(run_dir.model_dir)
    os.replace(staging, run_dir.model_dir)


def model_card(cfg: RunConfig, run_dir: RunDir, evaluation: dict) -> str:
    main = evaluation["main_metric"]
    rows = "\n".join(f"| {k} | {_fmt(v)} | {_fmt(evaluation['baseline'].get(k))} | {_fmt(evaluation['delta'].get(k))} |"
                     for k, v in evaluation["finetuned"].items())
    return f"""---
library_name: transformers
base_model: {cfg.model}
tags: [workbench, {cfg.task}]
---

# {cfg.name or run_dir.id}

Fine-tuned from `{cfg.model}` for **{cfg.task}** with workbench (run `{run_dir.id}`).

## Results on the test split ({test_size_text(evaluation)})

Main metric: **{main}**. Baseline: {evaluation.get('baseline_method') or 'the base model'}.

| metric | fine-tuned | baseline | delta |
|---|---|---|---|
{rows}

## Training configuration

```yaml
{cfg.to_yaml().strip()}
```
"""


def _fmt(v: Any) -> str:
    return f"{v:.4f}" if isinstance(v, float) else ("" if v is None else str(v))


def _drop_library_progress(trainer: Any) -> None:
    """Our events drive every display; Trainer's tqdm, notebook bar and log printer must not fight them."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    try:
        from transformers.utils.notebook import NotebookProgressCallback

        trainer.remove_callback(NotebookProgressCallback)
    except ImportError:
        pass


@contextmanager
def quiet_libraries():
    """Silence library chatter (head-initialised warnings, progress bars) for a run, or for loading a
    saved model back (``Run.predict``)."""
    import datasets
    import transformers

    old_tf = transformers.logging.get_verbosity()
    old_ds = datasets.utils.logging.get_verbosity()
    bars = datasets.utils.is_progress_bar_enabled()
    tf_bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.utils.logging.disable_progress_bar()
    transformers.logging.set_verbosity_error()
    datasets.utils.logging.set_verbosity_error()
    datasets.disable_progress_bars()
    modeling_logger = logging.getLogger("transformers.modeling_utils")
    old_modeling = modeling_logger.level
    modeling_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        # a level left at ERROR makes later from_pretrained calls print a tensor-parallel notice
        modeling_logger.setLevel(old_modeling)
        transformers.logging.set_verbosity(old_tf)
        datasets.utils.logging.set_verbosity(old_ds)
        if bars:
            datasets.enable_progress_bars()
        if tf_bars:
            transformers.utils.logging.enable_progress_bar()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path.cwd())
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired):
        return None
