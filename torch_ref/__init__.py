"""The same multilayer perceptron as idiomatic PyTorch: ``nn.Sequential`` and ``torch.optim``."""

from torch_ref.model import logits_of, mlp

__all__ = ["logits_of", "mlp"]
