"""CharRNN: article 000's language model, a tanh RNN over (optionally) randomly projected embeddings.

Article 000 maps each input vector x ∈ ℝ^d to a higher dimension with a random
matrix R ∈ ℝ^{D×d}, y = Rx, orthogonalises, z = Qy, and trains an RNN
language model on the result by maximising log softmax(W h_t + b)[x_{t+1}].
Here the projection is a choice of the config:

* ``"none"``: embeddings go straight into the RNN;
* ``"trainable"``: an ordinary learned Linear map d -> D;
* ``"gaussian"``: a *frozen* R with N(0, 1/D) entries, so E‖Rx‖² = ‖x‖²
  (the Johnson–Lindenstrauss scaling);
* ``"orthogonal"``: a frozen R with orthonormal columns (QR of a Gaussian),
  which preserves every norm and angle exactly.

The frozen R is still a Parameter (with requires_grad=False), so it is saved
with the model and a reloaded model uses the same projection.
"""

import math
from dataclasses import dataclass

from minilora import backend, validate
from minilora.autograd import ops
from minilora.autograd.tensor import Tensor
from minilora.models.common import as_token_batch
from minilora.models.generation import check_sampling, sample_next
from minilora.nn import init
from minilora.nn.layers import RNN, Dropout, Embedding, Linear
from minilora.nn.module import Module, Parameter, evaluating

PROJECTIONS = ("none", "trainable", "gaussian", "orthogonal")


@dataclass
class RNNConfig:
    vocab_size: int  # number of distinct tokens
    embed_dim: int = 64  # d: size of a token embedding
    hidden_size: int = 256  # size of the RNN's hidden state
    projection: str = "none"  # "none" | "trainable" | "gaussian" | "orthogonal"
    proj_dim: int = 256  # D: the projected dimension (ignored for "none")
    dropout: float = 0.0  # dropout on the RNN outputs before the head

    def __post_init__(self):
        name = type(self).__name__
        for field in ("vocab_size", "embed_dim", "hidden_size", "proj_dim"):
            validate.integer(name, field, getattr(self, field), 1)
        validate.choice(name, "projection", self.projection, PROJECTIONS)
        if self.projection in ("gaussian", "orthogonal") and self.proj_dim < self.embed_dim:
            raise ValueError(f"{name}.proj_dim ({self.proj_dim}) must be >= embed_dim ({self.embed_dim}): a random projection goes up")
        validate.number(name, "dropout", self.dropout, 0, 1, high_open=True)

    def num_parameters(self):
        """How many parameters a CharRNN of this config has, without building it."""
        V, d, H = self.vocab_size, self.embed_dim, self.hidden_size
        rnn_input, projection = (d, 0) if self.projection == "none" else (self.proj_dim, self.proj_dim * d)
        return V * d + projection + H * (rnn_input + H + 2) + (H + 1) * V


class CharRNN(Module):
    """Embedding, the optional projection d -> D (``config.projection``), a tanh RNN and
    a linear head: logits z_t = W h_t + b, where the state h_t has read every token up
    to t, trained by next-token cross-entropy (docs/math.md §3; the models table in
    docs/training.md; the projections in docs/orthogonal.md §3).
    ``forward(idx, targets, h0)`` returns (logits, mean cross-entropy or None).
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.tok_emb = Embedding(config.vocab_size, config.embed_dim)
        rnn_input = config.embed_dim
        if config.projection != "none":
            self.proj = Linear(config.embed_dim, config.proj_dim, bias=False)
            if config.projection != "trainable":
                self.proj.weight = Parameter(random_projection(config, config.projection), requires_grad=False)
            rnn_input = config.proj_dim
        self.rnn = RNN(rnn_input, config.hidden_size)
        self.drop = Dropout(config.dropout)
        self.head = Linear(config.hidden_size, config.vocab_size)

    def forward(self, idx, targets=None, h0=None):
        """``idx`` (B, T) -> (logits (B, T, vocab), mean cross-entropy or None)."""
        logits, _ = self._run(as_token_batch(idx), h0)
        loss = None if targets is None else ops.cross_entropy(logits, as_token_batch(targets, "targets"))
        return logits, loss

    def _run(self, idx, h0=None):
        x = self.tok_emb(idx)  # (B, T, d)
        if self.config.projection != "none":
            x = self.proj(x)  # (B, T, D): y = R x for every token
        out, h_last = self.rnn(x, h0)  # (B, T, H), (B, H)
        return self.head(self.drop(out)), h_last

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        """Extend ``idx`` (B, T) by sampled tokens, carrying the hidden state forward."""
        given = idx
        idx = as_token_batch(idx, "the prompt")
        check_sampling(max_new_tokens, temperature, top_k, self.config.vocab_size)
        xp = backend.get_array_module(idx)
        with evaluating(self):
            logits, h = self._run(idx)
            for _ in range(max_new_tokens):
                nxt = sample_next(logits.data[:, -1], temperature, top_k)
                idx = xp.concatenate([idx, nxt], axis=1)
                logits, h = self._run(nxt, h)
        return Tensor(idx) if isinstance(given, Tensor) else idx


def random_projection(config, kind):
    """R ∈ ℝ^{D×d}: N(0, 1/D) entries, or the same with its columns orthonormalised."""
    D, d = config.proj_dim, config.embed_dim
    gaussian = backend.randn((D, d)) * (1.0 / math.sqrt(D))
    if kind == "gaussian":
        return gaussian
    return init.orthonormal_columns(gaussian).astype(backend.float32)
