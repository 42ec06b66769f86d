"""Sampling the next token: temperature, top-k, and a seeded categorical draw."""

from minilora import backend, validate
from minilora.autograd.ops import softmax
from minilora.autograd.tensor import Tensor


def check_sampling(max_new_tokens, temperature, top_k, vocab_size):
    """Refuse settings that would sample garbage: a nan or negative temperature gives
    nan probabilities (every draw lands on token 0), and top_k must pick 1..vocab_size tokens."""
    validate.integer("generate", "max_new_tokens", max_new_tokens, 0)
    validate.number("generate", "temperature", temperature, 0)
    if top_k is not None:
        validate.integer("generate", "top_k", top_k, 1, vocab_size)


def sample_next(logits, temperature=1.0, top_k=None):
    """Draw one token id per row from ``logits`` (B, V); returns an int64 array (B, 1).

    ``temperature`` divides the logits (below 1: sharper, above 1: flatter;
    0 means greedy argmax). ``top_k`` keeps only the k largest logits.
    The draw inverts the cumulative distribution at a uniform number from
    minilora's seeded generator, so ``manual_seed`` fixes the samples.
    """
    data = logits.data if isinstance(logits, Tensor) else logits
    xp = backend.get_array_module(data)
    check_sampling(1, temperature, top_k, data.shape[-1])
    if temperature == 0:
        return data.argmax(axis=-1)[:, None].astype(backend.int64)
    data = data / temperature
    if top_k is not None:
        k = int(top_k)
        kth = xp.sort(data, axis=-1)[:, -k][:, None]
        data = xp.where(data < kth, -xp.inf, data)
    probs = softmax(Tensor._wrap(data), dim=-1).data
    cdf = probs.cumsum(axis=-1)
    # Scale u by the last cdf value (1 up to rounding) so it can never fall past the
    # end of the distribution, where only tokens of probability 0 lie.
    u = backend.rand((data.shape[0], 1), dtype=probs.dtype, like=probs) * cdf[:, -1:]
    return (cdf < u).sum(axis=-1, keepdims=True).astype(backend.int64)
