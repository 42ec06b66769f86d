"""Sampling the next token: temperature, top-k, and a seeded categorical draw."""

from minilora import backend
from minilora.autograd.ops import softmax
from minilora.autograd.tensor import Tensor


def sample_next(logits, temperature=1.0, top_k=None):
    """Draw one token id per row from ``logits`` (B, V); returns an int64 array (B, 1).

    ``temperature`` divides the logits (below 1: sharper, above 1: flatter;
    0 means greedy argmax). ``top_k`` keeps only the k largest logits.
    The draw inverts the cumulative distribution at a uniform number from
    minilora's seeded generator, so ``manual_seed`` fixes the samples.
    """
    data = logits.data if isinstance(logits, Tensor) else logits
    xp = backend.get_array_module(data)
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return data.argmax(axis=-1)[:, None].astype(backend.int64)
    data = data / temperature
    if top_k is not None:
        if int(top_k) < 1:
            raise ValueError(f"top_k must be a positive number of tokens, got {top_k}")
        k = min(int(top_k), data.shape[-1])
        kth = xp.sort(data, axis=-1)[:, -k][:, None]
        data = xp.where(data < kth, -xp.inf, data)
    probs = softmax(Tensor._wrap(data), dim=-1).data
    cdf = probs.cumsum(axis=-1)
    # Scale u by the last cdf value (1 up to rounding) so it can never fall past the
    # end of the distribution, where only tokens of probability 0 lie.
    u = backend.rand((data.shape[0], 1), dtype=probs.dtype, like=probs) * cdf[:, -1:]
    return (cdf < u).sum(axis=-1, keepdims=True).astype(backend.int64)
