"""Training: the Trainer loop, checkpoints, progress, plots, and language-model glue."""

from minilora.train.checkpoint import load_checkpoint, save_checkpoint
from minilora.train.trainer import NonFiniteLossError, TrainConfig, Trainer, make_optimizer

__all__ = ["Trainer", "TrainConfig", "NonFiniteLossError", "make_optimizer", "save_checkpoint", "load_checkpoint"]
