"""Low rank from the SVD, each claim a test: Eckart–Young in both norms on random and structured
matrices, optimality against other rank-k matrices, energy ranks on exact fractions, compression
that is exact at full rank and counts what it keeps, and singular-value fine-tuning that trains δ only."""

import copy

import numpy as np
import pytest

import minilora as ml
from minilora import backend, nn
from minilora.lora import count_parameters
from minilora.lora.analysis import energy_fraction
from minilora.lowrank import (
    FactoredLinear,
    SVDLinear,
    apply_svd_finetuning,
    compress_model,
    eckart_young_error,
    equal_budget_lora_rank,
    low_rank_approx,
    mean_loss,
    merge_svd,
    rank_for_energy,
    svd_layers,
    truncated_svd,
)
from tests.helpers import t64
from tests.helpers import tiny_gpt as gpt

RNG = np.random.default_rng(0)
IDX = RNG.integers(0, 11, size=(2, 6))


def orthogonal(n, seed):
    return np.linalg.qr(np.random.default_rng(seed).normal(size=(n, n)))[0]


def rank_r(m, n, r, seed):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(m, r)) @ rng.normal(size=(r, n))


MATRICES = {
    "square": np.random.default_rng(1).normal(size=(6, 6)),
    "tall": np.random.default_rng(2).normal(size=(9, 4)),
    "wide": np.random.default_rng(3).normal(size=(3, 8)),
    "exact rank 2": rank_r(7, 5, 2, 4),
    "rank-deficient wide": rank_r(4, 9, 3, 5),
    "identity": np.eye(5),
    "diagonal, repeated σ": np.diag([3.0, 3.0, 2.0, 2.0, 2.0, 1.0]),
    "rotated, repeated σ": orthogonal(6, 6) @ np.diag([3.0, 3.0, 2.0, 2.0, 2.0, 1.0]) @ orthogonal(6, 7).T,
    "zero column": np.hstack([np.random.default_rng(8).normal(size=(5, 3)), np.zeros((5, 1))]),
}


def out(model):
    with ml.no_grad():
        return model(IDX)[0].data.copy()


# ----------------------------------------------------------------------------
# truncated_svd and low_rank_approx


@pytest.mark.parametrize("name", MATRICES)
def test_truncated_svd_is_the_top_of_numpys_svd(name):
    W = MATRICES[name]
    U_np, S_np, Vh_np = np.linalg.svd(W, full_matrices=False)
    for k in range(1, min(W.shape) + 1):
        U, S, Vh = truncated_svd(W, k)
        assert U.shape == (W.shape[0], k) and S.shape == (k,) and Vh.shape == (k, W.shape[1])
        np.testing.assert_allclose(S, S_np[:k], rtol=0, atol=1e-12)
        np.testing.assert_allclose(U.T @ U, np.eye(k), rtol=0, atol=1e-12)
        np.testing.assert_allclose(Vh @ Vh.T, np.eye(k), rtol=0, atol=1e-12)
        expected = (U_np[:, :k] * S_np[:k]) @ Vh_np[:k]
        if k == min(W.shape) or S_np[k - 1] > S_np[k] + 1e-9:  # W_k is unique only past a gap
            np.testing.assert_allclose(low_rank_approx(W, k), expected, rtol=0, atol=1e-12)
        np.testing.assert_allclose((U * S) @ Vh, low_rank_approx(W, k), rtol=0, atol=1e-12)


def test_signs_follow_the_largest_entry_of_each_u():
    W = MATRICES["square"]
    U, S, Vh = truncated_svd(W, 6)
    rows = np.abs(U).argmax(axis=0)
    assert np.all(U[rows, np.arange(6)] > 0)
    U_np, _, Vh_np = np.linalg.svd(W)
    sign = np.sign(np.sum(U * U_np, axis=0))  # numpy's pair i, flipped or not
    np.testing.assert_allclose(U, U_np * sign, rtol=0, atol=1e-12)
    np.testing.assert_allclose(Vh, Vh_np * sign[:, None], rtol=0, atol=1e-12)  # u and v flip together


def test_signs_are_fixed_whatever_sign_lapack_returns():
    # -W has the pairs (u, -v) or (-u, v), whichever LAPACK picks; the convention keeps u.
    W = MATRICES["tall"]
    U, S, Vh = truncated_svd(W, 4)
    U_neg, S_neg, Vh_neg = truncated_svd(-W, 4)
    np.testing.assert_allclose(S_neg, S, rtol=0, atol=1e-12)
    np.testing.assert_allclose(U_neg, U, rtol=0, atol=1e-12)
    np.testing.assert_allclose(Vh_neg, -Vh, rtol=0, atol=1e-12)
    U_t, S_t, Vh_t = truncated_svd(W.T, 4)  # Wᵀ swaps the roles of u and v
    np.testing.assert_allclose(np.abs(np.sum(U_t * Vh.T, axis=0)), 1.0, rtol=0, atol=1e-12)


def test_inputs_tensors_lists_and_dtypes():
    W = MATRICES["wide"]
    for value in (ml.Tensor(W), W.tolist()):
        for a, b in zip(truncated_svd(value, 2), truncated_svd(W, 2)):
            np.testing.assert_array_equal(a, b)
    assert all(a.dtype == np.float32 for a in truncated_svd(W.astype(np.float32), 2))
    assert low_rank_approx(W.astype(np.float32), 2).dtype == np.float32
    assert low_rank_approx(np.arange(12).reshape(3, 4), 1).dtype == np.float64


@pytest.mark.parametrize(
    "W, k, error, words",
    [
        (np.ones(4), 1, ValueError, "2-D"),
        (np.ones((2, 3, 4)), 1, ValueError, "2-D"),
        (np.ones((3, 4)), 0, ValueError, "min(m, n) = 3"),
        (np.ones((3, 4)), 4, ValueError, "min(m, n) = 3"),
        (np.ones((3, 4)), 2.0, TypeError, "integer"),
        (np.ones((3, 4)), True, TypeError, "integer"),
        (np.array([[1.0, np.nan], [0.0, 1.0]]), 1, ValueError, "nan or inf"),
    ],
)
def test_truncated_svd_refuses_bad_input(W, k, error, words):
    with pytest.raises(error, match=words.replace("(", r"\(").replace(")", r"\)")):
        truncated_svd(W, k)
    assert truncated_svd(np.ones((3, 4)), np.int64(2))[1].shape == (2,)


# ----------------------------------------------------------------------------
# Eckart–Young


@pytest.mark.parametrize("name", MATRICES)
def test_eckart_young_errors_are_the_actual_norms(name):
    W = MATRICES[name]
    S = np.linalg.svd(W, compute_uv=False)
    for k in range(1, min(W.shape) + 1):
        residual = W - low_rank_approx(W, k)
        assert eckart_young_error(S, k, "fro") == pytest.approx(np.linalg.norm(residual, "fro"), rel=0, abs=1e-10)
        assert eckart_young_error(S, k, "spectral") == pytest.approx(np.linalg.norm(residual, 2), rel=0, abs=1e-10)
    assert eckart_young_error(S, 0) == pytest.approx(np.linalg.norm(W), rel=0, abs=1e-12)
    assert eckart_young_error(S, len(S), "spectral") == 0.0


def test_eckart_young_closed_forms_on_structured_matrices():
    S = np.linalg.svd(np.eye(5), compute_uv=False)
    assert [eckart_young_error(S, k) for k in range(6)] == pytest.approx([np.sqrt(5 - k) for k in range(6)], abs=1e-12)
    assert [eckart_young_error(S, k, "spectral") for k in range(6)] == pytest.approx([1, 1, 1, 1, 1, 0], abs=1e-12)
    S = np.array([3.0, 3.0, 2.0, 2.0, 2.0, 1.0])
    assert eckart_young_error(S, 1) == pytest.approx(np.sqrt(9 + 12 + 1), abs=1e-12)
    assert eckart_young_error(S, 1, "spectral") == 3.0  # a tie: the second 3 is what is left out
    assert eckart_young_error(np.linalg.svd(rank_r(7, 5, 2, 4), compute_uv=False), 2) < 1e-12


@pytest.mark.parametrize("k", [1, 2, 3])
def test_no_other_rank_k_matrix_is_closer(k):
    rng = np.random.default_rng(10 + k)
    W = rng.normal(size=(6, 5))
    S = np.linalg.svd(W, compute_uv=False)
    candidates = []
    for _ in range(40):
        Q = np.linalg.qr(rng.normal(size=(6, k)))[0]
        candidates += [rng.normal(size=(6, k)) @ rng.normal(size=(k, 5)), Q @ (Q.T @ W)]  # best with that column space
    for eps in (1e-4, 1e-2, 1e-1):
        candidates += [low_rank_approx(W + eps * rng.normal(size=W.shape), k) for _ in range(10)]
    U, _, Vh = np.linalg.svd(W)
    candidates.append((U[:, 1 : k + 1] * S[1 : k + 1]) @ Vh[1 : k + 1])  # the wrong k directions
    for norm, order in (("fro", "fro"), ("spectral", 2)):
        best = eckart_young_error(S, k, norm)
        gaps = [np.linalg.norm(W - B, order) - best for B in candidates]
        assert min(gaps) > -1e-12, norm
        assert 0 < min(gaps) < 1e-3  # the perturbed truncations really come close


def test_eckart_young_error_refuses_bad_input():
    with pytest.raises(ValueError, match="'fro'"):
        eckart_young_error([2.0, 1.0], 1, norm="nuc")
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        eckart_young_error([2.0, 1.0], 3)
    with pytest.raises(ValueError, match=r"\[0, 2\]"):
        eckart_young_error([2.0, 1.0], -1)
    for bad in ([1.0, 2.0], [2.0, -1.0], [[2.0, 1.0]], [], [np.inf, 1.0]):
        with pytest.raises(ValueError, match="singular values"):
            eckart_young_error(bad, 1)


# ----------------------------------------------------------------------------
# rank_for_energy


def test_rank_for_energy_on_exact_fractions():
    S = np.array([2.0, 1.0, 1.0, 1.0, 1.0])  # energies 4, 1, 1, 1, 1 of 8: shares 1/2, 5/8, 3/4, 7/8, 1, all exact
    assert [rank_for_energy(S, f) for f in (0.1, 0.5, 0.625, 0.75, 0.875, 1.0)] == [1, 1, 2, 3, 4, 5]
    assert rank_for_energy(S, np.nextafter(0.5, 1.0)) == 2  # ≥ at the boundary, and not a hair beyond it
    assert rank_for_energy(S, np.nextafter(0.75, 0.0)) == 3
    ties = np.ones(4)  # four equal directions: every share is a quarter
    assert [rank_for_energy(ties, f) for f in (0.25, np.nextafter(0.25, 1.0), 0.5, 0.75, 1.0)] == [1, 2, 2, 3, 4]


@pytest.mark.parametrize("name", MATRICES)
def test_full_energy_is_the_numerical_rank(name):
    W = MATRICES[name]
    assert rank_for_energy(np.linalg.svd(W, compute_uv=False), 1.0) == np.linalg.matrix_rank(W)


def test_full_energy_never_asks_for_more_than_every_direction():
    # numpy's pairwise sum and a running sum can round apart; E(len(S)) must still be exactly 1.
    rng = np.random.default_rng(0)
    for _ in range(200):
        S = np.sort(rng.exponential(size=int(rng.integers(2, 60))))[::-1]
        assert rank_for_energy(S, 1.0) <= len(S)


def test_rank_for_energy_agrees_with_energy_fraction():
    rng = np.random.default_rng(3)
    for _ in range(20):
        S = np.sort(rng.exponential(size=8))[::-1]
        for f in rng.uniform(0.01, 1.0, size=10):
            k = rank_for_energy(S, f)
            assert energy_fraction(S, k) >= f and (k == 1 or energy_fraction(S, k - 1) < f)


@pytest.mark.parametrize("fraction", [0.0, -0.1, 1.5, np.nan, "0.9", True])
def test_rank_for_energy_refuses_bad_fractions(fraction):
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        rank_for_energy([2.0, 1.0], fraction)


def test_rank_for_energy_refuses_a_zero_matrix():
    with pytest.raises(ValueError, match="no energy"):
        rank_for_energy(np.zeros(3), 0.5)


# ----------------------------------------------------------------------------
# FactoredLinear and compress_model


def test_factored_linear_computes_the_truncated_layer():
    base = nn.Linear(7, 5).double()
    x = t64((3, 4, 7), requires_grad=False)
    for k in (1, 3, 5):
        layer = FactoredLinear.from_linear(base, k)
        assert layer.U.shape == (5, k) and layer.SV.shape == (k, 7)
        W_k = low_rank_approx(base.weight.data, k)
        np.testing.assert_allclose(layer.merged_weight(), W_k, rtol=0, atol=1e-12)
        np.testing.assert_allclose(layer(x).data, x.data @ W_k.T + base.bias.data, rtol=0, atol=1e-12)
    np.testing.assert_allclose(layer(x).data, base(x).data, rtol=0, atol=1e-10)  # k = 5 = min(in, out)
    assert FactoredLinear.from_linear(nn.Linear(7, 5), 2)(ml.Tensor(np.ones((2, 7), np.float32))).dtype == np.float32
    assert ml.gradcheck(lambda x, u, sv: layer(x), [t64((2, 7)), layer.U, layer.SV])
    with pytest.raises(ValueError, match=r"\[1, 5\]"):
        FactoredLinear.from_linear(base, 6)


def test_full_rank_compression_keeps_outputs_to_1e_10():
    model = gpt()
    before = out(model)
    report = compress_model(model, rank=8, skip_unprofitable=False)
    assert not report.skipped and all(r.replaced for r in report.layers)
    assert sum(isinstance(m, FactoredLinear) for m in model.modules()) == 12  # every Linear but lm_head
    np.testing.assert_allclose(out(model), before, rtol=0, atol=1e-10)


def test_unprofitable_layers_are_skipped_and_reported():
    model = gpt()
    report = compress_model(model, rank=4)  # 8×8: 4·16 = 64 ≥ 64, not smaller; 32×8: 4·40 < 256
    assert report.skipped == [f"blocks.{i}.attn.{p}_proj" for i in range(2) for p in "qkvo"]
    assert all(type(model.get_submodule(n)) is nn.Linear for n in report.skipped)
    assert all(isinstance(model.get_submodule(f"blocks.{i}.mlp.{n}"), FactoredLinear) for i in range(2) for n in ("fc_in", "fc_out"))
    untouched = gpt()
    before = out(untouched)
    assert len(compress_model(untouched, rank=8).skipped) == 12
    np.testing.assert_array_equal(out(untouched), before)


def test_reported_counts_are_the_actual_parameters():
    model = gpt()
    old = {n: m for n, m in model.named_modules() if type(m) is nn.Linear}
    total_before = count_parameters(model)[0]
    report = compress_model(model, rank=3)
    for row in report.layers:
        new = model.get_submodule(row.name)
        assert row.params_before == sum(p.size for p in old[row.name].parameters())
        assert row.params_after == sum(p.size for p in new.parameters())
        assert row.flops_before == old[row.name].weight.size  # one multiply–add per weight per token
        assert row.flops_after == new.U.size + new.SV.size
    assert (report.model_params_before, report.model_params_after) == (total_before, count_parameters(model)[0])
    assert report.model_params_before - report.model_params_after == report.params_before - report.params_after > 0
    assert report.flops_after == sum(r.rank * sum(r.shape) for r in report.layers) < report.flops_before
    assert "| total |" in report.table() and str(report.params_after) in report.table()


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.99])
def test_energy_mode_keeps_at_least_that_share_in_every_layer(fraction):
    model = gpt()
    weights = {n: m.weight.data.copy() for n, m in model.named_modules() if type(m) is nn.Linear}
    report = compress_model(model, energy=fraction, skip_unprofitable=False)
    for row in report.layers:
        W, W_k = weights[row.name], model.get_submodule(row.name).merged_weight()
        kept = np.sum(W_k**2) / np.sum(W**2)  # ‖W_k‖²_F / ‖W‖²_F = Σ_{i≤k} σᵢ² / Σ σᵢ²
        assert kept >= fraction and row.energy == pytest.approx(kept, abs=1e-12)
        S = np.linalg.svd(W, compute_uv=False)
        assert row.rank == 1 or np.sum(S[: row.rank - 1] ** 2) / np.sum(S**2) < fraction  # the smallest such k
        assert row.error == pytest.approx(np.linalg.norm(W - W_k) / np.linalg.norm(W), abs=1e-12)


def test_eval_batches_give_the_loss_before_and_after():
    model = gpt()
    batches = [(IDX, np.roll(IDX, -1, axis=1)), (IDX[::-1], IDX)]
    original = copy.deepcopy(model)
    report = compress_model(model, rank=2, eval_batches=batches)
    direct = np.mean([original(x, y)[1].item() for x, y in batches])
    assert report.loss_before == pytest.approx(direct, abs=1e-12)
    assert report.loss_after == pytest.approx(mean_loss(model, batches), abs=1e-12)
    assert report.loss_after != pytest.approx(report.loss_before, abs=1e-6)
    exact = compress_model(original, rank=8, skip_unprofitable=False, eval_batches=batches)
    assert exact.loss_after == pytest.approx(exact.loss_before, abs=1e-10)


@pytest.mark.parametrize(
    "kwargs, error, words",
    [
        ({}, ValueError, "exactly one"),
        ({"rank": 2, "energy": 0.9}, ValueError, "exactly one"),
        ({"rank": 0}, ValueError, r"\[1, 8\]"),
        ({"rank": 9}, ValueError, "blocks.0.attn.q_proj is 8×8"),
        ({"rank": 2.5}, TypeError, "integer"),
        ({"energy": 1.5}, ValueError, r"\(0, 1\]"),
        ({"rank": 2, "target_modules": ["qq_proj"]}, ValueError, "'qq_proj' matches no module.*blocks.0.mlp.fc_in, "),
        ({"rank": 2, "target_modules": r"blocks\.9\..*"}, ValueError, "Linear layers can be factored"),
        ({"rank": 2, "target_modules": ["tok_emb"]}, TypeError, r"tok_emb \(Embedding\).*blocks.1.mlp.fc_out"),
        ({"rank": 2, "target_modules": ["ln1"]}, TypeError, "LayerNorm.*nn.Linear"),
    ],
)
def test_compress_model_refuses_bad_requests_and_changes_nothing(kwargs, error, words):
    model = gpt()
    before = out(model)
    with pytest.raises(error, match=words):
        compress_model(model, **kwargs)
    assert not any(isinstance(m, FactoredLinear) for m in model.modules())
    np.testing.assert_array_equal(out(model), before)


def test_a_rank_too_large_for_a_later_layer_replaces_none():
    model = nn.Sequential(nn.Linear(16, 4), nn.Linear(4, 3))
    with pytest.raises(ValueError, match="1 is 3×4"):
        compress_model(model, rank=4, target_modules=["0", "1"], skip_unprofitable=False)
    assert all(type(m) is nn.Linear for m in model)


# ----------------------------------------------------------------------------
# SVDLinear and singular-value fine-tuning


@pytest.mark.parametrize("shape", [(5, 5), (7, 3), (3, 7)])
@pytest.mark.parametrize("bias", [True, False])
def test_svd_linear_starts_as_the_base_layer(shape, bias):
    base = nn.Linear(shape[1], shape[0], bias=bias).double()
    layer = SVDLinear(base)
    x = t64((2, 4, shape[1]), requires_grad=False)
    assert layer.rank == min(shape) and not np.any(layer.delta.data)
    np.testing.assert_allclose(layer(x).data, base(x).data, rtol=0, atol=1e-10)
    np.testing.assert_allclose(layer.merged_weight(), base.weight.data, rtol=0, atol=1e-10)
    truncated = SVDLinear(base, rank=2)
    np.testing.assert_allclose(truncated.merged_weight(), low_rank_approx(base.weight.data, 2), rtol=0, atol=1e-12)


def test_only_delta_gets_gradients_and_its_closed_form():
    layer = SVDLinear(nn.Linear(6, 4).double(), rank=3)
    layer.delta.data = np.array([0.3, -0.2, 0.5])
    x, G = t64((10, 6), requires_grad=False), np.random.default_rng(1).normal(size=(10, 4))
    layer(x).backward(G)
    assert all(p.grad is None for p in (layer.U, layer.S, layer.Vh, layer.bias))
    expected = np.sum((x.data @ layer.Vh.data.T) * (G @ layer.U.data), axis=0)  # Σ_n (v_iᵀx_n)(u_iᵀg_n), Eq. (10)
    np.testing.assert_allclose(layer.delta.grad, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("rank", [None, 2])
def test_svd_linear_passes_gradcheck_in_delta_and_x(rank):
    layer = SVDLinear(nn.Linear(5, 4).double(), rank=rank)
    layer.delta.data = np.random.default_rng(2).normal(size=layer.rank)
    assert ml.gradcheck(lambda x, delta: layer(x), [t64((2, 3, 5)), layer.delta])


def test_one_training_step_changes_only_delta():
    ml.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 6), nn.Linear(6, 3)).double()
    apply_svd_finetuning(model, target_modules=["0", "1"])
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    rng = np.random.default_rng(3)
    x, y = ml.Tensor(rng.normal(size=(16, 4))), ml.Tensor(rng.normal(size=(16, 3)))
    loss = lambda: ((model(x) - y) ** 2).mean()  # noqa: E731
    first = loss()
    first.backward()
    grads = {n: p.grad.copy() for n, p in model.named_parameters() if p.grad is not None}
    assert sorted(grads) == ["0.delta", "1.delta"]
    ml.optim.SGD(model.parameters(), lr=0.1).step()
    for n, p in model.named_parameters():
        if n.endswith("delta"):
            np.testing.assert_allclose(p.data, before[n] - 0.1 * grads[n], rtol=0, atol=1e-15)
            assert np.abs(p.data - before[n]).max() > 1e-4
        else:
            np.testing.assert_array_equal(p.data, before[n])
    assert loss().item() < first.item()


def test_apply_svd_finetuning_on_gpt():
    model = gpt()
    before = out(model)
    apply_svd_finetuning(model)
    layers = svd_layers(model)
    assert len(layers) == 12
    np.testing.assert_allclose(out(model), before, rtol=0, atol=1e-10)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable == [f"{n}.delta" for n, _ in layers]
    total, n_trainable, _ = count_parameters(model)
    assert n_trainable == sum(min(m.in_features, m.out_features) for _, m in layers) == 12 * 8
    assert total == sum(p.size for p in model.parameters())
    assert {"blocks.0.attn.q_proj.U", "blocks.0.attn.q_proj.S", "blocks.0.attn.q_proj.Vh"} <= set(model.state_dict())
    model(IDX, np.roll(IDX, -1, axis=1))[1].backward()
    assert [n for n, p in model.named_parameters() if p.grad is not None] == trainable
    with pytest.raises(ValueError, match="already has SVDLinear"):
        apply_svd_finetuning(model)


def test_bias_training_and_rank_errors():
    model = gpt()
    apply_svd_finetuning(model, target_modules=["fc_in"], rank=3, train_bias=True)
    assert [n for n, p in model.named_parameters() if p.requires_grad] == [
        f"blocks.{i}.mlp.fc_in.{p}" for i in range(2) for p in ("delta", "bias")
    ]
    with pytest.raises(ValueError, match="blocks.0.attn.q_proj: .*8×8"):
        apply_svd_finetuning(gpt(), rank=9)
    with pytest.raises(TypeError, match="nn.Linear"):
        SVDLinear(nn.Embedding(3, 4))


def test_merging_gives_a_plain_linear_with_the_same_outputs():
    model = gpt()
    apply_svd_finetuning(model)
    for _, layer in svd_layers(model):
        layer.delta.data = np.random.default_rng(4).normal(scale=0.5, size=layer.rank)
    tuned = out(model)
    assert np.abs(tuned - out(gpt())).max() > 1e-3  # δ really changes the function
    state = backend.get_rng_state()
    merge_svd(model)
    assert backend.get_rng_state() == state  # building the Linear layers drew no random numbers
    assert not svd_layers(model) and sum(type(m) is nn.Linear for m in model.modules()) == 13
    np.testing.assert_allclose(out(model), tuned, rtol=0, atol=1e-10)


def test_float32_stays_float32():
    layer = SVDLinear(nn.Linear(6, 4))
    assert all(p.dtype == np.float32 for p in layer.parameters())
    y = layer(ml.Tensor(np.ones((2, 6), np.float32)))
    y.sum().backward()
    assert y.dtype == np.float32 and layer.delta.grad.dtype == np.float32


# ----------------------------------------------------------------------------
# Equal budgets against LoRA


def test_equal_budget_lora_rank():
    d = 64
    assert equal_budget_lora_rank((d, d), d) == 0  # δ of a d×d layer: d numbers; LoRA r = 1 needs 2d
    assert equal_budget_lora_rank((d, d), 2 * d) == 1
    assert equal_budget_lora_rank([(d, d)] * 4, 4 * d) == 0
    assert equal_budget_lora_rank([(8, 32), (32, 8)], 12 * 8) == 1  # GPT MLP pair: 96 = δ on 12 layers of width 8
    rng = np.random.default_rng(5)
    for _ in range(50):
        shapes = [tuple(rng.integers(1, 50, size=2)) for _ in range(rng.integers(1, 4))]
        budget = int(rng.integers(0, 2000))
        r = equal_budget_lora_rank(shapes, budget)
        per_rank = sum(o + i for o, i in shapes)
        assert r * per_rank <= budget < (r + 1) * per_rank
    with pytest.raises(ValueError, match=r"\[0, "):
        equal_budget_lora_rank((4, 4), -1)
    with pytest.raises(ValueError, match="pairs"):
        equal_budget_lora_rank([(4, 0)], 10)
