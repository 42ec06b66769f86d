"""Tensor construction, dtype rules, methods, and the errors bad input gets."""

import numpy as np
import pytest

import minilora as ml
import minilora.nn.functional as F
from tests.helpers import t64


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_floating_arrays_keep_their_dtype(dtype):
    assert ml.Tensor(np.ones(3, dtype)).dtype == dtype


@pytest.mark.parametrize("data", [[1, 2, 3], [[1.5, 2.0]], 3, 2.5, [True, False]])
def test_python_numbers_and_lists_become_float32(data):
    assert ml.Tensor(data).dtype == np.float32


def test_integer_and_bool_arrays_keep_their_dtype():
    assert ml.Tensor(np.arange(3)).dtype == np.int64
    assert ml.Tensor(np.array([True])).dtype == np.bool_


def test_explicit_dtype_wins():
    assert ml.Tensor([1, 2], dtype="float64").dtype == np.float64


def test_array_is_shared_not_copied():
    a = np.zeros(3, np.float32)
    t = ml.Tensor(a)
    a[0] = 5.0
    assert t.data[0] == 5.0


def test_integer_tensor_cannot_require_grad():
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients.*int64"):
        ml.Tensor(np.arange(3), requires_grad=True)


def test_attributes():
    x = ml.Tensor(np.ones((2, 3)), requires_grad=True)
    assert x.shape == (2, 3) and x.ndim == 2 and x.size == 6 and x.numel() == 6 and len(x) == 2
    assert x.grad is None and x.is_leaf and x.grad_fn is None
    y = x * 2.0
    assert not y.is_leaf and y.grad_fn.name == "Mul"
    assert "grad_fn=Mul" in repr(y) and "requires_grad=True" in repr(x)


def test_item_and_numpy():
    assert ml.Tensor([[2.5]]).item() == 2.5
    with pytest.raises(ValueError, match=r"one element.*\(2,\)"):
        ml.Tensor([1.0, 2.0]).item()
    x = ml.Tensor(np.arange(4.0))
    assert isinstance(x.numpy(), np.ndarray) and x.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_operators_match_numpy_and_keep_float32():
    rng = np.random.default_rng(0)
    a_np, b_np = rng.normal(size=(3, 4)).astype(np.float32), rng.normal(size=(4,)).astype(np.float32)
    a, b = ml.Tensor(a_np), ml.Tensor(b_np)
    for ours, theirs in [
        (a + b, a_np + b_np), (a - b, a_np - b_np), (a * b, a_np * b_np), (a / b, a_np / b_np),
        (2.0 - a, 2.0 - a_np), (1.0 / a, 1.0 / a_np), (-a, -a_np), (abs(a_np) ** 0.5, abs(a_np) ** 0.5),
        (a @ b, a_np @ b_np), (a_np @ ml.Tensor(a_np.T), a_np @ a_np.T), (b_np * a, b_np * a_np),
        (a.T, a_np.T), (a.sum(dim=1, keepdim=True), a_np.sum(1, keepdims=True)),
    ]:  # fmt: skip
        ours_data = ours.data if isinstance(ours, ml.Tensor) else ours
        np.testing.assert_allclose(ours_data, theirs, rtol=1e-6)
        assert ours_data.dtype == np.float32


def test_ndarray_on_the_left_defers_to_tensor():
    out = np.ones(3) * ml.Tensor(np.ones(3), requires_grad=True)
    assert isinstance(out, ml.Tensor) and out.requires_grad


def test_comparisons_give_boolean_tensors():
    x = ml.Tensor([1.0, 2.0, 3.0])
    assert (x > 1.5).dtype == np.bool_
    assert (x == 2.0).tolist() == [False, True, False]
    assert x.argmax().item() == 2


def test_tensors_hash_by_identity():
    a, b = ml.Tensor([1.0]), ml.Tensor([1.0])
    assert len({a, b}) == 2


def test_reduction_accepts_numpy_and_torch_spellings():
    x = ml.Tensor(np.arange(6.0).reshape(2, 3))
    assert x.mean(axis=0).shape == (3,) and x.mean(dim=0, keepdim=True).shape == (1, 3)
    np.testing.assert_allclose(x.var(axis=1).data, np.var(x.data, axis=1, ddof=1))
    np.testing.assert_allclose(x.var(axis=1, correction=0).data, np.var(x.data, axis=1))


def test_shape_helpers():
    x = ml.Tensor(np.zeros((2, 1, 3)))
    assert x.squeeze().shape == (2, 3) and x.squeeze(1).shape == (2, 3)
    assert x.unsqueeze(0).shape == (1, 2, 1, 3) and x.unsqueeze(-1).shape == (2, 1, 3, 1)
    assert x.flatten().shape == (6,) and x.view(3, 2).shape == (3, 2)
    assert x.permute(2, 0, 1).shape == (3, 2, 1) and x.transpose(0, 2).shape == (3, 1, 2)
    with pytest.raises(ValueError, match="not 1"):
        x.squeeze(0)
    with pytest.raises(ValueError, match="is not an ordering"):
        x.permute(0, 0, 1)


def test_masked_fill_keeps_float32_and_needs_a_boolean_mask():
    x = ml.Tensor(np.zeros((2, 2), np.float32))
    y = x.masked_fill(np.eye(2, dtype=bool), float("-inf"))
    assert y.dtype == np.float32 and np.isneginf(y.data[0, 0])
    with pytest.raises(TypeError, match="boolean"):
        x.masked_fill(np.eye(2), 0.0)


def test_astype_is_differentiable_between_floats():
    x = ml.Tensor(np.ones(3, np.float32), requires_grad=True)
    y = x.double()
    assert y.dtype == np.float64
    (y * 2.0).sum().backward()
    assert x.grad.dtype == np.float32
    assert x.astype("int64").dtype == np.int64 and not x.astype("int64").requires_grad


def test_split_and_concat_round_trip():
    x = t64((3, 7))
    np.testing.assert_array_equal(F.cat(F.split(x, [2, 5], dim=1), dim=1).data, x.data)
    with pytest.raises(ValueError, match="add up to 6, not to 7"):
        F.split(x, [2, 4], axis=1)


# ----------------------------------------------------------------------------
# Bad input: the message names the op, the shapes and what to do


def test_broadcast_mismatch_names_the_op_and_both_shapes():
    with pytest.raises(ValueError, match=r"^add: .*\(3, 4\), \(5,\).*equal or one of them is 1"):
        ml.Tensor(np.ones((3, 4))) + ml.Tensor(np.ones(5))
    with pytest.raises(ValueError, match=r"^mul: .*\(2, 3\), \(3, 2\)"):
        ml.Tensor(np.ones((2, 3))) * ml.Tensor(np.ones((3, 2)))


def test_matmul_mismatch_names_both_shapes_and_the_dimensions():
    with pytest.raises(ValueError, match=r"matmul: shapes \(3, 4\) and \(5, 6\).*\(4\).*\(5\)"):
        ml.Tensor(np.ones((3, 4))) @ ml.Tensor(np.ones((5, 6)))
    with pytest.raises(ValueError, match="at least one dimension"):
        F.matmul(ml.Tensor(2.0), ml.Tensor(np.ones(3)))


def test_reshape_mismatch_names_the_op():
    with pytest.raises(ValueError, match=r"^reshape: .*size 6.*\(2, 3\)"):
        ml.Tensor(np.ones((2, 3))).reshape(4, 2)


def test_cross_entropy_target_out_of_range():
    logits = ml.Tensor(np.zeros((2, 5)), requires_grad=True)
    with pytest.raises(IndexError, match=r"target 7 is out of range for 5 classes.*\[0, 4\]"):
        F.cross_entropy(logits, np.array([1, 7]))
    with pytest.raises(IndexError, match="target -3"):
        F.cross_entropy(logits, np.array([-3, 1]))


def test_cross_entropy_bad_targets():
    logits = ml.Tensor(np.zeros((2, 5)))
    with pytest.raises(TypeError, match="integer class indices"):
        F.cross_entropy(logits, np.array([1.0, 2.0]))
    with pytest.raises(ValueError, match=r"targets of shape \(2,\).*got \(3,\)"):
        F.cross_entropy(logits, np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(logits, np.array([1, 2]), reduction="avg")


def test_cross_entropy_ignore_index_and_reductions():
    rng = np.random.default_rng(0)
    z = rng.normal(size=(4, 3))
    t = np.array([0, 2, -100, 1])
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    per_row = -logp[[0, 1, 3], [0, 2, 1]]
    logits = ml.Tensor(z)
    assert F.cross_entropy(logits, t).item() == pytest.approx(per_row.mean())
    assert F.cross_entropy(logits, t, reduction="sum").item() == pytest.approx(per_row.sum())
    np.testing.assert_allclose(F.cross_entropy(logits, t, reduction="none").data, [*per_row[:2], 0.0, per_row[2]])


def test_embedding_index_errors():
    w = ml.Tensor(np.zeros((4, 2)))
    with pytest.raises(IndexError, match="index 4 is out of range for a table of 4 rows"):
        F.embedding(np.array([0, 4]), w)
    with pytest.raises(TypeError, match="integers"):
        F.embedding(np.array([0.0]), w)


def test_layer_norm_shape_error():
    with pytest.raises(ValueError, match="does not end in normalized_shape"):
        F.layer_norm(ml.Tensor(np.ones((2, 3))), (4,))


def test_dropout_probability_error_and_identities():
    x = ml.Tensor(np.ones((100, 100), np.float32))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        F.dropout(x, p=1.5)
    assert F.dropout(x, 0.5, training=False) is x
    assert np.all(F.dropout(x, 1.0).data == 0.0)
    y = F.dropout(x, 0.25).data
    kept = y != 0
    assert np.allclose(y[kept], 1 / 0.75) and abs(kept.mean() - 0.75) < 0.02


def test_clamp_needs_a_bound():
    with pytest.raises(ValueError, match="min, max or both"):
        F.clamp(ml.Tensor([1.0]))


def test_axis_out_of_range():
    with pytest.raises(ValueError, match=r"^sum: axis 3 is out of bounds .* dimension 2"):
        ml.Tensor(np.ones((2, 2))).sum(axis=3)


def test_truth_value_of_a_tensor():
    assert bool(ml.Tensor([3.0]) > 1.0) and not bool(ml.Tensor(0.0))
    with pytest.raises(ValueError, match="ambiguous"):
        bool(ml.Tensor([0.0, 0.0]) == ml.Tensor([1.0, 1.0]))
    assert (ml.Tensor([1.0, 2.0]) == ml.Tensor([1.0, 2.0])).all().item()
    assert not (ml.Tensor([1.0, 2.0]) == ml.Tensor([1.0, 3.0])).all().item()


def test_var_without_degrees_of_freedom_is_an_error():
    with pytest.raises(ZeroDivisionError, match="correction=0"):
        ml.Tensor([1.0, 2.0]).var(correction=2)
