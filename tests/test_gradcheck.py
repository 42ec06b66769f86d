"""Every primitive op's VJP against float64 central differences.

CASES maps each registered primitive to the calls that check it. A primitive
with no entry fails ``test_every_primitive_has_a_case``, so a new op cannot
land without its gradient check.
"""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import minilora as ml
import minilora.nn.functional as F
from minilora.autograd import PRIMITIVES, Function
from tests.helpers import graph_ops, t64

# The broadcasting shape matrix: every ordered pair of these broadcasts.
SHAPES = [(), (4,), (3, 4), (1, 4), (3, 1)]
PAIRS = list(itertools.product(SHAPES, SHAPES))
UNARY_SHAPES = [(), (4,), (3, 4), (2, 3, 4)]
AXES = [None, 0, -1, (0, 2)]


def away_from_zero(shape, seed=1):
    """Values in ±[0.5, 1.5): no kinks (relu, clamp) or poles (div, log) nearby."""
    rng = np.random.default_rng(seed)
    return t64(rng.uniform(0.5, 1.5, size=shape) * rng.choice([-1.0, 1.0], size=shape))


def positive(shape, seed=2):
    return t64(np.random.default_rng(seed).uniform(0.5, 2.0, size=shape))


def binary_cases(op, make_b=lambda s: t64(s, seed=7)):
    return [(f"{op.__name__}{sa}{sb}", op, [t64(sa, seed=3), make_b(sb)]) for sa, sb in PAIRS]


def unary_cases(op, make=lambda s: t64(s, seed=5)):
    return [(f"{op.__name__}{s}", op, [make(s)]) for s in UNARY_SHAPES]


def gelu_erf(x):
    return F.gelu(x, approximate="none")


def reduction_cases(op, shapes=((), (4,), (3, 4), (2, 3, 4))):
    cases = []
    for shape in shapes:
        for axis in AXES:
            if axis is not None and (len(shape) == 0 or (isinstance(axis, tuple) and len(shape) < 3)):
                continue
            for keepdims in (False, True):
                fn = lambda x, a=axis, k=keepdims: op(x, axis=a, keepdims=k)  # noqa: E731
                cases.append((f"{op.__name__}{shape}-{axis}-{keepdims}", fn, [t64(shape, seed=11)]))
    return cases


def matmul_cases():
    pairs = [
        ((3,), (3,)), ((3,), (3, 4)), ((2, 3), (3,)), ((2, 3), (3, 4)), ((5, 2, 3), (3, 4)),
        ((2, 3), (5, 3, 4)), ((5, 2, 3), (5, 3, 4)), ((1, 2, 3), (5, 3, 4)), ((2, 1, 2, 3), (5, 3, 4)),
        ((3,), (5, 3, 4)), ((5, 2, 3), (3,)),
    ]  # fmt: skip
    return [(f"matmul{sa}{sb}", F.matmul, [t64(sa, seed=1), t64(sb, seed=2)]) for sa, sb in pairs]


def getitem_cases():
    x = t64((4, 5), seed=3)
    keys = {
        "slice": (slice(1, 3), slice(None, None, 2)),
        "int": 2,
        "int-array-with-repeats": np.array([0, 2, 2, 3, 0]),
        "2d-int-arrays": (np.array([[0, 1], [1, 1]]), np.array([[4, 4], [0, 2]])),
        "mixed": (slice(None), np.array([1, 1, 3])),
        "bool-mask": np.arange(20).reshape(4, 5) % 3 == 0,
        "bool-rows": np.array([True, False, True, True]),
        "newaxis-ellipsis": (None, Ellipsis, 1),
        "list": [3, 1, 3],
    }
    return [(f"getitem-{name}", lambda x, k=key: x[k], [x]) for name, key in keys.items()]


def cross_entropy_cases():
    targets = np.array([[1, 0, 4], [2, 2, -100]])
    cases = []
    for reduction in ("mean", "sum", "none"):
        fn = lambda z, r=reduction: F.cross_entropy(z, targets, reduction=r)  # noqa: E731
        cases.append((f"cross_entropy-{reduction}", fn, [t64((2, 3, 5), seed=4, low=-3, high=3)]))
    flat = np.array([3, 0, 0, 1])
    cases.append(("cross_entropy-2d", lambda z: F.cross_entropy(z, flat), [t64((4, 6), seed=5)]))
    return cases


def dropout_with_fixed_mask(x):
    ml.manual_seed(123)  # the same mask on every finite-difference evaluation
    return F.dropout(x, p=0.3, training=True)


CASES = {
    "add": binary_cases(F.add),
    "sub": binary_cases(F.sub),
    "mul": binary_cases(F.mul),
    "div": binary_cases(F.div, make_b=lambda s: away_from_zero(s, seed=8)),
    "neg": unary_cases(F.neg),
    "pow": [
        (f"pow{sa}{sb}", F.pow, [positive(sa, seed=3), t64(sb, seed=4)]) for sa, sb in PAIRS
    ] + [
        ("pow-scalar-exponent", lambda x: x**3, [t64((3, 4))]),
        ("pow-scalar-base", lambda x: 2.0**x, [t64((3, 4))]),
    ],
    "matmul": matmul_cases(),
    "sum": reduction_cases(F.sum),
    "mean": reduction_cases(F.mean),
    "max": reduction_cases(F.max) + [("max-ties", lambda x: F.max(x, axis=1), [t64([[1.0, 3.0, 3.0], [2.0, 0.0, 2.0]])])],
    # One element has no sample variance (N - 1 = 0), so var starts at shape (4,).
    "var": reduction_cases(lambda x, axis, keepdims: F.var(x, axis=axis, keepdims=keepdims), shapes=((4,), (3, 4), (2, 3, 4)))
    + [("var-population", lambda x: F.var(x, axis=-1, correction=0), [t64((3, 4))])],
    "logsumexp": reduction_cases(lambda x, axis, keepdims: F.logsumexp(x, axis=axis, keepdims=keepdims)),
    "softmax": [(f"softmax-{a}", lambda x, a=a: F.softmax(x, axis=a), [t64((2, 3, 4))]) for a in (0, 1, -1)],
    "attentionsoftmax": [
        ("attention_softmax-causal", lambda x: F.attention_softmax(x, np.triu(np.ones((4, 4), bool), 1), scale=0.5), [t64((2, 3, 4, 4))]),
        ("attention_softmax-plain", lambda x: F.attention_softmax(x, scale=2.0), [t64((3, 5))]),
    ],
    "logsoftmax": [(f"log_softmax-{a}", lambda x, a=a: F.log_softmax(x, axis=a), [t64((2, 3, 4))]) for a in (0, 1, -1)],
    "crossentropy": cross_entropy_cases(),
    "embedding": [("embedding", lambda w: F.embedding(np.array([[1, 3, 1], [0, 1, 4]]), w), [t64((5, 3))])],
    "layernorm": [
        ("layer_norm-affine", lambda x, w, b: F.layer_norm(x, (4,), w, b), [t64((2, 3, 4)), t64((4,), seed=1), t64((4,), seed=2)]),
        ("layer_norm-plain", lambda x: F.layer_norm(x, 4), [t64((3, 4))]),
        ("layer_norm-2d", lambda x, w: F.layer_norm(x, (3, 4), w), [t64((2, 3, 4)), t64((3, 4), seed=9)]),
    ],
    "dropout": [("dropout", dropout_with_fixed_mask, [t64((3, 4))])],
    "exp": unary_cases(F.exp),
    "log": unary_cases(F.log, make=positive),
    "sqrt": unary_cases(F.sqrt, make=positive),
    "tanh": unary_cases(F.tanh, make=lambda s: t64(s, low=-3, high=3)),
    "sigmoid": unary_cases(F.sigmoid, make=lambda s: t64(s, low=-4, high=4)),
    "relu": unary_cases(F.relu, make=away_from_zero),
    "gelu": unary_cases(F.gelu, make=lambda s: t64(s, low=-3, high=3)),
    "geluerf": unary_cases(gelu_erf, make=lambda s: t64(s, low=-4, high=4)),
    "clamp": [
        ("clamp-both", lambda x: F.clamp(x, -0.25, 0.75), [t64(np.array([-1.0, -0.6, 0.1, 0.3, 0.9, 1.2]))]),
        ("clamp-min", lambda x: F.clamp(x, min=0.0), [away_from_zero((3, 4))]),
    ],
    "where": [
        (f"where{sa}{sb}", lambda a, b: F.where(np.array([True, False, False, True]), a, b), [t64(sa, seed=1), t64(sb, seed=2)])
        for sa, sb in PAIRS
    ] + [("masked_fill", lambda x: F.masked_fill(x, np.triu(np.ones((4, 4), bool), 1), -1e9).softmax(-1), [t64((4, 4))])],
    "reshape": [("reshape", lambda x: x.reshape(4, -1), [t64((2, 3, 4))]), ("unsqueeze", lambda x: x.unsqueeze(1).squeeze(1), [t64((3, 4))])],
    "permute": [("permute", lambda x: x.permute(2, 0, 1), [t64((2, 3, 4))]), ("transpose", lambda x: x.transpose(0, 2), [t64((2, 3, 4))]), ("T", lambda x: x.T, [t64((3, 4))])],
    "getitem": getitem_cases() + [("split", lambda x: F.split(x, [1, 3], axis=1)[1] * 2.0, [t64((2, 4))])],
    "concat": [("concat", lambda a, b: F.concat([a, b, a], axis=1), [t64((2, 3), seed=1), t64((2, 5), seed=2)])],
    "stack": [("stack", lambda a, b: F.stack([a, b], axis=1), [t64((2, 3), seed=1), t64((2, 3), seed=2)])],
    "linear": [
        ("linear-3d", F.linear, [t64((2, 3, 4)), t64((5, 4), seed=1), t64((5,), seed=2)]),
        ("linear-no-bias", F.linear, [t64((3, 4)), t64((2, 4), seed=1)]),
    ],
    "rnntanh": [
        ("rnn_tanh", F.rnn_tanh, [t64((2, 5, 3)), t64((4, 3), seed=1), t64((4, 4), seed=2), t64((4,), seed=3), t64((4,), seed=4), t64((2, 4), seed=5)]),
        ("rnn_tanh-zero-h0", lambda x, w, u: F.rnn_tanh(x, w, u, None, None)[:, -1], [t64((3, 4, 2)), t64((3, 2), seed=1), t64((3, 3), seed=2)]),
    ],
    "cast": [("cast", lambda x: x.astype("float64") * 2.0, [t64((3, 4))])],
    # A: uniform entries plus 4 on the diagonal, far from singular, so solve's VJP is smooth there.
    "solve": [
        ("solve", F.solve, [t64(np.random.default_rng(6).uniform(-1.0, 1.0, (4, 4)) + 4.0 * np.eye(4)), t64((4, 2), seed=1)]),
        ("solve-vector", F.solve, [t64(np.random.default_rng(6).uniform(-1.0, 1.0, (4, 4)) + 4.0 * np.eye(4)), t64((4,), seed=2)]),
        ("solve-stack", F.solve, [t64(np.random.default_rng(6).uniform(-1.0, 1.0, (3, 4, 4)) + 4.0 * np.eye(4)), t64((4, 2), seed=3)]),
        ("solve-broadcast-b", F.solve, [t64(np.random.default_rng(6).uniform(-1.0, 1.0, (4, 4)) + 4.0 * np.eye(4)), t64((2, 1, 4, 3), seed=4)]),
    ],
    "matrixexp": [
        ("matrix_exp", F.matrix_exp, [t64((4, 4))]),
        ("matrix_exp-skew", lambda s: F.matrix_exp(s - s.transpose(-2, -1)), [t64((4, 4), seed=2)]),
        # 1-norms above θ₁₃ = 5.37, so the scaling-and-squaring branch runs (tests/test_orthogonal_linalg.py checks it).
        ("matrix_exp-squared", F.matrix_exp, [t64((2, 5, 5), seed=3, low=-3.0, high=3.0)]),
    ],
}  # fmt: skip

ALL_CASES = [case for cases in CASES.values() for case in cases]


def test_every_primitive_has_a_case():
    missing = sorted(set(PRIMITIVES) - set(CASES))
    assert not missing, f"primitives without a gradient check in CASES: {missing}"
    stale = sorted(set(CASES) - set(PRIMITIVES))
    assert not stale, f"CASES names ops that are not registered primitives: {stale}"


def test_every_case_actually_reaches_its_primitive():
    """A case counts only if the op it is filed under appears in its graph."""
    for name, cases in CASES.items():
        for label, fn, inputs in cases:
            out = fn(*inputs)
            assert name in {type(op).__name__.lower() for op in graph_ops(out)}, f"case {label} never runs primitive {name}"


@pytest.mark.parametrize("label, fn, inputs", ALL_CASES, ids=[c[0] for c in ALL_CASES])
def test_gradcheck(label, fn, inputs):
    assert ml.gradcheck(fn, inputs)


# ----------------------------------------------------------------------------
# gradcheck itself must be able to fail


class WrongSquare(Function, register=False):
    """x² with a VJP that is off by a factor of 2 (2x forgotten as x)."""

    def forward(self, x):
        self.save_for_backward(x)
        return x * x

    def backward(self, grad):
        (x,) = self.saved
        return grad * x


def test_gradcheck_catches_a_wrong_vjp():
    with pytest.raises(ml.GradcheckError, match="gradient of input 0 is wrong"):
        ml.gradcheck(WrongSquare.apply, [t64((3,))])


def test_gradcheck_refuses_float32():
    x = ml.Tensor(np.ones(3, np.float32), requires_grad=True)
    with pytest.raises(TypeError, match="float64"):
        ml.gradcheck(F.exp, [x])


def test_gradcheck_refuses_non_finite_inputs():
    with pytest.raises(ValueError, match="nan or inf"):
        ml.gradcheck(F.exp, [t64(np.array([1.0, np.nan]))])


def test_gradcheck_refuses_non_finite_outputs():
    with pytest.raises(ValueError, match="returned nan or inf"), np.errstate(invalid="ignore"):
        ml.gradcheck(F.log, [t64(np.array([1.0, -1.0]))])


def test_gradcheck_leaves_inputs_and_grads_alone():
    x = t64((3,))
    before = x.data.copy()
    x.grad = np.full(3, 7.0)
    ml.gradcheck(F.tanh, [x])
    np.testing.assert_array_equal(x.data, before)
    np.testing.assert_array_equal(x.grad, np.full(3, 7.0))


# ----------------------------------------------------------------------------
# Property tests: random shapes, forward against numpy, backward against differences

BINARY = {"add": (F.add, np.add), "sub": (F.sub, np.subtract), "mul": (F.mul, np.multiply)}


@settings(deadline=None, max_examples=30)
@given(
    op=st.sampled_from(sorted(BINARY)),
    shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3),
    seed=st.integers(0, 2**16),
)
def test_binary_ops_on_random_broadcast_shapes(op, shapes, seed):
    ours, theirs = BINARY[op]
    a, b = t64(shapes.input_shapes[0], seed=seed), t64(shapes.input_shapes[1], seed=seed + 1)
    out = ours(a, b)
    assert out.shape == shapes.result_shape
    np.testing.assert_allclose(out.data, theirs(a.data, b.data), rtol=1e-12)
    assert ml.gradcheck(ours, [a, b])


@settings(deadline=None, max_examples=30)
@given(
    batch=hnp.mutually_broadcastable_shapes(num_shapes=2, max_dims=2, max_side=3),
    n=st.integers(1, 3), k=st.integers(1, 3), m=st.integers(1, 3), seed=st.integers(0, 2**16),
)  # fmt: skip
def test_matmul_on_random_batch_shapes(batch, n, k, m, seed):
    a = t64(batch.input_shapes[0] + (n, k), seed=seed)
    b = t64(batch.input_shapes[1] + (k, m), seed=seed + 1)
    np.testing.assert_allclose((a @ b).data, np.matmul(a.data, b.data), rtol=1e-12)
    assert ml.gradcheck(F.matmul, [a, b])


@settings(deadline=None, max_examples=30)
@given(
    shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4),
    op=st.sampled_from(["sum", "mean", "max", "logsumexp", "softmax", "log_softmax"]),
    data=st.data(),
)
def test_reductions_on_random_shapes(shape, op, data):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = t64(shape, seed=data.draw(st.integers(0, 2**16)))
    fn = lambda x: getattr(F, op)(x, axis=axis)  # noqa: E731
    assert ml.gradcheck(fn, [x])


@pytest.mark.parametrize("label, fn, inputs", ALL_CASES, ids=[c[0] for c in ALL_CASES])
def test_float32_in_float32_out_for_every_case(label, fn, inputs):
    """Models train in float32: no op may quietly turn a float32 graph into float64."""
    args = [ml.Tensor(x.data.astype(np.float32), requires_grad=True) if isinstance(x, ml.Tensor) else x for x in inputs]
    out = fn(*args)
    if label != "cast":  # the one case that casts to float64 on purpose
        assert out.dtype == np.float32
    out.backward(np.ones(out.shape, out.dtype))
    for a in args:
        if isinstance(a, ml.Tensor):
            assert a.grad.dtype == np.float32, f"{label}: gradient came back {a.grad.dtype}"


def test_numpy_scalar_constants_do_not_upcast():
    x = ml.Tensor(np.ones(3, np.float32), requires_grad=True)
    y = np.float64(2.0) * x + np.float64(1.0)
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32


def test_gradcheck_leaves_closure_parameters_and_inputs_alone_even_on_error():
    W = t64((3, 3), seed=4)
    x = t64((3,))
    ml.gradcheck(lambda x: (W @ x).tanh(), [x])
    assert W.grad is None  # a parameter captured by the closure keeps its .grad

    calls = {"n": 0}

    def flaky(x):
        calls["n"] += 1
        if calls["n"] > 3:
            raise RuntimeError("boom")
        return x * 2.0

    before = x.data.copy()
    with pytest.raises(RuntimeError, match="boom"):
        ml.gradcheck(flaky, [x])
    np.testing.assert_array_equal(x.data, before)
