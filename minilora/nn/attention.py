"""Causal multi-head self-attention, with separate q/k/v/o projections.

For one head with queries Q, keys K and values V (each T × d_head),

    A = softmax(Q Kᵀ / √d_head + M),    out = A V,

where M is 0 on and below the diagonal and -∞ above it, so position t only
attends to positions ≤ t (Eq. A1 in docs/math.md). Heads run side by side
on slices of the model width and are joined by the output projection.
The four projections are separate Linear layers named ``q_proj``, ``k_proj``,
``v_proj`` and ``o_proj``, so LoRA can target each one by name.

With ``causal=False`` M keeps only the padding mask: every token sees the whole
sentence, as in BERT's encoder (docs/pretrained.md). Nothing else changes.
"""

import math

from minilora import backend
from minilora.autograd import ops
from minilora.nn.layers import Dropout, Linear
from minilora.nn.module import Module


class CausalSelfAttention(Module):
    """``n_head`` causal attention heads of width n_embd/n_head over (B, T, n_embd) inputs,
    joined by ``o_proj`` (Eq. A1 in docs/math.md).

    The backward is not written here: autograd composes it from the four linear
    layers, the batched products and the one fused masked softmax (Eq. N6 in
    docs/autograd.md). Eq. A2 in docs/math.md writes out what that computes.
    """

    def __init__(self, n_embd, n_head, block_size, dropout=0.0, bias=True, causal=True):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd ({n_embd}) must be divisible by n_head ({n_head})")
        self.n_embd, self.n_head = n_embd, n_head
        self.q_proj = Linear(n_embd, n_embd, bias=bias)
        self.k_proj = Linear(n_embd, n_embd, bias=bias)
        self.v_proj = Linear(n_embd, n_embd, bias=bias)
        self.o_proj = Linear(n_embd, n_embd, bias=bias)
        self.attn_dropout = Dropout(dropout)
        # True above the diagonal: the future positions a token may not see. An encoder
        # (BERT, causal=False) sees every position; only the padding mask remains.
        self.causal = causal
        self.future = backend.xp.triu(backend.xp.ones((block_size, block_size), dtype=bool), k=1) if causal else None

    def _heads(self, x, B, T):
        return x.reshape(B, T, self.n_head, -1).transpose(1, 2)  # (B, nh, T, hs)

    def forward(self, x, key_padding_mask=None):
        """``x`` is (B, T, C). ``key_padding_mask`` (B, T), True at padding, hides
        those keys too (used by the classifier on padded sentences)."""
        B, T, C = x.shape
        q = self._heads(self.q_proj(x), B, T)  # (B, nh, T, hs)
        k = self._heads(self.k_proj(x), B, T)  # (B, nh, T, hs)
        v = self._heads(self.v_proj(x), B, T)  # (B, nh, T, hs)
        scores = q @ k.transpose(-2, -1)  # (B, nh, T, T)
        hidden = self.future[:T, :T] if self.causal else None
        if key_padding_mask is not None:
            # Padding keys are hidden too, except from themselves: a position may always
            # attend to itself, so a row of padding never becomes all -inf (nan).
            xp = backend.get_array_module(key_padding_mask)
            padding = key_padding_mask[:, None, None, :] & ~xp.eye(T, dtype=bool)  # (B, 1, T, T)
            hidden = padding if hidden is None else hidden | padding
        att = ops.attention_softmax(scores, hidden, scale=1.0 / math.sqrt(C // self.n_head))
        att = self.attn_dropout(att)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)  # (B, T, nh, hs) -> (B, T, C)
        return self.o_proj(y)

    def extra_repr(self):
        return f"n_embd={self.n_embd}, n_head={self.n_head}" + ("" if self.causal else ", causal=False")
