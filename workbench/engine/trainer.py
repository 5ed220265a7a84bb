"""The adapter between a RunConfig and ``transformers.Trainer``.

Trainer does the loop, optimizer, schedule, checkpoints and best-model selection; this module
chooses fast arguments and bridges Trainer callbacks to workbench events.
"""

from __future__ import annotations

import inspect
import math
import os
import threading
import time
from contextlib import contextmanager
from functools import lru_cache
from operator import attrgetter
from pathlib import Path
from typing import Any, Callable

from ..events import CheckpointSaved, Evaluation, Step
from ..metrics import greater_is_better
from ..runs import COMPLETE_MARKER, RunDir, atomic_write_text, now_iso
from .device import is_main_process, launched_processes
from .sparse import INDEX_KEY

GPU_LOADER_WORKERS = 2


def training_arguments(cfg: Any, task: Any, run_dir: RunDir, device: str, precision: str, has_eval: bool):
    from transformers import TrainingArguments

    if device == "cuda":  # forked loader workers must not inherit a busy tokenizer thread pool
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    t = cfg.train
    eval_strategy = t.eval_strategy if has_eval else "no"
    # checkpoints at the evaluations, which the best model is chosen from; without evaluations, one
    # at each epoch's end (and at the last step), the last two kept, so the run can still be resumed
    save = t.save_checkpoints and eval_strategy != "no"
    save_strategy = eval_strategy if save else ("epoch" if t.save_checkpoints else "no")
    metric = t.metric_for_best_model or task.main_metric
    return TrainingArguments(
        output_dir=str(run_dir.checkpoints),
        num_train_epochs=t.epochs,
        max_steps=t.max_steps or -1,
        learning_rate=t.learning_rate,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size or t.batch_size * 4,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        weight_decay=t.weight_decay,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,  # a float in [0, 1) is a ratio of total steps (transformers 5)
        seed=t.seed,
        data_seed=t.seed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=device == "cpu",
        train_sampling_strategy="group_by_length" if t.group_by_length else "random",
        length_column_name="length",
        eval_strategy=eval_strategy,
        eval_steps=t.eval_steps,
        save_strategy=save_strategy,
        # (Trainer's default of every 500 steps refuses eval_steps that do not divide it, and saves
        # nothing in a shorter run)
        save_steps=t.eval_steps if save and eval_strategy == "steps" else 500,
        save_total_limit=2 if save_strategy != "no" else None,
        load_best_model_at_end=save,
        metric_for_best_model=metric if save else None,
        greater_is_better=greater_is_better(metric, task.main_metric, task.greater_is_better) if save else None,
        logging_strategy="steps",
        logging_steps=t.logging_steps,
        logging_first_step=True,
        logging_nan_inf_filter=False,  # the filter syncs the device every step; we check at logging steps
        disable_tqdm=True,
        report_to="none",
        # on a GPU two workers collate the next batches while the GPU computes; on a CPU they would
        # steal cores from the matmuls (the data is pre-tokenized, so collating is cheap)
        dataloader_num_workers=GPU_LOADER_WORKERS if device == "cuda" else 0,
        dataloader_persistent_workers=device == "cuda",
        dataloader_pin_memory=device == "cuda",
        # and the batches go to the GPU as non-blocking copies from that pinned memory: accelerate's
        # loader copies them blocking by default, and a blocking copy waits for every kernel already
        # queued (the previous step's backward and optimizer), so the host could not prepare the
        # next step while the GPU computes
        accelerator_config={"non_blocking": True} if device == "cuda" else None,
        torch_compile=t.torch_compile,
        # a task whose collator reads extra columns (word offsets for whole-word masking) keeps them
        remove_unused_columns=getattr(task, "remove_unused_columns", True),
        optim="adamw_torch_fused" if device == "cuda" or _fused_cpu_ok() else "adamw_torch",
        # Trainer's default (True for a model without activation checkpointing) walks the autograd graph
        # after every backward, looking for parameters that got no gradient; the task models here use
        # all of theirs, and a model that does not fails at its second step with a message naming this
        # setting (see run.py)
        ddp_find_unused_parameters=t.find_unused_parameters,
    )


@lru_cache(maxsize=1)
def trainer_class() -> type:
    """``transformers.Trainer`` with bf16 autocast of its own and workbench's length-grouped sampler.

    The sampler (see ``batching``) reads the ``length`` column the task computed; Trainer would drop
    that column as unused and re-measure every row before the first step.
    """
    from transformers import Trainer

    from .batching import GroupedLengthSampler

    class WorkbenchTrainer(Trainer):
        # set from the task: "masked" or "causal" scores the labelled positions' logits only (see ``sparse``)
        sparse_prediction: str | None = None
        _positions_hook = None
        # the evaluation batch's labelled positions and their (nll, top-1), for preprocess_logits_for_metrics
        _scored: dict = {}

        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            plugin = getattr(self.accelerator.state, "dynamo_plugin", None)
            if self.args.torch_compile and plugin is not None and plugin.dynamic is None \
                    and _lengths_vary(self.train_dataset):
                # dynamically padded batches: compile once for any length and batch size. Left to
                # torch's automatic dynamic shapes, the model is compiled for the first batch's shape,
                # again when a batch of another length comes, and a third time at the first short batch
                # (three compiles of a tiny BERT on a CPU, one with this); on a GPU each takes tens of
                # seconds. Packed blocks, all of one length, keep the static compile.
                plugin.dynamic = True
            given = self.preprocess_logits_for_metrics
            if given is not None and {"index", "scores"} <= set(inspect.signature(given).parameters):
                # the task places the labelled positions' scores with the index the loader's collator
                # listed on the host (rather than a nonzero over labels on the device), and takes the
                # scores computed with the loss instead of a second pass over the logits
                def preprocess(logits, labels):
                    scored, self._scored = self._scored, {}
                    return given(logits, labels, **scored)

                self.preprocess_logits_for_metrics = preprocess

        # Trainer takes a model whose forward has **kwargs to normalise its loss by the whole accumulated
        # batch (num_items_in_batch) and then skips its own division by gradient_accumulation_steps.
        # The classification, token-classification and masked-LM heads of transformers average over
        # their micro-batch and ignore that count, so with accumulation their loss and gradients came
        # out gradient_accumulation_steps times too large. Only workbench's own language-model loss
        # (``sparse``) is known to use the count; every other loss is divided by Trainer as usual.
        @property
        def model_accepts_loss_kwargs(self) -> bool:
            return self._forward_takes_kwargs and bool(self.sparse_prediction) and self._sparse_loss()

        @model_accepts_loss_kwargs.setter
        def model_accepts_loss_kwargs(self, value: bool) -> None:
            self._forward_takes_kwargs = bool(value)

        _forward_takes_kwargs = False

        def _sparse_loss(self) -> bool:
            # (not under torch.compile: a varying number of positions per batch would recompile)
            return bool(self.sparse_prediction) and self.args.n_gpu <= 1 and not self.args.torch_compile \
                and self.label_smoother is None and self.compute_loss_func is None

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            self._scored = {}
            index = inputs.get(INDEX_KEY)
            if index is not None:
                inputs = {k: v for k, v in inputs.items() if k != INDEX_KEY}
            if not (self._sparse_loss() and "labels" in inputs):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            from .sparse import positions_hook, sparse_lm_loss

            if self._positions_hook is None:
                self._positions_hook = positions_hook(self.accelerator.unwrap_model(model)) or False
            loss, outputs, scores = sparse_lm_loss(self, model, inputs, num_items_in_batch,
                                                   causal=self.sparse_prediction == "causal", index=index,
                                                   scores=return_outputs and not model.training)
            if scores is not None:
                self._scored = {"index": index, "scores": scores}
            return (loss, outputs) if return_outputs else loss

        def _get_dataloader(self, *args, **kwargs):
            # the loss's labelled positions are listed by the collator, on the host (see sparse)
            if not self._sparse_loss():
                return super()._get_dataloader(*args, **kwargs)
            from .sparse import IndexingCollator

            plain = self.data_collator
            self.data_collator = IndexingCollator(plain, causal=self.sparse_prediction == "causal")
            try:
                return super()._get_dataloader(*args, **kwargs)
            finally:
                self.data_collator = plain

        def create_accelerator_and_postprocess(self) -> None:
            super().create_accelerator_and_postprocess()
            # bf16: autocast the forward and loss here (autocast_smart_context_manager) instead of
            # letting accelerate wrap model.forward, which also copies every output to fp32 after
            # each step, a language model's whole batch x length x vocabulary logits included
            self._bf16_autocast = bool(self.args.bf16) and self.accelerator.mixed_precision == "bf16"
            if self._bf16_autocast:
                self.accelerator.native_amp = False
            from .dropout import fast_masks_pay, slow_cpu_bernoulli

            # dropout masks from a fast generator where torch's CPU one is slow (see ``dropout``),
            # unless the model is so narrow that its masks are small
            hidden = getattr(getattr(self.model, "config", None), "hidden_size", None)
            self._fast_bernoulli = self.args.device.type == "cpu" and not self.args.torch_compile \
                and slow_cpu_bernoulli() \
                and fast_masks_pay(self.args.train_batch_size, hidden if isinstance(hidden, int) else None)
            # bf16 training forwards on a CPU with attention dropout: eager attention (see ``attention``)
            self._eager_training_attention = self.args.device.type == "cpu" and self._bf16_autocast \
                and not self.args.torch_compile

        def train(self, *args, **kwargs):
            from contextlib import ExitStack

            with ExitStack() as stack:
                stack.enter_context(_package_checks_cached())
                stack.enter_context(_walk_free_module_calls(self, self.model))
                if self.args.device.type == "cpu":
                    from .host_memory import keep_freed_buffers

                    stack.enter_context(keep_freed_buffers())
                if getattr(self, "_eager_training_attention", False):
                    from .attention import eager_attention_while_training

                    stack.enter_context(eager_attention_while_training(self.model))
                if getattr(self, "_fast_bernoulli", False):
                    from .dropout import bernoulli_kernel

                    # replaced once per run; each training forward switches it on
                    stack.enter_context(bernoulli_kernel())
                return super().train(*args, **kwargs)

        def compute_loss_context_manager(self):
            stack = super().compute_loss_context_manager()
            if getattr(self, "_fast_bernoulli", False) and self.model.training:
                from .dropout import fast_bernoulli

                stack.enter_context(fast_bernoulli())
            return stack

        def autocast_smart_context_manager(self, cache_enabled: bool | None = True):
            if getattr(self, "_bf16_autocast", False):
                import torch

                return torch.autocast(self.args.device.type, dtype=torch.bfloat16, cache_enabled=cache_enabled)
            return super().autocast_smart_context_manager(cache_enabled)

        def floating_point_ops(self, inputs: dict) -> int:
            # Trainer's estimate, 6 x tokens x non-embedding parameters, for the run's FLOP total;
            # Trainer counts the parameters again for every batch (a walk over all modules, about a
            # millisecond per step on a small model) although the count never changes in training.
            main = getattr(self.model, "main_input_name", "input_ids")
            if main not in inputs or not hasattr(self.model, "num_parameters"):
                return 0
            cached = getattr(self, "_flop_parameters", None)
            if cached is None or cached[0] is not self.model:
                cached = self._flop_parameters = (self.model, self.model.num_parameters(exclude_embeddings=True))
            return 6 * inputs[main].numel() * cached[1]

        def _single_device(self) -> bool:
            one = getattr(self, "_one_device", None)
            if one is None:  # fixed once the accelerator exists; the properties read here are not free
                from accelerate.utils import DistributedType

                one = self._one_device = self.accelerator.distributed_type == DistributedType.NO \
                    and self.args.n_gpu <= 1
            return one

        def _get_num_items_in_batch(self, batch_samples: list, device):
            # Trainer counts the labelled items of every batch (tensor operations on each step) so
            # that losses summed over accumulated micro-batches or processes share one divisor. With
            # one batch per step on one device the divisor is the batch's own count, which is what
            # the model's mean loss divides by already.
            if self.args.gradient_accumulation_steps == 1 and self._single_device() \
                    and self.compute_loss_func is None:
                return None
            return super()._get_num_items_in_batch(batch_samples, device)

        def _clip_grad_norm(self, model):
            # Trainer clips through accelerate, which lists the parameters again and groups them by
            # device mesh on every step (about 0.15 ms on a small model); on one device, without a
            # loss scaler or sharded gradients, that is torch's own clipping over a list made once.
            if not self._single_device() or self.accelerator.scaler is not None \
                    or self._has_mixed_mesh_grads(model):
                return super()._clip_grad_norm(model)
            import torch

            return torch.nn.utils.clip_grad_norm_(_model_lists(self, model)[1], self.args.max_grad_norm)

        def _load_best_model(self) -> None:
            # When the best checkpoint is the one written at the last step, the weights in memory are
            # the ones it holds: Trainer would read them back anyway (seconds for a 1B model).
            best = self.state.best_model_checkpoint
            if best and Path(best).name == f"checkpoint-{self.state.global_step}":
                return
            super()._load_best_model()

        def _load_optimizer_and_scheduler(self, checkpoint) -> None:
            # A resumed run continues the optimizer's moments and the schedule's step, but Trainer also
            # takes the checkpoint's learning rate and weight decay (each group's values and the
            # schedule's base rates), so a run resumed with new ones would train on the old ones.
            # The optimizer and schedule were just built from this run's settings: keep those.
            settings = [(g.get("initial_lr", g["lr"]), g.get("weight_decay")) for g in self.optimizer.param_groups]
            super()._load_optimizer_and_scheduler(checkpoint)
            if checkpoint is not None:
                _keep_run_settings(self.optimizer, self.lr_scheduler, settings)

        def _get_train_sampler(self, train_dataset=None):
            data = self.train_dataset
            if self.args.train_sampling_strategy != "group_by_length" or \
                    self.args.length_column_name not in getattr(data, "column_names", ()):
                return super()._get_train_sampler(train_dataset)
            return GroupedLengthSampler(self.args.train_batch_size * self.args.gradient_accumulation_steps,
                                        lengths=list(data[self.args.length_column_name]))

    return WorkbenchTrainer


def _keep_run_settings(optimizer: Any, scheduler: Any, settings: list[tuple]) -> None:
    """Give each optimizer group its base learning rate and weight decay from ``settings``, and set
    the schedule's base rates and current rate (at the step it was loaded at) from them."""
    groups = optimizer.param_groups
    if len(groups) != len(settings):  # not the optimizer these settings came from: leave it as loaded
        return
    for g, (base, decay) in zip(groups, settings):
        g["initial_lr"] = base
        if decay is not None:
            g["weight_decay"] = decay
    inner = getattr(scheduler, "scheduler", scheduler)  # accelerate's wrapper, where there is one
    if hasattr(inner, "base_lrs"):
        inner.base_lrs = [base for base, _ in settings]
    lambdas = getattr(inner, "lr_lambdas", None)  # the schedules Trainer builds (linear, cosine, ...)
    if lambdas and len(lambdas) == len(groups):
        rates = [base * f(inner.last_epoch) for (base, _), f in zip(settings, lambdas)]
        for g, rate in zip(groups, rates):
            g["lr"] = rate
        inner._last_lr = rates


def _lengths_vary(dataset: Any) -> bool:
    """Whether the training rows (their ``length`` column, which every task writes) differ in length."""
    if dataset is None or "length" not in getattr(dataset, "column_names", ()):
        return True
    return len(set(dataset["length"])) > 1


def _model_lists(trainer: Any, model: Any) -> tuple[list, list]:
    """The modules and the parameters of ``model``, listed once per model (training adds neither)."""
    cached = getattr(trainer, "_listed", None)
    if cached is None or cached[0] is not model:
        cached = trainer._listed = (model, list(model.modules()), list(model.parameters()))
    return cached[1], cached[2]


_training_flag = attrgetter("training")


@contextmanager
def _walk_free_module_calls(trainer: Any, model: Any):
    """``model.train()`` and ``model.zero_grad()`` without a walk over every module, during a training loop.

    Trainer calls ``model.train()`` at every step (setting the flag on every module again, about
    0.1 ms for a 2-layer BERT, more for deeper models, although only an evaluation in between
    switches it off) and ``model.zero_grad()`` after every step (listing the parameters again, about
    50 µs). For the length of the loop the model answers both from lists made once: ``train()``
    returns at once while every module is training and does the full call otherwise (after an
    evaluation, or a module switched by hand); ``zero_grad()`` clears the listed gradients. A module
    with a ``train()`` of its own, or hub kernels that transformers' ``train()`` would switch, keep
    the full call; so does ``zero_grad(set_to_none=False)``.
    """
    import torch
    from transformers import PreTrainedModel

    if model is None:
        yield
        return
    modules, parameters = _model_lists(trainer, model)
    shortcuts = {}
    if "train" not in vars(model) and all(type(m).train in (torch.nn.Module.train, PreTrainedModel.train)
                                          for m in modules):
        kernels_training = _kernels_training_mode(model)

        def train(mode: bool = True):
            if mode and all(map(_training_flag, modules)) and \
                    (kernels_training is None or getattr(model, "kernels_mode", None) == kernels_training):
                return model
            return type(model).train(model, mode)

        shortcuts["train"] = train
    if "zero_grad" not in vars(model) and type(model).zero_grad is torch.nn.Module.zero_grad:
        def zero_grad(set_to_none: bool = True) -> None:
            if not set_to_none:
                return type(model).zero_grad(model, set_to_none)
            for p in parameters:
                if p.grad is not None:
                    p.grad = None

        shortcuts["zero_grad"] = zero_grad
    model.__dict__.update(shortcuts)
    try:
        yield
    finally:
        for name in shortcuts:
            model.__dict__.pop(name, None)


def _kernels_training_mode(model: Any) -> Any:
    """The hub-kernels mode transformers' ``train()`` sets, where the model uses hub kernels."""
    if not getattr(model, "use_kernels", False):
        return None
    try:
        from kernels import Mode
    except ImportError:  # transformers' train() does nothing with kernels then
        return None
    return Mode.TRAINING


@contextmanager
def _package_checks_cached():
    """Answer accelerate's per-step "is lomo_optim installed?" from a cache during a training loop.

    Its optimizer wrapper asks importlib twice on every step (about 70 µs); the installed packages
    do not change while a loop runs. The module's own function is put back afterwards.
    """
    try:
        import accelerate.optimizer as accelerated
    except ImportError:
        yield
        return
    original = getattr(accelerated, "is_lomo_available", None)
    if original is None or hasattr(original, "cache_info"):  # absent, or a loop in another thread has it
        yield
        return
    accelerated.is_lomo_available = lru_cache(maxsize=1)(original)
    try:
        yield
    finally:
        accelerated.is_lomo_available = original


def _fused_cpu_ok() -> bool:
    import torch

    return tuple(int(x) for x in torch.__version__.split(".")[:2]) >= (2, 4)


class StopRequested(Exception):
    pass


def _any_process(*flags: bool) -> tuple[bool, ...]:
    """For each flag, whether it holds in any process of the launch: one all-reduce for all of them
    (every process calls it at the same step). It goes through a gloo group of its own, on the host:
    over the launch's NCCL group it would be a GPU tensor whose read-back makes the host wait for
    every kernel already queued, so the GPU would idle while the host prepares the next step."""
    import torch
    import torch.distributed as dist

    value = torch.tensor([int(f) for f in flags])
    dist.all_reduce(value, op=dist.ReduceOp.MAX, group=_host_group())
    return tuple(bool(v) for v in value.tolist())


_HOST_GROUPS: dict = {}


def _host_group():
    """A gloo process group over the launch's processes, for small agreements on the host (made by
    every process at its first agreement, at the same step; one per default group, which a script
    could tear down and set up again between runs)."""
    import torch.distributed as dist

    world = dist.group.WORLD
    if world not in _HOST_GROUPS:
        _HOST_GROUPS[world] = dist.new_group(backend="gloo")
    return _HOST_GROUPS[world]


class EventBridge:
    """A TrainerCallback that turns Trainer's hooks into workbench events and honours Stop.

    Per-step work is kept tiny (a stat() of the STOP file every few steps and a timestamp);
    losses are read only at logging steps, where Trainer already synchronises.
    """

    def __init__(self, emit: Callable, run_dir: RunDir, stop_event: threading.Event | None,
                 tokens_per_epoch: int, num_train: int):
        from transformers import TrainerCallback

        bridge = self

        class _Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kw):
                bridge.t0 = time.monotonic()
                bridge.total = state.max_steps
                # a resumed run starts at its checkpoint's step: rates count from there
                bridge.step0, bridge.epoch0 = state.global_step, state.epoch or 0.0

            def on_step_end(self, args, state, control, **kw):
                return bridge.step_end(state, control)

            def on_epoch_end(self, args, state, control, **kw):
                return bridge.epoch_end(state, control)

            def on_log(self, args, state, control, logs=None, **kw):
                return bridge.log(state, control, logs or {})

            def on_evaluate(self, args, state, control, metrics=None, **kw):
                bridge.evaluated(state, metrics or {})

            def on_save(self, args, state, control, **kw):
                return bridge.saved(args, state, control)

        self.callback = _Callback()
        self.emit = emit
        self.run_dir = run_dir
        self.stop_event = stop_event
        self.tokens_per_epoch = tokens_per_epoch
        self.num_train = num_train
        self.t0 = time.monotonic()
        self.total = 0
        self.step0, self.epoch0 = 0, 0.0
        self.stopped = False
        self.folder_deleted = False
        self.nonfinite_step: int | None = None
        self.saved_step: int | None = None  # the step of the last checkpoint written
        self.processes, self.is_main = launched_processes(), is_main_process()
        self.last_loss: float | None = None
        self._last_progress_write = 0.0

    # -- hooks ----------------------------------------------------------------------------------
    def step_end(self, state, control):
        step = state.global_step
        check = step % 5 == 0
        asked = (self.stop_event is not None and self.stop_event.is_set()) or \
            (check and self.run_dir.stop_file.exists())
        deleted, asked = self._folder_deleted(state, control, check, stop=asked)
        if deleted:
            return control
        if asked:
            self.stopped = True
            control.should_training_stop = True
            control.should_save = True  # leave a resumable checkpoint behind
        if step >= self.total and state.logging_steps and step % state.logging_steps:
            control.should_log = True  # the last step's loss, not the one of the last logging step before it
        now = time.monotonic()
        # progress for the progress bar (no loss: reading it would sync the device)
        self.emit(self._step_event(state, None, None, None))
        if now - self._last_progress_write > 5.0 or step == self.total:
            self._last_progress_write = now
            self.run_dir.update_info(progress={"step": step, "total_steps": self.total,
                                               "epoch": round(state.epoch or 0.0, 4)})
        return control

    def epoch_end(self, state, control):
        # Trainer's flow callback asks for the epoch's evaluation and checkpoint here, after the last
        # step's check
        self._folder_deleted(state, control)
        if self.stopped:
            # a stop ends the epoch early: its checkpoint was written at the stop's step already, and the
            # run ends without a test, so the epoch's evaluation would only delay the stop asked for
            control.should_evaluate = False
            control.should_save = control.should_save and self.saved_step != state.global_step
        return control

    def _folder_deleted(self, state, control, check: bool = False, stop: bool | None = None) -> tuple[bool, bool]:
        """Whether the run's folder was deleted by its user; if so, training stops before a checkpoint
        or an evaluation brings a partial folder back. Looked at every few steps (``check``) and
        before each save or evaluation Trainer's flow callback asks for; a progress write in between
        finds it gone too (RunFolderDeleted). Also returns the stop request ``stop`` (step_end's): the
        processes of a launch stop at one step together (one stopping alone would leave the others
        waiting in their next gradient exchange), so they agree on it at the checked steps, in the same
        exchange as on the folder."""
        # every process looks at the same steps (Trainer's save and evaluation steps are theirs too)
        look = not self.folder_deleted and (check or control.should_save or control.should_evaluate)
        gone = look and self.run_dir.gone()
        if self.processes > 1:
            agree = look or (check and stop is not None)
            gone, stop = _any_process(gone, bool(stop)) if agree else (False, False)
        if look:
            self.folder_deleted = gone
        if self.folder_deleted:
            control.should_training_stop = True
            control.should_save = control.should_evaluate = control.should_log = False
            # the best checkpoint went with the folder: Trainer would try to load it back at the end
            state.best_model_checkpoint = None
        return self.folder_deleted, bool(stop)

    def log(self, state, control, logs: dict):
        if "loss" not in logs:
            return control
        loss = logs.get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.nonfinite_step = state.global_step
            control.should_training_stop = True
            control.should_save = False  # never write a checkpoint of poisoned weights
        self.last_loss = loss
        self.emit(self._step_event(state, loss, logs.get("learning_rate"), logs.get("grad_norm")))
        return control

    def evaluated(self, state, metrics: dict):
        clean = {k.removeprefix("eval_"): v for k, v in metrics.items()
                 if k.startswith("eval_") and not k.endswith(("_runtime", "_per_second", "_preparation_time"))}
        self.emit(Evaluation(step=state.global_step, epoch=state.epoch, split="validation", metrics=clean))

    def saved(self, args, state, control):
        path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        # deleted while the checkpoint was written (which made the folders anew): not a checkpoint of this run
        if self._folder_deleted(state, control, check=True)[0]:
            return control
        if path.is_dir():
            # Trainer has finished writing this folder: mark it complete (readers ignore unmarked ones).
            # In a launch of several processes the main one writes the weights, and marks them
            if self.is_main:
                atomic_write_text(path / COMPLETE_MARKER, now_iso() + "\n")
            self.saved_step = state.global_step
            self.emit(CheckpointSaved(step=state.global_step, path=str(path)))
        return control

    # -- helpers --------------------------------------------------------------------------------
    def _step_event(self, state, loss, lr, grad_norm) -> Step:
        elapsed = time.monotonic() - self.t0
        step = state.global_step
        epoch = state.epoch or 0.0
        # epochs since the start (a run resumed in another number of processes counts them anew: none yet)
        rate = (epoch - self.epoch0) / elapsed if elapsed > 0 and epoch > self.epoch0 else None
        eta = (elapsed / (step - self.step0)) * (self.total - step) if step > self.step0 else None
        return Step(step=step, total_steps=self.total, epoch=epoch,
                    loss=None if loss is None else float(loss),
                    learning_rate=None if lr is None else float(lr),
                    grad_norm=None if grad_norm is None else float(grad_norm),
                    samples_per_second=rate * self.num_train if rate else None,
                    tokens_per_second=rate * self.tokens_per_epoch if rate else None,
                    elapsed=elapsed, eta=eta)
