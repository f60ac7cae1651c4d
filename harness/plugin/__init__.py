"""The pytest plugin (entry point ``cnnbench`` -> ``harness.plugin.hooks``): its options, the
hooks, progress, xdist roles and the terminal summary. Importing it does not import torch."""
