"""Masked-LM domain adaptation on a tiny BERT, and "adapt, then fine-tune" as one workflow."""

import json

import numpy as np
import pytest
import yaml

from workbench import finetune
from workbench.api import Run
from workbench.cli import main
from workbench.config import resolve
from workbench.errors import ConfigError, DataError, ModelError
from workbench.models import load_tokenizer
from workbench.tasks import get
from workbench.tasks._lm import pack

from builders import build_tiny_bert, make_texts, ner_vocab, tiny_config


@pytest.fixture(scope="module")
def domain_txt(tmp_path_factory):
    """Domain text as a user has it: a .txt file, one text per line, with blank lines between some."""
    lines = []
    for i, (text, _) in enumerate(make_texts(300, seed=3)):
        lines.append(text)
        if i % 10 == 9:
            lines.append("")
    path = tmp_path_factory.mktemp("mlm") / "domain.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


def mlm_config(model, source, runs, **options):
    return {"task": "masked-lm", "model": str(model), "runs_dir": str(runs), "data": {"train": str(source)},
            "train": {"epochs": 4, "learning_rate": 3e-3, "batch_size": 16, "max_length": 64, "warmup_ratio": 0.0,
                      "logging_steps": 5, "early_stopping_patience": 2},
            "task_options": options}


def tokenized(cfg):
    c = resolve(inline=cfg)
    task = get(c.task)(c)
    tok = load_tokenizer(c)
    splits = task.load_data()
    return task, splits, task.tokenize(splits, tok), tok


@pytest.fixture(scope="module")
def adapted(tiny_bert, domain_txt, tmp_path_factory):
    """`workbench train adapt.yaml` (stage 1 of adapt-then-fine-tune), as a user would run it."""
    root = tmp_path_factory.mktemp("mlm-cli")
    path = root / "adapt.yaml"
    path.write_text(yaml.safe_dump(mlm_config(tiny_bert, domain_txt, root / "runs")))
    assert main(["train", str(path), "--quiet"]) == 0
    return Run(next((root / "runs").iterdir()))


def test_pack_cuts_one_stream_into_blocks_and_keeps_columns_aligned():
    out = pack({"input_ids": [[1, 2, 3], [4, 5], [6, 7, 8, 9]], "labels": [[1, 2, 3], [-1, -2], [6, 7, 8, 9]]}, 4)
    assert out["input_ids"] == [[1, 2, 3, 4], [5, 6, 7, 8], [9]]
    assert out["labels"] == [[1, 2, 3, -1], [-2, 6, 7, 8], [9]]


def test_adapted_model_beats_the_base_model_on_held_out_perplexity(adapted):
    ev = adapted.evaluation
    assert adapted.status == "completed" and ev["main_metric"] == "perplexity" and ev["greater_is_better"] is False
    fin, base = ev["finetuned"], ev["baseline"]
    assert fin["perplexity"] < base["perplexity"], (fin, base)
    assert fin["perplexity"] == pytest.approx(np.exp(fin["nll"]))
    assert ev["delta"]["perplexity"] == pytest.approx(fin["perplexity"] - base["perplexity"])
    # the tiny BERT was saved without a masked-LM head: the baseline trains one on the frozen encoder
    assert set(ev["baselines"]) == {"base_model", "frozen_encoder_trained_head"}
    assert ev["base_head_missing"] and all(k.startswith("cls.") for k in ev["base_head_missing"])
    assert ev["scored_tokens"] > 50 and ev["masking"] == {"mlm_probability": 0.15, "whole_word_mask": False}
    for ex in ev["examples"]:
        assert "[MASK]" in ex["text"] and ex["finetuned"] != ex["baseline"]
    phases = [r["detail"] for r in adapted.history() if r["event"] == "phase" and r["name"] == "baseline"]
    assert any("training the masked-LM head" in p and " of " in p for p in phases)  # no silent minutes
    evals = [r for r in adapted.history() if r["event"] == "eval"]
    assert evals and all("perplexity" in r["metrics"] for r in evals)
    assert adapted.info["data"]["blank_lines_skipped"] == {"data.train": 30}


def test_fill_mask_predictions(adapted):
    out = adapted.predict("the bank [MASK] shares profit")
    assert len(out) == 1 and len(out[0]) == 5
    assert all(isinstance(c["token"], str) and 0 <= c["score"] <= 1 for c in out[0])
    with pytest.raises(DataError, match="has no \\[MASK\\]"):
        adapted.predict("no mask here")


def test_adapt_then_fine_tune(adapted, clf_csv, tmp_path):
    """The adapted encoder is the `model:` of a classification run (stage 2 of the documented workflow)."""
    run = finetune(tiny_config(adapted.dir / "model", clf_csv, tmp_path), progress=False)
    ev = run.evaluation
    assert run.status == "completed" and run.config.model == str(adapted.dir / "model")
    assert ev["finetuned"]["accuracy"] > ev["baselines"]["majority_class"]["accuracy"] + 0.2


def test_evaluation_blocks_are_masked_once_with_a_fixed_seed(tiny_bert, domain_txt, tmp_path):
    cfg = mlm_config(tiny_bert, domain_txt, tmp_path, mlm_probability=0.3)
    _, _, first, _ = tokenized(cfg)
    _, _, second, _ = tokenized(cfg)
    assert first["test"]["labels"] == second["test"]["labels"]
    assert "labels" not in first["train"].column_names  # training masks afresh in every batch
    labels = np.concatenate([np.asarray(x) for x in first["test"]["labels"]])
    ids = np.concatenate([np.asarray(x) for x in first["test"]["input_ids"]])
    share = (labels != -100).mean()
    assert 0.2 < share < 0.4  # special tokens are never masked, so a little under 0.3
    assert (ids[labels != -100] == 4).mean() > 0.6  # mostly replaced by [MASK] (id 4), some random or kept


def test_whole_word_masking_masks_every_piece_of_a_word(tmp_path):
    model = build_tiny_bert(tmp_path / "bert", ner_vocab())
    path = tmp_path / "berlin.txt"
    path.write_text("\n".join(f"bob visited berlin and madrid with alice {i}" for i in range(200)) + "\n")
    task, _, ds, tok = tokenized(mlm_config(model, path, tmp_path, whole_word_mask=True, mlm_probability=0.4))
    ber, lin = tok.convert_tokens_to_ids(["ber", "##lin"])
    pairs = 0
    for ids, labels in zip(ds["test"]["input_ids"], ds["test"]["labels"]):
        original = [lab if lab != -100 else t for t, lab in zip(ids, labels)]
        for i in range(len(original) - 1):
            if original[i] == ber and original[i + 1] == lin:
                pairs += 1
                assert (labels[i] == -100) == (labels[i + 1] == -100)
    assert pairs > 10
    collated = task.collator(tok)([ds["train"][i] for i in range(4)])
    assert set(collated) >= {"input_ids", "attention_mask", "labels"} and collated["labels"].shape[0] == 4


def test_unpacked_examples_are_truncated_and_reported(tiny_bert, domain_txt, tmp_path):
    task, splits, ds, _ = tokenized(mlm_config(tiny_bert, domain_txt, tmp_path, packing=False, sample_by="paragraph"))
    report = task.length_report["train"]
    assert report["truncated"] > 0 and report["tokens_kept"] < report["tokens_before"]
    assert max(len(x) for x in ds["train"]["input_ids"]) == 64 and len(ds["train"]) == len(splits.train)
    assert splits.train["location"].str.startswith("line ").all()  # paragraphs remember where they start


def test_empty_documents_and_files_are_errors(tiny_bert, tmp_path):
    csv = tmp_path / "docs.csv"
    csv.write_text("text\n" + "\n".join(f"some text {i}" for i in range(20)) + '\n""\nmore text\n')
    with pytest.raises(DataError, match=r"docs.csv, line 22: empty text in column 'text'"):
        finetune(mlm_config(tiny_bert, csv, tmp_path / "runs"), progress=False)
    folder = tmp_path / "corpus"
    folder.mkdir()
    (folder / "a.txt").write_text("one text\nanother text\n")
    (folder / "b.txt").write_text("\n\n")
    with pytest.raises(DataError, match=r"b.txt: the file holds no text \(empty document\)"):
        finetune(mlm_config(tiny_bert, folder, tmp_path / "runs"), progress=False)


def test_options_and_models_are_checked(tiny_bert, tiny_gpt2, domain_txt, tmp_path):
    from workbench.errors import ConfigError

    with pytest.raises(ConfigError, match="Did you mean 'mlm_probability'"):
        finetune(mlm_config(tiny_bert, domain_txt, tmp_path, mlm_prob=0.2), progress=False)
    with pytest.raises(ModelError, match="no mask token.*causal-lm"):
        finetune(mlm_config(tiny_gpt2, domain_txt, tmp_path), progress=False)


def test_eval_json_is_strict_json(adapted):
    text = (adapted.dir / "eval.json").read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["split"] == "test"


def test_best_metric_is_checked_against_the_language_model_metrics(tiny_bert, domain_txt, tmp_path):
    cfg = mlm_config(tiny_bert, domain_txt, tmp_path)
    cfg["train"]["metric_for_best_model"] = "f1_macro"  # a classification metric
    with pytest.raises(ConfigError, match=r"'f1_macro' is not a validation metric.*perplexity"):
        finetune(cfg, progress=False, baseline=False)


def test_baseline_training_reports_at_most_ten_progress_lines():
    from types import SimpleNamespace

    from workbench.tasks._lm import phase_every

    for steps in (5, 18, 19, 101):
        shown = []
        callback = phase_every(shown.append, "baseline", "training the head")
        for step in range(1, steps + 1):
            callback.on_step_end(None, SimpleNamespace(global_step=step, max_steps=steps), None)
        assert len(shown) <= 10 and shown[-1].detail.endswith(f"step {steps} of {steps}"), (steps, len(shown))
    assert len(shown) == 10


def test_a_stop_during_the_base_models_evaluation_ends_it_at_the_next_batch(tiny_bert, domain_txt, tmp_path):
    """The masked-LM baseline runs through Trainer's prediction loop: a stop there ends it at the
    next batch, before any training."""
    import threading

    from workbench.events import Phase
    from workbench.tasks import _common

    stop, batches = threading.Event(), []
    original = _common.raise_if_stopped

    def counting():
        batches.append(1)
        original()

    _common.raise_if_stopped = counting
    try:
        run = finetune(mlm_config(tiny_bert, domain_txt, tmp_path / "runs"), progress=False, stop_event=stop,
                       sinks=[lambda e: stop.set() if isinstance(e, Phase) and e.name == "baseline" else None])
    finally:
        _common.raise_if_stopped = original
    assert run.status == "interrupted"
    assert run.info["error"] == "stopped on request before training, while evaluating the base model"
    assert len(batches) == 1  # the first batch's check ended it


def test_a_corpus_folder_is_read_with_its_sub_folders_and_other_files_are_named(tiny_bert, tmp_path):
    """A corpus kept by year: every line of every file is a text (the folder names are no labels), and
    a file that is not text is named rather than making the folder read as something else."""
    corpus = tmp_path / "corpus"
    for year in ("2023", "2024"):
        (corpus / year).mkdir(parents=True)
        for n in range(3):
            (corpus / year / f"{n}.txt").write_text("".join(f"note {year} {n} line {i}\n" for i in range(20)))
    (corpus / "top.txt").write_text("a text at the top\nand another\n")
    cfg = resolve(inline=mlm_config(tiny_bert, corpus, tmp_path / "runs"))
    splits = get("masked-lm")(cfg).load_data()
    assert sum(len(f) for _, f in splits.items()) == 2 * 3 * 20 + 2
    assert "2024/1.txt line 5" in set(splits.train["location"]) | set(splits.test["location"]) | set(
        splits.validation["location"])
    (corpus / "2024" / "stats.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"corpus: besides 7 text files the folder holds 1 other file "
                                        r"\(2024/stats.csv\).*a glob such as .*corpus/\*\*/\*.txt"):
        get("masked-lm")(cfg).load_data()
    # the suggested glob reads the text files; corpus/** matches the folders too, which are no documents
    cfg = resolve(inline=mlm_config(tiny_bert, f"{corpus}/**/*.txt", tmp_path / "runs"))
    splits = get("masked-lm")(cfg).load_data()
    assert sum(len(f) for _, f in splits.items()) == 2 * 3 * 20 + 2
    (corpus / "2024" / "stats.csv").unlink()
    splits = get("masked-lm")(resolve(inline=mlm_config(tiny_bert, f"{corpus}/**", tmp_path / "runs"))).load_data()
    assert sum(len(f) for _, f in splits.items()) == 2 * 3 * 20 + 2
    (corpus / "2024" / "stats.csv").write_text("a,b\n1,2\n")
    with pytest.raises(DataError, match=r"corpus/\*\*: besides 7 text files the pattern matches 1 other file "
                                        r"\(.*2024/stats.csv\).*End the pattern with the text files' suffix"):
        get("masked-lm")(resolve(inline=mlm_config(tiny_bert, f"{corpus}/**", tmp_path / "runs"))).load_data()
