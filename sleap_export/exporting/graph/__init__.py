"""Pure tensor code that gets traced: preprocessing, peaks, and one wrapper per model type."""
