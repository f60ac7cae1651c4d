"""A stand-in libnvidia-ml (nvml_stub.c), its build, and the scenarios the power tests run with it
in a separate process (so the stub never enters the pytest process)."""
