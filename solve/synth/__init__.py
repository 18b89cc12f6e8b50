"""Synthetic ARC tasks with the DSL programs that solve them, for training program-writing models."""
