"""Run, verify and vote on model-written programs; write Kaggle submissions."""
