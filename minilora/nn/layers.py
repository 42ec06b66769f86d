"""The layers models are built from: Linear, Embedding, LayerNorm, Dropout, RNN.

Parameter names and default initialisations are PyTorch's, so a student can
compare a minilora layer with a ``torch.nn`` one weight for weight.
"""

import math

from minilora import backend
from minilora.autograd import ops
from minilora.nn.module import Module, Parameter


def uniform(shape, bound):
    """U(-bound, bound) samples from minilora's seeded generator, float32."""
    return (backend.rand(shape) * 2.0 - 1.0) * bound


class Linear(Module):
    """y = x Wᵀ + b with W of shape (out_features, in_features).

    PyTorch's default initialisation: W and b uniform in ±1/√in_features
    (Kaiming-uniform with a = √5 works out to exactly this bound). One fused op,
    ``ops.linear``, whose backward is Eq. L1 in docs/autograd.md.
    """

    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        self.weight = Parameter(uniform((out_features, in_features), bound))
        self.bias = Parameter(uniform((out_features,), bound)) if bias else None

    @classmethod
    def from_weights(cls, weight, bias=None):
        """A Linear around given weights (out_features, in_features) and bias: Parameters
        are used as they are, arrays are wrapped. It draws no random numbers, so the
        seeded stream is left where it was (how merged or pruned layers are unloaded)."""
        layer = cls.__new__(cls)
        Module.__init__(layer)
        layer.out_features, layer.in_features = weight.shape
        layer.weight = weight if isinstance(weight, Parameter) else Parameter(weight)
        layer.bias = bias if bias is None or isinstance(bias, Parameter) else Parameter(bias)
        return layer

    def forward(self, x):
        return ops.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A table of ``num_embeddings`` vectors of size ``embedding_dim``, initialised N(0, 1).

    ``forward(idx)`` looks up rows; the gradient of a row is the sum over every
    position that looked it up (Eq. N4 in docs/autograd.md).
    """

    def __init__(self, num_embeddings, embedding_dim):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.weight = Parameter(backend.randn((num_embeddings, embedding_dim)))

    def forward(self, idx):
        return ops.embedding(idx, self.weight)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}"


class LayerNorm(Module):
    """Normalise the last axis to zero mean and unit variance, then scale and shift
    (weight starts at 1, bias at 0). Eq. N5 in docs/autograd.md."""

    def __init__(self, normalized_shape, eps=1e-5, bias=True):
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.weight = Parameter(backend.xp.ones(shape, dtype=backend.float32))
        self.bias = Parameter(backend.xp.zeros(shape, dtype=backend.float32)) if bias else None

    def forward(self, x):
        return ops.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"


class Dropout(Module):
    """Zero each element with probability p while training; the identity in eval()."""

    def __init__(self, p=0.5):
        super().__init__()
        self.p = p

    def forward(self, x):
        return ops.dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


class RNN(Module):
    """A one-layer tanh (Elman) RNN over batch-first sequences.

    h_t = tanh(x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh), with PyTorch's
    parameter names and its U(±1/√hidden_size) initialisation. ``forward(x, h0)``
    returns (every h_t as (B, T, H), the last h as (B, H)). The whole
    recurrence is one fused op with a hand-written backprop through time
    (``rnn_tanh``, Eq. L2 in docs/autograd.md).
    """

    def __init__(self, input_size, hidden_size, bias=True):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        bound = 1.0 / math.sqrt(hidden_size)
        self.weight_ih = Parameter(uniform((hidden_size, input_size), bound))
        self.weight_hh = Parameter(uniform((hidden_size, hidden_size), bound))
        self.bias_ih = Parameter(uniform((hidden_size,), bound)) if bias else None
        self.bias_hh = Parameter(uniform((hidden_size,), bound)) if bias else None

    def forward(self, x, h0=None):
        out = ops.rnn_tanh(x, self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, h0)
        return out, out[:, -1]

    def extra_repr(self):
        return f"{self.input_size}, {self.hidden_size}"
