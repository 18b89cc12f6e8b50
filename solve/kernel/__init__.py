"""The offline Kaggle kernel: bundle, model export, notebook, placeholder detection, rehearsal, timeline."""
