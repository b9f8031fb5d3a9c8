#!/usr/bin/env bash
# The device check: the CUDA tests and the GPU benchmarks, in one short run.
#
#   bash benchmarks/gpu_check.sh            # on a machine with a CUDA GPU
#   bash benchmarks/gpu_check.sh --quick    # a smoke run (also on a CPU, to check the script)
#
# Writes reports/performance_gpu.md (the tables of benchmarks/bench_quantify.py on the GPU)
# and prints the tests' summary. Expects the project installed (pip install -e ".[test]").
set -euo pipefail
cd "$(dirname "$0")/.."
quick=()
[[ "${1:-}" == "--quick" ]] && quick=(--quick)
python - <<'PY'
import torch
print("torch", torch.__version__, "cuda available:", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")
PY
if python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
  device=cuda
else
  device=cpu
  echo "no CUDA device: running the script's steps on the CPU (a check of the script only)"
fi
# the tests that exercise a CUDA device (they skip without one)
python -m pytest -q -k "cuda or stacked or chunk" tests/test_quantification_engine.py tests/test_quantification_chunking.py tests/test_quantify_parts.py tests/test_reliability.py
out=reports/performance_gpu.md
[[ "$device" == cpu ]] && out=$(mktemp --suffix=.md)
python benchmarks/write_performance_report.py --device "$device" "${quick[@]}" --out "$out"
echo "wrote $out"
