"""Evaluation: synthetic labelled traffic and scoring against ground truth."""
