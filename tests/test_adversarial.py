"""FGSM, PGD and adversarial training checked against their definitions (docs/adversarial.md)."""

import numpy as np
import pytest

import minilora as ml
import minilora.adversarial as adv
from minilora.experiments import robustness
from minilora.models import ClassifierConfig, TextClassifier
from minilora.nn import evaluating
from minilora.train import TrainConfig
from minilora.train.classify import Split, accuracy, sentiment_splits, train_classifier

V, T = 30, 10


def classifier(encoder="transformer", dropout=0.0, dtype="float64"):
    ml.manual_seed(0)
    config = ClassifierConfig(vocab_size=V, block_size=T, encoder=encoder, n_layer=2, n_head=2, n_embd=16, dropout=dropout)
    return TextClassifier(config).to_dtype(dtype)


def batch(B=64, seed=0):
    """Token ids, labels and a right-padding mask with lengths 3..T."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, T + 1, B)
    lengths[0] = 4  # at least one example with padding
    mask = np.arange(T)[None, :] < lengths[:, None]
    return rng.integers(1, V, (B, T)) * mask, rng.integers(0, 2, B), mask


def loss_at(model, idx, y, mask, delta):
    """L(e + δ), the mean cross-entropy with the model in eval mode."""
    with evaluating(model):
        return model(targets=y, mask=mask, inputs_embeds=model.embed(idx).data + adv._array(delta))[1].item()


def input_gradient(model, idx, y, mask):
    """∇_e L computed the plain way, with the parameters left trainable (independent of the attacks)."""
    emb = ml.Tensor(model.embed(idx).data.copy(), requires_grad=True)
    model.eval()
    _, loss = model(targets=y, mask=mask, inputs_embeds=emb)
    loss.backward()
    model.zero_grad()
    return emb.grad


# ----------------------------------------------------------------------------
# The classifier runs from embeddings


def test_inputs_embeds_is_the_same_forward_as_token_ids():
    model = classifier()
    idx, y, mask = batch()
    logits, loss = model(idx, y, mask)
    logits_e, loss_e = model(targets=y, mask=mask, inputs_embeds=model.embed(idx))
    np.testing.assert_array_equal(logits.data, logits_e.data)
    assert loss.item() == loss_e.item()
    with pytest.raises(ValueError, match="exactly one of idx"):
        model(idx, inputs_embeds=model.embed(idx))
    with pytest.raises(ValueError, match="exactly one of idx"):
        model(targets=y)
    with pytest.raises(ValueError, match=r"shape \(B, T, 16\)"):
        model(inputs_embeds=np.zeros((2, 3, 5)))
    with pytest.raises(ValueError, match=r"idx must have shape \(B, T\)"):
        model(np.array([1, 2, 3]))


def test_the_input_gradient_matches_finite_differences():
    model = classifier()
    idx, y, mask = batch(B=3)
    emb = ml.Tensor(model.embed(idx).data.copy(), requires_grad=True)
    assert ml.gradcheck(lambda e: model(targets=y, mask=mask, inputs_embeds=e)[1], [emb])


# ----------------------------------------------------------------------------
# Norms, steepest directions and projection on known vectors


def test_project_linf_clips_each_entry():
    delta = np.array([[3.0, -0.5, 2.0], [0.2, -7.0, 0.0]])
    np.testing.assert_array_equal(adv.project(delta, 1.0, "linf"), [[1.0, -0.5, 1.0], [0.2, -1.0, 0.0]])


def test_project_l2_rescales_each_example_outside_the_ball_only():
    delta = np.array([[3.0, 4.0], [0.3, 0.4], [0.0, 0.0], [-6.0, 8.0]])
    expected = [[0.6, 0.8], [0.3, 0.4], [0.0, 0.0], [-0.6, 0.8]]
    np.testing.assert_allclose(adv.project(delta, 1.0, "l2"), expected, rtol=1e-15)
    cube = np.ones((2, 2, 2))  # each example: 4 entries of 1, norm 2
    cube[1] *= 0.1  # norm 0.2: inside
    np.testing.assert_allclose(adv.project(cube, 1.0, "l2"), np.concatenate([np.full((1, 2, 2), 0.5), cube[1:]]), rtol=1e-15)
    for norm in adv.NORMS:  # a radius of 0 sends everything to 0, without nan
        assert np.array_equal(adv.project(delta, 0.0, norm), np.zeros_like(delta))


def test_project_is_the_nearest_point_of_the_ball_and_idempotent():
    rng = np.random.default_rng(1)
    points = rng.normal(size=(50, 3)) * 2.0
    for norm, order in (("linf", np.inf), ("l2", 2)):
        proj = adv.project(points, 1.0, norm)
        assert np.all(np.linalg.norm(proj, ord=order, axis=1) <= 1.0 + 1e-12)
        np.testing.assert_allclose(adv.project(proj, 1.0, norm), proj, rtol=1e-15)
        candidates = adv.project(rng.uniform(-1, 1, size=(2000, 3)), 1.0, norm)  # other points of the ball
        for p, q in zip(points, proj):
            assert np.linalg.norm(p - q) <= np.linalg.norm(p - candidates, axis=1).min() + 1e-12


def test_project_keeps_type_and_float32():
    delta = ml.Tensor(np.array([[3.0, 4.0]], np.float32))
    for norm in adv.NORMS:
        out = adv.project(delta, 1.0, norm)
        assert isinstance(out, ml.Tensor) and out.dtype == np.float32
        assert adv.project(delta.data, 1.0, norm).dtype == np.float32


def test_steepest_direction_attains_the_dual_norm():
    """⟨g, u⟩ = ‖g‖₁ for L∞ and ‖g‖₂ for L2 (Eq. 2), and no unit vector does better."""
    rng = np.random.default_rng(2)
    g = rng.normal(size=(4, 5, 3))
    g[3] = 0.0  # a zero gradient
    u_inf = adv.steepest_direction(g, "linf")
    u_2 = adv.steepest_direction(g, "l2")
    assert np.array_equal(u_inf, np.sign(g)) and np.all(np.isfinite(u_2)) and not u_2[3].any()
    np.testing.assert_allclose((g * u_inf).sum(axis=(1, 2)), np.abs(g).sum(axis=(1, 2)), rtol=1e-13)
    np.testing.assert_allclose((g * u_2).sum(axis=(1, 2)), np.sqrt((g * g).sum(axis=(1, 2))), rtol=1e-13)
    np.testing.assert_allclose(adv.example_norm(u_2[:3], "l2").ravel(), 1.0, rtol=1e-13)
    others = rng.normal(size=(500, 5, 3))
    for u, norm in ((u_inf, "linf"), (u_2, "l2")):
        best = (g[0] * u[0]).sum()
        scaled = others / adv.example_norm(others, norm)  # random points on the unit sphere of the norm
        assert np.all((scaled * g[0]).sum(axis=(1, 2)) <= best + 1e-12)


# ----------------------------------------------------------------------------
# FGSM against its definition


@pytest.mark.parametrize("norm", adv.NORMS)
def test_fgsm_closed_form_on_a_bag_of_embeddings(norm):
    """For the "mean" encoder, logits = W·mean_t(e_t) + b, so ∇_{e_t} L = Wᵀ(p − y)/(B·n_b) on real tokens."""
    model = classifier("mean")
    idx, y, mask = batch(B=8)
    with evaluating(model):
        logits, _ = model(idx, mask=mask)
    p = np.exp(logits.data - logits.data.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    v = (p - np.eye(2)[y]) @ model.head.weight.data  # (B, C): Wᵀ(p − y) per example
    n = mask.sum(axis=1)
    eps = 0.3
    if norm == "linf":
        expected = eps * np.sign(v)[:, None, :] * mask[:, :, None]
    else:  # the same vector on each of n_b tokens: its norm is ‖v‖·√n_b
        expected = eps * (v / (np.linalg.norm(v, axis=1) * np.sqrt(n))[:, None])[:, None, :] * mask[:, :, None]
    delta = adv.fgsm(model, idx, y, eps, norm, mask)
    assert isinstance(delta, ml.Tensor) and not delta.requires_grad and delta.shape == (8, T, 16)
    np.testing.assert_allclose(delta.data, expected, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("norm", adv.NORMS)
def test_fgsm_is_eps_times_the_steepest_step_of_the_true_gradient(norm):
    model = classifier()
    idx, y, mask = batch()
    g = input_gradient(model, idx, y, mask)
    delta = adv.fgsm(model, idx, y, 0.05, norm, mask).data
    if norm == "linf":
        np.testing.assert_array_equal(delta, 0.05 * np.sign(g) * mask[:, :, None])
    else:
        per_example = np.sqrt((g * g).sum(axis=(1, 2), keepdims=True))
        np.testing.assert_allclose(delta, 0.05 * g / per_example, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(adv.example_norm(delta, norm).ravel(), 0.05, rtol=1e-12)


@pytest.mark.parametrize("norm", adv.NORMS)
def test_a_zero_gradient_gives_a_zero_perturbation_not_nan(norm):
    model = classifier()
    model.head.weight.data[:] = 0.0  # logits = bias: the loss no longer depends on the input
    idx, y, mask = batch(B=4)
    for delta in (adv.fgsm(model, idx, y, 0.1, norm, mask), adv.pgd(model, idx, y, 0.1, norm=norm, mask=mask, steps=3)):
        assert np.all(np.isfinite(delta.data)) and not delta.data.any()


# ----------------------------------------------------------------------------
# PGD against its definition


@pytest.mark.parametrize("random_start", [False, True])
@pytest.mark.parametrize("norm", adv.NORMS)
def test_every_perturbation_stays_in_the_ball_per_example(norm, random_start):
    model = classifier()
    idx, y, mask = batch()
    deltas = [adv.pgd(model, idx, y, 0.2, norm=norm, steps=4, alpha=0.15, random_start=random_start, mask=mask)]
    deltas.append(adv.fgsm(model, idx, y, 0.2, norm, mask))
    for delta in deltas:
        assert np.all(adv.example_norm(delta, norm) <= 0.2 * (1 + 1e-12))


def test_random_start_is_uniform_in_the_ball_and_seeded():
    real = np.ones((4000, 1, 1))
    r = np.linalg.norm(adv.uniform_in_ball((4000, 1, 2), 1.0, "l2", real, np.random.default_rng(0)), axis=2).ravel()
    # Uniform in a disc: P(r <= s) = s², so the mean radius is 2/3 and half the points lie within 1/√2.
    assert r.max() <= 1.0 and abs(r.mean() - 2 / 3) < 0.01 and abs((r <= 2**-0.5).mean() - 0.5) < 0.025
    box = adv.uniform_in_ball((4000, 1, 2), 0.5, "linf", real, np.random.default_rng(0))
    assert np.abs(box).max() <= 0.5 and abs(box.mean()) < 0.01 and abs(box.var() - 0.25 / 3) < 0.003
    model = classifier()
    idx, y, mask = batch(B=8)
    run = [adv.pgd(model, idx, y, 0.1, steps=2, random_start=True, mask=mask, generator=np.random.default_rng(5)).data for _ in range(2)]
    np.testing.assert_array_equal(run[0], run[1])


@pytest.mark.parametrize("norm", adv.NORMS)
def test_one_pgd_step_of_size_eps_from_zero_is_fgsm(norm):
    model = classifier()
    idx, y, mask = batch()
    one_step = adv.pgd(model, idx, y, 0.1, alpha=0.1, steps=1, norm=norm, mask=mask)
    np.testing.assert_allclose(one_step.data, adv.fgsm(model, idx, y, 0.1, norm, mask).data, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("norm, eps", [("linf", 0.04), ("l2", 0.16)])
def test_multi_step_pgd_finds_a_higher_loss_than_fgsm(norm, eps):
    model = classifier()
    idx, y, mask = batch()
    clean = loss_at(model, idx, y, mask, 0.0)
    one = loss_at(model, idx, y, mask, adv.fgsm(model, idx, y, eps, norm, mask))
    many = loss_at(model, idx, y, mask, adv.pgd(model, idx, y, eps, steps=10, norm=norm, mask=mask))
    assert clean < one < many


# ----------------------------------------------------------------------------
# Padding, and what an attack must leave alone


@pytest.mark.parametrize("norm", adv.NORMS)
def test_padding_is_never_perturbed_and_not_counted_in_the_norm(norm):
    model = classifier()
    idx, y, mask = batch()
    padding = ~mask[:, :, None]
    deltas = [
        adv.fgsm(model, idx, y, 0.1, norm, mask),
        adv.pgd(model, idx, y, 0.1, norm=norm, steps=3, random_start=True, mask=mask),
    ]
    for delta in deltas:
        assert not (delta.data * padding).any()
    np.testing.assert_allclose(adv.example_norm(deltas[0], norm).ravel(), 0.1, rtol=1e-12)
    # Without a mask every position counts as a word, and the same positions do get perturbed.
    assert (adv.fgsm(model, idx, y, 0.1, norm).data * padding).any()


class SeesPadding(ml.nn.Module):
    """Logits from the sum of *all* embeddings, padding included: its loss has a gradient at padding."""

    def __init__(self):
        super().__init__()
        self.tok_emb = ml.nn.Embedding(V, 4)
        self.head = ml.nn.Linear(4, 2)

    def embed(self, idx):
        return self.tok_emb(idx)

    def forward(self, idx=None, targets=None, mask=None, inputs_embeds=None):
        logits = self.head(inputs_embeds.sum(axis=1))
        return logits, ml.nn.functional.cross_entropy(logits, targets)


@pytest.mark.parametrize("norm", adv.NORMS)
def test_the_attack_masks_padding_even_where_the_model_would_use_it(norm):
    model = SeesPadding()
    idx, y, mask = batch(B=8)
    padding = ~mask[:, :, None]
    unmasked = adv.fgsm(model, idx, y, 0.1, norm).data
    assert np.all(unmasked[~mask] != 0)  # this model's gradient is not zero at padding
    for delta in (adv.fgsm(model, idx, y, 0.1, norm, mask), adv.pgd(model, idx, y, 0.1, norm=norm, steps=3, mask=mask)):
        assert not (delta.data * padding).any()
        np.testing.assert_allclose(adv.example_norm(delta, norm).ravel(), 0.1, rtol=1e-6)  # float32 model


def test_an_attack_leaves_weights_grads_flags_and_mode_alone():
    model = classifier(dropout=0.5)  # train mode with active dropout
    idx, y, mask = batch(B=16)
    _, loss = model(idx, y, mask)
    loss.backward()
    model.head.bias.requires_grad_(False)
    before = {n: (p.data.copy(), p.grad.copy(), p.grad, p.requires_grad) for n, p in model.named_parameters()}
    first = adv.fgsm(model, idx, y, 0.1, "l2", mask).data
    adv.pgd(model, idx, y, 0.1, steps=2, random_start=True, mask=mask)
    adv.accuracy_under_attack(model, Split(idx, y, mask), [0.0, 0.5], "fgsm")
    for name, p in model.named_parameters():
        data, grad, grad_object, flag = before[name]
        assert np.array_equal(p.data, data) and p.grad is grad_object and np.array_equal(p.grad, grad), name
        assert p.requires_grad == flag, name
    assert model.training and model.drop.training
    # The attack sees the model as it predicts: dropout off, so it is deterministic and equals eval mode.
    np.testing.assert_array_equal(adv.fgsm(model, idx, y, 0.1, "l2", mask).data, first)
    model.eval()
    np.testing.assert_array_equal(adv.fgsm(model, idx, y, 0.1, "l2", mask).data, first)
    assert not model.training
    with ml.no_grad():  # attacks need a gradient, so they switch it on for themselves
        np.testing.assert_array_equal(adv.fgsm(model, idx, y, 0.1, "l2", mask).data, first)


def test_attacks_and_the_training_loss_stay_on_the_device():
    """On the fake device (CuPy's rules on the CPU): no host read-back, and numpy's results."""
    from minilora import backend

    idx, y, mask = batch(B=8)
    results = {}
    for device in ("numpy", "fake"):
        model = classifier(dtype="float32").to(device)
        put = backend.module_for(device).asarray
        args = (model, put(idx), put(y))
        with backend.no_host_transfers():
            deltas = [
                adv.fgsm(*args, 0.1, "l2", put(mask)),
                adv.pgd(*args, 0.1, norm="linf", steps=2, random_start=True, mask=put(mask), generator=np.random.default_rng(0)),
                adv.pgd(*args, 0.1, norm="l2", steps=2, random_start=True, mask=put(mask), generator=np.random.default_rng(0)),
            ]
            _, loss = adv.adversarial_loss(*args, 0.1, put(mask), norm="l2")
            loss.backward()
        results[device] = [backend.to_numpy(d.data) for d in deltas] + [backend.to_numpy(model.head.weight.grad)]
    for a, b in zip(results["numpy"], results["fake"]):
        np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------
# Adversarial training


def test_adversarial_loss_mixes_clean_and_adversarial_with_delta_constant():
    model = classifier()
    idx, y, mask = batch(B=16)
    mix, eps = 0.3, 0.1
    delta = adv.fgsm(model, idx, y, eps, "l2", mask).data  # what adversarial_loss will use
    _, loss = adv.adversarial_loss(model, idx, y, eps, mask, norm="l2", mix=mix)
    loss.backward()
    got = {n: p.grad.copy() for n, p in model.named_parameters()}
    model.zero_grad()
    emb = model.embed(idx)
    _, clean = model(targets=y, mask=mask, inputs_embeds=emb)
    _, attacked = model(targets=y, mask=mask, inputs_embeds=emb + ml.Tensor(delta))  # δ a constant
    manual = clean * (1 - mix) + attacked * mix
    np.testing.assert_allclose(loss.item(), manual.item(), rtol=1e-13)
    np.testing.assert_allclose(loss.item(), (1 - mix) * loss_at(model, idx, y, mask, 0.0) + mix * loss_at(model, idx, y, mask, delta), rtol=1e-13)
    manual.backward()
    for name, p in model.named_parameters():
        np.testing.assert_allclose(got[name], p.grad, rtol=1e-11, atol=1e-15, err_msg=name)
    _, only_clean = adv.adversarial_loss(model, idx, y, eps, mask, norm="l2", mix=0.0)
    _, only_attacked = adv.adversarial_loss(model, idx, y, eps, mask, norm="l2", mix=1.0)
    np.testing.assert_allclose(only_clean.item(), loss_at(model, idx, y, mask, 0.0), rtol=1e-13)
    np.testing.assert_allclose(only_attacked.item(), loss_at(model, idx, y, mask, delta), rtol=1e-13)


def test_an_adversarial_training_step_stays_float32():
    model = classifier(dtype="float32")
    idx, y, mask = batch(B=8)
    logits, loss = adv.adversarial_loss(model, idx, y, 0.1, mask, norm="linf", attack="pgd", steps=2)
    loss.backward()
    assert logits.dtype == loss.dtype == np.float32
    assert all(p.grad.dtype == np.float32 for p in model.parameters())
    assert adv.fgsm(model, idx, y, 0.1, "l2", mask).dtype == np.float32


def test_embedding_rms_is_over_real_tokens_and_the_warmup_ramps_the_radius():
    model = classifier()
    idx, y, mask = batch()
    emb = model.tok_emb.weight.data[idx]
    rho = np.sqrt((emb**2).sum(axis=2)[mask].mean())
    np.testing.assert_allclose(adv.embedding_rms(model, idx, mask), rho, rtol=1e-13)
    objective = adv.AdversarialTraining(model, eps=0.5, eps_warmup=4)
    for steps_taken, share in ((0, 0.0), (1, 0.25), (2, 0.5), (4, 1.0), (9, 1.0)):
        objective.steps_taken = steps_taken
        np.testing.assert_allclose(objective.current_eps(idx, mask), 0.5 * share * rho, rtol=1e-13)
    objective.relative = False
    assert objective.current_eps(idx, mask) == 0.5
    objective.train()
    objective(idx, y, mask)
    assert objective.steps_taken == 10
    objective.eval()
    np.testing.assert_array_equal(objective(idx, y, mask)[1].data, model(idx, y, mask)[1].data)  # eval: the clean loss


def test_train_adversarial_without_attack_is_train_classifier_bit_for_bit():
    cfg = TrainConfig(max_iters=3, batch_size=16, eval_interval=3, eval_iters=1)
    quiet = dict(n=400, log=lambda *_: None, progress=False)
    small = dict(n_layer=1, n_head=2, n_embd=8)
    reference, _, _ = train_classifier(small, cfg, **quiet)
    model, metrics, _ = robustness.train_adversarial(small, cfg, mix=0.0, **quiet)
    for (name, a), b in zip(reference.state_dict().items(), model.state_dict().values()):
        np.testing.assert_array_equal(a, b, err_msg=name)
    attacked, _, _ = robustness.train_adversarial(small, cfg, mix=0.5, **quiet)
    assert not np.array_equal(attacked.head.weight.data, model.head.weight.data)  # the loss did change
    assert 0.0 <= metrics["val_accuracy"] <= 1.0


# ----------------------------------------------------------------------------
# Measuring


def test_accuracy_under_attack_at_zero_is_accuracy_and_relative_eps_scales_by_rho():
    model = classifier()
    idx, y, mask = batch(B=200)
    split = Split(idx, y, mask)
    rho = adv.embedding_rms(model, idx, mask)
    relative = adv.accuracy_under_attack(model, split, [0.0, 3.0], "pgd", "l2", steps=3, batch_size=64)
    absolute = adv.accuracy_under_attack(model, split, [0.0, 3.0 * rho], "pgd", "l2", relative=False, steps=3, batch_size=64)
    assert relative == absolute and relative[0] == accuracy(model, split)
    assert relative[1] < relative[0]  # a radius of three tokens' length moves some decisions


@pytest.mark.slow  # trains and attacks models
def test_the_experiment_is_train_adversarial_then_accuracy_under_attack():
    tiny = TrainConfig(max_iters=2, batch_size=16, eval_interval=2, eval_iters=1)
    small = dict(n_layer=1, n_head=2, n_embd=8)
    result = robustness.run_robustness_experiment(seeds=(0,), eps_values=(0.0, 0.5), pgd_steps=2, n_eval=40, log=None,
                                           model_config=small, train_config=tiny)  # fmt: skip
    assert result["n_eval"] == 40 and result["eps"] == [0.0, 0.5]
    model, metrics, _ = robustness.train_adversarial(small, tiny, eps=0.5, norm="l2", mix=0.5, eps_warmup=200, log=lambda *_: None, progress=False)
    _, _, val = sentiment_splits()
    first = Split(val.x[:40], val.y[:40], val.mask[:40])
    assert result["clean"]["adversarial"] == [metrics["val_accuracy"]]
    assert result["rho"]["adversarial"] == [adv.embedding_rms(model, first.x, first.mask)]
    assert result["accuracy"]["adversarial"]["pgd"] == [adv.accuracy_under_attack(model, first, [0.0, 0.5], "pgd", "l2", steps=2)]
    assert result["accuracy"]["adversarial"]["fgsm"][0][0] == accuracy(model, first)


def test_robustness_table_and_plot_from_a_known_result(tmp_path):
    rows = {"fgsm": [[1.0, 0.5], [0.9, 0.7]], "pgd": [[1.0, 0.2], [0.9, 0.4]]}
    result = dict(eps=[0.0, 0.5], train_eps=0.5, norm="l2", seeds=[0, 1], accuracy={"standard": rows, "adversarial": rows})
    table = robustness.robustness_table(result).splitlines()
    assert table[3] == "| 0.5 | 60.0 ± 14.1 | 30.0 ± 14.1 | 60.0 ± 14.1 | 30.0 ± 14.1 |"
    one_seed = dict(result, seeds=[0], accuracy={t: {a: r[:1] for a, r in rows.items()} for t in ("standard", "adversarial")})
    assert robustness.robustness_table(one_seed).splitlines()[3] == "| 0.5 | 50.0 | 20.0 | 50.0 | 20.0 |"  # no "± 0.0" for one run
    path = robustness.plot_robustness(result, tmp_path / "robustness.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------
# Bad input


def test_bad_input_gets_a_clear_error():
    model = classifier()
    idx, y, mask = batch(B=4)
    with pytest.raises(ValueError, match="norm must be one of"):
        adv.fgsm(model, idx, y, 0.1, "l1")
    with pytest.raises(ValueError, match=r"eps \(the radius of the perturbation\) must be a finite number >= 0"):
        adv.fgsm(model, idx, y, -0.1)
    with pytest.raises(ValueError, match=r"eps \(the radius of the perturbation\) must be a finite number >= 0"):
        adv.project(np.ones((2, 2)), float("nan"), "l2")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        adv.pgd(model, idx, y, 0.1, steps=0)
    with pytest.raises(ValueError, match="alpha"):
        adv.pgd(model, idx, y, 0.1, alpha=0.0)
    with pytest.raises(ValueError, match="attack must be one of"):
        adv.perturb(model, idx, y, 0.1, attack="cw")
    with pytest.raises(ValueError, match="those options are pgd's"):
        adv.perturb(model, idx, y, 0.1, attack="fgsm", steps=3)
    with pytest.raises(ValueError, match="mix"):
        adv.adversarial_loss(model, idx, y, 0.1, mix=1.5)
    model.head.bias.requires_grad_(False)
    with pytest.raises(ValueError, match=r"mask must have the shape of idx"):
        adv.fgsm(model, idx, y, 0.1, mask=mask[:, :3])
    assert model.training and model.head.weight.requires_grad and not model.head.bias.requires_grad  # restored
    with pytest.raises(ValueError, match="leading example axis"):
        adv.project(np.ones(3), 1.0, "l2")
    with pytest.raises(ValueError, match="no real token"):
        adv.embedding_rms(model, idx, np.zeros_like(mask))
    with pytest.raises(ValueError, match="eps_warmup"):
        adv.AdversarialTraining(model, 0.1, eps_warmup=-1)
    with pytest.raises(TypeError, match="has no embed"):
        adv.fgsm(ml.nn.Linear(3, 2), idx, y, 0.1)
