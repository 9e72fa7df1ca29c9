"""The same multilayer perceptron as idiomatic PyTorch: ``nn.Sequential`` and ``torch.optim``."""

from torch_ref.model import ACTIVATIONS, logits_of, mlp

__all__ = ["ACTIVATIONS", "logits_of", "mlp"]
