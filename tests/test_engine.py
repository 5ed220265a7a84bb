"""End-to-end runs of the core on a tiny BERT built from a config (seconds on a CPU)."""

import json
import math
import os
from pathlib import Path

import pytest

from workbench import finetune
from workbench.api import Run
from workbench.errors import DataError
from workbench.runs import COMPLETE_MARKER, RunDir, list_runs

from builders import tiny_config


@pytest.fixture(scope="module")
def finished(tiny_bert, clf_csv, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    return finetune(tiny_config(tiny_bert, clf_csv, runs), progress=False)


def test_run_directory_holds_the_whole_contract(finished):
    d = finished.dir
    for name in ("run.json", "config.yaml", "metrics.jsonl", "eval.json"):
        assert (d / name).is_file(), name
    for name in ("model.safetensors", "config.json", "tokenizer.json", "README.md", "workbench.json"):
        assert (d / "model" / name).is_file(), name
    assert not list((d / "model").glob("*.bin")) and not list(d.glob("**/*.tmp"))
    info = json.loads((d / "run.json").read_text())
    assert info["status"] == "completed"
    for key in ("id", "task", "model", "created_at", "finished_at", "versions", "hardware", "config_hash",
                "data_fingerprint", "pid", "host"):
        assert info.get(key) is not None, key
    assert info["versions"]["transformers"]
    ckpts = RunDir(d).complete_checkpoints()
    assert ckpts and all((c / COMPLETE_MARKER).exists() for c in ckpts)


def test_metrics_jsonl_is_strict_json_with_steps_and_evals(finished):
    lines = (finished.dir / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]  # json.loads rejects nothing, so check for NaN text too
    assert "NaN" not in "".join(lines) and "Infinity" not in "".join(lines)
    events = [r["event"] for r in records]
    assert events.count("eval") == 4 and "started" in events and events[-1] == "finished"
    losses = [r["loss"] for r in records if r["event"] == "step"]
    assert losses and all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0]  # it learned


def test_eval_json_compares_with_the_baseline(finished):
    ev = json.loads((finished.dir / "eval.json").read_text())
    assert ev["split"] == "test" and ev["main_metric"] == "accuracy"
    for k in ("accuracy", "f1_macro", "precision_macro", "recall_macro"):
        assert 0.0 <= ev["finetuned"][k] <= 1.0 and 0.0 <= ev["baseline"][k] <= 1.0
        assert ev["delta"][k] == pytest.approx(ev["finetuned"][k] - ev["baseline"][k])
    assert set(ev["baselines"]) == {"linear_probe", "majority_class"}
    # keyword topics are easy: the fine-tuned tiny model must beat guessing the majority class
    assert ev["finetuned"]["accuracy"] > ev["baselines"]["majority_class"]["accuracy"] + 0.2
    assert ev["confusion_matrix"]["labels"] == ["money", "sport", "tech"]
    assert sum(map(sum, ev["confusion_matrix"]["finetuned"])) == ev["num_examples"]
    assert set(ev["per_class"]["finetuned"]) >= {"money", "sport", "tech"}


def test_run_handle_and_predict(finished, capfd):
    assert finished.status == "completed"
    assert finished.metrics["accuracy"] == json.loads((finished.dir / "eval.json").read_text())["finetuned"]["accuracy"]
    # predict() agrees with the test evaluation on the examples eval.json keeps (where the fine-tuned
    # and the base model disagree): the same model, tokenization and label names
    examples = json.loads((finished.dir / "eval.json").read_text())["examples"]
    assert examples
    capfd.readouterr()
    preds = finished.predict([e["text"] for e in examples])
    assert [p["label"] for p in preds] == [e["finetuned"] for e in examples]
    assert "Loading weights" not in capfd.readouterr().err  # no loading bar for a model already on disk
    single = finished.predict(examples[0]["text"])
    assert single["label"] == max(single["scores"], key=single["scores"].get) == examples[0]["finetuned"]
    assert set(single["scores"]) == {"money", "sport", "tech"} and abs(sum(single["scores"].values()) - 1) < 1e-4
    again = Run.load(finished.id, finished.dir.parent)
    assert again.metrics == finished.metrics
    assert "accuracy" in again._repr_html_()


def test_same_seed_same_metrics(tiny_bert, clf_csv, tmp_path, finished):
    other = finetune(tiny_config(tiny_bert, clf_csv, tmp_path), progress=False)
    assert other.metrics == finished.metrics


def test_bad_data_fails_the_run_with_the_message(tiny_bert, tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("text,label\nhello,a\n,b\nworld,a\n")
    with pytest.raises(DataError, match=r"bad.csv, line 3: empty text"):
        finetune(tiny_config(tiny_bert, p, tmp_path / "runs"), progress=False)
    rows = list_runs(tmp_path / "runs")
    assert rows[0]["status"] == "failed" and "line 3" in rows[0]["error"]
    from workbench.errors import RunError

    with pytest.raises(RunError, match=r"has no saved model: its status is failed \(.*bad.csv, line 3: empty text.*dropped\)\. Load"):
        Run.load(rows[0]["id"], tmp_path / "runs").predict("hello")


def test_stop_file_interrupts_with_a_resumable_checkpoint(tiny_bert, clf_csv, tmp_path):
    from workbench.events import Step

    state = {}

    def stop_soon(event):
        if isinstance(event, Step) and event.step == 3 and "done" not in state:
            state["done"] = True
            rd = RunDir(tmp_path / "runs" / next((tmp_path / "runs").iterdir()).name)
            rd.request_stop()

    cfg = tiny_config(tiny_bert, clf_csv, tmp_path / "runs", epochs=20, logging_steps=1)
    run = finetune(cfg, progress=False, sinks=[stop_soon])
    info = run.info
    assert info["status"] == "interrupted"
    ckpts = RunDir(run.dir).complete_checkpoints()
    assert ckpts and info["resume_from"] == str(ckpts[-1])
    assert (ckpts[-1] / "optimizer.pt").exists() or (ckpts[-1] / "optimizer.safetensors").exists()
    assert int(ckpts[-1].name.split("-")[1]) <= 10
    assert not RunDir(run.dir).stop_file.exists()  # answered
    # written once, at the stop's step: the epoch that the stop ends neither saves it again nor evaluates
    events = [(r["event"], r.get("step")) for r in run.history() if r["event"] in ("checkpoint", "eval")]
    assert events == [("checkpoint", int(ckpts[-1].name.split("-")[1]))], events

    # resumed with another number of epochs: said, recorded, and the rates count from the checkpoint's step
    from workbench.events import Phase

    seen = []
    cfg["train"].update(epochs=2, resume_from=str(run.dir))
    resumed = finetune(cfg, progress=False, sinks=[seen.append])
    assert resumed.info["status"] == "completed"
    assert resumed.info["resume_differences"] == ["train.epochs: 20.0 -> 2.0"]
    assert resumed.info["resumed_from"] == {"run": run.id, "checkpoint": str(ckpts[-1]),
                                            "step": int(ckpts[-1].name.split("-")[1])}
    assert RunDir(resumed.dir).summary()["resumed_from"]["run"] == run.id  # listings and the sidebar read it
    assert any(isinstance(e, Phase) and e.name == "resume warning" and e.notice and "train.epochs: 20.0 -> 2.0" in e.detail
               for e in seen)
    first = next(e for e in seen if isinstance(e, Step))
    done_here = first.step - int(ckpts[-1].name.split("-")[1])  # steps trained since the resume
    assert done_here >= 1 and first.samples_per_second == pytest.approx(done_here * 16 / first.elapsed, rel=0.25)

    # resuming the finished run with the same settings would train nothing: said before the baseline
    from workbench.errors import ConfigError

    last = RunDir(resumed.dir).complete_checkpoints()[-1]
    cfg["train"].update(resume_from=resumed.id)
    with pytest.raises(ConfigError, match=rf"{last.name} is at step (\d+), and these settings end training at step "
                                          r"\1, so nothing is left to train\. To train it further, raise train.epochs "
                                          r"\(now 2; one epoch is \d+ steps\)"):
        finetune(cfg, progress=False, sinks=[seen.append])
    cfg["train"].update(epochs=3)  # one epoch more: trains on
    assert finetune(cfg, progress=False).info["status"] == "completed"


def test_a_run_resumed_with_a_new_learning_rate_and_weight_decay_trains_with_them(tiny_bert, clf_csv, tmp_path):
    """The checkpoint's optimizer and schedule state carry its run's rate and decay; the resumed run
    must train with its own, as its config, run.json and the resume warning say."""
    import torch

    from workbench.events import Step

    def stop_at_3(event):
        if isinstance(event, Step) and event.step == 3:
            RunDir(next((tmp_path / "runs").iterdir())).request_stop()

    cfg = tiny_config(tiny_bert, clf_csv, tmp_path / "runs", epochs=20, logging_steps=1)
    cfg["train"].update(learning_rate=3e-3, weight_decay=0.01, lr_scheduler="constant", warmup_ratio=0.0)
    first = finetune(cfg, progress=False, sinks=[stop_at_3])
    assert first.info["status"] == "interrupted"
    stopped_at = int(RunDir(first.dir).complete_checkpoints()[-1].name.split("-")[1])

    seen = []
    cfg["train"].update(epochs=1, learning_rate=1e-3, weight_decay=0.3, resume_from=first.id, save_checkpoints=True)
    resumed = finetune(cfg, progress=False, sinks=[seen.append])
    assert resumed.info["status"] == "completed"
    rates = {e.step: e.learning_rate for e in seen if isinstance(e, Step) and e.learning_rate is not None}
    assert rates and min(rates) == stopped_at + 1
    assert all(r == pytest.approx(1e-3) for r in rates.values()), rates
    last = RunDir(resumed.dir).complete_checkpoints()[-1]
    groups = torch.load(last / "optimizer.pt", weights_only=True)["param_groups"]
    assert sorted(g["weight_decay"] for g in groups) == [0.0, pytest.approx(0.3)]  # no decay on biases and norms
    assert all(g["initial_lr"] == pytest.approx(1e-3) for g in groups)

    # a schedule resumed with another peak: the rate at the resumed step is the new schedule's there
    seen.clear()
    cfg["train"].update(epochs=2, learning_rate=2e-3, lr_scheduler="linear", resume_from=resumed.id)
    again = finetune(cfg, progress=False, sinks=[seen.append])
    steps = [e for e in seen if isinstance(e, Step) and e.learning_rate is not None]
    total = again.info["progress"]["total_steps"]
    assert steps
    for e in steps:  # linear decay from 2e-3 (no warmup) to 0 over the whole run: the rate step k trained with
        assert e.learning_rate == pytest.approx(2e-3 * (total - e.step + 1) / total, rel=1e-6), (e.step, total)


@pytest.mark.parametrize("eval_strategy", ["steps", "epoch"])
def test_deleting_a_running_runs_folder_stops_it_and_leaves_nothing_behind(eval_strategy, tiny_bert, clf_csv,
                                                                            tmp_path):
    """A user deletes the folder of a run that is training (evaluating and checkpointing every 2
    steps, or each epoch): the run stops within a few steps with the reason, and no partial folder
    comes back."""
    import shutil

    from workbench.errors import RunFolderDeleted
    from workbench.events import RunFailed, Step

    seen, deleted = [], []

    def delete_at_step_3(event):
        seen.append(event)
        if isinstance(event, Step) and event.step == 3 and not deleted:
            deleted.append(next((tmp_path / "runs").iterdir()))
            shutil.rmtree(deleted[0])

    cfg = tiny_config(tiny_bert, clf_csv, tmp_path / "runs", epochs=20, logging_steps=1)
    cfg["train"].update(eval_strategy=eval_strategy, eval_steps=2 if eval_strategy == "steps" else None)
    with pytest.raises(RunFolderDeleted, match="was deleted while the run was going on"):
        finetune(cfg, progress=False, sinks=[delete_at_step_3])
    assert list((tmp_path / "runs").iterdir()) == []
    failed = [e for e in seen if isinstance(e, RunFailed)]
    assert len(failed) == 1 and failed[0].status == "interrupted" and "deleted" in failed[0].error
    assert max(e.step for e in seen if isinstance(e, Step)) <= 5  # at the next save or the 5-step check


def test_a_folder_deleted_while_a_checkpoint_is_written_is_not_brought_back(tiny_bert, clf_csv, tmp_path, monkeypatch):
    """The deletion lands while Trainer writes a checkpoint, which makes the run's folders anew: the
    run still sees that its folder is gone, stops, and removes what the save put back."""
    import shutil

    from transformers import Trainer

    from workbench.errors import RunFolderDeleted
    from workbench.events import Step

    seen, deleted = [], []
    original = Trainer._save_checkpoint

    def delete_then_save(self, *a, **kw):
        if not deleted:
            deleted.append(next((tmp_path / "runs").iterdir()))
            shutil.rmtree(deleted[0])
        return original(self, *a, **kw)

    monkeypatch.setattr(Trainer, "_save_checkpoint", delete_then_save)
    cfg = tiny_config(tiny_bert, clf_csv, tmp_path / "runs", epochs=20, logging_steps=1)
    cfg["train"].update(eval_strategy="steps", eval_steps=2)
    with pytest.raises(RunFolderDeleted, match="was deleted while the run was going on"):
        finetune(cfg, progress=False, sinks=[seen.append])
    assert deleted and list((tmp_path / "runs").iterdir()) == []
    assert max(e.step for e in seen if isinstance(e, Step)) <= 3  # stopped right after that save


def test_stop_event_from_another_thread(tiny_bert, clf_csv, tmp_path):
    import threading

    from workbench.events import Step

    stop = threading.Event()

    def trip(event):
        if isinstance(event, Step) and event.step >= 2:
            stop.set()

    run = finetune(tiny_config(tiny_bert, clf_csv, tmp_path, epochs=20), progress=False, sinks=[trip],
                   stop_event=stop)
    assert run.status == "interrupted"


@pytest.mark.parametrize("when", ["data", "baseline"])
def test_a_stop_while_pending_ends_the_run_before_training(when, tiny_bert, clf_csv, tmp_path):
    """Asked while the data loads (the event) or while the base model is evaluated (the STOP file that
    the sidebar and `workbench runs stop` write): the run ends at the next stage, before any step."""
    import threading

    from workbench.events import Phase

    stop = threading.Event()

    def ask(event):
        if isinstance(event, Phase) and event.name == when:
            if when == "data":
                stop.set()
            else:
                (run_dirs := list((tmp_path / "runs").iterdir())) and RunDir(run_dirs[0]).request_stop()

    run = finetune(tiny_config(tiny_bert, clf_csv, tmp_path / "runs", epochs=20), progress=False, sinks=[ask],
                   stop_event=stop)
    assert run.status == "interrupted"
    # a stop during the baseline ends it at its next batch, not after the whole evaluation
    where = "after loading and tokenizing the data" if when == "data" else "while evaluating the base model"
    assert run.info["error"] == f"stopped on request before training, {where}"
    assert not run.run_dir.stop_file.exists()
    records = [json.loads(line) for line in (run.dir / "metrics.jsonl").read_text().splitlines()]
    assert not [r for r in records if r["event"] == "step"]
    assert ("baseline" in [r.get("name") for r in records if r["event"] == "phase"]) == (when == "baseline")


def test_nonfinite_loss_stops_before_a_checkpoint():
    from types import SimpleNamespace

    from workbench.engine.trainer import EventBridge

    bridge = EventBridge(lambda e: None, RunDir.__new__(RunDir), None, 100, 10)
    control = SimpleNamespace(should_training_stop=False, should_save=True)
    state = SimpleNamespace(global_step=7, epoch=0.5)
    bridge.log(state, control, {"loss": float("nan"), "learning_rate": 1e-3})
    assert bridge.nonfinite_step == 7 and control.should_training_stop and not control.should_save


def test_the_processes_of_a_launch_agree_on_stop_and_a_deleted_folder_in_one_exchange(tmp_path, monkeypatch):
    """Each exchange between processes reads a value back to the host (a wait for the GPU): the stop
    request and the deleted-folder check go in one, every 5 steps and at Trainer's save steps."""
    import shutil
    from types import SimpleNamespace

    import workbench.engine.trainer as trainer

    exchanges = []

    def any_process(*flags):
        exchanges.append(flags)
        return tuple(flags)

    monkeypatch.setattr(trainer, "_any_process", any_process)
    run_dir = RunDir(tmp_path / "run")
    run_dir.path.mkdir()
    run_dir.pin()
    bridge = trainer.EventBridge(lambda e: None, run_dir, None, 100, 10)
    bridge.processes, bridge.total = 2, 20
    for step in range(1, 13):
        control = SimpleNamespace(should_training_stop=False, should_save=step == 7, should_evaluate=False,
                                  should_log=False)
        bridge.step_end(SimpleNamespace(global_step=step, epoch=step / 20, logging_steps=50), control)
    assert exchanges == [(False, False)] * 3  # steps 5, 7 (a save) and 10
    run_dir.request_stop()
    control = SimpleNamespace(should_training_stop=False, should_save=False, should_evaluate=False, should_log=False)
    bridge.step_end(SimpleNamespace(global_step=15, epoch=0.75, logging_steps=50), control)
    assert exchanges[-1] == (False, True) and control.should_training_stop and control.should_save
    shutil.rmtree(run_dir.path)
    control = SimpleNamespace(should_training_stop=False, should_save=False, should_evaluate=False, should_log=False)
    bridge.step_end(SimpleNamespace(global_step=20, epoch=1.0, logging_steps=50), control)
    assert exchanges[-1] == (True, False) and len(exchanges) == 5
    assert bridge.folder_deleted and control.should_training_stop and not control.should_save


def test_freeze_all_but_head(tiny_bert, clf_csv, tmp_path):
    run = finetune(tiny_config(tiny_bert, clf_csv, tmp_path, epochs=1, freeze="all-but-head"), progress=False,
                   baseline=False)
    params = run.info["parameters"]
    assert params["trainable"] < params["total"] / 10


def test_freezing_more_layers_than_the_model_has_is_refused_before_the_data(tiny_bert, clf_csv, tmp_path):
    from workbench.errors import ModelError
    from workbench.events import Phase

    seen = []
    with pytest.raises(ModelError, match=rf"train.freeze: layers:10 but model {tiny_bert} has 2 layers\. "
                                         r"Use layers:0 to layers:2 .*, or all-but-head\."):
        finetune(tiny_config(tiny_bert, clf_csv, tmp_path, freeze="layers:10"), progress=False, sinks=[seen.append])
    assert not [e for e in seen if isinstance(e, Phase) and e.name in ("loading data", "baseline")]
    assert not tmp_path.exists() or list(tmp_path.iterdir()) == []  # refused before a run folder was made


def test_a_run_says_which_of_its_settings_it_does_not_use(tiny_bert, clf_csv, tmp_path):
    from workbench.events import Phase

    seen = []
    cfg = tiny_config(tiny_bert, clf_csv, tmp_path / "runs", max_steps=2, lr_scheduler="constant", warmup_ratio=0.1)
    cfg["lora"] = {"r": 16}
    cfg["baseline"] = False
    finetune(cfg, progress=False, sinks=[seen.append])
    (notice,) = [e for e in seen if isinstance(e, Phase) and e.name == "unused settings"]
    assert notice.notice and notice.detail == ("lora.r 16 is not used: lora.enabled is false; train.warmup_ratio 0.1 "
                                               "is not used: lr_scheduler constant has no warmup "
                                               "(constant_with_warmup has one)")


def test_a_run_without_evaluations_still_keeps_a_checkpoint_to_resume_from(tiny_bert, clf_csv, tmp_path):
    cfg = tiny_config(tiny_bert, clf_csv, tmp_path / "runs", epochs=1, eval_strategy="no")
    cfg["baseline"] = False
    first = finetune(cfg, progress=False)
    (ckpt,) = first.run_dir.complete_checkpoints()  # at the epoch's end, with no best model to pick
    cfg["train"].update(epochs=2, resume_from=first.id)
    again = finetune(cfg, progress=False)
    assert again.status == "completed" and again.info["resumed_from"]["checkpoint"] == str(ckpt)
    (resuming,) = [r for r in again.history() if r.get("event") == "phase" and r.get("name") == "resuming"]
    assert resuming["detail"] == f"{ckpt} (that run had completed; training goes on past its end)"


def test_resume_from_latest_continues_the_newest_earlier_run_and_records_which(tiny_bert, clf_csv, tmp_path):
    from workbench.errors import ConfigError
    from workbench.events import Step

    cfg = tiny_config(tiny_bert, clf_csv, tmp_path / "runs", epochs=1)
    cfg["train"]["resume_from"] = "latest"
    with pytest.raises(ConfigError, match="train.resume_from: latest: there is no earlier run under"):
        finetune(cfg, progress=False)
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []

    def stop_at_2(event):
        if isinstance(event, Step) and event.step == 2:
            RunDir(next((tmp_path / "runs").iterdir())).request_stop()

    first = finetune(tiny_config(tiny_bert, clf_csv, tmp_path / "runs", epochs=3), progress=False, sinks=[stop_at_2])
    assert first.status == "interrupted"
    cfg["train"]["epochs"] = 3
    resumed = finetune(cfg, progress=False)
    assert resumed.status == "completed" and resumed.info["resumed_from"]["run"] == first.id
    # the saved config names the run it continued, not "latest" (which would be this run from now on)
    assert resumed.config.train.resume_from == first.id


def test_resume_from_latest_passes_over_failed_starts_and_refuses_nothing_left_before_a_folder(tiny_bert, clf_csv,
                                                                                                  tmp_path):
    from workbench.errors import ConfigError, WorkbenchError
    from workbench.events import Step

    runs = tmp_path / "runs"

    def stop_at_2(event):
        if isinstance(event, Step) and event.step == 2:
            RunDir(next(runs.iterdir())).request_stop()

    stopped = finetune(tiny_config(tiny_bert, clf_csv, runs, epochs=3), progress=False, sinks=[stop_at_2])
    assert stopped.status == "interrupted"
    # a newer run that failed before any checkpoint: "latest" still means the stopped run
    broken = tiny_config(tiny_bert, clf_csv, runs, epochs=3)
    broken["data"]["text_column"] = "no_such_column"
    with pytest.raises(WorkbenchError):
        finetune(broken, progress=False)
    assert len(list(runs.iterdir())) == 2
    # training no further than the checkpoint's step is refused before a run folder is made
    at = int(stopped.run_dir.complete_checkpoints()[-1].name.split("-")[-1])
    cfg = tiny_config(tiny_bert, clf_csv, runs, epochs=3, max_steps=at, resume_from="latest")
    with pytest.raises(ConfigError, match=rf"is at step {at}, and these settings end training at step {at}.*"
                                          rf"raise train.max_steps \(now {at}\)"):
        finetune(cfg, progress=False)
    assert len(list(runs.iterdir())) == 2
    cfg["train"]["max_steps"] = at + 2
    resumed = finetune(cfg, progress=False, baseline=False)
    assert resumed.status == "completed" and resumed.info["resumed_from"]["run"] == stopped.id
    # another task's runs are not "latest" for this one
    other = tiny_config(tiny_bert, clf_csv, tmp_path / "other", epochs=1)
    other["task"], other["train"]["resume_from"] = "masked-lm", "latest"
    (tmp_path / "other").mkdir()
    import shutil
    shutil.copytree(stopped.dir, tmp_path / "other" / stopped.dir.name)
    with pytest.raises(ConfigError, match="none of the 1 earlier runs is a masked-lm run of model"):
        finetune(other, progress=False)


def _tensors(path):
    from safetensors.torch import load_file

    return load_file(str(path / "model.safetensors"))


def test_best_checkpoint_by_loss_is_the_lowest_and_is_the_saved_model(tiny_bert, clf_csv, tmp_path, monkeypatch):
    import torch
    from transformers import Trainer

    reloads = []
    original = Trainer._load_best_model
    monkeypatch.setattr(Trainer, "_load_best_model", lambda self: reloads.append(1) or original(self))
    run = finetune(tiny_config(tiny_bert, clf_csv, tmp_path, epochs=3, metric_for_best_model="loss"),
                   progress=False, baseline=False)
    ckpts = RunDir(run.dir).complete_checkpoints()
    last = ckpts[-1]
    state = json.loads((last / "trainer_state.json").read_text())
    losses = {e["step"]: e["eval_loss"] for e in state["log_history"] if "eval_loss" in e}
    assert len(losses) == 3
    best_step = min(losses, key=losses.get)  # a loss is better when it is lower, for any task
    assert state["best_model_checkpoint"].endswith(f"checkpoint-{best_step}")
    best = _tensors(run.dir / "checkpoints" / f"checkpoint-{best_step}")
    final = _tensors(run.dir / "model")
    assert best.keys() == final.keys() and all(torch.equal(best[k], final[k]) for k in best)
    # the best weights are read back only when they are not the ones in memory already
    assert len(reloads) == (0 if last.name == f"checkpoint-{best_step}" else 1)
    evals = [r["metrics"] for r in run.history() if r.get("event") == "eval"]
    assert evals and not [k for m in evals for k in m if k.endswith(("_time", "_runtime", "_per_second"))]


def test_best_model_is_read_back_only_when_it_is_not_the_last_step(monkeypatch):
    from types import SimpleNamespace

    from transformers import Trainer

    from workbench.engine.trainer import trainer_class

    reloads = []
    monkeypatch.setattr(Trainer, "_load_best_model", lambda self: reloads.append(self.state.best_model_checkpoint))
    for best, step in (("/r/checkpoints/checkpoint-20", 20), ("/r/checkpoints/checkpoint-10", 20),
                       ("/r/checkpoints/checkpoint-2", 20)):
        trainer = object.__new__(trainer_class())  # only the state is read
        trainer.state = SimpleNamespace(best_model_checkpoint=best, global_step=step)
        trainer._load_best_model()
    assert reloads == ["/r/checkpoints/checkpoint-10", "/r/checkpoints/checkpoint-2"]


def test_metric_direction_for_the_best_checkpoint():
    from workbench.metrics import greater_is_better

    clf = ("accuracy", True)  # a task's main metric and its direction
    lm = ("perplexity", False)
    assert greater_is_better("accuracy", *clf) and greater_is_better("f1_macro", *clf)
    assert not greater_is_better("loss", *clf) and not greater_is_better("perplexity", *lm)
    assert not greater_is_better("mse", *clf) and greater_is_better("pearsonr", *clf)


def test_unknown_best_metric_fails_before_training_with_the_choices(tiny_bert, clf_csv, tmp_path):
    from workbench.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        finetune(tiny_config(tiny_bert, clf_csv, tmp_path, epochs=2, metric_for_best_model="acuracy"),
                 progress=False, baseline=False)
    msg = str(e.value)
    assert "train.metric_for_best_model: 'acuracy'" in msg and "accuracy, precision_macro" in msg
    assert "runtime" not in msg and "preparation" not in msg
    (run_dir,) = tmp_path.iterdir()
    events = [json.loads(line)["event"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert "step" not in events and "eval" not in events and events[-1] == "failed"
    # a valid name with Trainer's prefix passes the check and trains
    run = finetune(tiny_config(tiny_bert, clf_csv, tmp_path / "ok", epochs=1, metric_for_best_model="eval_f1_macro"),
                   progress=False, baseline=False)
    assert run.status == "completed"


@pytest.mark.parametrize("task", ["text-classification", "masked-lm"])
def test_gradient_accumulation_keeps_the_loss_and_gradient_scale(tiny_bert, clf_csv, tmp_path, task):
    """Classification heads average over their micro-batch; with accumulation Trainer must still divide
    (it skipped that for any model whose forward takes **kwargs: loss and gradients came out N times)."""
    firsts = {}
    for accumulate in (1, 4):
        cfg = tiny_config(tiny_bert, clf_csv, tmp_path / f"runs-{accumulate}", max_steps=2, logging_steps=1,
                          batch_size=8, gradient_accumulation_steps=accumulate, learning_rate=1e-5,
                          save_checkpoints=False, eval_strategy="no")
        cfg.update(task=task, baseline=False)  # masked-lm: workbench's own loss, which uses the count
        run = finetune(cfg, progress=False)
        steps = [r for r in run.history() if r.get("event") == "step"]
        firsts[accumulate] = steps[0]
    one, four = firsts[1], firsts[4]
    # the same untrained model: mean losses agree within the batches' spread, not 4x apart
    assert 0.7 < four["loss"] / one["loss"] < 1.4, (one, four)
    assert four["grad_norm"] < 2.0 * one["grad_norm"], (one, four)


def test_early_stopping_with_step_evaluations_checkpoints_there_and_says_it_stopped(tiny_bert, clf_csv, tmp_path,
                                                                                   capsys):
    cfg = tiny_config(tiny_bert, clf_csv, tmp_path / "runs", max_steps=30, eval_strategy="steps", eval_steps=6,
                      early_stopping_patience=1, learning_rate=1e-9)
    cfg["baseline"] = False
    run = finetune(cfg, progress=False)  # a learning rate of 1e-9: the validation metric cannot improve
    assert run.status == "completed"
    assert run.info["early_stopped"] == {"step": 12, "max_steps": 30, "patience": 1}
    assert run.info["progress"]["step"] == 12  # where training ended, for runs list and the sidebar
    from workbench.cli import main

    capsys.readouterr()
    assert main(["runs", "--dir", str(tmp_path / "runs"), "show", run.id]) == 0
    assert "early stop:  at step 12 of 30 (no better validation result in 1 evaluation(s))" in capsys.readouterr().out
    phases = [r for r in run.history() if r.get("event") == "phase" and r.get("name") == "early stopping"]
    assert phases and "stopped at step 12 of 30" in phases[0]["detail"]
    assert phases[0]["detail"].endswith("the test uses the best checkpoint, checkpoint-6")
    evals = [r["step"] for r in run.history() if r.get("event") == "eval" and r.get("split") == "validation"]
    assert evals[:2] == [6, 12]
    assert [c.name for c in run.run_dir.complete_checkpoints()] == ["checkpoint-6", "checkpoint-12"]


def test_the_notebook_view_keeps_early_stopping_and_truncation_in_view(tiny_bert, clf_csv, tmp_path):
    """A notebook user sees why training ended before its last step and that texts were cut, the test
    split's too, not only the console."""
    from workbench.events import Phase
    from workbench.ui.live import LiveState

    state, seen = LiveState(), []
    cfg = tiny_config(tiny_bert, clf_csv, tmp_path / "runs", max_steps=30, eval_strategy="steps", eval_steps=6,
                      early_stopping_patience=1, learning_rate=1e-9, max_length=8)
    cfg["baseline"] = False
    finetune(cfg, progress=False, sinks=[state.update, seen.append])
    shown = state.progress_html()
    assert "early stopping: no better validation accuracy in 1 evaluation(s): stopped at step 12 of 30" in shown
    notices = [e.detail for e in seen if isinstance(e, Phase) and e.name == "truncation"]
    assert [n.split(" of ")[1].split(" ")[1] for n in notices] == ["training", "validation", "test"], notices
    assert "its metrics score only what fits; raise train.max_length to score more" in notices[2]
    for n in notices:
        assert n in shown.replace("&#x27;", "'")


def test_patience_running_out_at_the_last_step_is_no_early_stop(tiny_bert, clf_csv, tmp_path):
    cfg = tiny_config(tiny_bert, clf_csv, tmp_path / "runs", max_steps=12, eval_strategy="steps", eval_steps=6,
                      early_stopping_patience=1, learning_rate=1e-9)
    cfg["baseline"] = False
    run = finetune(cfg, progress=False)
    assert run.info["progress"]["step"] == 12 and "early_stopped" not in run.info
    assert not [r for r in run.history() if r.get("event") == "phase" and r.get("name") == "early stopping"]


def test_early_stopping_without_evaluations_or_checkpoints_is_refused():
    from workbench.config import resolve
    from workbench.errors import ConfigError

    for train in ({"eval_strategy": "no"}, {"save_checkpoints": False}):
        with pytest.raises(ConfigError, match="early_stopping_patience needs evaluations to compare and the best"):
            resolve(inline={"train": {"early_stopping_patience": 2, **train}})


def test_the_last_step_logs_its_loss_even_off_the_logging_interval(tiny_bert, clf_csv, tmp_path, capsys):
    from workbench.events import ConsoleProgress

    cfg = tiny_config(tiny_bert, clf_csv, tmp_path / "runs", max_steps=8, logging_steps=5, save_checkpoints=False)
    cfg["baseline"] = False
    run = finetune(cfg, progress=False, sinks=[ConsoleProgress(log_interval=3600)])
    logged = [r["step"] for r in run.history() if r.get("event") == "step" and r.get("loss") is not None]
    assert logged == [1, 5, 8]
    err = capsys.readouterr().err
    assert err.count(" 8/8 ") == 1 and "8/8 epoch" in err and "loss" in err.split(" 8/8 ")[1].splitlines()[0]


def test_the_run_config_names_local_files_by_absolute_path(tiny_bert, clf_csv, tmp_path, monkeypatch):
    """config.yaml (and a %%finetune cell copied from it) re-runs from any folder: a notebook's kernel
    works in the notebook's own folder. Aliases and hub ids stay as they are."""
    import shutil

    import yaml

    from workbench.engine.run import local_paths_absolute
    from workbench.config import resolve

    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    shutil.copytree(tiny_bert, project / "model")
    shutil.copy(clf_csv, project / "data" / "a.csv")
    monkeypatch.chdir(project)
    cfg = tiny_config(Path("model"), Path("data/a.csv"), Path("runs"), epochs=1, max_steps=2)
    cfg.update(baseline=False)
    cfg["data"].update(validation="data/*.csv", overlap="warn")
    run = finetune(cfg, progress=False)
    saved = yaml.safe_load((run.dir / "config.yaml").read_text())
    assert saved["model"] == str(project / "model") and saved["runs_dir"] == str(project / "runs")
    assert saved["data"]["train"] == str(project / "data" / "a.csv")
    assert saved["data"]["validation"] == str(project / "data" / "*.csv")
    kept = local_paths_absolute(resolve(inline={"model": "minilm", "data": {"train": "bbc-news", "test": "nowhere.csv"}}))
    assert (kept.model, kept.data.train, kept.data.test) == ("minilm", "bbc-news", "nowhere.csv")


def test_a_max_length_past_the_models_positions_is_capped_and_said(tiny_bert, tmp_path):
    """The tiny BERT has 128 positions; texts of 200 words at max_length 256 used to fail mid-run
    (a tensor size RuntimeError). The run trains at 128, says so, and records what was asked."""
    import csv

    import yaml

    from builders import FILLER, TOPICS
    from workbench.events import Phase

    data = tmp_path / "long.csv"
    with open(data, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(60):
            label = list(TOPICS)[i % 3]
            w.writerow([" ".join((TOPICS[label].split() + FILLER)[(i + k) % 20] for k in range(200)) + f" {i}", label])
    phases = []
    cfg = tiny_config(tiny_bert, data, tmp_path / "runs", epochs=1, max_steps=2, max_length=256, precision="fp16")
    cfg.update(baseline=False)
    run = finetune(cfg, progress=False,
                   sinks=[lambda e: isinstance(e, Phase) and phases.append((e.name, e.detail, e.notice))])
    assert run.status == "completed"
    # both are notices: kept in view by the notebook display, not replaced by the next stage
    assert ("adjusted", "train.max_length: 256 -> 128: the model takes at most 128 tokens per sequence "
                        "(its position embeddings)", True) in phases
    assert run.info["adjusted"]["train.max_length"] == {
        "asked": 256, "used": 128, "why": "the model takes at most 128 tokens per sequence (its position embeddings)"}
    assert yaml.safe_load((run.dir / "config.yaml").read_text())["train"]["max_length"] == 128  # the config that ran
    # fp16 has no CPU kernels: the run says which precision it took instead
    assert any(name == "precision" and notice and detail.startswith("train.precision fp16 is not available on this cpu")
               for name, detail, notice in phases)
    # and the texts cut at the capped length are said too
    assert any(name == "truncation" and detail.startswith("48 of 48 training texts are longer than max_length 128")
               for name, detail, _ in phases)
    assert not [p for p in phases if p[2] and p[0] not in ("adjusted", "precision", "truncation")], phases


def test_a_model_folder_without_tokenizer_files_is_refused(tiny_bert, clf_csv, tmp_path):
    import shutil

    from workbench.errors import ModelError

    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_bert / name, bare / name)
    with pytest.raises(ModelError, match=r"model: .*bare has no tokenizer files \(tokenizer.json"):
        finetune(tiny_config(bare, clf_csv, tmp_path / "runs", epochs=1, max_steps=1), progress=False)


def test_a_finished_runs_wait_stop_and_running_match_a_background_runs(tiny_bert, clf_csv, tmp_path):
    """A notebook written for `%%finetune --background` (bg.wait(), bg.stop(), bg.running) also runs
    headless, where the cell blocks and returns a plain Run."""
    import shutil
    import socket
    import time

    cfg = tiny_config(tiny_bert, clf_csv, tmp_path / "runs", epochs=1, max_steps=1)
    cfg.update(baseline=False)
    run = finetune(cfg, progress=False)
    assert not run.running and run.wait() is run
    run.stop()
    assert not run.run_dir.stop_file.exists()  # nothing to stop
    live_dir = tmp_path / "runs" / "20260101-000000-live-0001"
    shutil.copytree(run.dir, live_dir)
    live = Run(live_dir)
    live.run_dir.update_info(status="running", pid=os.getpid(), host=socket.gethostname())
    assert live.running
    start = time.monotonic()
    assert live.wait(timeout=0.3, poll=0.05) is live and 0.25 < time.monotonic() - start < 5
    live.stop()
    assert live.run_dir.stop_file.exists()


def test_resuming_from_another_task_model_or_label_set_is_refused_before_the_work(tiny_bert, clf_csv, tmp_path):
    """Weights of another task, model or label set would fail to load only after the data and the
    baseline, with a size-mismatch traceback: each is refused with what differs and the fix, and the
    task and the model before the data are even read."""
    import pandas as pd

    from builders import build_tiny_bert, make_vocab

    from workbench.errors import ConfigError
    from workbench.events import Phase

    source = finetune(tiny_config(tiny_bert, clf_csv, tmp_path / "runs", max_steps=4, eval_strategy="steps",
                                  eval_steps=2), progress=False)
    ckpt = RunDir(source.dir).complete_checkpoints()[-1]
    seen = []

    def resume(**changes):
        cfg = tiny_config(tiny_bert, clf_csv, tmp_path / "runs", max_steps=8, resume_from=source.id)
        for key, value in changes.items():
            section, _, leaf = key.rpartition(".")
            (cfg.setdefault(section, {}) if section else cfg)[leaf] = value
        seen.clear()
        with pytest.raises(ConfigError) as e:
            finetune(cfg, progress=False, sinks=[seen.append])
        return str(e.value), [ev.name for ev in seen if isinstance(ev, Phase)]

    text = tmp_path / "domain.txt"
    text.write_text("\n".join(pd.read_csv(clf_csv)["text"]) + "\n", encoding="utf-8")
    message, phases = resume(task="masked-lm", **{"data.train": str(text)})
    assert f"{ckpt.name} of run {source.id} was trained for task text-classification, and this run is masked-lm" \
        in message and "Set task: text-classification" in message
    assert "loading data" not in phases

    other = build_tiny_bert(tmp_path / "other-bert", make_vocab()[:-7])
    message, phases = resume(model=str(other))
    assert f"holds another model than model {other}" in message and "vocab_size" in message
    assert f"it started from {tiny_bert}" in message and "loading data" not in phases

    relabelled = tmp_path / "relabelled.csv"
    frame = pd.read_csv(clf_csv)
    frame.assign(label=frame["label"].map(lambda v: f"new-{v}")).to_csv(relabelled, index=False)
    message, phases = resume(**{"data.train": str(relabelled)})
    assert "A run continues only with the labels it started with" in message and "new-" in message
    assert "baseline" not in phases  # said before the base model's evaluation


def test_two_runs_started_at_once_in_one_process_both_complete(tiny_bert, clf_csv, tmp_path):
    """A background cell beside the panel: two runs start on two threads of one kernel. Trainer and
    accelerate keep process-wide state, so the second waits (and says so) until the first has
    trained; the metric modules are per thread as well. Both end completed with their own scores."""
    import threading

    from workbench.events import Phase

    results, errors, waited = {}, [], []

    def train(name, epochs):
        try:
            results[name] = finetune(tiny_config(tiny_bert, clf_csv, tmp_path / "runs", epochs=epochs, logging_steps=1,
                                                 eval_strategy="steps", eval_steps=2), name=name, progress=False,
                                     sinks=[lambda e: waited.append(name) if isinstance(e, Phase)
                                            and e.name == "waiting" and e.notice else None])
        except Exception as e:  # noqa: BLE001 - collected for the assertion below
            errors.append(f"{name}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=train, args=(n, e)) for n, e in (("one", 3), ("two", 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not errors, errors
    assert {r.status for r in results.values()} == {"completed"}
    assert len(waited) == 1  # the one that started second waited
    for run in results.values():
        assert 0 <= run.metrics["accuracy"] <= 1 and run.baseline["accuracy"] >= 0


def test_a_run_waiting_for_another_can_be_stopped(tiny_bert, clf_csv, tmp_path):
    import threading

    from workbench.engine import run as engine
    from workbench.events import Phase

    stop, out = threading.Event(), {}

    def ask(event):
        if isinstance(event, Phase) and event.name == "waiting":
            stop.set()

    with engine._TRAINING:  # another run of this process is training
        t = threading.Thread(target=lambda: out.update(run=finetune(
            tiny_config(tiny_bert, clf_csv, tmp_path / "runs"), progress=False, stop_event=stop, sinks=[ask])))
        t.start()
        t.join(timeout=60)
    assert out["run"].status == "interrupted"
    assert out["run"].info["error"] == "stopped on request before training, while it waited for another run"


def test_find_run_prefers_a_whole_run_name_to_ids_that_contain_it(tmp_path):
    import time

    from workbench.errors import RunError
    from workbench.runs import find_run, now_iso

    made = {}
    for name in ("base", "base-lora", "base", "exp 1"):
        rd = RunDir.create(tmp_path, name, "text-classification")
        rd.update_info(name=name, created_at=now_iso())
        made.setdefault(name, []).append(rd.id)
        time.sleep(1.1)  # ids start with the second they were made
    assert find_run("base", tmp_path).id == made["base"][-1]  # the newest of that name, not base-lora
    assert find_run("base-lora", tmp_path).id == made["base-lora"][0]
    assert find_run("exp 1", tmp_path).id == made["exp 1"][0]  # a name that is no id
    assert find_run(made["base"][0], tmp_path).id == made["base"][0]
    with pytest.raises(RunError, match=r"matches 3 runs \(\S+base\S+, \S+base\S+, \S+base\S+\); give more"):
        find_run("bas", tmp_path)
    with pytest.raises(RunError, match=r"No run named 'exp 2' under .*, and it is not a run id"):
        find_run("exp 2", tmp_path)
    # a hand-made folder whose run.json says only the name does not pass for the newest run of it
    odd = tmp_path / "odd-nostatus"
    odd.mkdir()
    (odd / "run.json").write_text('{"name": "base"}')
    assert find_run("base", tmp_path).id == made["base"][-1]


def test_a_keyboard_interrupt_after_a_checkpoint_records_it_to_resume_from(tiny_bert, clf_csv, tmp_path,
                                                                            monkeypatch):
    """Interrupt Kernel (KeyboardInterrupt) mid-training: the run is interrupted and says which
    checkpoint continues it, as a stop on request does."""
    from transformers import Trainer

    from workbench.runs import COMPLETE_MARKER

    original = Trainer.training_step

    def interrupt_after_a_save(self, *args, **kwargs):
        if any(Path(self.args.output_dir).glob(f"checkpoint-*/{COMPLETE_MARKER}")):
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "training_step", interrupt_after_a_save)
    with pytest.raises(KeyboardInterrupt):
        finetune(tiny_config(tiny_bert, clf_csv, tmp_path / "runs", epochs=3), progress=False, baseline=False)
    (run,) = [RunDir(d) for d in (tmp_path / "runs").iterdir()]
    info = run.read_info()
    assert info["status"] == "interrupted" and info["resume_from"] == str(run.complete_checkpoints()[-1])


def test_an_ambiguous_run_reference_counts_every_run_it_matches(tmp_path):
    from workbench.errors import RunError
    from workbench.runs import find_run

    for _ in range(7):
        RunDir.create(tmp_path, "sweep", "text-classification").update_info(name="sweep")
    with pytest.raises(RunError, match=r"'swee' matches 7 runs \((\S+sweep\S+, ){4}\S+sweep\S+ and 2 more\)"):
        find_run("swee", tmp_path)


def test_a_corrupt_model_marker_is_named_with_the_fix(finished, tmp_path):
    import shutil

    from workbench.api import Run
    from workbench.errors import RunError

    copy = tmp_path / finished.dir.name
    shutil.copytree(finished.dir, copy)
    marker = copy / "model" / "workbench.json"
    marker.write_text(marker.read_text()[:20])
    with pytest.raises(RunError, match=r"workbench.json cannot be read \(JSONDecodeError: .*\): it records which task"):
        Run(copy).predict("a text")


def test_a_model_folder_that_does_not_exist_is_refused_before_a_run_folder_is_made(clf_csv, tmp_path):
    """preflight, which the magic, the panel, the report templates and finetune() run before making the
    run folder, checks the model reference too: no failed run is left behind for a typo in a path."""
    from workbench import resolve
    from workbench.engine.run import preflight
    from workbench.errors import ModelError
    from workbench.events import Phase

    missing = tmp_path / "nomodel"
    cfg = tiny_config(missing, clf_csv, tmp_path / "runs")
    with pytest.raises(ModelError, match=rf"model: folder {missing} does not exist"):
        preflight(resolve(inline=cfg))
    seen = []
    with pytest.raises(ModelError, match="does not exist"):
        finetune(cfg, progress=False, sinks=[seen.append])
    assert not [e for e in seen if isinstance(e, Phase) and e.name == "loading data"]
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []
