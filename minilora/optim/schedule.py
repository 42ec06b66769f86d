"""The learning-rate schedule: linear warmup, then cosine decay to a floor."""

import math


def warmup_cosine(step, lr, warmup_steps, total_steps, min_lr=0.0):
    """The learning rate at ``step`` (counting from 0; Eq. O4 in docs/math.md).

    Rises linearly over ``warmup_steps`` (so the first updates, made while
    Adam's moment estimates are still noisy, are small), then follows half a
    cosine from ``lr`` down to ``min_lr`` at ``total_steps``, and stays there.
    """
    if step < warmup_steps:
        return lr * (step + 1) / (warmup_steps + 1)
    if step >= total_steps:
        return min_lr
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)
