"""The command line: ``python -m minilora [command] [options]``.

Each command is a function taking the parsed arguments. With no command,
minilora runs its main job.
"""

import argparse
import time

import minilora as ml
import minilora.nn.functional as F
from minilora import backend


def tour(args):
    """A two-minute look at the engine: a graph, its gradient, a check, a fit."""
    ml.manual_seed(args.seed)
    print(f"minilora {ml.__version__}: an autograd tour on the {backend.current()} backend\n")

    print("1. A graph and its gradient")
    x = ml.Tensor(backend.randn((4, 3), dtype=backend.float64))
    W = ml.Tensor(backend.randn((3, 2), dtype=backend.float64), requires_grad=True)
    y = (x @ W).tanh().mean()
    y.backward()
    print("   y = mean(tanh(x @ W)), x of shape (4, 3), W of shape (3, 2)")
    print(f"   y = {y.item():.6f}")
    print("   dy/dW =\n" + _indent(W.grad, 6))
    ml.gradcheck(lambda W: (x @ W).tanh().mean(), [W])
    print("   gradcheck: backward() agrees with float64 central differences\n")

    print("2. Learning XOR with a two-layer network and hand-written SGD")
    inputs = ml.Tensor([[0, 0], [0, 1], [1, 0], [1, 1]])
    labels = backend.asarray([0, 1, 1, 0])
    W1 = ml.Tensor(backend.randn((2, 8)), requires_grad=True)
    b1 = ml.Tensor(backend.randn((8,)) * 0.1, requires_grad=True)
    W2 = ml.Tensor(backend.randn((8, 2)) * 0.5, requires_grad=True)
    params = [W1, b1, W2]
    start = time.perf_counter()
    for step in range(args.steps + 1):
        logits = F.tanh(inputs @ W1 + b1) @ W2
        loss = F.cross_entropy(logits, labels)
        for p in params:
            p.grad = None
        loss.backward()
        with ml.no_grad():
            for p in params:
                p.data -= args.lr * p.grad
        if step % max(1, args.steps // 5) == 0:
            print(f"   step {step:4d}   loss {loss.item():.4f}")
    accuracy = float((logits.argmax(axis=-1).data == labels).mean())
    print(f"   accuracy {accuracy:.0%} on XOR after {args.steps} steps ({time.perf_counter() - start:.2f} s)\n")

    print("Next: the derivations in docs/autograd.md, and `python -m pytest` for the full test suite.")
    return 0


def _indent(array, n):
    return "\n".join(" " * n + line for line in str(backend.to_numpy(array).round(4)).splitlines())


def build_parser():
    parser = argparse.ArgumentParser(
        prog="python -m minilora",
        description="minilora: low-rank adaptation from the ground up, in NumPy. "
        "With no command, runs the autograd tour.",
    )
    commands = parser.add_subparsers(dest="command", metavar="command")
    p = commands.add_parser("tour", help="a short tour of the autograd engine (the default)")
    _tour_options(p)
    _tour_options(parser)  # so `python -m minilora --seed 1` works without naming the command
    return parser


def _tour_options(p):
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--steps", type=int, default=500, help="SGD steps for the XOR fit (default: 500)")
    p.add_argument("--lr", type=float, default=0.5, help="SGD learning rate (default: 0.5)")


COMMANDS = {None: tour, "tour": tour}


def main(argv=None):
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command](args)
