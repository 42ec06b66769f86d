"""minilora's GPT training step written out by hand, with no graph: the benchmark's reference.

``python -m minilora bench`` times minilora's engine against PyTorch. This file is
the third column: the same GPT, weights, batch and AdamW update as
``bench.minilora_step(size, "full")``, with every forward and backward pass
written as plain array code, layer by layer, keeping by hand what each backward
needs. An engine adds Tensor wrappers, graph nodes, a backward walk and gradient
accumulation on top of this work; the time it takes beyond this file's is that
overhead (docs/performance.md).

Each layer is a pair of functions on 2-D (rows, features) arrays, where a row is
one of the B·T positions: the forward returns its output and what its backward
will need, and the backward turns the output's gradient into the input's (and the
parameters') gradients, by the equations of docs/autograd.md. Arrays keep the
weights' dtype: float32 when timing, float64 when the tests compare this file
with minilora's autograd to the last digits.
"""

import math

from minilora import backend
from minilora.experiments.bench_sizes import VOCAB, bench_gpt

_GELU_C = math.sqrt(2.0 / math.pi)  # a Python float, so float32 arrays stay float32


# ----------------------------------------------------------------------------
# the layers, forward and backward


def embedding_forward(idx, tok_w, pos_w):
    """x[b, t] = tok_w[idx[b, t]] + pos_w[t], as (B·T, C) rows (Eq. N4 twice)."""
    B, T = idx.shape
    x = tok_w[idx]  # (B, T, C)
    x += pos_w[:T]
    return x.reshape(B * T, -1)  # (B·T, C)


def embedding_backward(dx, idx, tok_w, pos_w):
    """The tables' gradients (Eq. N4): each token row gets the sum of dx over that
    token's positions, each position row the sum over the batch.

    The token sum is the matrix product Oᵀ dx, with O the (B·T, vocab) one-hot
    matrix of idx: for the benchmark's 65-token vocabulary one product beats a
    scatter-add (``backend.scatter_add``) several times over.
    """
    xp = backend.get_array_module(dx)
    B, T = idx.shape
    onehot_t = xp.arange(tok_w.shape[0])[:, None] == idx.reshape(1, -1)  # Oᵀ, (vocab, B·T), bool
    d_tok = onehot_t.astype(dx.dtype) @ dx  # (vocab, C)
    d_pos = xp.zeros_like(pos_w)
    d_pos[:T] = dx.reshape(B, T, -1).sum(axis=0)  # (T, C); rows past T get nothing
    return d_tok, d_pos


def row_sum(x):
    """Σ over the last axis, kept as an axis of length 1: (..., n) -> (..., 1).

    einsum's summing loop runs several times faster than ``x.sum(axis=-1)`` on
    many short rows (and, unlike a product with a vector of ones, never waits
    on a BLAS thread).
    """
    return backend.get_array_module(x).einsum("...i->...", x)[..., None]


def row_dot(a, b):
    """Σ over the last axis of a ⊙ b, kept as an axis of length 1, without forming a ⊙ b."""
    return backend.get_array_module(a).einsum("...i,...i->...", a, b)[..., None]


def layer_norm_forward(x, w, b, eps=1e-5):
    """y = x̂ ⊙ w + b with x̂ = (x - μ)·r, r = 1/√(σ² + eps), per row (Eq. N5)."""
    xp = backend.get_array_module(x)
    inv_n = 1.0 / x.shape[1]
    xhat = x - row_sum(x) * inv_n  # x - μ
    rstd = 1.0 / xp.sqrt(row_dot(xhat, xhat) * inv_n + eps)  # r, (N, 1)
    xhat *= rstd
    y = xhat * w
    y += b
    return y, (xhat, rstd)


def layer_norm_backward(dy, cache, w):
    """dx = r(ĝ - mean ĝ - x̂ ⊙ mean(ĝ ⊙ x̂)) with ĝ = dy ⊙ w; dw = Σ dy ⊙ x̂, db = Σ dy (Eq. N5)."""
    xhat, rstd = cache
    xp = backend.get_array_module(dy)
    inv_n = 1.0 / dy.shape[1]
    dw = xp.einsum("ij,ij->j", dy, xhat)  # Σ over rows of dy ⊙ x̂
    db = dy.sum(axis=0)
    ghat = dy * w
    dx = ghat - row_sum(ghat) * inv_n
    dx -= xhat * (row_dot(ghat, xhat) * inv_n)
    dx *= rstd
    return dx, dw, db


def linear_forward(x, w, b):
    """Y = X Wᵀ + b, with W (out, in) as PyTorch stores it (Eq. L1)."""
    y = x @ w.T  # (N, out)
    y += b
    return y


def linear_backward(dy, x, w):
    """dX = G W, dW = Gᵀ X, db = Σ_rows G (Eq. L1)."""
    return dy @ w, dy.T @ x, dy.sum(axis=0)


def gelu_forward(x):
    """y = ½x(1 + t), t = tanh(u), u = c(x + 0.044715x³), c = √(2/π): minilora's gelu (Eq. P2).

    Returns y and t, which the backward needs with x. The constants are folded
    (u = (c + 0.044715c·x²)·x) to save passes over the array.
    """
    xp = backend.get_array_module(x)
    t = x * x
    t *= 0.044715 * _GELU_C
    t += _GELU_C
    t *= x  # u
    xp.tanh(t, out=t)
    y = t + 1.0
    y *= x
    y *= 0.5
    return y, t


def gelu_backward(dy, x, t):
    """dx = dy ⊙ [½(1 + t) + ½x(1 - t²)·c(1 + 3·0.044715x²)] (Eq. P2)."""
    xp = backend.get_array_module(dy)
    slope = x * x
    slope *= 1.5 * 0.044715 * _GELU_C
    slope += 0.5 * _GELU_C
    slope *= x  # ½x·du/dx
    scratch = t * t
    xp.subtract(1.0, scratch, out=scratch)
    slope *= scratch  # · (1 - t²)
    xp.multiply(t, 0.5, out=scratch)
    scratch += 0.5
    slope += scratch  # + ½(1 + t)
    slope *= dy
    return slope


def split_heads(x, B, T, n_head):
    """(B·T, C) rows -> (B, nh, T, hs), copied so that each head's (T, hs) matrix is
    packed: BLAS multiplies packed matrices much faster than strided views."""
    xp = backend.get_array_module(x)
    return xp.ascontiguousarray(x.reshape(B, T, n_head, -1).transpose(0, 2, 1, 3))  # (B, nh, T, hs)


def merge_heads(x):
    """(B, nh, T, hs) -> (B·T, C) rows: the heads side by side again (a copy)."""
    B, n_head, T, hs = x.shape
    return x.transpose(0, 2, 1, 3).reshape(B * T, n_head * hs)  # (B, T, nh, hs) -> (B·T, C)


def attention_forward(q, k, v, B, T, n_head, mask):
    """Causal softmax attention of every head at once, from (B·T, C) projections.

    A = softmax((Q/√hs) Kᵀ + M), out = A V per batch row and head (nn/attention.py;
    the softmax is Eq. N1's forward, shifted by each row's max so exp cannot overflow).
    Scaling Q rather than the scores touches hs numbers per position instead of T.
    """
    xp = backend.get_array_module(q)
    q, k, v = (split_heads(a, B, T, n_head) for a in (q, k, v))  # each (B, nh, T, hs)
    q *= 1.0 / math.sqrt(q.shape[-1])
    att = q @ k.transpose(0, 1, 3, 2)  # (B, nh, T, T)
    att += mask[:T, :T]  # -inf above the diagonal: no position sees its future
    att -= att.max(axis=-1, keepdims=True)
    xp.exp(att, out=att)
    att /= row_sum(att)
    return merge_heads(att @ v), (q, k, v, att)


def attention_backward(dy, cache):
    """dQ, dK, dV as (B·T, C) rows, from the gradient of the merged heads.

    dA = dOut Vᵀ and dV = Aᵀ dOut (Eq. M2); through the softmax
    dS = A ⊙ (dA - Σ_row dA ⊙ A) (Eq. N1); then dQ = dS K/√hs and dK = dSᵀ (Q/√hs),
    with ``q`` already scaled by the forward.
    """
    q, k, v, att = cache
    B, n_head, T, hs = q.shape
    dout = split_heads(dy, B, T, n_head)  # (B, nh, T, hs)
    dv = att.transpose(0, 1, 3, 2) @ dout
    ds = dout @ v.transpose(0, 1, 3, 2)  # dA, (B, nh, T, T)
    ds -= row_dot(ds, att)
    ds *= att  # dS; zero above the diagonal, where A is
    dq = ds @ k
    dq *= 1.0 / math.sqrt(hs)
    return merge_heads(dq), merge_heads(ds.transpose(0, 1, 3, 2) @ q), merge_heads(dv)


def cross_entropy_forward(logits, targets):
    """Mean of -log softmax(logits)[target] over the rows, and the softmax (Eq. N3)."""
    xp = backend.get_array_module(logits)
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = xp.exp(shifted)
    total = row_sum(probs)  # (N, 1)
    rows = xp.arange(len(targets))
    loss = (xp.log(total[:, 0]) - shifted[rows, targets]).mean()
    probs /= total
    return loss, probs


def cross_entropy_backward(probs, targets):
    """d logits = (softmax - onehot(target)) / N (Eq. N3); overwrites ``probs``."""
    xp = backend.get_array_module(probs)
    probs[xp.arange(len(targets)), targets] -= 1.0
    probs *= 1.0 / len(targets)
    return probs


# ----------------------------------------------------------------------------
# the model


class NumpyGPT:
    """minilora's GPT as plain arrays, with a hand-written forward and backward pass.

    ``params`` maps minilora's parameter names (``blocks.0.attn.q_proj.weight``, ...)
    to copies of a GPT's arrays; ``forward_backward`` returns gradients under the
    same names, so the two can be compared entry by entry.
    """

    def __init__(self, state_dict, config, dtype=None):
        if config.dropout > 0:
            raise ValueError(
                f"NumpyGPT has no dropout (the benchmark trains with dropout=0), but the config has "
                f"dropout={config.dropout}; build the GPT with GPTConfig(..., dropout=0.0)"
            )
        if not config.bias:
            raise ValueError("NumpyGPT has the biases of the benchmark's GPT; build it with GPTConfig(..., bias=True)")
        self.config = config
        self.params = {name: a.astype(dtype or a.dtype) for name, a in state_dict.items()}  # copies
        weight = self.params["tok_emb.weight"]
        xp, T = backend.get_array_module(weight), config.block_size
        self.mask = xp.triu(xp.full((T, T), -math.inf, dtype=weight.dtype), k=1)  # -inf above the diagonal, else 0

    @classmethod
    def from_model(cls, model, dtype=None):
        """A NumpyGPT with a copy of a minilora GPT's weights (cast to ``dtype`` if given)."""
        return cls(model.state_dict(), model.config, dtype)

    def forward_backward(self, idx, targets):
        """The mean cross-entropy on a (B, T) batch of token ids, and {name: gradient}."""
        P = self.params
        B, T = idx.shape
        if T > self.config.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {self.config.block_size}; crop the input")
        targets = targets.reshape(-1)  # (B·T,)
        x = embedding_forward(idx, P["tok_emb.weight"], P["pos_emb.weight"])  # (B·T, C)
        caches = []
        for i in range(self.config.n_layer):
            x, cache = self._block_forward(f"blocks.{i}.", x, B, T)
            caches.append(cache)
        h, ln_f = layer_norm_forward(x, P["ln_f.weight"], P["ln_f.bias"])
        logits = h @ P["lm_head.weight"].T  # (B·T, vocab)
        loss, probs = cross_entropy_forward(logits, targets)

        grads = {}
        dlogits = cross_entropy_backward(probs, targets)
        grads["lm_head.weight"] = dlogits.T @ h
        dh = dlogits @ P["lm_head.weight"]
        dx, grads["ln_f.weight"], grads["ln_f.bias"] = layer_norm_backward(dh, ln_f, P["ln_f.weight"])
        for i in reversed(range(self.config.n_layer)):
            dx = self._block_backward(f"blocks.{i}.", dx, caches.pop(), grads)
        grads["tok_emb.weight"], grads["pos_emb.weight"] = embedding_backward(dx, idx, P["tok_emb.weight"], P["pos_emb.weight"])
        return float(loss), grads

    def _layer(self, name):
        """(weight, bias) of a Linear or LayerNorm by its module name."""
        return self.params[name + ".weight"], self.params[name + ".bias"]

    def _block_forward(self, p, x, B, T):
        """x + o_proj(attention(ln1(x))), then x + fc_out(gelu(fc_in(ln2(x)))): one pre-LN block."""
        a, ln1 = layer_norm_forward(x, *self._layer(p + "ln1"))
        q, k, v = (linear_forward(a, *self._layer(f"{p}attn.{n}")) for n in ("q_proj", "k_proj", "v_proj"))
        y, attn = attention_forward(q, k, v, B, T, self.config.n_head, self.mask)
        x += linear_forward(y, *self._layer(p + "attn.o_proj"))  # in place: no cache holds x
        m, ln2 = layer_norm_forward(x, *self._layer(p + "ln2"))
        f = linear_forward(m, *self._layer(p + "mlp.fc_in"))  # (B·T, 4C)
        g, t = gelu_forward(f)
        x += linear_forward(g, *self._layer(p + "mlp.fc_out"))
        # for the backward: each linear layer's input (a, y, m, g), GELU's input f and
        # tanh t, and the LayerNorm and attention caches
        return x, (a, ln1, y, attn, m, ln2, f, t, g)

    def _block_backward(self, p, dx, cache, grads):
        """The block's backward, in reverse. The residual stream's gradient dx reaches each
        branch's output and adds to what comes back out of the branch's input."""
        P = self.params
        a, ln1, y, attn, m, ln2, f, t, g = cache

        def linear(dy, x, name):  # Eq. L1, storing the weight's and bias's gradients
            dx, grads[name + ".weight"], grads[name + ".bias"] = linear_backward(dy, x, P[name + ".weight"])
            return dx

        def layer_norm(dy, cache, name):  # Eq. N5, the same
            dx, grads[name + ".weight"], grads[name + ".bias"] = layer_norm_backward(dy, cache, P[name + ".weight"])
            return dx

        dg = linear(dx, g, p + "mlp.fc_out")  # (B·T, 4C)
        dm = linear(gelu_backward(dg, f, t), m, p + "mlp.fc_in")
        dx += layer_norm(dm, ln2, p + "ln2")
        dq, dk, dv = attention_backward(linear(dx, y, p + "attn.o_proj"), attn)
        da = linear(dq, a, p + "attn.q_proj")
        da += linear(dk, a, p + "attn.k_proj")
        da += linear(dv, a, p + "attn.v_proj")
        dx += layer_norm(da, ln1, p + "ln1")
        return dx


# ----------------------------------------------------------------------------
# the optimizer and the benchmark's step


def adamw_update(p, g, m, v, step, lr, beta1, beta2, eps, weight_decay):
    """minilora's AdamW on one array, in place, operation for operation (optim/optimizers.py):

    p ← p(1 - lr·λ);  m ← β₁m + (1-β₁)g;  v ← β₂v + (1-β₂)g²;
    p ← p - lr/(1-β₁ᵗ) · m / (√v / √(1-β₂ᵗ) + eps).
    """
    xp = backend.get_array_module(p)
    p *= 1.0 - lr * weight_decay  # decoupled decay: not rescaled by √v
    m *= beta1
    scratch = g * (1.0 - beta1)  # one temporary, reused for every term below
    m += scratch
    v *= beta2
    xp.multiply(g, 1.0 - beta2, out=scratch)
    scratch *= g
    v += scratch
    xp.sqrt(v, out=scratch)
    scratch *= 1.0 / math.sqrt(1.0 - beta2**step)
    scratch += eps  # the denominator
    xp.divide(m, scratch, out=scratch)
    scratch *= lr / (1.0 - beta1**step)
    p -= scratch


class NumpyAdamW:
    """AdamW over a {name: array} dict, with the defaults of minilora.optim.AdamW."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        self.params, self.lr, self.betas, self.eps, self.weight_decay = params, lr, betas, eps, weight_decay
        self.exp_avg = {name: backend.get_array_module(p).zeros_like(p) for name, p in params.items()}
        self.exp_avg_sq = {name: backend.get_array_module(p).zeros_like(p) for name, p in params.items()}
        self.steps = 0  # a Python int, so β^t stays a Python float

    def step(self, grads):
        """One update of every parameter from ``grads`` ({name: array})."""
        self.steps += 1
        for name, p in self.params.items():
            adamw_update(p, grads[name], self.exp_avg[name], self.exp_avg_sq[name], self.steps,
                         self.lr, *self.betas, self.eps, self.weight_decay)  # fmt: skip


class NumpyTrainStep:
    """One full training step (forward, backward, AdamW) of the hand-written GPT, as a callable.

    Built like ``bench.minilora_step(size, "full", seed)``: the GPT from
    ``bench_gpt(size, seed)``, then the batch drawn right after it, and AdamW
    with lr = 1e-4 and the default weight decay on every parameter, as
    the benchmark's training step does. ``gpt``, ``optimizer`` and ``batch`` are kept
    for inspection; a call returns the loss before the update.
    """

    def __init__(self, size, seed=0):
        model = bench_gpt(size, seed)
        self.batch = backend.randint(0, VOCAB, (size["batch_size"], size["block_size"]))
        self.gpt = NumpyGPT.from_model(model)
        self.optimizer = NumpyAdamW(self.gpt.params, lr=1e-4)

    def __call__(self):
        loss, grads = self.gpt.forward_backward(self.batch, self.batch)
        self.optimizer.step(grads)
        return loss


def numpy_step(size, seed=0):
    """A zero-argument callable that takes one hand-written training step at ``size`` (a bench.SIZES entry)."""
    return NumpyTrainStep(size, seed)
