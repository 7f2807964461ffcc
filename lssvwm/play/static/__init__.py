"""The player page and its script (data: lssvwm.play.server serves them)."""
