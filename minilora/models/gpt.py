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

from minilora import backend, validate
from minilora.autograd import ops
from minilora.autograd.tensor import Tensor
from minilora.models.common import as_token_batch
from minilora.models.generation import check_sampling, sample_next
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
    tie_word_embeddings: bool = False  # lm_head uses tok_emb's table: one Parameter, as GPT-2 does (Eq. A6 in docs/math.md)
    layer_norm_eps: float = 1e-5  # ε under the square root of every LayerNorm (GPT-2 and PyTorch use 1e-5)
    n_inner: int = None  # width of the MLP's hidden layer; None means 4·n_embd

    def __post_init__(self):
        check_transformer_config(self)

    def num_parameters(self):
        """How many parameters a GPT of this config has (Eq. A5 in docs/math.md), without building it."""
        C, ln = self.n_embd, (2 if self.bias else 1) * self.n_embd
        return 2 * self.vocab_size * C + self.block_size * C + self.n_layer * block_parameters(C, self.bias) + ln


def block_parameters(n_embd, bias=True):
    """Parameters of one Block: 12C² + 13C with biases, 12C² + 2C without (Eq. A5 in docs/math.md)."""
    return 12 * n_embd**2 + (13 if bias else 2) * n_embd


def check_transformer_config(config):
    """The checks GPTConfig and ClassifierConfig share: sizes, heads, dropout (named by field)."""
    name = type(config).__name__
    for field in ("vocab_size", "block_size", "n_head", "n_embd"):
        validate.integer(name, field, getattr(config, field), 1)
    validate.integer(name, "n_layer", config.n_layer, 1 if name == "GPTConfig" else 0)
    if config.n_embd % config.n_head:
        raise ValueError(f"{name}.n_embd ({config.n_embd}) must be divisible by n_head ({config.n_head}): each head gets n_embd/n_head dimensions")
    validate.number(name, "dropout", config.dropout, 0, 1, high_open=True)
    validate.choice(name, "bias", config.bias, (True, False))


class MLP(Module):
    """fc_in (C -> 4C), GELU, fc_out (4C -> C), dropout: the block's second half (Eq. A4 in docs/math.md).

    The GELU is the tanh form GPT-2 uses (``gelu_new`` in Transformers); the
    hidden width is ``config.n_inner`` where it is set.
    """

    def __init__(self, config):
        super().__init__()
        hidden = getattr(config, "n_inner", None) or 4 * config.n_embd  # ClassifierConfig has no n_inner
        self.fc_in = Linear(config.n_embd, hidden, bias=config.bias)
        self.fc_out = Linear(hidden, config.n_embd, bias=config.bias)
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
        eps = getattr(config, "layer_norm_eps", 1e-5)  # the classifier's config keeps LayerNorm's default
        self.ln1 = LayerNorm(config.n_embd, eps=eps, bias=config.bias)
        self.attn = CausalSelfAttention(config.n_embd, config.n_head, config.block_size, config.dropout, config.bias)
        self.resid_dropout = Dropout(config.dropout)
        self.ln2 = LayerNorm(config.n_embd, eps=eps, bias=config.bias)
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


class GPT(Module):
    """The language model of Eq. A4 in docs/math.md: token and position embeddings,
    ``config.n_layer`` Blocks, ``ln_f`` and an ``lm_head`` (untied unless
    ``config.tie_word_embeddings``), with GPT-2's initialisation. ``forward(idx, targets)`` returns the logits and the mean
    cross-entropy against ``targets`` (the next tokens); its size is Eq. A5.
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.tok_emb = Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = Embedding(config.block_size, config.n_embd)
        self.drop = Dropout(config.dropout)
        self.blocks = ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = LayerNorm(config.n_embd, eps=config.layer_norm_eps, bias=config.bias)
        if config.tie_word_embeddings:
            # The same Parameter object in both places: its gradient is the sum of the
            # lookup's and the output layer's (Eq. A6 in docs/math.md), and it is saved once.
            self.lm_head = Linear.from_weights(self.tok_emb.weight)
        else:
            self.lm_head = Linear(config.n_embd, config.vocab_size, bias=False)
        init_transformer_weights(self, config.n_layer)

    def forward(self, idx, targets=None):
        """``idx`` (B, T) token ids -> (logits (B, T, vocab), mean cross-entropy or None)."""
        logits = self.lm_head(self.hidden(idx))  # (B, T, vocab)
        loss = None if targets is None else ops.cross_entropy(logits, as_token_batch(targets, "targets"))
        return logits, loss

    def hidden(self, idx):
        """``idx`` (B, T) token ids -> the last hidden states (B, T, C), after ``ln_f``: what ``lm_head`` reads."""
        idx = as_token_batch(idx)
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {self.config.block_size}; crop the input")
        positions = backend.get_array_module(idx).arange(T)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(positions))  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.ln_f(x)

    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None):
        """Extend ``idx`` (B, T) by ``max_new_tokens`` sampled tokens, feeding each back in."""
        given = idx
        idx = as_token_batch(idx, "the prompt")
        check_sampling(max_new_tokens, temperature, top_k, self.config.vocab_size)
        xp = backend.get_array_module(idx)
        with evaluating(self):
            for _ in range(max_new_tokens):
                logits, _ = self(idx[:, -self.config.block_size :])
                idx = xp.concatenate([idx, sample_next(logits.data[:, -1], temperature, top_k)], axis=1)
        return Tensor(idx) if isinstance(given, Tensor) else idx
