#!/usr/bin/env bash
# The accelerator records of experiments/bench_cost, in one call of a lent GPU machine (README),
# inside DEADLINE seconds (default 550):
#   1. at once, on the CPU cores: every compile of both records into a persistent compilation
#      cache (--compile-only), and tests/nn/test_cudnn_attention.py (cuDNN against XLA);
#   2. the maze3d family's cost curves (the CPU record's models and config, 3 windows, frames
#      20..10,000), timed one model at a time from the cache, as soon as its compiles are done;
#   3. the paper-scale record (configs/paper_200m.py in bfloat16, cuDNN attention): the train
#      step at 100- and 400-frame windows, batch 1, and the per-frame time at frames 100 and
#      1,000, for LSSVWM and the full-context transformer.
#   LSSVWM_COMMIT=$(git rev-parse HEAD) bash experiments/bench_cost/gpu_session.sh
# Writes the records' JSON and the logs into $OUT (the .md tables and plots are made from the
# JSON afterwards: `python -m experiments.bench_cost.bench_cost --rewrite FILE.json`).
# Packages the machine lacks travel as wheels in .whl/ (see ../.library/device/README.md);
# .whl/alt/ holds the versions this project pins, tried when the machine's own fail to import.
set -u
OUT=${OUT:-/tmp/bench_cost_gpu}
DEADLINE=${DEADLINE:-550}
WORK=/tmp/bench_cost_work
CACHE=$WORK/xla_cache
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.92
left() { echo $((DEADLINE - SECONDS > 1 ? DEADLINE - SECONDS : 1)); }
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
(while sleep 10; do cp "$WORK"/*.json "$OUT"/ 2>/dev/null; done) &  # records so far, if killed
copier=$!

BENCH="python3 -m experiments.bench_cost.bench_cost --compilation-cache $CACHE"
FAMILY=${FAMILY:-"--models lssvwm,causal_full,causal_window,mamba2,spatial_memory --train-windows 16,64,256
  --reps 2 --frames 20,100,1000,4000,10000"}
PAPER=${PAPER:-"--config configs/paper_200m.py --set model.dtype=bfloat16 --models lssvwm,causal_full
  --train-windows 100,400 --train-batch 1 --reps 2 --frames 100,1000"}

# 1. Compiles (CPU work, all models at once; the device memory grows as needed) and cuDNN tests.
export XLA_PYTHON_CLIENT_PREALLOCATE=false
timeout $(($(left) - 200)) $BENCH $FAMILY --compile-only >"$OUT/compile.log" 2>&1 &
family_compiles=$!
timeout $(($(left) - 130)) $BENCH $PAPER --compile-only >"$WORK/compile_paper.log" 2>&1 &
paper_compiles=$!
LSSVWM_TEST_XLA_OPT=1 timeout 120 python3 -m pytest -q -p no:cacheprovider -o addopts="" \
  tests/nn/test_cudnn_attention.py >"$OUT/cudnn_tests.log" 2>&1 &
wait $family_compiles
echo "[$SECONDS s] family compiled: $(grep -c ': compiled in' "$OUT/compile.log") compiles"
unset XLA_PYTHON_CLIENT_PREALLOCATE

# 2. The family's curves, one model at a time (the paper-scale compiles may still be running).
timeout $(($(left) - 130)) $BENCH $FAMILY --worker-timeout 50 --out "$WORK/family_gpu.json" \
  2>&1 | grep -v "^|" | tee "$OUT/family_gpu.log"
echo "[$SECONDS s] family timed"
wait $paper_compiles
cat "$WORK/compile_paper.log" >>"$OUT/compile.log"
tail -3 "$OUT/cudnn_tests.log"

# 3. The paper-scale record.
timeout $(left) $BENCH $PAPER --worker-timeout $(($(left) / 2 - 2)) \
  --out "$WORK/paper_200m_bf16_gpu.json" 2>&1 | grep -v "^|" | tee "$OUT/paper_200m_gpu.log"
echo "[$SECONDS s] done"
kill $copier
cp "$WORK"/*.json "$OUT"/
ls -la "$OUT"
