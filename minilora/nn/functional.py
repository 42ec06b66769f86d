"""The functional API, ``import minilora.nn.functional as F``.

Every differentiable op of the engine under the name PyTorch gives it, so a
model reads the same here as in PyTorch: ``F.softmax(x, dim=-1)``,
``F.cross_entropy(logits, targets)``, ``F.layer_norm(x, (C,), w, b)``.
The implementations (forward and VJP side by side) live in
``minilora.autograd.ops``.
"""

from minilora.autograd.ops import *  # noqa: F403
from minilora.autograd.ops import __all__  # noqa: F401
