import numpy as np
import pytest

import minilora as ml


@pytest.fixture(autouse=True)
def _fresh_seed():
    """Every test starts from the same random stream."""
    ml.manual_seed(0)
    yield


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
