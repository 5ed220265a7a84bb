#!/bin/bash
# The GPU checks and the GPU suite in one call, on a machine lent for a fixed time without network.
# Here first: python -m benchmarks.kit (fills .gpu/ with wheels and the bench data). There, from the
# repository root of a checkout that carries the kit folder:
#   bash benchmarks/gpu_run.sh [seconds for all of it, default 540]
# Each step's time limit is cut to what is left, so the script ends within that time (the suite gets
# what the tests, the loss benchmark and the profile leave, less 130 s for building its models and for
# the run it may have started; its JSON keeps the runs that ended if it is stopped).
# Everything lands in $OUT (default /tmp/gpu-out): run.log, pytest.log, loss-gpu.json, profiles/,
# gpu-run.json, gpu-compile.json and logs.tgz. Back here: python -m benchmarks.report gpu gpu-run.json
# A dry run on a CPU machine: SUITE=smoke SKIP_WHEELS=1 LOSS_ARGS="--rows 64 --vocab 1000" bash benchmarks/gpu_run.sh 60
set -u
TOTAL=${1:-540}
KIT=${WORKBENCH_KIT:-.gpu}
OUT=${OUT:-/tmp/gpu-out}; mkdir -p "$OUT"
SUITE=${SUITE:-gpu}
exec > >(tee "$OUT/run.log") 2>&1
t0=$(date +%s)
left() { echo $((TOTAL - ($(date +%s) - t0))); }
cap() { local l; l=$(left); [ "$l" -lt "$1" ] && echo $((l > 1 ? l : 1)) || echo "$1"; }
if [ ! -d "$KIT/bench" ]; then
  echo "no kit at $KIT (set WORKBENCH_KIT, or run python -m benchmarks.kit first and carry the folder)"; exit 2
fi
KIT=$(cd "$KIT" && pwd)
if [ -z "${SKIP_WHEELS:-}" ]; then
  for w in "$KIT"/whl/*.whl; do  # one at a time: a wheel that does not fit this Python leaves the machine's own
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/gpu-site "$w" \
      || echo "could not install $(basename "$w") here; the machine's own copy, if any, is used"
  done
fi
export PYTHONPATH=/tmp/gpu-site:$PWD WORKBENCH_BENCH_DIR=$KIT/bench HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
  PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,driver_version --format=csv
python3 -c "import sys,torch,transformers,datasets,peft,accelerate,evaluate;print(sys.version.split()[0],'torch',torch.__version__,'cuda',torch.version.cuda,'transformers',transformers.__version__,'datasets',datasets.__version__,'peft',peft.__version__,'accelerate',accelerate.__version__)" \
  || { echo "a library the suite needs does not import (above); build the kit for this machine's Python: python -m benchmarks.kit --python-version X.Y"; exit 1; }
echo "== GPU tests ($(($(date +%s)-t0)) s)"
timeout $(cap 240) python3 -m pytest -q -p no:cacheprovider tests/test_gpu.py -rA 2>&1 | tail -60 | tee "$OUT/pytest.log"
echo "== loss microbenchmark ($(($(date +%s)-t0)) s)"
timeout $(cap 90) python3 -m benchmarks.loss --repeats 5 ${LOSS_ARGS:-} --out "$OUT/loss-gpu.json"
if [ "$SUITE" = gpu ]; then WORK=gpt2-clm,qwen-0.5b-lora,bert-base-bbc; PROF=bert-base-bbc; else WORK=toy-gpt2-clm,toy-qwen2-lora; PROF=toy-bert-short; fi
if [ "${PROFILE:-1}" != 0 ]; then
  echo "== profile of workbench's BERT steps: GPU busy share ($(($(date +%s)-t0)) s)"
  timeout $(cap 100) python3 -m benchmarks.profile "$PROF" --suite "$SUITE" --variant P --steps 5 --out "$OUT/profiles"
fi
BUDGET=$(( $(left) - 130 )); [ $BUDGET -lt 1 ] && BUDGET=1
echo "== suite, a $BUDGET-s budget ($(($(date +%s)-t0)) s)"
timeout $(( $(left) > 6 ? $(left) - 5 : 1 )) python3 -m benchmarks.run --suite "$SUITE" --workloads "$WORK" \
  --variants B1,B2,P --repeats 2 --budget "$BUDGET" --timeout 120 --magic '' --markdown '' --out "$OUT/gpu-run.json"
if [ "$SUITE" = gpu ] && [ "$(left)" -gt 140 ]; then
  echo "== P+compile on packed causal-LM blocks ($(($(date +%s)-t0)) s)"
  timeout $(cap 130) python3 -m benchmarks.run --suite "$SUITE" --workloads gpt2-clm --variants P+compile --repeats 1 \
    --timeout 120 --magic '' --markdown '' --out "$OUT/gpu-compile.json"
fi
tar -czf "$OUT/logs.tgz" -C "$KIT/bench" logs specs 2>/dev/null
echo "== done ($(($(date +%s)-t0)) s)"
