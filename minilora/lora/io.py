"""Saving and loading adapters: adapter_config.json + adapter.npz (never pickled).

An adapter is small: the LoRA factors, any trained biases, and the modules
kept with ``modules_to_save``. The config records everything needed to put it
back, including the scaling convention, since an adapter loaded with the wrong
scaling silently computes a different function.
"""

import hashlib
import json
import pathlib

from minilora import backend
from minilora.fileio import atomic_write
from minilora.lora.lora_layers import lora_scaling
from minilora.lora.model import LoraConfig, apply_lora, is_adapter_parameter, lora_layers, lora_state_dict, target_names

# Fields that change the function an adapter computes; lora_dropout only matters while training.
MUST_MATCH = ("r", "lora_alpha", "use_rslora", "init_lora_weights", "target_modules", "bias", "modules_to_save")

CONFIG_FILE, WEIGHTS_FILE = "adapter_config.json", "adapter.npz"


def save_adapter(model, directory):
    """Write the adapter of a LoRA model to ``directory``; returns the directory."""
    config = getattr(model, "lora_config", None)
    if config is None or not lora_layers(model):
        raise ValueError("this model has no LoRA adapter to save: call apply_lora(model, config) first")
    if any(layer.merged for _, layer in lora_layers(model)):
        raise ValueError("the adapter is merged into the base weights; unmerge_lora(model) before saving it")
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {
        **config.to_dict(),
        "scaling": "alpha/sqrt(r)" if config.use_rslora else "alpha/r",
        "scaling_value": lora_scaling(config.r, config.lora_alpha, config.use_rslora),
        "adapted_modules": [n for n, _ in lora_layers(model)],
    }
    arrays = lora_state_dict(model)
    # Weights first, then the config that vouches for them with their checksum: a crash
    # between the two leaves a pair that load_adapter recognises as inconsistent.
    atomic_write(directory / WEIGHTS_FILE, lambda f: backend.save_npz(f, arrays))
    meta["weights_sha256"] = _sha256(directory / WEIGHTS_FILE)
    atomic_write(directory / CONFIG_FILE, lambda f: f.write(json.dumps(meta, indent=1).encode("utf-8")))
    return directory


def _sha256(path):
    return hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def load_adapter(model, directory):
    """Load an adapter saved by ``save_adapter`` into ``model``.

    A plain model gets LoRA applied from the saved config first; a model that
    already has LoRA must have been given the same rank, alpha, scaling and
    targets. Every key and shape is checked before anything changes, so a
    mismatch leaves the model exactly as it was.
    """
    directory = pathlib.Path(directory)
    meta = _read_config(directory)
    config = LoraConfig(**{k: meta[k] for k in LoraConfig.__dataclass_fields__ if k in meta})
    if meta.get("weights_sha256") != _sha256(directory / WEIGHTS_FILE):
        raise ValueError(
            f"{directory / WEIGHTS_FILE} is not the file {CONFIG_FILE} was written for (an interrupted "
            "save, or files mixed from two adapters); save the adapter again"
        )
    arrays = backend.load_npz(directory / WEIGHTS_FILE)
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
    if current is None:
        apply_lora(model, config)
    model.load_state_dict(arrays, strict=False)
    return model


def _normal(value):
    return list(value) if isinstance(value, (list, tuple)) else value


def _read_config(directory):
    path = directory / CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"no adapter in {directory}: {CONFIG_FILE} is missing")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{path} is not valid JSON ({err})") from err


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
