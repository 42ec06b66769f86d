"""A GPT-style causal Transformer language model (article 001's model, built correctly).

Token and learned position embeddings, ``n_layer`` pre-LayerNorm blocks of
causal self-attention and a GELU MLP, a final LayerNorm and an untied
``lm_head``. Trained by next-token cross-entropy,

    L = -(1/N) Σ_i log softmax(h_i W_headᵀ)[y_i],

where h_i is the final hidden state at position i and y_i the next token
(article 001 writes this objective with its output matrix W^o). Eq. A4 in
docs/math.md writes out the whole model. With biases (the default) it has

    n_layer·(12C² + 13C) + 2C + 2VC + block_size·C

parameters for width C and V tokens (Eq. A5 in docs/math.md).
"""

import math
from dataclasses import dataclass

from minilora import backend
from minilora.autograd import ops
from minilora.autograd.tensor import Tensor
from minilora.models.generation import sample_next
from minilora.nn import init
from minilora.nn.attention import CausalSelfAttention
from minilora.nn.layers import Dropout, Embedding, LayerNorm, Linear
from minilora.nn.module import Module, ModuleList, evaluating


@dataclass
class GPTConfig:
    vocab_size: int  # number of distinct tokens (characters, for a CharTokenizer)
    block_size: int  # longest context the model can attend over
    n_layer: int = 4  # number of Transformer blocks
    n_head: int = 4  # attention heads per block; n_embd must be divisible by it
    n_embd: int = 128  # width of the residual stream
    dropout: float = 0.0  # dropout on embeddings, attention weights and block outputs
    bias: bool = True  # biases in the Linear layers and LayerNorms


class MLP(Module):
    """fc_in (C -> 4C), GELU, fc_out (4C -> C), dropout: the block's second half (Eq. A4 in docs/math.md)."""

    def __init__(self, config):
        super().__init__()
        self.fc_in = Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.fc_out = Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.fc_out(ops.gelu(self.fc_in(x))))


class Block(Module):
    """x + attn(ln1(x)), then x + mlp(ln2(x)): the pre-LayerNorm residual block (Eq. A4 in docs/math.md).

    The residual sums copy the gradient straight to the block's input, whatever
    the attention and the MLP add to it, which is what lets deep stacks train.
    """

    def __init__(self, config):
        super().__init__()
        self.ln1 = LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config.n_embd, config.n_head, config.block_size, config.dropout, config.bias)
        self.resid_dropout = Dropout(config.dropout)
        self.ln2 = LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = MLP(config)

    def forward(self, x, key_padding_mask=None):
        x = x + self.resid_dropout(self.attn(self.ln1(x), key_padding_mask))
        return x + self.mlp(self.ln2(x))


def init_transformer_weights(model, n_layer):
    """GPT-2's initialisation: N(0, 0.02) for Linear and Embedding weights, zero
    biases, and N(0, 0.02/√(2·n_layer)) for the two projections that write into
    the residual stream, so its variance does not grow with depth (Eq. A4 in docs/math.md)."""
    for name, p in model.named_parameters():
        if name.endswith("bias"):
            init.zeros_(p)
        elif name.endswith(("o_proj.weight", "fc_out.weight")):
            init.normal_(p, 0.02 / math.sqrt(2 * n_layer))
        elif p.ndim == 2:
            init.normal_(p, 0.02)


def as_indices(idx):
    """Token ids as an integer array, from a Tensor, an array or a list of ints."""
    data = idx.data if isinstance(idx, Tensor) else backend.asarray(idx)
    if not backend.is_integer(data.dtype):
        raise TypeError(
            f"token ids must be integers, got dtype {data.dtype} (ml.Tensor turns lists into "
            "float32; build ids with ml.Tensor(ids, dtype='int64') or pass the list itself)"
        )
    return data


def check_prompt(idx):
    """A (B, T) batch of token ids with T >= 1, as generate needs."""
    if idx.ndim != 2 or idx.shape[1] < 1:
        raise ValueError(f"generate needs token ids of shape (batch, length >= 1), got shape {tuple(idx.shape)}")
    return idx


class GPT(Module):
    """The language model of Eq. A4 in docs/math.md: token and position embeddings,
    ``config.n_layer`` Blocks, ``ln_f`` and an untied ``lm_head``, with GPT-2's
    initialisation. ``forward(idx, targets)`` returns the logits and the mean
    cross-entropy against ``targets`` (the next tokens); its size is Eq. A5.
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.tok_emb = Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = Embedding(config.block_size, config.n_embd)
        self.drop = Dropout(config.dropout)
        self.blocks = ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = LayerNorm(config.n_embd, bias=config.bias)
        self.lm_head = Linear(config.n_embd, config.vocab_size, bias=False)
        init_transformer_weights(self, config.n_layer)

    def forward(self, idx, targets=None):
        """``idx`` (B, T) token ids -> (logits (B, T, vocab), mean cross-entropy or None)."""
        idx = as_indices(idx)
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {self.config.block_size}; crop the input")
        positions = backend.get_array_module(idx).arange(T)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(positions))  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))  # (B, T, vocab)
        loss = None if targets is None else ops.cross_entropy(logits, as_indices(targets))
        return logits, loss

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        """Extend ``idx`` (B, T) by ``max_new_tokens`` sampled tokens, feeding each back in."""
        given = idx
        idx = check_prompt(as_indices(idx))
        xp = backend.get_array_module(idx)
        with evaluating(self):
            for _ in range(max_new_tokens):
                logits, _ = self(idx[:, -self.config.block_size :])
                idx = xp.concatenate([idx, sample_next(logits.data[:, -1], temperature, top_k)], axis=1)
        return Tensor(idx) if isinstance(given, Tensor) else idx
