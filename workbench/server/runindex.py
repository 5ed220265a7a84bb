"""The runs directory as the server sees it: confined lookups and a cached, paginated listing.

Pure Python over :mod:`workbench.runs`, so it is testable without a server. Every run folder
and file it reads was resolved (symlinks included) and checked to lie inside the runs root: a file
of a run that links elsewhere is treated as unreadable.
"""

from __future__ import annotations

import errno
import json
import math
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RunError
from ..metrics import higher_is_better_in
from ..runs import ACTIVE, RunDir, validation_value

SPARKLINE_POINTS = 48
SKETCH_BUCKETS = 256
METRICS_CHUNK_BYTES = 1 << 20


def is_folder_name(run_id: Any) -> bool:
    """One folder name as ``workbench runs list`` lists them: no separator, NUL or leading dot (which
    also rules out ``.`` and ``..``). Spaces and any other characters are allowed: a run folder
    renamed in Lab's file browser is still a run."""
    return (isinstance(run_id, str) and 0 < len(run_id) <= 255 and not run_id.startswith(".")
            and not any(c in run_id for c in "/\\\x00"))


def resolve_run(root: Path, run_id: str, _is_real: bool = False) -> RunDir | None:
    """The run ``run_id`` under ``root``, or None when the id is malformed, escapes the root or is no run.

    The id is checked syntactically first (one folder name, see ``is_folder_name``), then the
    directory is resolved with symlinks followed and must sit directly inside the resolved root,
    so ``../x``, encoded traversal, sibling roots (``runs-evil``) and symlinks out are all refused,
    and its run.json must be a file inside it.
    """
    if not is_folder_name(run_id):
        return None
    try:
        real_root = Path(root) if _is_real else Path(os.path.realpath(root))
        real = Path(os.path.realpath(real_root / run_id))
    except (OSError, ValueError):
        return None
    if real.parent != real_root:
        return None
    run = RunDir(real)
    return run if confined_file(run, "run.json") is not None else None


def confined_file(run: RunDir, name: str) -> Path | None:
    """``run.path / name`` if it is a regular file whose real path stays inside the run directory."""
    candidate = run.path / name
    try:
        real = Path(os.path.realpath(candidate))
        real_run = Path(os.path.realpath(run.path))
    except (OSError, ValueError):
        return None
    if real.parent != real_run or not real.is_file():
        return None
    return real


def linked_out(run: RunDir, name: str) -> bool:
    """True when the run's file ``name`` exists (a link, maybe) but is no regular file inside the run
    folder: the server reads it as unreadable rather than follow it out of the runs root."""
    return os.path.lexists(run.path / name) and confined_file(run, name) is None \
        and not (run.path / name).is_dir()  # a folder in a file's place is reported as such by the readers


def read_config_text(run: RunDir) -> str:
    """config.yaml's text, or "" when it is missing, unreadable or links out of the run folder."""
    if linked_out(run, "config.yaml"):
        return ""
    try:
        return run.read_config_text()
    except (OSError, UnicodeDecodeError):
        return ""


def lab_path(path: Path, contents_root: Path | None) -> str | None:
    """``path`` relative to the Jupyter contents root (forward slashes), or None when outside it."""
    if contents_root is None:
        return None
    try:
        rel = Path(os.path.realpath(path)).relative_to(os.path.realpath(contents_root))
    except ValueError:
        return None
    return rel.as_posix()


def read_metrics_chunk(run: RunDir, offset: int, max_bytes: int = METRICS_CHUNK_BYTES) -> dict:
    """Complete metrics records from byte ``offset``, at most about ``max_bytes`` of them.

    Returns ``records``, the ``offset`` to continue from, ``size`` of the file and ``more``.
    ``more`` is true only when ``max_bytes`` cut the read short, so records may follow at once;
    it is false once every complete line up to now was returned. A last line without its newline
    (a writer mid-append, or one killed there) is not a record yet: ``offset`` stops at its start,
    it is not ``more``, and a later call returns it once it is complete. An offset past the end
    (the file was replaced) restarts from 0 with ``reset`` set, so a client drops what it had.
    """
    path = run.metrics_jsonl
    if linked_out(run, path.name):
        raise PermissionError(errno.EACCES, "it links outside the run folder", str(path))
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return {"records": [], "offset": 0, "size": 0, "more": False, "reset": offset != 0}
    reset = offset > size
    if reset:
        offset = 0
    with open(path, "rb") as f:
        f.seek(offset)
        chunk = f.read(max_bytes)
    end = chunk.rfind(b"\n")
    if end < 0 and len(chunk) == max_bytes:
        # a single line longer than the cap: skip it rather than stall the client forever
        with open(path, "rb") as f:
            f.seek(offset)
            skipped = 0
            while True:
                block = f.read(max_bytes)
                if not block:
                    return {"records": [], "offset": offset, "size": size, "more": False, "reset": reset}
                nl = block.find(b"\n")
                if nl >= 0:
                    skipped += nl + 1
                    break
                skipped += len(block)
        new_offset = offset + skipped
        return {"records": [{"event": "oversized_line"}], "offset": new_offset, "size": size,
                "more": new_offset < size, "reset": reset}
    if end < 0:
        return {"records": [], "offset": offset, "size": size, "more": False, "reset": reset}
    records: list[Any] = []
    for raw in chunk[: end + 1].splitlines():
        if not raw.strip():
            continue
        try:
            record = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            record = None
        records.append(record if isinstance(record, dict) else {"event": "corrupt_line"})
    new_offset = offset + end + 1
    # a read shorter than the cap reached the end: what follows its last newline is a partial line
    more = len(chunk) == max_bytes and new_offset < size
    return {"records": records, "offset": new_offset, "size": size, "more": more, "reset": reset}


def read_eval(run: RunDir) -> tuple[dict | None, str | None]:
    """eval.json's object and, when the file is there but cannot be used, why (else None).

    A missing eval.json is no error (the run has not finished, or has no test split). ``RunDir``
    names a corrupt one; a folder in its place or a file without permission raises there instead,
    and is named here the same way, so a run's figures are never silently absent.
    """
    if linked_out(run, "eval.json"):
        return None, "eval.json links outside the run folder and is not read"
    try:
        return run.read_eval(), run.eval_problem()
    except OSError as e:
        return None, f"eval.json cannot be read ({e.strerror or type(e).__name__})"


@dataclass
class LossSketch:
    """A bounded summary of a loss curve: bucket means that merge pairwise when full.

    Feeding it n losses keeps at most ``SKETCH_BUCKETS`` buckets whatever n is, so a listing of
    many long runs stays cheap, and the sparkline has the curve's shape rather than its tail.
    """

    offset: int = 0
    stride: int = 1
    buckets: list[float] = field(default_factory=list)
    _acc: float = 0.0
    _count: int = 0
    _points: list[float] | None = None
    last_eval: dict | None = None  # the latest evaluation record, for runs without test metrics
    last_step: int = 0  # the latest step in metrics.jsonl (run.json's progress is written every few seconds)

    def add(self, value: float) -> None:
        self._points = None
        self._acc += value
        self._count += 1
        if self._count == self.stride:
            self.buckets.append(self._acc / self._count)
            self._acc, self._count = 0.0, 0
            if len(self.buckets) >= SKETCH_BUCKETS:
                self.buckets = [(a + b) / 2 for a, b in zip(self.buckets[::2], self.buckets[1::2])]
                self.stride *= 2

    def points(self, n: int = SPARKLINE_POINTS) -> list[float]:
        if self._points is not None:
            return self._points
        self._points = self._downsample(n)
        return self._points

    def _downsample(self, n: int) -> list[float]:
        values = list(self.buckets)
        if self._count:
            values.append(self._acc / self._count)
        if len(values) <= n:
            return [round(v, 6) for v in values]
        out = []
        for i in range(n):
            lo, hi = i * len(values) // n, (i + 1) * len(values) // n
            part = values[lo:hi]
            out.append(round(sum(part) / len(part), 6))
        return out


def metric_directions(evaluation: Any) -> dict[str, bool]:
    """Whether a higher value is better, for each metric of an eval.json (the report's rule)."""
    if not isinstance(evaluation, dict):
        return {}
    names = {k for part in ("finetuned", "baseline") if isinstance(evaluation.get(part), dict)
             for k in evaluation[part] if isinstance(k, str)}
    return {name: higher_is_better_in(evaluation, name) for name in sorted(names)}


def _stat_key(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size)


class RunIndex:
    """Summaries of the runs under one root, cached per run until its files change.

    ``rows()`` re-stats each run on every call (cheap) and re-reads only runs whose run.json,
    eval.json or report changed; loss sparklines are fed incrementally from metrics.jsonl.
    """

    def __init__(self, root: Path, contents_root: Path | None = None):
        self.root = Path(root)
        self.contents_root = contents_root
        self._rows: dict[str, tuple[tuple, dict]] = {}
        self._sketches: dict[str, LossSketch] = {}
        self._lock = threading.Lock()  # the row cache and the per-run locks; held only briefly
        self._sketch_locks: dict[str, threading.Lock] = {}  # one run's metrics read waits on no other run

    def _sketch_lock(self, run_id: str) -> threading.Lock:
        with self._lock:
            lock = self._sketch_locks.get(run_id)
            if lock is None:
                lock = self._sketch_locks[run_id] = threading.Lock()
            return lock

    def _run_dirs(self) -> list[RunDir]:
        try:
            entries = list(os.scandir(self.root))
        except (FileNotFoundError, NotADirectoryError):
            return []
        runs = []
        real_root = Path(os.path.realpath(self.root))
        for entry in entries:
            if entry.is_symlink():  # reachable by its own name; listing it would show the run twice
                continue
            run = resolve_run(real_root, entry.name, _is_real=True)
            if run is not None:
                runs.append(run)
        return runs

    def _summarize(self, run: RunDir) -> dict:
        try:
            info = run.read_info()
        except RunError:
            info = {}  # summary() reports it
        if not isinstance(info, dict):
            row = {"id": run.id, "status": "unknown", "error": "run.json is not a JSON object"}
        else:
            try:
                row = run.summary()
            except Exception as e:  # a run directory we cannot make sense of still gets a row
                row = {"id": run.id, "status": "unknown", "error": f"unreadable run directory: {type(e).__name__}"}
        row.pop("path", None)
        if linked_out(run, "eval.json"):  # summary() read it: take back what it found there
            for key in ("value", "baseline"):
                row.pop(key, None)
            row["eval_error"] = read_eval(run)[1]
        elif not row.get("eval_error"):
            problem = read_eval(run)[1]  # one summary() raises on rather than names (a folder for eval.json)
            if problem:
                row["eval_error"] = problem
        if row.get("error") is not None and not isinstance(row["error"], str):
            row["error"] = str(row["error"])
        if row.get("status") == "unknown" and row.get("error"):
            row["error"] = row["error"].replace(str(run.path), run.id)  # no server paths in responses
        row["lab_path"] = lab_path(run.path, self.contents_root)
        row["has_report"] = confined_file(run, "report.html") is not None
        notebook = confined_file(run, "report.ipynb")
        row["notebook"] = lab_path(notebook, self.contents_root) if notebook else \
            self._started_from(info.get("notebook") if isinstance(info, dict) else None)
        return row

    def _started_from(self, recorded: Any) -> str | None:
        """The notebook whose kernel started the run (run.json's ``notebook``), from the contents root,
        where it is still a file under the root."""
        if not isinstance(recorded, str) or not recorded or self.contents_root is None:
            return None
        path = Path(recorded) if os.path.isabs(recorded) else self.contents_root / recorded
        shown = lab_path(path, self.contents_root)
        return shown if shown is not None and path.is_file() else None

    def _sparkline(self, run: RunDir) -> list[float]:
        sketch = self._sketches.get(run.id)
        if sketch is None:
            sketch = self._sketches[run.id] = LossSketch()
        size = _stat_key(run.metrics_jsonl)
        if size is not None and size[1] == sketch.offset:
            return sketch.points()  # nothing new since the last listing
        while True:
            chunk = read_metrics_chunk(run, sketch.offset)
            if chunk["reset"]:
                sketch = self._sketches[run.id] = LossSketch()
                continue
            for rec in chunk["records"]:
                step = rec.get("step") if isinstance(rec, dict) else None
                if isinstance(step, int) and not isinstance(step, bool) and step > sketch.last_step:
                    sketch.last_step = step
                if isinstance(rec, dict) and rec.get("event") == "eval":
                    sketch.last_eval = rec
                if isinstance(rec, dict) and rec.get("event") == "step":
                    loss = rec.get("loss")
                    if isinstance(loss, (int, float)) and not isinstance(loss, bool) and math.isfinite(loss):
                        sketch.add(float(loss))
            sketch.offset = chunk["offset"]
            if not chunk["more"]:
                return sketch.points()

    def _summary(self, run: RunDir) -> dict:
        key = (_stat_key(run.run_json), _stat_key(run.eval_json), _stat_key(run.path / "report.html"),
               _stat_key(run.path / "report.ipynb"))
        with self._lock:
            cached = self._rows.get(run.id)
            # a pending or running row is read again: its process may have ended without touching its files
            if cached is None or cached[0] != key or cached[1].get("status") in ACTIVE:
                cached = (key, self._summarize(run))
                self._rows[run.id] = cached
            return cached[1]

    def _with_sparkline(self, run: RunDir, summary: dict) -> dict:
        row = dict(summary)
        # a first read of a long metrics.jsonl takes seconds: it holds this run's lock, not the index's
        with self._sketch_lock(run.id):
            try:
                row["loss_sparkline"] = self._sparkline(run)
            except OSError:
                row["loss_sparkline"] = []
            sketch = self._sketches.get(run.id)
            main = row.get("main_metric")
            if row.get("value") is None and isinstance(main, str) and sketch and sketch.last_eval:
                found = validation_value([sketch.last_eval], main)
                if found:
                    row["validation"] = found
            progress = row.get("progress")
            if (row.get("status") in ACTIVE or row.get("process_ended")) and isinstance(progress, dict) and sketch and \
                    isinstance(progress.get("step"), int) and sketch.last_step > progress["step"]:
                # never behind the validation value shown beside it, nor behind where a killed run got to
                row["progress"] = {**progress, "step": sketch.last_step}
        return row

    def row(self, run: RunDir) -> dict:
        """One run's summary with its loss sparkline."""
        return self._with_sparkline(run, self._summary(run))

    def _sorted(self) -> list[tuple[RunDir, dict]]:
        runs = self._run_dirs()
        pairs = [(run, self._summary(run)) for run in runs]
        alive = {run.id for run in runs}
        with self._lock:
            for stale in set(self._rows) - alive:
                self._rows.pop(stale, None)
            for stale in set(self._sketches) - alive:
                self._sketches.pop(stale, None)
            for stale in set(self._sketch_locks) - alive:
                self._sketch_locks.pop(stale, None)
        pairs.sort(key=lambda p: (str(p[1].get("created_at") or ""), p[1]["id"]), reverse=True)
        return pairs

    def rows(self) -> list[dict]:
        """Every run, newest first (by ``created_at``, then id)."""
        return [self._with_sparkline(run, summary) for run, summary in self._sorted()]

    def page(self, offset: int = 0, limit: int = 100) -> dict:
        """One page of rows; only the page's runs read their metrics for a sparkline."""
        pairs = self._sorted()
        counts: dict[str, int] = {}
        for _, summary in pairs:
            counts[str(summary.get("status"))] = counts.get(str(summary.get("status")), 0) + 1
        runs = [self._with_sparkline(run, summary) for run, summary in pairs[offset: offset + limit]]
        return {"runs": runs, "total": len(pairs), "offset": offset, "limit": limit, "counts": counts}
