"""The directory `instrument run` puts first on PYTHONPATH; it holds `sitecustomize`."""
