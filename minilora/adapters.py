"""What every adapter method shares: choosing layers, counting parameters, finding and merging adapted layers.

LoRA (``minilora.lora``), OFT (``minilora.orthogonal``), singular-value
fine-tuning and compression (``minilora.lowrank``) and pruning
(``minilora.prune``) all swap some layers of a model for their own. They pick
those layers with the same rules, count what trains the same way, and merge
with one meaning, so this module sits below all of them and none of them
imports another.

* ``target_names``: the modules that ``target_modules`` picks (names, a
  regular expression, or ``"all-linear"``), the rules of PEFT's ``LoraConfig``.
* ``count_parameters``: (total, trainable, percent trainable).
* ``AdapterLayer``: a frozen ``base`` layer plus a trainable change, and what
  merging means for every adapter: the change is folded into ``base``'s own
  weights, in place, after which forward costs what ``base`` alone does;
  ``unmerge`` takes it back out, to rounding: LoRA subtracts ΔW = s·BA, OFT
  multiplies by R, since (W₀Rᵀ)R = W₀. (An SVDLinear keeps no dense weight to
  merge into; ``lowrank.merge_svd`` replaces it by a plain Linear.)
* ``adapter_layers``, ``merge_adapters``, ``unmerge_adapters``: the loops over a model.
* ``resolve_config``: one calling shape, ``apply_x(model, config)`` or the
  config's fields as keywords.
"""

import re
import warnings

from minilora.nn.layers import Linear
from minilora.nn.module import Module

OUTPUT_LAYERS = ("lm_head", "head")  # left out of "all-linear", as PEFT leaves out the output layer


class AdapterLayer(Module):
    """A frozen ``base`` layer and a trainable change to it, which ``merge`` folds into ``base``'s weights.

    A subclass says what the merged weights are (``merged_weights``) and what
    unmerging gives back (``unmerged_weights``); ``merge`` and ``unmerge`` here
    check the state and write them. ``change`` names the change in warnings.
    """

    change = "the adapter"

    def __init__(self, base):
        super().__init__()
        self.base = base
        self.merged = False

    def merged_weights(self, safe=True):
        """{name of a base weight: its merged value}, computed on copies (nothing changes yet)."""
        raise NotImplementedError

    def unmerged_weights(self):
        """{name of a base weight: its value with the change taken back out}."""
        raise NotImplementedError

    def set_base_weights(self, weights, merged=True):
        """Write ``weights`` (from ``merged_weights`` or ``unmerged_weights``) into ``base``."""
        for name, array in weights.items():
            weight = getattr(self.base, name)
            weight.data = array.astype(weight.dtype)
        self.merged = merged

    def merge(self, safe=True):
        """Fold the change into ``base``'s weights, in place; a second merge warns and does nothing."""
        if self.merged:
            warnings.warn(f"{type(self).__name__} is already merged; merging again would apply {self.change} twice, so nothing was done", stacklevel=2)
            return False
        self.set_base_weights(self.merged_weights(safe))
        return True

    def unmerge(self):
        """Take the change back out of ``base``'s weights; without a merge it warns and does nothing."""
        if not self.merged:
            warnings.warn(f"{type(self).__name__} is not merged; nothing to unmerge", stacklevel=2)
            return False
        self.set_base_weights(self.unmerged_weights(), merged=False)
        return True


def target_names(model, target_modules, supported=None, method="this adapter"):
    """The names of the modules ``target_modules`` picks out of ``model``.

    * a list: a module matches a name exactly or as a dotted suffix
      (``"q_proj"`` picks ``blocks.0.attn.q_proj`` and every other q_proj);
    * a string: a regular expression the whole dotted name must match;
    * ``"all-linear"``: every Linear except the output layer.

    Layers that are already adapters are never picked. A target that matches
    nothing is an error listing the names available; with ``supported`` (a
    tuple of layer types), so is a chosen module of another type.
    """
    modules = [(name, m) for name, m in model.named_modules() if name and not isinstance(m, AdapterLayer)]
    names = [name for name, _ in modules]
    if target_modules == "all-linear":
        chosen = [n for n, m in modules if isinstance(m, Linear) and n.split(".")[-1] not in OUTPUT_LAYERS]
    elif isinstance(target_modules, str):
        chosen = [n for n in names if re.fullmatch(target_modules, n)]
    else:
        chosen = []
        for target in target_modules:
            hits = [n for n in names if n == target or n.endswith("." + target)]
            if not hits:
                raise ValueError(f"target module {target!r} matches no module of {type(model).__name__}; its modules are: {', '.join(names)}")
            chosen += [n for n in hits if n not in chosen]
    if not chosen:
        raise ValueError(f"target_modules={target_modules!r} matches no module of {type(model).__name__}; its modules are: {', '.join(names)}")
    if supported is not None:
        kinds = dict(modules)
        unsupported = [n for n in chosen if type(kinds[n]) not in supported]
        if unsupported:
            raise TypeError(
                f"{method} supports {', '.join(c.__name__ for c in supported)} layers only; these targets are not: "
                + ", ".join(f"{n} ({type(kinds[n]).__name__})" for n in unsupported)
            )
    return chosen


def linear_targets(model, target_modules):
    """The names of the ``nn.Linear`` modules that ``target_modules`` picks, by ``target_names``' rules.

    For the methods that replace a Linear by a layer of their own (compression,
    singular-value fine-tuning, pruning): a name that matches nothing, or a
    module that is not a Linear, is an error that lists the Linear modules there are.
    """
    linears = [n for n, m in model.named_modules() if type(m) is Linear]
    hint = f"Only nn.Linear layers can be factored; {type(model).__name__}'s are: {', '.join(linears) or '(none)'}"
    try:
        chosen = target_names(model, target_modules)
    except (ValueError, TypeError) as err:
        reason = str(err).split("; its modules are")[0]  # this module's own list below is the useful one
        raise type(err)(f"{reason}. {hint}") from None
    others = [f"{n} ({type(model.get_submodule(n)).__name__})" for n in chosen if n not in linears]
    if others:
        raise TypeError(f"target_modules={target_modules!r} picks modules that are not nn.Linear: {', '.join(others)}. {hint}")
    return chosen


def check_modules_to_save(model, modules_to_save):
    """A clear error (from ``get_submodule``) for a name in ``modules_to_save`` that the model does not have."""
    for name in modules_to_save:
        model.get_submodule(name)


def resolve_config(config, fields, config_class, function):
    """The config an ``apply_*`` function was given: ``config`` itself, or ``config_class(**fields)``."""
    name = config_class.__name__
    a_name = f"{'an' if name[0] in 'AEIOU' else 'a'} {name}"
    if config is None:
        return config_class(**fields)
    if fields:
        raise TypeError(f"{function}: pass either {a_name} or keyword fields, not both (got {sorted(fields)})")
    if not isinstance(config, config_class):
        raise TypeError(f"{function}: expected {a_name}, got {type(config).__name__}")
    return config


def count_parameters(model):
    """(total, trainable, percent trainable): the numbers every method's budget is compared by."""
    total, trainable = model.num_parameters(), model.num_parameters(trainable_only=True)
    return total, trainable, 100.0 * trainable / total


def adapter_layers(model, kind=AdapterLayer):
    """(name, layer) for every layer of type ``kind`` in ``model``."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, kind)]


def merge_adapters(model, kind=AdapterLayer, safe=True):
    """Merge every ``kind`` layer of ``model`` (in place); returns the model.

    Every merged weight is computed and checked before any is written, so a
    refusal (for LoRA: train mode with active dropout; with ``safe=True``, a
    non-finite result) leaves the whole model untouched. A layer already
    merged gets a warning and is left alone.
    """
    plans = []
    for name, layer in adapter_layers(model, kind):
        if layer.merged:
            warnings.warn(f"{name} is already merged; merging again would apply {layer.change} twice, so it was left alone", stacklevel=3)
        else:
            plans.append((layer, layer.merged_weights(safe)))
    for layer, weights in plans:
        layer.set_base_weights(weights)
    return model


def unmerge_adapters(model, kind=AdapterLayer):
    """Take every merged ``kind`` layer's change back out of its base weights (in place); returns the model."""
    for _, layer in adapter_layers(model, kind):
        layer.unmerge()
    return model
