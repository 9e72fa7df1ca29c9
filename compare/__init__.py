"""The harness that knows both twins: weight copying, parity checks, training, TensorBoard, CLI."""
