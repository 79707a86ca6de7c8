"""Serving beyond one device: Triton model repositories and DeepStream nvinfer configs from edgecv artifacts.

``triton.write_repository`` and ``deepstream.write_deepstream`` read everything from the artifact's
own contract (:mod:`edgecv.deploy.spec`); ``python_backend`` is what the generated Triton
Python-backend models run. Triton as a client-side backend is :mod:`edgecv.engine.triton`.
"""
