"""The benchmark harness: its FLOP counts, its measurements, and the GPU suite's code paths at toy sizes."""

from __future__ import annotations

import json
import os

import pytest
import torch

from benchmarks import corpus, measure, models, run, variants, workloads


def _meta_model(name: str, task: str):
    import transformers

    arch, kw = models.SHAPES[name]
    config_cls = {"bert": transformers.BertConfig, "gpt2": transformers.GPT2Config,
                  "qwen2": transformers.Qwen2Config, "llama": transformers.LlamaConfig}[arch]
    with torch.device("meta"):
        return variants.model_class(task).from_config(config_cls(**kw))


@pytest.mark.parametrize("name, task, seq, published", [
    # GFLOP per token for training, from docs/../research: BERT-base 0.528 @128 (encoder only),
    # GPT-2 0.85 @1024, Qwen2.5-0.5B 3.23 @1024, Llama-3.2-1B 7.82 @1024 (LM head included)
    ("bert-base", "masked-lm", 128, 0.528), ("gpt2-124m", "causal-lm", 1024, 0.85),
    ("qwen2-0.5b", "causal-lm", 1024, 3.23), ("llama-1b", "causal-lm", 1024, 7.82),
])
def test_flops_per_token_match_the_published_counts(name, task, seq, published):
    shape = measure.model_shape(_meta_model(name, task))
    if task == "masked-lm":  # the published BERT figure counts the encoder without the MLM head
        head = 30522 * 768 + 768 * 768
        shape = {**shape, "matmul_params": shape["matmul_params"] - head}
    flops = measure.training_flops(shape, [{"real": seq, "rows": [seq]}])["flops_6n"] / seq
    assert flops / 1e9 == pytest.approx(published, rel=0.02)


def test_lora_flops_count_no_weight_gradients():
    shape = {"matmul_params": 1000, "layers": 2, "attn_width": 8, "params": 1100, "trainable_params": 10}
    f = measure.training_flops(shape, [{"real": 10, "rows": [4, 6]}], lora=True)
    attn = 12 * 2 * 8 * (16 + 36)
    assert f["flops_6n"] == 6 * 1000 * 10 + attn and f["flops_lora"] == 4 * 1000 * 10 + attn


def test_counting_collator_counts_real_and_padded_tokens():
    from transformers import AutoTokenizer, DataCollatorWithPadding

    tok = AutoTokenizer.from_pretrained(models.minilm_path())
    count = measure.CountingCollator(DataCollatorWithPadding(tok), tok.pad_token_id)
    feats = [{"input_ids": x, "attention_mask": [1] * len(x)} for x in tok(["a b c d e", "a"])["input_ids"]]
    batch = count(feats)
    assert batch["input_ids"].shape == (2, 7)
    assert count.batches == [{"examples": 2, "real": 10, "padded": 14, "width": 7, "rows": [7, 3]}]


def test_gpu_peaks():
    assert measure.gpu_peak("NVIDIA H100 80GB HBM3") == 989.4e12
    assert measure.gpu_peak("NVIDIA H200") == 989.4e12
    assert measure.gpu_peak("NVIDIA H100 PCIe") is None and measure.gpu_peak(None) is None


def test_corpora_have_no_text_in_both_train_and_eval(tmp_path):
    paths = corpus.build("bbc-short", tmp_path, 300, 50)
    train, labels = corpus.read(paths["train"])
    evals, _ = corpus.read(paths["eval"])
    assert len(train) == 300 and len(evals) == 50 and not set(train) & set(evals)
    assert set(labels) == {"business", "entertainment", "politics", "sports", "tech"}


@pytest.fixture(scope="module")
def bench_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    mp = pytest.MonkeyPatch()
    mp.setenv("WORKBENCH_BENCH_DIR", str(root))
    yield root
    mp.undo()


def test_smoke_suite_end_to_end(bench_dir, tmp_path):
    """All four variants in their own processes, a %%finetune notebook under papermill, the JSON and
    the markdown section."""
    md = tmp_path / "bench.md"
    md.write_text("# Benchmarks\n\nintro\n")
    out = tmp_path / "smoke.json"
    assert run.main(["--suite", "smoke", "--workloads", "toy-bert-short", "--repeats", "1", "--out", str(out),
                     "--markdown", str(md)]) == 0
    result = json.loads(out.read_text())
    rows = result["table"]["toy-bert-short"]
    assert set(rows) == {"B0", "B1", "B2", "P"} and not result["failures"]
    assert result["ratios"]["toy-bert-short"]["P and B2 same batches"] is True
    assert result["ratios"]["toy-bert-short"]["P/B2 step time, step by step"] > 0
    assert len(result["records"][0]["step_times"]) == result["records"][0]["steps"]
    # the scripts and the hand loop have oneDNN's default kernel cache, workbench its own
    from workbench import _onednn

    caches = {r["variant"]: r["onednn_cache"] for r in result["records"]}
    assert caches == {"B0": "1024", "B1": "1024", "B2": "1024",
                      "P": os.environ.get(_onednn.CACHE_VARIABLE, str(_onednn.CACHE_CAPACITY))}
    assert rows["B0"]["pad_fraction"] > 0.4 > rows["P"]["pad_fraction"]  # B0 pads every text to max_length
    assert rows["B0"]["precision"] == "fp32" and rows["P"]["precision"] == rows["B1"]["precision"]
    # each variant evaluates the held-out rows once, after training (workbench: no validation pass as well)
    assert {r["variant"]: r["phase_calls"]["eval"] for r in result["records"]} == {v: 1 for v in rows}
    for r in rows.values():
        assert r["tokens_per_second"] > 0 and r["split"]["train"] > 0 and r["metric"]["name"] == "accuracy"
    magic = result["magic"]
    assert magic["status"] == "completed" and 0 < magic["ui_seconds"] < magic["elapsed_seconds"]
    text = md.read_text()
    assert text.startswith("# Benchmarks\n\nintro") and "<!-- BEGIN smoke -->" in text
    assert "| P workbench |" in text and "Ratios against the targets" in text


def test_budget_skips_runs_that_would_end_after_it_and_children_clean_up(bench_dir, tmp_path):
    """With a budget, the first run goes ahead, and a run that its predecessors say would end after
    the budget is skipped and reported; every child's temporary folder is removed when it ends."""
    md = tmp_path / "bench.md"
    out = tmp_path / "budget.json"
    run.main(["--suite", "smoke", "--workloads", "toy-bert-short", "--variants", "B2,P", "--repeats", "2",
              "--budget", "1", "--magic", "", "--out", str(out), "--markdown", str(md)])
    result = json.loads(out.read_text())
    assert len(result["records"]) == 1 and len(result["skipped"]) == 3
    assert result["skipped"][0]["workload"] == "toy-bert-short" and result["skipped"][-1]["round"] == 2
    text = md.read_text()
    assert "up to 2 interleaved repeats" in text
    assert "| B2 hand loop (1 of 2 runs) |" in text or "| P workbench (1 of 2 runs) |" in text
    assert "(k of n runs) have fewer runs than asked, and these have none: toy-bert-short " in text
    assert not [p for p in bench_dir.iterdir() if p.name.startswith("toy-bert-short-")]


def test_lora_decoder_variants_and_mfu(bench_dir):
    """The GPU suite's LoRA decoder path, in process at toy size, with MFU against a stand-in peak."""
    (w,) = workloads.get("smoke", ["toy-qwen2-lora"])
    spec = json.loads(run.prepare([w], bench_dir)[w.name].read_text())
    records = [variants.VARIANTS[v](spec) for v in ("B1", "P")]
    for rec in records:
        rec["repeat"] = 0
        assert rec["shape"]["trainable_params"] < rec["shape"]["params"] / 5  # adapters only
        assert all(b["real"] == b["padded"] for b in rec["batches"][:rec["warmup"] + rec["steps"]])  # packed
    stats = run.window_stats({**records[1], "device": "cuda"}, peak=1e12)
    assert 0 < stats["mfu_lora"] < stats["mfu"]
    summary = run.summarize(records, None)
    assert summary["ratios"]["toy-qwen2-lora"]["P/B1 tokens/s"] > 0


def test_report_merges_results_of_several_calls(bench_dir):
    """Two calls that measured the same workload give one row per variant with the runs of both."""
    from benchmarks.report import merge, render

    (w,) = workloads.get("smoke", ["toy-bert-short"])
    spec = json.loads(run.prepare([w], bench_dir)[w.name].read_text())
    calls = []
    for rep, variant in enumerate(["B2", "B2"]):
        rec = variants.VARIANTS[variant](spec)
        rec["repeat"] = rep
        calls.append({"suite": "smoke", "started": "t", "seconds": 10.0, "repeats": 2, "machine": {},
                      "peak_flops": None, "load_start": [1], "load_end": [rep], "workloads": [w.to_dict()],
                      "records": [rec], "skipped": [{"workload": "toy-bert-short", "variant": "P", "round": rep + 1}],
                      **run.summarize([rec], None)})
    m = merge(calls)
    assert [x["name"] for x in m["workloads"]] == ["toy-bert-short"]
    assert m["table"]["toy-bert-short"]["B2"]["repeats"] == 2 and m["seconds"] == 20 and m["load_end"] == [1]
    text = render(m)
    assert text.count("#### toy-bert-short") == 1 and "| B2 hand loop |" in text and " in 2 calls (" in text
    assert "these have none: toy-bert-short P." in text and "| B0 naive Trainer | failed or not run |" in text
    # the P/B0 target is judged on long-tailed text only; texts that fill max_length are shown without it
    m["ratios"]["toy-bert-short"]["P/B0 tokens/s"] = 2.0
    assert "| toy-bert-short | 2.00× not met |" in render(m)
    m["workloads"][0]["long_tailed"] = False
    assert "| toy-bert-short | 2.00× (no target: not long-tailed text) |" in render(m)
    from benchmarks.report import long_tailed

    assert not long_tailed({"name": "bert-base-bbc"}) and long_tailed({"name": "gpt2-clm"})  # older result files
    assert [w.name for w in workloads.CPU + workloads.GPU if not w.long_tailed] == [
        "minilm-bbc-long", "minilm-bbc-long-b32", "bert-base-bbc"]


def test_counting_collator_in_loader_workers_keeps_the_batch_order():
    """GPU runs collate in worker processes; their records come back in the loader's order."""
    from torch.utils.data import DataLoader

    rows = [{"input_ids": [1] * n, "attention_mask": [1] * n} for n in range(1, 41)]

    def pad(features):
        width = max(len(f["input_ids"]) for f in features)
        return {k: torch.tensor([f[k] + [0] * (width - len(f[k])) for f in features]) for k in features[0]}

    count = measure.CountingCollator(pad, 0)
    loader = DataLoader(rows, batch_size=4, num_workers=2, collate_fn=count)
    widths = [int(b["input_ids"].shape[1]) for b in loader]
    assert not count.batches  # nothing was counted in this process
    assert [b["width"] for b in count.train_batches(10)] == widths == list(range(4, 41, 4))
    assert count.train_batches(3)[0]["rows"] == [1, 2, 3, 4]


def test_ratios_round_by_round_pair_runs_of_the_same_call_and_round():
    windows = {"P": {(0, 0): {"step_seconds": 1.0}, (0, 1): {"step_seconds": 2.2}, (1, 0): {"step_seconds": 3.0}},
               "B2": {(0, 0): {"step_seconds": 1.25}, (0, 1): {"step_seconds": 2.0}, (1, 1): {"step_seconds": 9.0}}}
    assert run.round_ratios(windows, "P", "B2", "step_seconds") == pytest.approx([0.8, 1.1])
    assert run.round_ratios(windows, "P", "B0", "step_seconds") == []


def test_step_by_step_ratio_takes_each_steps_median_over_runs_and_needs_the_same_batches():
    batches = [{"rows": [5, 4]}, {"rows": [9, 9]}, {"rows": [3, 2]}]

    def rec(times, b=batches):
        return {"step_times": times, "batches": b}

    # a burst of outside load slowed step 2 of one P run tenfold: the median over the runs leaves it out
    p = [rec([1.0, 2.0, 1.0]), rec([1.1, 20.0, 0.9]), rec([0.9, 2.2, 1.0])]
    b2 = [rec([1.0, 2.0, 1.0]), rec([1.0, 2.0, 1.0]), rec([1.0, 2.0, 1.0])]
    assert run.step_by_step_ratio(p, b2) == pytest.approx((1.0 + 2.2 + 1.0) / 4.0)
    other = [{"rows": [5, 4]}, {"rows": [9, 8]}, {"rows": [3, 2]}]
    assert run.step_by_step_ratio(p, [rec([1.0, 2.0, 1.0], other)]) is None  # different batches: no pairing
    assert run.step_by_step_ratio(p, [rec(None)]) is None  # GPU runs record no single steps


def test_loss_microbenchmark_times_both_losses_and_finds_them_equal(tmp_path, capsys):
    from benchmarks import loss

    out = tmp_path / "loss.json"
    assert loss.main(["--device", "cpu", "--rows", "37", "--vocab", "500", "--repeats", "2", "--out", str(out)]) == 0
    (r,) = json.loads(out.read_text())["results"]
    assert (r["rows"], r["vocab"], r["device"]) == (37, 500, "cpu")
    assert len(r["torch_s_all"]) == len(r["workbench_s_all"]) == 2 and r["torch_s"] > 0 and r["workbench_s"] > 0
    assert r["loss_diff"] < 1e-4 and r["grad_max_diff"] < 1e-3
    assert "| 37 x 500 | cpu |" in capsys.readouterr().out


def test_variants_no_chosen_workload_has_are_refused_by_name_and_others_are_left_out(bench_dir, tmp_path, capsys):
    with pytest.raises(SystemExit) as stop:
        run.main(["--suite", "smoke", "--workloads", "toy-gpt2-clm", "--variants", "P+compile", "--markdown", "",
                  "--out", str(tmp_path / "none.json")])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert "--variants P+compile" in err and "toy-gpt2-clm" in err and "known: B0, B1, B2, P" in err
    assert not (tmp_path / "none.json").exists()
    # in the GPU suite the packed GPT-2 blocks have a compiled variant, the LoRA decoder none
    chosen = [w.name for w in workloads.get("gpu", ["gpt2-clm", "qwen-0.5b-lora"]) if "P+compile" in w.variants]
    assert chosen == ["gpt2-clm"]


def test_gpu_kit_pins_the_installed_wheels_for_the_gpu_machines_python():
    import importlib.metadata

    from benchmarks import kit

    cmd = kit.download_command(kit.ROOT / "w", "3.12")
    assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and "--only-binary=:all:" in cmd
    assert cmd[cmd.index("--python-version") + 1] == "3.12"
    assert cmd[-len(kit.WHEELS):] == [f"{n}=={importlib.metadata.version(n)}" for n in kit.WHEELS]
    with pytest.raises(SystemExit, match="no-such-wheel-here is not installed"):
        kit.pins(("no-such-wheel-here",))


def test_gpu_kit_and_its_run_script_dry_run_on_a_cpu(tmp_path):
    """The folder ``python -m benchmarks.kit`` makes holds every GPU workload's data, and
    ``benchmarks/gpu_run.sh`` runs its steps from it (smoke suite, a tiny loss shape, 150 s in all: the
    suite's budget is what is left less 130 s, so its first run only)."""
    import os
    import re
    import subprocess
    import sys

    from benchmarks import kit

    assert kit.main([str(tmp_path / "kit"), "--no-wheels"]) == 0
    bench = tmp_path / "kit" / "bench"
    for w in workloads.GPU + workloads.SMOKE:
        folder = bench / "data" / f"{w.corpus}-{w.n_train}-{w.n_eval}"
        assert (folder / "train.csv").stat().st_size > 0 and (folder / "eval.csv").stat().st_size > 0, w.name
    assert (bench / "models" / "tokenizer" / "tokenizer.json").exists()
    assert not (tmp_path / "kit" / "whl").exists()

    script = kit.ROOT / "benchmarks" / "gpu_run.sh"
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}", "OUT": str(tmp_path / "out")}
    missing = subprocess.run(["bash", str(script)], cwd=kit.ROOT, capture_output=True, text=True,
                             env={**env, "WORKBENCH_KIT": str(tmp_path / "none")})
    assert missing.returncode == 2 and "no kit at" in missing.stdout
    dry = subprocess.run(["bash", str(script), "150"], cwd=kit.ROOT, capture_output=True, text=True, timeout=600,
                         env={**env, "WORKBENCH_KIT": str(tmp_path / "kit"), "SUITE": "smoke", "SKIP_WHEELS": "1",
                              "LOSS_ARGS": "--rows 16 --vocab 100 --repeats 1"})
    log = (tmp_path / "out" / "run.log").read_text()
    assert dry.returncode == 0 and "== done" in log, log[-3000:]
    budget = int(re.search(r"== suite, a (\d+)-s budget \((\d+) s\)", log).group(1))
    assert 1 <= budget <= 150 - 130  # what the earlier steps left, less 130 s
    assert "passed" in (tmp_path / "out" / "pytest.log").read_text()
    (loss,) = json.loads((tmp_path / "out" / "loss-gpu.json").read_text())["results"]
    assert (loss["rows"], loss["vocab"]) == (16, 100)
    suite = json.loads((tmp_path / "out" / "gpu-run.json").read_text())
    ran = [(r["workload"], r["variant"]) for r in suite["records"] if "error" not in r]
    assert ran and {w for w, _ in ran} <= {"toy-gpt2-clm", "toy-qwen2-lora"}, suite["records"]
    profiled = json.loads((tmp_path / "out" / "profiles" / "toy-bert-short-P.json").read_text())
    assert profiled["steps"] == 5 and profiled["step_seconds"] > 0
    assert (tmp_path / "out" / "logs.tgz").exists()


@pytest.mark.parametrize("variant", ["P", "B2"])
def test_profile_covers_exactly_the_timed_steps(bench_dir, tmp_path, variant):
    from benchmarks import profile

    (w,) = workloads.get("smoke", ["toy-bert-short"])
    spec = json.loads(run.prepare([w], bench_dir)[w.name].read_text())
    result = profile.profile_variant(spec, variant, 3, trace=tmp_path / "t.json")
    s = result["summary"]
    assert (s["workload"], s["variant"], s["steps"], s["device"]) == ("toy-bert-short", variant, 3, "cpu")
    assert 0 < s["host_op_seconds_per_step"] <= s["step_seconds"] and s["gpu_busy_share"] is None
    # one fused AdamW call per parameter group (decayed, not decayed) in each profiled step, no more
    assert result["calls"]["aten::_fused_adamw_"] == 2 * 3
    assert "aten::mm" in result["table"] and json.loads((tmp_path / "t.json").read_text())["traceEvents"]


def test_profile_command_names_unknown_workloads_and_variants(capsys):
    from benchmarks import profile

    for argv, words in [(["nope"], "no workload 'nope'"), (["toy-bert-host", "--variant", "B0"], "has no variant 'B0'")]:
        with pytest.raises(SystemExit):
            profile.main(argv)
        assert words in capsys.readouterr().err


def test_workloads_run_in_the_order_asked_for():
    assert [w.name for w in workloads.get("gpu", ["qwen-0.5b-lora", "gpt2-clm", "qwen-0.5b-lora"])] == [
        "qwen-0.5b-lora", "gpt2-clm"]
    assert [w.name for w in workloads.get("gpu")][:2] == ["bert-base-bbc", "llama-1b-full"]  # no list: the suite's
    with pytest.raises(SystemExit, match="unknown workload"):
        workloads.get("gpu", ["gpt2"])
