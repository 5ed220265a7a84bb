"""One run over several processes started by torchrun (gloo on the CPU, as NCCL on GPUs): one run
folder written by the main process, batches spread over the processes, Stop honoured by all."""

import json
import os
import subprocess
import sys
import time

import pytest


LAUNCHERS = {
    "torchrun": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"],
    # as the README gives it for GPUs; accelerate starts the processes through torchrun, here on the CPU
    "accelerate": [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
                   "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no"],
}


def torchrun(args, tmp_path, name, launcher="torchrun", **popen):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    out = open(tmp_path / f"{name}.txt", "w")
    return subprocess.Popen([*LAUNCHERS[launcher], "-m", "workbench.cli", "train", *args], stdout=out,
                            stderr=subprocess.STDOUT, env=env, text=True, **popen)


def output(tmp_path, name):
    return (tmp_path / f"{name}.txt").read_text()


def first_step(runs):
    """The launched run's folder, once its first training step is done."""
    deadline, info, found = time.time() + 240, {}, []
    while time.time() < deadline and not (info.get("progress") or {}).get("step"):
        found = list(runs.glob("*/run.json"))
        info = json.loads(found[0].read_text()) if found else {}
        time.sleep(0.5)
    assert found, f"no run folder under {runs} after 240 s"
    return found[0].parent


def interrupted_launch(args, tmp_path, name, act):
    """Launch a run, call ``act(run_folder, process)`` once its first step is done, and wait for the
    launch to end (killed if it has not within 120 s); returns its exit status and the run folder."""
    proc = torchrun(args, tmp_path, name)
    try:
        folder = first_step(tmp_path / "runs")
        act(folder, proc)
        return proc.wait(timeout=120), folder
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.parametrize("launcher", ["torchrun", "accelerate"])
def test_a_launch_is_one_run_with_its_batches_spread_over_the_processes(tiny_bert, clf_csv, tmp_path, launcher):
    runs = tmp_path / "runs"
    proc = torchrun([f"model={tiny_bert}", f"data.train={clf_csv}", f"runs_dir={runs}", "train.epochs=2",
                     "train.learning_rate=3e-3", "train.batch_size=16", "baseline=false"], tmp_path, "two",
                    launcher=launcher)
    assert proc.wait(timeout=300) == 0, output(tmp_path, "two")[-3000:]
    (run,) = runs.iterdir()  # one folder, made by the main process
    info = json.loads((run / "run.json").read_text())
    assert info["status"] == "completed" and info["processes"] == 2
    n_train = json.loads((run / "run.json").read_text())["data"]["sizes"]["train"]
    steps_per_epoch = -(-n_train // (16 * 2))  # each step takes a batch in each process
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    started = next(r for r in records if r["event"] == "started")
    assert started["total_steps"] == 2 * steps_per_epoch and "× 2 processes" in started["device"]
    assert max(r["step"] for r in records if r["event"] == "step") == 2 * steps_per_epoch
    losses = [r["metrics"]["loss"] for r in records if r["event"] == "eval"]
    assert len(losses) == 2 and losses[-1] < losses[0]  # the processes trained one model together
    assert all((c / "COMPLETE").exists() for c in (run / "checkpoints").iterdir())
    assert (run / "model" / "model.safetensors").exists() and (run / "eval.json").exists()
    shown = output(tmp_path, "two")
    assert shown.count("Run directory: ") == 1 and shown.count("Test metrics on ") == 1  # reported once
    assert "find_unused_parameters=True was specified" not in shown  # no search for unused parameters per step


def test_a_mistake_is_said_once_by_the_main_process(tiny_bert, clf_csv, tmp_path):
    proc = torchrun([f"model={tiny_bert}", f"data.train={clf_csv}", f"runs_dir={tmp_path / 'runs'}",
                     "train.freeze=layers:9"], tmp_path, "bad")
    assert proc.wait(timeout=300) != 0
    shown = output(tmp_path, "bad")
    assert shown.count("train.freeze: layers:9 but model") == 1, shown[-3000:]
    assert not (tmp_path / "runs").exists()  # refused before a run folder, as without a launcher
    proc = torchrun([f"data.train={clf_csv}", "train.epoch=1"], tmp_path, "typo")
    assert proc.wait(timeout=300) != 0
    assert output(tmp_path, "typo").count("Unknown config key 'train.epoch'") == 1
    proc = torchrun([f"model={tiny_bert}", f"data.train={clf_csv}", "--dry-run"], tmp_path, "dry")
    assert proc.wait(timeout=300) == 0
    assert output(tmp_path, "dry").count("labels (train):") == 1


def test_stop_ends_every_process_at_one_step_and_the_run_resumes(tiny_bert, clf_csv, tmp_path):
    from workbench.runs import RunDir

    runs = tmp_path / "runs"
    args = [f"model={tiny_bert}", f"data.train={clf_csv}", f"runs_dir={runs}", "train.learning_rate=3e-3",
            "baseline=false"]
    code, _ = interrupted_launch([*args, "train.epochs=500"], tmp_path, "long",
                                 lambda folder, proc: RunDir(folder).request_stop())
    shown = output(tmp_path, "long")
    # a stop that was asked for is no failure of the launch: torchrun reports none (130 on its own)
    assert code == 0 and "ChildFailedError" not in shown, shown[-3000:]
    assert shown.count("Resume with: workbench train ") == 1 and "launched as this run was, 2 processes" in shown
    (run,) = [RunDir(d) for d in runs.iterdir()]
    info = run.read_info()
    assert info["status"] == "interrupted" and info["error"] == "stopped on request", shown[-3000:]
    assert info["resume_from"] == str(run.complete_checkpoints()[-1])
    stopped_at = int(info["resume_from"].rsplit("-", 1)[1])
    proc = torchrun([*args, f"train.max_steps={stopped_at + 4}", "train.resume_from=latest"], tmp_path, "resumed")
    assert proc.wait(timeout=300) == 0, output(tmp_path, "resumed")[-3000:]
    (again,) = [RunDir(d) for d in runs.iterdir() if d.name != run.id]
    assert again.read_info()["status"] == "completed"
    assert again.read_info()["resumed_from"]["run"] == run.id


def test_ctrl_c_on_torchrun_stops_every_process_with_a_checkpoint(tiny_bert, clf_csv, tmp_path):
    """torchrun passes Ctrl-C on to its processes (once: they run in a session of their own), and they
    stop as after `runs stop`, well within the 30 seconds torchrun gives them before killing them."""
    import signal

    from workbench.runs import RunDir

    _, folder = interrupted_launch([f"model={tiny_bert}", f"data.train={clf_csv}", f"runs_dir={tmp_path / 'runs'}",
                                    "train.epochs=500", "baseline=false"], tmp_path, "ctrl-c",
                                   lambda folder, proc: proc.send_signal(signal.SIGINT))
    shown = output(tmp_path, "ctrl-c")
    run = RunDir(folder)
    info = run.read_info()
    assert info["status"] == "interrupted" and info["error"] == "stopped on request", shown[-3000:]
    assert info["resume_from"] == str(run.complete_checkpoints()[-1])
    assert shown.count("stopping at the end of this step") == 1 and shown.count("Resume with: ") == 1
    assert "forcefully exiting" not in shown  # torchrun did not have to kill a process


def test_a_run_folder_deleted_during_a_launch_ends_every_process_and_stays_deleted(tiny_bert, clf_csv, tmp_path):
    import shutil

    runs = tmp_path / "runs"
    # moved away at once, then removed: the run writes into its folder while a plain rmtree goes through it
    code, _ = interrupted_launch([f"model={tiny_bert}", f"data.train={clf_csv}", f"runs_dir={runs}",
                                  "train.epochs=500", "baseline=false"], tmp_path, "deleted",
                                 lambda folder, proc: shutil.rmtree(folder.rename(tmp_path / "deleted-run")))
    shown = output(tmp_path, "deleted")
    assert code != 0 and list(runs.iterdir()) == [], shown[-3000:]  # no checkpoint brought a folder back
    assert shown.count("was deleted while the run was going on") == 1, shown[-3000:]
    assert "Could not locate the best model" not in shown  # it went with the folder: not looked for


def test_a_model_with_parameters_its_loss_does_not_use_is_named_and_trains_when_told(tiny_bert, clf_csv, tmp_path):
    """Launches exchange gradients without looking for unused parameters at each step (Trainer's default
    does look); a model that has such parameters gets their names and the setting that lets it train."""
    script = tmp_path / "train.py"
    script.write_text(
        "import os, sys, torch, transformers, workbench\n"
        "load = transformers.AutoModelForSequenceClassification.from_pretrained\n"
        "def spare(*a, **k):\n"
        "    model = load(*a, **k)\n"
        "    model.spare = torch.nn.Linear(4, 4)  # trainable, and never in the loss\n"
        "    return model\n"
        "transformers.AutoModelForSequenceClassification.from_pretrained = spare\n"
        f"run = workbench.finetune({{'model': {str(tiny_bert)!r}, 'data': {{'train': {str(clf_csv)!r}}},\n"
        f"    'runs_dir': {str(tmp_path / 'runs')!r}, 'baseline': False,\n"
        "    'train': {'max_steps': 4, 'find_unused_parameters': sys.argv[1] == 'look'}})\n"
        # each process says what it got in a file of its own (their prints to one pipe can interleave)
        f"open({str(tmp_path)!r} + '/rank' + os.environ['RANK'], 'w').write(run.status)\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    failed = subprocess.run([*LAUNCHERS["torchrun"], str(script), "no"], capture_output=True, text=True, env=env,
                            timeout=300)
    assert failed.returncode != 0
    said = "the model has trainable parameters its loss does not use (spare.weight, spare.bias)"
    # said once, by the main process's progress output (the script's own traceback follows in each process)
    assert failed.stderr.count(f"run failed: {said}") == 1, failed.stdout[-3000:] + failed.stderr[-3000:]
    assert "Set train.find_unused_parameters=true" in failed.stderr
    (run,) = (tmp_path / "runs").iterdir()
    assert said in json.loads((run / "run.json").read_text())["error"]
    done = subprocess.run([*LAUNCHERS["torchrun"], str(script), "look"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert [(tmp_path / f"rank{r}").read_text() for r in (0, 1)] == ["completed", "completed"]


def test_a_launched_script_gets_the_finished_run_in_every_process(tiny_bert, clf_csv, tmp_path):
    script = tmp_path / "train.py"
    script.write_text(
        "import os, time, workbench\n"
        "import workbench.engine.run as core\n"
        "if os.environ['RANK'] == '0':  # the main process saves slowly: the other one must wait for it\n"
        "    save = core._save_model\n"
        "    core._save_model = lambda *a, **k: (time.sleep(3), save(*a, **k))[1]\n"
        f"run = workbench.finetune({{'model': {str(tiny_bert)!r}, 'data': {{'train': {str(clf_csv)!r}}},\n"
        f"    'runs_dir': {str(tmp_path / 'runs')!r}, 'baseline': False, 'train': {{'epochs': 1}}}})\n"
        # each process says what it got in a file of its own (their prints to one pipe can interleave)
        f"open({str(tmp_path)!r} + '/rank' + os.environ['RANK'], 'w').write(f'{{run.id}} {{run.status}} {{sorted(run.metrics)}}')\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([*LAUNCHERS["torchrun"], str(script)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    said = [(tmp_path / f"rank{r}").read_text() for r in (0, 1)]
    (run,) = (tmp_path / "runs").iterdir()
    assert said[0] == said[1] and said[0].startswith(f"{run.name} completed ['accuracy'")


pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="torchrun with gloo, as the CI machine runs it")


def test_resuming_with_another_number_of_processes_says_so(tmp_path, monkeypatch):
    from workbench.config import resolve
    from workbench.engine.run import resume_differences
    from workbench.runs import RunDir, atomic_write_text

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    run = RunDir(tmp_path / "two")
    (run.path / "checkpoints" / "checkpoint-6").mkdir(parents=True)
    cfg = resolve(inline={"data": {"train": "bbc-news"}})
    atomic_write_text(run.config_yaml, cfg.to_yaml())
    run.update_info(processes=2)
    changed = resume_differences(cfg, run.path / "checkpoints" / "checkpoint-6")
    assert changed == ["processes: 2 -> 1 (a step takes a batch in each process, so an epoch is another number of "
                       "steps)"]
    run.update_info(processes=None)
    assert resume_differences(cfg, run.path / "checkpoints" / "checkpoint-6") == []
