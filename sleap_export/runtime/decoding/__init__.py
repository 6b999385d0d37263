"""From a graph's raw outputs to `Outputs`: per-model-type completion and host-side grouping."""
