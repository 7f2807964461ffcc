#!/usr/bin/env bash
# The CPU-scale memory experiment (README.md beside this file): trains the maze3d LSSVWM and its
# sliding-window control, then scores maze3d retrieval
#   1. within the 32-frame training window (context 16, the path walked back for 15 frames:
#      views last seen 2..32 frames ago) -- LSSVWM (k = 4 attention frames + SSM) against the
#      sliding-window transformer with W = 16 frames and with W = 4 (LSSVWM minus its SSM);
#   2. beyond it (context 128, walked back for 127 frames: views last seen up to 256 frames ago)
#      -- the same LSSVWM with its SSM state carried through the rollout, reset to zero every
#      32 frames (the training window; the k-frame attention cache stays), or every 64 frames;
#   2b. memory probes within the window, free of rollout drift (`--history`): "blind" -- every
#      walked-back frame is generated while the frames before it are fed as pure noise, so a
#      view can only come from what the model kept of the context (beyond k = 4 frames: LSSVWM's
#      SSM state; beyond 16: nothing for W = 16) --, and "truth" (teacher forcing); LSSVWM also
#      with its SSM state zeroed right after the context (same weights, memory removed);
#   3. the training-time comparison: the trained LSSVWM fine-tuned for FINETUNE_STEPS more steps
#      on consecutive 32-frame windows of the same episodes (configs/ablation_state.py), either
#      with the state carried across windows (policy=carried) or reset to zero at every window
#      (policy=zero_reset) -- same start, data, steps and optimizer -- then scored beyond the
#      window with the state carried through the rollout and with the SSM state reset every 32,
#      and with the blind history (as in 2b) -- also the plain-trained LSSVWM's rollout policies;
#   4. a memory-heavy fine-tune of all three models (below), then the blind probe again.
#
#   RUNS=/tmp/lssvwm_runs bash experiments/state_carrying/run_memory_experiment.sh
#
# Each step is skipped when its output exists (training resumes by itself), so the script can be
# re-run after an interruption. ~3 h on 2 CPU cores, most of it training (RETRACE_STEPS=0 leaves
# out the memory-heavy fine-tune of part 4).
set -euo pipefail
RUNS=${RUNS:-/tmp/lssvwm_runs}
OUT=${OUT:-experiments/state_carrying/results}
EPISODES=32
FINETUNE_STEPS=${FINETUNE_STEPS:-400}
DATA="--data=maze3d.test_episodes=${EPISODES} --num_episodes=${EPISODES}"

# run name -> config: LSSVWM and two sliding-window controls, W = 16 frames and W = 4 (LSSVWM's own
# attention window: that control is LSSVWM without its SSM branch).
declare -A CONFIGS=(
  [lssvwm]=configs/maze3d_lssvwm.py
  [causal_window]=configs/maze3d_causal_window.py
  [causal_window4]=configs/maze3d_causal_window.py:window=4
)
# --config.model.depth=6: the committed results predate parameter matching (controls now 9 layers).
for run in lssvwm causal_window causal_window4; do
  python -m lssvwm.train --config="${CONFIGS[${run}]}" --workdir="${RUNS}/maze3d_${run}" \
    --config.model.depth=6
done

evaluate() {  # evaluate OUTPUT.json WORKDIR FLAGS...
  local output=$1 workdir=$2
  shift 2
  [[ -f ${output} ]] || python -m lssvwm.evaluate --workdir="${workdir}" --task=retrieval \
    ${DATA} --output="${output}" "$@"
}

for run in lssvwm causal_window causal_window4; do
  evaluate "${OUT}/within_window/${run}.json" "${RUNS}/maze3d_${run}" \
    --context=16 --horizon=15 --distance_edges=4,16,32
done
python -m lssvwm.evaluate --compare "${OUT}"/within_window/*.json \
  --output="${OUT}/within_window/compare.md"

for history in blind truth; do
  for run in lssvwm causal_window causal_window4; do
    evaluate "${OUT}/memory_probe/${history}/${run}.json" "${RUNS}/maze3d_${run}" \
      --context=16 --horizon=15 --distance_edges=4,16,32 --history="${history}"
  done
  evaluate "${OUT}/memory_probe/${history}/lssvwm_ssm_zeroed_after_context.json" \
    "${RUNS}/maze3d_lssvwm" --context=16 --horizon=15 --distance_edges=4,16,32 \
    --history="${history}" --reset=at:0:ssm
  python -m lssvwm.evaluate --compare "${OUT}/memory_probe/${history}"/*.json \
    --output="${OUT}/memory_probe/${history}/compare.md"
done

for policy in never every:32:ssm every:64:ssm; do
  evaluate "${OUT}/beyond_window/lssvwm_reset_${policy//:/_}.json" "${RUNS}/maze3d_lssvwm" \
    --context=128 --horizon=127 --distance_edges=4,32,64,128 --reset="${policy}"
done
for run in causal_window causal_window4; do
  evaluate "${OUT}/beyond_window/${run}.json" "${RUNS}/maze3d_${run}" \
    --context=128 --horizon=127 --distance_edges=4,32,64,128
done
python -m lssvwm.evaluate --compare "${OUT}"/beyond_window/*.json \
  --output="${OUT}/beyond_window/compare.md"

for policy in carried zero_reset; do
  python -m lssvwm.train --config="configs/ablation_state.py:policy=${policy}" \
    --workdir="${RUNS}/finetune_${policy}" --config.training.init_from="${RUNS}/maze3d_lssvwm" \
    --config.training.steps="${FINETUNE_STEPS}" --config.optimizer.learning_rate=5e-4 \
    --config.optimizer.warmup_steps=20 --config.training.eval_every=0 \
    --config.training.sample_every=0
  for reset in never every:32:ssm; do
    evaluate "${OUT}/training_policy/${policy}_reset_${reset//:/_}.json" \
      "${RUNS}/finetune_${policy}" --context=128 --horizon=127 --distance_edges=4,32,64,128 \
      --reset="${reset}"
  done
  # The same comparison without rollout drift: blind history (pure noise before each frame).
  evaluate "${OUT}/beyond_window_blind/trained_${policy}.json" "${RUNS}/finetune_${policy}" \
    --context=128 --horizon=127 --distance_edges=4,32,64,128 --history=blind
done
python -m lssvwm.evaluate --compare "${OUT}"/training_policy/*.json \
  --output="${OUT}/training_policy/compare.md"
for reset in never every:32:ssm; do  # rollout policies of the plain-trained LSSVWM, blind
  evaluate "${OUT}/beyond_window_blind/lssvwm_reset_${reset//:/_}.json" "${RUNS}/maze3d_lssvwm" \
    --context=128 --horizon=127 --distance_edges=4,32,64,128 --history=blind --reset="${reset}"
done
python -m lssvwm.evaluate --compare "${OUT}"/beyond_window_blind/*.json \
  --output="${OUT}/beyond_window_blind/compare.md"

# 4. A memory-heavy fine-tune (RETRACE_STEPS, 0 skips it): each of the three models trained
#    further from its own weights on maze3d episodes that retrace their path more often and in
#    shorter stretches (retrace_fraction 0.5, 8-16 frames: 5.8 retraces per episode instead of
#    2.7, twice the windows with a walk back), same steps/optimizer for all; then the blind probe.
RETRACE_STEPS=${RETRACE_STEPS:-600}
RETRACE_DATA="--config.data.maze3d.retrace_fraction=0.5 --config.data.maze3d.retrace_min=8"
RETRACE_DATA+=" --config.data.maze3d.retrace_max=16"
if ((RETRACE_STEPS > 0)); then
  for run in lssvwm causal_window causal_window4; do
    # --config.model.depth=6: the committed results predate parameter matching (as above).
    # shellcheck disable=SC2086  # RETRACE_DATA is a list of flags
    python -m lssvwm.train --config="${CONFIGS[${run}]}" --workdir="${RUNS}/retrace_${run}" \
      --config.model.depth=6 --config.training.init_from="${RUNS}/maze3d_${run}" ${RETRACE_DATA} \
      --config.training.steps="${RETRACE_STEPS}" --config.optimizer.learning_rate=5e-4 \
      --config.optimizer.warmup_steps=20 --config.training.eval_every=0 \
      --config.training.sample_every=0
    evaluate "${OUT}/retrace_finetune_blind/${run}.json" "${RUNS}/retrace_${run}" \
      --context=16 --horizon=15 --distance_edges=4,16,32 --history=blind
  done
  evaluate "${OUT}/retrace_finetune_blind/lssvwm_ssm_zeroed_after_context.json" \
    "${RUNS}/retrace_lssvwm" --context=16 --horizon=15 --distance_edges=4,16,32 \
    --history=blind --reset=at:0:ssm
  python -m lssvwm.evaluate --compare "${OUT}"/retrace_finetune_blind/*.json \
    --output="${OUT}/retrace_finetune_blind/compare.md"
fi

# Diagnostic: the same model continuing *forward* (the reasoning split's 8 episodes; 16 context
# frames, 15 generated) -- how fast does a forward rollout drift, next to the walk back?
evaluate "${OUT}/forward_check/lssvwm_reasoning.json" "${RUNS}/maze3d_lssvwm" --task=reasoning \
  --num_episodes=8 --context=16 --horizon=15 --distance_edges=4,16,32

python -m experiments.state_carrying.paired_differences --results "${OUT}"
