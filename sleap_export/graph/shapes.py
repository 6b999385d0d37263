"""Tensor shapes as int64 tensors, so size arithmetic stays in the graph.

Traced (ONNX, TorchScript), ``_shape_as_tensor`` records a dynamic Shape op;
under ``torch.compile`` it returns a ``torch.Size`` of symbolic ints instead,
so the tensor is built from those.
"""

from __future__ import annotations

import torch


def shape_of(tensor: torch.Tensor) -> torch.Tensor:
    if torch.compiler.is_compiling():
        return torch.tensor(tensor.shape, dtype=torch.int64)
    return torch._shape_as_tensor(tensor)
