"""Training-text augmentation (EDA swaps and deletions): only the training split grows, reproducibly."""

import random
from collections import Counter

import pandas as pd
import pytest

from workbench import finetune
from workbench.config import resolve
from workbench.data.augment import augment_frame, eda_copy
from workbench.errors import ConfigError
from workbench.tasks import get

from builders import make_texts, tiny_config


def test_an_eda_copy_reorders_and_drops_words_it_never_invents():
    text = "the central bank held rates steady as markets rallied on tuesday afternoon"
    copies = [eda_copy(text, 0.2, random.Random(s)) for s in range(20)]
    for c in copies:
        assert c and not Counter(c.split()) - Counter(text.split())  # a sub-multiset of the words
    assert sum(c != text for c in copies) >= 18
    assert eda_copy(text, 0.2, random.Random(7)) == eda_copy(text, 0.2, random.Random(7))
    assert eda_copy("one", 0.4, random.Random(0)) == "one"


def test_augment_frame_keeps_labels_and_other_columns():
    frame = pd.DataFrame({"text": ["alpha beta gamma delta epsilon zeta", "one two three four five six"],
                          "label": ["a", "b"], "id": [1, 2]})
    frame.attrs["source"] = "x.csv"
    out, added = augment_frame(frame, "text", copies=3, rate=0.2, seed=1)
    assert added == len(out) - 2 and 2 <= added <= 6
    assert out.iloc[:2].equals(frame) and out.attrs["source"] == "x.csv"
    for _, row in out.iloc[2:].iterrows():
        source = frame[frame["id"] == row["id"]].iloc[0]
        assert row["label"] == source["label"] and set(row["text"].split()) <= set(source["text"].split())
    again, _ = augment_frame(frame, "text", copies=3, rate=0.2, seed=1)
    assert again.equals(out)


def test_only_the_training_split_grows(tmp_path):
    df = pd.DataFrame(make_texts(120), columns=["text", "label"])
    plain = get("text-classification")(resolve(inline={"data": {"train": df}})).load_data()
    cfg = resolve(inline={"data": {"train": df, "augment": "eda", "augment_copies": 2}})
    grown = get("text-classification")(cfg).load_data()
    assert grown.validation.equals(plain.validation) and grown.test.equals(plain.test)
    report = grown.report["augmented"]
    assert report["original"] == len(plain.train) and len(grown.train) == len(plain.train) + report["added"]
    assert report["added"] > len(plain.train)  # most texts get two distinct copies


def test_augment_is_refused_where_it_would_break_the_data():
    with pytest.raises(ConfigError, match="data.augment: eda applies to text-classification"):
        resolve(inline={"task": "token-classification", "data": {"augment": "eda"}})
    with pytest.raises(ConfigError, match="data.augment_rate: 0.7 is out of range"):
        resolve(inline={"data": {"augment": "eda", "augment_rate": 0.7}})
    with pytest.raises(ConfigError, match="not one of none, eda"):
        resolve(inline={"data": {"augment": "backtranslate"}})


def test_a_run_with_augmentation_says_how_many_texts_it_added(tiny_bert, clf_csv, tmp_path):
    cfg = tiny_config(tiny_bert, clf_csv, tmp_path / "runs", max_steps=4, save_checkpoints=False)
    cfg["data"]["augment"] = "eda"
    cfg["baseline"] = False
    run = finetune(cfg, progress=False)
    phase = next(r for r in run.history() if r.get("event") == "phase" and r.get("name") == "augmentation")
    added = run.info["data"]["augmented"]["added"]
    assert phase["detail"].startswith(f"{added} eda copies added to ") and added > 0
    if added < run.info["data"]["augmented"]["original"]:  # one copy asked per text
        assert "came out the same as their text" in phase["detail"]


def test_fewer_copies_than_asked_are_explained():
    from workbench.render import augmentation_text

    frame = pd.DataFrame({"text": ["one", "alpha beta gamma delta epsilon zeta"], "label": ["a", "b"]})
    _, added = augment_frame(frame, "text", copies=3, rate=0.2, seed=1)
    assert added < 6  # "one" has no other order and nothing to drop: no copy of it differs
    report = {"method": "eda", "original": 2, "added": added, "copies": 3, "rate": 0.2}
    assert augmentation_text(report) == (f"{added} eda copies added to 2 training texts (3 asked per text; "
                                         f"{6 - added} came out the same as their text or as another copy of it, "
                                         "and were left out)")
    assert augmentation_text({**report, "added": 6}) == "6 eda copies added to 2 training texts"
