"""Optimizers (SGD, Adam, AdamW), gradient clipping and the learning-rate schedule."""

from minilora.optim.optimizers import SGD, Adam, AdamW, Optimizer, clip_grad_norm_
from minilora.optim.schedule import warmup_cosine

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "clip_grad_norm_", "warmup_cosine"]
