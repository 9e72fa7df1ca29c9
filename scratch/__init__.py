"""A multilayer perceptron written from scratch in NumPy (this package never imports torch)."""

from scratch.dropout import Dropout
from scratch.layers import Identity, LeakyReLU, Linear, ReLU, Sigmoid, Softmax, Tanh
from scratch.losses import CrossEntropyLoss, MSELoss
from scratch.module import Module, Parameter
from scratch.neuron import Neuron, NeuronLayer
from scratch.normalization import BatchNorm1d, LayerNorm
from scratch.optim import SGD, Adam, AdamW, Optimizer
from scratch.sequential import Sequential, mlp

__all__ = [
    "SGD",
    "Adam",
    "AdamW",
    "BatchNorm1d",
    "CrossEntropyLoss",
    "Dropout",
    "Identity",
    "LayerNorm",
    "LeakyReLU",
    "Linear",
    "MSELoss",
    "Module",
    "Neuron",
    "NeuronLayer",
    "Optimizer",
    "Parameter",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "mlp",
]
