"""Neural-network building blocks on top of the autograd engine."""

from minilora.nn import functional

__all__ = ["functional"]
