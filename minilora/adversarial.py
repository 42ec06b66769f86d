"""Adversarial perturbations of input embeddings, and training against them (article 004).

Text is discrete, so the attacker moves the token embeddings instead (Miyato
et al., 2017): the classifier reads e + δ, where δ is the worst perturbation
with ‖δ_b‖ ≤ ε for every example b (L∞ or L2 over b's real tokens) and δ = 0
on padding (Eq. 1 in docs/adversarial.md, whose numbering the docstrings use).

* FGSM (Goodfellow et al., 2015): one step along the gradient g = ∇_δ L, the
  steepest for the norm: ε·sign(g) for L∞ (Eq. 3), ε·g/‖g‖₂ for L2 (Eq. 4).
* PGD (Madry et al., 2018): several smaller steps, each projected back into
  the ball (Eq. 5-6).
* Adversarial training minimises (1 − λ)·L(e) + λ·L(e + δ), δ held constant (Eq. 7).

An attack leaves the model as it found it (parameters, their ``.grad`` and
``requires_grad``, train/eval mode); while it runs, dropout is off, so the
same inputs always give the same δ. The last part measures accuracy under
attack. Training a classifier this way and the experiment that compares it
with standard training are in minilora/experiments/robustness.py: the training
loop is a layer above the mechanisms.
"""

import contextlib
import math
import numbers

from minilora import backend
from minilora.autograd.engine import no_grad, set_grad_enabled
from minilora.autograd.tensor import Tensor
from minilora.nn.module import Module, evaluating

NORMS = ("linf", "l2")
ATTACKS = ("fgsm", "pgd")


# ----------------------------------------------------------------------------
# Norms, steepest steps and projection (plain arrays; axis 0 is the example)


def _radius(eps, name="eps (the radius of the perturbation)"):
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {eps!r}")
    return float(eps)  # a Python float keeps float32 arrays float32


def _check(norm=None, attack=None):
    if norm is not None and norm not in NORMS:
        raise ValueError(f"norm must be one of {NORMS}, got {norm!r}")
    if attack is not None and attack not in ATTACKS:
        raise ValueError(f"attack must be one of {ATTACKS}, got {attack!r}")


def _array(x):
    return x.data if isinstance(x, Tensor) else x


def example_norm(delta, norm):
    """‖δ_b‖ of each example b (axis 0) over all its other axes, shaped (B, 1, ...) to broadcast."""
    _check(norm)
    delta = _array(delta)
    if delta.ndim < 2:
        raise ValueError(f"a perturbation needs a leading example axis, shape (B, ...), got shape {tuple(delta.shape)}")
    axes = tuple(range(1, delta.ndim))
    if norm == "linf":
        return abs(delta).max(axis=axes, keepdims=True)
    return backend.get_array_module(delta).sqrt((delta * delta).sum(axis=axes, keepdims=True))


def steepest_direction(grad, norm):
    """The u with ‖u_b‖ ≤ 1 that maximises ⟨g_b, u_b⟩: sign(g) for L∞, g/‖g‖₂ for L2
    (Eq. 2-4 in docs/adversarial.md). A zero gradient gives a zero step, not nan."""
    _check(norm)
    xp = backend.get_array_module(grad)
    if norm == "linf":
        return xp.sign(grad)
    length = example_norm(grad, "l2")
    return grad / xp.where(length > 0, length, 1.0)


def project(delta, eps, norm):
    """Π_ε(δ), the nearest point of the ball ‖δ_b‖ ≤ ε per example (Eq. 5 in docs/adversarial.md): L∞ clips
    each entry to [−ε, ε]; L2 shrinks δ_b by ε/‖δ_b‖ if it lies outside. Arrays and Tensors keep their type."""
    eps = _radius(eps)
    _check(norm)
    data = _array(delta)
    xp = backend.get_array_module(data)
    if norm == "linf":
        out = xp.clip(data, -eps, eps)
    else:
        length = example_norm(data, "l2")
        outside = length > eps  # where True, length > eps >= 0: the division is safe
        out = data * xp.where(outside, eps / xp.where(outside, length, 1.0), 1.0)
    return Tensor(out) if isinstance(delta, Tensor) else out


def uniform_in_ball(shape, eps, norm, real, generator=None):
    """A uniformly random δ of the ball of Eq. (1), zero where ``real`` (B, T, 1) is 0 (PGD's random start)."""
    generator = generator or backend.generator()
    xp = backend.get_array_module(real)  # drawn on the host, moved to real's device
    if norm == "linf":
        return xp.asarray((generator.random(shape) * 2.0 - 1.0) * eps, dtype=real.dtype) * real
    direction = steepest_direction(xp.asarray(generator.standard_normal(shape), dtype=real.dtype) * real, "l2")
    dims = real.sum(axis=(1, 2), keepdims=True) * shape[2]  # (B, 1, 1): real entries per example
    u = xp.asarray(generator.random((shape[0], 1, 1)), dtype=real.dtype)
    return direction * u ** (1.0 / dims.clip(1.0, None)) * eps  # radius u^(1/d): uniform in volume


# ----------------------------------------------------------------------------
# The attacks


def _real_tokens(mask, emb):
    """The padding mask as (B, T, 1): 1.0 on real tokens, 0.0 on padding, in emb's dtype."""
    B, T = emb.shape[:2]
    if mask is None:
        return backend.get_array_module(emb).ones((B, T, 1), dtype=emb.dtype)
    mask = backend.asarray(_array(mask))
    if tuple(mask.shape) != (B, T):
        raise ValueError(f"mask must have the shape of idx, (B, T) = {(B, T)}, got {tuple(mask.shape)}")
    return mask.astype(bool)[:, :, None].astype(emb.dtype)


@contextlib.contextmanager
def attacking(model):
    """Inside: eval mode, gradients on, every parameter frozen. Afterwards: all as it was.

    Freezing is what keeps an attack away from ``p.grad``: backward skips
    every weight's VJP and fills only δ's gradient (which is also cheaper).
    """
    if not hasattr(model, "embed"):
        raise TypeError(f"{type(model).__name__} has no embed(idx); attacks need a model that takes inputs_embeds=, like TextClassifier")
    was_training = model.training
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    model.eval()
    try:
        model.requires_grad_(False)
        with set_grad_enabled(True):
            yield model
    finally:
        for p, flag in zip(params, flags):
            p.requires_grad_(flag)
        model.train(was_training)


def _clean_embeddings(model, idx):
    with no_grad():
        return model.embed(idx).data  # (B, T, C)


def _gradient(model, emb, delta, targets, mask):
    """∇_δ L(e + δ) for a batch, L the mean cross-entropy; call inside ``attacking``."""
    d = Tensor(delta, requires_grad=True)
    _, loss = model(targets=targets, mask=mask, inputs_embeds=emb + d)
    loss.backward()
    return d.grad


def fgsm(model, idx, targets, eps, norm="linf", mask=None):
    """The fast gradient method: δ = ε·u(g), g = ∇_δ L at δ = 0 (Eq. 3-4 in docs/adversarial.md).

    ``idx`` (B, T) token ids, ``targets`` (B,) labels, ``mask`` (B, T) True on real tokens. Returns δ,
    a Tensor (B, T, C) without a graph: zero on padding, ‖δ_b‖ = ε wherever the gradient is not zero.
    """
    eps = _radius(eps)
    _check(norm)
    with attacking(model):
        emb = _clean_embeddings(model, idx)
        real = _real_tokens(mask, emb)
        grad = _gradient(model, emb, backend.get_array_module(emb).zeros_like(emb), targets, mask)
        return Tensor(steepest_direction(grad * real, norm) * eps)


def pgd(model, idx, targets, eps, alpha=None, steps=10, norm="linf", random_start=False, mask=None, generator=None):
    """Projected gradient ascent: δ ← Π_ε(δ + α·u(∇_δ L)), ``steps`` times (Eq. 6 in docs/adversarial.md).

    Starts at δ = 0, or with ``random_start`` at a uniform point of the ball (from ``generator``, by default
    minilora's seeded one). ``alpha`` defaults to 2.5·ε/steps (Madry et al., 2018). Returns the last δ.
    """
    eps = _radius(eps)
    _check(norm)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    alpha = 2.5 * eps / steps if alpha is None else _radius(alpha, "alpha (the step size)")
    if alpha == 0 and eps > 0:
        raise ValueError("alpha (the step size) must be > 0, or PGD never leaves its starting point")
    with attacking(model):
        emb = _clean_embeddings(model, idx)
        real = _real_tokens(mask, emb)
        delta = uniform_in_ball(emb.shape, eps, norm, real, generator) if random_start else backend.get_array_module(emb).zeros_like(emb)
        for _ in range(steps):
            grad = _gradient(model, emb, delta, targets, mask)
            delta = project(delta + steepest_direction(grad * real, norm) * alpha, eps, norm)
        return Tensor(delta)


def perturb(model, idx, targets, eps, attack="fgsm", norm="linf", mask=None, **pgd_options):
    """``fgsm`` or ``pgd`` by name; ``pgd_options`` (alpha, steps, random_start, generator) go to pgd."""
    _check(attack=attack)
    if attack == "fgsm":
        if pgd_options:
            raise ValueError(f"fgsm takes no {', '.join(sorted(pgd_options))}: those options are pgd's")
        return fgsm(model, idx, targets, eps, norm, mask)
    return pgd(model, idx, targets, eps, norm=norm, mask=mask, **pgd_options)


# ----------------------------------------------------------------------------
# Adversarial training


def adversarial_loss(model, idx, targets, eps, mask=None, norm="linf", attack="fgsm", mix=0.5, **pgd_options):
    """(clean logits, (1 − λ)·L(e) + λ·L(e + δ)) with λ = ``mix`` (Eq. 7 in docs/adversarial.md).

    δ comes from ``perturb`` at the current weights and carries no graph, so
    the gradient reaches the weights through both losses but never through
    δ (Goodfellow et al., 2015). ``mix=0`` is plain training and skips the attack.
    """
    eps = _radius(eps)
    _check(norm, attack)
    if isinstance(mix, bool) or not isinstance(mix, numbers.Real) or not 0.0 <= mix <= 1.0:
        raise ValueError(f"mix (the weight of the adversarial loss) must be in [0, 1], got {mix!r}")
    delta = perturb(model, idx, targets, eps, attack, norm, mask, **pgd_options) if mix > 0 else None
    emb = model.embed(idx)  # (B, T, C), with a graph into the embedding table
    logits, clean = model(targets=targets, mask=mask, inputs_embeds=emb)
    if delta is None:
        return logits, clean
    _, adversarial = model(targets=targets, mask=mask, inputs_embeds=emb + delta)
    return logits, clean * (1.0 - mix) + adversarial * mix


def embedding_rms(model, idx, mask=None):
    """ρ = √(mean of ‖e_t‖² over the real tokens of ``idx``): one token's typical length (Eq. 8)."""
    emb = _clean_embeddings(model, idx)
    real = _real_tokens(mask, emb)
    count = float(real.sum())
    if count == 0:
        raise ValueError("the mask marks no real token, so there is no embedding to measure")
    squares = (emb.astype(backend.float64) ** 2 * real).sum()  # a statistic, not a model value: float64
    return math.sqrt(float(squares) / count)


class AdversarialTraining(Module):
    """For ``Trainer``: a classifier whose training loss is Eq. (7), and in eval mode the plain classifier.

    With ``relative=True`` the radius is ε·ρ, ρ measured on each batch (Eq. 8),
    so the model cannot shrink the attack by inflating its embeddings.
    ``eps_warmup`` > 0 grows the radius linearly from 0 over that many steps
    (``steps_taken`` counts them; docs/adversarial.md §6.3 shows why).
    """

    def __init__(self, model, eps, norm="linf", attack="fgsm", mix=0.5, relative=True, eps_warmup=0, **pgd_options):
        super().__init__()
        eps = _radius(eps)
        _check(norm, attack)
        if isinstance(eps_warmup, bool) or not isinstance(eps_warmup, int) or eps_warmup < 0:
            raise ValueError(f"eps_warmup must be a whole number of steps >= 0, got {eps_warmup!r}")
        self.model = model
        self.eps, self.norm, self.attack, self.mix, self.relative = eps, norm, attack, mix, relative
        self.eps_warmup, self.pgd_options = eps_warmup, pgd_options
        self.steps_taken = 0

    def current_eps(self, idx, mask=None):
        """The radius for this step: ε, ramped by the warm-up, times ρ of the batch if relative."""
        eps = self.eps * min(1.0, self.steps_taken / self.eps_warmup) if self.eps_warmup else self.eps
        return eps * embedding_rms(self.model, idx, mask) if self.relative else eps

    def forward(self, idx, targets=None, mask=None):
        if not self.training or targets is None:
            return self.model(idx, targets, mask)
        eps = self.current_eps(idx, mask)
        self.steps_taken += 1
        return adversarial_loss(self.model, idx, targets, eps, mask, self.norm, self.attack, self.mix, **self.pgd_options)


# ----------------------------------------------------------------------------
# Measuring robustness


def accuracy_under_attack(model, split, eps_values, attack="pgd", norm="linf", relative=True, batch_size=500, **pgd_options):
    """The accuracy on ``split`` with every example attacked (against its true label), one entry per ε.

    With ``relative=True`` each ε is a multiple of ρ, the model's RMS token-embedding norm over the
    split (Eq. 8); otherwise it is absolute. ε = 0 gives the clean accuracy.
    """
    _check(norm, attack)
    eps_values = [_radius(eps) for eps in eps_values]
    scale = embedding_rms(model, split.x, split.mask) if relative else 1.0
    correct = [0] * len(eps_values)
    for start in range(0, len(split), batch_size):
        x, y, mask = split.rows(slice(start, start + batch_size))
        emb = _clean_embeddings(model, x)
        for i, eps in enumerate(eps_values):
            delta = perturb(model, x, y, eps * scale, attack, norm, mask, **pgd_options).data if eps > 0 else 0.0
            with evaluating(model):
                logits, _ = model(mask=mask, inputs_embeds=emb + delta)
            correct[i] += int((logits.data.argmax(axis=-1) == y).sum())
    return [c / len(split) for c in correct]
