"""GPT-2 checkpoints in Hugging Face's layout, in and out of minilora's GPT.

A Hugging Face GPT-2 directory holds ``config.json`` and ``model.safetensors``.
Its layers differ from minilora's in two ways, both undone exactly here
(Eq. (1)–(2) in docs/migration.md):

* GPT-2's ``Conv1D`` stores its weight as (in, out), the transpose of a
  Linear's (out, in):  W_minilora = W_hfᵀ.
* Attention fuses the three input projections into one ``c_attn`` of width 3C:
  its weight's columns are [W_qᵀ | W_kᵀ | W_vᵀ] and its bias is [b_q, b_k, b_v].

The output layer ``lm_head`` is the token table itself (tied, Eq. A6 in
docs/math.md) unless ``tie_word_embeddings`` is false. Only tensors are read,
never code, and every mismatch is refused with the key it concerns.
"""

import json
import pathlib

from minilora import backend
from minilora.fileio import atomic_write
from minilora.hub import safetensors
from minilora.models.gpt import GPT, GPTConfig
from minilora.nn.layers import Embedding, LayerNorm, Linear

CONFIG_FILE, WEIGHTS_FILE, INDEX_FILE = "config.json", "model.safetensors", "model.safetensors.index.json"
PREFIX = "transformer."
TANH_GELUS = ("gelu_new", "gelu_pytorch_tanh")  # GELU's tanh form, the one minilora computes
GPT2_EOS = 50256  # the id of <|endoftext|> in GPT-2's 50257-token vocabulary
IGNORED = (".attn.bias", ".attn.masked_bias")  # causal-mask buffers older checkpoints carry; not weights


class CheckpointError(ValueError):
    """A checkpoint that does not fit: the message names the key or config field and what to do."""


# ----------------------------------------------------------------------------
# The map between the two layouts, one entry per Hugging Face tensor.


def layout(config):
    """[(hf key, minilora names, how, hf shape)] for a GPT of ``config``.

    ``how`` is "copy", "transpose" (a Conv1D weight, Eq. (1) in docs/migration.md),
    "split_weight" or "split_bias" (c_attn into q, k, v, Eq. (2)).
    """
    C, V, T = config.n_embd, config.vocab_size, config.block_size
    H = config.n_inner or 4 * C
    rows = [("wte.weight", ["tok_emb.weight"], "copy", (V, C)), ("wpe.weight", ["pos_emb.weight"], "copy", (T, C))]
    for i in range(config.n_layer):
        h, b = f"h.{i}.", f"blocks.{i}."
        qkv = [f"{b}attn.{p}_proj" for p in "qkv"]
        rows += [
            (h + "ln_1.weight", [b + "ln1.weight"], "copy", (C,)),
            (h + "ln_1.bias", [b + "ln1.bias"], "copy", (C,)),
            (h + "attn.c_attn.weight", [n + ".weight" for n in qkv], "split_weight", (C, 3 * C)),
            (h + "attn.c_attn.bias", [n + ".bias" for n in qkv], "split_bias", (3 * C,)),
            (h + "attn.c_proj.weight", [b + "attn.o_proj.weight"], "transpose", (C, C)),
            (h + "attn.c_proj.bias", [b + "attn.o_proj.bias"], "copy", (C,)),
            (h + "ln_2.weight", [b + "ln2.weight"], "copy", (C,)),
            (h + "ln_2.bias", [b + "ln2.bias"], "copy", (C,)),
            (h + "mlp.c_fc.weight", [b + "mlp.fc_in.weight"], "transpose", (C, H)),
            (h + "mlp.c_fc.bias", [b + "mlp.fc_in.bias"], "copy", (H,)),
            (h + "mlp.c_proj.weight", [b + "mlp.fc_out.weight"], "transpose", (H, C)),
            (h + "mlp.c_proj.bias", [b + "mlp.fc_out.bias"], "copy", (C,)),
        ]
    rows += [("ln_f.weight", ["ln_f.weight"], "copy", (C,)), ("ln_f.bias", ["ln_f.bias"], "copy", (C,))]
    rows = [(PREFIX + key, names, how, shape) for key, names, how, shape in rows]
    if not config.tie_word_embeddings:
        rows.append(("lm_head.weight", ["lm_head.weight"], "copy", (V, C)))
    return rows


def to_minilora(array, how):
    """The minilora arrays one Hugging Face tensor becomes (Eq. (1)–(2) in docs/migration.md)."""
    xp = backend.get_array_module(array)
    if how == "copy":
        return [array]
    if how == "transpose":  # row-major copies, so that a loaded model multiplies as a fresh one does
        return [xp.ascontiguousarray(array.T)]  # (in, out) -> (out, in)
    if how == "split_weight":
        return [xp.ascontiguousarray(block.T) for block in xp.split(array, 3, axis=1)]  # (C, 3C) -> three (C, C) W_jᵀ -> W_j
    return list(xp.split(array, 3))  # (3C,) -> b_q, b_k, b_v


def to_hf(arrays, how):
    """The one Hugging Face tensor that minilora arrays make: the inverse of ``to_minilora``."""
    xp = backend.get_array_module(arrays[0])
    if how == "copy":
        return arrays[0]
    if how == "transpose":
        return arrays[0].T  # (out, in) -> (in, out)
    if how == "split_weight":
        return xp.concatenate([w.T for w in arrays], axis=1)  # (C, 3C) = [W_qᵀ | W_kᵀ | W_vᵀ]
    return xp.concatenate(arrays)  # (3C,) = [b_q, b_k, b_v]


# ----------------------------------------------------------------------------
# config.json


def gpt_config(hf):
    """A GPTConfig from a Hugging Face GPT-2 config dict; fields minilora cannot honour are refused by name."""
    if hf.get("model_type") != "gpt2":
        raise CheckpointError(
            f"config.json has model_type={hf.get('model_type')!r}; load_gpt2 reads GPT-2 checkpoints only "
            f"(architectures {hf.get('architectures')})"
        )
    refuse = {
        "activation_function": (hf.get("activation_function", "gelu_new") in TANH_GELUS, f"minilora's GPT computes GELU's tanh form ({', '.join(TANH_GELUS)})"),
        "scale_attn_weights": (hf.get("scale_attn_weights", True) is True, "minilora's attention always divides by √d_head"),
        "scale_attn_by_inverse_layer_idx": (not hf.get("scale_attn_by_inverse_layer_idx", False), "minilora's attention does not scale by layer"),
        "add_cross_attention": (not hf.get("add_cross_attention", False), "minilora's GPT has no cross-attention"),
    }
    for field, (ok, why) in refuse.items():
        if not ok:
            raise CheckpointError(f"config.json has {field}={hf[field]!r}, which minilora cannot compute: {why}")
    return GPTConfig(
        vocab_size=hf["vocab_size"],
        block_size=hf["n_positions"],
        n_layer=hf["n_layer"],
        n_head=hf["n_head"],
        n_embd=hf["n_embd"],
        dropout=hf.get("resid_pdrop", 0.1),
        bias=True,
        tie_word_embeddings=hf.get("tie_word_embeddings", True),
        layer_norm_eps=hf.get("layer_norm_epsilon", 1e-5),
        n_inner=hf.get("n_inner"),
    )


def hf_config(config):
    """The config.json that describes a GPT of ``config`` to Transformers."""
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.block_size,
        "n_embd": config.n_embd,
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_inner": config.n_inner,
        "activation_function": "gelu_new",
        "resid_pdrop": config.dropout,
        "embd_pdrop": config.dropout,
        "attn_pdrop": config.dropout,
        "layer_norm_epsilon": config.layer_norm_eps,
        "tie_word_embeddings": config.tie_word_embeddings,
        "initializer_range": 0.02,
        "scale_attn_weights": True,
        "bos_token_id": GPT2_EOS if config.vocab_size == GPT2_EOS + 1 else None,  # <|endoftext|>, with GPT-2's own vocabulary
        "eos_token_id": GPT2_EOS if config.vocab_size == GPT2_EOS + 1 else None,
        "dtype": "float32",
    }


# ----------------------------------------------------------------------------
# Loading and saving


def load_gpt2(path):
    """Read a Hugging Face GPT-2 directory into a minilora GPT, in eval mode (as Transformers does).

    ``path`` holds config.json and model.safetensors (or a sharded
    model.safetensors.index.json). Weights are read as float32.
    """
    path = pathlib.Path(path)
    config = gpt_config(_read_json(path / CONFIG_FILE))
    tensors = _strip_prefix(_read_weights(path))
    rows = layout(config)
    expected = {key: shape for key, _, _, shape in rows}
    if config.tie_word_embeddings and "lm_head.weight" in tensors:
        same = tensors["lm_head.weight"].shape == tensors.get(PREFIX + "wte.weight", tensors["lm_head.weight"]).shape
        if not same or (tensors["lm_head.weight"] != tensors[PREFIX + "wte.weight"]).any():
            raise CheckpointError(f"{path}: lm_head.weight differs from {PREFIX}wte.weight, but config.json ties them (tie_word_embeddings)")
        del tensors["lm_head.weight"]
    problems = [f"{k}: missing from the checkpoint" for k in expected if k not in tensors]
    problems += [f"{k}: not a GPT-2 tensor minilora knows" for k in tensors if k not in expected]
    problems += [
        f"{k}: shape {tuple(v.shape)}, but config.json needs {expected[k]}"
        for k, v in tensors.items()
        if k in expected and tuple(v.shape) != expected[k]
    ]
    if problems:
        raise CheckpointError(f"{path} does not fit its config.json (nothing was loaded): " + "; ".join(problems))
    state = {}
    for key, names, how, _ in rows:
        state.update(zip(names, to_minilora(tensors[key].astype("float32"), how)))
    model = GPT(config)
    model.load_state_dict(state)
    object.__setattr__(model, "name_or_path", str(path.resolve()))  # where it came from, for adapter configs
    return model.eval()


def save_gpt2(model, path):
    """Write ``model`` as a Hugging Face GPT-2 directory that ``GPT2LMHeadModel.from_pretrained`` loads.

    The model must be a plain GPT (no adapters in it: ``merge_and_unload`` first,
    or save the base before adapting it). Biases a ``bias=False`` model lacks are
    written as zeros, which computes the same function. Returns the directory.
    """
    if not isinstance(model, GPT):
        raise TypeError(f"save_gpt2 writes a minilora GPT, got {type(model).__name__}")
    config = model.config
    _check_plain(model)
    tensors = {}
    for key, names, how, _ in layout(config):
        tensors[key] = backend.to_numpy(to_hf([_array(model, n) for n in names], how)).astype("float32")
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    safetensors.save(path / WEIGHTS_FILE, tensors, metadata={"format": "pt"})
    text = json.dumps(hf_config(config), indent=2).encode("utf-8")
    atomic_write(path / CONFIG_FILE, lambda f: f.write(text))
    object.__setattr__(model, "name_or_path", str(path.resolve()))  # the base an adapter saved later refers to
    return path


def _array(model, name):
    """The array of parameter ``name``; zeros for a bias that a ``bias=False`` model does not have."""
    owner, _, leaf = name.rpartition(".")
    module = model.get_submodule(owner)
    value = getattr(module, leaf)
    if value is None:  # a missing bias adds nothing, and neither does a zero one
        return backend.get_array_module(module.weight.data).zeros(module.weight.shape[0], dtype=module.weight.dtype)
    return value.data


def _check_plain(model):
    """Every layer save_gpt2 reads is a plain Linear, LayerNorm or Embedding, not an adapter around one."""
    kinds = {"tok_emb": Embedding, "pos_emb": Embedding, "ln_f": LayerNorm, "lm_head": Linear}
    for i in range(model.config.n_layer):
        kinds.update({f"blocks.{i}.{n}": LayerNorm for n in ("ln1", "ln2")})
        kinds.update({f"blocks.{i}.{n}": Linear for n in ("attn.q_proj", "attn.k_proj", "attn.v_proj", "attn.o_proj", "mlp.fc_in", "mlp.fc_out")})
    for name, kind in kinds.items():
        module = model.get_submodule(name)
        if type(module) is not kind:
            raise TypeError(
                f"{name} is a {type(module).__name__}, not a plain {kind.__name__}: save_gpt2 writes base models. "
                "Save the adapter with minilora.lora.save_peft_adapter, or merge_and_unload(model) to save the merged weights"
            )


def _read_json(path):
    if not path.is_file():
        raise FileNotFoundError(f"no {path.name} in {path.parent}: a Hugging Face GPT-2 directory holds config.json and model.safetensors")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is not valid JSON ({err})") from err


def _read_weights(path):
    """Every tensor of model.safetensors, or of the shards its index lists."""
    if (path / WEIGHTS_FILE).is_file():
        return safetensors.load(path / WEIGHTS_FILE)
    if (path / INDEX_FILE).is_file():
        shards = sorted(set(_read_json(path / INDEX_FILE).get("weight_map", {}).values()))
        tensors = {}
        for shard in shards:
            tensors.update(safetensors.load(path / shard))
        return tensors
    found = sorted(p.name for p in path.iterdir()) if path.is_dir() else []
    raise FileNotFoundError(
        f"no {WEIGHTS_FILE} in {path} (found {found}). minilora reads safetensors only, never pickled "
        "pytorch_model.bin files; convert one with transformers: model.save_pretrained(dir, safe_serialization=True)"
    )


def _strip_prefix(tensors):
    """Keys as GPT2LMHeadModel names them: GPT2Model files lack the ``transformer.`` prefix; old buffers go."""
    out = {}
    for key, array in tensors.items():
        if key.endswith(IGNORED):
            continue
        full = key if key.startswith((PREFIX, "lm_head.")) else PREFIX + key
        out[full] = array
    return out
