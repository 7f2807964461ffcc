#!/usr/bin/env bash
# The spatial-memory variant at the maze3d experiment scale (README.md beside this file): trains
# configs/maze3d_spatial_memory.py (2,000 steps, like every maze3d model) and probes it exactly as
# experiments/state_carrying probes LSSVWM and its sliding-window controls (retrieval, context 16
# + 15 walked back, 32 test episodes, distance bins at k = 4, W = 16 and the 32-frame window):
#   blind   every walked-back frame generated with the earlier ones fed as pure noise (not stored),
#           so a view last seen > 4 frames ago can come only from the store;
#   blind, store emptied right after the context (--reset=at:0:ssm): the same weights without
#           their memory, the control that says how much of the score is memory;
#   truth   teacher forcing; generated: the rollout; oracle_depth: the rollout with the store
#           written with the dataset's depth instead of the predicted one.
# Then paired per-episode differences against the committed state_carrying runs (same episodes).
#
#   RUNS=/tmp/lssvwm_runs bash experiments/spatial_memory/run_spatial_memory.sh
#
# Every step is skipped when its output exists and training resumes by itself, so the script can
# be re-run after an interruption.
set -euo pipefail
RUNS=${RUNS:-/tmp/lssvwm_runs}
OUT=${OUT:-experiments/spatial_memory/results}
EPISODES=32
WORKDIR="${RUNS}/maze3d_spatial_memory"
python -m lssvwm.train --config=configs/maze3d_spatial_memory.py --workdir="${WORKDIR}"
evaluate() {  # evaluate OUTPUT.json FLAGS...
  local output=$1
  shift
  [[ -f ${output} ]] || python -m lssvwm.evaluate --workdir="${WORKDIR}" --task=retrieval \
    --data=maze3d.test_episodes=${EPISODES} --num_episodes=${EPISODES} --context=16 \
    --horizon=15 --distance_edges=4,16,32 --output="${output}" "$@"
}
evaluate "${OUT}/blind/spatial_memory.json" --history=blind
evaluate "${OUT}/blind/spatial_memory_store_emptied_after_context.json" --history=blind \
  --reset=at:0:ssm
evaluate "${OUT}/truth/spatial_memory.json" --history=truth
evaluate "${OUT}/generated/spatial_memory.json"
evaluate "${OUT}/generated/spatial_memory_oracle_depth.json" --history=oracle_depth
python -m experiments.spatial_memory.compare --results "${OUT}"
