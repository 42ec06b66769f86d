"""minilora: low-rank adaptation from the ground up, in NumPy.

A small reverse-mode autograd engine, tiny language models built on it, and
the mechanisms that go by the name "LoRA", each checked against its math.

    import minilora as ml
    import minilora.nn.functional as F

    x = ml.Tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    loss = F.softmax(x, dim=-1)[:, 0].sum()
    loss.backward()
    x.grad
"""

from minilora import backend
from minilora.autograd import GradcheckError, Tensor, gradcheck, no_grad, set_grad_enabled
from minilora.backend import manual_seed
from minilora import nn, optim, models

__version__ = "0.1.0"

__all__ = ["Tensor", "no_grad", "set_grad_enabled", "gradcheck", "GradcheckError", "manual_seed", "backend", "nn", "optim", "models"]
