"""Knowledge distillation: the loss of Eq. (5) in docs/compare.md, its gradient and the T² factor, and training."""

import numpy as np
import pytest

import minilora as ml
from minilora.distill import Distillation, distillation_loss, soft_target_kl
from minilora.models import ClassifierConfig, TextClassifier
from minilora.train import TrainConfig
from minilora.train.student import distill
from tests.helpers import t64


def softmax(z, T=1.0):
    e = np.exp(z / T - (z / T).max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def onehot(y, C):
    return np.eye(C)[y]


@pytest.mark.parametrize("shape", [(4, 5), (2, 3, 5)])
@pytest.mark.parametrize("temperature, alpha", [(1.0, 0.5), (3.0, 1.0), (0.5, 0.2), (4.0, 0.0)])
def test_gradcheck(shape, temperature, alpha):
    s = t64(shape, low=-3, high=3, seed=1)
    t = t64(shape, low=-3, high=3, seed=2, requires_grad=False)
    y = np.random.default_rng(3).integers(0, shape[-1], shape[:-1])
    ml.gradcheck(lambda s: distillation_loss(s, t, y, temperature, alpha), [s])


def test_kl_matches_its_definition_and_is_never_negative():
    rng = np.random.default_rng(0)
    for _ in range(20):
        s, t = rng.standard_normal((6, 7)) * 4, rng.standard_normal((6, 7)) * 4
        T = float(rng.uniform(0.5, 5))
        p, q = softmax(t, T), softmax(s, T)
        expected = (p * (np.log(p) - np.log(q))).sum() / 6
        kl = soft_target_kl(ml.Tensor(s), t, T).item()
        assert kl == pytest.approx(expected, rel=1e-12, abs=1e-14)
        assert kl >= 0


def test_kl_is_zero_when_the_student_is_the_teacher():
    z = np.random.default_rng(1).standard_normal((5, 4, 9)) * 3
    for dtype in ("float64", "float32"):
        assert soft_target_kl(ml.Tensor(z.astype(dtype)), z.astype(dtype), 2.5).item() == 0.0


def test_the_soft_gradient_is_T_times_q_minus_p_and_T_squared_keeps_it_level():
    """∂(T²·KL)/∂s = T (q − p)/N (Eq. 6), which tends to (d − mean d)/(C N) with d = s − t as T grows (Eq. 7)."""
    rng = np.random.default_rng(2)
    N, C = 3, 6
    s, t = rng.standard_normal((N, C)), rng.standard_normal((N, C))
    norms = {}
    for T in (1.0, 4.0, 100.0, 1e4):
        x = ml.Tensor(s.copy(), requires_grad=True)
        distillation_loss(x, t, None, T, alpha=1.0).backward()
        np.testing.assert_allclose(x.grad, T * (softmax(s, T) - softmax(t, T)) / N, rtol=1e-9, atol=1e-13)
        norms[T] = np.linalg.norm(x.grad)
    d = s - t
    limit = (d - d.mean(axis=-1, keepdims=True)) / (C * N)
    errors = []
    for T in (1e2, 1e3, 1e4):
        x = ml.Tensor(s.copy(), requires_grad=True)
        distillation_loss(x, t, None, T, alpha=1.0).backward()
        errors.append(np.abs(x.grad - limit).max())
    assert errors[1] / errors[0] == pytest.approx(0.1, rel=0.05)  # the gap shrinks like 1/T
    assert errors[2] / errors[1] == pytest.approx(0.1, rel=0.05)
    assert norms[1e4] / norms[100.0] == pytest.approx(1.0, abs=0.02)  # without T² this ratio would be 1e-4
    assert norms[4.0] / norms[100.0] == pytest.approx(1.0, abs=0.5)


def test_alpha_zero_is_cross_entropy_and_alpha_mixes_the_two_gradients():
    s = t64((5, 4), low=-2, high=2, seed=4)
    t = np.random.default_rng(5).standard_normal((5, 4))
    y = np.array([0, 3, 1, 1, 2])
    assert distillation_loss(s, t, y, 3.0, alpha=0.0).item() == ml.nn.functional.cross_entropy(s, y).item()
    x = ml.Tensor(s.data.copy(), requires_grad=True)
    distillation_loss(x, t, y, 2.0, alpha=0.3).backward()
    soft = 2.0 * (softmax(s.data, 2.0) - softmax(t, 2.0)) / 5
    hard = (softmax(s.data) - onehot(y, 4)) / 5
    np.testing.assert_allclose(x.grad, 0.3 * soft + 0.7 * hard, rtol=1e-12, atol=1e-15)


def test_no_gradient_reaches_the_teacher_and_float32_stays_float32():
    s = ml.Tensor(np.random.default_rng(6).standard_normal((4, 3)).astype("float32"), requires_grad=True)
    t = ml.Tensor(np.random.default_rng(7).standard_normal((4, 3)).astype("float32"), requires_grad=True)
    loss = distillation_loss(s, t, np.array([0, 1, 2, 0]), 2.0, 0.5)
    assert loss.dtype == np.float32
    loss.backward()
    assert t.grad is None and s.grad.dtype == np.float32


def test_bad_arguments_are_explained():
    s, t, y = ml.Tensor(np.zeros((2, 3))), np.zeros((2, 3)), np.array([0, 1])
    for T in (0.0, -1.0, float("nan"), float("inf"), True):
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            distillation_loss(s, t, y, T)
    for a in (-0.1, 1.5, None):
        with pytest.raises(ValueError, match=r"alpha.*must be in \[0, 1\]"):
            distillation_loss(s, t, y, 2.0, a)
    for alpha in (0.0, 0.5):
        with pytest.raises(ValueError, match="same shape"):
            distillation_loss(s, np.zeros((2, 4)), y, 2.0, alpha)
    with pytest.raises(ValueError, match="targets .hard labels. are needed"):
        distillation_loss(s, t, None, 2.0, 0.5)
    with pytest.raises(TypeError, match="student_logits must be a Tensor"):
        soft_target_kl(np.zeros((2, 3)), t)
    model = TextClassifier(ClassifierConfig(vocab_size=5, block_size=4, n_layer=1, n_head=2, n_embd=4))
    with pytest.raises(ValueError, match="the same model"):
        Distillation(model, model)
    with pytest.raises(ValueError, match="batches is empty"):
        distill(model, TextClassifier(model.config), [], TrainConfig(max_iters=1))


def classifier(n_embd, seed):
    ml.manual_seed(seed)
    return TextClassifier(ClassifierConfig(vocab_size=12, block_size=6, n_layer=1, n_head=2, n_embd=n_embd))


def test_distilling_moves_the_student_towards_the_teacher_and_leaves_the_teacher_alone():
    teacher, student = classifier(16, seed=1), classifier(8, seed=2)
    for p in teacher.parameters():
        p.data = p.data * np.float32(20.0)  # confident, far from uniform: something to learn
    rng = np.random.default_rng(0)
    batches = [(rng.integers(0, 12, (16, 6)), rng.integers(0, 2, 16), np.ones((16, 6), bool)) for _ in range(4)]
    teacher_state = teacher.state_dict()

    def kl_to_teacher():
        with ml.no_grad():
            return sum(soft_target_kl(student(x)[0], teacher(x)[0], 2.0).item() for x, _, _ in batches) / 4

    wrapper = Distillation(student, teacher, temperature=2.0, alpha=1.0)
    assert [n for n, _ in wrapper.named_parameters()] == ["student." + n for n, _ in student.named_parameters()]
    start = kl_to_teacher()
    config = TrainConfig(max_iters=60, lr=1e-2, min_lr=1e-2, warmup_iters=0, weight_decay=0.0, eval_interval=60, eval_iters=1)
    trainer = distill(teacher, student, batches, config, eval_sets={"val": batches[:1]}, temperature=2.0, alpha=1.0, log=lambda *_: None, progress=False)
    assert kl_to_teacher() < 0.3 * start
    assert trainer.history[-1]["val_loss"] == pytest.approx(student(*batches[0])[1].item(), rel=1e-6)  # eval: the student's own loss
    for name, value in teacher.state_dict().items():
        np.testing.assert_array_equal(value, teacher_state[name])
    assert all(p.dtype == np.float32 for p in student.parameters())
