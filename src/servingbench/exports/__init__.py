"""Model exports that several frameworks serve (TorchScript now; ONNX, SavedModel later)."""
