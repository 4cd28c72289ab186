#!/usr/bin/env bash
# GPU check for the device tool: Llama-3-8B and Qwen2-7B architectures (random bf16 weights, LoRA r=8 q/v,
# WVS-length prompts), our fast path against the paper's naive path: examples/s, MFU, peak memory; evaluation
# in 4 option orders without and with the prefix shared across an item's orders.
# Needs torch, transformers, peft and lightning (no Hydra, no data, no network). About 4-6 minutes on an H100;
# the Python side stops starting new measurements after --budget-s (default 420 s) and `timeout` is a backstop.
#   bash experiments/gpu_check.sh [--models llama3_8b] [--budget-s 300] ...   (results: $OUT/gpu_check.json)
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-outputs/gpu_check}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv || true
python -c "import torch, transformers, peft, lightning; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'transformers', transformers.__version__, 'peft', peft.__version__, 'lightning', lightning.__version__)"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" TOKENIZERS_PARALLELISM=false HF_HUB_OFFLINE=1
timeout 500 python experiments/gpu_check.py --out "$OUT" "$@" 2>&1 | tee "$OUT/gpu_check.log"
