"""What every variant measures the same way: real tokens per batch, step times, FLOPs, memory, phases."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import time
from dataclasses import dataclass, field
from typing import Any, Callable

# Dense bf16 tensor-core peaks (FLOP/s) used for MFU. H100 SXM and H200 share the GH100 die.
GPU_PEAKS = {"H200": 989.4e12, "H100": 989.4e12, "A100": 312e12}


class CountingCollator:
    """Wraps a data collator and records, per batch: examples, real (non-pad) tokens, padded tokens,
    and each row's real length (for the attention term of the FLOP count).

    Counting reads the attention mask on the host before the batch moves to the device, so it adds
    no device synchronisation. In DataLoader worker processes (GPU runs) each record goes to a spool
    file with its batch number (PyTorch hands batch k to worker k mod num_workers), and
    ``train_batches`` puts them back in order.
    """

    def __init__(self, collate: Callable, pad_id: int | None = None):
        import tempfile

        self.collate = collate
        self.pad_id = pad_id
        self.batches: list[dict] = []
        self.spool = tempfile.mkdtemp(prefix="bench-batches-")
        self._seq: dict = {}

    def __call__(self, features: list[dict]) -> dict:
        import torch

        batch = self.collate(features)
        ids = batch["input_ids"]
        mask = batch.get("attention_mask")
        if mask is None:
            mask = (ids != self.pad_id) if self.pad_id is not None else ids.new_ones(ids.shape)
        rows = mask.sum(dim=1).tolist()
        rec = {"examples": int(ids.shape[0]), "real": int(sum(rows)), "padded": int(ids.numel()),
               "width": int(ids.shape[1]), "rows": rows}
        worker = torch.utils.data.get_worker_info()
        if worker is None:
            self.batches.append(rec)
        else:
            key = (len(worker.dataset), worker.id)
            seq = self._seq.get(key, 0)
            self._seq[key] = seq + 1
            rec.update(n=len(worker.dataset), k=seq * worker.num_workers + worker.id, t=time.time())
            with open(os.path.join(self.spool, f"{os.getpid()}.jsonl"), "a", encoding="utf-8") as f:
                f.write(json.dumps(rec) + "\n")
        return batch

    def _spooled(self) -> list[dict]:
        recs = []
        for name in sorted(os.listdir(self.spool)):
            with open(os.path.join(self.spool, name), encoding="utf-8") as f:
                recs.extend(json.loads(line) for line in f if line.strip())
        if not recs:
            return []
        train_n = min(recs, key=lambda r: r["t"])["n"]  # the training loader runs before any evaluation
        first: dict[int, dict] = {}
        for r in sorted((r for r in recs if r["n"] == train_n), key=lambda r: r["t"]):
            first.setdefault(r["k"], {k: v for k, v in r.items() if k not in ("n", "k", "t")})
        return [first[k] for k in sorted(first)]

    def train_batches(self, steps: int) -> list[dict]:
        """The first ``steps`` batches: the training batches (evaluation batches come after)."""
        return (self.batches or self._spooled())[:steps]


@dataclass
class Clock:
    """Step-end timestamps; on a GPU the window edges are synchronised so queued work is counted."""
    warmup: int
    steps: int
    cuda: bool = False
    ends: dict = field(default_factory=dict)

    def step_end(self, step: int) -> None:
        if self.cuda and step in (self.warmup, self.warmup + self.steps):
            import torch

            torch.cuda.synchronize()
        self.ends.setdefault(step, time.perf_counter())

    def window(self) -> float | None:
        a, b = self.ends.get(self.warmup), self.ends.get(self.warmup + self.steps)
        return None if a is None or b is None else b - a

    def durations(self) -> list[float] | None:
        """Seconds of each timed step (on a CPU; a GPU's queued work makes single steps meaningless)."""
        ends = [self.ends.get(s) for s in range(self.warmup, self.warmup + self.steps + 1)]
        if self.cuda or None in ends:
            return None
        return [round(b - a, 7) for a, b in zip(ends, ends[1:])]


class Phases:
    """Seconds per named phase, exclusive of nested phases (an evaluation inside ``Trainer.train``
    counts as eval, not as train)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}  # outermost entries per phase (an evaluation is one, however nested)
        self._stack: list[list] = []  # [name, start, seconds spent in nested phases]

    @contextlib.contextmanager
    def __call__(self, name: str):
        frame = [name, time.perf_counter(), 0.0]
        if not any(f[0] == name for f in self._stack):
            self.calls[name] = self.calls.get(name, 0) + 1
        self._stack.append(frame)
        try:
            yield
        finally:
            self._stack.pop()
            total = time.perf_counter() - frame[1]
            self.seconds[name] = self.seconds.get(name, 0.0) + total - frame[2]
            if self._stack:
                self._stack[-1][2] += total

    def wrap(self, owner: Any, attr: str, name: str) -> Callable[[], None]:
        """Time every call of ``owner.attr`` under ``name``; returns an undo function."""
        original = getattr(owner, attr)
        phases = self

        def timed(*args, **kw):
            with phases(name):
                return original(*args, **kw)

        setattr(owner, attr, timed)
        return lambda: setattr(owner, attr, original)


@contextlib.contextmanager
def instrument_trainer(phases: Phases, clock: Clock):
    """Time Trainer's evaluation, checkpointing and callbacks (UI + logging), and stamp step ends.

    Applied identically to every Trainer-based variant (the naive and tuned scripts and workbench),
    it wraps methods without changing what they do.
    """
    from transformers import Trainer
    from transformers.trainer_callback import CallbackHandler

    undo = [phases.wrap(Trainer, "evaluate", "eval"), phases.wrap(Trainer, "predict", "eval"),
            phases.wrap(Trainer, "_save_checkpoint", "checkpoint"),
            phases.wrap(Trainer, "_load_best_model", "checkpoint")]
    original = CallbackHandler.call_event

    def call_event(self, event, args, state, control, **kw):
        if event == "on_step_end":
            clock.step_end(state.global_step)
        with phases("callbacks"):
            return original(self, event, args, state, control, **kw)

    CallbackHandler.call_event = call_event
    try:
        yield
    finally:
        CallbackHandler.call_event = original
        for u in undo:
            u()


# ---- FLOPs --------------------------------------------------------------------------------------

def model_shape(model: Any) -> dict:
    """Matmul parameters N (no embedding lookups; the LM head counts even when tied), layers, attention width."""
    import torch

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    embeddings = {id(m.weight) for m in base.modules() if isinstance(m, torch.nn.Embedding)}
    n = sum(p.numel() for p in base.parameters() if p.dim() >= 2 and id(p) not in embeddings)
    head = base.get_output_embeddings() if hasattr(base, "get_output_embeddings") else None
    if head is not None and id(head.weight) in embeddings:
        n += head.weight.numel()
    cfg = base.config
    layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", 0)
    heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_head", 0)
    hidden = getattr(cfg, "hidden_size", None) or getattr(cfg, "n_embd", 0)
    head_dim = getattr(cfg, "head_dim", None) or (hidden // heads if heads else 0)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.parameters())
    return {"matmul_params": int(n), "layers": int(layers), "attn_width": int(heads * head_dim),
            "params": int(total), "trainable_params": int(trainable)}


def training_flops(shape: dict, batches: list[dict], lora: bool = False) -> dict:
    """Model FLOPs of the real tokens in ``batches`` (PaLM appendix B / nanoGPT convention).

    Per sequence of real length s: 6*N*s + 12*L*d*s^2. ``lora``: also the useful-work count
    4*N*s + 12*L*d*s^2 (frozen weights need no weight gradients).
    """
    n, l, d = shape["matmul_params"], shape["layers"], shape["attn_width"]
    tokens = sum(b["real"] for b in batches)
    attn = sum(12 * l * d * s * s for b in batches for s in b["rows"])
    out = {"flops_6n": 6 * n * tokens + attn}
    if lora:
        out["flops_lora"] = 4 * n * tokens + attn
    return out


def gpu_peak(name: str | None) -> float | None:
    if not name:
        return None
    for key, peak in GPU_PEAKS.items():
        if key in name and "PCIe" not in name:  # PCIe parts have lower clocks: report no MFU rather than a wrong one
            return peak
    return None


# ---- memory and machine -------------------------------------------------------------------------

def peak_memory(cuda: bool) -> dict:
    out = {"cpu_max_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if cuda:
        import torch

        out["gpu_max_allocated_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
        out["gpu_max_reserved_mb"] = round(torch.cuda.max_memory_reserved() / 2**20, 1)
    return out


def machine() -> dict:
    """What the numbers were measured on."""
    import torch
    import transformers

    info: dict[str, Any] = {"platform": platform.platform(), "python": platform.python_version(),
                            "torch": torch.__version__, "transformers": transformers.__version__,
                            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            text = f.read()
        for line in text.splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        flags = next((ln.split(":", 1)[1].split() for ln in text.splitlines() if ln.startswith("flags")), [])
        info["cpu_bf16"] = [f for f in flags if f in ("avx512_bf16", "amx_bf16", "amx_tile")]
    except OSError:
        pass
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            info["memory_gb"] = round(int(f.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gb"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
        info["cuda"] = torch.version.cuda
        info["gpu_peak_bf16_tflops"] = (gpu_peak(info["gpu"]) or 0) / 1e12 or None
        try:
            import subprocess

            q = subprocess.run(["nvidia-smi", "--query-gpu=name,power.limit,clocks.max.sm,driver_version",
                                "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
            info["nvidia_smi"] = q.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            pass
    return info


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None
