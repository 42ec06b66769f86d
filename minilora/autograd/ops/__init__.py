"""The primitive ops, grouped by kind, and their functional API.

Each module holds ``Function`` subclasses (forward and VJP side by side) and
the plain functions that call them; ``minilora.nn.functional`` re-exports the
functions under the names PyTorch uses.
"""

from minilora.autograd.ops.arithmetic import add, div, matmul, mul, neg, pow, sub
from minilora.autograd.ops.fused import (
    attention_softmax,
    cross_entropy,
    dropout,
    embedding,
    layer_norm,
    log_softmax,
    softmax,
)
from minilora.autograd.ops.layer_ops import linear, rnn_tanh
from minilora.autograd.ops.linalg import matrix_exp, solve
from minilora.autograd.ops.pointwise import clamp, exp, gelu, log, masked_fill, relu, sigmoid, sqrt, tanh, where
from minilora.autograd.ops.reductions import argmax, logsumexp, max, mean, sum, var
from minilora.autograd.ops.shape import (
    astype,
    cat,
    concat,
    getitem,
    permute,
    reshape,
    split,
    squeeze,
    stack,
    transpose,
    unsqueeze,
)

__all__ = [
    "add", "sub", "mul", "div", "neg", "pow", "matmul",
    "sum", "mean", "max", "var", "logsumexp", "argmax",
    "reshape", "permute", "transpose", "getitem", "unsqueeze", "squeeze",
    "concat", "cat", "stack", "split", "astype",
    "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "gelu", "clamp", "where", "masked_fill",
    "softmax", "log_softmax", "attention_softmax", "cross_entropy", "embedding", "layer_norm", "dropout",
    "linear", "rnn_tanh",
    "solve", "matrix_exp",
]  # fmt: skip
