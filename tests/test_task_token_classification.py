"""Token classification (NER) on a tiny BERT: CoNLL/JSONL/DataFrame input, alignment, seqeval scores, spans."""

import json

import pandas as pd
import pytest
import yaml

from workbench import finetune
from workbench.cli import main
from workbench.config import resolve
from workbench.data.loaders import load_frame
from workbench.errors import DataError
from workbench.models import load_tokenizer
from workbench.tasks import get

from builders import build_tiny_bert, make_ner_sentences, ner_vocab, write_conll


@pytest.fixture(scope="module")
def ner_bert(tmp_path_factory):
    return build_tiny_bert(tmp_path_factory.mktemp("ner-bert"), ner_vocab())


@pytest.fixture(scope="module")
def conll(tmp_path_factory):
    return write_conll(tmp_path_factory.mktemp("ner") / "train.conll", make_ner_sentences(300))


def ner_config(model, source, runs, **extra):
    cfg = {"task": "token-classification", "model": str(model), "runs_dir": str(runs), "data": {"train": source},
           "train": {"epochs": 4, "learning_rate": 3e-3, "batch_size": 16, "max_length": 64, "warmup_ratio": 0.0,
                     "logging_steps": 5}}
    for key, value in extra.items():
        if isinstance(value, dict):
            cfg.setdefault(key, {}).update(value)
        else:
            cfg[key] = value
    return cfg


def task_for(cfg):
    c = resolve(inline=cfg)
    return get(c.task)(c), c


@pytest.fixture(scope="module")
def cli_run(ner_bert, conll, tmp_path_factory):
    """`workbench train ner.yaml` on a CoNLL file, as a user would run it."""
    root = tmp_path_factory.mktemp("ner-cli")
    path = root / "ner.yaml"
    path.write_text(yaml.safe_dump(ner_config(ner_bert, str(conll), root / "runs")))
    code = main(["train", str(path), "--quiet"])
    run_dir = next((root / "runs").iterdir())
    return code, run_dir


def test_conll_reader_skips_docstart_and_extra_columns(tmp_path):
    p = tmp_path / "eng.conll"
    p.write_text("-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n\n"
                 "Peter NNP B-NP B-PER\nBlackburn NNP I-NP I-PER\n")
    frame = load_frame(str(p))
    assert frame["tokens"].tolist() == [["EU", "rejects", "German"], ["Peter", "Blackburn"]]
    assert frame["tags"].tolist() == [["B-ORG", "O", "B-MISC"], ["B-PER", "I-PER"]]
    assert frame["location"].tolist() == ["line 3", "line 7"]


def test_conll_reader_names_a_line_without_a_tag(tmp_path):
    p = tmp_path / "bad.conll"
    p.write_text("EU B-ORG\nrejects\n")
    with pytest.raises(DataError, match=r"bad.conll, line 2: expected a word and its tag"):
        load_frame(str(p))


def test_cli_run_reports_entity_scores_against_the_probe(cli_run):
    code, run_dir = cli_run
    assert code == 0
    ev = json.loads((run_dir / "eval.json").read_text())
    assert ev["main_metric"] == "f1" and ev["scheme"] == "IOB2"
    fin, base = ev["finetuned"], ev["baseline"]
    assert fin["f1"] > 0.8, fin
    assert 0 <= base["f1"] <= 1 and "linear token head" in ev["baseline_method"]
    assert ev["delta"]["f1"] == pytest.approx(fin["f1"] - base["f1"])
    for side in ("finetuned", "baseline"):
        assert set(ev["per_class"][side]) == {"PER", "LOC", "ORG"}
        assert all({"precision", "recall", "f1", "number"} <= set(v) for v in ev["per_class"][side].values())
    for ex in ev["examples"]:
        assert ex["finetuned"] != ex["baseline"] and {"text", "label"} <= set(ex)
    info = json.loads((run_dir / "model" / "workbench.json").read_text())
    assert info["tags"][0] == "O" and "B-ORG" in info["tags"]


def test_predict_returns_entity_spans_with_offsets(cli_run):
    from workbench.api import Run

    run = Run(cli_run[1])
    text = "alice works at acme corp in paris ."
    spans = run.predict(text)
    assert [(s["entity"], s["text"]) for s in spans] == [("PER", "alice"), ("ORG", "acme corp"), ("LOC", "paris")]
    for s in spans:
        assert text[s["start"]:s["end"]] == s["text"] and 0 < s["score"] <= 1
    assert run.predict(["", "paris ."])[0] == []
    # a text far longer than max_length goes through in pieces: entities near its end are found too
    long = " ".join([text] * 12)
    found = run.predict(long, max_length=16)
    assert [(s["entity"], s["start"]) for s in found if s["text"] == "alice"] == [("PER", i * 36) for i in range(12)]
    assert all(long[s["start"]:s["end"]] == s["text"] for s in found)


def test_subword_alignment_first_or_all(ner_bert, tmp_path):
    rows = [(["bob", "visited", "berlin", "."], ["B-PER", "O", "B-LOC", "O"])] * 1 + make_ner_sentences(30)
    frame = pd.DataFrame({"tokens": [r[0] for r in rows], "tags": [r[1] for r in rows]})
    labels = {}
    for mode in ("first", "all"):
        task, cfg = task_for(ner_config(ner_bert, "x", tmp_path, task_options={"label_subtokens": mode}))
        cfg.data.train, cfg.data.validation, cfg.data.test = frame, frame.iloc[:5], frame.iloc[5:10]
        cfg.data.overlap = "warn"
        tok = load_tokenizer(cfg)
        ds = task.tokenize(task.load_data(), tok)
        ids = ds["train"]["input_ids"]
        row = next(i for i, x in enumerate(ids) if tok.convert_tokens_to_ids("##lin") in x)
        assert tok.convert_ids_to_tokens(ids[row])[1:6] == ["bob", "visited", "ber", "##lin", "."]
        labels[mode] = [task.tags[x] if x >= 0 else None for x in ds["train"]["labels"][row][1:6]]
        # evaluation splits are always scored on the first sub-token of each word
        val = [task.tags[x] if x >= 0 else None for x in ds["validation"]["labels"][0][1:6]]
        assert val == ["B-PER", "O", "B-LOC", None, "O"]
    assert labels["first"] == ["B-PER", "O", "B-LOC", None, "O"]
    assert labels["all"] == ["B-PER", "O", "B-LOC", "I-LOC", "O"]


def test_jsonl_bioes_run_and_truncation_counts_cut_words(ner_bert, tmp_path):
    rows = make_ner_sentences(150, seed=1, scheme="BIOES")
    path = tmp_path / "ner.jsonl"
    path.write_text("".join(json.dumps({"words": w, "labels": t}) + "\n" for w, t in rows))
    run = finetune(ner_config(ner_bert, str(path), tmp_path / "runs", train={"epochs": 2, "max_length": 8},
                              data={"tokens_column": "words", "tags_column": "labels"}), progress=False)
    ev = run.evaluation
    assert run.status == "completed" and ev["scheme"] == "BIOES"
    assert ev["truncated_words"] > 0  # words past max_length count as predicted "O"
    assert run.info["data"]["lengths"]["train"]["truncated"] > 0


def _write_jsonl(path, rows):
    path.write_text("".join(json.dumps({"tokens": w, "tags": t}) + "\n" for w, t in rows))
    return str(path)


@pytest.mark.parametrize("rows, message", [
    ([(["bob", "ran"], ["PERSON", "O"])], r"line 1: unknown tags 'PERSON' in column 'tags'.*B-PER"),
    ([(["bob", "ran"], ["B-PER"])], r"line 1: 2 words but 1 tags"),
    ([([], [])], r"line 1: empty sentence"),
])
def test_bad_rows_are_named(ner_bert, tmp_path, rows, message):
    good = make_ner_sentences(20)
    path = _write_jsonl(tmp_path / "bad.jsonl", rows + good)
    with pytest.raises(DataError, match=message):
        finetune(ner_config(ner_bert, path, tmp_path / "runs"), progress=False)


def test_tags_outside_the_declared_set_and_unseen_in_train(ner_bert, tmp_path):
    good = make_ner_sentences(40)
    train = _write_jsonl(tmp_path / "train.jsonl", good)
    task, _ = task_for(ner_config(ner_bert, train, tmp_path, task_options={"tags": ["O", "B-PER", "I-PER"]}))
    with pytest.raises(DataError, match=r"unknown tags 'B-LOC'.*task_options.tags allows only"):
        task.load_data()
    plain = _write_jsonl(tmp_path / "plain.jsonl", [(w, ["O"] * len(w)) for w, _ in good])
    with pytest.raises(DataError, match=r"plain.jsonl: the training sentences hold no entity"):
        task_for(ner_config(ner_bert, plain, tmp_path))[0].load_data()
    test = _write_jsonl(tmp_path / "test.jsonl", [(["bob", "in", "rome"], ["B-PER", "O", "B-GPE"])])
    task, _ = task_for(ner_config(ner_bert, train, tmp_path, data={"test": test}))
    with pytest.raises(DataError, match=r"test split: tags 'B-GPE' never occur in train \(.*test.jsonl, line 1\)"):
        task.load_data()


def test_invalid_tag_sequences_are_reported(ner_bert, tmp_path):
    rows = make_ner_sentences(40) + [(["bob", "smith", "ran"], ["O", "I-PER", "O"])]
    path = _write_jsonl(tmp_path / "iob.jsonl", rows)
    task, _ = task_for(ner_config(ner_bert, path, tmp_path))
    splits = task.load_data()
    warning = " ".join(splits.report["warnings"])
    assert "invalid in IOB2" in warning and "'O I-PER'" in warning
    assert sum(v["sentences"] for v in splits.report["invalid_tag_sequences"].values()) == 1
    task, _ = task_for(ner_config(ner_bert, path, tmp_path, task_options={"invalid_sequences": "error"}))
    with pytest.raises(DataError, match="invalid in IOB2"):
        task.load_data()


def conll_text(sentences, sep=" "):
    """CoNLL text of (words, tags) sentences: a word and its tag per line, a blank line between."""
    return "\n\n".join("\n".join(f"{w}{sep}{t}" for w, t in zip(words, tags)) for words, tags in sentences) + "\n"


def test_conll_unknown_tags_name_their_own_lines(ner_bert, tmp_path):
    good = make_ner_sentences(20)
    text = "bob B-PER\nran O\n\nalice B-PER\nin O\nparis LOCATION\n\n" + conll_text(good)
    path = tmp_path / "bad.conll"
    path.write_text(text)
    with pytest.raises(DataError, match=r"bad.conll, line 6: unknown tags 'LOCATION'; .*the last column of each line"):
        finetune(ner_config(ner_bert, str(path), tmp_path / "runs"), progress=False)


def test_predict_splits_text_into_whitespace_words_and_takes_split_words(cli_run):
    from workbench.api import Run

    run = Run(cli_run[1])
    # punctuation inside a word stays in it, as in CoNLL words ("AT&T", "U.S."): the word is one entity
    text = "alice works at acme&globex in paris ."
    spans = run.predict(text)
    assert [(s["entity"], s["text"]) for s in spans] == [("PER", "alice"), ("ORG", "acme&globex"), ("LOC", "paris")]
    assert all(text[s["start"]:s["end"]] == s["text"] for s in spans)
    # a comma glued to a word, and the text's final period, are split off
    text = "bob visited paris, with alice."
    spans = run.predict(text)
    assert [(s["entity"], s["text"]) for s in spans] == [("PER", "bob"), ("LOC", "paris"), ("PER", "alice")]
    assert all(text[s["start"]:s["end"]] == s["text"] for s in spans)
    # words already split: one prediction per given word, none split again; texts may come alongside
    words = ["alice", "works", "at", "acme", "corp", "in", "paris", "."]
    out = run.predict([words, [], "paris ."])
    assert [p["word"] for p in out[0]] == words
    assert [p["tag"] for p in out[0]] == ["B-PER", "O", "O", "B-ORG", "I-ORG", "O", "B-LOC", "O"]
    assert all(0 < p["score"] <= 1 for p in out[0])
    assert out[1] == [] and out[2][0]["text"] == "paris"
    assert [p["word"] for p in run.predict([["new york", "u.s."]])[0]] == ["new york", "u.s."]
    with pytest.raises(TypeError, match="expected a text or a list of words"):
        run.predict([[1, 2]])


@pytest.mark.parametrize("text, words", [
    ("Alice joined AT&T in U.S. .", ["Alice", "joined", "AT&T", "in", "U.S.", "."]),
    ("Jean-Luc left Washington,D.C. for J.P.Morgan .",
     ["Jean-Luc", "left", "Washington,D.C.", "for", "J.P.Morgan", "."]),
    ("Mr. Smith of Yahoo! lives in Berlin, Germany.",
     ["Mr.", "Smith", "of", "Yahoo!", "lives", "in", "Berlin", ",", "Germany", "."]),
    ('He said "Paris" (France) ... and left the U.S.',
     ["He", "said", '"', "Paris", '"', "(", "France", ")", "...", "and", "left", "the", "U.S."]),
    ("Is it Berlin?!", ["Is", "it", "Berlin", "?", "!"]),
    # sentences inside a text end with their own . ! ?; initials and abbreviations keep theirs
    ("Alice joined Acme. Bob met J. Smith and Mr. Jones in Paris! He left Acme Corp. 2 days later.",
     ["Alice", "joined", "Acme", ".", "Bob", "met", "J.", "Smith", "and", "Mr.", "Jones", "in", "Paris", "!", "He",
      "left", "Acme", "Corp.", "2", "days", "later", "."]),
    ("See the U.S. Then Canada. (Ottawa) is next.", ["See", "the", "U.S.", "Then", "Canada", ".", "(", "Ottawa", ")",
                                                     "is", "next", "."]),
    ("  ", []),
])
def test_text_is_split_like_conll_words(text, words):
    from workbench.tasks.token_classification import split_words

    assert [text[s:e] for s, e in split_words(text)] == words


def test_tab_separated_conll_keeps_words_with_spaces(ner_bert, tmp_path):
    good = make_ner_sentences(40)
    # a POS column between word and tag, as in CoNLL-2003, on some lines
    text = "-DOCSTART-\tO\n\nbob\tNNP\tB-PER\nvisited\tO\nnew york\tNNP\tB-LOC\n.\tO\n\n" + conll_text(good, "\t")
    path = tmp_path / "tabs.conll"
    path.write_text(text)
    task, cfg = task_for(ner_config(ner_bert, str(path), tmp_path, data={"validation": str(path), "test": str(path)},
                                    task_options={"invalid_sequences": "warn"}))
    cfg.data.overlap = "warn"
    frame = task.load_data().test
    sentences = [(w, t) for w, t in zip(frame["tokens"], frame["tags"]) if w[0] == "bob" and "." in w[:5]]
    assert sentences == [(["bob", "visited", "new york", "."], ["B-PER", "O", "B-LOC", "O"])]
    assert len(frame) == 41  # the DOCSTART line is no sentence


def test_scheme_hint_names_the_scheme_the_data_fits(ner_bert, tmp_path):
    path = _write_jsonl(tmp_path / "iob2.jsonl", make_ner_sentences(40))
    task, _ = task_for(ner_config(ner_bert, path, tmp_path, task_options={"scheme": "BIOES"}))
    warning = " ".join(task.load_data().report["warnings"])
    assert "invalid in BIOES" in warning
    assert "task_options.scheme: IOB2 (or auto)" in warning and "IOB1" not in warning
    # I- after O fits neither IOB2 nor BIOES: IOB1 data reads that way
    rows = make_ner_sentences(40) + [(["bob", "smith", "ran"], ["O", "I-PER", "O"])]
    task, _ = task_for(ner_config(ner_bert, _write_jsonl(tmp_path / "iob1.jsonl", rows), tmp_path))
    assert "task_options.scheme: IOB1 if the data is IOB1" in " ".join(task.load_data().report["warnings"])


HF_TAGS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]


def test_integer_tag_ids_are_named_by_task_options_tags(ner_bert, tmp_path):
    rows = make_ner_sentences(40)
    path = tmp_path / "ids.jsonl"
    path.write_text("".join(json.dumps({"tokens": w, "ner_tags": [HF_TAGS.index(t) for t in tags]}) + "\n"
                            for w, tags in rows))
    cfg = ner_config(ner_bert, str(path), tmp_path / "runs", data={"tags_column": "ner_tags"})
    with pytest.raises(DataError, match=r"integer tag ids .*Set task_options.tags to the tag names in id order"):
        finetune(cfg, progress=False)
    task, c = task_for({**cfg, "task_options": {"tags": HF_TAGS}})
    splits = task.load_data()
    frame = pd.concat([splits.train, splits.validation, splits.test])
    assert sorted(map(tuple, frame["ner_tags"])) == sorted(tuple(t) for _, t in rows)
    assert task.tokenize(splits, load_tokenizer(c))["train"].num_rows == len(splits.train)
    # make_ner_sentences gives one-word places only: B-LOC (id 5) is the one id past five names
    with pytest.raises(DataError, match=r"ids.jsonl, lines 3, .*: tag ids without a name in column 'ner_tags': 5; "
                                        r"task_options.tags names 5 tags"):
        task_for({**cfg, "task_options": {"tags": HF_TAGS[:5]}})[0].load_data()


def test_a_task_option_is_a_search_key(ner_bert, conll, tmp_path, capsys):
    from workbench.cli import main

    code = main(["search", "task=token-classification", f"model={ner_bert}", f"data.train={conll}",
                 f"runs_dir={tmp_path}", "train.max_steps=4", "train.eval_strategy=steps", "train.eval_steps=2",
                 "train.learning_rate=3e-3", "--space", "task_options.label_subtokens=first,all", "--trials", "2",
                 "--quiet"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "task_options.label_subtokens" in out and "Best: trial " in out
    recorded = {json.loads((d / "run.json").read_text())["search"]["params"]["task_options.label_subtokens"]
                for d in tmp_path.iterdir()}
    assert recorded <= {"first", "all"} and recorded
