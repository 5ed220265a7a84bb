"""Checks on a CUDA GPU (skipped without one), and a CPU check of the instrument they use.

On a CPU the speed guards infer "no host synchronisation per step" from the tensor calls the loop
makes. On a GPU, torch can say it directly: with ``torch.cuda.set_sync_debug_mode("error")`` every
operation that makes the host wait for the GPU (a blocking copy either way, ``.item()``, a stream
synchronisation, a ``nonzero``) raises. ``StepSyncGuard`` turns that mode on for the training steps
after which Trainer neither logs, evaluates nor saves (which read values back by design), from the
end of the step before (so the next batch's copy to the GPU is inside) to the end of the step.
"""

from __future__ import annotations

import pytest
import torch

from workbench import finetune

from builders import make_texts, tiny_config

needs_gpu = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


class StepSyncGuard:
    """Sets the sync debug mode (through ``set_mode``) to "error" between the ends of two training
    steps when nothing but training happens in between, and to 0 (off) around logging, evaluation,
    saving and the end of an epoch. The model's own forward pass is transformers' code and is left
    out, as in the CPU guard: its attention-mask helpers ask ``mask.all()`` on the host. Records each
    step it guarded, the mode in force at each optimizer step, and the mode at each outermost
    forward (step, training or not, mode)."""

    def __init__(self, set_mode=None):
        self.set_mode = set_mode or torch.cuda.set_sync_debug_mode
        self.mode: int | str = 0   # in force
        self.want: int | str = 0   # between forwards
        self.depth = 0             # nesting of module forwards
        self.step = 0
        self.guarded: list[int] = []
        self.at_optimizer: dict[int, int | str] = {}
        self.forwards: set[tuple[int, bool, int | str]] = set()
        self._hooks: list = []

    def _apply(self) -> None:
        mode = self.want if self.depth == 0 else 0
        if mode != self.mode:
            self.set_mode(mode)
            self.mode = mode

    def _want(self, mode: int | str) -> None:
        self.want = mode
        self._apply()

    def _enter(self, module, args) -> None:
        if self.depth == 0:
            self.forwards.add((self.step, torch.is_grad_enabled(), self.want))
        self.depth += 1
        self._apply()

    def _leave(self, module, args, output) -> None:
        self.depth -= 1
        self._apply()

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from transformers.trainer_callback import CallbackHandler

        guard = self
        step_begin, step_end = CallbackHandler.on_step_begin, CallbackHandler.on_step_end
        pre_optimizer = CallbackHandler.on_pre_optimizer_step
        epoch_end, train_end = CallbackHandler.on_epoch_end, CallbackHandler.on_train_end

        def on_step_begin(handler, args, state, control):
            guard.step = state.global_step + 1
            return step_begin(handler, args, state, control)

        def on_pre_optimizer_step(handler, args, state, control):
            guard.at_optimizer[guard.step] = guard.mode
            return pre_optimizer(handler, args, state, control)

        def on_step_end(handler, args, state, control):
            control = step_end(handler, args, state, control)  # the callbacks' own step work is guarded too
            busy = control.should_log or control.should_evaluate or control.should_save \
                or control.should_training_stop or state.global_step >= state.max_steps
            guard._want(0 if busy else "error")
            if not busy:
                guard.guarded.append(state.global_step + 1)
            return control

        def on_epoch_end(handler, args, state, control):
            guard._want(0)
            return epoch_end(handler, args, state, control)

        def on_train_end(handler, args, state, control):
            guard._want(0)
            return train_end(handler, args, state, control)

        monkeypatch.setattr(CallbackHandler, "on_step_begin", on_step_begin)
        monkeypatch.setattr(CallbackHandler, "on_pre_optimizer_step", on_pre_optimizer_step)
        monkeypatch.setattr(CallbackHandler, "on_step_end", on_step_end)
        monkeypatch.setattr(CallbackHandler, "on_epoch_end", on_epoch_end)
        monkeypatch.setattr(CallbackHandler, "on_train_end", on_train_end)
        from torch.nn.modules import module

        self._hooks = [module.register_module_forward_pre_hook(self._enter),
                       module.register_module_forward_hook(self._leave, always_call=True)]

    def close(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self.depth = 0
        self._want(0)


def _run(task: str, model, data, tmp_path, guard: StepSyncGuard, monkeypatch, **train):
    cfg = tiny_config(model, data, tmp_path / "runs", epochs=1, logging_steps=5, **train)
    cfg["task"] = task
    guard.install(monkeypatch)
    try:
        return finetune(cfg, progress=False, baseline=False)
    finally:
        guard.close()


def _domain_text(tmp_path, n: int, seed: int):
    path = tmp_path / "domain.txt"
    path.write_text("\n".join(text for text, _ in make_texts(n, seed=seed)) + "\n")
    return path


def test_the_sync_guard_covers_the_quiet_training_steps_and_leaves_logging_and_evaluation_alone(
        tiny_bert, clf_csv, tmp_path, monkeypatch):
    """The instrument of the GPU checks below, run on a CPU with a recording in place of CUDA's mode:
    every step between logging steps runs with the mode at "error" outside the model's forward, no
    evaluation does, and the mode is off once training has ended."""
    modes: list = []
    guard = StepSyncGuard(set_mode=modes.append)
    run = _run("text-classification", tiny_bert, clf_csv, tmp_path, guard, monkeypatch, batch_size=8)
    assert run.status == "completed"
    steps = {step for step, training, _ in guard.forwards if training}
    quiet = set(guard.guarded)
    assert len(quiet) >= 5 and quiet < steps, (sorted(quiet), sorted(steps))
    assert {(step, mode) for step, training, mode in guard.forwards if training and step in quiet} \
        == {(step, "error") for step in quiet}
    # in force at the optimizer step (after the backward pass): "error"; inside forwards: off
    assert {step: guard.at_optimizer[step] for step in quiet} == {step: "error" for step in quiet}
    assert {guard.at_optimizer[step] for step in steps - quiet} == {0}
    # a logging step's own work is guarded up to its logging (every 5th step, and the first); the
    # first step, and each step after a logging step, start unguarded; evaluation runs unguarded
    assert {3, 4, 5, 7} <= quiet and not quiet & {1, 2, 6, 11}
    assert {mode for _, training, mode in guard.forwards if not training} == {0}
    assert modes[-1] == 0 and "error" in modes


@needs_gpu
def test_fused_cross_entropy_on_a_gpu_equals_torchs_and_never_waits_for_the_gpu(monkeypatch):
    import torch.nn.functional as F

    from workbench.engine import sparse

    rows, vocab = 37, 1000
    monkeypatch.setattr(sparse, "DEVICE_CHUNK_BYTES", 8 * 4 * vocab)  # 8 rows per chunk: 5 chunks
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(rows, vocab, generator=gen) * 4).to("cuda", torch.bfloat16)
    target = torch.randint(0, vocab, (rows,), generator=gen).to("cuda")
    theirs = logits.clone().requires_grad_()
    want = F.cross_entropy(theirs.float(), target, reduction="sum") / 29
    want.backward()
    for divisor in (29, torch.tensor(29.0, device="cuda")):
        mine = logits.clone().requires_grad_()
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            loss = sparse.cross_entropy(mine, target, divisor)
            loss.backward()
        finally:
            torch.cuda.set_sync_debug_mode(0)
        assert type(loss.grad_fn).__name__.startswith("FusedBackward")
        assert torch.allclose(loss, want, rtol=1e-5)
        assert mine.grad.dtype == torch.bfloat16
        assert torch.allclose(mine.grad.float(), theirs.grad.float(), rtol=2 ** -7, atol=1e-9)


@needs_gpu
@pytest.mark.parametrize("task", ["text-classification", "masked-lm", "causal-lm"])
def test_gpu_training_steps_never_make_the_host_wait_for_the_gpu(task, tiny_bert, tiny_gpt2, clf_csv, tmp_path,
                                                                monkeypatch):
    """Between logging steps nothing in a training step reads a value back from the GPU or copies to
    it with a blocking copy: the loader's copies, the forward, the fused language-model loss over
    the positions the collator listed, the backward, clipping, the optimizer and the callbacks."""
    model, data = {"text-classification": (tiny_bert, clf_csv),
                   "masked-lm": (tiny_bert, _domain_text(tmp_path, 300, seed=5)),
                   "causal-lm": (tiny_gpt2, _domain_text(tmp_path, 200, seed=3))}[task]
    guard = StepSyncGuard()
    run = _run(task, model, data, tmp_path, guard, monkeypatch, batch_size=8,
               max_length=64 if task != "causal-lm" else 32)
    assert run.status == "completed"
    assert run.info.get("device") == "cuda" and run.info.get("precision") in ("bf16", "fp16")
    assert len(guard.guarded) >= 3, guard.guarded
