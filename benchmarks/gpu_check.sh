#!/usr/bin/env bash
# GPU readiness check of tcmbench: train / resume / evaluate with AMP for
# dbnet, pan and fcenet (plain and --tcm), a torchrun run, bench --compare-tcm
# latency at 640 and 1024, and the onnxruntime CUDA provider; one JSON file.
#
#   bash benchmarks/gpu_check.sh --out gpu-check.json        # on a GPU (< 8 min)
#   bash benchmarks/gpu_check.sh --dry-run --out dry.json    # same steps, CPU, tiny
#
# The steps live in benchmarks/gpu_check.py (its docstring says what each
# does); docs/benchmarks.md "GPU check" says how to run it and where its
# figures go. PYTHON selects the interpreter (default: python, else python3).
# Exit status: 0 when every step passed (or was skipped with a reason), 1
# when any failed -- after all of them have run.
set -uo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  if command -v python >/dev/null 2>&1; then py=python; else py=python3; fi
fi
exec "$py" "$here/gpu_check.py" "$@"
