"""Built-in architectures (PyTorch; needs the ``export`` extra, imported lazily)."""
