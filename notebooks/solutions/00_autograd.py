"""Solutions to the exercises of notebook 00 (the test suite runs this file)."""

import math

import numpy as np
from exercises import (
    check_adjoint,
    check_sigmoid_vjp,
    check_unbroadcast,
    check_value_relu,
)

# Exercise 1: f = x·y + exp(x); x reaches f through x·y (adjoint y) and through exp(x) (adjoint e^x).
assert check_adjoint(2.0 + math.exp(1.0))


# Exercise 2: σ'(x) = σ(x)(1 - σ(x)).
def sigmoid_vjp(x, grad):
    s = 1.0 / (1.0 + np.exp(-x))
    return grad * s * (1.0 - s)


assert check_sigmoid_vjp(sigmoid_vjp)


# Exercise 3: sum away the leading axes broadcasting added, then the axes where the shape has 1.
def my_unbroadcast(grad, shape):
    grad = grad.sum(axis=tuple(range(grad.ndim - len(shape))))
    return grad.sum(axis=tuple(i for i, n in enumerate(shape) if n == 1), keepdims=True).reshape(shape)


assert check_unbroadcast(my_unbroadcast)


# Exercise 4: the Value of notebook 00 with relu; the local derivative is 1 where the input is > 0.
class Value:
    def __init__(self, data, parents=(), backward=lambda: None):
        self.data, self.grad, self._parents, self._backward = float(data), 0.0, parents, backward

    def __add__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data + other.data, (self, other))

        def backward():
            self.grad += out.grad
            other.grad += out.grad

        out._backward = backward
        return out

    def __mul__(self, other):
        other = other if isinstance(other, Value) else Value(other)
        out = Value(self.data * other.data, (self, other))

        def backward():
            self.grad += other.data * out.grad
            other.grad += self.data * out.grad

        out._backward = backward
        return out

    def relu(self):
        out = Value(max(self.data, 0.0), (self,))

        def backward():
            self.grad += (self.data > 0) * out.grad

        out._backward = backward
        return out

    def backward(self):
        order, seen, stack = [], set(), [(self, False)]
        while stack:  # an iterative topological sort, as minilora's engine does
            node, expanded = stack.pop()
            if expanded:
                order.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack.extend((p, False) for p in node._parents)
        self.grad = 1.0
        for node in reversed(order):
            node._backward()


assert check_value_relu(Value)
