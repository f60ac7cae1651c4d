"""Running cases: the options of a measurement, the grid, the step, the runner of one case,
crash isolation and the sweep's policy across cases."""
