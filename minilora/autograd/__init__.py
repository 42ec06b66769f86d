"""A small reverse-mode autograd engine on whole arrays.

* ``tensor``   -- Tensor: an array plus the op that made it
* ``function`` -- Function: one primitive op (forward + VJP), unbroadcast
* ``engine``   -- no_grad and the iterative backward walk
* ``ops``      -- the primitive ops and their functional API
* ``gradcheck``-- finite-difference checking of every VJP
"""

from minilora.autograd.engine import is_grad_enabled, no_grad, set_grad_enabled
from minilora.autograd.tensor import Tensor

# This order is load order: the ops build Tensors, so they come after the class exists.
from minilora.autograd.function import PRIMITIVES, Function, unbroadcast
from minilora.autograd import ops
from minilora.autograd.gradcheck import GradcheckError, gradcheck

__all__ = [
    "Tensor", "Function", "PRIMITIVES", "unbroadcast", "ops",
    "no_grad", "set_grad_enabled", "is_grad_enabled", "gradcheck", "GradcheckError",
]  # fmt: skip
