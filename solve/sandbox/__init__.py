"""Running untrusted model-written programs: the worker pool, the confined child (rlimits, uid drop, Landlock, seccomp), extraction, verification."""
