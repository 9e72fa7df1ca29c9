"""Training either twin on MNIST: one backend interface for both, one training loop, checkpoints,
and TensorBoard logs under the same tags."""
