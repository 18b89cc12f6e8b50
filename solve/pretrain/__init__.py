"""`arc-ttt pretrain`: the program prior. Synthetic tasks with their programs (and real training tasks)
train a LoRA adapter (or the whole model) that every task's TTT then starts from."""
