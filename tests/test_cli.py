import json
import os
import re
import subprocess
import sys

import pytest

from workbench.cli import main

from builders import tiny_config


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "workbench.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def trained(tiny_bert, clf_csv, tmp_path_factory):
    runs = tmp_path_factory.mktemp("cli-runs")
    cfg = tmp_path_factory.mktemp("cfg") / "run.yaml"
    import yaml

    c = tiny_config(tiny_bert, clf_csv, runs, epochs=2)
    cfg.write_text(yaml.safe_dump(c))
    proc = run_cli("train", str(cfg), "train.epochs=3", "name=cli-test")
    return proc, runs


def test_train_prints_metrics_vs_baseline_and_the_run_dir(trained):
    proc, runs = trained
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "fine-tuned" in out and "baseline" in out and "accuracy" in out
    run_dir = out.strip().splitlines()[-1].split("Run directory: ")[1]
    assert run_dir.startswith(str(runs)) and "cli-test" in run_dir
    cfg = (runs / run_dir.split("/")[-1] / "config.yaml").read_text()
    assert "epochs: 3\n" in cfg  # the key=value override won over the file
    assert "step" in proc.stderr or "eval" in proc.stderr  # progress went to stderr


def test_runs_list_and_show(trained, capsys):
    _, runs = trained
    assert main(["runs", "--dir", str(runs), "list"]) == 0
    out = capsys.readouterr().out
    header, row = out.splitlines()[:2]
    for col in ("id", "task", "model", "status", "main metric", "created"):
        assert col in header
    assert "completed" in row and "accuracy" in row and "(base" in row
    assert main(["runs", "--dir", str(runs), "show", "cli-test"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^status: +completed$", out, re.M) and "config:" in out and "delta" in out
    assert re.search(r"^created_at: +\d{4}-", out, re.M)  # long keys stay apart from their values


def test_runs_dir_may_follow_the_action_and_failed_runs_show_their_error(tmp_path, tiny_bert, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\na,x\nb,x\n")
    main(["train", f"model={tiny_bert}", f"data.train={bad}", f"runs_dir={tmp_path / 'runs'}"])
    capsys.readouterr()
    assert main(["runs", "list", "--dir", str(tmp_path / "runs")]) == 0
    row = capsys.readouterr().out.splitlines()[1]
    assert "failed" in row and "bad.csv: only 2 distinct texts" in row
    assert main(["runs", "show", "--dir", str(tmp_path / "runs"), "latest"]) == 0
    assert "too few to split off" in capsys.readouterr().out


def test_runs_list_survives_a_corrupt_run(tmp_path, capsys):
    bad = tmp_path / "20260101-000000-broken-abcd"
    bad.mkdir()
    (bad / "run.json").write_text("{not json")
    assert main(["runs", "--dir", str(tmp_path), "list"]) == 0
    assert "corrupt" in capsys.readouterr().out


def test_odd_run_json_and_eval_json_are_named_and_leave_other_runs_reachable(tmp_path, capsys):
    def make(name, created, info=None, ev=None):
        d = tmp_path / f"{created}-{name}-abcd"
        d.mkdir()
        (d / "run.json").write_text(json.dumps(info if info is not None else {
            "id": d.name, "name": name, "status": "completed", "created_at": created, "main_metric": "accuracy"}))
        if ev is not None:
            (d / "eval.json").write_text(ev)
        return d

    good = make("abc", "20260101-000001")
    make("abcdef", "20260101-000002", info=[1, 2, 3])  # JSON, but no object
    make("stamped", "20260101-000003", info={"name": "stamped", "status": "completed", "created_at": 1767225600})
    broken = make("badeval", "20260101-000004", ev="{broken")
    assert main(["runs", "--dir", str(tmp_path), "list"]) == 0
    listing = capsys.readouterr().out
    assert "corrupt run.json (it is not a JSON object)" in listing
    assert re.search(r"badeval-abcd .*completed\s+eval.json cannot be read \(Expecting", listing)
    assert main(["runs", "--dir", str(tmp_path), "show", "abc"]) == 0
    assert f"run:         {good.name}" in capsys.readouterr().out
    assert main(["runs", "--dir", str(tmp_path), "show", "badeval"]) == 0
    shown = capsys.readouterr().out
    assert f"run:         {broken.name}" in shown and "test metrics: eval.json cannot be read (Expecting" in shown
    # a truncated run.json, or one that is no object: what else the folder holds is still shown
    truncated = make("cut", "20260101-000005", ev=json.dumps({"finetuned": {"accuracy": 0.9}}))
    (truncated / "run.json").write_text('{"id": "cut", "stat')
    (truncated / "config.yaml").write_text("task: text-classification\n")
    assert main(["runs", "--dir", str(tmp_path), "show", truncated.name]) == 0
    shown = capsys.readouterr().out
    assert "run.json:    " in shown and "corrupt" in shown and "  task: text-classification" in shown
    assert main(["runs", "--dir", str(tmp_path), "show", "abcdef"]) == 0
    shown = capsys.readouterr().out
    assert "run.json:    corrupt run.json (it is not a JSON object)" in shown and "(no config.yaml: the run stopped" in shown


def test_unknown_key_is_a_clear_error(capsys):
    assert main(["train", "train.epoch=2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: Unknown config key 'train.epoch'") and "train.epochs" in err
    assert "Traceback" not in err


def test_bad_data_is_a_clear_error(tmp_path, tiny_bert, capsys):
    p = tmp_path / "d.csv"
    p.write_text("body,label\nx,a\n")
    code = main(["train", f"model={tiny_bert}", f"data.train={p}", f"runs_dir={tmp_path / 'runs'}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "no column 'text'" in err and "Available columns: body, label" in err
    assert err.count("no column 'text'") == 1  # the progress output shows it; main does not repeat it


def test_dry_run_reports_data_without_training(tmp_path, clf_csv, capsys):
    assert main(["train", f"data.train={clf_csv}", f"runs_dir={tmp_path}", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "task: text-classification" in out and "train:" in out and "labels (train)" in out
    assert not (tmp_path).exists() or not any(tmp_path.iterdir())


def test_config_formats(capsys):
    assert main(["config", "train.epochs=2", "--format", "cli"]) == 0
    assert capsys.readouterr().out.strip() == "workbench train train.epochs=2"
    assert main(["config", "--format", "magic", "model=x"]) == 0
    assert capsys.readouterr().out.startswith("%%finetune\nmodel: x")


def _copy_run(src, dest, **info):
    import shutil

    shutil.copytree(src, dest)
    recorded = json.loads((dest / "run.json").read_text())
    (dest / "run.json").write_text(json.dumps({**recorded, **info}))
    return dest


def test_runs_stop_writes_the_stop_file_of_a_running_run_only(trained, tmp_path, capsys):
    import socket

    _, runs = trained
    done = next(runs.iterdir())
    live = _copy_run(done, tmp_path / "runs" / "20260101-000000-live-0001", status="running", pid=os.getpid(),
                     host=socket.gethostname())
    assert main(["runs", "--dir", str(tmp_path / "runs"), "stop", live.name]) == 0
    assert (live / "STOP").exists()
    assert main(["runs", "--dir", str(runs), "stop", done.name]) == 1
    assert "is completed; only a pending or running run can be stopped" in capsys.readouterr().err
    assert not (done / "STOP").exists()


def test_a_running_run_whose_process_is_gone_reads_as_failed(trained, tmp_path, capsys):
    import socket

    from workbench.runs import RunDir

    _, runs = trained
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    pid = int(gone.stdout)  # that process has ended and been waited for
    root = tmp_path / "runs"
    dead = _copy_run(next(runs.iterdir()), root / "20260101-000000-dead-0001", status="running", pid=pid,
                     host=socket.gethostname())
    elsewhere = _copy_run(dead, root / "20260101-000000-remote-0001", host="another-machine")
    info = RunDir(dead).read_info()
    assert info["status"] == "failed" and info["process_ended"] and f"pid {pid}" in info["error"]
    assert json.loads((dead / "run.json").read_text())["status"] == "running"  # the record is left alone
    assert RunDir(elsewhere).read_info()["status"] == "running"  # another machine's process is not checked
    assert main(["runs", "--dir", str(root), "stop", dead.name]) == 1
    assert "is failed" in capsys.readouterr().err and not (dead / "STOP").exists()
    assert main(["runs", "--dir", str(root), "list"]) == 0
    listed = capsys.readouterr().out
    assert "failed" in listed and "its process ended without recording why" in listed


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGINT"])
def test_sigterm_or_ctrl_c_marks_the_run_interrupted_with_a_checkpoint(signame, tiny_bert, clf_csv, tmp_path):
    """The first SIGTERM or Ctrl-C stops at the end of the step with a checkpoint and prints how to resume."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "train", f"model={tiny_bert}",
                             f"data.train={clf_csv}", f"runs_dir={tmp_path}", "train.epochs=5000",
                             "baseline=false", "train.max_length=64"],
                            stdout=open(tmp_path / "stdout.txt", "w"), stderr=open(tmp_path / "stderr.txt", "w"),
                            text=True)
    try:
        deadline = time.time() + 240
        status = None
        while time.time() < deadline and status != "running":
            runs = list(tmp_path.glob("*/run.json"))
            status = json.loads(runs[0].read_text()).get("status") if runs else None
            time.sleep(0.5)
        assert status == "running"
        proc.send_signal(getattr(signal, signame))
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, (tmp_path / "stderr.txt").read_text()[-2000:]
    info = json.loads(runs[0].read_text())
    assert info["status"] == "interrupted" and info["resume_from"]  # stopped at a step, with a checkpoint
    shown = (tmp_path / "stdout.txt").read_text() + (tmp_path / "stderr.txt").read_text()
    assert shown.count("stopped on request") == 1 and "Resume with: workbench train " in shown, shown[-1500:]
    if signame == "SIGTERM":  # runs show says where it stopped and how it goes on
        listed = subprocess.run([sys.executable, "-m", "workbench.cli", "runs", "show", "latest", "--dir",
                                 str(tmp_path)], capture_output=True, text=True).stdout
        assert f"stopped at:  step {info['progress']['step']} of {info['progress']['total_steps']}" in listed
        assert f"resume with: train.resume_from={info['resume_from']}" in listed


def test_metrics_table_keeps_wide_numbers_apart():
    from workbench.render import metrics_table_text

    text = metrics_table_text({
        "finetuned": {"perplexity": 8356.123, "loss": 9.03},
        "baseline": {"perplexity": 32405.169, "loss": 10.38},
        "delta": {"perplexity": -24048.768, "loss": -1.35},
    })
    head, ppl, loss = text.splitlines()
    assert ppl.split() == ["perplexity", "8356.1230", "32405.1690", "-24048.7680"]
    assert loss.split() == ["loss", "9.0300", "10.3800", "-1.3500"]
    # numbers are right-aligned under their headers
    assert len({len(line) for line in (head, ppl, loss)}) == 1
    assert head.split() == ["metric", "fine-tuned", "baseline", "delta"]


def test_flags_may_come_between_key_value_settings(tmp_path, clf_csv, capsys):
    # `eval_strategy=no` unquoted: YAML reads no as false, the choice's word is kept
    assert main(["train", f"runs_dir={tmp_path}", "--dry-run", f"data.train={clf_csv}", "train.eval_strategy=no"]) == 0
    out = capsys.readouterr().out
    assert f"train: {clf_csv}" in out and "eval_strategy: 'no'" in out
    with pytest.raises(SystemExit):
        main(["runs", "list", "extra=1"])
    assert "unrecognized arguments: extra=1" in capsys.readouterr().err


def test_a_data_file_where_the_config_file_goes_says_how_to_give_it(clf_csv, capsys):
    assert main(["train", str(clf_csv), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "looks like a data file" in err and f"data.train={clf_csv}" in err


def test_a_runs_dir_inside_a_file_is_a_clear_error(tmp_path, tiny_bert, clf_csv, capsys):
    (tmp_path / "afile").write_text("x")
    code = main(["train", f"model={tiny_bert}", f"data.train={clf_csv}", f"runs_dir={tmp_path / 'afile' / 'runs'}"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"error: runs_dir: {tmp_path / 'afile'} is a file, so {tmp_path / 'afile' / 'runs'} cannot be the folder" in err
    assert (tmp_path / "afile").read_text() == "x"
    # the runs folder itself a file
    code = main(["train", f"model={tiny_bert}", f"data.train={clf_csv}", f"runs_dir={tmp_path / 'afile'}"])
    assert code == 2 and f"runs_dir: {tmp_path / 'afile'} is a file" in capsys.readouterr().err


def test_config_prints_every_key_with_its_help_as_valid_yaml(capsys):
    import yaml

    from workbench.config import resolve, schema

    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert yaml.safe_load(out) == resolve().to_dict()
    assert "  epochs: 3  # " in out and "task: text-classification  # What to train. [text-classification|" in out
    commented = [line for line in out.splitlines() if "  # " in line]
    assert len(commented) == len([s for s in schema() if s["help"]])


def test_train_help_lists_each_tasks_options_with_defaults():
    out = subprocess.run([sys.executable, "-m", "workbench.cli", "train", "--help"], capture_output=True, text=True,
                         check=True).stdout
    assert "  text-classification: problem ('single-label'), threshold (0.5), label_separator (',')" in out
    assert "  causal-lm: format ('auto'), packing (None)" in out and "mlm_probability (0.15)" in out


def test_a_closed_pipe_ends_runs_list_quietly(tmp_path):
    for i in range(3):
        (tmp_path / f"20260101-00000{i}-broken-abcd").mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "workbench.cli", "runs", "--dir", str(tmp_path), "list"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "0"})
    proc.stdout.close()  # the reader is gone before the command writes (it is still importing)
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141 and "Traceback" not in err and "BrokenPipe" not in err


def test_dry_run_checks_the_model_too(tmp_path, clf_csv, capsys):
    assert main(["train", f"data.train={clf_csv}", "model=minlm", "--dry-run"]) == 2
    assert "model: 'minlm' is not a bundled alias (minilm)" in capsys.readouterr().err
    assert main(["train", f"data.train={clf_csv}", f"model={tmp_path / 'none'}", "--dry-run"]) == 2
    assert "does not exist" in capsys.readouterr().err


# ---- workbench predict -------------------------------------------------------------------------------

def _predict(capsys, *args):
    code = main(["predict", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_predict_prints_the_label_and_score_per_text_and_json_lines(trained, capsys):
    from workbench.api import Run

    _, runs = trained
    texts = ["match goal team player coach", "bank market shares profit " * 200]  # the second is long
    expected = Run.load("cli-test", runs).predict(texts)
    code, out, err = _predict(capsys, "cli-test", *texts, "--dir", str(runs))
    assert code == 0, err
    assert out.splitlines() == [f"{p['label']} ({p['score']:.3f})" for p in expected]
    code, out, _ = _predict(capsys, "--json", "latest", "--dir", str(runs), *texts)
    rows = [json.loads(line) for line in out.splitlines()]
    assert code == 0 and [r["input"] for r in rows] == texts
    assert [r["prediction"]["label"] for r in rows] == [p["label"] for p in expected]
    assert rows[0]["prediction"]["scores"] == pytest.approx(expected[0]["scores"])


def test_predict_reads_a_file_or_stdin_one_text_per_line(trained, tmp_path, capsys, monkeypatch):
    import io

    _, runs = trained
    run_dir = str(next(runs.iterdir()))  # a run folder works as well as an id
    f = tmp_path / "texts.txt"
    f.write_text("match goal team\n\nbank market shares\n", encoding="utf-8")
    code, from_file, err = _predict(capsys, run_dir, "--file", str(f))
    assert code == 0 and len(from_file.splitlines()) == 2, err  # the blank line is skipped
    monkeypatch.setattr("sys.stdin", io.StringIO("match goal team\nbank market shares\n"))
    code, from_stdin, _ = _predict(capsys, run_dir)
    assert code == 0 and from_stdin == from_file
    monkeypatch.setattr("sys.stdin", io.StringIO("match goal team\nbank market shares"))
    code, dash, _ = _predict(capsys, run_dir, "--file", "-", "--json")
    assert code == 0 and [json.loads(line)["input"] for line in dash.splitlines()] == ["match goal team",
                                                                                         "bank market shares"]


class _Terminal:
    def isatty(self):
        return True


def test_predict_errors_are_one_line_with_the_fix(trained, tmp_path, capsys, monkeypatch):
    _, runs = trained
    done = next(runs.iterdir())
    stopped = _copy_run(done, tmp_path / "runs" / "20260101-000000-stopped-0001", status="interrupted")
    import shutil

    shutil.rmtree(stopped / "model")
    (tmp_path / "blank.txt").write_text("\n  \n")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    monkeypatch.setattr("sys.stdin", _Terminal())
    cases = [
        (["nope", "x", "--dir", str(runs)], "No run 'nope' under"),
        (["stopped", "x", "--dir", str(tmp_path / "runs")], "has no saved model: its status is interrupted"),
        (["latest", "--dir", str(runs)], "no input: give texts after the run"),
        (["latest", "", "--dir", str(runs)], "input 1 is empty"),
        (["latest", "--file", str(tmp_path / "blank.txt"), "--dir", str(runs)], "has no text (only blank lines"),
        (["latest", "--file", str(tmp_path / "none.txt"), "--dir", str(runs)], "none.txt: No such file"),
        (["latest", "--file", str(tmp_path / "latin1.txt"), "--dir", str(runs)], "is not UTF-8 text"),
        (["latest", "x", "--file", str(tmp_path / "blank.txt"), "--dir", str(runs)], "not both"),
        (["latest", "x", "--max-new-tokens", "5", "--dir", str(runs)],
         "--max-new-tokens is for causal-lm runs; " + done.name + " is a text-classification (single-label) run"),
    ]
    for args, message in cases:
        code, out, err = _predict(capsys, *args)
        assert code == 2 and out == "", (args, out)
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, (args, err)


@pytest.fixture(scope="module")
def clm_run(tiny_gpt2, tmp_path_factory):
    root = tmp_path_factory.mktemp("predict-clm")
    data = root / "pairs.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"topic {t} {i} :", "response": f" say {t} ."}) + "\n"
                            for i in range(60) for t in ("sport", "tech", "money")))
    assert main(["train", "task=causal-lm", f"model={tiny_gpt2}", f"data.train={data}", f"runs_dir={root}",
                 "train.epochs=1", "train.max_length=32", "baseline=false", "--quiet"]) == 0
    return next(root.glob("*/run.json")).parent


def test_predict_continues_a_causal_lm_prompt(clm_run, capsys):
    from workbench.api import Run

    expected = Run(clm_run).generate(["topic sport 3 :", "topic tech 4 :"], max_new_tokens=3)
    code, out, err = _predict(capsys, str(clm_run), "topic sport 3 :", "topic tech 4 :", "--max-new-tokens", "3")
    assert code == 0, err
    assert out.splitlines() == expected
    code, out, _ = _predict(capsys, str(clm_run), "topic sport 3 :", "--max-new-tokens", "3", "--json")
    assert json.loads(out) == {"input": "topic sport 3 :", "prediction": expected[0]}
    code, _, err = _predict(capsys, str(clm_run), "x", "--threshold", "0.3")
    assert code == 2 and "--threshold is for text-classification (multi-label) runs" in err


def test_predict_text_of_each_task():
    from workbench.cli import _prediction_text

    assert _prediction_text("text-classification", {"labels": ["a", "b"], "scores": {"a": 0.9, "b": 0.61, "c": 0.1}},
                            0.5) == "a (0.900), b (0.610)"
    assert _prediction_text("text-classification", {"labels": [], "scores": {"a": 0.2}}, 0.5) == \
        "(no label at or above 0.5)"
    assert _prediction_text("text-classification", {"value": 3.14159}, 0.5) == "3.1416"
    ner = [{"entity": "PER", "text": "alice", "start": 0, "end": 5, "score": 0.91},
           {"entity": "ORG", "text": "acme corp", "start": 15, "end": 24, "score": 0.8}]
    assert _prediction_text("token-classification", ner, 0.5) == "PER 'alice' (0.910), ORG 'acme corp' (0.800)"
    assert _prediction_text("token-classification", [], 0.5) == "(no entities)"
    fill = [[{"token": "rates", "score": 0.5}, {"token": "prices", "score": 0.25}], [{"token": "up", "score": 0.7}]]
    assert _prediction_text("masked-lm", fill, 0.5) == "rates (0.500), prices (0.250) | up (0.700)"
    assert _prediction_text("causal-lm", "one\ntwo", 0.5) == "one\\ntwo"  # one line per input


def test_predict_fills_masks_of_a_masked_lm_run_and_needs_a_mask(tiny_bert, clf_csv, tmp_path, capsys):
    from workbench.api import Run
    from workbench.errors import DataError

    assert main(["train", "task=masked-lm", f"model={tiny_bert}", f"data.train={clf_csv}", f"runs_dir={tmp_path}",
                 "train.epochs=1", "train.max_length=32", "baseline=false", "--quiet"]) == 0
    capsys.readouterr()
    text = "the match [MASK] team and [MASK] bank"
    expected = Run.load("latest", tmp_path).predict(text, top_k=2)
    code, out, err = _predict(capsys, "latest", "--dir", str(tmp_path), text, "--top-k", "2")
    assert code == 0, err
    assert out == " | ".join(", ".join(f"{c['token']} ({c['score']:.3f})" for c in mask) for mask in expected) + "\n"
    code, out, err = _predict(capsys, "latest", "--dir", str(tmp_path), text, "the bank rates")
    assert code == 2 and out == "" and "error: predict: 'the bank rates' has no [MASK]; write [MASK] where" in err
    # more candidates than the vocabulary lists them all, with a warning rather than a traceback
    code, out, err = _predict(capsys, "latest", "--dir", str(tmp_path), "the [MASK] bank", "--top-k", "100000",
                              "--json")
    run = Run.load("latest", tmp_path)
    vocab = json.loads((run.dir / "model" / "config.json").read_text())["vocab_size"]
    from transformers import AutoTokenizer

    specials = AutoTokenizer.from_pretrained(str(run.dir / "model")).all_special_tokens
    words = vocab - len(specials)
    assert code == 0, err
    assert (f"warning: top_k 100000 is more than the model's {words} tokens that are no special tokens; each mask "
            f"lists all {words}.") in err
    (mask,) = json.loads(out)["prediction"]
    assert len(mask) == words and abs(sum(c["score"] for c in mask) - 1) < 1e-3
    assert not {c["token"] for c in mask} & set(specials)  # [CLS], [SEP], [MASK] are no answers
    with pytest.raises(DataError, match="predict: top_k 0: give a whole number of 1 or more"):
        Run.load("latest", tmp_path).predict(text, top_k=0)


# ---- the config file word, and a dry run that checks what the run checks before training ---------------

def test_a_config_file_of_any_suffix_is_read_and_a_word_that_is_none_is_named(tmp_path, capsys):
    good = tmp_path / "good.cfg"
    good.write_text("model: some/model\ntrain:\n  epochs: 2\n")
    assert main(["config", str(good), "name=007", "--format", "cli"]) == 0
    assert capsys.readouterr().out.split() == ["workbench", "train", "model=some/model", "name=007", "train.epochs=2"]
    assert main(["train", "train.epochs:2", "--dry-run"]) == 2
    assert capsys.readouterr().err == ("error: 'train.epochs:2' is neither a config file nor a key=value setting "
                                       "(did you mean train.epochs=2?).\n")
    # the first word names no file: said as such, not as "Only one config file" for the second
    assert main(["train", str(tmp_path / "good"), "train.epochs:", "--dry-run"]) == 2
    assert capsys.readouterr().err.startswith(f"error: config file '{tmp_path / 'good'}' not found. ")
    assert main(["config", str(good), "train.epochs:", "model:x"]) == 2
    assert "'train.epochs:' is neither a config file nor a key=value setting (did you mean train.epochs=VALUE?)" \
        in capsys.readouterr().err


def test_dry_run_refuses_a_checkpoint_that_does_not_exist_without_a_run_folder(tmp_path, tiny_bert, clf_csv, capsys):
    runs = tmp_path / "runs"
    code = main(["train", f"model={tiny_bert}", f"data.train={clf_csv}", f"runs_dir={runs}",
                 "train.resume_from=nonexistent", "--dry-run"])
    assert code == 2
    assert f"error: train.resume_from: No run 'nonexistent' under {runs}." in capsys.readouterr().err
    assert not runs.exists()


@pytest.mark.parametrize("task,model,message", [
    ("masked-lm", "tiny_gpt2", "has no mask token, so it cannot do masked-LM"),
    ("causal-lm", "tiny_bert", "has no end-of-sequence token; a causal LM needs one"),
])
def test_dry_run_refuses_a_model_the_task_cannot_train(task, model, message, request, tmp_path, clf_csv, capsys):
    path = request.getfixturevalue(model)
    runs = tmp_path / "runs"
    code = main(["train", f"task={task}", f"model={path}", f"data.train={clf_csv}", f"runs_dir={runs}", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"error: model: the tokenizer of '{path}' {message}" in err and "Traceback" not in err
    assert not runs.exists()


def test_dry_run_says_it_lowers_max_length_to_the_models_positions(tmp_path, tiny_bert, clf_csv, capsys):
    runs = tmp_path / "runs"
    assert main(["train", f"model={tiny_bert}", f"data.train={clf_csv}", f"runs_dir={runs}", "train.max_length=1000",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert ("  adjusted: train.max_length: 1000 -> 128: the model takes at most 128 tokens per sequence (its position "
            "embeddings)") in out
    assert "max_length: 1000" in out  # the config as given; the run keeps that under `adjusted`
    assert re.search(r"^  train: \d+ examples of up to 128 tokens$", out, re.M)
    assert not runs.exists()
    # within the limit: nothing adjusted
    assert main(["train", f"model={tiny_bert}", f"data.train={clf_csv}", f"runs_dir={runs}", "train.max_length=64",
                 "--dry-run"]) == 0
    assert "adjusted" not in capsys.readouterr().out


def test_dry_run_checks_the_checkpoint_it_would_resume_from_against_the_data(tmp_path, tiny_bert, clf_csv, capsys):
    import csv

    from builders import make_texts

    runs = tmp_path / "runs"
    common = [f"model={tiny_bert}", f"runs_dir={runs}", "train.max_length=32"]
    assert main(["train", *common, f"data.train={clf_csv}", "train.max_steps=3", "baseline=false", "--quiet"]) == 0
    capsys.readouterr()
    (before,) = [p.name for p in runs.iterdir()]
    assert main(["train", *common, f"data.train={clf_csv}", "train.max_steps=6", "train.resume_from=latest",
                 "--dry-run"]) == 0
    assert f"resumes from: {runs / before / 'checkpoints' / 'checkpoint-3'}\n" in capsys.readouterr().out
    two = tmp_path / "two.csv"  # other labels than the checkpoint's head was trained for
    with open(two, "w", newline="") as f:
        csv.writer(f).writerows([("text", "label")] + [(t, "sport" if y == "sport" else "other")
                                                       for t, y in make_texts(90)])
    assert main(["train", *common, f"data.train={two}", "train.max_steps=6", "train.resume_from=latest",
                 "--dry-run"]) == 2
    assert "error: train.resume_from: checkpoint-3 of run " in capsys.readouterr().err
    assert [p.name for p in runs.iterdir()] == [before]  # no run folder for either


def test_runs_list_of_a_folder_that_does_not_exist_says_so(tmp_path, capsys, monkeypatch):
    assert main(["runs", "list", "--dir", str(tmp_path / "nope")]) == 2
    assert f"no folder {tmp_path / 'nope'} (--dir)" in capsys.readouterr().err
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "fresh"))
    assert main(["runs", "list"]) == 0
    assert "No runs yet: " in capsys.readouterr().out
    (tmp_path / "fresh").mkdir()
    assert main(["runs", "list"]) == 0
    assert "No runs under " in capsys.readouterr().out


def test_an_empty_continuation_is_said_not_printed_as_a_blank_line():
    from workbench.cli import _prediction_text

    assert _prediction_text("causal-lm", "", 0.5) == "(no text: the model continued with only special tokens or spaces)"
    assert _prediction_text("causal-lm", "  ", 0.5) == "'  '"
    assert _prediction_text("causal-lm", "a\nb", 0.5) == "a\\nb"
