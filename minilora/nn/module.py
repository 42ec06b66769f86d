"""``Module`` and ``Parameter``: how a model finds, names, saves and freezes its weights.

A Module registers every Parameter and sub-Module assigned to one of its
attributes, so ``model.named_parameters()`` can walk the tree and give each
weight a dotted name (``blocks.0.attn.q_proj.weight``). Those names are what
``state_dict``, freezing by pattern and LoRA's ``target_modules`` refer to.
"""

import contextlib
import fnmatch
from collections import namedtuple

from minilora import backend
from minilora.autograd.engine import no_grad
from minilora.autograd.tensor import Tensor


class Parameter(Tensor):
    """A Tensor that a Module registers as one of its weights (trainable by default)."""

    def __init__(self, data, requires_grad=True):
        super().__init__(data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter" + super().__repr__()[len("Tensor") :]


IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class Module:
    """Base class of every layer and model. Subclasses set attributes in
    ``__init__`` and compute in ``forward``; calling the module calls forward."""

    def __init__(self):
        object.__setattr__(self, "_parameters", {})
        object.__setattr__(self, "_modules", {})
        object.__setattr__(self, "training", True)

    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"call super().__init__() in {type(self).__name__}.__init__ before setting attributes")
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        self._parameters.pop(name, None)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    # -- walking the tree --------------------------------------------------------
    def named_modules(self, prefix=""):
        """(dotted name, module) for this module and every module below it, depth first."""
        stack = [(prefix, self)]
        seen = set()
        while stack:
            name, module = stack.pop()
            if id(module) in seen:
                continue
            seen.add(id(module))
            yield name, module
            children = [(f"{name}.{n}" if name else n, m) for n, m in module._modules.items()]
            stack.extend(reversed(children))

    def modules(self):
        return (m for _, m in self.named_modules())

    def named_children(self):
        return iter(self._modules.items())

    def children(self):
        return iter(self._modules.values())

    def named_parameters(self, prefix=""):
        """(dotted name, Parameter) for every parameter, each shared one once."""
        seen = set()
        for module_name, module in self.named_modules(prefix):
            for name, p in module._parameters.items():
                if id(p) not in seen:
                    seen.add(id(p))
                    yield (f"{module_name}.{name}" if module_name else name), p

    def parameters(self):
        return (p for _, p in self.named_parameters())

    def num_parameters(self, trainable_only=False):
        """How many numbers the parameters hold (only the trainable ones with ``trainable_only``)."""
        return sum(p.size for p in self.parameters() if p.requires_grad or not trainable_only)

    def get_submodule(self, target):
        """The module at a dotted path, e.g. ``model.get_submodule("blocks.0.attn")``."""
        module = self
        for part in target.split(".") if target else []:
            if part not in module._modules:
                raise AttributeError(f"{type(module).__name__} has no submodule {part!r} (looking for {target!r})")
            module = module._modules[part]
        return module

    def set_submodule(self, target, module):
        """Replace the module at a dotted path, e.g. ``model.set_submodule("blocks.0.attn.q_proj", new)``.

        The way adapters, compression and pruning swap a layer for their own; the
        path must already exist, so a typo is an error rather than a new attribute.
        """
        parent_name, _, name = target.rpartition(".")
        parent = self.get_submodule(parent_name)
        if name not in parent._modules:
            raise AttributeError(f"{type(parent).__name__} has no submodule {name!r} (looking for {target!r})")
        setattr(parent, name, module)

    # -- modes and gradients -------------------------------------------------------
    def train(self, mode=True):
        """Training mode (dropout active); ``eval()`` switches it off. Returns self."""
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self):
        return self.train(False)

    def zero_grad(self):
        for p in self.parameters():
            p.grad = None

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def to_dtype(self, dtype):
        """Cast every parameter, in place, to a floating dtype (``double()`` for gradchecks)."""
        for p in self.parameters():
            p.data = p.data.astype(dtype)
            p.grad = None
        return self

    def to(self, device):
        """Move every parameter (and its gradient) and every plain array attribute
        (a buffer such as attention's causal mask) to ``device`` ("cpu", "gpu",
        "fake"), in place, as PyTorch's ``Module.to`` does: optimizers keep
        their references, and their state follows at the next step."""
        for p in self.parameters():
            p.data = backend.to_device(p.data, device)
            if p.grad is not None:
                p.grad = backend.to_device(p.grad, device)
        for module in self.modules():
            for name, value in vars(module).items():
                if backend.is_array(value):
                    object.__setattr__(module, name, backend.to_device(value, device))
        return self

    def double(self):
        return self.to_dtype("float64")

    def float(self):
        return self.to_dtype("float32")

    # -- saving and loading --------------------------------------------------------
    def state_dict(self):
        """Every parameter by dotted name, as host numpy arrays (copies)."""
        return {name: backend.to_numpy(p.data).copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into the parameters with the same names.

        Everything is checked before anything is written, so a failed load
        leaves the model as it was. Shapes must match; with ``strict=True``
        missing and unexpected keys are errors too. Returns the missing and
        unexpected keys.
        """
        params = dict(self.named_parameters())
        missing = sorted(set(params) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(params))
        mismatched = [
            f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {params[k].shape}"
            for k in sorted(set(params) & set(state_dict))
            if tuple(state_dict[k].shape) != params[k].shape
        ]
        problems = []
        if strict and missing:
            problems.append(f"missing keys: {', '.join(missing)}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {', '.join(unexpected)}")
        if mismatched:
            problems.append("shape mismatches: " + "; ".join(mismatched))
        if problems:
            raise KeyError(f"load_state_dict for {type(self).__name__} failed (nothing was loaded). " + ". ".join(problems))
        for k in set(params) & set(state_dict):
            p = params[k]  # the array lands on the parameter's device, in its dtype (a copy)
            p.data = backend.to_device(state_dict[k], p.device).astype(p.dtype)
        return IncompatibleKeys(missing, unexpected)

    # -- printing ------------------------------------------------------------------
    def extra_repr(self):
        return ""

    def __repr__(self):
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        if self.extra_repr():
            lines.append("  " + self.extra_repr())
        for name, child in self._modules.items():
            child_lines = repr(child).splitlines()
            lines.append(f"  ({name}): " + child_lines[0])
            lines.extend("  " + line for line in child_lines[1:])
        return "\n".join(lines) + "\n)"


@contextlib.contextmanager
def evaluating(module):
    """Inside the block: eval mode (no dropout) and no graph. Afterwards: each submodule's own
    previous mode, so a part that was already in eval mode inside a training model stays so."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        with no_grad():
            yield module
    finally:
        for m, was_training in modes:
            object.__setattr__(m, "training", was_training)


class ModuleList(Module):
    """A list of modules, registered as ``0``, ``1``, ... so their names are ``blocks.0...``."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            self.append(m)

    def append(self, module):
        setattr(self, str(len(self._modules)), module)
        return self

    def __getitem__(self, i):
        return list(self._modules.values())[i]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class Sequential(ModuleList):
    """Modules applied one after another: ``Sequential(a, b)(x) == b(a(x))``."""

    def __init__(self, *modules):
        super().__init__(modules)

    def forward(self, x):
        for module in self:
            x = module(x)
        return x


# ----------------------------------------------------------------------------
# Freezing by name: article 001's split of a model into fixed and trainable parameters


def set_requires_grad(model, patterns, requires_grad):
    """Set ``requires_grad`` on every parameter whose dotted name matches a pattern.

    Patterns are shell-style (``"blocks.*.attn.*"``, ``"tok_emb.*"``). A pattern
    that matches nothing is an error listing the parameter names, because a
    typo would otherwise silently train (or freeze) the wrong thing.
    Returns the names that were changed.
    """
    if isinstance(patterns, str):
        patterns = [patterns]
    names = [name for name, _ in model.named_parameters()]
    for pattern in patterns:
        if not fnmatch.filter(names, pattern):
            raise ValueError(f"pattern {pattern!r} matches no parameter; the parameters are: {', '.join(names)}")
    changed = []
    for name, p in model.named_parameters():
        if any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns):
            p.requires_grad_(requires_grad)
            changed.append(name)
    return changed


def freeze(model, patterns="*"):
    """Make matching parameters fixed (no gradient, no optimizer state)."""
    return set_requires_grad(model, patterns, False)


def unfreeze(model, patterns="*"):
    """Make matching parameters trainable."""
    return set_requires_grad(model, patterns, True)
