#!/usr/bin/env bash
# The GPU parts of the deepcheck issues in ONE device call (sized for a 10-minute command and a
# 15-minute session budget). Run from the repository root on the device machine:
#
#   bash deepcheck/device/gpu_checks.sh            # the device tool sets $OUT
#
# Before the call, on the development machine (both paths are git-ignored; name them in `carry`):
#   mkdir -p data wheels && cp ../shared/data/cifar10_subset.npz data/
#   pip download tqdm --no-deps -d wheels          # in case the device image lacks tqdm
#   run(command="bash deepcheck/device/gpu_checks.sh", carry=["data", "wheels"], timeout_s=600)
#
# Each step has its own time limit (a step that runs out is killed and logged; the deepcheck runs
# checkpoint every epoch, so running the script again resumes them). Everything comes back as three
# files: $OUT/log.txt, $OUT/deepcheck_batched_gpu.json and $OUT/runs.tar.gz (reports, figures and
# arrays, no checkpoints). Copy the run folders into deepcheck/results/<name>-gpu/ and commit them.
#
# DRY=1 runs the same steps on the CPU with tiny settings (to check the script itself, not the GPU).
set -u
OUT=${OUT:-$PWD/gpu-out}
RUNS=$PWD/deepcheck-runs/gpu
mkdir -p "$OUT" "$RUNS"
export PYTHONPATH=$PWD/src MPLBACKEND=Agg
LOG=$OUT/log.txt
PY=${PY:-python3}
DEV=cuda
SMALL=()
if [ "${DRY:-0}" = 1 ]; then
  DEV=cpu
  SMALL=(--epochs 1 --seeds 1)
fi

step() {  # step NAME LIMIT_SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name: start $(date -u +%H:%M:%S), limit ${limit}s" >>"$LOG"
  local t0=$SECONDS
  timeout "$limit" "$@" >>"$LOG" 2>&1
  echo "== $name: exit $? after $((SECONDS - t0)) s" >>"$LOG"
}

{
  echo "== machine"; date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  "$PY" -c "import sys, torch, numba, scipy, sympy, matplotlib; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numba', numba.__version__)"
} >>"$LOG" 2>&1
"$PY" -c "import tqdm" 2>/dev/null || "$PY" -m pip install --no-index --no-deps wheels/tqdm-*.whl >>"$LOG" 2>&1

# issue 5: batched vs sequential training of 8 seeds of the 30-layer MLP (target >= 4x on a GPU)
step batched 100 "$PY" benchmarks/bench_deepcheck_batched.py --device "$DEV" --seeds 8 --steps 50 --repeats 3 \
  --json "$OUT/deepcheck_batched_gpu.json"
# issue 5: the two papers' experiments (CIFAR-10 only: one 40 MB subset fits the transfer)
step orhan-pitkow 220 "$PY" -m ghostsing.deepcheck --config deepcheck/device/orhan-pitkow-gpu.toml --device "$DEV" \
  --out "$RUNS/orhan-pitkow-gpu" --resume --no-progress "${SMALL[@]}"
step parker-hoang 150 "$PY" -m ghostsing.deepcheck --config deepcheck/device/parker-hoang-gpu.toml --device "$DEV" \
  --out "$RUNS/parker-hoang-gpu" --resume --no-progress "${SMALL[@]}"
# issue 6: Hessian spectra and the LLC at the preset sizes, on the GPU
for p in hessian slt; do
  step "$p" 60 "$PY" -m ghostsing.deepcheck --preset "$p" --device "$DEV" --out "$RUNS/$p-gpu" --resume \
    --no-progress "${SMALL[@]}"
done

tar czf "$OUT/runs.tar.gz" -C "$RUNS" --exclude=checkpoints . >>"$LOG" 2>&1
echo "== done $(date -u +%H:%M:%S)" >>"$LOG"
tail -n 40 "$LOG"
