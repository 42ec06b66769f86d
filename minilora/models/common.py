"""What every model shares: checking its token ids, and its mean loss over batches.

Every model answers ``model(*batch) -> (logits, loss)``, so one function
averages that loss for the Trainer, compression reports, the experiments and
the ``eval`` command alike.
"""

from minilora import backend
from minilora.autograd.tensor import Tensor
from minilora.nn.module import evaluating


def as_indices(idx):
    """Token ids as an integer array, from a Tensor, an array or a list of ints."""
    data = idx.data if isinstance(idx, Tensor) else backend.asarray(idx)
    if not backend.is_integer(data.dtype):
        raise TypeError(
            f"token ids must be integers, got dtype {data.dtype} (ml.Tensor turns lists into "
            "float32; build ids with ml.Tensor(ids, dtype='int64') or pass the list itself)"
        )
    return data


def as_token_batch(idx, what="token ids"):
    """Token ids as an integer (B, T) array with B >= 1 and T >= 1: what a language model reads."""
    data = as_indices(idx)
    if data.ndim != 2 or 0 in data.shape:
        raise ValueError(
            f"{what} must have shape (batch >= 1, length >= 1), got shape {tuple(data.shape)} "
            "(one sequence of ids goes in as [ids])"
        )
    return data


def mean_loss(model, batches, weights=None, each=None):
    """The mean of ``model(*batch)[1]`` over ``batches``, in eval mode and without a graph.

    Each batch counts equally, or in proportion to ``weights`` (one number per
    batch, e.g. its number of target tokens, which makes the result the mean
    loss per token when the last batch is smaller). ``each(i, mean so far)``,
    if given, is called after every batch (a progress bar, say).
    """
    batches = list(batches)
    if not batches:
        raise ValueError("batches is empty, so there is no loss to average")
    weights = [1.0] * len(batches) if weights is None else list(weights)
    if len(weights) != len(batches):
        raise ValueError(f"got {len(weights)} weights for {len(batches)} batches; give one per batch")
    total = done = 0.0
    with evaluating(model):
        for i, (batch, w) in enumerate(zip(batches, weights)):
            total, done = total + model(*batch)[1].item() * w, done + w
            if each is not None:
                each(i, total / done)
    return total / sum(weights)
