import json
import re

import pandas as pd
import pytest

from workbench.config import resolve
from workbench.data import load_frame
from workbench.errors import DataError
from workbench.tasks import get

from builders import make_texts


def load(train, **data):
    cfg = resolve(inline={"data": {"train": train, **data}})
    task = get("text-classification")(cfg)
    return task, task.load_data()


def frame(n=60, seed=0):
    return pd.DataFrame(make_texts(n, seed), columns=["text", "label"])


# ---- loaders --------------------------------------------------------------------------------------

def test_every_file_format_loads_the_same_rows(tmp_path):
    df = frame(30)
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_csv(tmp_path / "d.tsv", sep="\t", index=False)
    df.to_json(tmp_path / "d.jsonl", orient="records", lines=True)
    (tmp_path / "d.json").write_text(json.dumps(df.to_dict(orient="records")))
    df.to_parquet(tmp_path / "d.parquet")
    for name in ("d.csv", "d.tsv", "d.jsonl", "d.json", "d.parquet"):
        got = load_frame(str(tmp_path / name))
        assert got["text"].tolist() == df["text"].tolist(), name
        assert got["label"].tolist() == df["label"].tolist(), name


def test_folder_of_label_folders(tmp_path):
    for label in ("pos", "neg"):
        (tmp_path / label).mkdir()
        for i in range(3):
            (tmp_path / label / f"{i}.txt").write_text(f"{label} text number {i}\n")
    got = load_frame(str(tmp_path))
    assert sorted(got["label"].unique()) == ["neg", "pos"] and len(got) == 6


def test_dataframe_and_dataset_inputs():
    import datasets

    df = frame(30)
    assert load_frame(df)["text"].tolist() == df["text"].tolist()
    assert load_frame(datasets.Dataset.from_pandas(df))["label"].tolist() == df["label"].tolist()


def test_bbc_news_alias():
    bbc = load_frame("bbc-news")
    assert len(bbc) == 2225
    assert sorted(bbc["label"].unique()) == ["business", "entertainment", "politics", "sports", "tech"]
    assert bbc["text"].str.len().min() > 50


def test_hub_ids_fail_fast_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataError, match="Hub is off"):
        load_frame("imdb")


def test_missing_file_is_named(tmp_path):
    with pytest.raises(DataError, match="file not found: .*nope.csv"):
        load_frame(str(tmp_path / "nope.csv"))


def test_bad_jsonl_line_is_named(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"text": "a", "label": 1}\n{"text": "b", label: 2}\n')
    with pytest.raises(DataError, match=r"d.jsonl, line 2: not valid JSON"):
        load_frame(str(p))


# ---- splits ---------------------------------------------------------------------------------------

def test_automatic_splits_are_seeded_stratified_and_disjoint():
    _, s1 = load("bbc-news")
    _, s2 = load("bbc-news")
    assert s1.test["text"].tolist() == s2.test["text"].tolist()
    assert len(s1.train) + len(s1.validation) + len(s1.test) == 2225  # nothing lost
    train = set(s1.train["text"])
    assert not train & set(s1.test["text"]) and not train & set(s1.validation["text"])
    share = s1.test["label"].value_counts(normalize=True)
    overall = load_frame("bbc-news")["label"].value_counts(normalize=True)
    assert (share - overall).abs().max() < 0.03
    assert any("duplicate" in w for w in s1.report["warnings"])  # BBC has duplicate articles


# ---- validation errors ----------------------------------------------------------------------------

def test_missing_column_lists_available_and_nearest(tmp_path):
    df = frame().rename(columns={"label": "labels"})
    p = tmp_path / "d.csv"
    df.to_csv(p, index=False)
    with pytest.raises(DataError) as e:
        load(str(p))
    msg = str(e.value)
    assert "d.csv" in msg and "no column 'label'" in msg and "Available columns: text, labels" in msg
    assert "nearest is 'labels'" in msg
    assert e.value.problems[0]["kind"] == "missing_column"


def test_empty_texts_name_the_lines(tmp_path):
    df = frame()
    df.loc[[3, 10], "text"] = ["", "   "]
    p = tmp_path / "d.csv"
    df.to_csv(p, index=False)
    with pytest.raises(DataError, match=r"d.csv, lines 5, 12: empty text in column 'text'"):
        load(str(p))
    assert len(pd.read_csv(p)) == 60  # the user's file is untouched


def test_numbers_in_the_text_column_are_named_as_numbers_not_empty_text(tmp_path):
    p = tmp_path / "n.csv"
    pd.DataFrame({"id": range(30), "text": [i * 7 for i in range(30)], "label": ["a", "b"] * 15}).to_csv(p, index=False)
    with pytest.raises(DataError, match=r"n.csv, lines 2, 3, .*: column 'text' holds numbers, not text \(30 of 30 rows, "
                                        r"e.g. 0\) in data.train. Is it the right column\? The others: id, label."):
        load(str(p))
    j = tmp_path / "m.jsonl"
    j.write_text("".join(json.dumps({"text": i if i == 4 else f"words {i}", "label": "ab"[i % 2]}) + "\n"
                         for i in range(30)))
    with pytest.raises(DataError, match=r"m.jsonl, line 5: column 'text' holds numbers, not text \(1 of 30 rows"):
        load(str(j))


def test_messages_after_the_automatic_split_name_the_files_own_lines(tmp_path):
    rows = [(f"text about sport number {i} goal team", "ab"[i % 2]) for i in range(300)]
    p = tmp_path / "dup.csv"
    pd.DataFrame(rows + rows[:2], columns=["text", "label"]).to_csv(p, index=False)  # copies at lines 302, 303
    _, splits = load(str(p))
    (warning,) = [w for w in splits.report["warnings"] if "duplicate" in w]
    assert "dup.csv, lines 302, 303)" in warning  # duplicates stay together in train, whose rows were renumbered
    with pytest.raises(DataError, match=r"train split: 2 exact duplicate texts \(.*dup.csv, lines 302, 303\)"):
        load(str(p), duplicates="error")


def test_duplicate_counts_are_of_the_rows_the_run_uses(tmp_path):
    rows = [(f"text number {i} about sport goal", "ab"[i % 2]) for i in range(150)]
    p = tmp_path / "many.csv"
    pd.DataFrame(rows * 2, columns=["text", "label"]).to_csv(p, index=False)  # every text twice
    _, full = load(str(p))
    _, sample = load(str(p), max_train_samples=20)
    count = lambda splits: int(re.search(r"train split: (\d+) exact", " ".join(splits.report["warnings"])).group(1))
    assert len(full.train) > 200 and count(full) > 100
    assert len(sample.train) == 20 and count(sample) < 20


def test_labels_only_in_evaluation_splits(tmp_path):
    df = frame()
    test = df.iloc[:10].copy()
    test["text"] = test["text"] + " extra"
    test.loc[test.index[0], "label"] = "weather"
    with pytest.raises(DataError, match=r"test split: labels 'weather' never occur in train"):
        load(df, test=test)


def test_mixed_label_types():
    df = frame()
    df["label"] = df["label"].astype(object)
    df.loc[5, "label"] = 7
    with pytest.raises(DataError, match=r"mixes label types \(int, str\).*all text or all integers\)\.$"):
        load(df)
    numbers = frame()
    numbers["label"] = [1.0, 2.0, 3.5] * 20
    with pytest.raises(DataError, match=r"mixes label types \(float, int\).*set task_options.problem: regression"):
        load(numbers)


def test_single_class(tmp_path):
    df = frame()
    df["label"] = "sport"
    with pytest.raises(DataError, match="single class.*Check data.label_column"):
        load(df)
    for i, (text, _) in enumerate(make_texts(30)):
        (tmp_path / "sport").mkdir(exist_ok=True)
        (tmp_path / "sport" / f"{i}.txt").write_text(text)
    with pytest.raises(DataError, match="single class .*'sport'.*in a sub-folder named after the class"):
        load(str(tmp_path))


def test_duplicates_policy(tmp_path):
    df = pd.concat([frame(), frame().iloc[:4]], ignore_index=True)
    with pytest.raises(DataError, match="exact duplicate texts?") as e:
        load(df, duplicates="error", overlap="warn")
    assert e.value.problems[0]["kind"] == "duplicates"
    _, s = load(df, duplicates="drop")
    assert sum(s.report["dropped"].values()) == 4  # copies are kept together by the split, then dropped
    assert sum(len(f) for _, f in s.items()) == 60


def test_train_test_overlap_is_an_error_by_default():
    df = frame(60)
    test = df.iloc[:6].copy()
    val = frame(12, seed=7).assign(text=lambda d: d.text + " v")
    with pytest.raises(DataError, match=r"6 test texts also appear in train \(DataFrame given as data.test, "
                                        r"index 0, 1, 2") as e:
        load(df, test=test, validation=val)
    assert e.value.problems[0]["kind"] == "overlap"
    with pytest.raises(DataError, match=r"^1 test text also appears in train \(DataFrame given as data.test, index 0\)"):
        load(df, test=df.iloc[:1].copy(), validation=val)
    _, s = load(df, validation=val, overlap="drop",
                test=pd.concat([test, frame(9, seed=5).assign(text=lambda d: d.text + " z")]))
    assert len(s.test) == 9 and s.report["dropped"]["test_overlap"] == 6


def test_test_texts_also_in_validation_are_leakage_too():
    """Validation picks the best checkpoint, so test texts that are also validation texts are not
    unseen by the choice the test is meant to judge."""
    df = frame(60)
    val = frame(12, seed=7).assign(text=lambda d: d.text + " v")
    test = pd.concat([val.iloc[:3], frame(9, seed=5).assign(text=lambda d: d.text + " z")], ignore_index=True)
    with pytest.raises(DataError, match=r"3 test texts also appear in validation \(DataFrame given as data.test, "
                                        r"index 0, 1, 2\): they would help choose the checkpoint") as e:
        load(df, test=test, validation=val)
    assert e.value.problems[0]["with"] == "validation"
    _, s = load(df, validation=val, test=test, overlap="drop")
    assert len(s.test) == 9 and len(s.validation) == 12
    assert s.report["dropped"] == {"test_overlap_with_validation": 3}
    _, s = load(df, validation=val, test=test, overlap="warn")
    assert len(s.test) == 12 and any("3 test texts also appear in validation" in w for w in s.report["warnings"])


def test_missing_labels_are_named():
    df = frame()
    df.loc[7, "label"] = None
    with pytest.raises(DataError, match=r"index 7: no label"):
        load(df)


def test_a_file_that_is_not_utf8_names_its_line_and_the_fix(tmp_path):
    p = tmp_path / "latin1.csv"
    p.write_bytes("text,label\nfine,a\ncaf\u00e9 ok,b\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.csv, line 3 \(byte 0xe9\): not UTF-8 text. Save the file as UTF-8"):
        load_frame(str(p))


def test_text_files_are_read_by_their_byte_order_mark_and_utf16_without_one_is_refused(tmp_path):
    """Notepad's "Unicode" (UTF-16 with a mark) and UTF-8 with a mark read as their text; UTF-16
    without a mark would read as Latin-1 noise (a model trained on it sees unknown tokens only)."""
    from workbench.data.loaders import read_label_folders, read_text_file

    text = "Café prices rose.\nThe market fell.\n"
    for name, data in [("u16.txt", "\ufeff".encode("utf-16-le") + text.encode("utf-16-le")),
                       ("u16be.txt", text.encode("utf-16")), ("u8bom.txt", text.encode("utf-8-sig")),
                       ("u32.txt", text.encode("utf-32")), ("latin1.txt", text.encode("latin-1"))]:
        (tmp_path / name).write_bytes(data)
        assert read_text_file(tmp_path / name) == text, name
    (tmp_path / "bare16.txt").write_bytes(text.encode("utf-16-le"))
    with pytest.raises(DataError, match=r"bare16.txt: not UTF-8 text \(a NUL byte at byte 1, line 1\): it looks like "
                                        r"UTF-16 without a byte-order mark"):
        read_text_file(tmp_path / "bare16.txt")
    (tmp_path / "docs" / "sport").mkdir(parents=True)
    (tmp_path / "docs" / "sport" / "a.txt").write_bytes(b"ok\n")
    (tmp_path / "docs" / "sport" / "b.txt").write_bytes("goal\n".encode("utf-16-le"))
    with pytest.raises(DataError, match=r"sport/b.txt: not UTF-8 text"):
        read_label_folders(tmp_path / "docs")


def test_a_semicolon_separated_csv_from_excel_is_read_by_its_separator(tmp_path):
    p = tmp_path / "semi.csv"
    p.write_text("text;label\nShares fell, then rose;business\nA late goal;sport\n", encoding="utf-8")
    frame = load_frame(str(p))
    assert list(frame.columns) == ["text", "label"]
    assert frame["text"].tolist() == ["Shares fell, then rose", "A late goal"]
    decimal = tmp_path / "scores.csv"  # the numbers of such files have a decimal comma
    decimal.write_text("text;score\nShares fell, then rose;1,5\nA late goal;-2\n", encoding="utf-8")
    scores = load_frame(str(decimal))
    assert scores["score"].tolist() == [1.5, -2.0] and scores["text"].tolist()[0] == "Shares fell, then rose"
    plain = tmp_path / "one.csv"  # a one-column file stays one column
    plain.write_text("text\nhello there\n", encoding="utf-8")
    assert list(load_frame(str(plain)).columns) == ["text"]


def test_a_separator_ending_every_line_adds_no_column(tmp_path):
    p = tmp_path / "export.csv"
    p.write_text("text,label,\nShares fell,business,\nA late goal,sport,\n", encoding="utf-8")
    frame = load_frame(str(p))
    assert list(frame.columns) == ["text", "label"] and frame["label"].tolist() == ["business", "sport"]
    kept = tmp_path / "kept.csv"  # an unnamed column that holds values is data: kept
    kept.write_text("text,label,\nShares fell,business,1\nA late goal,sport,\n", encoding="utf-8")
    assert list(load_frame(str(kept)).columns) == ["text", "label", "Unnamed: 2"]


@pytest.mark.parametrize("columns,missing,suggested", [
    (["review", "sentiment"], "text", "review"), (["review", "sentiment"], "label", "sentiment"),
    (["sentence", "labels"], "label", "labels"), (["prompt", "response"], "tokens", None),
])
def test_a_missing_column_suggests_what_such_a_column_is_often_called(columns, missing, suggested):
    from workbench.data import require_columns

    frame = pd.DataFrame({c: ["x"] for c in columns})
    with pytest.raises(DataError) as e:
        require_columns(frame, {f"data.{missing}_column": missing})
    assert e.value.problems[0]["suggestion"] == suggested
    assert (f"The nearest is '{suggested}': set data.{missing}_column: {suggested}." in str(e.value)) == bool(suggested)


def test_an_empty_file_says_it_is_empty(tmp_path):
    p = tmp_path / "empty.csv"
    p.write_text("")
    with pytest.raises(DataError, match=r"empty.csv: the file is empty. Give it a header line"):
        load_frame(str(p))


def test_split_descriptions_say_stratified_only_when_they_are():
    _, splits = load(frame())
    assert splits.report["validation_from"] == "10% of the data (seeded, stratified)"
    numbers = frame()
    numbers["label"] = [float(i) / 7 for i in range(len(numbers))]
    cfg = resolve(inline={"data": {"train": numbers}, "task_options": {"problem": "regression"}})
    report = get("text-classification")(cfg).load_data().report
    assert report["validation_from"] == "10% of the data (seeded)"
    assert report["test_from"] == "10% of train (seeded, duplicates kept together)"


def test_multi_label_rows_are_stratified_by_label_set_whether_lists_or_text():
    texts = [f"text number {i} about things" for i in range(60)]
    sets = [["sport"], ["tech"], ["sport", "tech"]] * 20
    as_lists = pd.DataFrame({"text": texts, "label": sets})
    # the same label sets written as text, in either order
    as_text = pd.DataFrame({"text": texts, "label": [",".join(s if i % 2 else s[::-1]) for i, s in enumerate(sets)]})
    held = {}
    for name, df in (("lists", as_lists), ("text", as_text)):
        cfg = resolve(inline={"data": {"train": df}, "task_options": {"problem": "multi-label"}})
        splits = get("text-classification")(cfg).load_data()
        assert splits.report["validation_from"] == "10% of the data (seeded, stratified)", name
        assert "stratified" in splits.report["test_from"], name
        held[name] = (sorted(splits.test["text"]), sorted(splits.validation["text"]))
        # each label set keeps its share in the held-out parts (6 test rows: 2 of each)
        assert sorted(map(tuple, splits.test["label"])) == [("sport",)] * 2 + [("sport", "tech")] * 2 + [("tech",)] * 2
    assert held["lists"] == held["text"]


def test_a_jsonl_line_that_is_not_an_object_is_named_as_json_names_it(tmp_path):
    p = tmp_path / "rows.jsonl"
    p.write_text('{"text": "a", "label": "x"}\nnull\n[1, 2]\n')
    with pytest.raises(DataError, match=r"rows.jsonl, line 2: expected a JSON object \(\{\"text\": \.\.\.\}\), got "
                                        r"null\. Each line must be one JSON object"):
        load_frame(str(p))


def test_too_few_texts_for_both_splits_counts_all_of_them_and_names_both_settings(tmp_path):
    small = tmp_path / "small.csv"
    small.write_text("text,label\nfirst text,a\nsecond text,b\nthird text,a\n")
    with pytest.raises(DataError, match=r"small.csv: only 3 distinct texts; after 1 went to the test split, the 2 "
                                        r"left are too few to split off a validation set as well. Give more data, "
                                        r"or separate data.validation and data.test files."):
        load(str(small))
    small.write_text("text,label\nfirst text,a\nsecond text,b\n")
    with pytest.raises(DataError, match=r"small.csv: only 2 distinct texts; too few to split off a test set"):
        load(str(small))


def test_unquoted_separators_in_texts_are_refused_with_their_lines(tmp_path):
    rows = ["text,label"] + [f"text number {i} about goals,sport" for i in range(30)]
    rows[3] = "shares fell, then rose,business"  # line 4
    rows[12] = "a late goal, a win, a cup,sport"  # line 13
    p = tmp_path / "commas.csv"
    p.write_text("\n".join(rows) + "\n")
    with pytest.raises(DataError, match=r"commas.csv, lines 4, 13: more fields than the header's 2 \(text, label\), "
                                        r"so a comma inside a text splits it. Put quotes around such texts"):
        load_frame(str(p))
    every = tmp_path / "every.csv"
    every.write_text("text,label\n" + "".join(f"goal {i}, then another,sport\n" for i in range(20)))
    with pytest.raises(DataError, match=r"every.csv, lines 2, 3, 4, 5, 6, 7, 8, 9 and 12 more: more fields"):
        load_frame(str(every))  # each text would have lost its start to a pandas index
    rows[3], rows[12] = '"shares fell, then rose",business', '"a late goal,\na win",sport'  # quoted: fine
    p.write_text("\n".join(rows) + "\n")
    got = load_frame(str(p))
    assert got["text"].iloc[2] == "shares fell, then rose" and got["text"].iloc[11] == "a late goal,\na win"
    tsv = tmp_path / "tabs.tsv"
    tsv.write_text("text\tlabel\nfine\tsport\nnot\tfine\tsport\n")
    with pytest.raises(DataError, match=r"tabs.tsv, line 3: more fields than the header's 2 \(text, label\), so a "
                                        r"tab inside a text splits it"):
        load_frame(str(tsv))


# ---- where rows came from, and files that are not read --------------------------------------------

def test_label_folders_read_documents_without_a_suffix_and_refuse_other_files(tmp_path):
    """20 Newsgroups names its documents by number; a CSV or PDF among them is refused, not skipped."""
    for label in ("sport", "money"):
        (tmp_path / label).mkdir()
        for i in range(3):
            (tmp_path / label / f"{49960 + i}").write_text(f"{label} document {i}\n")
        (tmp_path / label / "extra.txt").write_text(f"{label} extra\n")
        (tmp_path / label / ".DS_Store").write_bytes(b"\x00\x01")
    got = load_frame(str(tmp_path))
    assert len(got) == 8 and sorted(got["label"].unique()) == ["money", "sport"]
    (tmp_path / "sport" / "notes.csv").write_text("a,b\n")
    with pytest.raises(DataError, match=r"besides 8 text files the label folders hold 1 other file "
                                        r"\(sport/notes.csv\).*Move them out") as e:
        load_frame(str(tmp_path))
    assert e.value.problems[0]["files"] == ["sport/notes.csv"]


@pytest.mark.parametrize("name", ["d.jsonl", "d.json"])
def test_json_files_with_a_byte_order_mark_load(tmp_path, name):
    df = frame(30)
    text = df.to_json(orient="records", lines=name.endswith("l"))
    (tmp_path / name).write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert load_frame(str(tmp_path / name))["text"].tolist() == df["text"].tolist()


def test_a_broken_json_line_names_the_column(tmp_path):
    (tmp_path / "d.jsonl").write_text('{"text": "a", "label": "x"}\n{"text": "b, "label": "y"}\n')
    with pytest.raises(DataError, match=r"d.jsonl, line 2: not valid JSON \(Expecting ',' delimiter, column 15\)"):
        load_frame(str(tmp_path / "d.jsonl"))


def test_a_utf16_csv_is_told_to_convert_from_utf16(tmp_path):
    p = tmp_path / "u.csv"
    p.write_bytes("text,label\nfine,a\n".encode("utf-16"))
    with pytest.raises(DataError, match=r"It is UTF-16 text \(Excel's 'Unicode Text'\).*iconv -f utf-16") as e:
        load_frame(str(p))
    assert "latin" not in str(e.value).lower()


def test_rows_of_a_filtered_dataframe_are_named_by_its_own_index():
    df = frame(120)
    df.loc[99, "text"] = ""
    sub = df[df.index % 3 != 1]  # an ordinary filter: the index has gaps
    assert sub.index.get_loc(99) != 99
    with pytest.raises(DataError, match=r"DataFrame given as data.train: index 99: empty text"):
        load(sub)
    with pytest.raises(DataError, match=r"data.train: index 'r7': no label"):
        named = frame(60).set_axis([f"r{i}" for i in range(60)])
        named.loc["r7", "label"] = None
        load(named)


def test_rows_of_a_glob_or_folder_of_files_are_named_by_file_and_line(tmp_path):
    df = frame(60)
    (tmp_path / "parts").mkdir()
    df.iloc[:30].to_csv(tmp_path / "parts" / "part1.csv", index=False)
    second = df.iloc[30:].copy()
    second.iloc[4, 0] = ""
    second.to_csv(tmp_path / "parts" / "part2.csv", index=False)
    for ref in (str(tmp_path / "parts" / "*.csv"), str(tmp_path / "parts")):
        with pytest.raises(DataError, match=r"part2.csv line 6: empty text in column 'text'"):
            load(ref)
    with pytest.raises(DataError) as e:
        load(str(tmp_path / "parts"), label_column="lable")
    assert "Available columns: text, label." in str(e.value)


def test_dropping_every_overlapping_evaluation_text_is_an_error_not_an_empty_split():
    df = frame(60)
    val = frame(12, seed=7).assign(text=lambda d: d.text + " v")
    with pytest.raises(DataError, match=r"^10 test texts also appear in train \(.*\): dropping them "
                                        r"\(data.overlap: drop\) leaves no test split. Give a data.test file") as e:
        load(df, validation=val, test=df.iloc[:10].copy(), overlap="drop")
    assert e.value.problems[0]["emptied"]
    # dropped in two steps: those in train, then the rest, which are in validation
    test = pd.concat([df.iloc[:4], val.iloc[:2]], ignore_index=True)
    with pytest.raises(DataError, match=r"^2 test texts also appear in validation \(.*\): dropping them \(data.overlap: "
                                        r"drop\) leaves no test split \(its other 4 were dropped as they also appear "
                                        r"in train\)"):
        load(df, validation=val, test=test, overlap="drop")


def test_validation_and_test_sizes_are_split_as_asked():
    df = frame(200)
    _, s = load(df, validation_size=0.45, test_size=0.45)
    assert abs(len(s.validation) - 90) <= 2 and abs(len(s.test) - 90) <= 2
    from workbench.errors import ConfigError

    # the config refuses it; the split itself refuses it too, for a config that skipped the check
    with pytest.raises(ConfigError, match=r"data.validation_size 0.6 and data.test_size 0.4 add up to 1"):
        load(df, validation_size=0.6, test_size=0.4)
    from workbench.data import load_splits

    cfg = resolve(inline={"data": {"train": df}})
    cfg.data.validation_size, cfg.data.test_size = 0.6, 0.4
    with pytest.raises(DataError, match=r"data.validation_size \(0.6\) and data.test_size \(0.4\) add up"):
        load_splits(cfg, key_column="text", label_column="label")


def test_a_relative_path_that_is_not_there_says_where_it_was_looked_for(tmp_path, monkeypatch):
    from workbench.errors import ModelError
    from workbench.models import resolve_model

    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataError, match=rf"data.train: file not found: data/nope.csv \(read from the current "
                                        rf"folder, {re.escape(str(tmp_path))}\)"):
        load_frame("data/nope.csv")
    with pytest.raises(ModelError, match=rf"model: folder ../bert does not exist \(read from the current folder"):
        resolve_model("../bert")
    with pytest.raises(DataError, match=r"file not found: /no/such.csv\.$"):
        load_frame("/no/such.csv")
