"""ONNX graph tools shared by export, quantization and the engine builder (needs the ``onnx`` extra when used).

Below ``engine`` in the layer order: :mod:`edgecv.graph.onnx_graph` (load, save, metadata,
names, topological order) and :mod:`edgecv.graph.fp16` (mixed-precision FP16 graphs).
"""
