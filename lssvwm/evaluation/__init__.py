"""Rollouts and evaluation of trained runs: tasks, metrics, plots and videos.

Modules (the command lines are `lssvwm/rollout.py` and `lssvwm/evaluate.py`; checkpoints, PSNR
and SSIM, videos and progress lines come from `lssvwm.common`, never from the training package):
  loading        a run directory's config + newest checkpoint -> model, sampler, data config
  streaming      prefill + unit-by-unit generation, timed, with a reset-policy hook
  reset          rollout-time reset policies (never, every N frames)
  paths          poses/actions files; an episode's path walked on (reflected at its ends)
  rollouts       a long rollout -> rollout.json + video (what `lssvwm.rollout` runs)
  tasks          retrieval / reasoning over evaluation episodes -> per-frame scores
  visibility     "frames since this view was last seen" from depth reprojection
  statistics     bootstrap confidence intervals over episodes; distance bins
  report         the evaluate JSON, plot and best/worst video
  plots          matplotlib figures (Agg)
  compare        several results -> one markdown table and one plot
"""
