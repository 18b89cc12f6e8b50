"""Where tasks run: one process (single), one worker per GPU (per_gpu), or DeepSpeed ranks; `dispatch.run_tasks` picks."""
