#!/usr/bin/env bash
# The GPU runs of the deepcheck presets in ONE device call (each step under its own limit; the sum is
# 590 s, for a 10-minute command). Run from the repository root on the device machine:
#
#   bash deepcheck/device/gpu_checks.sh            # the device tool sets $OUT
#
# Before the call, on the development machine (both paths are git-ignored; name them in `carry`):
#   mkdir -p data wheels && cp ../shared/data/cifar10_subset.npz data/
#   pip download tqdm --no-deps -d wheels          # in case the device image lacks tqdm
#   run(command="bash deepcheck/device/gpu_checks.sh", carry=["data", "wheels"], timeout_s=600)
#
# Every deepcheck run checkpoints each epoch, so a step that runs out is killed, logged, and resumed by
# running the script again. Everything comes back as $OUT/log.txt, $OUT/deepcheck_batched_gpu.json and
# $OUT/runs.tar.gz (reports, figures and arrays, no checkpoints). Unpack the run folders into
# deepcheck/results/<preset>-gpu/ and commit them with the device named.
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
  SMALL=(--epochs 1 --seeds 0,1,2,3,4 --n-train 256 --n-test 64)
fi
DATA=(--data-root data)

step() {  # step NAME LIMIT_SECONDS COMMAND...
  local name=$1 limit=$2
  shift 2
  echo "== $name: start $(date -u +%H:%M:%S), limit ${limit}s" >>"$LOG"
  local t0=$SECONDS
  timeout "$limit" "$@" >>"$LOG" 2>&1
  echo "== $name: exit $? after $((SECONDS - t0)) s" >>"$LOG"
}

deep() {  # deep NAME LIMIT PRESET-OR-CONFIG-ARGS...
  local name=$1 limit=$2
  shift 2
  step "$name" "$limit" "$PY" -m ghostsing.deepcheck "$@" --device "$DEV" "${DATA[@]}" \
    --out "$RUNS/$name-gpu" --resume --no-progress "${SMALL[@]}"
}

{
  echo "== machine"; date -u; nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1
  "$PY" -c "import sys, torch, numba, scipy, sympy, matplotlib; print(sys.version.split()[0], 'torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'numba', numba.__version__)"
} >>"$LOG" 2>&1
"$PY" -c "import tqdm" 2>/dev/null || "$PY" -m pip install --no-index --no-deps wheels/tqdm-*.whl >>"$LOG" 2>&1

# batched vs sequential training of 8 seeds of the 30-layer MLP
step batched 40 "$PY" benchmarks/bench_deepcheck_batched.py --device "$DEV" --seeds 8 --steps 50 --repeats 3 \
  --json "$OUT/deepcheck_batched_gpu.json"
# why residual branches die (Adam vs SGD, warm-up, branch scale; epoch 1 step by step): the preset
deep dead-branches 40 --preset dead-branches
# the fair comparison (looks-linear plain nets, residual with and without branch scaling, lr per arm)
deep fair-comparison 120 --preset fair-comparison
# Orhan & Pitkow's comparison on CIFAR-10 (one 40 MB subset fits the transfer)
deep orhan-pitkow 90 --config deepcheck/device/orhan-pitkow-gpu.toml
# Parker-Hoang as an ablation: the residual CNN with and without its two additions, 250 epochs, 5 seeds
deep parker-hoang-ablation 120 --config deepcheck/device/parker-hoang-gpu.toml
# the curvature checks at their GPU-sized presets (their own data settings)
for p in hessian slt; do
  name=$p
  [ "${DRY:-0}" = 1 ] && name=$p-small
  step "$p" 30 "$PY" -m ghostsing.deepcheck --preset "$name" --device "$DEV" --out "$RUNS/$p-gpu" --resume \
    --no-progress
done

# the other curvature checks at their GPU-sized presets: Hessian null space, edge of stability (Cohen et al.),
# Lowell's gradient singularity, the bridge from the reduced model (tau against the skip strength alpha)
for p in nullspace eos lowell bridge; do
  name=$p
  [ "${DRY:-0}" = 1 ] && name=$p-small
  step "$p" 30 "$PY" -m ghostsing.deepcheck --preset "$name" --device "$DEV" --out "$RUNS/$p-gpu" --resume \
    --no-progress
done

tar czf "$OUT/runs.tar.gz" -C "$RUNS" --exclude=checkpoints . >>"$LOG" 2>&1
echo "== done $(date -u +%H:%M:%S)" >>"$LOG"
tail -n 40 "$LOG"
