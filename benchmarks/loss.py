"""The language-model loss alone: torch's cross-entropy against workbench's fused one.

    python -m benchmarks.loss                       # on the GPU if there is one, else on the CPU
    python -m benchmarks.loss --device cpu --rows 2040 --vocab 30522 --repeats 7

Each measurement is the loss and its backward pass over one bf16 logits array (rows x vocabulary,
every row labelled, as in packed causal-LM text), the two implementations alternating, each after
one untimed call. "torch" is what transformers' models compute: ``F.cross_entropy`` over the logits
cast to fp32, summed and divided by the token count. "workbench" is
``workbench.engine.sparse.cross_entropy``. Reported per shape: median seconds of each, their
ratio, on a GPU the peak memory each allocates beyond the logits and their gradient, and the largest
differences of loss and gradient between the two.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

# (rows, vocabulary): a batch of 8 blocks of 1,024 tokens, each block's last position unlabelled,
# for GPT-2, the Llama-3.2-1B shape and the Qwen2.5-0.5B shape of the GPU suite
GPU_SHAPES = [(8 * 1023, 50257), (8 * 1023, 128256), (8 * 1023, 151936)]
# the CPU suite's tiny-clm step: 8 blocks of 256 tokens, MiniLM's vocabulary
CPU_SHAPES = [(8 * 255, 30522)]


def measure(rows: int, vocab: int, device: str, repeats: int) -> dict:
    import torch
    import torch.nn.functional as F

    from workbench.engine.sparse import cross_entropy

    gen = torch.Generator(device=device).manual_seed(0)
    logits = (torch.randn(rows, vocab, generator=gen, device=device) * 2).to(torch.bfloat16).requires_grad_(True)
    target = torch.randint(0, vocab, (rows,), generator=gen, device=device)
    divisor = float(rows)

    def torch_loss():
        return F.cross_entropy(logits.float(), target, reduction="sum") / divisor

    def workbench_loss():
        return cross_entropy(logits, target, divisor)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def once(fn) -> tuple[float, int, float, object]:
        logits.grad = None
        sync()
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated() if device == "cuda" else 0
        t = time.perf_counter()
        loss = fn()
        loss.backward()
        sync()
        took = time.perf_counter() - t
        peak = torch.cuda.max_memory_allocated() - base if device == "cuda" else 0
        return took, peak, loss.item(), logits.grad

    fns = {"torch": torch_loss, "workbench": workbench_loss}
    results = {name: {"seconds": [], "peak": 0} for name in fns}
    for name, fn in fns.items():
        once(fn)  # untimed: kernels load, the allocator warms up
    for i in range(repeats):
        order = list(fns) if i % 2 == 0 else list(fns)[::-1]
        for name in order:
            took, peak, _, _ = once(fns[name])
            results[name]["seconds"].append(took)
            results[name]["peak"] = max(results[name]["peak"], peak)
    _, _, loss_t, grad_t = once(torch_loss)
    grad_t = grad_t.clone()
    _, _, loss_w, grad_w = once(workbench_loss)
    t_med = statistics.median(results["torch"]["seconds"])
    w_med = statistics.median(results["workbench"]["seconds"])
    # the gradient beyond the logits' own: torch's grad of the logits is counted in both peaks
    grad_bytes = rows * vocab * logits.element_size()
    return {
        "rows": rows, "vocab": vocab, "device": device, "repeats": repeats,
        "torch_s": t_med, "workbench_s": w_med, "workbench/torch": w_med / t_med,
        "torch_s_all": results["torch"]["seconds"], "workbench_s_all": results["workbench"]["seconds"],
        "torch_peak_mb": (results["torch"]["peak"] - grad_bytes) / 2**20 if device == "cuda" else None,
        "workbench_peak_mb": (results["workbench"]["peak"] - grad_bytes) / 2**20 if device == "cuda" else None,
        "loss_diff": abs(loss_t - loss_w),
        "grad_max_diff": (grad_t.float() - grad_w.float()).abs().max().item(),
    }


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(prog="python -m benchmarks.loss", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--rows", type=int, help="one shape: rows (labelled positions) ...")
    p.add_argument("--vocab", type=int, help="... and vocabulary size")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--out", help="also write the results as JSON to this file")
    a = p.parse_args(argv)
    if (a.rows is None) != (a.vocab is None):
        p.error("give both --rows and --vocab, or neither")
    shapes = [(a.rows, a.vocab)] if a.rows else (GPU_SHAPES if a.device == "cuda" else CPU_SHAPES)
    out = []
    print("| rows x vocabulary | device | torch s | workbench s | workbench/torch | peak MB torch / workbench "
          "| loss diff | max grad diff |")
    print("|---|---|---|---|---|---|---|---|")
    for rows, vocab in shapes:
        r = measure(rows, vocab, a.device, a.repeats)
        out.append(r)
        peak = (f"{r['torch_peak_mb']:,.0f} / {r['workbench_peak_mb']:,.0f}" if r["torch_peak_mb"] is not None
                else "–")
        print(f"| {rows:,} x {vocab:,} | {a.device} | {r['torch_s']:.4f} | {r['workbench_s']:.4f} | "
              f"{r['workbench/torch']:.2f}× | {peak} | {r['loss_diff']:.2e} | {r['grad_max_diff']:.2e} |", flush=True)
    if a.out:
        with open(a.out, "w", encoding="utf-8") as f:
            json.dump({"argv": sys.argv[1:], "results": out}, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
