"""The fused ops neural networks are made of: softmax, log_softmax, cross_entropy,
embedding, layer_norm, dropout, and attention's scaled, masked softmax.

"Fused" means one node with a hand-derived backward instead of a chain of
small ops. That is both faster and more stable: cross_entropy never forms
log(softmax(x)) and its gradient is simply softmax - onehot
(docs/autograd.md, Eq. N1-N6).
"""

from minilora import backend
from minilora.autograd.function import Function
from minilora.autograd.ops.reductions import reduce_args
from minilora.autograd.tensor import Tensor


def _stable_log_softmax(x, axis):
    """x - logsumexp(x), with the max subtracted first so exp never overflows."""
    xp = backend.get_array_module(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - xp.log(xp.exp(shifted).sum(axis=axis, keepdims=True))


class Softmax(Function):
    """yᵢ = exp(xᵢ - m) / Σⱼ exp(xⱼ - m) with m = max x; dx = y ⊙ (g - Σ g⊙y) (Eq. N1)."""

    def forward(self, x, axis=-1):
        xp = backend.get_array_module(x)
        e = xp.exp(x - x.max(axis=axis, keepdims=True))
        out = e / e.sum(axis=axis, keepdims=True)
        self.axis = axis
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        (y,) = self.saved
        return y * (grad - (grad * y).sum(axis=self.axis, keepdims=True))


class AttentionSoftmax(Function):
    """Attention's weights in one node: softmax over the last axis of ``scale · x``,
    with the positions where ``mask`` is True set to -inf first (Eq. N6).

    Composed, the scale, the mask and the softmax are three nodes and three
    (B, nh, T, T) temporaries forward and back; fused, the forward works in
    one buffer and the backward is Eq. N1 times the scale: the masked
    positions have y = 0, so they receive no gradient.
    """

    def forward(self, x, mask=None, scale=1.0):
        xp = backend.get_array_module(x)
        y = x * scale
        if mask is not None:
            xp.copyto(y, float("-inf"), where=mask)
        y -= y.max(axis=-1, keepdims=True)
        xp.exp(y, out=y)
        y /= y.sum(axis=-1, keepdims=True)
        self.scale = scale
        self.save_for_backward(y)
        return y

    def backward(self, grad):
        (y,) = self.saved
        dx = grad * y
        dx -= y * dx.sum(axis=-1, keepdims=True)  # y ⊙ (g - Σ g⊙y), Eq. N1
        dx *= self.scale
        return dx, None


class LogSoftmax(Function):
    """x - logsumexp(x); dx = g - softmax(x)·Σ g (Eq. N2)."""

    def forward(self, x, axis=-1):
        out = _stable_log_softmax(x, axis)
        self.axis = axis
        self.save_for_backward(out)
        return out

    def backward(self, grad):
        (out,) = self.saved
        xp = backend.get_array_module(out)
        return grad - xp.exp(out) * grad.sum(axis=self.axis, keepdims=True)


class CrossEntropy(Function):
    """Mean (or sum) of -log softmax(logits)[target] over the rows (Eq. N3).

    ``logits`` is (..., C) and ``target`` holds class indices of shape (...).
    The gradient of one row's loss is softmax(row) - onehot(target), scaled by
    1/(number of counted rows) for the mean. Rows whose target is
    ``ignore_index`` count for nothing.
    """

    def forward(self, logits, target, ignore_index=-100, reduction="mean"):
        xp = backend.get_array_module(logits)
        n_classes = logits.shape[-1]
        z = logits.reshape(-1, n_classes)  # (N, C)
        t = target.reshape(-1)  # (N,)
        counted = t != ignore_index
        on_device = backend.is_device_array(t)
        if not on_device:  # on a device the check would stall the GPU (see embedding)
            _check_targets(t, counted, n_classes, ignore_index)
        safe_t = xp.where(counted, t, 0)
        logp = _stable_log_softmax(z, axis=-1)
        rows = xp.arange(z.shape[0])
        losses = xp.where(counted, -logp[rows, safe_t], 0.0)  # (N,); a where, since inf * 0 is nan
        self.reduction, self.shape = reduction, logits.shape
        self.save_for_backward(logp, safe_t, counted)
        if reduction == "none":
            return losses.reshape(target.shape)
        if reduction == "sum":
            return losses.sum()
        if on_device:  # a 0-d array that stays there: reading it back would be a sync
            self.n_counted = counted.sum().astype(logits.dtype)
            return losses.sum() / self.n_counted
        self.n_counted = int(counted.sum())
        return losses.sum() / self.n_counted if self.n_counted else losses.sum() * float("nan")

    def backward(self, grad):
        logp, safe_t, counted = self.saved
        xp = backend.get_array_module(logp)
        dz = xp.exp(logp)  # softmax
        dz[xp.arange(dz.shape[0]), safe_t] -= 1.0  # - onehot(target)
        dz *= counted[:, None]
        if self.reduction == "none":
            dz *= grad.reshape(-1, 1)
        elif self.reduction == "sum":
            dz *= grad
        else:
            dz *= grad / self.n_counted
        return dz.reshape(self.shape), None


def _check_targets(t, counted, n_classes, ignore_index):
    bad = counted & ((t < 0) | (t >= n_classes))
    if bool(bad.any()):
        value = int(t[bad.argmax()])
        raise IndexError(
            f"cross_entropy: target {value} is out of range for {n_classes} classes; targets "
            f"must lie in [0, {n_classes - 1}] or equal ignore_index ({ignore_index})"
        )


class Embedding(Function):
    """Rows of ``weight`` picked by ``indices``: out[...] = weight[indices[...]] (Eq. N4).

    The weight's gradient is zero except on the rows that were picked; a row
    picked several times (a repeated token) receives the sum, a scatter-add.
    """

    def forward(self, indices, weight):
        self.indices, self.weight_shape, self.dtype = indices, weight.shape, weight.dtype
        return weight[indices]

    def backward(self, grad):
        xp = backend.get_array_module(grad)
        gw = xp.zeros(self.weight_shape, dtype=self.dtype)
        backend.scatter_add(gw, self.indices, grad)
        return None, gw


class LayerNorm(Function):
    """y = x̂ ⊙ w + b with x̂ = (x - μ) / √(σ² + eps) over the last axes (Eq. N5).

    dx = (1/√(σ² + eps)) · (ĝ - mean(ĝ) - x̂ ⊙ mean(ĝ ⊙ x̂)) where ĝ = g ⊙ w,
    the means taken over the normalised axes; dw = Σ g ⊙ x̂ and db = Σ g over
    the other axes.
    """

    def forward(self, x, weight, bias, axes=(-1,), eps=1e-5):
        mu = x.mean(axis=axes, keepdims=True)
        centered = x - mu
        var = (centered * centered).mean(axis=axes, keepdims=True)
        rstd = 1.0 / backend.get_array_module(x).sqrt(var + eps)
        xhat = centered * rstd
        self.axes = axes
        self.save_for_backward(xhat, rstd, weight)
        out = xhat if weight is None else xhat * weight
        return out if bias is None else out + bias

    def backward(self, grad):
        xhat, rstd, weight = self.saved
        axes = self.axes
        outer = tuple(range(grad.ndim - len(axes)))  # the axes that were not normalised
        gx = gw = gb = None
        if self.needs_grad[0]:
            ghat = grad if weight is None else grad * weight
            gx = rstd * (
                ghat
                - ghat.mean(axis=axes, keepdims=True)
                - xhat * (ghat * xhat).mean(axis=axes, keepdims=True)
            )
        if self.needs_grad[1]:
            gw = (grad * xhat).sum(axis=outer)
        if self.needs_grad[2]:
            gb = grad.sum(axis=outer)
        return gx, gw, gb


class Dropout(Function):
    """Inverted dropout: each element is zeroed with probability p, the rest scaled
    by 1/(1-p) so the expectation is unchanged; the gradient takes the same mask."""

    def forward(self, x, p=0.5):
        keep = backend.rand(x.shape, dtype=x.dtype, like=x) >= p
        mask = keep * (1.0 / (1.0 - p))
        mask = mask.astype(x.dtype)
        self.save_for_backward(mask)
        return x * mask

    def backward(self, grad):
        (mask,) = self.saved
        return grad * mask


# ----------------------------------------------------------------------------
# The functional API


def softmax(x, dim=-1, **numpy_names):
    axis, _ = reduce_args(dim, False, **numpy_names)
    return Softmax.apply(x, axis=axis)


def attention_softmax(scores, mask=None, scale=1.0):
    """softmax(scale · scores) over the last axis, with True positions of ``mask``
    (broadcast against ``scores``) hidden; the fused form of attention's weights."""
    if mask is not None:
        mask = mask.data if isinstance(mask, Tensor) else backend.asarray(mask)
        if mask.dtype != bool:
            raise TypeError(f"attention_softmax: mask must be boolean (True = hidden), got dtype {mask.dtype}")
    return AttentionSoftmax.apply(scores, mask, scale=float(scale))


def log_softmax(x, dim=-1, **numpy_names):
    axis, _ = reduce_args(dim, False, **numpy_names)
    return LogSoftmax.apply(x, axis=axis)


def cross_entropy(logits, target, ignore_index=-100, reduction="mean"):
    """Cross-entropy between ``logits`` (..., C) and integer class ``target`` (...).

    Unlike ``torch.nn.functional.cross_entropy``, which wants the classes in
    axis 1, the classes are the *last* axis, so (B, T, C) logits pair with
    (B, T) targets without a transpose. For (N, C) logits the two agree.
    """
    target_data = target.data if isinstance(target, Tensor) else backend.asarray(target)
    if not backend.is_integer(target_data.dtype):
        raise TypeError(f"cross_entropy: targets must be integer class indices, got dtype {target_data.dtype}")
    if target_data.shape != logits.shape[:-1]:
        raise ValueError(
            f"cross_entropy: logits of shape {logits.shape} need targets of shape "
            f"{logits.shape[:-1]} (one class index per row of logits), got {target_data.shape}"
        )
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"cross_entropy: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    return CrossEntropy.apply(logits, target_data, ignore_index=ignore_index, reduction=reduction)


def embedding(indices, weight):
    """Look up rows of ``weight`` (num_embeddings, dim) for integer ``indices`` of any shape."""
    idx = indices.data if isinstance(indices, Tensor) else backend.asarray(indices)
    if not backend.is_integer(idx.dtype):
        raise TypeError(f"embedding: indices must be integers, got dtype {idx.dtype}")
    n = weight.shape[0]
    # Checked on the host only: on a GPU the check would wait for the device on
    # every call (and CuPy wraps out-of-range indices around instead of raising),
    # so device batches must come from data checked once, on the host.
    if idx.size and not backend.is_device_array(idx) and (int(idx.min()) < 0 or int(idx.max()) >= n):
        bad = int(idx.min()) if int(idx.min()) < 0 else int(idx.max())
        raise IndexError(f"embedding: index {bad} is out of range for a table of {n} rows (valid: 0..{n - 1})")
    return Embedding.apply(idx, weight)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Normalise over the last ``len(normalized_shape)`` axes, then scale and shift."""
    if isinstance(normalized_shape, int):
        normalized_shape = (normalized_shape,)
    normalized_shape = tuple(normalized_shape)
    if tuple(x.shape[x.ndim - len(normalized_shape) :]) != normalized_shape:
        raise ValueError(
            f"layer_norm: input of shape {x.shape} does not end in normalized_shape {normalized_shape}"
        )
    axes = tuple(range(-len(normalized_shape), 0))
    return LayerNorm.apply(x, weight, bias, axes=axes, eps=eps)


def dropout(x, p=0.5, training=True):
    """Inverted dropout; the identity when not training or p == 0."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    return Dropout.apply(x, p=p)
