"""The per-task stages, the run loop's bookkeeping, the run directory, the report and the budget planner."""
