"""What many test files share: float64 tensors, walking a graph, and one tiny GPT.

Test files import these from here (``from tests.helpers import ...``); conftest.py
holds only fixtures, which pytest hands to tests by name.
"""

import numpy as np

import minilora as ml
from minilora.models import GPT, GPTConfig


def t64(shape_or_array, *, low=-1.0, high=1.0, requires_grad=True, seed=None):
    """A float64 tensor: random in [low, high) for a shape, or wrapping an array."""
    if isinstance(shape_or_array, tuple):
        rng = np.random.default_rng(seed if seed is not None else hash(shape_or_array) % 2**32)
        array = rng.uniform(low, high, size=shape_or_array)
    else:
        array = np.asarray(shape_or_array, dtype=np.float64)
    return ml.Tensor(np.asarray(array, dtype=np.float64), requires_grad=requires_grad)


def graph_ops(out):
    """Every op node (Function) in the graph below the tensor ``out``, each once."""
    stack, seen = [out.grad_fn], set()
    while stack:
        fn = stack.pop()
        if fn is None or fn.is_leaf or id(fn) in seen:
            continue
        seen.add(id(fn))
        yield fn
        stack.extend(fn.parents)


def tiny_gpt(dtype="float64", seed=0, vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8):
    """A GPT small enough for float64 gradient checks: by default 2 layers of width 8, 11 tokens, context 8.

    Seeded, so two calls with the same arguments give the same weights.
    """
    ml.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head, n_embd=n_embd)).to_dtype(dtype)


LORA_IDX = np.random.default_rng(0).integers(0, 11, size=(2, 6))  # token ids for tiny_gpt's 11 tokens


def randomize_adapters(model, seed=1):
    """Non-identity adapters: random B (and A), so B·A ≠ 0."""
    rng = np.random.default_rng(seed)
    for name, p in model.named_parameters():
        if name.split(".")[-1].startswith("lora_"):
            p.data = rng.normal(scale=0.3, size=p.shape).astype(p.dtype)
    return model


def lora_outputs(model, idx=LORA_IDX):
    """A model's logits on ``idx``, as a copied array, without a graph."""
    with ml.no_grad():
        return model(idx)[0].data.copy()
