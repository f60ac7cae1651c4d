"""Beyond one box: a sweep split into shards that any scheduler runs (``shard``, balanced by
``cost``), each writing its own leaf of one results tree (``tree``; the layout is
harness.results.tree), the plugin's view of a shard (``slot``), Slurm job arrays through
submitit (``submit``) and SQL over the tree (``query``, DuckDB). Torch-free: the cost model
profiles models on the meta device only when asked for a plan.
"""
