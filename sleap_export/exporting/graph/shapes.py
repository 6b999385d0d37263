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


def float64_vector(length: torch.Tensor) -> torch.Tensor:
    """A size as a 1-element float64 vector for scale arithmetic.

    Not a 0-dim tensor: the ONNX exporter types arithmetic between 0-dim tensors
    by its scalar rules, as float32, which rounds sleap-nn's float64 scales (ONNX
    Runtime was a grey level off on 77 of 100 sweep cases).
    """
    return length.reshape(1).to(torch.float64)
