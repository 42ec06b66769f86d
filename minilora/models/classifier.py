"""TextClassifier: token ids -> one label per sequence (articles 002 and 003's sentiment task).

An embedding, an encoder, mean pooling over the real (non-padding) tokens,
and a linear head trained with cross-entropy. The encoder is either

* ``"transformer"``: GPT blocks (causal self-attention + MLP) over token and
  position embeddings, so word order matters ("not good" differs from
  "good, not"), or
* ``"mean"``: nothing at all, which makes the model a bag of embeddings: a
  baseline that cannot see order.
"""

from dataclasses import dataclass

from minilora import backend, validate
from minilora.autograd import ops
from minilora.autograd.tensor import Tensor
from minilora.models.common import as_indices
from minilora.models.gpt import Block, block_parameters, check_transformer_config, init_transformer_weights
from minilora.nn.layers import Dropout, Embedding, LayerNorm, Linear
from minilora.nn.module import Module, ModuleList

ENCODERS = ("transformer", "mean")


@dataclass
class ClassifierConfig:
    vocab_size: int  # number of distinct tokens
    block_size: int  # longest sequence
    n_classes: int = 2  # number of labels
    encoder: str = "transformer"  # "transformer" | "mean"
    n_layer: int = 2  # Transformer blocks (ignored for "mean")
    n_head: int = 4  # attention heads per block
    n_embd: int = 64  # embedding / residual width
    dropout: float = 0.0  # dropout on embeddings and inside blocks
    bias: bool = True  # biases in Linear layers and LayerNorms

    def __post_init__(self):
        check_transformer_config(self)
        validate.integer(type(self).__name__, "n_classes", self.n_classes, 2)
        validate.choice(type(self).__name__, "encoder", self.encoder, ENCODERS)

    def num_parameters(self):
        """How many parameters a TextClassifier of this config has, without building it."""
        C = self.n_embd
        encoder = 0
        if self.encoder == "transformer":
            encoder = self.block_size * C + self.n_layer * block_parameters(C, self.bias) + (2 if self.bias else 1) * C
        return self.vocab_size * C + encoder + (C + 1) * self.n_classes


class TextClassifier(Module):
    """Token ids -> class logits: embeddings, the encoder (``config.encoder``), the mean
    of its outputs over the real tokens, h̄ = Σ_t m_t h_t / Σ_t m_t with m_t = 1 on a
    real token and 0 on padding, and a linear head trained by cross-entropy
    (docs/math.md §3; sentiment classification in docs/training.md).
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.tok_emb = Embedding(config.vocab_size, config.n_embd)
        if config.encoder == "transformer":
            self.pos_emb = Embedding(config.block_size, config.n_embd)
            self.blocks = ModuleList(Block(config) for _ in range(config.n_layer))
            self.ln_f = LayerNorm(config.n_embd, bias=config.bias)
        self.drop = Dropout(config.dropout)
        self.head = Linear(config.n_embd, config.n_classes)
        init_transformer_weights(self, max(config.n_layer, 1))

    def embed(self, idx):
        """The token embeddings (B, T, C) of ``idx``: what ``inputs_embeds`` stands in for."""
        return self.tok_emb(as_indices(idx))

    def forward(self, idx=None, targets=None, mask=None, inputs_embeds=None):
        """``idx`` (B, T) token ids, right-padded; ``mask`` (B, T) is True on real
        tokens (None: all real). Returns (logits (B, n_classes), loss or None).

        ``inputs_embeds`` (B, T, C) replaces ``self.embed(idx)`` (pass one of the
        two), as in Hugging Face models: an attack on the embeddings
        (minilora/adversarial.py) feeds perturbed ones through here.
        """
        if (idx is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of idx (token ids) and inputs_embeds (B, T, n_embd)")
        if inputs_embeds is None:
            x = self.embed(idx)  # (B, T, C)
            if x.ndim != 3:
                raise ValueError(f"idx must have shape (B, T), got {tuple(x.shape[:-1])}")
        else:
            x = inputs_embeds if isinstance(inputs_embeds, Tensor) else Tensor(inputs_embeds)
            if x.ndim != 3 or x.shape[2] != self.config.n_embd:
                raise ValueError(f"inputs_embeds must have shape (B, T, {self.config.n_embd}), got {tuple(x.shape)}")
        B, T, _ = x.shape
        xp = backend.get_array_module(x.data)
        if T > self.config.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {self.config.block_size}")
        mask = xp.ones((B, T), dtype=bool) if mask is None else (mask.data if isinstance(mask, Tensor) else mask)
        if self.config.encoder == "transformer":
            x = self.drop(x + self.pos_emb(xp.arange(T)))
            for block in self.blocks:
                x = block(x, key_padding_mask=~mask)
            x = self.ln_f(x)
        weights = mask / mask.sum(axis=1, keepdims=True).clip(1, None)  # (B, T): 1/length on real tokens
        pooled = (x * weights[:, :, None].astype(x.dtype)).sum(axis=1)  # (B, C)
        logits = self.head(self.drop(pooled))  # (B, n_classes)
        loss = None if targets is None else ops.cross_entropy(logits, as_indices(targets))
        return logits, loss
