#!/usr/bin/env bash
# The GPU suite: one command on a GPU machine, everything into one results folder.
#
#   bash benchmarks/fetch_gpu_wheels.sh      # HERE first, where PyPI is reachable (fills .whl/)
#   bash benchmarks/gpu_suite.sh             # THERE, from the repo root; carry .whl
#
# It installs what the GPU machine lacks from .whl/ (only when not importable), records the
# device, driver and versions, runs the gpu-marked tests, compares every preset at fp32 and
# fp16 (eager and CUDA-graph replay, with the roofline bound), times rtdetr_l at 640 px
# (batch 1, fp16 and fp32), three presets on torch.compile, and runs a 20-trial cost-only
# search on CUDA. With CUDA_VISIBLE_DEVICES= it runs end to end on a CPU: the gpu tests skip
# with their reason and every CUDA step says it was skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results/gpu-$(date -u +%Y%m%d-%H%M)}
mkdir -p "$OUT"
started=$(date +%s)
log() { echo "[$(( $(date +%s) - started )) s] $*" | tee -a "$OUT/suite.log"; }

if ! python3 -c "import optuna, fvcore, thop" 2>/dev/null; then
  log "installing the carried wheels into /tmp/site"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || { log "cannot install .whl/: run benchmarks/fetch_gpu_wheels.sh where PyPI is reachable"; exit 2; }
  export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
NB="python3 -m nasbench.cli"

python3 - > "$OUT/environment.txt" <<'PY'
import platform, subprocess, torch
print("python", platform.python_version(), "| torch", torch.__version__, "| CUDA", torch.version.cuda)
print("device:", torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device visible")
try:
    print(subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=30).stdout.strip())
except (OSError, subprocess.SubprocessError) as exc:
    print("nvidia-smi:", exc)
PY
cat "$OUT/environment.txt" | tee -a "$OUT/suite.log"
CUDA=$(python3 -c "import torch; print(int(torch.cuda.is_available()))")

log "gpu tests"
python3 -m pytest -q -rs -p no:cacheprovider tests/gpu > "$OUT/gpu_tests.txt" 2>&1
tail -n 3 "$OUT/gpu_tests.txt" | tee -a "$OUT/suite.log"

if [ "$CUDA" != 1 ]; then
  log "no CUDA device: compare fp32/fp16, rtdetr_l and the CUDA search skipped"
  log "done in $(( $(date +%s) - started )) s; results in $OUT"
  exit 0
fi
PRESETS=$(python3 -c "from nasbench import zoo; print(' '.join(n for n in zoo.all_presets() if n != 'hgnetv2_l'))")
for dtype in fp32 fp16; do
  log "compare every preset, $dtype, eager and CUDA-graph replay, with the roofline bound"
  $NB compare $PRESETS --device cuda --dtype "$dtype" --cuda-graph --csv "$OUT/compare_$dtype.csv" \
    --out "$OUT/compare_$dtype" > "$OUT/compare_$dtype.txt" 2>&1 || log "compare $dtype failed (see compare_$dtype.txt)"
  log "rtdetr_l at 640 px, batch 1, $dtype (the seed quotes 11.6 ms on a T4 with TensorRT fp16: other hardware)"
  $NB compare rtdetr_l hgnetv2_l --device cuda --dtype "$dtype" --csv "$OUT/rtdetr_l_$dtype.csv" \
    --out "$OUT/rtdetr_l_$dtype" > "$OUT/rtdetr_l_$dtype.txt" 2>&1 || log "rtdetr_l $dtype failed"
done
log "torch.compile on CUDA for three presets (compile time is setup, not latency)"
$NB compare mobilevit_xxs efficientvit_m0 ghostnetv3_100 --device cuda --backend compile --no-crosscheck \
  --csv "$OUT/compare_compile.csv" --out "$OUT/compare_compile" > "$OUT/compare_compile.txt" 2>&1 \
  || log "compile compare failed (see compare_compile.txt)"
log "20-trial cost-only search on CUDA"
$NB search --space mobilevit --budget 5ms --no-train --trials 20 --device cuda --no-presets \
  --storage "sqlite:///$OUT/search.db" --out "$OUT/search" > "$OUT/search.txt" 2>&1 || log "search failed"
log "done in $(( $(date +%s) - started )) s; results in $OUT"
