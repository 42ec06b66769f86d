"""Training a student against a teacher: the distillation loss (minilora/distill.py) run by the Trainer."""

import itertools

from minilora.distill import Distillation
from minilora.train.trainer import Trainer


def distill(teacher, student, batches, config, eval_sets=None, temperature=2.0, alpha=0.5, log=print, progress=True):
    """Train ``student`` (in place) on Eq. (5) against ``teacher`` for ``config.max_iters`` steps; return the Trainer.

    ``batches`` is a zero-argument callable returning the next training batch
    (as the Trainer takes it) or a list of batches, used in turn.
    ``config`` is a TrainConfig (learning rate, schedule, clipping);
    ``eval_sets`` maps names to lists of batches, scored by the student's own loss.
    The Trainer's ``history`` and ``step_seconds`` tell how it went.
    """
    if callable(batches):
        train_batch = batches
    else:
        batches = list(batches)
        if not batches:
            raise ValueError("batches is empty; give a list of training batches or a callable that returns one")
        train_batch = itertools.cycle(batches).__next__  # each call: the next batch, back to the first after the last
    trainer = Trainer(Distillation(student, teacher, temperature, alpha), config, train_batch, eval_sets or {}, log=log, progress=progress)
    trainer.fit()
    return trainer
