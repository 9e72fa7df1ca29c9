"""Training one twin or both on MNIST: one backend interface for both, one training loop (the
command line's, the lessons' and scripts' ``fit``), checkpoints, and TensorBoard logs under the
same tags."""
