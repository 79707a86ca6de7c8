"""Inference backends behind one protocol (see :mod:`edgecv.engine.base`)."""

from edgecv.engine.base import BaseEngine, Engine, TensorSpec
from edgecv.engine.registry import available_backends, load_engine

__all__ = ["BaseEngine", "Engine", "TensorSpec", "available_backends", "load_engine"]
