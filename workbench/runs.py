"""The run directory: the only state shared by the core and every front end.

``runs/<run_id>/``:
  run.json        id, name, task, model, status, timestamps, pid/host, error, versions, hardware,
                  config hash, data fingerprint, git commit, main metric
  config.yaml     the resolved config
  metrics.jsonl   one strict-JSON object per event (append-only)
  eval.json       fine-tuned and baseline metrics on the same split, with deltas
  checkpoints/    checkpoint-N/ folders; only those holding a COMPLETE marker count
  model/          final model (safetensors), tokenizer, label maps, README.md model card
  report.ipynb, report.html   when a report was made
  STOP            asks a running run to stop at the next step

Everything here is written atomically (temp file + ``os.replace``), and readers never
need anything but this module and the files.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import secrets
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

from .errors import RunError, RunFolderDeleted
from .metrics import higher_is_better_in

STATUSES = ("pending", "running", "completed", "failed", "interrupted")
ACTIVE = ("pending", "running")  # a run that can still be stopped
COMPLETE_MARKER = "COMPLETE"


# ---- strict JSON ---------------------------------------------------------------------------------

def to_jsonable(obj: Any) -> tuple[Any, bool]:
    """Replace non-finite floats by None; report whether any were replaced."""
    flagged = False

    def walk(x: Any) -> Any:
        nonlocal flagged
        if isinstance(x, float):
            if math.isfinite(x):
                return x
            flagged = True
            return None
        if isinstance(x, dict):
            return {str(k): walk(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [walk(v) for v in x]
        if hasattr(x, "item") and callable(x.item):  # numpy / torch scalars
            return walk(x.item())
        if isinstance(x, (str, int, bool)) or x is None:
            return x
        if isinstance(x, Path):
            return str(x)
        return str(x)

    return walk(obj), flagged


def dumps_strict(obj: Any) -> str:
    data, flagged = to_jsonable(obj)
    if flagged and isinstance(data, dict):
        data["nonfinite"] = True
    return json.dumps(data, allow_nan=False, ensure_ascii=False)


def atomic_write_text(path: Path, text: str, make_parent: bool = True) -> None:
    """Write ``text`` through a temporary file in the same folder, so readers never see half of it.

    With ``make_parent`` false a missing folder raises FileNotFoundError instead of being made.
    """
    path = Path(path)
    if make_parent:
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def read_json_object(path: Path) -> dict | None:
    """A JSON file holding an object (config.json, trainer_state.json), or None if it is missing,
    unreadable or something else."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def atomic_write_json(path: Path, obj: Any) -> None:
    data, flagged = to_jsonable(obj)
    atomic_write_text(path, json.dumps(data, indent=2, allow_nan=False, ensure_ascii=False) + "\n")


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# ---- locating runs -------------------------------------------------------------------------------

def default_runs_dir() -> Path:
    return Path(os.environ.get("WORKBENCH_RUNS_DIR", "runs"))


_ID_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def new_run_id(name: str | None, task: str) -> str:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", (name or task)).strip("-").lower()[:40] or "run"
    return f"{stamp}-{slug}-{secrets.token_hex(2)}"


def is_valid_run_id(run_id: str) -> bool:
    return bool(_ID_OK.match(run_id)) and ".." not in run_id


@dataclass
class RunDir:
    """Paths and small read/write helpers for one run directory."""

    path: Path
    # the folder's (device, inode) as its writer created it: see ``pin``
    _pinned: tuple[int, int, bool] | None = field(default=None, repr=False, compare=False)

    def pin(self) -> None:
        """Remember which folder this is, so that its writer can tell it was deleted even after something
        made a new folder at the same path (Trainer saving a checkpoint creates the folders it needs).
        A new folder may get the old one's inode number back, so once config.yaml (written once, at the
        start) exists, a folder without it is not this run's either."""
        st = self.path.stat()
        self._pinned = (st.st_dev, st.st_ino, self.config_yaml.exists())

    def gone(self) -> bool:
        """Whether the folder was deleted since ``pin`` (or, unpinned, does not exist)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return True
        if self._pinned is None:
            return False
        dev, ino, with_config = self._pinned
        return (st.st_dev, st.st_ino) != (dev, ino) or (with_config and not self.config_yaml.exists())

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def run_json(self) -> Path:
        return self.path / "run.json"

    @property
    def config_yaml(self) -> Path:
        return self.path / "config.yaml"

    @property
    def metrics_jsonl(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def eval_json(self) -> Path:
        return self.path / "eval.json"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def stop_file(self) -> Path:
        return self.path / "STOP"

    @classmethod
    def create(cls, root: Path | str, name: str | None, task: str) -> "RunDir":
        root = Path(root)
        blocking = next((p for p in (root, *root.parents) if p.exists() and not p.is_dir()), None)
        if blocking is not None:
            raise RunError(f"runs_dir: {blocking} is a file, so {root} cannot be the folder for run directories. "
                           "Point runs_dir (or WORKBENCH_RUNS_DIR) at a folder.")
        root.mkdir(parents=True, exist_ok=True)
        for _ in range(10):
            p = root / new_run_id(name, task)
            try:
                p.mkdir()
                made = cls(p)
                made.pin()
                return made
            except FileExistsError:
                continue
        raise RunError(f"Could not create a new run directory under {root}.")

    # run.json ---------------------------------------------------------------------------------
    def read_info(self) -> dict:
        """run.json as readers should see it: a pending or running run whose process is known to have
        ended (see ``process_ended``) reads as failed, with the reason; the file is left as it is."""
        info = self._read_recorded()
        if isinstance(info, dict) and process_ended(info):
            info = {**info, "status": "failed", "process_ended": True,
                    "error": f"its process ended without recording why (pid {info['pid']} on {info['host']}, "
                             f"while {info['status']}): it was killed (out of memory, a kernel restart or "
                             "shutdown, kill -9) or crashed."}
            # run.json's progress is written every few seconds; the last line of metrics.jsonl is when
            # the run was last seen at work, so its duration is not cut short
            try:
                seen = _dt.datetime.fromtimestamp(self.metrics_jsonl.stat().st_mtime, _dt.timezone.utc)
            except OSError:
                seen = None
            if seen is not None and str(info.get("updated_at") or "") < seen.isoformat(timespec="seconds"):
                info["updated_at"] = seen.isoformat(timespec="seconds")
        return info

    def _read_recorded(self) -> dict:
        try:
            info = json.loads(self.run_json.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise RunError(f"{self.path} is not a run directory (no run.json).") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise RunError(f"corrupt run.json ({e}); the directory is {self.path}.") from None
        if not isinstance(info, dict):
            raise RunError(f"corrupt run.json (it is not a JSON object); the directory is {self.path}.")
        return info

    def update_info(self, **changes: Any) -> dict:
        if self.gone():  # deleted by its user: writing would bring back a folder with a stub run.json
            raise RunFolderDeleted(self.path)
        info = {}
        if self.run_json.exists():
            try:
                info = self._read_recorded()
            except RunError:
                info = {}
        info.update(changes)
        info["updated_at"] = now_iso()
        atomic_write_json(self.run_json, info)
        return info

    def set_status(self, status: str, **extra: Any) -> dict:
        assert status in STATUSES, status
        changes: dict[str, Any] = {"status": status, **extra}
        if status == "running":
            changes.setdefault("started_at", now_iso())
        if status in ("completed", "failed", "interrupted"):
            changes.setdefault("finished_at", now_iso())
        return self.update_info(**changes)

    # metrics.jsonl ----------------------------------------------------------------------------
    def append_metrics(self, record: dict) -> None:
        line = dumps_strict(record)
        if self._pinned is not None and self.gone():  # a folder made anew at its path is not this run's
            raise RunFolderDeleted(self.path)
        try:
            with open(self.metrics_jsonl, "a", encoding="utf-8") as f:
                f.write(line + "\n")
        except FileNotFoundError:
            if not self.path.is_dir():
                raise RunFolderDeleted(self.path) from None
            raise

    def read_metrics(self, offset: int = 0) -> tuple[list[dict], int]:
        """Records from byte ``offset`` on, and the offset to continue from.

        A partial last line (a writer mid-append) is left for the next call.
        """
        try:
            with open(self.metrics_jsonl, "rb") as f:
                f.seek(offset)
                chunk = f.read()
        except FileNotFoundError:
            return [], offset
        records = []
        end = chunk.rfind(b"\n")
        if end < 0:
            return [], offset
        for raw in chunk[: end + 1].splitlines():
            if not raw.strip():
                continue
            try:
                records.append(json.loads(raw))
            except json.JSONDecodeError:
                records.append({"event": "corrupt_line"})
        return records, offset + end + 1

    def last_validation(self, main: str, tail_bytes: int = 1 << 20) -> dict | None:
        """The latest validation value of ``main`` in metrics.jsonl (its last ``tail_bytes``), for a
        run that has no test metrics: one still running, stopped or failed after evaluating."""
        try:
            size = self.metrics_jsonl.stat().st_size
        except OSError:
            return None
        start = max(0, size - tail_bytes)
        records, _ = self.read_metrics(start)
        return validation_value(reversed(records[1:] if start else records), main)  # a cut first line is dropped

    def read_eval(self) -> dict | None:
        """eval.json's object; None where there is none yet or it cannot be read (``eval_problem`` says why)."""
        ev = self._eval_and_problem()[0]
        return ev if isinstance(ev, dict) else None

    def eval_problem(self) -> str | None:
        """Why eval.json cannot be read as the run's test metrics; None where it reads or is not written yet."""
        return self._eval_and_problem()[1]

    def _eval_and_problem(self) -> tuple[Any, str | None]:
        try:
            ev = json.loads(self.eval_json.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None, None
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            return None, f"eval.json cannot be read ({e})"
        except OSError as e:  # a folder in its place, no permission
            return None, f"eval.json cannot be read ({e.strerror or type(e).__name__})"
        return ev, None if isinstance(ev, dict) else "eval.json is not a JSON object"

    def read_config_text(self) -> str:
        try:
            return self.config_yaml.read_text(encoding="utf-8")
        except FileNotFoundError:
            return ""

    def complete_checkpoints(self) -> list[Path]:
        if not self.checkpoints.is_dir():
            return []
        found = [p for p in self.checkpoints.glob("checkpoint-*") if (p / COMPLETE_MARKER).exists()]
        return sorted(found, key=lambda p: int(p.name.rsplit("-", 1)[-1]) if p.name.rsplit("-", 1)[-1].isdigit()
                      else -1)

    def request_stop(self) -> None:
        """Write STOP; FileNotFoundError if the run's folder is gone (a deleted run is not made again)."""
        atomic_write_text(self.stop_file, now_iso() + "\n", make_parent=False)

    def summary(self) -> dict:
        """One row for listings; a corrupt directory yields an ``error`` field instead of raising."""
        row: dict[str, Any] = {"id": self.id, "path": str(self.path)}
        try:
            info = self.read_info()
        except RunError as e:
            row.update(status="unknown", error=str(e))
            return row
        for k in ("name", "task", "model", "status", "created_at", "started_at", "finished_at", "updated_at",
                  "error", "main_metric", "progress", "resumed_from", "process_ended"):
            if k in info:
                row[k] = info[k]
        ev, problem = self._eval_and_problem()
        if problem:
            row["eval_error"], ev = problem, None
        if ev:
            # a hand-edited or half-written eval.json loses its figures here, not the run its row
            main = ev.get("main_metric") if isinstance(ev.get("main_metric"), str) else info.get("main_metric")
            row["main_metric"] = main
            for key, part in (("value", "finetuned"), ("baseline", "baseline")):
                got = ev.get(part) if isinstance(ev.get(part), dict) else {}
                v = got.get(main)
                if v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)):
                    row[key] = v
                else:
                    row[key] = None
                    row["eval_error"] = f"eval.json: {part}.{main} is {v!r}, not a number"
                if part in ev and not isinstance(ev[part], dict):
                    row["eval_error"] = f"eval.json: {part} is not an object"
        if isinstance(row.get("main_metric"), str) and row["main_metric"]:  # no eval.json yet: by its name
            try:
                row["greater_is_better"] = higher_is_better_in(ev or {}, row["main_metric"])
            except (AttributeError, TypeError):
                row["greater_is_better"] = higher_is_better_in({}, row["main_metric"])
        return row

    def summary_with_validation(self) -> dict:
        """``summary()``, and for a run without test metrics its latest validation value of the main
        metric (``validation``), read from metrics.jsonl."""
        row = self.summary()
        if row.get("value") is None and isinstance(row.get("main_metric"), str) and row["main_metric"]:
            found = self.last_validation(row["main_metric"])
            if found:
                row["validation"] = found
        return row


def validation_value(records: Iterable[dict], main: str) -> dict | None:
    """``{"value", "step"}`` from the first evaluation record in ``records`` with a finite ``main``."""
    for rec in records:
        if not isinstance(rec, dict) or rec.get("event") != "eval" or not isinstance(rec.get("metrics"), dict):
            continue
        value = rec["metrics"].get(main)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return {"value": float(value), "step": rec.get("step")}
    return None


def validation_text(row: dict) -> str | None:
    """"validation accuracy 0.8125 at step 40" for a summary row with a ``validation`` value."""
    found = row.get("validation")
    if not isinstance(found, dict) or not isinstance(found.get("value"), (int, float)):
        return None
    at = f" at step {found['step']}" if isinstance(found.get("step"), int) else ""
    return f"validation {row.get('main_metric')} {found['value']:.4f}{at}"


def process_ended(info: dict) -> bool:
    """Whether a pending or running run's process is known to be gone: it was started on this machine
    (run.json's ``host``) and no live process has its ``pid``. A run from another machine, or one whose
    process cannot be checked, is taken to be alive."""
    import socket

    pid, host = info.get("pid"), info.get("host")
    if info.get("status") not in ACTIVE or not isinstance(pid, int) or pid <= 0 \
            or host != socket.gethostname():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # not ours to signal (PermissionError): alive
        return False
    try:  # a killed child its parent has not waited for yet is a zombie: gone, though its pid exists
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def find_run(ref: str | Path, root: Path | str | None = None) -> RunDir:
    """A run by directory path, by id under ``root``, by its name (the newest run of that name), or by
    a part of an id that only one run's id contains / ``latest``."""
    root = Path(root) if root is not None else default_runs_dir()
    p = Path(ref)
    if p.is_dir() and (p / "run.json").exists():
        return RunDir(p)
    if ref == "latest":
        runs = list_runs(root)
        if not runs:
            raise RunError(f"No runs under {root}.")
        return RunDir(Path(runs[0]["path"]))
    dirs = list(iter_run_dirs(root))
    exact = [d for d in dirs if d.name == str(ref)]
    if exact:
        return RunDir(exact[0])
    # a run's own name, whole: it wins over ids that merely contain it ("base" is not "base-lora"), and
    # of runs sharing a name the newest (by created_at, then id) is the one meant, as with "latest"
    named = []
    for d in dirs:
        name, created = _name_and_created(d)
        if name == str(ref):
            named.append((created, d.name, d))
    if named:
        named.sort()
        return RunDir(named[-1][2])
    if not is_valid_run_id(str(ref)):
        raise RunError(f"No run named '{ref}' under {root}, and it is not a run id. "
                       "`workbench runs list` shows the runs.")
    candidates = [d for d in dirs if d.name.startswith(str(ref)) or str(ref) in d.name]
    if len(candidates) == 1:
        return RunDir(candidates[0])
    if not candidates:
        raise RunError(f"No run '{ref}' under {root}. `workbench runs list` shows the runs.")
    names = ", ".join(sorted(c.name for c in candidates)[:5])
    more = f" and {len(candidates) - 5} more" if len(candidates) > 5 else ""
    raise RunError(f"'{ref}' matches {len(candidates)} runs ({names}{more}); give more of the id.")


def _name_and_created(d: Path) -> tuple[str | None, str]:
    """A run's name and when it was made, as text that sorts by time (None and "" where run.json does
    not say)."""
    try:
        info = RunDir(d).read_info()
    except RunError:
        return None, ""
    name, created = info.get("name"), info.get("created_at")
    return name if isinstance(name, str) else None, created if isinstance(created, str) else ""


def iter_run_dirs(root: Path | str) -> Iterator[Path]:
    root = Path(root)
    if not root.is_dir():
        return
    for d in root.iterdir():
        if d.is_dir() and not d.name.startswith(".") and (d / "run.json").exists():
            yield d


def list_runs(root: Path | str | None = None, validation: bool = False) -> list[dict]:
    """Summaries of every run under ``root``, newest first; with ``validation``, runs without test
    metrics also carry their latest validation value (a read of their metrics.jsonl, for listings
    that show it)."""
    root = Path(root) if root is not None else default_runs_dir()
    rows = [RunDir(d).summary_with_validation() if validation else RunDir(d).summary() for d in iter_run_dirs(root)]
    # a hand-edited created_at (a number) sorts as text rather than stopping every listing
    rows.sort(key=lambda r: (str(r.get("created_at") or ""), r["id"]), reverse=True)
    return rows
