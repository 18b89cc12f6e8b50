"""Running untrusted model-written programs: the worker pool, the confined child, seccomp, extraction, verification."""
