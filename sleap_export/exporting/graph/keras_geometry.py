"""Layers that reproduce TensorFlow/Keras geometry for SLEAP 1.x networks.

sleap-nn maps a Keras ``Conv2DTranspose(padding="same")`` onto PyTorch's
``ConvTranspose2d(padding=1, output_padding=1)``. TensorFlow crops the full
transposed convolution at the end ("same" puts the odd padding after), PyTorch
at the start, so sleap-nn's decoder features sit one pixel off at every
upsampling step: measured on the shared SLEAP 1.x models, head outputs differ
from TensorFlow's by up to 0.044, and the centroid model reports extra peaks,
one outside the frame. With this layer the heads match TensorFlow to 1e-7.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class KerasSameConvTranspose2d(torch.nn.Module):
    """``ConvTranspose2d`` with Keras ``padding="same"`` cropping (output = input x stride)."""

    def __init__(self, layer: torch.nn.ConvTranspose2d):
        super().__init__()
        if layer.groups != 1 or layer.dilation != (1, 1):
            raise ValueError("Only plain (ungrouped, undilated) transposed convolutions map from Keras.")
        self.weight = layer.weight
        self.bias = layer.bias
        self.stride = tuple(layer.stride)
        kernel = layer.kernel_size
        # Full output = (n - 1) * s + k; Keras keeps n * s of it, starting at
        # floor((k - s) / 2). Kernels smaller than the stride are padded at the end.
        self.output_padding = tuple(max(s - k, 0) for k, s in zip(kernel, self.stride))
        excess = [max(k - s, 0) for k, s in zip(kernel, self.stride)]
        self.crop_start = tuple(e // 2 for e in excess)
        self.crop_end = tuple(e - e // 2 for e in excess)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        full = F.conv_transpose2d(x, self.weight, self.bias, stride=self.stride, output_padding=self.output_padding)
        (top, left), (bottom, right) = self.crop_start, self.crop_end
        return full[..., top : full.shape[-2] - bottom, left : full.shape[-1] - right]


def use_keras_geometry(network: torch.nn.Module) -> int:
    """Swap every transposed convolution for its Keras-geometry twin; returns how many."""
    swapped = 0
    for parent in list(network.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, torch.nn.ConvTranspose2d):
                setattr(parent, name, KerasSameConvTranspose2d(child))
                swapped += 1
    return swapped
