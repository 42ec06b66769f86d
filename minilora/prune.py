"""Magnitude pruning: keep the largest weights, zero the rest, and keep them zero while training.

Article 003 (§9.6) names pruning as one of
the methods LoRA is compared with; docs/compare.md runs that comparison.
Pruning by magnitude (Han et al., 2015) keeps the ``n_keep`` entries of the
targeted weight matrices with the largest |w| and zeros every other one:

    m = 1 where |w| is among the n_keep largest, else 0,    W_eff = m ⊙ W        (Eq. 2 in docs/compare.md).

``scope="global"`` ranks every targeted weight together, so one threshold τ
serves all layers and a layer of small weights may lose most of them.
``scope="layer"`` gives each layer its share of ``n_keep`` in proportion to
its size and ranks within the layer. Biases are never pruned.

A pruned layer (``PrunedLinear``) multiplies its weight by the mask on every
forward pass, so the gradient that reaches the weight is m ⊙ ∂L/∂W_eff
(Eq. 3): a pruned entry gets no gradient, contributes nothing, and any
further training (an optimizer step, weight decay) leaves the model pruned.
"""

import numbers

from minilora import backend
from minilora.adapters import linear_targets
from minilora.autograd import ops
from minilora.nn.layers import Linear
from minilora.nn.module import Module

SCOPES = ("global", "layer")


class PrunedLinear(Module):
    """y = x (m ⊙ W)ᵀ + b: a Linear whose weight is multiplied by a fixed 0/1 ``mask`` (Eq. 2 in docs/compare.md).

    ``weight`` and ``bias`` are the wrapped Linear's own Parameters (an
    optimizer that holds them keeps working), with the pruned entries of
    ``weight`` set to 0. ``mask`` is a plain array, a buffer: saved nowhere,
    never trained. Parameter names stay ``weight`` and ``bias``, as in Linear.
    """

    def __init__(self, linear, mask):
        super().__init__()
        if type(linear) is not Linear:
            raise TypeError(f"PrunedLinear wraps an nn.Linear, got {type(linear).__name__}")
        mask = mask if backend.is_array(mask) else backend.asarray(mask)
        if tuple(mask.shape) != linear.weight.shape:
            raise ValueError(f"the mask must have the weight's shape {linear.weight.shape}, got {tuple(mask.shape)}")
        if not bool(((mask == 0) | (mask == 1)).all()):
            raise ValueError("the mask must hold only 0 (pruned) and 1 (kept)")
        self.weight, self.bias = linear.weight, linear.bias
        self.mask = mask.astype(linear.weight.dtype)  # float 0/1: multiplying keeps float32 float32
        self.weight.data = self.weight.data * self.mask  # what is stored is what is used
        self.in_features, self.out_features = linear.in_features, linear.out_features

    def forward(self, x):
        return ops.linear(x, self.weight * self.mask, self.bias)  # the mask's VJP zeros pruned gradients (Eq. 3)

    def effective_weight(self):
        """m ⊙ W as an array: the weight this layer computes with (Eq. 2)."""
        return self.weight.data * self.mask

    def to_linear(self):
        """A plain nn.Linear holding m ⊙ W (and this layer's bias): the pruning made permanent."""
        self.weight.data = self.effective_weight()
        return Linear.from_weights(self.weight, self.bias)  # the same Parameters, so optimizers keep them

    def extra_repr(self):
        kept = int((self.mask != 0).sum())
        return f"in_features={self.in_features}, out_features={self.out_features}, kept={kept}/{self.mask.size}"


def pruned_layers(model):
    """(name, layer) for every PrunedLinear in ``model``."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, PrunedLinear)]


def _budget(n_keep, fraction, total):
    """The number of weights to keep, from exactly one of ``n_keep`` and ``fraction``."""
    if (n_keep is None) == (fraction is None):
        raise ValueError("give exactly one of n_keep= (how many weights to keep) or fraction= (the share to keep, in (0, 1])")
    if fraction is not None:
        if isinstance(fraction, bool) or not isinstance(fraction, numbers.Real) or not 0.0 < fraction <= 1.0:
            raise ValueError(f"fraction must be a number in (0, 1], the share of weights kept; got {fraction!r}")
        return max(1, round(fraction * total))
    if isinstance(n_keep, bool) or not isinstance(n_keep, numbers.Integral):
        raise TypeError(f"n_keep must be an integer, got {n_keep!r} ({type(n_keep).__name__})")
    if not 1 <= n_keep <= total:
        raise ValueError(f"n_keep must be in [1, {total}] (the targeted weights hold {total} numbers), got {n_keep}")
    return int(n_keep)


def _top_mask(magnitudes, k):
    """A 0/1 array of ``magnitudes``' shape with ones at its k largest entries.

    A stable sort of -|w| breaks ties by position (row-major), so exactly k
    entries are kept, and the same ones on every run.
    """
    xp = backend.get_array_module(magnitudes)
    flat = magnitudes.reshape(-1)  # (N,)
    order = xp.argsort(-flat, kind="stable")
    mask = xp.zeros(flat.shape, dtype=bool)
    mask[order[:k]] = True
    return mask.reshape(magnitudes.shape)


def _layer_shares(sizes, n_keep):
    """Split n_keep over layers in proportion to their sizes, with largest remainders, summing to n_keep exactly."""
    total = sum(sizes)
    exact = [n_keep * s / total for s in sizes]
    shares = [int(e) for e in exact]
    by_remainder = sorted(range(len(sizes)), key=lambda i: (shares[i] - exact[i], i))  # largest remainder first
    for i in by_remainder[: n_keep - sum(shares)]:
        shares[i] += 1
    return shares


def magnitude_prune(model, n_keep=None, fraction=None, target_modules="all-linear", scope="global"):
    """Keep the ``n_keep`` (or ``fraction`` of the) largest-|w| weights of the targeted Linear layers (in place).

    Each targeted Linear becomes a PrunedLinear whose mask stays applied
    during any further training (Eq. 2-3 in docs/compare.md). ``target_modules``
    follows LoraConfig's rules (names, a regex, or ``"all-linear"``: every
    Linear but the output layer). ``scope="global"`` ranks all targeted
    weights together; ``scope="layer"`` splits the budget over the layers in
    proportion to their sizes and ranks within each. Biases are not pruned.
    Returns the model.
    """
    if scope not in SCOPES:
        raise ValueError(f"scope must be 'global' (one threshold for all targeted weights) or 'layer' (the same share per layer), got {scope!r}")
    if pruned_layers(model):
        raise ValueError("this model is already pruned; prune once, or call remove_pruning(model) first")
    names = linear_targets(model, target_modules)
    weights = [model.get_submodule(n).weight.data for n in names]
    total = sum(w.size for w in weights)
    keep = _budget(n_keep, fraction, total)
    xp = backend.get_array_module(weights[0])
    if scope == "global":
        magnitudes = xp.concatenate([xp.abs(w).reshape(-1) for w in weights])  # (total,): one ranking for all layers
        flat = _top_mask(magnitudes, keep)
        ends = [0]
        for w in weights:
            ends.append(ends[-1] + w.size)
        masks = [flat[start:end].reshape(w.shape) for start, end, w in zip(ends, ends[1:], weights)]
    else:
        masks = [_top_mask(xp.abs(w), k) for w, k in zip(weights, _layer_shares([w.size for w in weights], keep))]
    for name, mask in zip(names, masks):
        model.set_submodule(name, PrunedLinear(model.get_submodule(name), mask))
    return model


def remove_pruning(model):
    """Replace every PrunedLinear by a plain Linear holding m ⊙ W (in place); return the model.

    The zeros stay, but nothing keeps them zero any more: training afterwards may revive them.
    """
    for name, layer in pruned_layers(model):
        model.set_submodule(name, layer.to_linear())
    return model


def count_nonzero(model):
    """The number of non-zero numbers among ``model``'s parameters, pruned weights counted through their masks.

    This is what a sparse format has to store values for (it also stores
    where they are: an index per value, or a bitmap).
    """
    masks = {id(layer.weight): layer.mask for _, layer in pruned_layers(model)}
    count = 0
    for p in model.parameters():
        data = p.data * masks[id(p)] if id(p) in masks else p.data
        count += int((data != 0).sum())
    return count
