"""One runner per backend (ONNX Runtime, PyTorch, OpenVINO, TensorRT) behind `runner.Runner`;
each only runs the graph."""
