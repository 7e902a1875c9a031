"""Evaluation: metrics, held-out scoring of log-probs, lm-evaluation-harness and its offline tasks."""
