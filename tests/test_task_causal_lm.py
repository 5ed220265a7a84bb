"""Causal-LM fine-tuning of tiny decoders (GPT-2, Llama, Qwen2 configs): text, prompt/response, generate."""

import json
import random

import pytest
import yaml

from workbench import finetune
from workbench.api import Run
from workbench.cli import main
from workbench.config import resolve
from workbench.errors import ConfigError, DataError
from workbench.models import load_tokenizer
from workbench.tasks import get

from builders import TOPICS, build_tiny_decoder, make_texts

ANSWERS = {t: " ".join(words.split()[:4]) for t, words in TOPICS.items()}


def pairs(n, seed=0):
    """Prompts that name a topic among filler words; the response is that topic's first four keywords."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        topic = list(TOPICS)[i % 3]
        filler = " ".join(rng.choice("the a of and to in on".split()) for _ in range(rng.randint(1, 4)))
        rows.append({"prompt": f"{filler} topic {topic} {i} :", "response": ANSWERS[topic]})
    return rows


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def clm_config(model, source, runs, **train):
    t = {"epochs": 5, "learning_rate": 3e-3, "batch_size": 16, "max_length": 64, "warmup_ratio": 0.0,
         "logging_steps": 5}
    t.update(train)
    return {"task": "causal-lm", "model": str(model), "runs_dir": str(runs), "data": {"train": str(source)}, "train": t}


@pytest.fixture(scope="module")
def pairs_jsonl(tmp_path_factory):
    return write_jsonl(tmp_path_factory.mktemp("clm") / "pairs.jsonl", pairs(240))


@pytest.fixture(scope="module")
def cli_run(tiny_gpt2, pairs_jsonl, tmp_path_factory):
    root = tmp_path_factory.mktemp("clm-cli")
    path = root / "sft.yaml"
    path.write_text(yaml.safe_dump(clm_config(tiny_gpt2, pairs_jsonl, root / "runs")))
    code = main(["train", str(path), "--quiet"])
    return code, Run(next((root / "runs").iterdir()))


def test_loss_is_taken_on_the_response_only(tiny_gpt2, pairs_jsonl, tmp_path):
    cfg = resolve(inline=clm_config(tiny_gpt2, pairs_jsonl, tmp_path))
    task = get("causal-lm")(cfg)
    tok = load_tokenizer(cfg)
    splits = task.load_data()
    ds = task.tokenize(splits, tok)
    assert splits.report["format"] == "prompt-response" and task.packing is False
    row = splits.train.iloc[0]
    ids, labels = ds["train"]["input_ids"][0], ds["train"]["labels"][0]
    n_prompt = len(tok(row["prompt"])["input_ids"])
    assert labels[:n_prompt] == [-100] * n_prompt
    assert labels[n_prompt:] == ids[n_prompt:] and ids[-1] == tok.eos_token_id
    assert tok.decode(ids[n_prompt:], skip_special_tokens=True) == row["response"]


def test_cli_run_learns_the_responses(cli_run):
    code, run = cli_run
    assert code == 0 and run.status == "completed"
    ev = run.evaluation
    fin, base = ev["finetuned"], ev["baseline"]
    assert ev["main_metric"] == "perplexity" and ev["format"] == "prompt-response"
    assert fin["perplexity"] < base["perplexity"] / 5, (fin, base)
    assert fin["accuracy"] > 0.6 and ev["delta"]["nll"] == pytest.approx(fin["nll"] - base["nll"])
    assert ev["baseline_method"].startswith("the base model") and ev["scored_tokens"] > 0
    assert ev["examples"] and all(ex["finetuned"] != ex["baseline"] for ex in ev["examples"])
    assert ev["example_unit"] == "examples"  # pairs are scored one by one


def test_generate_and_predict(cli_run):
    run = cli_run[1]
    answers = [run.generate(f"the topic {t} 7 :", max_new_tokens=6) for t in TOPICS]
    assert sum(a == ANSWERS[t] for a, t in zip(answers, TOPICS)) >= 2, answers
    assert run.predict(["the topic sport 1 :"], max_new_tokens=2)[0].count(" ") <= 1
    assert isinstance(run.generate(["a", "the"], max_new_tokens=3), list)


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_plain_text_is_packed_and_perplexity_drops(arch, tmp_path):
    model = build_tiny_decoder(tmp_path / arch, arch)
    path = tmp_path / "domain.txt"
    path.write_text("\n".join(t for t, _ in make_texts(200, seed=5)) + "\n")
    run = finetune(clm_config(model, path, tmp_path / "runs", epochs=3, lr_scheduler="cosine",
                              gradient_accumulation_steps=2, weight_decay=0.1), progress=False)
    ev = run.evaluation
    lengths = run.info["data"]["lengths"]
    assert ev["format"] == "text" and ev["packing"] is True
    assert lengths["train"]["truncated"] == 0 and lengths["train"]["blocks"] < lengths["train"]["examples"]
    # the test split is scored in blocks, and says so (its data table counts texts)
    assert ev["num_examples"] == lengths["test"]["blocks"] < lengths["test"]["examples"]
    assert ev["example_unit"] == f"blocks of {lengths['test']['max_length']} tokens"
    # and so does the start of training, whose count is of blocks too
    started = next(r for r in run.history() if r.get("event") == "started")
    assert started["num_train"] == lengths["train"]["blocks"]
    assert started["train_unit"] == f"blocks of {lengths['train']['max_length']} tokens"
    assert ev["finetuned"]["perplexity"] < ev["baseline"]["perplexity"]
    assert (run.dir / "model" / "model.safetensors").exists()
    assert isinstance(run.generate("bank market", max_new_tokens=4), str)


def test_long_pairs_keep_their_response(tiny_gpt2, tmp_path):
    rows = [{"prompt": " ".join(["the"] * 80) + f" topic money {i} :", "response": ANSWERS["money"]}
            for i in range(30)]
    cfg = resolve(inline=clm_config(tiny_gpt2, write_jsonl(tmp_path / "long.jsonl", rows), tmp_path))
    task = get("causal-lm")(cfg)
    ds = task.tokenize(task.load_data(), load_tokenizer(cfg))
    assert task.length_report["train"]["truncated"] == len(ds["train"])
    for ids, labels in zip(ds["train"]["input_ids"], ds["train"]["labels"]):
        assert len(ids) == 64 and sum(x != -100 for x in labels) == 5  # 4 response words + EOS


def test_a_file_without_a_response_field_is_a_clear_error(tiny_gpt2, tmp_path):
    path = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": f"q {i}", "answer": "a"} for i in range(20)])
    with pytest.raises(DataError, match=r"prompts.jsonl: has a 'prompt' field but no 'response' field "
                                        r"\(data.response_column\).*Available fields: prompt, answer"):
        finetune(clm_config(tiny_gpt2, path, tmp_path / "runs"), progress=False)
    rows = pairs(20)
    rows[6]["response"] = ""
    path = write_jsonl(tmp_path / "gaps.jsonl", rows)
    with pytest.raises(DataError, match=r"gaps.jsonl, line 7: empty text in column 'response'"):
        finetune(clm_config(tiny_gpt2, path, tmp_path / "runs"), progress=False)


def test_freezing_everything_but_a_tied_head_is_refused(tiny_gpt2, pairs_jsonl, tmp_path):
    with pytest.raises(ConfigError, match="leaves no trainable parameters"):
        finetune(clm_config(tiny_gpt2, pairs_jsonl, tmp_path, freeze="all-but-head"), progress=False)
    run = finetune(clm_config(tiny_gpt2, pairs_jsonl, tmp_path, freeze="layers:1", epochs=1), progress=False)
    params = run.info["parameters"]
    assert run.status == "completed" and 0 < params["trainable"] < params["total"]


def test_freezing_a_decoders_embeddings_takes_the_position_table_too(tiny_gpt2):
    from transformers import AutoModelForCausalLM

    from workbench.models import apply_freeze

    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2)
    apply_freeze(model, "embeddings")
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen == {"transformer.wte.weight", "transformer.wpe.weight"}, frozen


def test_examples_say_what_a_model_generated_when_it_was_only_special_tokens(tiny_gpt2, monkeypatch):
    """An empty continuation in the report's examples looks like a rendering fault; a barely trained
    model that repeats <unk> or stops at once is shown as such. run.generate() keeps the plain text."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_gpt2)
    cls = get("causal-lm")
    word = tok("bank", add_special_tokens=False)["input_ids"]
    special = [i for i in (tok.unk_token_id, tok.eos_token_id) if i is not None]
    assert special, "the tiny tokenizer has neither <unk> nor an end token"
    unk = special[0]
    made = [[unk] * 24, [tok.eos_token_id if tok.eos_token_id is not None else unk], [], word]
    monkeypatch.setattr(cls, "_generated_ids", classmethod(lambda c, *a, **k: made))
    shown = cls._shown_continuations(None, tok, ["p"] * 4, 24)
    name = tok.convert_ids_to_tokens(unk)
    assert shown[0] == f"(only special tokens: {name} ×24)"
    assert shown[1].startswith("(only special tokens: ") and "×" not in shown[1]
    assert shown[2] == "(nothing generated)"
    assert shown[3] == tok.decode(word) and shown[3]
    assert cls.generate(None, tok, ["p"] * 4, {}) == ["", "", "", shown[3]]


def long_prompts(n, words=200):
    """Prompts of ``words`` filler words before the topic: far longer than the tiny models' 128 positions."""
    return [{"prompt": " ".join(["the"] * words) + f" topic money {i} :", "response": ANSWERS["money"]}
            for i in range(n)]


def test_a_test_prompt_longer_than_the_model_is_continued_from_its_end(tiny_gpt2, tmp_path):
    """Scoring cuts long pairs to train.max_length; the examples of eval.json and run.generate() gave
    the whole prompt to a model with 128 positions and died with an IndexError after training."""
    cfg = clm_config(tiny_gpt2, write_jsonl(tmp_path / "train.jsonl", pairs(64)), tmp_path / "runs", epochs=2)
    cfg["data"]["test"] = str(write_jsonl(tmp_path / "test.jsonl", long_prompts(4)))
    run = finetune(cfg, progress=False)
    ev = run.evaluation
    assert run.status == "completed" and "examples_error" not in ev
    assert ev["examples"], "the fine-tuned model answers like the base model"
    for ex in ev["examples"]:
        assert "its first 100 tokens were left out, the continuation follows the last 104" in ex["note"], ex
    with pytest.warns(UserWarning, match=r"the prompt has 300 tokens and the model takes 128 positions .*its "
                                         r"first 176 tokens were left out"):
        assert len(run.generate("the " * 300, max_new_tokens=4).split()) == 4
    with pytest.warns(UserWarning, match=r"126 new tokens instead of 500"):
        assert 0 < len(run.generate("the topic", max_new_tokens=500).split()) <= 126
    # of several prompts, the warning says which one was cut
    with pytest.warns(UserWarning, match=r"^generate: prompt 2 of 3 \('the the the .*…'\): the prompt has 300 "
                                         r"tokens") as caught:
        run.generate(["the topic", "the " * 300, "say"], max_new_tokens=4)
    assert len(caught) == 1
    with pytest.raises(DataError, match=r"generate: prompt 3 of 3 \(''\) is empty"):
        run.generate(["the topic", "say", ""], max_new_tokens=4)


def test_a_failure_to_generate_the_examples_does_not_lose_the_trained_model(tiny_gpt2, pairs_jsonl, tmp_path,
                                                                            monkeypatch):
    def fails(cls, *a, **k):
        raise RuntimeError("generate is broken for this model")

    monkeypatch.setattr(get("causal-lm"), "_generated_ids", classmethod(fails))
    run = finetune(clm_config(tiny_gpt2, pairs_jsonl, tmp_path / "runs", epochs=1), progress=False)
    ev = run.evaluation
    assert run.status == "completed" and (run.dir / "model" / "model.safetensors").exists()
    assert "examples" not in ev and "generate is broken for this model" in ev["examples_error"]


def byte_tokenizer_model(kind):
    """A tiny GPT-2 with a tokenizer that gives characters it has no token for in bytes: byte-level BPE
    (GPT-2, Llama 3, Qwen) or a sentencepiece-style vocabulary with byte fallback (Llama 2, Mistral)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    if kind == "byte-level":
        backend = Tokenizer(models.BPE())
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        backend.train_from_iterator(["def f(a):\n    return a\n", "Answer: café 👍 ok"] * 4, trainers.BpeTrainer(
            vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
        tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="<|endoftext|>")
    else:
        vocab = {"<unk>": 0, "</s>": 1, **{f"<0x{b:02X}>": 2 + b for b in range(256)}}
        vocab.update({w: len(vocab) + i for i, w in enumerate(["▁", "▁def", "▁return", "▁a", "▁Answer:", "▁ok"])})
        backend = Tokenizer(models.BPE(vocab, [], unk_token="<unk>", byte_fallback=True))
        backend.pre_tokenizer = pre_tokenizers.Metaspace()
        backend.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
        tok = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=128,
                                       eos_token_id=tok.eos_token_id, bos_token_id=tok.eos_token_id))
    return model, tok


def generating(model, continuation):
    """Makes ``model.generate`` continue every prompt with the ids ``continuation`` (what a model trained
    on such text would)."""
    import torch

    def generate(input_ids, max_new_tokens, **kw):
        return torch.cat([input_ids, torch.tensor([continuation[:max_new_tokens]], dtype=input_ids.dtype)], 1)

    model.generate = generate
    return model


def test_generated_text_keeps_its_leading_whitespace():
    """Code keeps its indentation and newlines; a response generated with its leading space is shown
    with it, as its reference is."""
    cls = get("causal-lm")
    model, tok = byte_tokenizer_model("byte-level")
    for text in ["    return a\n", " café ok", "\n\n"]:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        generating(model, ids + [tok.eos_token_id])
        assert cls.generate(model, tok, ["def f(a):\n"], {}, max_new_tokens=len(ids) + 1) == [text]
        assert cls._shown_continuations(model, tok, ["Answer:"], len(ids) + 1) == [text]


@pytest.mark.parametrize("kind", ["byte-level", "byte-fallback"])
def test_a_character_cut_by_max_new_tokens_is_left_out(kind):
    """A multi-byte character whose last bytes fall past max_new_tokens was shown as a trailing U+FFFD;
    a U+FFFD that the model did generate in whole stays."""
    cls = get("causal-lm")
    model, tok = byte_tokenizer_model(kind)
    text = " 🇫🇷 ok \ufffd"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    assert sum(tok.decode(ids[:n]).endswith("\ufffd") for n in range(1, len(ids))) >= 3
    generating(model, ids)
    shown = [cls.generate(model, tok, ["Answer:"], {}, max_new_tokens=n)[0] for n in range(1, len(ids) + 1)]
    assert all(text.startswith(out) for out in shown), shown
    assert "\ufffd" not in "".join(shown[:-1]) and shown[-1] == text and " 🇫" in shown
    assert all("\ufffd" not in out for out in cls._shown_continuations(model, tok, ["Answer:"] * 2, 3))


def test_question_and_answer_fields_are_suggested_as_prompt_and_response(tiny_gpt2, tmp_path):
    rows = [{"question": r["prompt"], "answer": r["response"]} for r in pairs(20)]
    path = write_jsonl(tmp_path / "qa.jsonl", rows)
    with pytest.raises(DataError, match=r"qa.jsonl: no column 'text' \(data.text_column\) .*'question' and "
                                        r"'answer' look like a prompt and its response: set data.prompt_column: "
                                        r"question and data.response_column: answer \(on the command line: "
                                        r"data.prompt_column=question data.response_column=answer\)"):
        finetune(clm_config(tiny_gpt2, path, tmp_path / "runs"), progress=False)
    path = write_jsonl(tmp_path / "half.jsonl", [{"prompt": r["prompt"], "answer": r["response"]} for r in pairs(20)])
    with pytest.raises(DataError, match=r"Set data.response_column to the right field \(the 'answer' field\?\)"):
        finetune(clm_config(tiny_gpt2, path, tmp_path / "runs"), progress=False)


def test_a_long_reference_is_shown_as_far_as_the_continuations_go(tiny_gpt2):
    from transformers import AutoTokenizer

    from workbench.tasks.causal_lm import CausalLM

    tok = AutoTokenizer.from_pretrained(str(tiny_gpt2))
    long = " ".join(["market"] * 300)
    shown = CausalLM._shown_reference(tok, long, 8)
    assert shown.endswith(" …") and len(tok(shown[:-2], add_special_tokens=False)["input_ids"]) == 8
    assert CausalLM._shown_reference(tok, "bank rates rose", 8) == "bank rates rose"
