"""Evaluation protocols equal to the official scripts."""
