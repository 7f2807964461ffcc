#!/usr/bin/env bash
# The accelerator records of experiments/bench_cost, in one call of a lent GPU machine (README):
# the paper-scale (configs/paper_200m.py, ~200M parameters, 64x64 frames in 4x4 patches) train
# step at 100- and 400-frame windows, batch 1, and the per-frame generation time at frames 100
# and 1,000, for LSSVWM and the full-context transformer.
#   bash experiments/bench_cost/gpu_session.sh            # writes into $OUT (default /tmp/...)
# Packages the machine lacks travel as wheels in .whl/ (see ../.library/device/README.md);
# .whl/alt/ holds the versions this project pins, tried when the machine's own fail to import.
set -u
OUT=${OUT:-/tmp/bench_cost_gpu}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.92
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD
fi
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm --format=csv,noheader
python3 -c "import jax, flax, optax; print('jax', jax.__version__, 'flax', flax.__version__, \
'optax', optax.__version__, jax.devices())"
if ! python3 -c "import lssvwm.train, experiments.bench_cost.bench_cost" 2>"$OUT/import.log"; then
  tail -3 "$OUT/import.log"
  echo "retrying with the pinned flax/optax/orbax"
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/alt/*.whl
  python3 -c "import lssvwm.train, experiments.bench_cost.bench_cost" || exit 1
fi
timeout "${BUDGET:-520}" python3 -m experiments.bench_cost.bench_cost --config configs/paper_200m.py \
  --models lssvwm,causal_full --train-windows 100,400 --train-batch 1 --reps 3 \
  --frames 100,1000 --worker-timeout "${WORKER_TIMEOUT:-250}" --out "$OUT/paper_200m_gpu.json" \
  2>&1 | tee "$OUT/paper_200m_gpu.log"
ls -la "$OUT"
