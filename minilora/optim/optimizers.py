"""SGD with momentum, Adam and AdamW, written out update by update.

An optimizer walks its parameters and changes ``p.data`` in place from
``p.grad``. It skips parameters that do not require grad (or got no
gradient), and only creates state (momentum, Adam's moments) the first time
a parameter is actually updated, so frozen weights cost nothing here either.
Parameters can come in groups with their own hyperparameters, as in PyTorch:
``AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}])``.
"""

import math

from minilora import backend, validate


class Optimizer:
    def __init__(self, params, defaults):
        params = list(params)
        if not params:
            raise ValueError(f"{type(self).__name__} got no parameters to optimize")
        groups = params if isinstance(params[0], dict) else [{"params": params}]
        self.param_groups = [{**defaults, **group, "params": list(group["params"])} for group in groups]
        if not any(group["params"] for group in self.param_groups):
            raise ValueError(f"{type(self).__name__} got only empty parameter groups: nothing would ever change")
        for group in self.param_groups:
            self.check(group)
        self.state = {}  # parameter -> its state dict; filled lazily by step()

    def params(self):
        """Every parameter, in group order (checkpoints index optimizer state by this order)."""
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self):
        for p in self.params():
            p.grad = None

    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.requires_grad and p.grad is not None:
                    self.update(p, p.grad, _follow(self.state.setdefault(p, {}), p.data), group)

    def update(self, p, grad, state, group):
        raise NotImplementedError

    def check(self, group):
        """Refuse hyperparameters that would make ``update`` ascend or divide by zero (as PyTorch does)."""
        validate.number(type(self).__name__, "lr", group["lr"], 0)
        validate.number(type(self).__name__, "weight_decay", group["weight_decay"], 0)

    # -- checkpoints: state by parameter position, arrays kept as arrays --------------
    def state_dict(self):
        index = {id(p): i for i, p in enumerate(self.params())}
        return {
            "state": {index[id(p)]: dict(s) for p, s in self.state.items()},
            "param_groups": [{k: v for k, v in g.items() if k != "params"} for g in self.param_groups],
        }

    def load_state_dict(self, state_dict):
        params = self.params()
        if len(state_dict["param_groups"]) != len(self.param_groups):
            raise ValueError("optimizer state has a different number of parameter groups than this optimizer")
        for i, s in state_dict["state"].items():
            p = params[int(i)]
            for k, v in s.items():
                if getattr(v, "ndim", 0) > 0 and tuple(v.shape) != p.shape:
                    raise ValueError(f"optimizer state {k!r} of parameter {i} has shape {tuple(v.shape)}, not {p.shape}")
        self.state = {params[int(i)]: {k: _restore(v) for k, v in s.items()} for i, s in state_dict["state"].items()}
        for group, saved in zip(self.param_groups, state_dict["param_groups"]):
            self.check({**group, **saved})
            group.update(saved)


def _follow(state, data):
    """Keep a parameter's state on its device: after ``Module.to(...)`` or loading a
    checkpoint (host arrays), the moments move once, at the next step."""
    device = backend.device_of(data)
    for key, value in state.items():
        if backend.is_array(value) and backend.device_of(value) != device:
            state[key] = backend.to_device(value, device)
    return state


def _restore(value):
    """Arrays back onto the backend; 0-d values (Adam's step) as Python numbers, so that
    ``beta ** step`` stays a Python float and float32 parameters stay float32."""
    if getattr(value, "ndim", 0) > 0:
        return backend.asarray(value).copy()
    return value.item() if hasattr(value, "item") else value


class SGD(Optimizer):
    """p ← p - lr·v with v ← momentum·v + (g + weight_decay·p) (PyTorch's form, no dampening;
    Eq. O1 in docs/math.md)."""

    def __init__(self, params, lr, momentum=0.0, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    def check(self, group):
        super().check(group)
        validate.number("SGD", "momentum", group["momentum"], 0)

    def update(self, p, grad, state, group):
        if group["weight_decay"]:
            grad = grad + group["weight_decay"] * p.data
        if group["momentum"]:
            if "momentum_buffer" not in state:
                state["momentum_buffer"] = grad.copy()
            else:
                state["momentum_buffer"] *= group["momentum"]
                state["momentum_buffer"] += grad
            grad = state["momentum_buffer"]
        p.data -= group["lr"] * grad


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015): running means of g and g², bias-corrected.

        m ← β₁m + (1-β₁)g,   v ← β₂v + (1-β₂)g²,
        p ← p - lr · (m / (1-β₁ᵗ)) / (√(v / (1-β₂ᵗ)) + eps)      (Eq. O2 in docs/math.md)

    ``weight_decay`` here is an L2 penalty added to g (PyTorch's Adam);
    for decoupled decay use AdamW.
    """

    decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay))

    def check(self, group):
        super().check(group)
        name = type(self).__name__
        if len(group["betas"]) != 2:
            raise ValueError(f"{name}.betas must be a pair (beta1, beta2), got {group['betas']!r}")
        for i, beta in enumerate(group["betas"]):
            validate.number(name, f"betas[{i}]", beta, 0, 1, high_open=True)  # a decay of 1 never forgets; above 1 it diverges
        validate.number(name, "eps", group["eps"], 0)

    def update(self, p, grad, state, group):
        lr, (beta1, beta2), eps, wd = group["lr"], group["betas"], group["eps"], group["weight_decay"]
        if wd and self.decoupled:
            p.data *= 1.0 - lr * wd
        elif wd:
            grad = grad + wd * p.data
        if not state:
            xp = backend.get_array_module(p.data)
            state.update(step=0, exp_avg=xp.zeros_like(p.data), exp_avg_sq=xp.zeros_like(p.data))
        state["step"] += 1
        m, v = state["exp_avg"], state["exp_avg_sq"]
        m *= beta1
        m += (1.0 - beta1) * grad
        v *= beta2
        v += (1.0 - beta2) * grad * grad
        bias1 = 1.0 - beta1 ** state["step"]
        bias2 = 1.0 - beta2 ** state["step"]
        denom = backend.get_array_module(v).sqrt(v) * (1.0 / math.sqrt(bias2)) + eps
        p.data -= (lr / bias1) * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): before the Adam
    step, p ← p·(1 - lr·weight_decay), so the decay is not rescaled by √v
    (Eq. O2 in docs/math.md)."""

    decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay)


def clip_grad_norm_(params, max_norm):
    """Scale all gradients together so their global L2 norm is at most ``max_norm``:
    by max_norm / (norm + 1e-6) when the norm exceeds it (Eq. O3 in docs/math.md).

    Returns the norm before clipping (inf or nan if a gradient is not finite,
    which the caller should treat as a failed step, and leaves the gradients
    alone then). On the CPU it is a Python float. On a device it is a 0-d array
    and the clipping decision is made there too: reading the norm back to
    branch on it would make every step wait for the GPU.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return 0.0
    if backend.is_device_array(grads[0]):
        xp = backend.get_array_module(grads[0])
        total = xp.sqrt(sum((g * g).sum() for g in grads))  # 0-d, on the device
        clip = xp.isfinite(total) & (total > max_norm)
        scale = xp.where(clip, max_norm / (total + 1e-6), 1.0)
        for g in grads:
            g *= scale.astype(g.dtype)
        return total
    total = math.sqrt(sum(float((g * g).sum()) for g in grads))
    if math.isfinite(total) and total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in grads:
            g *= scale
    return total
