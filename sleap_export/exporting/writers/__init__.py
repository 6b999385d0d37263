"""One writer per artifact format (`registry.EXPORTERS`): ONNX, TorchScript, TensorRT."""
