"""Numpy kernels for the TFLite builtin operators the engine supports.

``REGISTRY`` maps an opcode name to its prepare function (see :mod:`.base`). Importing
this package registers every kernel module.
"""

from __future__ import annotations

from . import conv, elementwise, reduce, shape
from .base import REGISTRY, Eval, Node, Prepare

__all__ = ["REGISTRY", "Eval", "Node", "Prepare", "conv", "elementwise", "reduce", "shape"]
