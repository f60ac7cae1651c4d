"""Tests that need a CUDA GPU (marker ``gpu``; ``make test-gpu``). Skipped without one."""
