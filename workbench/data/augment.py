"""Training-text augmentation for text classification: EDA's random swaps and deletions.

EDA (Wei and Zou, 2019, "Easy Data Augmentation Techniques for Boosting Performance on Text
Classification Tasks") makes altered copies of each training text with four operations; the two
written here need no resources (synonym replacement and random insertion need WordNet, which is not
on these machines, and the libraries that wrap them, such as nlpaug, fetch it at run time). Each copy
swaps ``rate x words`` random pairs of words, then drops each word with probability ``rate`` (never
all of them). Only the training split grows; validation and test stay as given.
"""

from __future__ import annotations

import random

import pandas as pd


def eda_copy(text: str, rate: float, rng: random.Random) -> str:
    """One altered copy of ``text``: random swaps, then random deletions (words split on whitespace)."""
    words = str(text).split()
    if len(words) < 2:
        return " ".join(words)
    for _ in range(max(1, round(rate * len(words)))):
        i, j = rng.randrange(len(words)), rng.randrange(len(words))
        words[i], words[j] = words[j], words[i]
    kept = [w for w in words if rng.random() >= rate]
    return " ".join(kept or [rng.choice(words)])


def augment_frame(frame: pd.DataFrame, text_column: str, copies: int, rate: float, seed: int) -> tuple[pd.DataFrame, int]:
    """``frame`` followed by ``copies`` EDA copies of each row (labels and other columns kept); copies
    identical to their text are left out. Returns the frame and how many rows were added."""
    rng = random.Random(seed)
    extra = []
    for _, row in frame.iterrows():
        original = str(row[text_column])
        made = set()
        for _ in range(copies):
            text = eda_copy(original, rate, rng)
            if text != " ".join(original.split()) and text not in made:
                made.add(text)
                extra.append({**row.to_dict(), text_column: text})
    if not extra:
        return frame, 0
    out = pd.concat([frame, pd.DataFrame(extra, columns=frame.columns)], ignore_index=True)
    out.attrs.update(frame.attrs)
    return out, len(extra)
