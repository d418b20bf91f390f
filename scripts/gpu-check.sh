#!/usr/bin/env bash
# The GPU checks in one command, for a machine with an NVIDIA GPU (no network needed).
#
#   bash scripts/gpu-check.sh            # logs and CSVs in $OUT (default: a temp dir)
#
# 1. where hdrhistogram is missing, installs the carried wheels from .whl/ (hdrhistogram,
#    pbr: what labcap.measure.run needs beyond the machine's own packages) into /tmp/site;
# 2. runs `pytest -m gpu tests/gpu` (real NVML: a torch process's PID, memory and
#    utilisation; clean stop; a recording into a run directory);
# 3. runs bench/gpu_overhead.py: sampler CPU at a 1 s interval, must be < 1 % of a core.
# Without a usable GPU it says why and exits 2 before running anything.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
OUT=${OUT:-$(mktemp -d -t labcap-gpu-check.XXXXXX)}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 LABCAP_GPU_OUT="$OUT"

if ! "$PY" -c "import hdrh" 2>/dev/null && compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || { echo "gpu-check: installing .whl/ failed" >&2; exit 3; }
  export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD/src:$PWD${PYTHONPATH:+:$PYTHONPATH}"

reason=$("$PY" -c 'import pynvml
from labcap.collectors.gpu import nvml_unavailable_reason
print(nvml_unavailable_reason(pynvml))' 2>&1) || reason="nvidia-ml-py or labcap failed to import: $reason"
if [ -n "$reason" ]; then
  echo "gpu-check: no usable GPU: $reason" >&2
  exit 2
fi

{ nvidia-smi --query-gpu=name,driver_version,memory.total,mig.mode.current --format=csv || true
  "$PY" -c 'import sys, pynvml, torch, pandas; print(sys.version.split()[0], "nvidia-ml-py",
  getattr(pynvml, "__version__", "?"), "torch", torch.__version__, "pandas", pandas.__version__)'
} 2>&1 | tee "$OUT/machine.txt"

"$PY" -m pytest -m gpu tests/gpu --confcutdir=tests/gpu -p no:cacheprovider -q -rs -s \
  2>&1 | tee "$OUT/pytest.log"
tests_rc=${PIPESTATUS[0]}

"$PY" bench/gpu_overhead.py 30 1 2>&1 | tee "$OUT/overhead.log"
bench_rc=${PIPESTATUS[0]}

echo "gpu-check: pytest exit $tests_rc, overhead exit $bench_rc; logs in $OUT"
[ "$tests_rc" -eq 0 ] && [ "$bench_rc" -eq 0 ]
