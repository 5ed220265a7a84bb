"""Deterministic speed guards: what makes the defaults fast, checked without a stopwatch.

A regression in any of these shows up as a count, not as a flaky timing: the share of padding in
the batches the core trains on, host synchronisations per training step, the number of optimizer
steps, the precision the matmuls actually run in, and the optimizer implementation.
"""

from __future__ import annotations

import csv
import math
import random

import numpy as np
import pytest
import torch
from torch.overrides import TorchFunctionMode

from workbench import finetune
from workbench.engine.device import cpu_has_fast_bf16
from workbench.events import Step

from builders import FILLER, TOPICS, make_texts, tiny_config

# Tensor methods that copy a device value to the host: each one stalls a GPU pipeline.
SYNC_METHODS = {"item", "tolist", "__bool__", "__float__", "__int__", "__index__", "cpu", "numpy", "nonzero"}
N_TRAIN, BATCH = 320, 16


def long_tailed_rows(n: int, seed: int = 1) -> list[tuple[str, str]]:
    """Texts whose word counts follow a long-tailed (log-normal) distribution, 3 to 120 words."""
    rng = random.Random(seed)
    labels = list(TOPICS)
    rows = []
    for i in range(n):
        label = labels[i % len(labels)]
        kws = TOPICS[label].split()
        length = int(min(120, max(3, rng.lognormvariate(2.8, 0.8))))
        words = [rng.choice(kws) if rng.random() < 0.4 else rng.choice(FILLER) for _ in range(length)]
        rows.append((" ".join(words + [str(i)]), label))
    return rows


class SyncCounter(TorchFunctionMode):
    """Counts host-synchronising tensor calls per training step made by the training loop: the data
    collator (host tensors) and the model's own forward (transformers' code) are counted apart."""

    def __init__(self):
        super().__init__()
        self.step = 0
        self.in_collate = False
        self.in_model = False
        self.per_step: dict[int, list[str]] = {}
        self.in_forward: dict[int, list[str]] = {}
        self.loop_calls: dict[int, list[str]] = {}  # every torch call of the loop around the model

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if not (self.in_collate or self.in_model):
            self.loop_calls.setdefault(self.step, []).append(name)
        if name in SYNC_METHODS and not self.in_collate:
            (self.in_forward if self.in_model else self.per_step).setdefault(self.step, []).append(name)
        return func(*args, **(kwargs or {}))


class Probe:
    """Instruments one run: batches as collated, syncs per step, matmul dtypes, the optimizer."""

    def __init__(self):
        self.batches: list[list[int]] = []  # the real length of each row, per collated batch
        self.widths: list[int] = []
        self.counter = SyncCounter()
        self.linear_dtypes: set = set()
        self.output_dtypes: set = set()
        self.optimizers: list = []
        self.steps: list[int] = []

    def sink(self, event) -> None:
        if isinstance(event, Step) and event.loss is None:  # one progress event per optimizer step
            self.steps.append(event.step)
            self.counter.step = event.step


@pytest.fixture(scope="module")
def probed_run(tiny_bert, tmp_path_factory):
    """A default classification run on long-tailed texts, with every probe attached."""
    from transformers import Trainer

    from workbench.tasks.text_classification import TextClassification

    tmp = tmp_path_factory.mktemp("speed")
    data = tmp / "long_tailed.csv"
    with open(data, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("text", "label"), *long_tailed_rows(N_TRAIN + 80)])
    probe = Probe()
    mp = pytest.MonkeyPatch()
    original_collator = TextClassification.collator

    def counting_collator(self, tokenizer):
        collate = original_collator(self, tokenizer)

        def wrapped(features):
            probe.counter.in_collate = True
            try:
                batch = collate(features)
                probe.batches.append(batch["attention_mask"].sum(dim=1).tolist())
                probe.widths.append(int(batch["input_ids"].shape[1]))
            finally:
                probe.counter.in_collate = False
            return batch

        return wrapped

    original_create = Trainer.create_optimizer

    def create_optimizer(self, *a, **kw):
        opt = original_create(self, *a, **kw)
        probe.optimizers.append(opt)
        return opt

    def load_model(self, _original=TextClassification.load_model):
        model = _original(self)
        model.register_forward_pre_hook(lambda m, a: setattr(probe.counter, "in_model", True))
        def after_forward(module, args, output):
            probe.counter.in_model = False
            if torch.is_grad_enabled():
                probe.output_dtypes.add(output.logits.dtype)

        model.register_forward_hook(after_forward)
        for module in model.modules():
            if isinstance(module, torch.nn.Linear):
                module.register_forward_hook(
                    lambda m, i, o: probe.linear_dtypes.add(o.dtype) if torch.is_grad_enabled() else None)
        return model

    mp.setattr(TextClassification, "collator", counting_collator)
    mp.setattr(TextClassification, "load_model", load_model)
    mp.setattr(Trainer, "create_optimizer", create_optimizer)
    cfg = tiny_config(tiny_bert, data, tmp / "runs", epochs=1, batch_size=BATCH, logging_steps=10, max_length=128)
    cfg["data"].update(validation_size=40 / (N_TRAIN + 80), test_size=40 / (N_TRAIN + 80))
    try:
        with probe.counter:
            run = finetune(cfg, progress=False, baseline=False, sinks=[probe.sink])
    finally:
        mp.undo()
    return run, probe


def test_length_grouping_removes_most_padding(probed_run):
    _, probe = probed_run
    steps = math.ceil(N_TRAIN / BATCH)
    rows, widths = probe.batches[:steps], probe.widths[:steps]
    real = sum(map(sum, rows))
    grouped_pad = 1 - real / sum(len(r) * w for r, w in zip(rows, widths))
    # the same texts in random batches, each padded to its longest: the cost without grouping
    lengths = np.array([n for r in rows for n in r])
    order = np.random.default_rng(0).permutation(len(lengths))
    random_pad = 1 - real / sum(len(b) * lengths[b].max() for b in np.array_split(order, steps))
    assert len(lengths) == N_TRAIN
    assert random_pad > 0.35, "the data must be long-tailed for this guard to mean anything"
    # expected on this data: ~22 % with workbench's sampler, ~34 % with Trainer's LengthGroupedSampler,
    # ~63 % in random batches
    assert grouped_pad < 0.27, f"{grouped_pad:.0%} of the training tokens are padding (random batches: {random_pad:.0%})"


def test_one_optimizer_step_per_batch(probed_run):
    _, probe = probed_run
    assert probe.steps == list(range(1, math.ceil(N_TRAIN / BATCH) + 1))


def test_no_host_sync_between_logging_steps(probed_run):
    run, probe = probed_run
    logging_steps = 10
    quiet = {s: calls for s, calls in probe.counter.per_step.items()
             if 1 < s < len(probe.steps) and s % logging_steps != 0}
    # a step's syncs are counted from the end of the previous step, so a logging step's own
    # reads show up under the step before it
    noisy = {s: c for s, c in quiet.items() if (s + 1) % logging_steps != 0}
    assert not noisy, f"host syncs inside training steps: {noisy}"
    assert any(probe.counter.per_step.get(s) for s in range(1, len(probe.steps) + 1)), \
        "the counter saw no logging-step reads at all; it is not attached"


# torch calls that read or set attributes, mark profiler regions or move a tensor to the device it
# is on; every other call of the loop around the model launches work
BOOKKEEPING = {"__get__", "__set__", "is_complex", "_set_grad_enabled", "numel", "detach", "to",
               "_record_function_enter_new", "_record_function_exit._RecordFunction"}


def test_the_loop_around_the_model_launches_the_same_few_operations_every_step(probed_run):
    _, probe = probed_run
    logging_steps = 10
    quiet = [s for s in range(2, len(probe.steps)) if s % logging_steps not in (0, logging_steps - 1)]
    launched = {s: sorted(n for n in probe.counter.loop_calls.get(s, []) if n not in BOOKKEEPING) for s in quiet}
    first = launched[quiet[0]]
    assert all(ops == first for ops in launched.values())
    # backward; the loss scaled for accumulation (by Trainer and by accelerate) and added to the
    # running total; clipping: one norm over all gradients, the coefficient, one scaling; fused
    # AdamW for the two parameter groups (with and without weight decay) and their step counters
    assert "backward" in first and first.count("_fused_adamw_") == 2, first
    assert len(first) <= 15, f"{len(first)} operations per step around the model: {first}"
    assert "ne" not in first and "sum" not in first, "labelled items are counted on every step"


def test_matmuls_run_in_bf16_where_the_cpu_has_it(probed_run):
    run, probe = probed_run
    expected = torch.bfloat16 if cpu_has_fast_bf16() else torch.float32
    assert run.info["precision"] == ("bf16" if expected == torch.bfloat16 else "fp32")
    assert probe.linear_dtypes == {expected}
    # and nothing copies the outputs back to fp32 after each forward (a whole logits tensor for an LM)
    assert probe.output_dtypes == {expected}


def test_fused_adamw(probed_run):
    _, probe = probed_run
    (opt,) = probe.optimizers
    inner = getattr(opt, "optimizer", opt)
    assert isinstance(inner, torch.optim.AdamW) and inner.defaults.get("fused") is True


def test_evaluation_batches_are_larger_than_training_batches(tiny_bert, tmp_path):
    from types import SimpleNamespace

    from workbench.config import resolve
    from workbench.engine.trainer import training_arguments
    from workbench.tasks import get

    cfg = resolve(inline=tiny_config(tiny_bert, "bbc-news", tmp_path))
    args = training_arguments(cfg, get(cfg.task)(cfg), SimpleNamespace(checkpoints=tmp_path), "cpu", "fp32", True)
    assert args.per_device_eval_batch_size == 4 * args.per_device_train_batch_size
    assert args.logging_nan_inf_filter is False and args.disable_tqdm is True
    assert args.train_sampling_strategy == "group_by_length" and args.dataloader_num_workers == 0


@pytest.mark.filterwarnings("ignore:'pin_memory' argument is set as true")
def test_on_a_gpu_batches_reach_the_device_without_blocking_the_host(tiny_bert, tmp_path):
    """A blocking host-to-GPU copy waits for every kernel already queued, so the host could not
    prepare the next step while the GPU computes. The GPU arguments ask for pinned memory and
    non-blocking copies, and Trainer's own loader then copies every tensor with ``non_blocking``."""
    from types import SimpleNamespace

    from datasets import Dataset

    from workbench.config import resolve
    from workbench.engine.trainer import trainer_class, training_arguments
    from workbench.tasks import get

    cfg = resolve(inline=tiny_config(tiny_bert, "bbc-news", tmp_path))
    task = get(cfg.task)(cfg)
    run_dir = SimpleNamespace(checkpoints=tmp_path)
    cpu = training_arguments(cfg, task, run_dir, "cpu", "fp32", True)
    assert cpu.accelerator_config.non_blocking is False and cpu.dataloader_pin_memory is False
    gpu = training_arguments(cfg, task, run_dir, "cuda", "fp32", True)
    assert gpu.accelerator_config.non_blocking is True and gpu.dataloader_pin_memory is True
    assert gpu.dataloader_num_workers == 2 and gpu.dataloader_persistent_workers is True

    # the same arguments through Trainer's loader (on this machine's CPU; no workers needed here)
    gpu.dataloader_num_workers, gpu.dataloader_persistent_workers, gpu.remove_unused_columns = 0, False, False
    model = torch.nn.Linear(2, 2)
    data = Dataset.from_dict({"input_ids": [[1, 2]] * 4, "labels": [0, 1] * 2})
    trainer = trainer_class()(model=model, args=gpu, train_dataset=data, eval_dataset=data,
                              data_collator=lambda rows: {k: torch.tensor([r[k] for r in rows]) for k in rows[0]})
    calls = []

    class ToCalls(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if getattr(func, "__name__", "") == "to":
                calls.append(dict(kwargs or {}))
            return func(*args, **(kwargs or {}))

    with ToCalls():
        next(iter(trainer.get_train_dataloader()))
    assert calls and all(c.get("non_blocking") is True for c in calls), calls


def test_grouped_batches_cover_every_row_once_and_keep_batches_aligned():
    from workbench.engine.batching import grouped_batches

    rng = np.random.default_rng(3)
    for n, bs in ((1, 4), (7, 4), (100, 16), (1000, 8), (2003, 16)):
        lengths = rng.integers(1, 300, n).tolist()
        torch.manual_seed(0)
        batches = grouped_batches(lengths, bs)
        assert sorted(i for b in batches for i in b) == list(range(n))
        assert all(len(b) == bs for b in batches[:-1]) and 0 < len(batches[-1]) <= bs
        assert max(lengths[i] for i in batches[0]) == max(lengths)  # the longest batch first
    torch.manual_seed(0)
    again = grouped_batches(lengths, bs)
    torch.manual_seed(0)
    assert grouped_batches(lengths, bs) == again  # reproducible from the seed
    assert grouped_batches(lengths, bs) != again  # and a new order for the next epoch


def test_collators_pad_to_a_multiple_of_8_when_the_engine_asks(tiny_bert):
    """On a GPU the engine sets ``pad_to_multiple_of = 8`` (tensor-core friendly shapes); on a CPU
    batches are padded to their longest text only."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    from workbench.tasks.causal_lm import CausalLM
    from workbench.tasks.masked_lm import MaskedLM
    from workbench.tasks.text_classification import TextClassification
    from workbench.tasks.token_classification import TokenClassification

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    ids = [tok("a short text")["input_ids"], tok("a somewhat longer text with a few more words")["input_ids"]]
    longest = max(len(x) for x in ids)
    assert longest % 8, "the test needs a length that is not a multiple of 8"
    features = {
        TextClassification: [{"input_ids": x, "label": 0} for x in ids],
        TokenClassification: [{"input_ids": x, "labels": [0] * len(x)} for x in ids],
        CausalLM: [{"input_ids": x, "labels": list(x)} for x in ids],
        MaskedLM: [{"input_ids": x, "attention_mask": [1] * len(x), "special_tokens_mask": [0] * len(x)}
                   for x in ids],
    }
    options = {"mlm_probability": 0.15, "whole_word_mask": False}
    for cls, feats in features.items():
        for multiple, width in ((None, longest), (8, -(-longest // 8) * 8)):
            task = SimpleNamespace(pad_to_multiple_of=multiple, options=options)
            batch = cls.collator(task, tok)([dict(f) for f in feats])
            assert batch["input_ids"].shape[1] == width, (cls.__name__, multiple)
            if "labels" in feats[0]:
                assert batch["labels"].shape[1] == width
    assert TextClassification.pad_to_multiple_of is None  # the default, kept on a CPU


def graph_nodes(tensor) -> set[str]:
    """The names of the autograd nodes ``tensor`` was computed through."""
    seen, todo = {}, [tensor.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and id(node) not in seen:
            seen[id(node)] = type(node).__name__
            todo.extend(n for n, _ in node.next_functions)
    return set(seen.values())


def sparse_matches_dense_training(model, batch, mode: str, scored: int, tmp_path):
    """One training loss and backward through the model's own full logits and one through workbench's
    Trainer with ``sparse_prediction = mode``: the projection sees every position, then only the
    ``scored`` ones, with equal loss and gradients. Returns the Trainer."""
    from transformers import TrainingArguments

    from workbench.engine.trainer import trainer_class

    seen: list[tuple] = []
    model.get_output_embeddings().register_forward_hook(lambda m, a, out: seen.append(tuple(a[0].shape)))
    model.train()
    dense = model(**batch).loss
    dense.backward()
    dense_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad(set_to_none=True)
    trainer = trainer_class()(model=model, args=TrainingArguments(output_dir=str(tmp_path), use_cpu=True,
                                                                  report_to="none"))
    trainer.sparse_prediction = mode
    sparse = trainer.compute_loss(model, dict(batch), num_items_in_batch=torch.tensor(scored))
    sparse.backward()
    assert seen[0][:-1] == tuple(batch["input_ids"].shape)  # the model's own loss: every position
    assert seen[1][:-1] == (scored,)  # workbench's: the scored ones only
    assert "FusedBackward" in graph_nodes(sparse)  # through the fused cross-entropy
    assert torch.allclose(sparse, dense, rtol=1e-5, atol=1e-6)
    for p, g in zip(model.parameters(), dense_grads):
        assert torch.allclose(p.grad, g, rtol=1e-4, atol=1e-6)
    return trainer


def test_masked_lm_trains_on_the_masked_positions_logits_only(tiny_bert, tmp_path):
    """Masked-LM training and evaluation project only the labelled (masked) positions onto the
    vocabulary; loss, gradients and per-token scores are those of the model's own full logits."""
    from transformers import AutoModelForMaskedLM, AutoTokenizer
    from workbench.tasks.masked_lm import MaskingCollator

    tok = AutoTokenizer.from_pretrained(tiny_bert)
    torch.manual_seed(0)  # dropout off: the two losses must see the same network
    model = AutoModelForMaskedLM.from_pretrained(tiny_bert, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    rows = [tok(" ".join(random.Random(i).choices(FILLER, k=8 + 5 * i)), return_special_tokens_mask=True)
            for i in range(4)]
    batch = MaskingCollator(tok, 0.3, False, seed=1)([dict(r) for r in rows])
    labelled = int((batch["labels"] != -100).sum())
    assert 0 < labelled < batch["labels"].numel() // 2

    trainer = sparse_matches_dense_training(model, batch, "masked", labelled, tmp_path)

    # evaluation: the same loss, and the same per-token scores once scattered back to positions
    from workbench.tasks._lm import token_losses

    model.eval()
    with torch.no_grad():
        full = model(**batch)
        loss, out = trainer.compute_loss(model, dict(batch), return_outputs=True)
    assert out.logits.shape[0] == labelled
    assert torch.allclose(loss, full.loss, rtol=1e-5, atol=1e-6)
    mask = batch["labels"] != -100
    for got, want in zip(token_losses(out.logits, batch["labels"], causal=False),
                         token_losses(full.logits, batch["labels"], causal=False)):
        assert torch.allclose(got[mask].float(), want[mask].float(), rtol=1e-5, atol=1e-5)


def train_recording_listed_positions(monkeypatch, tmp_path, task_module, task: str, model, texts: int, seed: int,
                                     batch_size: int, max_length: int) -> tuple[list[dict], list[bool]]:
    """Trains ``task`` on ``texts`` generated lines and records, for each training step, whether the
    loss received the positions the loader's collator listed (equal to what the labels give), how
    many rows the fused cross-entropy took with a gradient, and the batch's labelled and total
    positions; for each evaluation batch, whether the task's per-token scores came placed with the
    listed positions and computed with the loss (equal to what the logits give)."""
    from workbench.engine import sparse

    steps: list[dict] = []
    scored: list[bool] = []
    rows: list[int] = []
    original, fused, scoring = sparse.sparse_lm_loss, sparse.cross_entropy, task_module.token_losses

    def recording(trainer, model, inputs, num_items_in_batch=None, causal=False, index=None, **kw):
        if not model.training:
            return original(trainer, model, inputs, num_items_in_batch, causal, index, **kw)
        want = sparse.labelled_index(sparse.predicted_targets(inputs["labels"], causal))
        rows.clear()
        out = original(trainer, model, inputs, num_items_in_batch, causal, index, **kw)
        steps.append({"listed": index is not None and torch.equal(index, want), "fused rows": list(rows),
                      "labelled": want.numel(), "positions": inputs["labels"].numel()})
        return out

    def recording_loss(logits, target, divisor):
        if logits.requires_grad:
            rows.append(logits.shape[0])
        return fused(logits, target, divisor)

    def recording_scores(logits, labels, causal, index=None, scores=None):
        want = sparse.labelled_index(sparse.predicted_targets(labels, causal))
        target = sparse.predicted_targets(labels, causal).reshape(-1).index_select(0, want)
        recomputed = sparse.token_nll(logits, target, top1=True)
        scored.append(index is not None and torch.equal(index, want) and logits.shape[0] == want.numel()
                      and scores is not None and all(torch.equal(a, b) for a, b in zip(scores, recomputed)))
        return scoring(logits, labels, causal, index, scores)

    monkeypatch.setattr(sparse, "sparse_lm_loss", recording)
    monkeypatch.setattr(sparse, "cross_entropy", recording_loss)
    monkeypatch.setattr(task_module, "token_losses", recording_scores)
    data = tmp_path / "domain.txt"
    data.write_text("\n".join(text for text, _ in make_texts(texts, seed=seed)) + "\n")
    cfg = {"task": task, "model": str(model), "runs_dir": str(tmp_path / "runs"), "data": {"train": str(data)},
           "train": {"epochs": 1, "batch_size": batch_size, "max_length": max_length, "logging_steps": 5}}
    finetune(cfg, progress=False, baseline=False)
    return steps, scored


def test_masked_lm_steps_and_evaluation_take_the_labelled_positions_from_the_collator(tiny_bert, tmp_path,
                                                                                     monkeypatch):
    """Listing the labelled positions from labels already on a GPU (a ``nonzero``) would make the
    host wait for every queued kernel at the start of each step: the loader's collator lists them
    on the host, and every training step's loss receives them, equal to what the labels give; each
    evaluation batch's per-token scores are placed with them too, computed once, with the loss."""
    from workbench.tasks import masked_lm

    steps, scored = train_recording_listed_positions(monkeypatch, tmp_path, masked_lm, "masked-lm", tiny_bert,
                                                     texts=300, seed=5, batch_size=16, max_length=64)
    assert len(steps) >= 4 and all(s["listed"] and s["fused rows"] == [s["labelled"]] for s in steps), steps
    assert len(scored) >= 2 and all(scored), scored


def test_prompt_response_causal_lm_scores_the_response_positions_logits_only(tiny_gpt2, tmp_path):
    """With the prompt unlabelled, only the positions that predict a response token are projected
    onto the vocabulary; loss, gradients and per-token scores equal the model's own."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from workbench.tasks._lm import token_losses

    tok = AutoTokenizer.from_pretrained(tiny_gpt2)
    model = AutoModelForCausalLM.from_pretrained(tiny_gpt2, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    rows, labels = [], []
    for i in range(3):  # prompts of 6-14 tokens, responses of 3-5, right-padded
        prompt = tok(" ".join(random.Random(i).choices(FILLER, k=6 + 4 * i)))["input_ids"]
        response = tok(" ".join(random.Random(10 + i).choices(FILLER, k=3 + i)))["input_ids"]
        rows.append(prompt + response)
        labels.append([-100] * len(prompt) + response)
    width = max(map(len, rows))
    batch = {"input_ids": torch.tensor([r + [tok.pad_token_id] * (width - len(r)) for r in rows]),
             "attention_mask": torch.tensor([[1] * len(r) + [0] * (width - len(r)) for r in rows]),
             "labels": torch.tensor([lab + [-100] * (width - len(lab)) for lab in labels])}
    scored = int((batch["labels"][:, 1:] != -100).sum())

    trainer = sparse_matches_dense_training(model, batch, "causal", scored, tmp_path)
    model.eval()
    with torch.no_grad():
        full = model(**batch)
        loss, out = trainer.compute_loss(model, dict(batch), return_outputs=True)
    assert out.logits.shape[0] == scored and torch.allclose(loss, full.loss, rtol=1e-5, atol=1e-6)
    # the same with the positions listed by the loader's collator (on the host) instead
    from workbench.engine.sparse import INDEX_KEY, IndexingCollator

    listed = IndexingCollator(lambda features: dict(batch), causal=True)([])
    assert listed[INDEX_KEY].numel() == scored
    with torch.no_grad():
        loss_listed, out_listed = trainer.compute_loss(model, listed, return_outputs=True)
    assert torch.equal(loss_listed, loss) and torch.equal(out_listed.logits, out.logits)
    mask = torch.zeros_like(batch["labels"], dtype=torch.bool)
    mask[:, 1:] = batch["labels"][:, 1:] != -100
    for got, want in zip(token_losses(out.logits, batch["labels"], causal=True),
                         token_losses(full.logits, batch["labels"], causal=True)):
        assert torch.allclose(got[mask].float(), want[mask].float(), rtol=1e-5, atol=1e-5)


def test_packed_causal_lm_training_takes_the_fused_loss_over_every_predicting_position(tiny_gpt2, tmp_path,
                                                                                        monkeypatch):
    """Packed text is labelled almost everywhere: each training step's loss goes through the fused
    cross-entropy over every position that predicts a labelled token, listed by the loader's
    collator; evaluation scores those positions with the same list, computed with the loss."""
    from workbench.tasks import causal_lm

    steps, scored = train_recording_listed_positions(monkeypatch, tmp_path, causal_lm, "causal-lm", tiny_gpt2,
                                                     texts=200, seed=3, batch_size=8, max_length=32)
    assert len(steps) >= 4 and all(s["listed"] and s["fused rows"] == [s["labelled"]]
                                   and s["labelled"] >= 0.75 * s["positions"] for s in steps), steps
    assert len(scored) >= 2 and all(scored), scored


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32])
def test_fused_cross_entropy_gives_torchs_loss_and_gradient_over_several_chunks(dtype, monkeypatch):
    """The language-model loss computes its gradient chunk by chunk in the forward pass: loss and
    gradient equal torch's fp32 cross-entropy's (rows not a multiple of the chunk, a divisor given
    as a tensor, an incoming gradient other than 1), and a second backward is refused."""
    import torch.nn.functional as F

    from workbench.engine import sparse

    rows, vocab = 37, 1000
    monkeypatch.setitem(sparse.CHUNK_BYTES, "cpu", 8 * 4 * vocab)  # 8 rows per chunk: 5 chunks
    torch.manual_seed(0)
    logits = (torch.randn(rows, vocab) * 4).to(dtype)
    target = torch.randint(0, vocab, (rows,))
    mine = logits.clone().requires_grad_()
    theirs = logits.clone().requires_grad_()
    loss = sparse.cross_entropy(mine, target, torch.tensor(29))
    want = F.cross_entropy(theirs.float(), target, reduction="sum") / 29
    assert type(loss.grad_fn).__name__.startswith("FusedBackward")
    (loss * 3).backward(retain_graph=True)

    class Calls(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            names.append(getattr(func, "__name__", ""))
            return func(*args, **(kwargs or {}))

    # with the divisor a number (one batch per step), no tensor is made from it: on a GPU that would
    # be a blocking copy; nor is anything read back to the host
    names: list[str] = []
    with Calls():
        sparse.cross_entropy(logits.clone().requires_grad_(), target, 29).backward()
    assert names and not {"tensor", "as_tensor", "scalar_tensor"} & set(names) and not SYNC_METHODS & set(names), names
    (want * 3).backward()
    assert torch.allclose(loss, want, rtol=1e-6)
    assert mine.grad.dtype == dtype
    tolerance = 2 ** -7 if dtype == torch.bfloat16 else 1e-6  # one rounding of the logits' dtype
    assert torch.allclose(mine.grad.float(), theirs.grad.float(), rtol=tolerance, atol=1e-9)
    assert (mine.grad.float().sum(1) * 29 / 3).abs().max() < 1e-2  # each row's softmax minus one-hot
    with pytest.raises(RuntimeError, match="backward once"):
        loss.backward()
    # without a gradient (evaluation), chunk by chunk without an fp32 copy of the whole array
    with torch.no_grad():
        assert torch.allclose(sparse.cross_entropy(logits, target, rows), F.cross_entropy(logits.float(), target))
    for kind in (dtype, torch.float16):
        assert torch.allclose(sparse.token_nll(logits.to(kind), target),
                              F.cross_entropy(logits.to(kind).float(), target, reduction="none"), rtol=1e-6, atol=1e-6)
    # with fp16 logits, whose gradient needs the loss scale before it is rounded, torch's own
    half = logits.half().requires_grad_()
    assert type(sparse.cross_entropy(half, target, rows).grad_fn).__name__ == "DivBackward0"


def test_fast_cpu_bernoulli_keeps_dropouts_rate_scaling_gradient_and_seed():
    import torch.nn.functional as F

    from workbench.engine import dropout
    from workbench.engine.dropout import fast_bernoulli

    x = torch.ones(64, 128, 48, requires_grad=True)
    with fast_bernoulli():
        torch.manual_seed(3)
        y = F.dropout(x, 0.1, training=True)
        again = F.dropout(x, 0.1, training=True)
        torch.manual_seed(3)
        same = F.dropout(x, 0.1, training=True)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.9) < 0.005
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.9))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # d(sum)/dx = mask x scale
    assert torch.equal(same, y)  # the mask comes from torch's seeded generator
    assert not torch.equal(again, y)  # and changes from call to call
    small = torch.ones(dropout.NATIVE_BELOW - 1)  # small masks: torch's own draw, which is quicker there
    torch.manual_seed(5)
    native = F.dropout(small, 0.1, training=True)
    with fast_bernoulli():
        torch.manual_seed(5)
        assert torch.equal(F.dropout(small, 0.1, training=True), native)


def test_fast_cpu_bernoulli_edges_probability_one_and_zero_dtypes_and_strided_masks():
    """p within 2**-17 of 1 keeps every element (a 16-bit threshold would wrap to 'none'), p = 0 keeps
    none, half-precision and transposed (non-contiguous) tensors get the right rate in place."""
    import torch.nn.functional as F

    from workbench.engine import dropout
    from workbench.engine.dropout import fast_bernoulli

    n = 4 * dropout.NATIVE_BELOW
    with fast_bernoulli():
        for p in (1.0, 1 - 1e-7):
            assert torch.equal(torch.zeros(n).bernoulli_(p), torch.ones(n)), p
        assert torch.equal(torch.ones(n).bernoulli_(0.0), torch.zeros(n))
        x = torch.ones(n)
        assert torch.allclose(F.dropout(x, 1e-7, training=True), x)  # a tiny rate keeps the activations
        half = torch.empty(n, dtype=torch.bfloat16).bernoulli_(0.25)
        assert half.dtype == torch.bfloat16 and set(half.unique().tolist()) == {0.0, 1.0}
        assert abs(half.float().mean().item() - 0.25) < 0.02
        strided = torch.full((64, n // 32), 7.0).t()
        assert not strided.is_contiguous()
        strided.bernoulli_(0.75)
        assert set(strided.unique().tolist()) == {0.0, 1.0}
        assert abs(strided.mean().item() - 0.75) < 0.02
        with pytest.raises(RuntimeError):
            torch.empty(n).bernoulli_(1.5)  # torch's own check of p still applies


def test_fast_cpu_bernoulli_is_for_the_training_thread_and_only_while_open():
    import threading

    from workbench.engine import dropout
    from workbench.engine.dropout import fast_bernoulli

    big = torch.empty(2 * dropout.NATIVE_BELOW)

    def draw():
        torch.manual_seed(7)
        return big.clone().bernoulli_(0.3)

    expected = draw()  # torch's own
    got = {}
    with fast_bernoulli():
        mine = draw()
        other = threading.Thread(target=lambda: got.update(mask=draw()))
        other.start()
        other.join()
    assert not torch.equal(mine, expected)  # this thread: the fast generator
    assert torch.equal(got["mask"], expected)  # another thread: torch's own numbers
    assert torch.equal(draw(), expected)  # and torch's own kernel again once closed


def test_torchs_one_number_per_element_draw_is_recognised_by_its_numbers(monkeypatch):
    """The check asks torch, not the processor's vendor: this build's scalar-p draw matches the
    per-element draw, and a draw that gives other numbers (as MKL's generator does) is called fast;
    torch's global generator is not advanced by asking."""
    from workbench.engine import dropout

    per_element = torch.equal(
        torch.empty(1000).bernoulli_(0.3, generator=torch.Generator().manual_seed(7)),
        torch.empty(1000).bernoulli_(torch.tensor(0.3, dtype=torch.float64), generator=torch.Generator().manual_seed(7)))
    dropout.slow_cpu_bernoulli.cache_clear()
    state = torch.get_rng_state()
    try:
        assert dropout.slow_cpu_bernoulli() is per_element
        assert torch.equal(torch.get_rng_state(), state)
        real = torch.Tensor.bernoulli_

        def vectorised(self, p=0.5, *, generator=None):  # a float p drawn from another stream
            if isinstance(p, float):
                return self.copy_(torch.rand(self.shape, generator=generator) < p)
            return real(self, p, generator=generator)

        monkeypatch.setattr(torch.Tensor, "bernoulli_", vectorised)
        dropout.slow_cpu_bernoulli.cache_clear()
        assert dropout.slow_cpu_bernoulli() is False
    finally:
        monkeypatch.undo()
        dropout.slow_cpu_bernoulli.cache_clear()


def test_cpu_training_draws_dropout_masks_fast_only_where_torchs_generator_is_slow(tiny_bert, clf_csv, tmp_path,
                                                                                   monkeypatch):
    """Where torch draws one number per mask element, every dropout mask of a training forward (hidden
    states and the attention dropout inside SDPA) comes from the fast generator and evaluation draws
    none; where torch's build uses MKL's vectorised generator, torch's own stays."""
    from workbench.engine import dropout

    calls = []
    real = dropout.bernoulli_into
    monkeypatch.setattr(dropout, "bernoulli_into", lambda out, p: calls.append(tuple(out.shape)) or real(out, p))
    monkeypatch.setattr(dropout, "NATIVE_BELOW", 0)  # the tiny model's masks are all small
    monkeypatch.setattr(dropout, "FAST_FROM_BATCH_WIDTH", 0)
    replaced = []
    real_library = torch.library.Library

    def library(*args, **kwargs):
        replaced.append(args)
        return real_library(*args, **kwargs)

    monkeypatch.setattr(torch.library, "Library", library)
    for fast in (True, False):
        calls.clear()
        monkeypatch.setattr(dropout, "slow_cpu_bernoulli", lambda slow=fast: slow)
        cfg = tiny_config(tiny_bert, clf_csv, tmp_path / str(fast), epochs=1, max_steps=2, batch_size=8)
        cfg["baseline"] = False
        finetune(cfg, progress=False)
        if not fast:
            assert calls == []
            continue
        # per step: embeddings, 2 layers x (attention probabilities, attention output, feed-forward), classifier
        assert len(calls) == 2 * 8, calls
        assert replaced == [("aten", "IMPL")]  # the kernel is replaced once for the run, not per forward
        assert sum(len(s) == 4 for s in calls) == 2 * 2  # the B x heads x T x T attention masks


def test_a_narrow_models_run_keeps_torchs_own_dropout_kernel(tiny_bert, clf_csv, tmp_path, monkeypatch):
    """Batch x hidden width under FAST_FROM_BATCH_WIDTH: masks are small, so the kernel stays torch's
    (a replaced kernel puts a Python call in front of every mask); at or over it, it is replaced."""
    from transformers import AutoConfig

    from workbench.engine import dropout

    assert dropout.fast_masks_pay(16, 384) and not dropout.fast_masks_pay(8, 32)  # MiniLM; the toy BERT
    width = AutoConfig.from_pretrained(tiny_bert).hidden_size
    monkeypatch.setattr(dropout, "slow_cpu_bernoulli", lambda: True)
    replaced = []
    real_library = torch.library.Library
    monkeypatch.setattr(torch.library, "Library", lambda *a, **kw: replaced.append(a) or real_library(*a, **kw))
    for limit, expected in ((8 * width + 1, []), (8 * width, [("aten", "IMPL")])):
        replaced.clear()
        monkeypatch.setattr(dropout, "FAST_FROM_BATCH_WIDTH", limit)
        cfg = tiny_config(tiny_bert, clf_csv, tmp_path / str(limit), epochs=1, max_steps=2, batch_size=8)
        cfg["baseline"] = False
        finetune(cfg, progress=False)
        assert replaced == expected, (limit, replaced)


@pytest.mark.parametrize("precision", ["bf16", "fp32"])
def test_cpu_bf16_training_forwards_take_eager_attention_and_evaluation_sdpa(precision, tiny_bert, clf_csv, tmp_path,
                                                                            monkeypatch):
    """With attention dropout, torch's CPU SDPA takes its math path, which under bf16 upcasts to fp32:
    bf16 training forwards run transformers' eager attention instead, evaluation forwards SDPA's
    fused kernel, and the model is left with SDPA after training. fp32 runs keep SDPA throughout."""
    from transformers.models.bert import modeling_bert

    from workbench.tasks.text_classification import TextClassification

    if precision == "bf16" and not cpu_has_fast_bf16():
        pytest.skip("this CPU has no fast bf16")
    forwards, eager = [], []
    real_eager = modeling_bert.eager_attention_forward
    monkeypatch.setattr(modeling_bert, "eager_attention_forward",
                        lambda module, *a, **kw: eager.append(module.training) or real_eager(module, *a, **kw))
    models = []

    def load_model(self, _original=TextClassification.load_model):
        model = _original(self)
        models.append(model)
        for module in model.modules():
            if isinstance(module, modeling_bert.BertSelfAttention):
                module.register_forward_pre_hook(lambda m, a: forwards.append(m.training))
        return model

    monkeypatch.setattr(TextClassification, "load_model", load_model)
    cfg = tiny_config(tiny_bert, clf_csv, tmp_path / "runs", epochs=1, batch_size=8, logging_steps=5,
                      precision=precision)
    cfg["baseline"] = False
    run = finetune(cfg, progress=False)
    assert run.info["precision"] == precision
    training, evaluation = forwards.count(True), forwards.count(False)
    assert training >= 20 and evaluation >= 2, (training, evaluation)
    assert eager == ([True] * training if precision == "bf16" else [])
    assert models[0].config._attn_implementation == "sdpa"


def test_flop_estimate_counts_the_parameters_once_not_per_batch(tiny_bert, monkeypatch):
    from transformers import AutoModelForSequenceClassification, Trainer

    from workbench.engine.trainer import trainer_class

    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=3)
    counts = []
    real = type(model).num_parameters
    monkeypatch.setattr(type(model), "num_parameters", lambda self, **kw: counts.append(kw) or real(self, **kw))
    trainer = object.__new__(trainer_class())  # only the model is read
    trainer.model = model
    batches = [{"input_ids": torch.ones(8, n, dtype=torch.long)} for n in (12, 30, 7)]
    expected = [Trainer.floating_point_ops(trainer, b) for b in batches]
    counts.clear()
    assert [trainer.floating_point_ops(b) for b in batches] == expected and expected[0] > 0
    assert counts == [{"exclude_embeddings": True}]


def _trainer(model_path, out, **args):
    from transformers import AutoModelForSequenceClassification, TrainingArguments

    from workbench.engine.trainer import trainer_class

    model = AutoModelForSequenceClassification.from_pretrained(model_path, num_labels=3)
    targs = TrainingArguments(output_dir=str(out), use_cpu=True, report_to="none", max_grad_norm=0.5, **args)
    trainer = trainer_class()(model=model, args=targs)
    trainer.current_gradient_accumulation_steps = args.get("gradient_accumulation_steps", 1)
    return trainer, model


def _batch(model):
    g = torch.Generator().manual_seed(0)
    return {"input_ids": torch.randint(5, model.config.vocab_size, (4, 12), generator=g),
            "attention_mask": torch.ones(4, 12, dtype=torch.long), "labels": torch.tensor([0, 1, 2, 0])}


def test_training_steps_skip_the_train_mode_walk_only_while_every_module_trains(tiny_bert, tmp_path, monkeypatch):
    from transformers import Trainer

    trainer, model = _trainer(tiny_bert, tmp_path)
    calls = []
    real = torch.nn.Module.train
    monkeypatch.setattr(torch.nn.Module, "train", lambda self, mode=True: calls.append(mode) or real(self, mode))
    modules = list(model.modules())

    def loop(self, *a, **kw):  # stands in for Trainer's loop: steps, with an evaluation before them
        model.eval()
        calls.clear()
        trainer.training_step(model, _batch(model))  # after an evaluation: the full walk
        assert len(calls) == len(modules) and all(m.training for m in modules)
        calls.clear()
        trainer.training_step(model, _batch(model))
        trainer.training_step(model, _batch(model))
        assert calls == []
        model.bert.encoder.layer[0].eval()  # one block switched off by hand: the next step walks again
        trainer.training_step(model, _batch(model))
        assert calls and all(m.training for m in modules)
        model.eval()  # and an evaluation after the shortcut still reaches every module
        assert not any(m.training for m in modules)

    monkeypatch.setattr(Trainer, "train", loop)
    trainer.train()
    assert "train" not in model.__dict__


def test_one_device_clipping_equals_accelerates_and_lists_the_parameters_once(tiny_bert, tmp_path, monkeypatch):
    from transformers import Trainer

    trainer, model = _trainer(tiny_bert, tmp_path)
    g = torch.Generator().manual_seed(1)
    grads = {n: torch.randn(p.shape, generator=g) for n, p in model.named_parameters()}

    def load():
        for n, p in model.named_parameters():
            p.grad = grads[n].clone()

    load()
    expected_norm = Trainer._clip_grad_norm(trainer, model)  # through accelerate
    expected = {n: p.grad.clone() for n, p in model.named_parameters()}
    assert float(expected_norm) > 5 * trainer.args.max_grad_norm, "the gradients must be clipped, not only measured"
    listed = []
    real = torch.nn.Module.parameters
    monkeypatch.setattr(torch.nn.Module, "parameters", lambda self, recurse=True: listed.append(1) or real(self, recurse))
    for _ in range(3):
        load()
        torch.testing.assert_close(trainer._clip_grad_norm(model), expected_norm)
        for n, p in model.named_parameters():
            torch.testing.assert_close(p.grad, expected[n])
    assert len(listed) == 1


def test_one_batch_per_step_leaves_the_loss_divisor_to_the_model(tiny_bert, tmp_path):
    trainer, model = _trainer(tiny_bert, tmp_path / "one")
    batch = _batch(model)
    batch["labels"] = torch.tensor([0, 1, -100, 2])
    assert trainer._get_num_items_in_batch([batch], torch.device("cpu")) is None
    # the model's mean loss is what Trainer's count would have divided by
    model.train()
    torch.manual_seed(3)
    mean = model(**batch).loss
    torch.manual_seed(3)
    counted = model(**batch, num_items_in_batch=torch.tensor(3)).loss
    torch.testing.assert_close(mean, counted)
    accumulating, _ = _trainer(tiny_bert, tmp_path / "ga", gradient_accumulation_steps=2)
    # a classification head ignores the count: Trainer divides by the accumulation steps instead
    assert not accumulating.model_accepts_loss_kwargs
    assert accumulating._get_num_items_in_batch([batch, batch], torch.device("cpu")) is None
    accumulating.sparse_prediction = "masked"  # workbench's own language-model loss uses the count
    assert accumulating.model_accepts_loss_kwargs
    assert int(accumulating._get_num_items_in_batch([batch, batch], torch.device("cpu"))) == 6


def test_during_training_accelerates_package_check_is_cached_and_zero_grad_takes_a_list(tiny_bert, tmp_path,
                                                                                        monkeypatch):
    import accelerate.optimizer as accelerated
    from transformers import Trainer

    original = accelerated.is_lomo_available
    trainer, model = _trainer(tiny_bert, tmp_path)
    listed, seen = [], []
    real = torch.nn.Module.parameters

    def loop(self, *a, **kw):  # stands in for Trainer's loop: a few steps' gradient clearing
        seen.append(accelerated.is_lomo_available)
        monkeypatch.setattr(torch.nn.Module, "parameters", lambda m, recurse=True: listed.append(1) or real(m, recurse))
        for _ in range(3):
            for p in model.parameters():
                p.grad = torch.ones_like(p)
            listed.clear()
            model.zero_grad()
            assert listed == []
            assert all(p.grad is None for p in model.parameters())
        for p in model.parameters():
            p.grad = torch.ones_like(p)
        model.zero_grad(set_to_none=False)
        assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
        monkeypatch.setattr(torch.nn.Module, "parameters", real)

    monkeypatch.setattr(Trainer, "train", loop)
    trainer.train()
    assert seen[0] is not original and seen[0].__wrapped__ is original and hasattr(seen[0], "cache_info")
    assert accelerated.is_lomo_available is original and "zero_grad" not in vars(model)


FAULTS_PER_STEP = """
import resource, sys, torch
from workbench.engine.host_memory import keep_freed_buffers

# minor page faults per backward pass of an embedding with MiniLM's 30,522 x 384 shape, whose
# 47-MB fp32 gradient each backward pass allocates afresh
torch.manual_seed(0)
embed = torch.nn.Embedding(30522, 384)
ids = torch.randint(0, 30522, (16, 128))

def step():
    embed(ids).square().mean().backward()
    embed.weight.grad = None

with keep_freed_buffers() if sys.argv[1] == "kept" else open(__file__):
    step(); step()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(4):
        step()
    print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4)
"""


def test_cpu_training_keeps_large_freed_buffers_for_the_next_step(tiny_bert, clf_csv, tmp_path, monkeypatch):
    """glibc gives buffers above its mmap threshold (at most 32 MB) back to the system on free, so
    each step page-faults its way through memory it just had: during a CPU training run the
    thresholds are raised. Each setting is measured in a fresh process (the heap's history
    changes what a later allocation finds)."""
    import subprocess
    import sys

    from workbench.engine import host_memory

    if host_memory.glibc() is None:
        pytest.skip("the C library is not glibc")
    script = tmp_path / "faults.py"
    script.write_text(FAULTS_PER_STEP)
    import os
    from pathlib import Path

    root = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    faults = {how: float(subprocess.run([sys.executable, str(script), how], capture_output=True, text=True,
                                        check=True, env=env).stdout.split()[-1]) for how in ("default", "kept")}
    # 47 MB is about 11,500 pages of 4 KiB: with glibc's defaults each step faults them in again;
    # kept, 200 to 2,900 per step remain in repeated runs (where the heap places what)
    assert faults["default"] > 5000 and faults["kept"] < 0.4 * faults["default"], faults
    # a training run on the CPU opens it for the length of Trainer.train
    opened = []
    real = host_memory.keep_freed_buffers
    monkeypatch.setattr(host_memory, "keep_freed_buffers", lambda: opened.append(1) or real())
    cfg = tiny_config(tiny_bert, clf_csv, tmp_path / "runs", epochs=1, max_steps=2, batch_size=8)
    cfg["baseline"] = False
    finetune(cfg, progress=False)
    assert opened == [1]


def _compiling_with_the_eager_backend(monkeypatch) -> list[dict]:
    """torch.compile as accelerate calls it, with dynamo's graph capture but no code generation
    (the graphs are what the test counts); returns the keyword arguments of each call."""
    from torch._dynamo.utils import counters

    real, calls = torch.compile, []

    def compile_eagerly(model, **kwargs):
        calls.append(dict(kwargs))
        return real(model, **{**kwargs, "backend": "eager"})

    monkeypatch.setattr(torch, "compile", compile_eagerly)
    torch._dynamo.reset()
    counters.clear()
    return calls


def test_torch_compile_captures_dynamically_padded_batches_in_one_graph(tiny_bert, clf_csv, tmp_path, monkeypatch):
    """Batches of many lengths and a short last one: one graph for the whole run. Left to torch's
    automatic dynamic shapes there were three (the first batch's shape, then a dynamic length, then
    a dynamic batch size), each a full compile; with a dynamic compile alone, two, because the
    classification head sets ``config.problem_type`` in its first forward."""
    from torch._dynamo.utils import counters

    calls = _compiling_with_the_eager_backend(monkeypatch)
    cfg = tiny_config(tiny_bert, clf_csv, tmp_path / "runs", epochs=1, batch_size=16, torch_compile=True)
    cfg["baseline"] = False
    run = finetune(cfg, progress=False)
    assert run.info["status"] == "completed"
    assert calls and all(c.get("dynamic") is True for c in calls), calls
    assert counters["stats"]["unique_graphs"] == 1, dict(counters["stats"])


def test_torch_compile_keeps_packed_blocks_static(tiny_gpt2, tmp_path, monkeypatch):
    """Packed language-model blocks all have one length: the compile stays static (specialised)."""
    from workbench.engine.trainer import _lengths_vary

    calls = _compiling_with_the_eager_backend(monkeypatch)
    data = tmp_path / "paragraphs.txt"
    data.write_text("\n".join(" ".join(random.Random(i).choices(FILLER, k=30)) for i in range(120)) + "\n")
    run = finetune({"task": "causal-lm", "model": str(tiny_gpt2), "runs_dir": str(tmp_path / "runs"),
                    "data": {"train": str(data)}, "baseline": False,
                    "train": {"epochs": 1, "batch_size": 8, "max_length": 32, "torch_compile": True}},
                   progress=False)
    assert run.info["status"] == "completed"
    assert calls and all("dynamic" not in c for c in calls), calls
    assert not _lengths_vary(type("D", (), {"column_names": ["length"], "__getitem__": lambda s, k: [32] * 9})())


KERNEL_SWEEP = r"""
import sys
import torch

if sys.argv[1] == "workbench":
    import workbench  # noqa: F401  (after torch, as a notebook often has it)


def sweep():
    # bf16 batched matmuls of 1,100 shapes, as many sequence lengths, more than oneDNN's default
    # cache holds
    for length in range(1, 1101):
        torch.bmm(torch.ones(4, length, 16, dtype=torch.bfloat16), torch.ones(4, 16, 16, dtype=torch.bfloat16))


sweep()
sweep()
"""


def test_importing_workbench_gives_onednn_room_for_a_kernel_per_sequence_length(tmp_path):
    """oneDNN builds a CPU kernel per bf16 matmul shape and keeps 1,024: past about 60 sequence
    lengths a training run rebuilds its kernels step after step. workbench sets a larger cache when
    imported; counted with oneDNN's own log of kernel creations (``create:cache_miss``)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from workbench import _onednn

    script = tmp_path / "sweep.py"
    script.write_text(KERNEL_SWEEP)
    root = str(Path(__file__).resolve().parents[1])
    env = {k: v for k, v in os.environ.items() if k != _onednn.CACHE_VARIABLE}
    env.update(ONEDNN_VERBOSE="profile_create",
               PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))

    def built(how: str) -> int:
        # oneDNN writes its log to the C library's stdout
        log = subprocess.run([sys.executable, str(script), how], capture_output=True, text=True, check=True,
                             env=env, timeout=300).stdout
        return log.count("create:cache_miss")

    with_workbench = built("workbench")
    if with_workbench < 1025:
        pytest.skip(f"this CPU's torch builds {with_workbench} oneDNN bf16 kernels for 1,100 shapes")
    # two passes over the shapes: with workbench each kernel is built once, without it twice (the
    # first pass's early kernels are gone when the second pass comes back to them)
    assert built("torch") >= 2 * with_workbench - 8, with_workbench
    # a value the user set is kept
    user = subprocess.run([sys.executable, "-c", "import os, workbench; print(os.environ['%s'])" % _onednn.CACHE_VARIABLE],
                          capture_output=True, text=True, check=True, env={**env, _onednn.CACHE_VARIABLE: "2000"})
    assert user.stdout.strip() == "2000"
