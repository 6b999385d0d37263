"""The export side (torch, sleap-nn): reading checkpoints, building graphs, one writer per format,
reduced precision. Imports the core and the runtime, nothing above."""
