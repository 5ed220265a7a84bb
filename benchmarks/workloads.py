"""The workloads of each suite: model, data, shape of the batches and how many steps are timed.

Every variant of a workload runs the same model, the same training rows in the same file order,
the same seed and the same hyperparameters (learning rate, weight decay 0.01, 6 % linear warmup,
gradient clipping at 1.0). What differs is what the variant is about: padding, sampling,
precision, optimizer and loop overhead.

Steps: ``warmup`` untimed steps, then ``steps`` timed ones. For grouped (length-sorted) batches
the training set is exactly ``(warmup + steps) * batch_size`` rows, so the timed window covers a
whole epoch of mega-batches rather than only its longest batches. B0 samples at random, so a
shorter window (``b0_steps``) is already representative: with every text padded to max_length all its
batches have the same shape, as do packed language-model blocks.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class Workload:
    name: str
    description: str
    task: str                 # text-classification | masked-lm | causal-lm
    model: str                # "minilm" or a key of benchmarks.models.SHAPES
    corpus: str               # a kind of benchmarks.corpus
    max_length: int
    batch_size: int
    learning_rate: float
    warmup: int
    steps: int
    b0_steps: int
    n_eval: int
    n_train: int = 0          # 0: (warmup + steps) * batch_size
    lora: dict | None = None  # {"r": 16, "alpha": 32, "target_modules": [...]} for a LoRA run
    variants: list[str] = field(default_factory=lambda: ["B0", "B1", "B2", "P"])
    # the P/B0 target is for long-tailed text; texts that all fill max_length leave no padding to cut
    long_tailed: bool = True

    def __post_init__(self):
        if not self.n_train:
            self.n_train = (self.warmup + self.steps) * self.batch_size

    def to_dict(self) -> dict:
        return asdict(self)


QWEN_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]

# A model so small that a step is almost all Python: the framework's own work per step (loop,
# callbacks, optimizer and clipping bookkeeping), which on a GPU has to hide behind the kernels.
HOST = Workload("toy-bert-host", "host work per step: a 2-layer, 32-wide BERT on BBC News sentences",
                "text-classification", "toy-bert", "bbc-short", max_length=64, batch_size=8, learning_rate=1e-3,
                warmup=10, steps=300, b0_steps=2, n_eval=16, variants=["B2", "P"])

CPU = [
    Workload("minilm-bbc-long", "MiniLM classification, BBC News articles (long: 99 % cut at 128 tokens)",
             "text-classification", "minilm", "bbc-long", max_length=128, batch_size=16, learning_rate=1e-4,
             warmup=2, steps=10, b0_steps=3, n_eval=96, long_tailed=False),
    Workload("minilm-bbc-long-b32", "the same at batch 32 (the batch size of the research note's hand-loop figure)",
             "text-classification", "minilm", "bbc-long", max_length=128, batch_size=32, learning_rate=1e-4,
             warmup=2, steps=6, b0_steps=6, n_eval=96, variants=["B2", "P"], long_tailed=False),
    Workload("minilm-bbc-short", "MiniLM classification, BBC News sentences (short, long-tailed: 6-270 tokens)",
             "text-classification", "minilm", "bbc-short", max_length=128, batch_size=16, learning_rate=1e-4,
             warmup=2, steps=38, b0_steps=3, n_eval=256),
    Workload("minilm-mlm", "MiniLM masked-LM, BBC News paragraphs as domain text",
             "masked-lm", "minilm", "bbc-text", max_length=128, batch_size=16, learning_rate=1e-4,
             warmup=1, steps=5, b0_steps=3, n_eval=64, n_train=400),
    Workload("tiny-clm", "Causal LM, GPT-2-style 4 layers x 256 (random weights), BBC News paragraphs",
             "causal-lm", "tiny-gpt2", "bbc-text", max_length=256, batch_size=8, learning_rate=5e-4,
             warmup=1, steps=5, b0_steps=3, n_eval=64, n_train=400),
    HOST,
]

GPU_VARIANTS = ["B0", "B1", "B2", "P", "P+compile"]
# On the large decoders B0 only adds padding to identical packed-size steps, and compiling a 0.5-1B
# model costs more than its short timed window: B1, B2 and P there.
LARGE_DECODER_VARIANTS = ["B1", "B2", "P"]

GPU = [
    Workload("bert-base-bbc", "BERT-base-size classification (random weights), BBC News articles at 512 tokens",
             "text-classification", "bert-base", "bbc-long", max_length=512, batch_size=32, learning_rate=5e-5,
             warmup=5, steps=45, b0_steps=20, n_eval=256, variants=GPU_VARIANTS, long_tailed=False),
    Workload("llama-1b-full", "Llama-3.2-1B-shaped decoder (random weights), full fine-tune",
             "causal-lm", "llama-1b", "bbc-text", max_length=1024, batch_size=8, learning_rate=2e-5,
             warmup=5, steps=25, b0_steps=10, n_eval=128, n_train=6000, variants=LARGE_DECODER_VARIANTS),
    Workload("gpt2-clm", "GPT-2-size (124M) causal LM (random weights), BBC News paragraphs packed to 1,024",
             "causal-lm", "gpt2-124m", "bbc-text", max_length=1024, batch_size=8, learning_rate=3e-4,
             warmup=5, steps=40, b0_steps=20, n_eval=256, n_train=6000,
             # packed blocks all have one shape: where torch.compile has its best case
             variants=["B0", "B1", "B2", "P", "P+compile"]),
    Workload("qwen-0.5b-lora", "Qwen2.5-0.5B-shaped decoder (random weights), LoRA r=16 on all linear layers",
             "causal-lm", "qwen2-0.5b", "bbc-text", max_length=1024, batch_size=8, learning_rate=2e-4,
             warmup=5, steps=30, b0_steps=15, n_eval=128, n_train=6000,
             lora={"r": 16, "alpha": 32, "target_modules": QWEN_LINEAR}, variants=LARGE_DECODER_VARIANTS),
    HOST,
]

# The GPU suite's code paths at toy sizes: runs on a CPU in seconds (used by the tests).
SMOKE = [
    Workload("toy-bert-short", "toy BERT classification, BBC sentences", "text-classification", "toy-bert",
             "bbc-short", max_length=64, batch_size=8, learning_rate=1e-3, warmup=1, steps=4, b0_steps=2, n_eval=16),
    Workload("toy-gpt2-clm", "toy GPT-2 causal LM, packed", "causal-lm", "toy-gpt2", "bbc-text", max_length=64,
             batch_size=4, learning_rate=1e-3, warmup=1, steps=3, b0_steps=2, n_eval=8, n_train=60),
    Workload("toy-qwen2-lora", "toy Qwen2 causal LM with LoRA", "causal-lm", "toy-qwen2", "bbc-text", max_length=64,
             batch_size=4, learning_rate=1e-3, warmup=1, steps=3, b0_steps=2, n_eval=8, n_train=60,
             lora={"r": 4, "alpha": 8, "target_modules": QWEN_LINEAR}),
    Workload("toy-mlm", "MiniLM-tokenizer toy BERT masked-LM", "masked-lm", "toy-bert", "bbc-text", max_length=64,
             batch_size=4, learning_rate=1e-3, warmup=1, steps=3, b0_steps=2, n_eval=8, n_train=60),
]

SUITES = {"cpu": CPU, "gpu": GPU, "smoke": SMOKE}


def get(suite: str, names: list[str] | None = None) -> list[Workload]:
    if suite not in SUITES:
        raise SystemExit(f"unknown suite {suite!r}; choose one of {', '.join(SUITES)}")
    items = SUITES[suite]
    if names:
        known = {w.name for w in items}
        bad = [n for n in names if n not in known]
        if bad:
            raise SystemExit(f"unknown workload(s) {', '.join(bad)} in suite {suite}; known: {', '.join(sorted(known))}")
        by_name = {w.name: w for w in items}
        items = [by_name[n] for n in dict.fromkeys(names)]  # in the order asked for (first ones run first)
    return items
