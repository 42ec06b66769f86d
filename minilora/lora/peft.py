"""PEFT's LoRA adapters for GPT-2, in and out of minilora (§5.4 of docs/lora.md).

PEFT writes ``adapter_config.json`` and ``adapter_model.safetensors``, whose keys
name GPT-2's modules: ``base_model.model.transformer.h.0.attn.c_attn.lora_A.weight``
(r, in) and ``...lora_B.weight`` (out, r), ``lora_embedding_A`` / ``_B`` for an
embedding, and ``...base_layer.bias`` or ``...ln_1.bias`` for trained biases.
Both libraries compute y = W₀x + b + s·BA·x with s = α/r (or α/√r), so a module
that exists on both sides maps one to one. The exception is attention: GPT-2
fuses q, k and v into ``c_attn``, minilora keeps them apart, and

* q/k/v adapters become one c_attn adapter with A stacked and B block-structured
  (Eq. 12 in docs/lora.md);
* a c_attn adapter becomes q, k and v adapters that share its A, one Parameter
  held by three layers, so the gradient of A sums the three uses (Eq. 13);
* PEFT's single rank is met by padding with zero rows and columns, which changes
  neither the product nor its training (Eq. 14).

What PEFT can express and minilora cannot (DoRA, per-module ranks, several
adapters, LoRA on a LayerNorm, ...) is refused by name, before anything changes.
"""

import json
import math
import pathlib

from minilora import backend
from minilora.fileio import atomic_write
from minilora.hub import safetensors
from minilora.hub.gpt2 import PREFIX as TRANSFORMER
from minilora.hub.gpt2 import layout, to_hf, to_minilora
from minilora.lora.lora_layers import LoRAEmbedding, LoRALayer, LoRALinear
from minilora.lora.model import LoraConfig, lora_layers, mark_only_lora_as_trainable
from minilora.models.gpt import GPT
from minilora.nn.layers import Embedding, Linear
from minilora.nn.module import Parameter

CONFIG_FILE, WEIGHTS_FILE = "adapter_config.json", "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."
LORA_KEYS = {"lora_A.weight": ("linear", "A"), "lora_B.weight": ("linear", "B"), "lora_embedding_A": ("embedding", "A"), "lora_embedding_B": ("embedding", "B")}

# Config fields PEFT can set that minilora cannot honour, with what to do instead.
REFUSED = {
    "use_dora": "DoRA adds a learned magnitude vector that minilora's LoRA layers do not have; train a plain LoRA adapter (use_dora=False)",
    "rank_pattern": "minilora gives every layer of an adapter one rank; train with a single r (or pad every module to the largest rank)",
    "alpha_pattern": "minilora gives every layer of an adapter one lora_alpha; train with a single lora_alpha",
    "lora_bias": "minilora's lora_B has no bias; train with lora_bias=False",
    "modules_to_save": "minilora's load_peft_adapter reads LoRA factors and biases only; merge the saved modules into the base model and save it with save_gpt2",
    "layer_replication": "minilora's GPT has no replicated layers",
    "trainable_token_indices": "minilora has no trainable-token adapters; use LoRA on wte instead",
    "target_parameters": "minilora adapts modules, not bare parameters",
    "use_qalora": "QALoRA pools the input by groups, which minilora's LoRALinear does not",
    "alora_invocation_tokens": "activated LoRA switches on at given tokens, which minilora's LoRALinear does not",
    "use_bdlora": "block-diagonal LoRA is not minilora's LoRALinear",
}
REWRITTEN_BASE = ("pissa", "olora", "corda", "eva", "loftq")  # inits that change the base weights


class PeftAdapterError(ValueError):
    """A PEFT adapter minilora cannot load exactly; the message names the key or field and what to do."""


# ----------------------------------------------------------------------------
# Which GPT-2 module is which minilora module


def module_map(config):
    """{GPT-2 module path: [minilora module names]}: one name, or q, k, v for a ``c_attn``."""
    modules = {key.removesuffix(".weight"): [n.removesuffix(".weight") for n in names] for key, names, _, _ in layout(config) if key.endswith(".weight")}
    modules.setdefault("lm_head", ["lm_head"])  # a tied lm_head is still a module PEFT can adapt
    return modules


def _base(model, name):
    """The plain layer at ``name``: the module itself, or the base inside its LoRA layer."""
    module = model.get_submodule(name)
    return module.base if isinstance(module, LoRALayer) else module


def _param(model, name):
    owner, _, leaf = name.rpartition(".")
    return getattr(_base(model, owner), leaf, None)


# ----------------------------------------------------------------------------
# The fused map, Eq. 12-14 in docs/lora.md


def fuse(layers):
    """One c_attn adapter (A_c, B_c) from minilora's q, k, v layers (None where a projection has no adapter).

    A_c stacks each distinct A once (layers that share an A, Eq. 13, keep sharing
    it) and B_c places each B_j in the rows of output j and the columns of its A
    (Eq. 12), so s·B_c A_c = [s·B_q A_q; s·B_k A_k; s·B_v A_v].
    """
    present = [layer for layer in layers if layer is not None]
    xp = backend.get_array_module(present[0].lora_A.data)
    shared = list({id(layer.lora_A): layer.lora_A for layer in present}.values())
    columns = {id(a): sum(b.shape[0] for b in shared[:i]) for i, a in enumerate(shared)}
    out_width, rank = present[0].lora_B.shape[0], sum(a.shape[0] for a in shared)
    A = xp.concatenate([a.data for a in shared], axis=0)  # (Σ r_i, C)
    B = xp.zeros((3 * out_width, rank), dtype=A.dtype)  # (3C, Σ r_i), zero off the blocks
    for j, layer in enumerate(layers):
        if layer is not None:
            start = columns[id(layer.lora_A)]
            B[j * out_width : (j + 1) * out_width, start : start + layer.r] = layer.lora_B.data
    return A, B


def split(A, B):
    """q, k and v's (A, B_j) from a c_attn adapter: one A for all three, B cut into its row blocks (Eq. 13)."""
    return [(A, B_j) for B_j in backend.get_array_module(B).split(B, 3, axis=0)]  # (3C, r) -> three (C, r)


def pad(A, B, rank):
    """(A, B) padded to ``rank`` with zero rows of A and zero columns of B: BA is unchanged (Eq. 14)."""
    xp = backend.get_array_module(A)
    extra = rank - A.shape[0]
    return xp.concatenate([A, xp.zeros((extra, A.shape[1]), A.dtype)]), xp.concatenate([B, xp.zeros((B.shape[0], extra), B.dtype)], axis=1)


def alpha_for_rank(layer, rank):
    """The lora_alpha that keeps a layer's scaling s at ``rank``: α·R/r, or α·√(R/r) with rsLoRA (Eq. 14)."""
    if rank == layer.r:
        return layer.lora_alpha
    alpha = layer.lora_alpha * math.sqrt(rank / layer.r) if layer.use_rslora else layer.lora_alpha * rank / layer.r
    return int(alpha) if float(alpha).is_integer() else alpha


# ----------------------------------------------------------------------------
# minilora -> PEFT


def save_peft_adapter(model, path):
    """Write the LoRA adapter of a minilora GPT as a PEFT adapter directory; returns it.

    ``PeftModel.from_pretrained(GPT2LMHeadModel.from_pretrained(base), path)`` then
    computes what ``model`` does, where ``base`` is the directory ``save_gpt2`` wrote
    (or ``load_gpt2`` read) for the model before ``apply_lora``.
    """
    config, groups = _adapter_groups(model)
    every = [layer for layers in groups.values() for layer in layers if layer is not None]
    first = every[0]
    if any(layer.scaling != first.scaling or layer.use_rslora != first.use_rslora for layer in every):
        raise ValueError(f"PEFT gives an adapter one scaling, but these layers have {sorted({layer.scaling for layer in every})}")
    tensors = {}
    for hf_module, layers in groups.items():
        present = [layer for layer in layers if layer is not None]
        A, B = fuse(layers) if len(layers) == 3 else (present[0].lora_A.data, present[0].lora_B.data)
        tensors[hf_module] = (A, B, isinstance(present[0], LoRAEmbedding))
    rank = max(A.shape[0] for A, _, _ in tensors.values())
    arrays = {}
    for hf_module, (A, B, embedding) in tensors.items():
        A, B = pad(A, B, rank)
        names = ("lora_embedding_A", "lora_embedding_B") if embedding else ("lora_A.weight", "lora_B.weight")
        for name, array in zip(names, (A, B)):
            arrays[f"{PEFT_PREFIX}{hf_module}.{name}"] = backend.to_numpy(array).astype("float32")
    arrays.update(_bias_arrays(model, config, groups))
    meta = _peft_config(model, config, groups, rank, alpha_for_rank(first, rank))
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    safetensors.save(path / WEIGHTS_FILE, arrays, metadata={"format": "pt"})
    atomic_write(path / CONFIG_FILE, lambda f: f.write(json.dumps(meta, indent=2).encode("utf-8")))
    return path


def _adapter_groups(model):
    """The model's LoraConfig and {GPT-2 module: its minilora LoRA layers} (q, k, v slots for c_attn)."""
    if not isinstance(model, GPT):
        raise TypeError(f"save_peft_adapter writes adapters of a minilora GPT (the models save_gpt2 writes), got {type(model).__name__}")
    config = getattr(model, "lora_config", None)
    layers = dict(lora_layers(model))
    if config is None or not layers:
        raise ValueError("this model has no LoRA adapter to save: apply_lora(model, config) or load_peft_adapter first")
    if any(layer.merged for layer in layers.values()):
        raise ValueError("the adapter is merged into the base weights; unmerge_lora(model) before saving it")
    rewritten = sorted(n for n, layer in layers.items() if getattr(layer, "init_lora_weights", "default") == "pissa")
    if rewritten:
        raise ValueError(
            f"{rewritten[0]} was initialised with PiSSA, which rewrote its base weight, so the adapter does not fit the saved "
            "base; merge_and_unload(model) and save the merged model with save_gpt2 instead"
        )
    if config.modules_to_save:
        raise ValueError(f"modules_to_save={config.modules_to_save} has no place in a GPT-2 PEFT adapter; merge them and save the base with save_gpt2")
    groups, placed = {}, set()
    for hf_module, names in module_map(model.config).items():
        found = [layers.get(n) for n in names]
        if any(layer is not None for layer in found):
            groups[hf_module] = found
            placed.update(n for n in names if n in layers)
    stray = sorted(set(layers) - placed)
    if stray:
        raise ValueError(f"{stray}: no GPT-2 module corresponds to these LoRA layers, so PEFT could not load them")
    return config, groups


def _bias_arrays(model, config, groups):
    """The biases PEFT saves with bias="all" (every one) or "lora_only" (those of adapted modules)."""
    if config.bias == "none":
        return {}
    arrays = {}
    for key, names, how, _ in layout(model.config):
        hf_module = key.removesuffix(".bias")
        if not key.endswith(".bias") or (config.bias == "lora_only" and hf_module not in groups):
            continue
        values = [_param(model, n) for n in names]
        if any(v is None for v in values):
            continue  # a bias=False GPT has none to save
        saved = f"{hf_module}.base_layer.bias" if hf_module in groups else key  # PEFT keeps a wrapped layer's bias on base_layer
        arrays[PEFT_PREFIX + saved] = backend.to_numpy(to_hf([v.data for v in values], how)).astype("float32")
    return arrays


def _peft_config(model, config, groups, rank, alpha):
    """adapter_config.json, with target_modules as short as PEFT's suffix matching allows."""
    every = module_map(model.config)
    short = {m: m.split(".", 3)[-1] if m.startswith(TRANSFORMER + "h.") else m.rsplit(".", 1)[-1] for m in every}
    targets = set()
    for hf_module in groups:
        same = [m for m in every if short[m] == short[hf_module]]
        targets.add(short[hf_module] if all(m in groups for m in same) else hf_module)
    conv1d = any(".attn." in m or ".mlp." in m for m in groups)  # GPT-2's Conv1D layers store (in, out)
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": getattr(model, "name_or_path", None),
        "r": rank,
        "lora_alpha": alpha,
        "use_rslora": config.use_rslora,
        "lora_dropout": config.lora_dropout,
        "target_modules": sorted(targets),
        "bias": config.bias,
        "fan_in_fan_out": conv1d,
        "init_lora_weights": True,
        "inference_mode": True,
        "modules_to_save": None,
        "rank_pattern": {},
        "alpha_pattern": {},
        "use_dora": False,
        "layers_to_transform": None,
        "layers_pattern": None,
    }


# ----------------------------------------------------------------------------
# PEFT -> minilora


def load_peft_adapter(model, path):
    """Load a PEFT LoRA adapter made for GPT-2 into a minilora GPT (e.g. from ``load_gpt2``); returns the model.

    Everything is checked before the model changes: config fields minilora cannot
    honour, every key, and every shape against the model.
    """
    if not isinstance(model, GPT):
        raise TypeError(f"load_peft_adapter reads GPT-2 adapters into a minilora GPT, got {type(model).__name__}")
    if lora_layers(model):
        raise ValueError("this model already has LoRA layers; load a PEFT adapter into a plain GPT (merge_and_unload first)")
    path = pathlib.Path(path)
    meta = _read_config(path)
    factors, base = _read_weights(path / WEIGHTS_FILE, module_map(model.config), model.config)
    plan = _plan(model, meta, factors)
    targets = [n for names, _, _, _ in plan.values() for n in names]
    try:  # PEFT's defaults where a field is absent; LoraConfig checks the values before anything changes
        config = LoraConfig(
            r=meta.get("r", 8), lora_alpha=meta.get("lora_alpha", 8), lora_dropout=meta.get("lora_dropout", 0.0),
            target_modules=targets, bias=meta.get("bias", "none"), use_rslora=bool(meta.get("use_rslora", False)),
        )  # fmt: skip
    except ValueError as err:
        raise PeftAdapterError(f"{path / CONFIG_FILE}: {err}") from err
    for names, kind, A, B in plan.values():
        shared = None
        for name, (A_j, B_j) in zip(names, split(A, B) if len(names) == 3 else [(A, B)]):
            kind_of_layer = LoRAEmbedding if kind == "embedding" else LoRALinear
            layer = kind_of_layer(model.get_submodule(name), config.r, config.lora_alpha, config.lora_dropout, config.use_rslora)
            dtype = layer.base.weight.dtype
            if shared is None:
                shared = Parameter(backend.asarray(A_j, dtype))  # one A for q, k and v (Eq. 13)
            layer.lora_A, layer.lora_B = shared, Parameter(backend.asarray(B_j, dtype))
            model.set_submodule(name, layer.train(model.training))  # a model in eval mode keeps lora_dropout off
    for key, names, how, _ in layout(model.config):
        if key in base:
            for name, array in zip(names, to_minilora(base[key], how)):
                p = _param(model, name)
                p.data = backend.asarray(array, p.dtype)
    object.__setattr__(model, "lora_config", config)
    mark_only_lora_as_trainable(model, config.bias)
    return model


def _read_config(path):
    file = path / CONFIG_FILE
    if not file.is_file():
        several = sorted(p.name for p in path.iterdir() if (p / CONFIG_FILE).is_file()) if path.is_dir() else []
        if several:
            raise FileNotFoundError(f"{path} holds several adapters ({', '.join(several)}) and no default one: pass the directory of the one to load")
        raise FileNotFoundError(f"no PEFT adapter in {path}: {CONFIG_FILE} is missing")
    try:
        meta = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise PeftAdapterError(f"{file} is not valid JSON ({err})") from err
    if meta.get("peft_type") != "LORA":
        raise PeftAdapterError(f"{file}: peft_type={meta.get('peft_type')!r}; minilora loads LoRA adapters only")
    if meta.get("task_type") not in (None, "CAUSAL_LM"):
        raise PeftAdapterError(f"{file}: task_type={meta['task_type']!r}; minilora's GPT is a causal LM (task_type CAUSAL_LM)")
    for field, what_to_do in REFUSED.items():
        if meta.get(field):
            raise PeftAdapterError(f"{file}: {field}={meta[field]!r} cannot be loaded exactly: {what_to_do}")
    init = meta.get("init_lora_weights", True)
    if isinstance(init, str) and init.startswith(REWRITTEN_BASE):
        raise PeftAdapterError(
            f"{file}: init_lora_weights={init!r} rewrote the base weights when the adapter was made; "
            "convert it to a plain LoRA adapter in PEFT (save_pretrained(..., path_initial_model_for_weight_conversion=...))"
        )
    if meta.get("bias", "none") not in ("none", "all", "lora_only"):
        raise PeftAdapterError(f"{file}: bias={meta['bias']!r}; minilora knows 'none', 'all' and 'lora_only'")
    return meta


def _read_weights(file, modules, gpt_config):
    """({GPT-2 module: {"kind", "A", "B"}}, {GPT-2 base key: array}) from the adapter's tensors."""
    if not file.is_file():
        raise FileNotFoundError(f"no {WEIGHTS_FILE} in {file.parent} (minilora reads safetensors only, never pickled adapter_model.bin)")
    shapes = {key: shape for key, _, _, shape in layout(gpt_config)}
    factors, base = {}, {}
    for key, array in safetensors.load(file).items():
        if not key.startswith(PEFT_PREFIX):
            raise PeftAdapterError(f"{file}: key {key!r} does not start with {PEFT_PREFIX!r}, so it is not a PEFT adapter for a whole model")
        name = key.removeprefix(PEFT_PREFIX)
        name = name if name.startswith((TRANSFORMER, "lm_head.")) else TRANSFORMER + name  # adapters made on GPT2Model
        piece = next((p for p in LORA_KEYS if name.endswith("." + p)), None)
        if piece is not None:
            module = name.removesuffix("." + piece)
            kind, which = LORA_KEYS[piece]
            factors.setdefault(module, {"kind": kind})[which] = array
        elif "lora_magnitude_vector" in name:
            raise PeftAdapterError(f"{file}: {key} is a DoRA magnitude; {REFUSED['use_dora']}")
        elif "lora_" in name:
            raise PeftAdapterError(f"{file}: {key} is not a LoRA factor minilora knows (several adapters in one file, or another LoRA variant); save one plain LoRA adapter")
        else:
            base_key = name.replace(".base_layer.", ".")
            if base_key == "lm_head.weight" and gpt_config.tie_word_embeddings:
                base_key = TRANSFORMER + "wte.weight"  # a tied lm_head is the token table (PEFT saves both copies)
                if base_key in base and (base[base_key] != array).any():
                    raise PeftAdapterError(f"{file}: {key} differs from the token table it is tied to")
            if base_key not in shapes or tuple(array.shape) != shapes[base_key]:
                wanted = f"shape {shapes[base_key]}" if base_key in shapes else "no such GPT-2 tensor"
                raise PeftAdapterError(f"{file}: {key} has shape {tuple(array.shape)}, but this model has {wanted}")
            base[base_key] = array.astype("float32")
    for module in factors:
        if module not in modules:
            raise PeftAdapterError(f"{file}: LoRA on {module}, which this GPT-2 does not have")
    return factors, base


def _plan(model, meta, factors):
    """{GPT-2 module: (minilora names, kind, A, B)} once every factor is checked against the model."""
    r, plan = meta.get("r", 8), {}
    modules = module_map(model.config)
    for hf_module, found in sorted(factors.items()):
        names, kind = modules[hf_module], found["kind"]
        missing = [w for w in "AB" if w not in found]
        if missing:
            raise PeftAdapterError(f"{hf_module}: lora_{missing[0]} is missing from the adapter (only one factor of the pair was saved)")
        layers = [model.get_submodule(n) for n in names]
        want = Embedding if kind == "embedding" else Linear
        if not all(type(layer) is want for layer in layers):
            what = "LoRA on layer norms" if type(layers[0]).__name__ == "LayerNorm" else f"LoRA of this kind on a {type(layers[0]).__name__}"
            raise PeftAdapterError(f"{hf_module}: {what} is not something minilora's LoRA layers compute (they adapt Linear and Embedding layers); train the adapter without it")
        A, B = found["A"], found["B"]
        if kind == "embedding":
            n_in, n_out = layers[0].num_embeddings, layers[0].embedding_dim
        else:
            n_in, n_out = layers[0].in_features, sum(layer.out_features for layer in layers)
        if A.shape != (r, n_in) or B.shape != (n_out, r):
            raise PeftAdapterError(
                f"{hf_module}: lora_A {tuple(A.shape)} and lora_B {tuple(B.shape)}, but r={r} and this model need "
                f"{(r, n_in)} and {(n_out, r)} (an adapter made for another model size or rank)"
            )
        plan[hf_module] = (names, kind, A, B)
    if not plan:
        raise PeftAdapterError("the adapter holds no LoRA factors")
    return plan
