"""LoRA layers (Hu et al., 2021): a frozen weight W₀ plus a trainable low-rank update.

For a linear layer with input x,

    y = W₀x + s · B A dropout(x),    A ∈ ℝ^{r×in}, B ∈ ℝ^{out×r},

with s = α/r (or α/√r with rsLoRA, Kalajdzievski 2023). Only A and B train:
r·(in + out) numbers instead of in·out (Eq. 1-2 in docs/lora.md). Because B·A is an
ordinary matrix, it can be added into W₀ once training is done ("merging"),
after which the layer costs exactly what the original did: in·out multiply–adds
per token instead of in·out + r·(in + out) (Eq. C1 in docs/math.md).

Each layer keeps the original module as ``.base`` and only adds ``lora_A``,
``lora_B``, ``scaling`` and ``merged``, so a model's parameter names change
predictably: ``q_proj.weight`` becomes ``q_proj.base.weight``.
"""

import math

from minilora import backend
from minilora.adapters import AdapterLayer
from minilora.autograd import ops
from minilora.autograd.engine import no_grad
from minilora.matrices import svd
from minilora.nn.layers import Dropout, uniform
from minilora.nn.module import Parameter

INITS = ("default", "gaussian", "pissa")


def lora_scaling(r, lora_alpha, use_rslora=False):
    """s = α/r, or α/√r (rsLoRA), which keeps the update's scale stable as r grows (Eq. 8 in docs/lora.md)."""
    return lora_alpha / math.sqrt(r) if use_rslora else lora_alpha / r


def check_lora_options(r, lora_alpha, lora_dropout, init_lora_weights):
    """The one check of LoRA's options, for ``LoraConfig`` and for a layer built directly."""
    if isinstance(r, bool) or not isinstance(r, int) or r < 1:
        raise ValueError(f"LoRA rank r must be a positive integer, got {r!r}")
    if not lora_alpha > 0:
        raise ValueError(f"lora_alpha must be positive (the update is scaled by alpha/r), got {lora_alpha!r}")
    if not 0.0 <= lora_dropout < 1.0:
        raise ValueError(f"lora_dropout must be in [0, 1), got {lora_dropout!r}")
    if init_lora_weights not in INITS:
        raise ValueError(f"init_lora_weights must be one of {INITS}, got {init_lora_weights!r}")


class LoRALayer(AdapterLayer):
    """What every LoRA layer shares: rank, scaling, dropout, and what merging adds (s·BA)."""

    change = "ΔW = s·BA"

    def __init__(self, base, r, lora_alpha, lora_dropout, use_rslora, init_lora_weights="default"):
        check_lora_options(r, lora_alpha, lora_dropout, init_lora_weights)
        super().__init__(base)
        self.r, self.lora_alpha, self.use_rslora = r, lora_alpha, use_rslora
        self.scaling = lora_scaling(r, lora_alpha, use_rslora)
        self.lora_dropout = Dropout(lora_dropout)
        base.requires_grad_(False)  # the pretrained layer stays as it is

    def delta_weights(self):
        """{name of a base weight: the array s·BA to add to it}, computed without a graph."""
        raise NotImplementedError

    def merged_weights(self, safe=True):
        """{name: W₀ + s·BA} for each base weight, computed on copies (nothing changes yet).

        ``merge()`` writes them: W₀ ← W₀ + s·BA, so forward no longer runs the
        adapter (Eq. 9 in docs/lora.md) and costs what the base layer alone does
        (for a Linear, Eq. C1 in docs/math.md). Refuses in train mode with
        active dropout: the merged layer would stop dropping out the adapter's
        input, so its outputs would change. With ``safe=True`` a non-finite
        result is refused too.
        """
        if self.training and self.lora_dropout.p > 0:
            raise RuntimeError(
                "refusing to merge in train mode with lora_dropout active: the merged layer would "
                "stop dropping out the adapter's input, so its outputs would change. Call model.eval() first."
            )
        new = {}
        for name, delta in self.delta_weights().items():
            weight = getattr(self.base, name)
            new[name] = weight.data + delta.astype(weight.dtype)
            if safe and not backend.all_finite(new[name]):
                raise ValueError(f"merging would make {name} non-finite; the adapter weights are broken, nothing was merged")
        return new

    def unmerged_weights(self):
        """{name: W₀ - s·BA}: back to the frozen base plus a separate adapter."""
        return {name: getattr(self.base, name).data - delta.astype(getattr(self.base, name).dtype) for name, delta in self.delta_weights().items()}

    def extra_repr(self):
        return f"r={self.r}, lora_alpha={self.lora_alpha}, scaling={self.scaling:.4g}, merged={self.merged}"


def _default_init_only(layer, init_lora_weights):
    if init_lora_weights != "default":
        raise ValueError(
            f"{type(layer).__name__} supports init_lora_weights='default' only, got {init_lora_weights!r}; "
            "target its Linear layers alone for gaussian or PiSSA initialisation"
        )
    layer.init_lora_weights = init_lora_weights


def _product(B, A, scaling):
    with no_grad():
        return (B.data @ A.data) * scaling


class LoRALinear(LoRALayer):
    """y = base(x) + s · B A dropout(x), with ``base`` a frozen ``nn.Linear`` (Eq. 1 in docs/lora.md).

    Initialisation (``init_lora_weights``):

    * ``"default"``: A Kaiming-uniform (PyTorch's Linear init), B = 0, so
      BA = 0 and the layer starts as exactly the base. B = 0 rather than A = 0
      because A's gradient is Bᵀ(...) and B's is (...)Aᵀ: with B = 0 the first
      step moves B (A is non-zero), and from then on both learn.
    * ``"gaussian"``: A with entries of variance 1/r (standard deviation
      1/√r), B = 0.
    * ``"pissa"`` (Meng et al., 2024): from the SVD W₀ = U S Vᵀ, B A takes the
      top r singular directions, B = U_r √S_r / √s, A = √S_r V_rᵀ / √s (Eq. 7), and
      the base keeps the residual W₀ - s·BA. The output is unchanged at init,
      but training starts on the directions that matter most.
    """

    def __init__(self, base, r=8, lora_alpha=16, lora_dropout=0.0, use_rslora=False, init_lora_weights="default"):
        super().__init__(base, r, lora_alpha, lora_dropout, use_rslora, init_lora_weights)
        if init_lora_weights == "pissa" and r > min(base.in_features, base.out_features):
            raise ValueError(f"PiSSA needs r <= min(in_features, out_features) = {min(base.in_features, base.out_features)} singular directions, got r={r}")
        out_f, in_f = base.weight.shape
        dtype = base.weight.dtype
        self.init_lora_weights = init_lora_weights
        if init_lora_weights == "default":
            self.lora_A = Parameter(uniform((r, in_f), 1.0 / math.sqrt(in_f)).astype(dtype))
        else:
            self.lora_A = Parameter((backend.randn((r, in_f)) * (1.0 / math.sqrt(r))).astype(dtype))
        self.lora_B = Parameter(backend.xp.zeros((out_f, r), dtype=dtype))
        if init_lora_weights == "pissa":
            self._init_pissa()

    def _init_pissa(self):
        W = self.base.weight.data
        xp = backend.get_array_module(W)
        U, S, Vt = svd(W)
        root = xp.sqrt(S[: self.r] / self.scaling)  # so that s·BA = U_r S_r V_rᵀ
        self.lora_B.data = (U[:, : self.r] * root).astype(W.dtype)
        self.lora_A.data = (root[:, None] * Vt[: self.r]).astype(W.dtype)
        self.base.weight.data = (W - _product(self.lora_B, self.lora_A, self.scaling)).astype(W.dtype)

    def delta_weights(self):
        return {"weight": _product(self.lora_B, self.lora_A, self.scaling)}

    def forward(self, x):
        y = self.base(x)
        if self.merged:
            return y
        update = ops.linear(ops.linear(self.lora_dropout(x), self.lora_A), self.lora_B)  # (..., out)
        return y + update * self.scaling


class LoRAEmbedding(LoRALayer):
    """out = base(idx) + s · (A[:, idx])ᵀ Bᵀ, with ``base`` a frozen ``nn.Embedding`` (Eq. 5 in docs/lora.md).

    A is (r, num_embeddings) and B is (embedding_dim, r). Here A starts at 0
    and B ~ N(0, 1), the reverse of LoRALinear: A plays the role of a small
    embedding table (each token looks up its own column, so A's gradient is
    sparse like an embedding's), and B, dense like ``nn.Embedding``'s default
    N(0, 1) init, gives every looked-up column of A a non-zero gradient from
    the first step. Either way BA = 0 and the layer starts as the base.
    No dropout: the input is a token id, not a vector to drop out.
    """

    def __init__(self, base, r=8, lora_alpha=16, lora_dropout=0.0, use_rslora=False, init_lora_weights="default"):
        super().__init__(base, r, lora_alpha, 0.0, use_rslora)
        _default_init_only(self, init_lora_weights)
        num, dim = base.weight.shape
        dtype = base.weight.dtype
        self.lora_A = Parameter(backend.xp.zeros((r, num), dtype=dtype))
        self.lora_B = Parameter(backend.randn((dim, r)).astype(dtype))

    def delta_weights(self):
        return {"weight": _product(self.lora_B, self.lora_A, self.scaling).T}  # (num, dim)

    def forward(self, idx):
        y = self.base(idx)
        if self.merged:
            return y
        rows = ops.embedding(idx, ops.transpose(self.lora_A, 0, 1))  # (..., r): column idx of A
        return y + ops.linear(rows, self.lora_B) * self.scaling


class LoRARNN(LoRALayer):
    """A tanh RNN whose two weight matrices both get a low-rank update (Eq. 6 in docs/lora.md):

        W_ih = W_ih⁰ + s·B_ih A_ih,    W_hh = W_hh⁰ + s·B_hh A_hh.

    The recurrence is the fused ``rnn_tanh`` op, which takes its weights as
    inputs, so the adapted weights are built as tensors each forward and the
    gradient flows through them to the four factors (and never into the
    frozen W⁰, whose VJP is skipped).
    """

    def __init__(self, base, r=8, lora_alpha=16, lora_dropout=0.0, use_rslora=False, init_lora_weights="default"):
        super().__init__(base, r, lora_alpha, 0.0, use_rslora)
        _default_init_only(self, init_lora_weights)
        H, I = base.hidden_size, base.input_size
        dtype = base.weight_ih.dtype
        self.lora_A_ih = Parameter(uniform((r, I), 1.0 / math.sqrt(I)).astype(dtype))
        self.lora_B_ih = Parameter(backend.xp.zeros((H, r), dtype=dtype))
        self.lora_A_hh = Parameter(uniform((r, H), 1.0 / math.sqrt(H)).astype(dtype))
        self.lora_B_hh = Parameter(backend.xp.zeros((H, r), dtype=dtype))

    def delta_weights(self):
        return {
            "weight_ih": _product(self.lora_B_ih, self.lora_A_ih, self.scaling),
            "weight_hh": _product(self.lora_B_hh, self.lora_A_hh, self.scaling),
        }

    def forward(self, x, h0=None):
        base = self.base
        w_ih, w_hh = base.weight_ih, base.weight_hh
        if not self.merged:
            w_ih = w_ih + (self.lora_B_ih @ self.lora_A_ih) * self.scaling
            w_hh = w_hh + (self.lora_B_hh @ self.lora_A_hh) * self.scaling
        out = ops.rnn_tanh(x, w_ih, w_hh, base.bias_ih, base.bias_hh, h0)
        return out, out[:, -1]
