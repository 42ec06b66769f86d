"""Randomness: one seeded generator, drawn on the host, moved to the device.

Drawing on the host and then moving the numbers makes a seed give the same
numbers on the CPU and on a GPU.
"""

import numpy

from minilora import backend

_generator = numpy.random.default_rng(0)


def manual_seed(seed):
    """Reseed the generator that every random draw in minilora uses."""
    global _generator
    _generator = numpy.random.default_rng(seed)


def generator():
    """The seeded numpy ``Generator`` behind every random draw in minilora."""
    return _generator


def new_generator(seed):
    """A separate numpy ``Generator``, for draws that must not disturb the main stream."""
    return numpy.random.default_rng(seed)


def get_rng_state():
    """The generator's state as a JSON-friendly dict (for checkpoints)."""
    return _generator.bit_generator.state


def set_rng_state(state):
    """Restore a state returned by ``get_rng_state`` (resuming a run exactly)."""
    _generator.bit_generator.state = state


def _place(host_array, like):
    """A host draw moved to the selected backend, or to the device of ``like``."""
    if like is None:
        return backend.asarray(host_array)
    return backend.get_array_module(like).asarray(host_array)


def rand(shape, dtype=numpy.float32, like=None):
    """Uniform samples in [0, 1) of ``shape``, on the selected backend (or where ``like`` lives)."""
    return _place(_generator.random(shape, dtype=numpy.float64).astype(dtype), like)


def randn(shape, dtype=numpy.float32, like=None):
    """Standard normal samples of ``shape``, on the selected backend (or where ``like`` lives)."""
    return _place(_generator.standard_normal(shape, dtype=numpy.float64).astype(dtype), like)


def randint(low, high, shape, generator=None):
    """Integers drawn uniformly from [low, high), as int64, on the selected backend.

    ``generator`` (from ``new_generator``) draws from a separate stream instead
    of the main one, e.g. for fixed evaluation batches.
    """
    generator = generator or _generator
    return backend.asarray(generator.integers(low, high, size=shape, dtype=numpy.int64))
