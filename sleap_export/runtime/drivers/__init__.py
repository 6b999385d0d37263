"""What runs a model over many frames: batch `Predictor`, Ray jobs, live closed loop, progress."""
