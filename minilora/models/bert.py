"""A BERT encoder and a sentence encoder on top of it (all-MiniLM-L6-v2's architecture).

BERT differs from the GPT of gpt.py in three places, and in nothing else:

* attention is bidirectional: every token sees the whole sentence, and only
  padding is hidden (``CausalSelfAttention(..., causal=False)``);
* the blocks are post-LayerNorm, x ← LN(x + attn(x)), then x ← LN(x + mlp(x)),
  so the layer norms sit on the residual stream itself;
* the input adds a token-type (segment) embedding and is layer-normed:
  x₀ = LN(E_tok[ids] + E_pos[t] + E_type[types]); the MLP uses the exact GELU.

Eq. E1-E3 in docs/pretrained.md write the model out. ``SentenceEncoder`` adds
sentence-transformers' pooling: the mean of the last hidden states over the real
(unpadded) tokens, then division by its L2 norm (Eq. E4), so that the dot product
of two embeddings is their cosine similarity.
"""

from dataclasses import dataclass
from typing import ClassVar

from minilora import backend
from minilora.autograd import ops
from minilora.autograd.tensor import Tensor
from minilora.models.common import as_indices
from minilora.nn import init
from minilora.nn.attention import CausalSelfAttention
from minilora.nn.layers import Dropout, Embedding, LayerNorm, Linear
from minilora.nn.module import Module, ModuleList, evaluating


@dataclass
class BertConfig:
    vocab_size: int = 30522  # WordPiece vocabulary size
    block_size: int = 512  # number of learned positions: the longest input
    n_layer: int = 6  # number of encoder blocks
    n_head: int = 12  # attention heads per block; n_embd must be divisible by it
    n_embd: int = 384  # width of the residual stream (BERT's hidden_size)
    n_inner: int = 1536  # width of the MLP's hidden layer (BERT's intermediate_size)
    type_vocab_size: int = 2  # number of segment ids (sentence A / sentence B)
    layer_norm_eps: float = 1e-12  # ε inside every LayerNorm; BERT's is far below PyTorch's default 1e-5
    dropout: float = 0.0  # dropout on embeddings, attention weights and block outputs (0.1 in BERT's pretraining)

    # Hugging Face config.json field -> our field (a ClassVar: not a config field itself)
    HF_NAMES: ClassVar[dict] = {
        "vocab_size": "vocab_size", "max_position_embeddings": "block_size", "num_hidden_layers": "n_layer",
        "num_attention_heads": "n_head", "hidden_size": "n_embd", "intermediate_size": "n_inner",
        "type_vocab_size": "type_vocab_size", "layer_norm_eps": "layer_norm_eps",
    }  # fmt: skip

    @classmethod
    def from_hf(cls, hf):
        """The config of a Hugging Face BERT ``config.json`` (a dict); other architectures are refused."""
        if hf.get("model_type") != "bert":
            raise ValueError(f"expected a BERT config (model_type 'bert'), got model_type {hf.get('model_type')!r}")
        if hf.get("hidden_act", "gelu") != "gelu" or hf.get("position_embedding_type", "absolute") != "absolute":
            raise ValueError(
                f"only BERT with hidden_act 'gelu' and absolute positions is implemented, got "
                f"{hf.get('hidden_act')!r} and {hf.get('position_embedding_type')!r}"
            )
        missing = [k for k in cls.HF_NAMES if k not in hf]
        if missing:
            raise ValueError(f"config.json lacks {missing}")
        return cls(**{ours: hf[theirs] for theirs, ours in cls.HF_NAMES.items()})


class BertMLP(Module):
    """fc_in (C -> n_inner), exact GELU (Eq. P3 in docs/autograd.md), fc_out (n_inner -> C)."""

    def __init__(self, config):
        super().__init__()
        self.fc_in = Linear(config.n_embd, config.n_inner)
        self.fc_out = Linear(config.n_inner, config.n_embd)

    def forward(self, x):
        return self.fc_out(ops.gelu(self.fc_in(x), approximate="none"))


class BertBlock(Module):
    """x ← LN₁(x + attn(x)); x ← LN₂(x + mlp(x)): the post-LayerNorm block (Eq. E2 in docs/pretrained.md)."""

    def __init__(self, config):
        super().__init__()
        self.attn = CausalSelfAttention(config.n_embd, config.n_head, config.block_size, config.dropout, causal=False)
        self.ln1 = LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.mlp = BertMLP(config)
        self.ln2 = LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.dropout = Dropout(config.dropout)

    def forward(self, x, key_padding_mask=None):
        x = self.ln1(x + self.dropout(self.attn(x, key_padding_mask)))
        return self.ln2(x + self.dropout(self.mlp(x)))


def padding_mask(attention_mask):
    """The attention layers' mask, True at padding, from a tokenizer's 1-real/0-padding mask."""
    if attention_mask is None:
        return None
    mask = attention_mask.data if isinstance(attention_mask, Tensor) else backend.asarray(attention_mask)
    return mask == 0


class BertEncoder(Module):
    """BERT's encoder (Eq. E1-E3 in docs/pretrained.md): embeddings, ``n_layer`` BertBlocks.

    ``forward(input_ids, attention_mask=None, token_type_ids=None)`` returns the last
    hidden states, a (B, T, n_embd) Tensor; an encoder has no logits and no loss of
    its own. Parameter names: tok_emb, pos_emb, type_emb, ln_emb,
    blocks.{i}.attn.{q_proj,k_proj,v_proj,o_proj}, blocks.{i}.ln1,
    blocks.{i}.mlp.{fc_in,fc_out}, blocks.{i}.ln2.
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        self.tok_emb = Embedding(config.vocab_size, config.n_embd)
        self.pos_emb = Embedding(config.block_size, config.n_embd)
        self.type_emb = Embedding(config.type_vocab_size, config.n_embd)
        self.ln_emb = LayerNorm(config.n_embd, eps=config.layer_norm_eps)
        self.drop = Dropout(config.dropout)
        self.blocks = ModuleList(BertBlock(config) for _ in range(config.n_layer))
        for p in self.parameters():  # BERT's initialisation, for a model trained from scratch
            if p.ndim == 2:
                init.normal_(p, 0.02)

    def embed(self, input_ids, token_type_ids=None):
        """x₀ = LN(E_tok[ids] + E_pos[t] + E_type[types]) (Eq. E1 in docs/pretrained.md)."""
        idx = as_indices(input_ids)
        T = idx.shape[1]
        if T > self.config.block_size:
            raise ValueError(f"sequence length {T} exceeds the {self.config.block_size} positions; truncate the input")
        xp = backend.get_array_module(idx)
        types = xp.zeros_like(idx) if token_type_ids is None else as_indices(token_type_ids)
        x = self.tok_emb(idx) + self.pos_emb(xp.arange(T)) + self.type_emb(types)  # (B, T, C)
        return self.drop(self.ln_emb(x))

    def forward(self, input_ids, attention_mask=None, token_type_ids=None):
        mask = padding_mask(attention_mask)
        x = self.embed(input_ids, token_type_ids)
        for block in self.blocks:
            x = block(x, mask)
        return x


@dataclass
class PoolingConfig:
    mean: bool = True  # average the token states over real tokens (False: take [CLS]'s state)
    normalize: bool = True  # divide each embedding by its L2 norm

    @classmethod
    def from_sentence_transformers(cls, pooling, normalize):
        """From 1_Pooling/config.json (a dict) and whether modules.json lists a Normalize module."""
        modes = [k for k, v in pooling.items() if k.startswith("pooling_mode_") and v]
        if modes not in (["pooling_mode_mean_tokens"], ["pooling_mode_cls_token"]):
            raise ValueError(f"only mean or [CLS] pooling is implemented, the pooling config asks for {modes}")
        return cls(mean=modes == ["pooling_mode_mean_tokens"], normalize=normalize)


def mean_pool(hidden, attention_mask):
    """Σ_t m_t h_t / max(Σ_t m_t, 1e-9): the mean over real tokens (Eq. E4 in docs/pretrained.md)."""
    xp = backend.get_array_module(hidden.data)
    m = backend.asarray(attention_mask.data if isinstance(attention_mask, Tensor) else attention_mask)
    m = m.astype(hidden.dtype)[:, :, None]  # (B, T, 1)
    counts = xp.maximum(m.sum(axis=1), 1e-9).astype(hidden.dtype)  # (B, 1)
    return (hidden * m).sum(axis=1) / counts  # (B, C)


def l2_normalize(x, eps=1e-12):
    """x / max(‖x‖₂, ε) row by row, as PyTorch's F.normalize."""
    norm = ops.sqrt((x * x).sum(axis=-1, keepdims=True))
    return x / ops.clamp(norm, min=eps)


class SentenceEncoder(Module):
    """A BertEncoder, its tokenizer and its pooling: sentences in, unit vectors out (Eq. E4).

    ``forward(input_ids, attention_mask)`` gives differentiable (B, C) embeddings for
    fine-tuning; ``encode(sentences)`` gives a float32 array, as sentence-transformers does.
    """

    def __init__(self, encoder, tokenizer, pooling=None, max_length=256):
        super().__init__()
        self.encoder = encoder
        self.tokenizer = tokenizer
        self.pooling = pooling or PoolingConfig()
        self.max_length = max_length  # sentence-transformers' max_seq_length: longer inputs are cut

    def forward(self, input_ids, attention_mask, token_type_ids=None):
        hidden = self.encoder(input_ids, attention_mask, token_type_ids)  # (B, T, C)
        pooled = mean_pool(hidden, attention_mask) if self.pooling.mean else hidden[:, 0]  # (B, C)
        return l2_normalize(pooled) if self.pooling.normalize else pooled

    def tokenize(self, sentences):
        return self.tokenizer(sentences, max_length=self.max_length)

    def encode(self, sentences, batch_size=32):
        """An (n, n_embd) float32 host array of embeddings, one row per sentence."""
        if isinstance(sentences, str):
            sentences = [sentences]
        if not sentences:
            raise ValueError("encode: pass a non-empty list of sentences")
        # Batches of similar lengths pad little, so sentences go longest first (as in
        # sentence-transformers) and the rows are put back in the caller's order at the end.
        order = sorted(range(len(sentences)), key=lambda i: -len(sentences[i]))
        host = backend.module_for("cpu")
        out = host.zeros((len(sentences), self.encoder.config.n_embd), dtype="float32")
        with evaluating(self):
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                batch = self.tokenize([sentences[i] for i in rows])
                out[rows] = backend.to_numpy(self(batch["input_ids"], batch["attention_mask"]).data)
        return out
