"""Retrieval and reasoning tasks, image metrics, plots and videos."""
