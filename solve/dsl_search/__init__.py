"""Program search over our own grid DSL (`solve.dsl`): typed enumeration with behavioural dedup.

`calls` builds the calls worth trying on one task, `search` runs depth 1 exhaustively and best-first
deeper within a time budget, `coverage` runs it over a dataset. Its programs are ordinary
`from solve.dsl import *` sources that go through the same sandbox verification and vote as the model's.
"""
