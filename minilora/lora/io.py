"""Saving and loading adapters: adapter_config.json + adapter-<hash>.npz (never pickled).

An adapter is small: the LoRA factors, any trained biases, and the modules
kept with ``modules_to_save``. The config records everything needed to put it
back, including the scaling convention, since an adapter loaded with the wrong
scaling silently computes a different function, and a fingerprint of the base
weights it was trained on, since on another base it computes something nobody
trained.

A save switches the pair atomically, as a checkpoint does: the weights go to a
new file named after their own sha256, then ``adapter_config.json`` switches to
that name, then the old weights file is deleted. A crash at any point leaves a
config naming a complete weights file, the old one or the new one.
"""

import hashlib
import io
import json
import math
import pathlib
import re

from minilora import backend
from minilora.fileio import atomic_write, is_temp_file
from minilora.lora.lora_layers import lora_scaling
from minilora.lora.model import (
    LoraConfig,
    apply_lora,
    base_fingerprint,
    is_adapter_parameter,
    lora_layers,
    lora_state_dict,
    target_names,
)

# Fields that change the function an adapter computes; lora_dropout only matters while training.
MUST_MATCH = ("r", "lora_alpha", "use_rslora", "init_lora_weights", "target_modules", "bias", "modules_to_save")

CONFIG_FILE = "adapter_config.json"
WEIGHTS = r"adapter-[0-9a-f]{16}\.npz|adapter\.npz"  # the names save_adapter gives (adapter.npz: before hashed names)


def save_adapter(model, directory):
    """Write the adapter of a LoRA model to ``directory``; returns the directory."""
    config = getattr(model, "lora_config", None)
    if config is None or not lora_layers(model):
        raise ValueError("this model has no LoRA adapter to save: call apply_lora(model, config) first")
    if any(layer.merged for _, layer in lora_layers(model)):
        raise ValueError("the adapter is merged into the base weights; unmerge_lora(model) before saving it")
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    old = _read_config(directory) if (directory / CONFIG_FILE).exists() else {}
    if old and "weights_sha256" not in old:
        raise ValueError(f"{directory / CONFIG_FILE} was not written by save_adapter; refusing to overwrite it (choose another directory)")
    buffer = io.BytesIO()
    backend.save_npz(buffer, lora_state_dict(model))
    data = buffer.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    meta = {
        **config.to_dict(),
        "scaling": "alpha/sqrt(r)" if config.use_rslora else "alpha/r",
        "scaling_value": lora_scaling(config.r, config.lora_alpha, config.use_rslora),
        "adapted_modules": [n for n, _ in lora_layers(model)],
        "base_fingerprint": getattr(model, "lora_base_fingerprint", None) or base_fingerprint(model, [n for n, _ in lora_layers(model)]),
        "weights": f"adapter-{sha[:16]}.npz",
        "weights_sha256": sha,
    }
    atomic_write(directory / meta["weights"], lambda f: f.write(data))
    atomic_write(directory / CONFIG_FILE, lambda f: f.write(json.dumps(meta, indent=1).encode("utf-8")))
    previous = old.get("weights", "adapter.npz") if old else None
    if previous and previous != meta["weights"] and re.fullmatch(WEIGHTS, previous):
        (directory / previous).unlink(missing_ok=True)  # the file the old config named: minilora's own
    for litter in directory.iterdir():
        if is_temp_file(litter.name, rf"{re.escape(CONFIG_FILE)}|{WEIGHTS}"):
            litter.unlink(missing_ok=True)
    return directory


def weights_path(directory):
    """The path of the weights file that ``directory``'s adapter_config.json names."""
    directory = pathlib.Path(directory)
    name = _read_config(directory).get("weights", "adapter.npz")
    if not isinstance(name, str) or not re.fullmatch(WEIGHTS, name):
        raise ValueError(f"{directory / CONFIG_FILE} names the weights file {name!r}; only a bare name like adapter-0123456789abcdef.npz is accepted")
    return directory / name


def load_adapter(model, directory, allow_different_base=False):
    """Load an adapter saved by ``save_adapter`` into ``model``.

    A plain model gets LoRA applied from the saved config first; a model that
    already has LoRA must have been given the same rank, alpha, scaling and
    targets. Every key and shape, the scaling and the base fingerprint are checked
    before anything changes, so a refusal leaves the model exactly as it was.
    ``allow_different_base=True`` accepts base weights other than those the
    adapter was trained on (it is then the caller's job to know that is sound).
    """
    directory = pathlib.Path(directory)
    meta = _read_config(directory)
    try:
        config = LoraConfig(**{k: meta[k] for k in LoraConfig.__dataclass_fields__ if k in meta})
    except (TypeError, ValueError) as err:
        raise ValueError(f"cannot read adapter {directory}: {CONFIG_FILE} holds a bad setting ({err})") from err
    _check_scaling(directory, meta, config)
    path = weights_path(directory)
    if not path.is_file() or meta.get("weights_sha256") != _sha256(path):
        raise ValueError(
            f"{path} is not the file {CONFIG_FILE} was written for (an interrupted "
            "save, or files mixed from two adapters); save the adapter again"
        )
    arrays = backend.load_npz(path)
    current = getattr(model, "lora_config", None)
    if current is not None:
        if any(layer.merged for _, layer in lora_layers(model)):
            raise ValueError("the model's adapter is merged into its weights; unmerge_lora(model) before loading another")
        for key in MUST_MATCH:
            mine, theirs = getattr(current, key), getattr(config, key)
            if _normal(mine) != _normal(theirs):
                raise ValueError(f"adapter in {directory} has {key}={theirs!r}, but the model's LoRA has {key}={mine!r}")
        expected = {k: v.shape for k, v in model.named_parameters()}
        adapted = [n for n, _ in lora_layers(model)]
    else:
        expected = _shapes_after_apply(model, config)
        adapted = target_names(model, config.target_modules)
    problems = []
    if sorted(meta.get("adapted_modules", [])) != sorted(adapted):
        problems.append(f"it adapts {meta.get('adapted_modules')}, this model would adapt {adapted}")
    wanted = {k for k in expected if is_adapter_parameter(k, set(adapted), config.bias, tuple(config.modules_to_save))}
    problems += [f"{k}: missing from the adapter" for k in sorted(wanted - set(arrays))]
    problems += [f"{k}: not in the model" for k in arrays if k not in expected]
    problems += [
        f"{k}: adapter {tuple(v.shape)} vs model {tuple(expected[k])}" for k, v in arrays.items() if k in expected and tuple(v.shape) != tuple(expected[k])
    ]
    if problems:
        raise ValueError(f"adapter in {directory} does not fit this model (nothing was loaded): " + "; ".join(problems))
    _check_base(directory, meta, model, adapted, allow_different_base)
    if current is None:
        apply_lora(model, config)
    model.load_state_dict(arrays, strict=False)
    return model


def _check_scaling(directory, meta, config):
    """The stored scaling must be the one r, lora_alpha and use_rslora give: an edited field is caught here."""
    expected = lora_scaling(config.r, config.lora_alpha, config.use_rslora)
    stored = meta.get("scaling_value")
    convention = "alpha/sqrt(r)" if config.use_rslora else "alpha/r"
    if not isinstance(stored, (int, float)) or not math.isclose(stored, expected, rel_tol=1e-12) or meta.get("scaling") != convention:
        raise ValueError(
            f"adapter in {directory} was saved with scaling {meta.get('scaling')} = {stored!r}, but its r={config.r}, "
            f"lora_alpha={config.lora_alpha} and use_rslora={config.use_rslora} give {convention} = {expected!r}: "
            f"{CONFIG_FILE} was edited; restore the original values (or save the adapter again)"
        )


def _check_base(directory, meta, model, adapted, allow_different_base):
    """Refuse base weights other than those the adapter was trained on, and an adapter already merged in."""
    saved = meta.get("base_fingerprint")
    if saved is not None and saved in model.__dict__.get("merged_lora_fingerprints", []):
        raise ValueError(
            f"the adapter in {directory} is already merged into this model's weights (merge_and_unload); "
            "loading it again would add its update twice. Load it onto the original base model instead"
        )
    mine = model.__dict__.get("lora_base_fingerprint") or base_fingerprint(model, adapted)
    if saved != mine and not allow_different_base:
        found = "records no fingerprint of its base" if saved is None else f"was trained on other base weights (fingerprint {saved[:12]}…, this model's is {mine[:12]}…)"
        raise ValueError(
            f"the adapter in {directory} {found}. An adapter's update is learned to correct one particular base; "
            "on different weights of the same shapes it computes a function nobody trained or tested, often worse "
            "than no adapter at all. If you know the bases agree (the same weights in another dtype, say), pass "
            "allow_different_base=True"
        )


def _sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def _normal(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def _read_config(directory):
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no adapter in {directory}: {CONFIG_FILE} is missing")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from err
    if not isinstance(meta, dict):
        raise ValueError(f"cannot read adapter {directory}: {CONFIG_FILE} holds a JSON {type(meta).__name__}, not the object save_adapter writes")
    return meta


def _shapes_after_apply(model, config):
    """The parameter shapes ``model`` would have after apply_lora(model, config), without touching it."""
    shapes = {}
    targets = set(target_names(model, config.target_modules))
    for name, p in model.named_parameters():
        owner, _, leaf = name.rpartition(".")
        shapes[f"{owner}.base.{leaf}" if owner in targets else name] = p.shape
    for name in targets:
        base = model.get_submodule(name)
        r = config.r
        if hasattr(base, "in_features"):
            shapes[f"{name}.lora_A"], shapes[f"{name}.lora_B"] = (r, base.in_features), (base.out_features, r)
        elif hasattr(base, "num_embeddings"):
            shapes[f"{name}.lora_A"], shapes[f"{name}.lora_B"] = (r, base.num_embeddings), (base.embedding_dim, r)
        else:
            H, I = base.hidden_size, base.input_size
            shapes.update({f"{name}.lora_A_ih": (r, I), f"{name}.lora_B_ih": (H, r), f"{name}.lora_A_hh": (r, H), f"{name}.lora_B_hh": (H, r)})
    return shapes
