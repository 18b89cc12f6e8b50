"""Decoding with the adapted model: the batched decoder (`decode`), its CPU speed paths
(`decode_speed`), the threshold search over grids (`grid_search`) and the sampling entry points the
pipeline calls (`sample`: programs, grid predictions, grid scoring)."""
