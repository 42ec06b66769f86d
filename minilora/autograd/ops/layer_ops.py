"""Fused layer ops: an affine map (``linear``) and a tanh recurrence (``rnn_tanh``).

Both could be built from smaller ops. As single nodes they are faster, and
their VJPs show in a few lines where the gradients of a layer come from
(docs/autograd.md, Eq. L1-L2). Both take their weights as *inputs*, so a
frozen weight's gradient is skipped, and an adapter can pass in W + ΔW.
"""

from minilora import backend
from minilora.autograd.function import Function
from minilora.autograd.tensor import Tensor


class Linear(Function):
    """y = x Wᵀ + b for x of shape (..., in), W of shape (out, in) (Eq. L1).

    With X the inputs flattened to rows and G the output gradients:
    dX = G W, dW = Gᵀ X, db = Σ_rows G. dW is the one skipped when W is frozen.
    """

    def forward(self, x, weight, bias=None):
        x2 = x.reshape(-1, x.shape[-1])  # (N, in)
        y = x2 @ weight.T  # (N, out)
        if bias is not None:
            y += bias
        # dX needs W and dW needs X: with a frozen W (LoRA's base layer) the
        # input activation need not be kept alive for backward at all.
        self.save_for_backward(x2 if self.needs_grad[1] else None, weight if self.needs_grad[0] else None)
        self.in_shape, self.out_features = x.shape, weight.shape[0]
        return y.reshape(x.shape[:-1] + (weight.shape[0],))

    def backward(self, grad):
        """Eq. L1 in docs/autograd.md, each gradient only when needed: a frozen W skips
        dW, half of this backward's multiply–adds (Eq. C2 in docs/math.md)."""
        x2, weight = self.saved
        g2 = grad.reshape(-1, self.out_features)  # (N, out)
        gx = (g2 @ weight).reshape(self.in_shape) if self.needs_grad[0] else None
        gw = g2.T @ x2 if self.needs_grad[1] else None
        gb = g2.sum(axis=0) if self.needs_grad[2] else None
        return gx, gw, gb


class RNNTanh(Function):
    """An Elman recurrence over a batch-first sequence (Eq. L2, backprop through time).

        a_t = x_t W_ihᵀ + b_ih + h_{t-1} W_hhᵀ + b_hh,    h_t = tanh(a_t)

    Input x is (B, T, I), h0 is (B, H); the output is every h_t, (B, T, H).
    Backward runs the recurrence in reverse: the gradient reaching h_t is
    what the output gives it plus what h_{t+1} passes back through W_hh,
        δ_t = (G_t + δ_{t+1} W_hh) ⊙ (1 - h_t²),
    and the weight gradients sum the per-step outer products, done as one
    matrix product over all steps at the end.
    """

    def forward(self, x, w_ih, w_hh, b_ih, b_hh, h0):
        xp = backend.get_array_module(x)
        B, T, _ = x.shape
        pre = x @ w_ih.T  # (B, T, H): the input's share of every a_t
        for bias in (b_ih, b_hh):
            if bias is not None:
                pre += bias
        hs = xp.empty((B, T + 1, w_hh.shape[0]), dtype=pre.dtype)  # hs[:, t + 1] is h_t
        hs[:, 0] = h0
        for t in range(T):
            hs[:, t + 1] = xp.tanh(pre[:, t] + hs[:, t] @ w_hh.T)
        self.save_for_backward(x, w_ih, w_hh, hs)
        return hs[:, 1:]

    def backward(self, grad):
        x, w_ih, w_hh, hs = self.saved
        xp = backend.get_array_module(grad)
        B, T, H = grad.shape
        deltas = xp.empty_like(grad)  # δ_t = dL/da_t
        carry = xp.zeros((B, H), dtype=grad.dtype)  # dL/dh_t through h_{t+1}
        for t in reversed(range(T)):
            h = hs[:, t + 1]
            deltas[:, t] = (grad[:, t] + carry) * (1.0 - h * h)
            carry = deltas[:, t] @ w_hh
        d2 = deltas.reshape(B * T, H)  # (B·T, H)
        need = self.needs_grad
        gx = deltas @ w_ih if need[0] else None
        g_ih = d2.T @ x.reshape(B * T, -1) if need[1] else None
        g_hh = d2.T @ hs[:, :-1].reshape(B * T, H) if need[2] else None
        g_b = d2.sum(axis=0) if need[3] or need[4] else None  # both biases enter a_t alike
        return gx, g_ih, g_hh, g_b if need[3] else None, g_b if need[4] else None, carry if need[5] else None


# ----------------------------------------------------------------------------
# The functional API


def linear(x, weight, bias=None):
    """``x @ weight.T + bias``, as ``torch.nn.functional.linear``."""
    if x.shape[-1] != weight.shape[-1]:
        raise ValueError(
            f"linear: input of shape {x.shape} has {x.shape[-1]} features, but the weight "
            f"{weight.shape} expects {weight.shape[-1]} (weight is (out_features, in_features))"
        )
    return Linear.apply(x, weight, bias)


def rnn_tanh(x, w_ih, w_hh, b_ih, b_hh, h0=None):
    """Every hidden state of a tanh RNN over ``x`` (B, T, I), as a (B, T, H) tensor."""
    if x.ndim != 3:
        raise ValueError(f"rnn_tanh: input must be batch-first (B, T, features), got shape {x.shape}")
    if x.shape[-1] != w_ih.shape[1]:
        raise ValueError(f"rnn_tanh: input has {x.shape[-1]} features, but w_ih {w_ih.shape} expects {w_ih.shape[1]}")
    if h0 is None:
        h0 = Tensor._wrap(backend.get_array_module(x.data).zeros((x.shape[0], w_hh.shape[0]), dtype=x.dtype))
    return RNNTanh.apply(x, w_ih, w_hh, b_ih, b_hh, h0)
