"""Neural-network building blocks on top of the autograd engine (PyTorch's names)."""

from minilora.nn import functional
from minilora.nn.attention import CausalSelfAttention
from minilora.nn.layers import RNN, Dropout, Embedding, LayerNorm, Linear
from minilora.nn.module import (
    IncompatibleKeys,
    Module,
    ModuleList,
    Parameter,
    Sequential,
    evaluating,
    freeze,
    set_requires_grad,
    unfreeze,
)

__all__ = [
    "functional", "Module", "Parameter", "ModuleList", "Sequential", "IncompatibleKeys",
    "Linear", "Embedding", "LayerNorm", "Dropout", "RNN", "CausalSelfAttention",
    "freeze", "unfreeze", "set_requires_grad", "evaluating",
]  # fmt: skip
