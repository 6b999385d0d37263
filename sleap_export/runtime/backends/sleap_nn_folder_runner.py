"""ONNX Runtime on a sleap-nn export folder: channel-first frames in, sleap-nn's outputs translated."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sleap_export.core.spec import ModelSpec
from sleap_export.runtime.artifacts.sleap_nn_export_folder import MODEL_FILE, outputs_from_layout, read_metadata
from sleap_export.runtime.backends.onnx_runner import OnnxRunner


class SleapNnFolderRunner(OnnxRunner):
    """`OnnxRunner` on ``FOLDER/model.onnx``: frames go in as sleap-nn feeds them, uint8
    ``(B, C, H, W)`` with the model's channels; outputs come back as `Outputs` fields
    (`sleap_nn_export_folder.outputs_from_layout`)."""

    name = "onnxruntime"

    def __init__(self, folder: Path, spec: ModelSpec, device: str = "cpu", **options):
        super().__init__(Path(folder) / MODEL_FILE, spec, device, **options)
        self.folder = Path(folder)
        self.metadata = read_metadata(self.folder)

    def graph_inputs(self, frames, centroids=None) -> list[np.ndarray]:
        (batch,) = super().graph_inputs(frames, centroids)
        return [np.ascontiguousarray(batch.transpose(0, 3, 1, 2))]

    def infer_impl(self, inputs: list[np.ndarray], run_options=None) -> list[np.ndarray]:
        names = [o.name for o in self.session.get_outputs()]
        arrays = self.session.run(None, {self.session.get_inputs()[0].name: inputs[0]}, run_options)
        return outputs_from_layout(self.metadata, dict(zip(names, arrays)))
