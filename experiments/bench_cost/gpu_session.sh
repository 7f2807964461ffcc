#!/usr/bin/env bash
# One accelerator record of experiments/bench_cost in one call of a lent GPU machine (README),
# inside DEADLINE seconds (default 550). RECORD picks it:
#   paper  (default) configs/paper_200m.py in bfloat16 (cuDNN attention): the train step at
#          100- and 400-frame windows, batch 1, and the per-frame time at frames 100 and 1,000,
#          for LSSVWM and the full-context transformer;
#   family the maze3d family's cost curves (the CPU record's config and models; 3 windows,
#          frames 20..10,000).
# First, at once on the host's cores: every compile of the record into a persistent compilation
# cache (--compile-only) and tests/nn/test_cudnn_attention.py (cuDNN against XLA); then the timed
# run, one model at a time, loading the compiles from the cache. One record per call: on an H100
# host 30 of the family's 40 compiles took 335 s (5 at once) and two 200M train steps at 100 frames did
# not compile in 150 s, so a 15-minute lease holds one record, not two (README).
#   LSSVWM_COMMIT=<commit> RECORD=paper bash experiments/bench_cost/gpu_session.sh
# (LSSVWM_COMMIT: the device's copy of .git may be stale.) Writes the record's JSON and the logs
# into $OUT; its .md table and plots are made from the JSON afterwards:
# `python -m experiments.bench_cost.bench_cost --rewrite FILE.json`.
# Packages the machine lacks travel as wheels in .whl/ (see ../.library/device/README.md);
# .whl/alt/ holds the versions this project pins, tried when the machine's own fail to import.
set -u
OUT=${OUT:-/tmp/bench_cost_gpu}
DEADLINE=${DEADLINE:-550}
WORK=/tmp/bench_cost_work
CACHE=$WORK/xla_cache
mkdir -p "$OUT" "$WORK"
export PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_MEM_FRACTION=0.92
left() {  # seconds to the deadline, less $1 kept for later (at least 10)
  local seconds=$((DEADLINE - SECONDS - ${1:-0}))
  echo $((seconds > 10 ? seconds : 10))
}
rm -f "$WORK"/*.json  # a warm machine's earlier records (its compilation cache is kept)
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
[ -n "${ARGS:-}" ] || case "${RECORD:-paper}" in  # ARGS: other bench_cost arguments
  paper) ARGS="--config configs/paper_200m.py --set model.dtype=bfloat16 --models lssvwm,causal_full
    --train-windows 100,400 --train-batch 1 --reps 2 --frames 100,1000" ;;
  family) ARGS="--models lssvwm,causal_full,causal_window,mamba2,spatial_memory
    --train-windows 16,64,256 --reps 2 --frames 20,100,1000,4000,10000" ;;
  *) echo "RECORD must be paper or family, got ${RECORD}"; exit 2 ;;
esac
MODELS=$(echo $ARGS | grep -oE -- '--models [^ ]+' | cut -d' ' -f2 | tr ',' '\n' | wc -l)
TIMING=${TIMING:-60}  # seconds per model for the timed run

# 1. Compiles (CPU work, all models at once; the device memory grows as needed) and cuDNN tests.
XLA_PYTHON_CLIENT_PREALLOCATE=false LSSVWM_TEST_XLA_OPT=1 timeout 120 python3 -m pytest -q \
  -p no:cacheprovider -o addopts="" tests/nn/test_cudnn_attention.py >"$OUT/cudnn_tests.log" 2>&1 &
tests=$!
XLA_PYTHON_CLIENT_PREALLOCATE=false timeout $(left $((MODELS * TIMING))) \
  $BENCH $ARGS --compile-only >"$OUT/compile.log" 2>&1
echo "[$SECONDS s] $(grep -c ': compiled in' "$OUT/compile.log") compiles"
wait $tests
tail -1 "$OUT/cudnn_tests.log"

# 2. The timed run, one model at a time.
timeout $(left) $BENCH $ARGS --worker-timeout $(($(left) / MODELS - 2)) \
  --out "$WORK/${RECORD:-paper}_gpu.json" 2>&1 | grep -v "^|" | tee "$OUT/${RECORD:-paper}_gpu.log"
echo "[$SECONDS s] done"
kill $copier
cp "$WORK"/*.json "$OUT"/
ls -la "$OUT"
